//! ferrokube's own images, the Helm chart's, run as pods of the cluster with in-cluster credentials (their
//! ServiceAccount's token and the `kubernetes` Service), bound to upstream's roles for the components:
//! a second scheduler from the scheduler image binds the pods that name it, and the controller-manager image
//! wins a leader lease of its own and reports healthy.

use std::time::Duration;

use ferrokube_cluster::component_images;
use ferrokube_tests::kubectl::kubectl_ok_with;
use ferrokube_tests::scheduling::eventually;
use ferrokube_tests::up::shared_up_cluster;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams};

use super::{create, disruptive, namespace, wait_running};

/// The objects the Helm chart needs for both components, in namespace `ns`: ServiceAccounts bound to
/// upstream's bootstrap roles, the scheduler's configuration (one profile named `scheduler_name`, in-cluster
/// client), a Role for the controller-manager's own lease, the reader of the client CA in
/// kube-system/extension-apiserver-authentication (the controller-manager, unlike the scheduler, does not
/// start without it, as upstream), and the two pods, each probed on /healthz over HTTPS as kubeadm's are.
fn manifest(ns: &str, scheduler_name: &str) -> String {
    let scheduler_image = component_images::image("ferrokube-scheduler");
    let kcm_image = component_images::image("ferrokube-controller-manager");
    format!(
        r#"
apiVersion: v1
kind: ServiceAccount
metadata: {{name: scheduler, namespace: {ns}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: controller-manager, namespace: {ns}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {ns}-kube-scheduler}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:kube-scheduler"}}
subjects: [{{kind: ServiceAccount, name: scheduler, namespace: {ns}}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {ns}-volume-scheduler}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:volume-scheduler"}}
subjects: [{{kind: ServiceAccount, name: scheduler, namespace: {ns}}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {ns}-kube-controller-manager}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:kube-controller-manager"}}
subjects: [{{kind: ServiceAccount, name: controller-manager, namespace: {ns}}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: leases, namespace: {ns}}}
rules: [{{apiGroups: [coordination.k8s.io], resources: [leases], verbs: [get, create, update]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: leases, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: leases}}
subjects: [{{kind: ServiceAccount, name: controller-manager, namespace: {ns}}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: {ns}-authentication-reader, namespace: kube-system}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: extension-apiserver-authentication-reader}}
subjects:
- {{kind: ServiceAccount, name: scheduler, namespace: {ns}}}
- {{kind: ServiceAccount, name: controller-manager, namespace: {ns}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: scheduler-config, namespace: {ns}}}
data:
  config.yaml: |
    apiVersion: kubescheduler.config.k8s.io/v1
    kind: KubeSchedulerConfiguration
    leaderElection: {{leaderElect: false}}
    profiles: [{{schedulerName: {scheduler_name}}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: scheduler, namespace: {ns}}}
spec:
  serviceAccountName: scheduler
  containers:
  - name: scheduler
    image: {scheduler_image}
    command: [/ferrokube-scheduler, --config=/etc/scheduler/config.yaml, -v=2]
    readinessProbe:
      httpGet: {{path: /healthz, port: 10259, scheme: HTTPS}}
      periodSeconds: 1
    volumeMounts: [{{name: config, mountPath: /etc/scheduler}}]
  volumes: [{{name: config, configMap: {{name: scheduler-config}}}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: controller-manager, namespace: {ns}}}
spec:
  serviceAccountName: controller-manager
  containers:
  - name: controller-manager
    image: {kcm_image}
    command:
    - /ferrokube-controller-manager
    - --controllers=serviceaccount
    - --leader-elect-resource-namespace={ns}
    - --leader-elect-resource-name=controller-manager
    - -v=2
    readinessProbe:
      httpGet: {{path: /healthz, port: 10257, scheme: HTTPS}}
      periodSeconds: 1
"#
    )
}

#[tokio::test]
async fn the_components_images_run_as_pods_with_in_cluster_credentials() {
    // The controller-manager's pod must not outlive this test into one that restarts the cluster's own.
    let _serial = disruptive().await;
    let cluster = shared_up_cluster();
    let client = cluster.client().await;
    let kubeconfig = cluster.kubeconfig();
    let ns = namespace(&client, "images").await;
    let scheduler_name = format!("{ns}-scheduler");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), manifest(&ns, &scheduler_name)).unwrap();
    kubectl_ok_with(
        &kubeconfig,
        &["apply", "-f", &file.path().to_string_lossy()],
    )
    .await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    for name in ["scheduler", "controller-manager"] {
        eventually(
            Duration::from_secs(120),
            &format!("{name} Ready"),
            || async {
                let pod = pods.get(name).await.ok()?;
                let ready = pod
                    .status?
                    .conditions?
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                ready.then_some(())
            },
        )
        .await;
    }

    // Only the second scheduler binds a pod that names it.
    create(
        &client,
        &ns,
        serde_json::json!({
            "metadata": {"name": "by-second-scheduler"},
            "spec": {
                "schedulerName": scheduler_name,
                "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}],
                "terminationGracePeriodSeconds": 0,
            },
        }),
    )
    .await;
    wait_running(&pods, "by-second-scheduler").await;
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let scheduled = eventually(Duration::from_secs(30), "the Scheduled event", || async {
        let list = events
            .list(&ListParams::default().fields("involvedObject.name=by-second-scheduler"))
            .await
            .ok()?;
        list.items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("Scheduled"))
    })
    .await;
    assert_eq!(
        scheduled.reporting_component.as_deref(),
        Some(scheduler_name.as_str()),
        "{scheduled:?}"
    );

    // The controller-manager pod holds the lease it was given (its identity starts with its hostname).
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    eventually(
        Duration::from_secs(60),
        "the controller-manager's lease",
        || async {
            let lease = leases.get("controller-manager").await.ok()?;
            let holder = lease.spec?.holder_identity?;
            holder.starts_with("controller-manager_").then_some(())
        },
    )
    .await;

    for binding in [
        "kube-scheduler",
        "volume-scheduler",
        "kube-controller-manager",
    ] {
        kubectl_ok_with(
            &kubeconfig,
            &["delete", "clusterrolebinding", &format!("{ns}-{binding}")],
        )
        .await;
    }
    kubectl_ok_with(
        &kubeconfig,
        &[
            "delete",
            "rolebinding",
            "-n",
            "kube-system",
            &format!("{ns}-authentication-reader"),
        ],
    )
    .await;
    pods.delete_collection(
        &DeleteParams::default().grace_period(0),
        &ListParams::default(),
    )
    .await
    .unwrap();
    eventually(Duration::from_secs(60), "the pods gone", || async {
        pods.list(&ListParams::default())
            .await
            .ok()
            .and_then(|l| l.items.is_empty().then_some(()))
    })
    .await;
}
