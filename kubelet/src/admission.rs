//! Pod admission (upstream's predicateAdmitHandler): before a new pod runs, the kubelet checks that the node
//! can take it next to the pods it already admitted — its OS, and pods, CPU, memory, ephemeral storage and
//! extended resources against allocatable. A rejected pod is Failed with upstream's reason and message.

use k8s_openapi::api::core::v1::{Node, Pod};

use component_base::resource::{CPU, EPHEMERAL_STORAGE, MEMORY, PODS, Resource, pod_requests};

/// Why a pod may not run here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Upstream's reason: `OutOfcpu`, `OutOfmemory`, `OutOfpods`, `PodOSSelectorNodeLabelDoesNotMatch`, ...
    pub reason: String,
    /// Upstream's message.
    pub message: String,
}

impl Rejection {
    fn new(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Whether `pod` fits on `node` next to `admitted` (the node's other active pods).
pub fn admit(pod: &Pod, admitted: &[&Pod], node: &Node) -> Result<(), Rejection> {
    let spec = pod.spec.clone().unwrap_or_default();
    let node_os = node
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("kubernetes.io/os"))
        .map_or("linux", String::as_str);
    if let Some(os) = spec
        .node_selector
        .as_ref()
        .and_then(|s| s.get("kubernetes.io/os"))
        && os != node_os
    {
        return Err(Rejection::new(
            "PodOSSelectorNodeLabelDoesNotMatch",
            "Failed to admit pod as the `kubernetes.io/os` label doesn't match node label",
        ));
    }
    if let Some(os) = spec.os.as_ref()
        && os.name != "linux"
    {
        return Err(Rejection::new(
            "PodOSNotSupported",
            "Failed to admit pod as the OS field doesn't match node OS",
        ));
    }
    let allocatable =
        Resource::from_list(node.status.as_ref().and_then(|s| s.allocatable.as_ref()));
    let mut used = Resource::default();
    for other in admitted {
        used.add(&pod_requests(other).0);
    }
    let requested = pod_requests(pod).0;
    let pods_used = i64::try_from(admitted.len()).unwrap_or(i64::MAX);
    if pods_used + 1 > allocatable.allowed_pod_number {
        return Err(insufficient(
            PODS,
            1,
            pods_used,
            allocatable.allowed_pod_number,
        ));
    }
    let checks = [
        (
            CPU,
            requested.milli_cpu,
            used.milli_cpu,
            allocatable.milli_cpu,
        ),
        (MEMORY, requested.memory, used.memory, allocatable.memory),
        (
            EPHEMERAL_STORAGE,
            requested.ephemeral_storage,
            used.ephemeral_storage,
            allocatable.ephemeral_storage,
        ),
    ];
    for (name, want, used, capacity) in checks {
        if want > 0 && want > capacity - used {
            return Err(insufficient(name, want, used, capacity));
        }
    }
    for (name, want) in &requested.scalar_resources {
        let used = used.scalar_resources.get(name).copied().unwrap_or(0);
        let capacity = allocatable.scalar_resources.get(name).copied().unwrap_or(0);
        if *want > 0 && *want > capacity - used {
            return Err(insufficient(name, *want, used, capacity));
        }
    }
    Ok(())
}

/// Upstream's InsufficientResourceError as the kubelet reports it.
fn insufficient(resource: &str, requested: i64, used: i64, capacity: i64) -> Rejection {
    Rejection::new(
        format!("OutOf{resource}"),
        format!(
            "Node didn't have enough resource: {resource}, requested: {requested}, used: {used}, capacity: {capacity}"
        ),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{Container, NodeStatus, PodOS, PodSpec, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    use super::*;

    fn list(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
            .collect()
    }

    fn node(cpu: &str, pods: &str) -> Node {
        Node {
            status: Some(NodeStatus {
                allocatable: Some(list(&[("cpu", cpu), ("memory", "1Gi"), ("pods", pods)])),
                ..NodeStatus::default()
            }),
            ..Node::default()
        }
    }

    fn pod(cpu: &str) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    resources: Some(ResourceRequirements {
                        requests: Some(list(&[("cpu", cpu)])),
                        ..ResourceRequirements::default()
                    }),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn pods_that_fit_are_admitted_and_others_get_upstreams_reason() {
        let node = node("2", "3");
        let running = pod("1500m");
        assert_eq!(admit(&pod("500m"), &[&running], &node), Ok(()));
        assert_eq!(
            admit(&pod("600m"), &[&running], &node),
            Err(Rejection::new(
                "OutOfcpu",
                "Node didn't have enough resource: cpu, requested: 600, used: 1500, capacity: 2000"
            ))
        );
        let small = pod("1m");
        let full = [&small, &small, &small];
        assert_eq!(
            admit(&pod("1m"), &full, &node).map_err(|r| r.reason),
            Err("OutOfpods".to_string())
        );
    }

    #[test]
    fn the_os_must_match() {
        let mut windows = pod("1m");
        if let Some(spec) = windows.spec.as_mut() {
            spec.os = Some(PodOS {
                name: "windows".into(),
            });
        }
        assert_eq!(
            admit(&windows, &[], &node("2", "10")).map_err(|r| r.reason),
            Err("PodOSNotSupported".to_string())
        );
        let mut selecting = pod("1m");
        if let Some(spec) = selecting.spec.as_mut() {
            spec.node_selector = Some(BTreeMap::from([(
                "kubernetes.io/os".to_string(),
                "windows".to_string(),
            )]));
        }
        assert_eq!(
            admit(&selecting, &[], &node("2", "10")).map_err(|r| r.reason),
            Err("PodOSSelectorNodeLabelDoesNotMatch".to_string())
        );
    }
}
