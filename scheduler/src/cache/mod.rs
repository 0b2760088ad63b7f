//! The scheduler's view of nodes and the pods on them, including pods it has assumed onto a node before the
//! binding is observed (upstream `pkg/scheduler/backend/cache`).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;

use crate::framework::node_info::ImageStateSummary;
use crate::framework::{NodeInfo, PodInfo, Snapshot};

/// How long an assumed pod whose binding finished may stay unconfirmed by the informer before the cache
/// forgets it (the binding's watch event normally arrives within milliseconds).
pub const ASSUMED_POD_TTL: Duration = Duration::from_secs(30);

#[derive(Clone, Debug)]
struct PodState {
    pod: Arc<PodInfo>,
    node: String,
    assumed: bool,
    /// Set when the binding finished, for assumed pods: the time after which the assumption expires.
    deadline: Option<Instant>,
}

/// Why a cache operation was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CacheError {
    /// The pod is already in the cache.
    #[error("pod {0} is in the cache, so can't be assumed")]
    AlreadyPresent(String),
    /// The pod is not assumed.
    #[error("pod {0} wasn't assumed so cannot be forgotten")]
    NotAssumed(String),
}

/// Nodes and their pods, with assumptions.
#[derive(Default)]
pub struct Cache {
    nodes: BTreeMap<String, Arc<NodeInfo>>,
    pods: HashMap<String, PodState>,
    images: HashMap<String, (i64, HashSet<String>)>,
}

impl Cache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn node_mut(&mut self, name: &str) -> &mut NodeInfo {
        Arc::make_mut(self.nodes.entry(name.to_string()).or_default())
    }

    /// Adds or replaces a node.
    pub fn add_or_update_node(&mut self, node: Arc<Node>) {
        let name = node.metadata.name.clone().unwrap_or_default();
        self.remove_node_images(&name);
        let mut summaries = HashMap::new();
        for image in node.status.iter().flat_map(|s| s.images.iter().flatten()) {
            let size = image.size_bytes.unwrap_or(0);
            for image_name in image.names.iter().flatten() {
                let state = self
                    .images
                    .entry(image_name.clone())
                    .or_insert_with(|| (size, HashSet::new()));
                state.1.insert(name.clone());
                summaries.insert(
                    image_name.clone(),
                    ImageStateSummary {
                        size,
                        num_nodes: state.1.len(),
                    },
                );
            }
        }
        let info = self.node_mut(&name);
        info.set_node(node);
        info.image_states = summaries;
        info.generation += 1;
    }

    fn remove_node_images(&mut self, name: &str) {
        let Some(info) = self.nodes.get(name) else {
            return;
        };
        for image in info.image_states.keys() {
            if let Some(state) = self.images.get_mut(image) {
                state.1.remove(name);
                if state.1.is_empty() {
                    self.images.remove(image);
                }
            }
        }
    }

    /// Removes a node; its pods stay accounted until they are deleted.
    pub fn remove_node(&mut self, name: &str) {
        self.remove_node_images(name);
        let has_pods = self.nodes.get(name).is_some_and(|n| !n.pods.is_empty());
        if has_pods {
            self.node_mut(name).clear_node();
        } else {
            self.nodes.remove(name);
        }
    }

    /// Assumes `pod` runs on `node` before its binding is confirmed.
    pub fn assume_pod(&mut self, pod: Arc<PodInfo>, node: &str) -> Result<(), CacheError> {
        let uid = pod.uid().to_string();
        if self.pods.contains_key(&uid) {
            return Err(CacheError::AlreadyPresent(pod.key()));
        }
        self.node_mut(node).add_pod(pod.clone());
        self.pods.insert(
            uid,
            PodState {
                pod,
                node: node.to_string(),
                assumed: true,
                deadline: None,
            },
        );
        Ok(())
    }

    /// Starts the expiry clock of an assumed pod once its binding call returned.
    pub fn finish_binding(&mut self, uid: &str, now: Instant) {
        if let Some(state) = self.pods.get_mut(uid).filter(|s| s.assumed) {
            state.deadline = Some(now + ASSUMED_POD_TTL);
        }
    }

    /// Drops an assumption (scheduling or binding failed).
    pub fn forget_pod(&mut self, uid: &str) -> Result<(), CacheError> {
        match self.pods.get(uid) {
            Some(state) if state.assumed => {
                let state = self
                    .pods
                    .remove(uid)
                    .ok_or_else(|| CacheError::NotAssumed(uid.into()))?;
                self.remove_from_node(&state);
                Ok(())
            }
            _ => Err(CacheError::NotAssumed(uid.to_string())),
        }
    }

    fn remove_from_node(&mut self, state: &PodState) {
        let now_empty = {
            let info = self.node_mut(&state.node);
            info.remove_pod(state.pod.uid());
            info.node().is_none() && info.pods.is_empty()
        };
        if now_empty {
            self.nodes.remove(&state.node);
        }
    }

    /// Records a bound pod seen by the informer, confirming an assumption if there was one.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        let node = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        if let Some(old) = self.pods.remove(pod.uid()) {
            self.remove_from_node(&old);
        }
        self.node_mut(&node).add_pod(pod.clone());
        self.pods.insert(
            pod.uid().to_string(),
            PodState {
                pod,
                node,
                assumed: false,
                deadline: None,
            },
        );
    }

    /// Forgets a deleted pod.
    pub fn remove_pod(&mut self, uid: &str) {
        if let Some(state) = self.pods.remove(uid) {
            self.remove_from_node(&state);
        }
    }

    /// Whether the pod is assumed and not yet confirmed.
    pub fn is_assumed(&self, uid: &str) -> bool {
        self.pods.get(uid).is_some_and(|s| s.assumed)
    }

    /// Forgets assumed pods whose binding finished more than [`ASSUMED_POD_TTL`] ago without the informer
    /// confirming them; returns how many.
    pub fn cleanup_expired(&mut self, now: Instant) -> usize {
        let expired: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, s)| s.assumed && s.deadline.is_some_and(|d| d <= now))
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in &expired {
            tracing::warn!(pod = %uid, "assumed pod expired without its binding being observed");
            if let Some(state) = self.pods.remove(uid) {
                self.remove_from_node(&state);
            }
        }
        expired.len()
    }

    /// An immutable view for one scheduling cycle.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::new(self.nodes.values().cloned().collect())
    }

    /// How many nodes are known.
    pub fn node_count(&self) -> usize {
        self.nodes.values().filter(|n| n.node().is_some()).count()
    }

    /// How many pods are known (assumed ones included).
    pub fn pod_count(&self) -> usize {
        self.pods.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{make_node, make_pod};

    #[test]
    fn assumed_pods_count_until_forgotten_or_expired_and_confirmation_keeps_them() {
        let mut cache = Cache::new();
        cache.add_or_update_node(Arc::new(
            make_node("n1")
                .capacity(&[("cpu", "4"), ("pods", "10")])
                .obj(),
        ));
        let pod = make_pod("p1").req(&[("cpu", "1")]).info();
        cache.assume_pod(pod.clone(), "n1").unwrap();
        assert_eq!(
            cache.assume_pod(pod.clone(), "n1"),
            Err(CacheError::AlreadyPresent("default/p1".into()))
        );
        let requested = |cache: &Cache| cache.snapshot().get("n1").unwrap().requested.milli_cpu;
        assert_eq!(requested(&cache), 1000);
        cache.forget_pod("p1").unwrap();
        assert_eq!(requested(&cache), 0);

        let now = Instant::now();
        cache.assume_pod(pod.clone(), "n1").unwrap();
        cache.finish_binding("p1", now);
        assert_eq!(cache.cleanup_expired(now), 0);
        assert_eq!(cache.cleanup_expired(now + ASSUMED_POD_TTL), 1);
        assert_eq!(requested(&cache), 0);

        cache.assume_pod(pod, "n1").unwrap();
        let bound = make_pod("p1").req(&[("cpu", "1")]).node("n1").info();
        cache.add_pod(bound);
        assert!(!cache.is_assumed("p1"));
        assert_eq!(cache.cleanup_expired(now + ASSUMED_POD_TTL * 2), 0);
        assert_eq!(requested(&cache), 1000);
        assert!(cache.forget_pod("p1").is_err());
        cache.remove_pod("p1");
        assert_eq!(requested(&cache), 0);
    }

    #[test]
    fn pods_seen_before_their_node_are_kept_and_nodes_without_objects_are_not_in_snapshots() {
        let mut cache = Cache::new();
        cache.add_pod(make_pod("p1").req(&[("cpu", "1")]).node("n1").info());
        assert_eq!(cache.snapshot().len(), 0);
        cache.add_or_update_node(Arc::new(make_node("n1").obj()));
        assert_eq!(cache.snapshot().get("n1").unwrap().pods.len(), 1);
        cache.remove_node("n1");
        assert_eq!(cache.node_count(), 0);
        cache.remove_pod("p1");
        assert_eq!(cache.pod_count(), 0);
    }

    #[test]
    fn image_states_count_the_nodes_that_have_an_image() {
        use k8s_openapi::api::core::v1::ContainerImage;
        let mut cache = Cache::new();
        for name in ["n1", "n2"] {
            let mut node = make_node(name).obj();
            node.status.get_or_insert_with(Default::default).images = Some(vec![ContainerImage {
                names: Some(vec!["busybox:1".into()]),
                size_bytes: Some(1000),
            }]);
            cache.add_or_update_node(Arc::new(node));
        }
        let snapshot = cache.snapshot();
        assert_eq!(
            snapshot.get("n2").unwrap().image_states["busybox:1"].num_nodes,
            2
        );
        cache.remove_node("n1");
        assert_eq!(cache.images["busybox:1"].1.len(), 1);
    }
}
