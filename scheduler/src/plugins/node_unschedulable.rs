//! NodeUnschedulable: filters out cordoned nodes (`spec.unschedulable`) unless the pod tolerates the
//! `node.kubernetes.io/unschedulable:NoSchedule` taint (upstream `plugins/nodeunschedulable`).

use k8s_openapi::api::core::v1::Taint;

use super::helper::{pod_tolerations, tolerates};
use crate::framework::{
    ActionType, ClusterEvent, CycleState, EventResource, FilterPlugin, Handle, NodeInfo, Plugin,
    PodInfo, Status,
};

/// The plugin name.
pub const NAME: &str = "NodeUnschedulable";
/// The reason for a node without a node object.
pub const ERR_REASON_UNKNOWN_CONDITION: &str = "node(s) had unknown conditions";
/// The reason for a cordoned node.
pub const ERR_REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
/// The taint a pod must tolerate to land on a cordoned node.
pub const TAINT_NODE_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// The NodeUnschedulable plugin.
#[derive(Debug)]
pub struct NodeUnschedulable {
    // Built once so Filter does not allocate a taint per node.
    unschedulable_taint: Taint,
}

impl NodeUnschedulable {
    /// Creates the plugin; it has no arguments.
    pub fn new(_handle: &Handle) -> Result<Self, String> {
        Ok(Self {
            unschedulable_taint: Taint {
                key: TAINT_NODE_UNSCHEDULABLE.to_string(),
                effect: "NoSchedule".to_string(),
                ..Default::default()
            },
        })
    }
}

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEvent> {
        vec![
            // A node added schedulable, or uncordoned.
            ClusterEvent::new(
                EventResource::Node,
                ActionType::ADD.or(ActionType::UPDATE_NODE_TAINT),
            ),
            // The pod gained the toleration.
            ClusterEvent::new(
                EventResource::UnscheduledPod,
                ActionType::UPDATE_POD_TOLERATIONS,
            ),
        ]
    }

    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl FilterPlugin for NodeUnschedulable {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(node) = node.node() else {
            return Status::unresolvable(ERR_REASON_UNKNOWN_CONDITION);
        };
        if !node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false)
        {
            return Status::success();
        }
        let tolerated = pod_tolerations(&pod.pod)
            .iter()
            .any(|t| tolerates(t, &self.unschedulable_taint));
        if tolerated {
            Status::success()
        } else {
            Status::unresolvable(ERR_REASON_UNSCHEDULABLE)
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Toleration;

    use super::*;
    use crate::framework::{Code, StaticListers};
    use crate::testing::{make_node, make_pod};

    fn plugin() -> NodeUnschedulable {
        NodeUnschedulable::new(&Handle::for_tests(StaticListers::default())).unwrap()
    }

    #[test]
    fn filter_rejects_cordoned_nodes_unless_tolerated() {
        let toleration = |key: &str, effect: &str| Toleration {
            key: Some(key.into()),
            effect: Some(effect.into()),
            operator: Some("Exists".into()),
            ..Default::default()
        };
        let cases = [
            (
                "unschedulable node, pod without tolerations",
                make_pod("p").info(),
                make_node("n").unschedulable().info(vec![]),
                Some(ERR_REASON_UNSCHEDULABLE),
            ),
            (
                "schedulable node",
                make_pod("p").info(),
                make_node("n").info(vec![]),
                None,
            ),
            (
                "unschedulable node, pod tolerates the unschedulable taint",
                make_pod("p")
                    .toleration(Toleration {
                        key: Some(TAINT_NODE_UNSCHEDULABLE.into()),
                        effect: Some("NoSchedule".into()),
                        ..Default::default()
                    })
                    .info(),
                make_node("n").unschedulable().info(vec![]),
                None,
            ),
            (
                "unschedulable node, pod tolerates every taint",
                make_pod("p")
                    .toleration(Toleration {
                        operator: Some("Exists".into()),
                        ..Default::default()
                    })
                    .info(),
                make_node("n").unschedulable().info(vec![]),
                None,
            ),
            (
                "unschedulable node, toleration for another effect",
                make_pod("p")
                    .toleration(toleration(TAINT_NODE_UNSCHEDULABLE, "NoExecute"))
                    .info(),
                make_node("n").unschedulable().info(vec![]),
                Some(ERR_REASON_UNSCHEDULABLE),
            ),
            (
                "node object not known",
                make_pod("p").info(),
                NodeInfo::default(),
                Some(ERR_REASON_UNKNOWN_CONDITION),
            ),
        ];
        let plugin = plugin();
        for (name, pod, node, want) in cases {
            let status = plugin.filter(&CycleState::default(), &pod, &node);
            match want {
                None => assert!(status.is_success(), "{name}: {status}"),
                Some(reason) => {
                    assert_eq!(status.code(), Code::UnschedulableAndUnresolvable, "{name}");
                    assert_eq!(status.reasons(), [reason], "{name}");
                }
            }
        }
    }

    #[test]
    fn registers_node_and_toleration_events() {
        let events = plugin().events_to_register();
        assert!(events[0].covers(&ClusterEvent::new(EventResource::Node, ActionType::ADD)));
        assert!(events[0].covers(&ClusterEvent::new(
            EventResource::Node,
            ActionType::UPDATE_NODE_TAINT
        )));
        assert!(!events[0].covers(&ClusterEvent::new(
            EventResource::Node,
            ActionType::UPDATE_NODE_LABEL
        )));
        assert!(events[1].covers(&ClusterEvent::new(
            EventResource::UnscheduledPod,
            ActionType::UPDATE_POD_TOLERATIONS
        )));
    }
}
