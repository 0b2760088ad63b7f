//! The cluster's scheduler and controller-manager serve their secure ports as kubeadm configures upstream's:
//! HTTPS on the control plane's address, health for anyone, `/metrics` for the admin only (delegated
//! authentication and authorization with the components' own kubeconfigs).

use ferrokube_cluster::local::components::{CONTROLLER_MANAGER_PORT, SCHEDULER_PORT};
use ferrokube_cluster::local::plan::CONTROL_PLANE_IP;
use ferrokube_tests::secure_serving::{client_of, get, wait_until_serving};
use ferrokube_tests::up::shared_up_cluster;
use kube::config::{AuthInfo, Kubeconfig};

use super::disruptive;

#[tokio::test]
async fn the_components_serve_https_with_delegated_authentication_and_authorization() {
    // Restart tests take the components away; this one needs them up.
    let _serial = disruptive().await;
    let cluster = shared_up_cluster();
    let kubeconfig = cluster.kubeconfig();
    let admin = Kubeconfig::read_from(&kubeconfig).unwrap().auth_infos[0]
        .auth_info
        .clone()
        .unwrap();
    for port in [SCHEDULER_PORT, CONTROLLER_MANAGER_PORT] {
        let url = format!("https://{CONTROL_PLANE_IP}:{port}");
        let anonymous = client_of(&url, &kubeconfig, None, AuthInfo::default()).await;
        wait_until_serving(&anonymous).await;
        let (code, reason, message) = get(&anonymous, "/metrics").await.unwrap();
        assert_eq!(
            (code, reason.as_str()),
            (403, "Forbidden"),
            "{url}: {message}"
        );
        let admin = client_of(&url, &kubeconfig, None, admin.clone()).await;
        let (code, _, body) = get(&admin, "/metrics").await.unwrap();
        assert_eq!(code, 200, "{url}: {body:.300}");
        assert!(body.contains("# TYPE rest_client_requests_total"), "{url}");
    }
}
