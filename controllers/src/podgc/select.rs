//! Which pods the pod garbage collector deletes (upstream's gcTerminated, gcTerminating, gcOrphaned and
//! gcUnscheduledTerminating selections), as pure functions of the cached pods and nodes.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use tokio::time::Instant;

use crate::pod::Pod;

fn phase(pod: &Pod) -> &str {
    let status = pod.status.as_ref();
    status.and_then(|s| s.phase.as_deref()).unwrap_or_default()
}

/// The node the pod is bound to, "" if none.
pub fn node_name(pod: &Pod) -> &str {
    let spec = pod.spec.as_ref();
    spec.and_then(|s| s.node_name.as_deref())
        .unwrap_or_default()
}

/// Upstream's `isPodTerminated`: any phase but Pending, Running and Unknown.
pub fn is_terminated(pod: &Pod) -> bool {
    !matches!(phase(pod), "Pending" | "Running" | "Unknown")
}

/// The kubelet's `PodIsEvicted`: Failed with reason Evicted.
fn is_evicted(pod: &Pod) -> bool {
    let reason = pod.status.as_ref().and_then(|s| s.reason.as_deref());
    phase(pod) == "Failed" && reason == Some("Evicted")
}

/// Upstream's `byEvictionAndCreationTimestamp`: evicted pods first, then oldest, then by name.
fn by_eviction_and_creation(a: &Pod, b: &Pod) -> Ordering {
    is_evicted(b)
        .cmp(&is_evicted(a))
        .then_with(|| {
            let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            created(a).cmp(&created(b))
        })
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Terminated pods beyond `threshold`, the ones to delete first first; nothing when `threshold` ≤ 0.
pub fn terminated_beyond_threshold(pods: &[Arc<Pod>], threshold: i64) -> Vec<Arc<Pod>> {
    if threshold <= 0 {
        return Vec::new();
    }
    let mut terminated: Vec<Arc<Pod>> = pods.iter().filter(|p| is_terminated(p)).cloned().collect();
    let excess = terminated
        .len()
        .saturating_sub(usize::try_from(threshold).unwrap_or(usize::MAX));
    if excess == 0 {
        return Vec::new();
    }
    terminated.sort_by(|a, b| by_eviction_and_creation(a, b));
    terminated.truncate(excess);
    terminated
}

/// Upstream's gcTerminating: terminating pods on a not-Ready node tainted `node.kubernetes.io/out-of-service`.
pub fn terminating_out_of_service(
    pods: &[Arc<Pod>],
    nodes: &HashMap<String, Arc<Node>>,
) -> Vec<Arc<Pod>> {
    let mut selected: Vec<Arc<Pod>> = pods
        .iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_some())
        .filter(|pod| {
            nodes
                .get(node_name(pod))
                .is_some_and(|node| !is_node_ready(node) && is_out_of_service(node))
        })
        .cloned()
        .collect();
    selected.sort_by(|a, b| by_eviction_and_creation(a, b));
    selected
}

fn is_node_ready(node: &Node) -> bool {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_deref());
    conditions
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

fn is_out_of_service(node: &Node) -> bool {
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_deref());
    taints
        .unwrap_or_default()
        .iter()
        .any(|t| t.key == "node.kubernetes.io/out-of-service")
}

/// Nodes pods are bound to that the cache does not hold: candidates for quarantine.
pub fn missing_nodes(pods: &[Arc<Pod>], nodes: &HashMap<String, Arc<Node>>) -> HashSet<String> {
    pods.iter()
        .map(|p| node_name(p))
        .filter(|n| !n.is_empty() && !nodes.contains_key(*n))
        .map(str::to_string)
        .collect()
}

/// Pods bound to nodes known to be deleted.
pub fn orphaned(pods: &[Arc<Pod>], deleted_nodes: &HashSet<String>) -> Vec<Arc<Pod>> {
    pods.iter()
        .filter(|p| deleted_nodes.contains(node_name(p)))
        .cloned()
        .collect()
}

/// Upstream's gcUnscheduledTerminating: terminating pods never bound to a node.
pub fn unscheduled_terminating(pods: &[Arc<Pod>]) -> Vec<Arc<Pod>> {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some() && node_name(p).is_empty())
        .cloned()
        .collect()
}

/// Missing node names waiting out the quarantine (upstream's delaying `orphaned_pods_nodes` queue): a
/// name is checked against the apiserver only once it has been missing from the cache for the quarantine.
#[derive(Debug, Default)]
pub struct Quarantine {
    due: HashMap<String, Instant>,
}

impl Quarantine {
    /// Adds names not yet waiting, due `quarantine` after `now`; a waiting name keeps its earlier time.
    pub fn add(&mut self, names: HashSet<String>, now: Instant, quarantine: Duration) {
        for name in names {
            self.due.entry(name).or_insert(now + quarantine);
        }
    }

    /// Takes the names whose quarantine is over.
    pub fn take_due(&mut self, now: Instant) -> Vec<String> {
        let due: Vec<String> = self
            .due
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(name, _)| name.clone())
            .collect();
        for name in &due {
            self.due.remove(name);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus, Taint};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    use crate::pod::{PodSpec, PodStatus};

    fn pod(name: &str, phase: &str, created: i64, node: &str) -> Arc<Pod> {
        let mut pod = Pod {
            spec: Some(PodSpec {
                node_name: (!node.is_empty()).then(|| node.to_string()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        pod.metadata.name = Some(name.into());
        pod.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created).unwrap()));
        Arc::new(pod)
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<&str> {
        pods.iter()
            .map(|p| p.metadata.name.as_deref().unwrap())
            .collect()
    }

    fn nodes(names: &[&str]) -> HashMap<String, Arc<Node>> {
        names
            .iter()
            .map(|n| (n.to_string(), Arc::new(Node::default())))
            .collect()
    }

    #[test]
    fn terminated_pods_beyond_threshold_oldest_first() {
        let pods = vec![
            pod("c", "Succeeded", 30, ""),
            pod("a", "Failed", 10, ""),
            pod("running", "Running", 1, ""),
            pod("b", "Succeeded", 20, ""),
            pod("d", "Failed", 40, ""),
        ];
        assert_eq!(names(&terminated_beyond_threshold(&pods, 2)), ["a", "b"]);
        assert!(terminated_beyond_threshold(&pods, 4).is_empty());
        assert!(terminated_beyond_threshold(&pods, 0).is_empty());
    }

    #[test]
    fn evicted_pods_go_first_and_names_break_ties() {
        let mut evicted = (*pod("z", "Failed", 50, "")).clone();
        evicted.status.as_mut().unwrap().reason = Some("Evicted".into());
        let pods = vec![
            pod("b", "Succeeded", 10, ""),
            pod("a", "Succeeded", 10, ""),
            Arc::new(evicted),
        ];
        assert_eq!(names(&terminated_beyond_threshold(&pods, 1)), ["z", "a"]);
    }

    #[test]
    fn orphans_are_pods_on_missing_nodes() {
        let pods = vec![
            pod("on-gone", "Running", 1, "gone"),
            pod("on-here", "Running", 1, "here"),
            pod("unbound", "Pending", 1, ""),
        ];
        let missing = missing_nodes(&pods, &nodes(&["here"]));
        assert_eq!(missing, HashSet::from(["gone".to_string()]));
        assert_eq!(names(&orphaned(&pods, &missing)), ["on-gone"]);
    }

    #[test]
    fn unscheduled_terminating_pods() {
        let mut terminating = (*pod("t", "Pending", 1, "")).clone();
        terminating.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        let mut bound = terminating.clone();
        bound.metadata.name = Some("bound".into());
        bound.spec.as_mut().unwrap().node_name = Some("n".into());
        let pods = vec![
            Arc::new(terminating),
            Arc::new(bound),
            pod("p", "Pending", 1, ""),
        ];
        assert_eq!(names(&unscheduled_terminating(&pods)), ["t"]);
    }

    #[test]
    fn terminating_on_out_of_service_nodes() {
        let mut terminating = (*pod("t", "Running", 1, "oos")).clone();
        terminating.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        let node = Node {
            spec: Some(NodeSpec {
                taints: Some(vec![Taint {
                    key: "node.kubernetes.io/out-of-service".into(),
                    effect: "NoExecute".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: "False".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let all = HashMap::from([("oos".to_string(), Arc::new(node))]);
        let pods = vec![Arc::new(terminating)];
        assert_eq!(names(&terminating_out_of_service(&pods, &all)), ["t"]);
        assert!(terminating_out_of_service(&pods, &nodes(&["oos"])).is_empty());
    }

    #[test]
    fn quarantine_holds_names_until_due() {
        let start = Instant::now();
        let mut q = Quarantine::default();
        let q_time = Duration::from_secs(40);
        q.add(HashSet::from(["n".to_string()]), start, q_time);
        assert!(q.take_due(start + Duration::from_secs(20)).is_empty());
        // A second sighting does not push the check back.
        q.add(
            HashSet::from(["n".to_string()]),
            start + Duration::from_secs(20),
            q_time,
        );
        assert_eq!(q.take_due(start + q_time), ["n"]);
        assert!(q.take_due(start + q_time * 3).is_empty());
    }
}
