//! ferrokube-kubelet's server through the apiserver's node proxy and directly: `/healthz` and `/pods`
//! answer; requests without credentials get 401, a user without `nodes/proxy` 403 with upstream's text,
//! and the same user once granted it 200; client certificates from the cluster CA authenticate.

use std::time::Duration;

use ferrokube_cluster::testing::TestNamespace;
use ferrokube_tests::kubectl::kubectl_ok;
use ferrokube_tests::kubelet::{TestNode, admin_auth_info, direct_kubelet_client};
use ferrokube_tests::scheduling::{default_service_account, eventually};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Node, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::json;

const NODE: &str = "node-1";
const BRIDGE: &str = "fk-srv0";
const POD_CIDR: &str = "10.242.0.0/24";

/// GETs `path` and returns the status code and body (kube's client trims an error body's last newline).
async fn get(client: &Client, path: &str) -> (u16, String) {
    let request = http::Request::get(path).body(Vec::new()).unwrap();
    match client.request_text(request).await {
        Ok(body) => (200, body),
        Err(kube::Error::Api(status)) => (status.code, status.message),
        Err(e) => panic!("GET {path}: {e}"),
    }
}

async fn token_of(client: &Client, namespace: &str, account: &str) -> String {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": account}})).unwrap(),
        )
        .await
        .unwrap();
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}}))
            .unwrap();
    let issued = accounts
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .unwrap();
    issued.status.unwrap().token.unwrap()
}

#[tokio::test]
async fn the_server_answers_through_the_node_proxy_and_enforces_authentication_and_authorization() {
    let _node = TestNode::start(
        NODE,
        BRIDGE,
        POD_CIDR,
        // Denials are cached for 30 s by default; the grant below must be seen sooner.
        &["--authorization-webhook-cache-unauthorized-ttl=1s"],
    )
    .await;
    let ns = TestNamespace::new("kubelet-server").await;
    default_service_account(&ns.client, ns.name()).await;
    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), ns.name());
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "sleeper"},
        "spec": {
            "nodeName": NODE,
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                            "command": ["sleep", "3600"]}],
        },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();

    // Through the apiserver, which dials the kubelet with its kubelet-client certificate and verifies the
    // kubelet's serving certificate against the cluster CA.
    let healthz = kubectl_ok(&[
        "get",
        "--raw",
        &format!("/api/v1/nodes/{NODE}/proxy/healthz"),
    ])
    .await;
    assert_eq!(healthz, "ok");
    let listed = eventually(Duration::from_secs(30), "the pod in /pods", || async {
        let raw = kubectl_ok(&["get", "--raw", &format!("/api/v1/nodes/{NODE}/proxy/pods")]).await;
        let list: serde_json::Value = serde_json::from_str(&raw).unwrap();
        let names: Vec<String> = list["items"]
            .as_array()?
            .iter()
            .map(|p| {
                format!(
                    "{}/{}",
                    p["metadata"]["namespace"].as_str().unwrap_or(""),
                    p["metadata"]["name"].as_str().unwrap_or("")
                )
            })
            .collect();
        names
            .contains(&format!("{}/sleeper", ns.name()))
            .then_some(list)
    })
    .await;
    assert_eq!(listed["kind"], "PodList");

    let node = Api::<Node>::all(ns.client.clone()).get(NODE).await.unwrap();
    // No credentials: 401 with upstream's body.
    let anonymous = direct_kubelet_client(&node, Default::default()).await;
    assert_eq!(
        get(&anonymous, "/pods").await,
        (401, "Unauthorized".to_string())
    );
    // An invalid token authenticates no one.
    let bogus = kube::config::AuthInfo {
        token: Some("not-a-token".to_string().into()),
        ..Default::default()
    };
    let bogus = direct_kubelet_client(&node, bogus).await;
    assert_eq!(get(&bogus, "/healthz").await.0, 401);

    // A service account's token is reviewed by the apiserver; without nodes/proxy it is forbidden.
    let token = token_of(&ns.client, ns.name(), "reader").await;
    let with_token = kube::config::AuthInfo {
        token: Some(token.into()),
        ..Default::default()
    };
    let reader = direct_kubelet_client(&node, with_token).await;
    let user = format!("system:serviceaccount:{}:reader", ns.name());
    assert_eq!(
        get(&reader, "/pods").await,
        (
            403,
            format!(
                "Forbidden (user={user}, verb=get, resource=nodes, subresource(s)=[pods proxy])"
            )
        )
    );
    assert_eq!(
        get(&reader, "/containerLogs/a/b/c").await,
        (
            403,
            format!("Forbidden (user={user}, verb=get, resource=nodes, subresource(s)=[proxy])")
        )
    );

    // Granted nodes/proxy, the same user gets through.
    let role_name = format!("{}-node-proxy", ns.name());
    let roles: Api<ClusterRole> = Api::all(ns.client.clone());
    roles
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": role_name},
                "rules": [{"apiGroups": [""], "resources": ["nodes/proxy"], "verbs": ["get"]}],
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    Api::<ClusterRoleBinding>::all(ns.client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": role_name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
                "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns.name()}],
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    eventually(
        Duration::from_secs(20),
        "the grant to take effect",
        || async { (get(&reader, "/healthz").await == (200, "ok".to_string())).then_some(()) },
    )
    .await;

    // A client certificate from the cluster CA (the admin's, in system:masters) authenticates directly.
    let admin = direct_kubelet_client(&node, admin_auth_info()).await;
    assert_eq!(get(&admin, "/healthz").await, (200, "ok".to_string()));
    ns.delete().await;
}
