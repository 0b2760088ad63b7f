//! Cluster events that can make an unschedulable pod schedulable (upstream `framework.ClusterEvent`).
//! Plugins register the events that could change their verdict; the queue moves a pod back to the active
//! queue only on an event one of the plugins that rejected it registered.

/// The kind of object an event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventResource {
    /// A pod not yet bound to a node.
    UnscheduledPod,
    /// A pod bound to a node.
    AssignedPod,
    /// A node.
    Node,
    /// A PersistentVolume.
    PersistentVolume,
    /// A PersistentVolumeClaim.
    PersistentVolumeClaim,
    /// A StorageClass.
    StorageClass,
    /// A CSINode.
    CsiNode,
    /// A Namespace.
    Namespace,
    /// Anything: matches every resource.
    WildCard,
}

/// What happened, as a bit set so a registration can cover several actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActionType(pub u32);

impl ActionType {
    /// Created.
    pub const ADD: Self = Self(1);
    /// Deleted.
    pub const DELETE: Self = Self(1 << 1);
    /// A node's allocatable changed.
    pub const UPDATE_NODE_ALLOCATABLE: Self = Self(1 << 2);
    /// A node's labels changed.
    pub const UPDATE_NODE_LABEL: Self = Self(1 << 3);
    /// A node's taints changed (or it became schedulable).
    pub const UPDATE_NODE_TAINT: Self = Self(1 << 4);
    /// A node's conditions changed.
    pub const UPDATE_NODE_CONDITION: Self = Self(1 << 5);
    /// A node's annotations changed.
    pub const UPDATE_NODE_ANNOTATION: Self = Self(1 << 6);
    /// A pod's labels changed.
    pub const UPDATE_POD_LABEL: Self = Self(1 << 7);
    /// A pod's requests went down.
    pub const UPDATE_POD_SCALE_DOWN: Self = Self(1 << 8);
    /// A pod's tolerations changed.
    pub const UPDATE_POD_TOLERATIONS: Self = Self(1 << 9);
    /// A pod's scheduling gates were removed.
    pub const UPDATE_POD_SCHEDULING_GATES_ELIMINATED: Self = Self(1 << 10);
    /// Any other update.
    pub const UPDATE_OTHER: Self = Self(1 << 11);
    /// Any update.
    pub const UPDATE: Self = Self((1 << 12) - 1 - 1 - (1 << 1));
    /// Anything.
    pub const ALL: Self = Self(u32::MAX);

    /// Both sets of actions.
    pub const fn or(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether the two sets share an action.
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }
}

/// One event: a resource kind and what happened to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterEvent {
    /// The object's kind.
    pub resource: EventResource,
    /// What happened.
    pub action: ActionType,
}

impl ClusterEvent {
    /// An event.
    pub const fn new(resource: EventResource, action: ActionType) -> Self {
        Self { resource, action }
    }

    /// Whether a registration for `self` covers the event `other`.
    pub fn covers(&self, other: &ClusterEvent) -> bool {
        (self.resource == EventResource::WildCard || self.resource == other.resource)
            && self.action.intersects(other.action)
    }

    /// A label for metrics, as upstream's event labels (`NodeAdd`, `AssignedPodDelete`, ...).
    pub fn label(&self) -> String {
        let resource = match self.resource {
            EventResource::UnscheduledPod => "UnscheduledPod",
            EventResource::AssignedPod => "AssignedPod",
            EventResource::Node => "Node",
            EventResource::PersistentVolume => "PersistentVolume",
            EventResource::PersistentVolumeClaim => "PersistentVolumeClaim",
            EventResource::StorageClass => "StorageClass",
            EventResource::CsiNode => "CSINode",
            EventResource::Namespace => "Namespace",
            EventResource::WildCard => "WildCard",
        };
        let action = match self.action {
            ActionType::ADD => "Add",
            ActionType::DELETE => "Delete",
            ActionType::UPDATE_NODE_ALLOCATABLE => "UpdateNodeAllocatable",
            ActionType::UPDATE_NODE_LABEL => "UpdateNodeLabel",
            ActionType::UPDATE_NODE_TAINT => "UpdateNodeTaint",
            ActionType::UPDATE_NODE_CONDITION => "UpdateNodeCondition",
            ActionType::UPDATE_NODE_ANNOTATION => "UpdateNodeAnnotation",
            ActionType::UPDATE_POD_LABEL => "UpdatePodLabel",
            ActionType::UPDATE_POD_SCALE_DOWN => "UpdatePodScaleDown",
            ActionType::UPDATE_POD_TOLERATIONS => "UpdatePodTolerations",
            ActionType::UPDATE_POD_SCHEDULING_GATES_ELIMINATED => {
                "UpdatePodSchedulingGatesEliminated"
            }
            _ => "Update",
        };
        format!("{resource}{action}")
    }
}

/// Event labels for pods entering the queue other than through a cluster event.
pub mod labels {
    /// A new unscheduled pod was added.
    pub const POD_ADD: &str = "PodAdd";
    /// Periodic flush of pods unschedulable for too long.
    pub const UNSCHEDULABLE_TIMEOUT: &str = "UnschedulableTimeout";
    /// Backoff completed.
    pub const BACKOFF_COMPLETE: &str = "BackoffComplete";
    /// The attempt failed and the pod was put back.
    pub const SCHEDULE_ATTEMPT_FAILURE: &str = "ScheduleAttemptFailure";
    /// A pod was updated.
    pub const POD_UPDATE: &str = "PodUpdate";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_cover_matching_events_only() {
        let node_changes = ClusterEvent::new(
            EventResource::Node,
            ActionType::ADD.or(ActionType::UPDATE_NODE_TAINT),
        );
        assert!(node_changes.covers(&ClusterEvent::new(EventResource::Node, ActionType::ADD)));
        assert!(!node_changes.covers(&ClusterEvent::new(
            EventResource::Node,
            ActionType::UPDATE_NODE_LABEL
        )));
        assert!(!node_changes.covers(&ClusterEvent::new(
            EventResource::AssignedPod,
            ActionType::ADD
        )));
        let any = ClusterEvent::new(EventResource::WildCard, ActionType::ALL);
        assert!(any.covers(&ClusterEvent::new(
            EventResource::CsiNode,
            ActionType::DELETE
        )));
        assert!(ActionType::UPDATE.intersects(ActionType::UPDATE_NODE_LABEL));
        assert!(!ActionType::UPDATE.intersects(ActionType::ADD));
        assert!(!ActionType::UPDATE.intersects(ActionType::DELETE));
        assert_eq!(
            ClusterEvent::new(EventResource::Node, ActionType::ADD).label(),
            "NodeAdd"
        );
    }
}
