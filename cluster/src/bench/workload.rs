//! The objects a scheduler benchmark creates, as upstream's scheduler_perf makes them
//! (test/integration/scheduler_perf/templates/node-default.yaml and pod-default.yaml): pure builders.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Namespace, Node, NodeCondition, NodeStatus, Pod, PodSpec,
    ResourceRequirements, ServiceAccount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::ObjectMeta;

/// The image of every benchmark pod; never pulled, since no kubelet runs.
pub const POD_IMAGE: &str = "registry.k8s.io/pause:3.10";
/// Prefix of the measured pods' names; anything else in the namespace (the probe pod) is not counted.
pub const POD_PREFIX: &str = "pod-";
/// The pod that shows the scheduler is ready before the measured pods are created.
pub const PROBE_POD: &str = "probe";

/// `node-00001` for `index` 1: zero-padded so the names sort in creation order.
pub fn node_name(index: usize) -> String {
    format!("node-{index:05}")
}

/// `pod-00001` for `index` 1.
pub fn pod_name(index: usize) -> String {
    format!("{POD_PREFIX}{index:05}")
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), Quantity(value.to_string())))
        .collect()
}

/// This machine's architecture as Go (and the `kubernetes.io/arch` label) names it.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// scheduler_perf's node-default: 4 CPUs, 32Gi memory, 110 pods, Ready, with the labels a kubelet sets.
/// The status goes in too; [`node_status_is_set`] tells whether the apiserver kept it.
pub fn node(name: &str) -> Node {
    let labels = [
        ("kubernetes.io/hostname", name),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", go_arch()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        status: Some(node_status()),
        ..Node::default()
    }
}

/// Capacity and allocatable (equal, as with no reservations) and the Ready condition.
pub fn node_status() -> NodeStatus {
    let resources = quantities(&[("cpu", "4"), ("memory", "32Gi"), ("pods", "110")]);
    NodeStatus {
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        conditions: Some(vec![NodeCondition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: Some("KubeletReady".into()),
            message: Some("benchmark node (no kubelet runs)".into()),
            ..NodeCondition::default()
        }]),
        phase: Some("Running".into()),
        ..NodeStatus::default()
    }
}

/// Whether `node`, as the apiserver returned it, has the allocatable resources and the Ready condition.
pub fn node_status_is_set(node: &Node) -> bool {
    node.status.as_ref().is_some_and(|status| {
        status
            .allocatable
            .as_ref()
            .is_some_and(|a| a.contains_key("cpu"))
            && status.conditions.as_ref().is_some_and(|conditions| {
                conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
            })
    })
}

/// The patch that removes the taints the apiserver's TaintNodesByCondition admission plugin put on a new node
/// (`node.kubernetes.io/not-ready:NoSchedule`), as the node lifecycle controller would once the node is Ready;
/// `None` if the node has none. scheduler_perf's nodes carry no taints.
pub fn untaint_patch(node: &Node) -> Option<serde_json::Value> {
    let tainted = node
        .spec
        .as_ref()
        .and_then(|spec| spec.taints.as_ref())
        .is_some_and(|taints| !taints.is_empty());
    tainted.then(|| serde_json::json!({ "spec": { "taints": null } }))
}

/// scheduler_perf's pod-default: one pause container requesting (and limited to) 100m CPU and 500Mi memory.
pub fn pod(name: &str) -> Pod {
    let resources = quantities(&[("cpu", "100m"), ("memory", "500Mi")]);
    Pod {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/name".to_string(),
                "ferrokube-bench".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "pause".into(),
                image: Some(POD_IMAGE.into()),
                ports: Some(vec![ContainerPort {
                    container_port: 80,
                    ..ContainerPort::default()
                }]),
                resources: Some(ResourceRequirements {
                    requests: Some(resources.clone()),
                    limits: Some(resources),
                    ..ResourceRequirements::default()
                }),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

/// The benchmark's namespace.
pub fn namespace(name: &str) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// The namespace's `default` ServiceAccount, which the ServiceAccount admission plugin requires of every pod
/// and which nobody else makes here, since no controller-manager runs.
pub fn default_service_account(namespace: &str) -> ServiceAccount {
    ServiceAccount {
        metadata: ObjectMeta {
            name: Some("default".into()),
            namespace: Some(namespace.to_string()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    }
}

/// The node a pod is bound to, if any.
pub fn bound_node(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|spec| spec.node_name.as_deref())
        .filter(|node| !node.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_zero_padded() {
        assert_eq!(node_name(1), "node-00001");
        assert_eq!(node_name(1000), "node-01000");
        assert_eq!(pod_name(42), "pod-00042");
        assert_eq!(pod_name(123_456), "pod-123456");
        assert!(pod_name(7).starts_with(POD_PREFIX));
        assert!(!PROBE_POD.starts_with(POD_PREFIX));
    }

    #[test]
    fn node_mirrors_scheduler_perf_node_default() {
        let node = node("node-00007");
        let labels = node.metadata.labels.clone().unwrap();
        assert_eq!(labels["kubernetes.io/hostname"], "node-00007");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert!(!labels["kubernetes.io/arch"].is_empty());
        let status = node.status.clone().unwrap();
        for resources in [
            status.capacity.clone().unwrap(),
            status.allocatable.clone().unwrap(),
        ] {
            assert_eq!(resources["cpu"].0, "4");
            assert_eq!(resources["memory"].0, "32Gi");
            assert_eq!(resources["pods"].0, "110");
        }
        assert!(node_status_is_set(&node));
        assert!(node.spec.is_none_or(|spec| spec.taints.is_none()));
    }

    #[test]
    fn admission_taints_are_removed() {
        let mut node = node("n");
        assert_eq!(untaint_patch(&node), None);
        node.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
            taints: Some(vec![k8s_openapi::api::core::v1::Taint {
                key: "node.kubernetes.io/not-ready".into(),
                effect: "NoSchedule".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        let patch = untaint_patch(&node).unwrap();
        assert!(patch["spec"]["taints"].is_null());
        assert!(patch["spec"].as_object().unwrap().contains_key("taints"));
    }

    #[test]
    fn node_without_status_is_noticed() {
        let mut node = node("n");
        node.status = None;
        assert!(!node_status_is_set(&node));
        node.status = Some(NodeStatus::default());
        assert!(!node_status_is_set(&node));
    }

    #[test]
    fn pod_mirrors_scheduler_perf_pod_default() {
        let pod = pod("pod-00001");
        assert_eq!(pod.metadata.name.as_deref(), Some("pod-00001"));
        let spec = pod.spec.clone().unwrap();
        assert_eq!(spec.containers.len(), 1);
        let container = &spec.containers[0];
        assert_eq!(container.image.as_deref(), Some(POD_IMAGE));
        let resources = container.resources.clone().unwrap();
        let requests = resources.requests.unwrap();
        assert_eq!(requests["cpu"].0, "100m");
        assert_eq!(requests["memory"].0, "500Mi");
        assert_eq!(resources.limits.unwrap(), requests);
        assert!(spec.node_name.is_none());
        assert!(
            spec.scheduler_name.is_none(),
            "the default scheduler's pods"
        );
        assert_eq!(bound_node(&pod), None);
    }

    #[test]
    fn bound_node_ignores_an_empty_node_name() {
        let mut pod = pod("p");
        if let Some(spec) = pod.spec.as_mut() {
            spec.node_name = Some(String::new());
        }
        assert_eq!(bound_node(&pod), None);
        if let Some(spec) = pod.spec.as_mut() {
            spec.node_name = Some("node-00001".into());
        }
        assert_eq!(bound_node(&pod), Some("node-00001"));
    }

    #[test]
    fn service_account_is_the_namespace_default() {
        let account = default_service_account("bench");
        assert_eq!(account.metadata.name.as_deref(), Some("default"));
        assert_eq!(account.metadata.namespace.as_deref(), Some("bench"));
        assert_eq!(namespace("bench").metadata.name.as_deref(), Some("bench"));
    }
}
