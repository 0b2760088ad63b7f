//! Pods nominated to nodes by preemption (upstream `nominator`): later pods of lower priority must leave
//! room for them on those nodes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::framework::{Nominator, PodInfo};

#[derive(Default)]
struct Nominations {
    by_node: HashMap<String, Vec<Arc<PodInfo>>>,
    node_of: HashMap<String, String>,
}

/// Nominations by node, shared by the queue and the scheduling cycle.
#[derive(Default)]
pub struct PodNominator {
    inner: RwLock<Nominations>,
}

impl PodNominator {
    /// Nominates `pod` to `node`, replacing an earlier nomination.
    pub fn add(&self, pod: Arc<PodInfo>, node: &str) {
        self.delete(pod.uid());
        if node.is_empty() {
            return;
        }
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner
            .node_of
            .insert(pod.uid().to_string(), node.to_string());
        inner.by_node.entry(node.to_string()).or_default().push(pod);
    }

    /// Records the nomination in the pod's status, if it has one.
    pub fn add_from_status(&self, pod: &Arc<PodInfo>) {
        let nominated = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .filter(|n| !n.is_empty());
        if let Some(node) = nominated {
            self.add(pod.clone(), node);
        }
    }

    /// Drops the nomination of the pod with `uid`.
    pub fn delete(&self, uid: &str) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some(node) = inner.node_of.remove(uid)
            && let Some(pods) = inner.by_node.get_mut(&node)
        {
            pods.retain(|p| p.uid() != uid);
            if pods.is_empty() {
                inner.by_node.remove(&node);
            }
        }
    }

    /// The node the pod with `uid` is nominated to.
    pub fn nominated_node(&self, uid: &str) -> Option<String> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.node_of.get(uid).cloned()
    }
}

impl Nominator for PodNominator {
    fn nominated_pods_for_node(&self, node: &str) -> Vec<Arc<PodInfo>> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.by_node.get(node).cloned().unwrap_or_default()
    }
}
