//! An immutable view of all NodeInfos for one scheduling cycle (upstream `cache.Snapshot`).

use std::collections::HashMap;
use std::sync::Arc;

use super::node_info::NodeInfo;

/// The nodes as they were when the cycle started, in a stable order.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    node_infos: Vec<Arc<NodeInfo>>,
    index: HashMap<String, usize>,
    with_affinity: Vec<usize>,
    with_required_anti_affinity: Vec<usize>,
}

impl Snapshot {
    /// A snapshot of `node_infos` (only those with a node object count).
    pub fn new(node_infos: Vec<Arc<NodeInfo>>) -> Self {
        let node_infos: Vec<_> = node_infos
            .into_iter()
            .filter(|n| n.node().is_some())
            .collect();
        let index = node_infos
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name().to_string(), i))
            .collect();
        let with_affinity = positions(&node_infos, |n| !n.pods_with_affinity.is_empty());
        let with_required_anti_affinity = positions(&node_infos, |n| {
            !n.pods_with_required_anti_affinity.is_empty()
        });
        Self {
            node_infos,
            index,
            with_affinity,
            with_required_anti_affinity,
        }
    }

    /// All nodes.
    pub fn nodes(&self) -> &[Arc<NodeInfo>] {
        &self.node_infos
    }

    /// The node named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<NodeInfo>> {
        self.index.get(name).map(|i| &self.node_infos[*i])
    }

    /// Nodes with at least one pod that has pod (anti-)affinity.
    pub fn nodes_with_affinity(&self) -> impl Iterator<Item = &Arc<NodeInfo>> {
        self.with_affinity.iter().map(|i| &self.node_infos[*i])
    }

    /// Nodes with at least one pod that has required pod anti-affinity.
    pub fn nodes_with_required_anti_affinity(&self) -> impl Iterator<Item = &Arc<NodeInfo>> {
        self.with_required_anti_affinity
            .iter()
            .map(|i| &self.node_infos[*i])
    }

    /// How many nodes there are.
    pub fn len(&self) -> usize {
        self.node_infos.len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.node_infos.is_empty()
    }
}

fn positions(nodes: &[Arc<NodeInfo>], keep: impl Fn(&NodeInfo) -> bool) -> Vec<usize> {
    nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| keep(n))
        .map(|(i, _)| i)
        .collect()
}
