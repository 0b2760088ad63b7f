//! What the scheduler knows about one node: the node, its pods, and the totals the plugins check
//! (upstream `framework.NodeInfo`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};

use super::pod_info::PodInfo;
use super::resource::Resource;

/// The wildcard host IP: a port bound on it conflicts with the same port on every IP.
pub const DEFAULT_BIND_ALL_HOST_IP: &str = "0.0.0.0";

/// A (protocol, port) pair used on a host IP.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProtocolPort {
    /// TCP, UDP or SCTP.
    pub protocol: String,
    /// The host port.
    pub port: i32,
}

/// Host ports in use on a node, by host IP (upstream `HostPortInfo`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostPortInfo(BTreeMap<String, HashSet<ProtocolPort>>);

/// The host IP, protocol and port a container port asks for, with upstream's defaults applied.
pub fn normalize_host_port(ip: Option<&str>, protocol: Option<&str>) -> (String, String) {
    let ip = ip
        .filter(|ip| !ip.is_empty())
        .unwrap_or(DEFAULT_BIND_ALL_HOST_IP);
    let protocol = protocol.filter(|p| !p.is_empty()).unwrap_or("TCP");
    (ip.to_string(), protocol.to_string())
}

impl HostPortInfo {
    /// Records `port` on `ip`.
    pub fn add(&mut self, ip: &str, protocol: &str, port: i32) {
        if port <= 0 {
            return;
        }
        self.0
            .entry(ip.to_string())
            .or_default()
            .insert(ProtocolPort {
                protocol: protocol.to_string(),
                port,
            });
    }

    /// Forgets `port` on `ip`.
    pub fn remove(&mut self, ip: &str, protocol: &str, port: i32) {
        if let Some(ports) = self.0.get_mut(ip) {
            ports.remove(&ProtocolPort {
                protocol: protocol.to_string(),
                port,
            });
            if ports.is_empty() {
                self.0.remove(ip);
            }
        }
    }

    /// Whether `port` on `ip` conflicts with a port in use; 0.0.0.0 conflicts with every IP.
    pub fn conflicts(&self, ip: &str, protocol: &str, port: i32) -> bool {
        if port <= 0 {
            return false;
        }
        let wanted = ProtocolPort {
            protocol: protocol.to_string(),
            port,
        };
        if ip == DEFAULT_BIND_ALL_HOST_IP {
            return self.0.values().any(|ports| ports.contains(&wanted));
        }
        [ip, DEFAULT_BIND_ALL_HOST_IP]
            .iter()
            .any(|ip| self.0.get(*ip).is_some_and(|ports| ports.contains(&wanted)))
    }

    /// How many (ip, protocol, port) entries are in use.
    pub fn len(&self) -> usize {
        self.0.values().map(HashSet::len).sum()
    }

    /// Whether no port is in use.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The host ports `pod`'s containers ask for, as (ip, protocol, port).
pub fn pod_host_ports(pod: &Pod) -> Vec<(String, String, i32)> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    spec.containers
        .iter()
        .chain(
            // Ordinary init containers have finished before the pod's containers start; only sidecars
            // hold their ports alongside them.
            spec.init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always")),
        )
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|port| *port > 0)?;
            let (ip, protocol) = normalize_host_port(p.host_ip.as_deref(), p.protocol.as_deref());
            Some((ip, protocol, port))
        })
        .collect()
}

/// How big an image is and on how many nodes it is (upstream `ImageStateSummary`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImageStateSummary {
    /// Size in bytes.
    pub size: i64,
    /// Nodes that have it.
    pub num_nodes: usize,
}

/// One node and its pods, with the totals the plugins need.
#[derive(Clone, Debug, Default)]
pub struct NodeInfo {
    node: Option<Arc<Node>>,
    /// Pods on the node, bound or assumed.
    pub pods: Vec<Arc<PodInfo>>,
    /// Pods with any pod (anti-)affinity.
    pub pods_with_affinity: Vec<Arc<PodInfo>>,
    /// Pods with required pod anti-affinity.
    pub pods_with_required_anti_affinity: Vec<Arc<PodInfo>>,
    /// Host ports in use.
    pub used_ports: HostPortInfo,
    /// Sum of the pods' requests.
    pub requested: Resource,
    /// Sum of the pods' requests with scoring defaults.
    pub non_zero_requested: Resource,
    /// The node's allocatable resources.
    pub allocatable: Resource,
    /// Images on the node, by every name they go by.
    pub image_states: HashMap<String, ImageStateSummary>,
    /// PersistentVolumeClaims (`namespace/name`) used by pods here, with how many use each.
    pub pvc_ref_counts: HashMap<String, usize>,
    /// Bumped on every change, so snapshots copy only what changed.
    pub generation: u64,
}

impl NodeInfo {
    /// A NodeInfo for `node` without pods.
    pub fn new(node: Arc<Node>) -> Self {
        let mut info = Self::default();
        info.set_node(node);
        info
    }

    /// The node, unless only its pods are known so far.
    pub fn node(&self) -> Option<&Node> {
        self.node.as_deref()
    }

    /// The node's name ("" when the node is not known).
    pub fn name(&self) -> &str {
        self.node
            .as_ref()
            .and_then(|n| n.metadata.name.as_deref())
            .unwrap_or_default()
    }

    /// The node's labels.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.node
            .as_ref()
            .and_then(|n| n.metadata.labels.as_ref())
            .unwrap_or(&EMPTY)
    }

    /// Sets or replaces the node object.
    pub fn set_node(&mut self, node: Arc<Node>) {
        self.allocatable = Resource::from_list(
            node.status
                .as_ref()
                .and_then(|status| status.allocatable.as_ref()),
        );
        self.node = Some(node);
    }

    /// Forgets the node object, keeping its pods (they may still be deleted later).
    pub fn clear_node(&mut self) {
        self.node = None;
        self.allocatable = Resource::default();
    }

    /// Adds a pod and its requests, ports and claims.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.update_totals(&pod, 1);
        if pod.has_affinity() {
            self.pods_with_affinity.push(pod.clone());
        }
        if !pod.required_anti_affinity_terms.is_empty() {
            self.pods_with_required_anti_affinity.push(pod.clone());
        }
        self.pods.push(pod);
    }

    /// Removes the pod with `uid`; false if it was not here.
    pub fn remove_pod(&mut self, uid: &str) -> bool {
        let Some(index) = self.pods.iter().position(|p| p.uid() == uid) else {
            return false;
        };
        let pod = self.pods.swap_remove(index);
        self.pods_with_affinity.retain(|p| p.uid() != uid);
        self.pods_with_required_anti_affinity
            .retain(|p| p.uid() != uid);
        self.update_totals(&pod, -1);
        true
    }

    fn update_totals(&mut self, pod: &PodInfo, sign: i64) {
        if sign > 0 {
            self.requested.add(&pod.requests);
            self.non_zero_requested.add(&pod.non_zero_requests);
        } else {
            self.requested.sub(&pod.requests);
            self.non_zero_requested.sub(&pod.non_zero_requests);
        }
        self.requested.allowed_pod_number += sign;
        for (ip, protocol, port) in pod_host_ports(&pod.pod) {
            if sign > 0 {
                self.used_ports.add(&ip, &protocol, port);
            } else {
                self.used_ports.remove(&ip, &protocol, port);
            }
        }
        for claim in pod_claim_keys(&pod.pod) {
            let count = self.pvc_ref_counts.entry(claim.clone()).or_default();
            if sign > 0 {
                *count += 1;
            } else {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.pvc_ref_counts.remove(&claim);
                }
            }
        }
        self.generation += 1;
    }
}

/// The PersistentVolumeClaims `pod` uses, as `namespace/name` (ephemeral volumes' claims included).
pub fn pod_claim_keys(pod: &Pod) -> Vec<String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|volume| {
            if let Some(claim) = &volume.persistent_volume_claim {
                Some(format!("{namespace}/{}", claim.claim_name))
            } else {
                volume
                    .ephemeral
                    .as_ref()
                    .map(|_| format!("{namespace}/{pod_name}-{}", volume.name))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports_conflict_as_upstream() {
        let mut ports = HostPortInfo::default();
        ports.add("127.0.0.1", "TCP", 80);
        assert!(ports.conflicts("127.0.0.1", "TCP", 80));
        assert!(ports.conflicts("0.0.0.0", "TCP", 80));
        assert!(!ports.conflicts("127.0.0.2", "TCP", 80));
        assert!(!ports.conflicts("127.0.0.1", "UDP", 80));
        ports.add("0.0.0.0", "UDP", 53);
        assert!(ports.conflicts("10.0.0.1", "UDP", 53));
        ports.remove("0.0.0.0", "UDP", 53);
        assert!(!ports.conflicts("10.0.0.1", "UDP", 53));
        assert_eq!(ports.len(), 1);
    }
}
