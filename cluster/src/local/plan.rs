//! The shape of a `ferrokube up` cluster, decided before anything starts: node names, addresses, pod CIDRs
//! and bridges. Every node lives on this host, so each gets an address of its own on one host bridge, and
//! pods on different nodes reach each other through the host's routes to the nodes' pod bridges.

use std::net::{IpAddr, Ipv4Addr};

use crate::Error;

/// Every network interface a cluster makes starts with this, so `ferrokube down` finds them after a crash.
pub const LINK_PREFIX: &str = "fk-up";
/// The bridge holding the control plane's and the nodes' addresses.
pub const HOST_BRIDGE: &str = "fk-up0";
/// The control plane's address: the apiserver advertises it, so pods reach it through the `kubernetes`
/// Service.
pub const CONTROL_PLANE_IP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
/// The prefix length of the node network 10.200.0.0/24.
pub const NODE_NETWORK_PREFIX: u8 = 24;
/// Pod addresses; node N gets 10.244.N.0/24, as kubeadm's node IPAM would with its default mask.
pub const CLUSTER_CIDR: &str = "10.244.0.0/16";
/// The `kube-dns` Service's cluster IP, as kubeadm's (the tenth address of 10.96.0.0/12).
pub const CLUSTER_DNS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
/// The cluster's DNS domain.
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// The most nodes one host runs: addresses 10.200.0.11 ... and pod bridges fk-up1 ... stay distinct.
pub const MAX_NODES: usize = 50;
/// The kubelets' serving port, upstream's default; each node serves on its own address.
pub const KUBELET_PORT: u16 = 10250;

/// One node of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodePlan {
    /// The node's name, `node-N`.
    pub name: String,
    /// Its InternalIP, on the host bridge.
    pub ip: Ipv4Addr,
    /// The CIDR its pods' addresses come from.
    pub pod_cidr: String,
    /// The bridge its pods are attached to.
    pub bridge: String,
}

/// A whole cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterPlan {
    /// The nodes, node-1 first.
    pub nodes: Vec<NodePlan>,
}

impl ClusterPlan {
    /// A cluster of `nodes` nodes.
    pub fn new(nodes: usize) -> Result<Self, Error> {
        if !(1..=MAX_NODES).contains(&nodes) {
            return Err(Error::InvalidArgument(format!(
                "--nodes must be between 1 and {MAX_NODES}, not {nodes}"
            )));
        }
        let nodes = (1..=nodes)
            .map(|n| NodePlan {
                name: format!("node-{n}"),
                // 1..=50 fits: 10 + n ≤ 60.
                ip: Ipv4Addr::new(10, 200, 0, 10 + n as u8),
                pod_cidr: format!("10.244.{n}.0/24"),
                bridge: format!("{LINK_PREFIX}{n}"),
            })
            .collect();
        Ok(Self { nodes })
    }

    /// The node names.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// Each node's name with its address, for the kubelets' serving certificates.
    pub fn node_ips(&self) -> Vec<(String, IpAddr)> {
        self.nodes
            .iter()
            .map(|n| (n.name.clone(), IpAddr::V4(n.ip)))
            .collect()
    }

    /// Every address the host bridge carries: the control plane's, then the nodes'.
    pub fn host_addresses(&self) -> Vec<Ipv4Addr> {
        std::iter::once(CONTROL_PLANE_IP)
            .chain(self.nodes.iter().map(|n| n.ip))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_get_distinct_addresses_cidrs_and_bridges() {
        let plan = ClusterPlan::new(3).unwrap();
        assert_eq!(plan.node_names(), ["node-1", "node-2", "node-3"]);
        let second = &plan.nodes[1];
        assert_eq!(second.ip, Ipv4Addr::new(10, 200, 0, 12));
        assert_eq!(second.pod_cidr, "10.244.2.0/24");
        assert_eq!(second.bridge, "fk-up2");
        assert_eq!(
            plan.host_addresses(),
            [
                CONTROL_PLANE_IP,
                Ipv4Addr::new(10, 200, 0, 11),
                Ipv4Addr::new(10, 200, 0, 12),
                Ipv4Addr::new(10, 200, 0, 13)
            ]
        );
        assert!(!plan.nodes.iter().any(|n| n.bridge == HOST_BRIDGE));
    }

    #[test]
    fn the_node_count_is_bounded() {
        assert!(ClusterPlan::new(0).is_err());
        assert!(ClusterPlan::new(MAX_NODES + 1).is_err());
        let last = ClusterPlan::new(MAX_NODES).unwrap().nodes.pop().unwrap();
        assert_eq!(last.ip, Ipv4Addr::new(10, 200, 0, 60));
        assert_eq!(last.bridge, format!("fk-up{MAX_NODES}"));
    }
}
