//! Informer events into the cache and the queue (upstream `eventhandlers.go`): unscheduled pods of our
//! profiles go to the queue, bound pods and nodes to the cache, and changes that may let waiting pods fit
//! move them back to the active queue.

use std::sync::Arc;
use std::time::Instant;

use component_base::informer::{InformerEvent, SharedInformer, Watched};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::{CSINode, StorageClass};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Scheduler;
use super::listers::InformerListers;
use crate::framework::{ActionType, ClusterEvent, EventResource, PodInfo};

fn assigned(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

/// What changed on a node that could let a pod fit (upstream `nodeSchedulingPropertiesChange`).
pub fn node_update_action(old: &Node, new: &Node) -> Option<ActionType> {
    let mut action = ActionType(0);
    let spec = |n: &Node| n.spec.clone().unwrap_or_default();
    let status = |n: &Node| n.status.clone().unwrap_or_default();
    if status(old).allocatable != status(new).allocatable {
        action = action.or(ActionType::UPDATE_NODE_ALLOCATABLE);
    }
    if old.metadata.labels != new.metadata.labels {
        action = action.or(ActionType::UPDATE_NODE_LABEL);
    }
    if spec(old).taints != spec(new).taints || spec(old).unschedulable != spec(new).unschedulable {
        action = action.or(ActionType::UPDATE_NODE_TAINT);
    }
    let conditions = |n: &Node| -> Vec<(String, String)> {
        status(n)
            .conditions
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.type_, c.status))
            .collect()
    };
    if conditions(old) != conditions(new) {
        action = action.or(ActionType::UPDATE_NODE_CONDITION);
    }
    if old.metadata.annotations != new.metadata.annotations {
        action = action.or(ActionType::UPDATE_NODE_ANNOTATION);
    }
    (action.0 != 0).then_some(action)
}

/// What changed on a bound pod that could let another pod fit.
pub fn assigned_pod_update_action(old: &PodInfo, new: &PodInfo) -> Option<ActionType> {
    let mut action = ActionType(0);
    if old.pod.metadata.labels != new.pod.metadata.labels {
        action = action.or(ActionType::UPDATE_POD_LABEL);
    }
    let (o, n) = (&old.requests, &new.requests);
    if n.milli_cpu < o.milli_cpu || n.memory < o.memory || n.ephemeral_storage < o.ephemeral_storage
    {
        action = action.or(ActionType::UPDATE_POD_SCALE_DOWN);
    }
    (action.0 != 0).then_some(action)
}

impl Scheduler {
    fn move_on(&self, resource: EventResource, action: ActionType) {
        self.queue
            .move_all_to_active_or_backoff(ClusterEvent::new(resource, action), Instant::now());
    }

    fn on_pod(&self, event: InformerEvent<Pod>) {
        match event {
            InformerEvent::Added(pod) => {
                if assigned(&pod) {
                    self.cache().add_pod(Arc::new(PodInfo::new(pod)));
                    self.move_on(EventResource::AssignedPod, ActionType::ADD);
                } else if self.responsible_for(&pod) {
                    self.queue.add(Arc::new(PodInfo::new(pod)), Instant::now());
                }
            }
            InformerEvent::Updated { old, new } => {
                if assigned(&new) {
                    let new_info = Arc::new(PodInfo::new(new));
                    self.cache().add_pod(new_info.clone());
                    if !assigned(&old) {
                        self.queue.delete(new_info.uid());
                        self.move_on(EventResource::AssignedPod, ActionType::ADD);
                    } else if let Some(action) =
                        assigned_pod_update_action(&PodInfo::new(old), &new_info)
                    {
                        self.move_on(EventResource::AssignedPod, action);
                    }
                } else if self.responsible_for(&new) {
                    self.queue
                        .update(Arc::new(PodInfo::new(new)), Instant::now());
                }
            }
            InformerEvent::Deleted(pod) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                if assigned(&pod) {
                    self.cache().remove_pod(&uid);
                    self.move_on(EventResource::AssignedPod, ActionType::DELETE);
                }
                self.queue.delete(&uid);
            }
        }
    }

    fn on_node(&self, event: InformerEvent<Node>) {
        match event {
            InformerEvent::Added(node) => {
                self.cache().add_or_update_node(node);
                self.move_on(EventResource::Node, ActionType::ADD);
            }
            InformerEvent::Updated { old, new } => {
                let action = node_update_action(&old, &new);
                self.cache().add_or_update_node(new);
                if let Some(action) = action {
                    self.move_on(EventResource::Node, action);
                }
            }
            InformerEvent::Deleted(node) => {
                self.cache()
                    .remove_node(node.metadata.name.as_deref().unwrap_or_default());
                self.move_on(EventResource::Node, ActionType::DELETE);
            }
        }
    }

    fn on_other<K>(&self, resource: EventResource, event: &InformerEvent<K>) {
        let action = match event {
            InformerEvent::Added(_) => ActionType::ADD,
            InformerEvent::Updated { .. } => ActionType::UPDATE_OTHER,
            InformerEvent::Deleted(_) => ActionType::DELETE,
        };
        self.move_on(resource, action);
    }

    /// Starts one task per informer feeding the handlers.
    pub(super) fn spawn_event_handlers(
        self: Arc<Self>,
        listers: &InformerListers,
        stop: CancellationToken,
    ) -> Vec<JoinHandle<()>> {
        let mut tasks = vec![
            self.clone()
                .spawn_handler(&self.pods, stop.clone(), |s, e| s.on_pod(e)),
            self.clone()
                .spawn_handler(&self.nodes, stop.clone(), |s, e| s.on_node(e)),
        ];
        tasks.push(self.clone().spawn_handler(
            &listers.volumes,
            stop.clone(),
            |s, e: InformerEvent<PersistentVolume>| s.on_other(EventResource::PersistentVolume, &e),
        ));
        tasks.push(self.clone().spawn_handler(
            &listers.claims,
            stop.clone(),
            |s, e: InformerEvent<PersistentVolumeClaim>| {
                s.on_other(EventResource::PersistentVolumeClaim, &e)
            },
        ));
        tasks.push(self.clone().spawn_handler(
            &listers.storage_classes,
            stop.clone(),
            |s, e: InformerEvent<StorageClass>| s.on_other(EventResource::StorageClass, &e),
        ));
        tasks.push(self.clone().spawn_handler(
            &listers.csi_nodes,
            stop,
            |s, e: InformerEvent<CSINode>| s.on_other(EventResource::CsiNode, &e),
        ));
        tasks
    }

    fn spawn_handler<K: Watched>(
        self: Arc<Self>,
        informer: &SharedInformer<K>,
        stop: CancellationToken,
        handle: impl Fn(&Scheduler, InformerEvent<K>) + Send + 'static,
    ) -> JoinHandle<()> {
        let mut events = informer.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    event = events.recv() => match event {
                        Some(event) => handle(&self, event),
                        None => return,
                    },
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{make_node, make_pod};

    #[test]
    fn node_changes_map_to_upstream_actions() {
        let old = make_node("n").capacity(&[("cpu", "1")]).obj();
        assert_eq!(node_update_action(&old, &old), None);
        let relabelled = make_node("n")
            .capacity(&[("cpu", "1")])
            .label("zone", "a")
            .obj();
        assert_eq!(
            node_update_action(&old, &relabelled),
            Some(ActionType::UPDATE_NODE_LABEL)
        );
        let cordoned = make_node("n")
            .capacity(&[("cpu", "1")])
            .unschedulable()
            .obj();
        assert_eq!(
            node_update_action(&old, &cordoned),
            Some(ActionType::UPDATE_NODE_TAINT)
        );
        let bigger = make_node("n").capacity(&[("cpu", "2")]).obj();
        assert_eq!(
            node_update_action(&old, &bigger),
            Some(ActionType::UPDATE_NODE_ALLOCATABLE)
        );
    }

    #[test]
    fn bound_pod_changes_that_free_room_or_relabel_count() {
        let old = make_pod("p").req(&[("cpu", "1")]).info();
        assert_eq!(assigned_pod_update_action(&old, &old), None);
        let smaller = make_pod("p").req(&[("cpu", "500m")]).info();
        assert_eq!(
            assigned_pod_update_action(&old, &smaller),
            Some(ActionType::UPDATE_POD_SCALE_DOWN)
        );
        let relabelled = make_pod("p").req(&[("cpu", "1")]).label("a", "b").info();
        assert_eq!(
            assigned_pod_update_action(&old, &relabelled),
            Some(ActionType::UPDATE_POD_LABEL)
        );
    }
}
