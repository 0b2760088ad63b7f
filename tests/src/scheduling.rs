//! Support for the scheduler's end-to-end tests: a ferrokube-scheduler process on the shared control
//! plane, Node objects made by the test (no kubelets), pods, and waiting for what the scheduler writes.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ferrokube_cluster::Identity;

use crate::ComponentProcess;
use ferrokube_cluster::testing::shared_control_plane;
use k8s_openapi::api::core::v1::{Node, Pod, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::sync::{Mutex, MutexGuard};

/// Nodes are cluster-wide: the scheduler tests of one binary take turns.
pub async fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: OnceLock<Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| Mutex::new(())).lock().await
}

/// Starts ferrokube-scheduler.
pub struct SchedulerProcess;

impl SchedulerProcess {
    /// Starts ferrokube-scheduler as system:kube-scheduler with `args` added.
    pub fn start(name: &str, args: &[&str]) -> ComponentProcess {
        ComponentProcess::start("ferrokube-scheduler", &Identity::scheduler(), name, args)
    }
}

/// Writes a KubeSchedulerConfiguration file in the control plane's directory.
pub fn config_file(name: &str, yaml: &str) -> PathBuf {
    let path = shared_control_plane().dir().join(format!("{name}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    path
}

/// An admin client.
pub async fn admin() -> Client {
    shared_control_plane()
        .client(&Identity::admin())
        .await
        .unwrap()
}

/// Creates the namespace's `default` ServiceAccount (no controller-manager runs here, and the
/// ServiceAccount admission plugin refuses pods without it).
pub async fn default_service_account(client: &Client, namespace: &str) {
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "default"}})).unwrap();
    let _ = Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &sa)
        .await;
}

/// Creates a Ready node with `cpu`, `memory` and 110 pods allocatable, `labels` and `taints`
/// (`[{"key":..,"value":..,"effect":..}]`).
pub async fn create_node(client: &Client, name: &str, cpu: &str, labels: Value, taints: Value) {
    let nodes = Api::<Node>::all(client.clone());
    let mut all_labels = json!({"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"});
    if let (Some(all), Some(extra)) = (all_labels.as_object_mut(), labels.as_object()) {
        all.extend(extra.clone());
    }
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": all_labels},
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    // TaintNodesByCondition admission adds node.kubernetes.io/not-ready on create; no node controller runs
    // here to lift it, so the test sets the taints it wants.
    nodes
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": taints}})),
        )
        .await
        .unwrap();
    let resources = json!({"cpu": cpu, "memory": "32Gi", "pods": "110"});
    let status = json!({"status": {
        "capacity": resources, "allocatable": resources,
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "test node"}],
    }});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
}

/// Deletes every node (tests run one at a time and each starts from none).
pub async fn delete_all_nodes(client: &Client) {
    let nodes = Api::<Node>::all(client.clone());
    let _ = nodes
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await;
}

/// Creates a pod from `spec` (JSON) named `name`; containers default to one pause container.
pub async fn create_pod(client: &Client, namespace: &str, name: &str, mut pod: Value) -> Pod {
    pod["metadata"]["name"] = json!(name);
    if pod["spec"]["containers"].is_null() {
        pod["spec"]["containers"] = json!([{"name": "c", "image": "registry.k8s.io/pause:3.10"}]);
    }
    let pod: Pod = serde_json::from_value(pod).unwrap();
    Api::<Pod>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap()
}

/// A pod spec asking for `cpu`.
pub fn requesting(cpu: &str) -> Value {
    json!({"spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
        "resources": {"requests": {"cpu": cpu}}}]}})
}

/// Polls `check` every 100 ms until it returns `Some`, for at most `limit`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the pod is bound and returns its node.
pub async fn bound_node(client: &Client, namespace: &str, name: &str) -> String {
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    eventually(
        Duration::from_secs(30),
        &format!("pod {name} to be bound"),
        || async {
            let pod = pods.get(name).await.ok()?;
            pod.spec?.node_name
        },
    )
    .await
}

/// Waits until the pod has PodScheduled=False and returns the condition's reason and message.
pub async fn unschedulable(client: &Client, namespace: &str, name: &str) -> (String, String) {
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    eventually(
        Duration::from_secs(30),
        &format!("pod {name} to be marked unschedulable"),
        || async {
            let pod = pods.get(name).await.ok()?;
            let condition = pod.status?.conditions?.into_iter().find(|c| {
                c.type_ == "PodScheduled"
                    && c.status == "False"
                    && c.reason.as_deref() != Some("SchedulingGated")
            })?;
            Some((
                condition.reason.unwrap_or_default(),
                condition.message.unwrap_or_default(),
            ))
        },
    )
    .await
}

/// The notes of events with `reason` about pod `name`.
pub async fn event_notes(
    client: &Client,
    namespace: &str,
    name: &str,
    reason: &str,
) -> Vec<String> {
    events(client, namespace, name, reason)
        .await
        .into_iter()
        .filter_map(|e| e.note)
        .collect()
}

/// The reporting instances of events with `reason` about pod `name` (which scheduler process wrote them).
pub async fn event_instances(
    client: &Client,
    namespace: &str,
    name: &str,
    reason: &str,
) -> Vec<String> {
    events(client, namespace, name, reason)
        .await
        .into_iter()
        .filter_map(|e| e.reporting_instance)
        .collect()
}

async fn events(client: &Client, namespace: &str, name: &str, reason: &str) -> Vec<Event> {
    let events = Api::<Event>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .unwrap();
    events
        .items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
        })
        .collect()
}

/// Asserts the pod stays unbound for `period`.
pub async fn stays_pending(client: &Client, namespace: &str, name: &str, period: Duration) {
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + period;
    while Instant::now() < deadline {
        let pod = pods.get(name).await.unwrap();
        assert_eq!(pod.spec.unwrap().node_name, None, "pod {name} was bound");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
