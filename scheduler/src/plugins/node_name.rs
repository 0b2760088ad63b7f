//! NodeName: a pod that names its node (`spec.nodeName`) fits only that node (upstream
//! `plugins/nodename`).

use std::collections::BTreeSet;

use crate::framework::{
    ActionType, ClusterEvent, CycleState, EventResource, FilterPlugin, Handle, NodeInfo, Plugin,
    PodInfo, PreFilterPlugin, PreFilterResult, Snapshot, Status,
};

/// The plugin name.
pub const NAME: &str = "NodeName";
/// The reason for a node other than the requested one.
pub const ERR_REASON: &str = "node(s) didn't match the requested node name";

/// The NodeName plugin.
#[derive(Debug, Default)]
pub struct NodeName;

impl NodeName {
    /// Creates the plugin; it has no arguments.
    pub fn new(_handle: &Handle) -> Result<Self, String> {
        Ok(Self)
    }
}

fn requested_node(pod: &PodInfo) -> Option<&str> {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|name| !name.is_empty())
}

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEvent> {
        // Only a new node can be the requested one.
        vec![ClusterEvent::new(EventResource::Node, ActionType::ADD)]
    }

    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }

    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for NodeName {
    fn pre_filter(
        &self,
        _state: &mut CycleState,
        pod: &PodInfo,
        _snapshot: &Snapshot,
    ) -> (Option<PreFilterResult>, Status) {
        let result = requested_node(pod).map(|name| PreFilterResult {
            node_names: Some(BTreeSet::from([name.to_string()])),
        });
        (result, Status::success())
    }
}

impl FilterPlugin for NodeName {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        match requested_node(pod) {
            Some(name) if name != node.name() => Status::unresolvable(ERR_REASON),
            _ => Status::success(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::testing::{make_node, make_pod};

    #[test]
    fn filter_matches_the_requested_node_name() {
        let cases = [
            ("no host specified", make_pod("p").info(), None),
            ("host matches", make_pod("p").node("foo").info(), None),
            (
                "host doesn't match",
                make_pod("p").node("bar").info(),
                Some(ERR_REASON),
            ),
        ];
        let node = make_node("foo").info(vec![]);
        for (name, pod, want) in cases {
            let status = NodeName.filter(&CycleState::default(), &pod, &node);
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
    fn pre_filter_narrows_to_the_requested_node() {
        let mut state = CycleState::default();
        let snapshot = Snapshot::default();
        let (result, status) =
            NodeName.pre_filter(&mut state, &make_pod("p").node("foo").info(), &snapshot);
        assert!(status.is_success());
        assert_eq!(
            result,
            Some(PreFilterResult {
                node_names: Some(BTreeSet::from(["foo".to_string()]))
            })
        );
        let (result, status) = NodeName.pre_filter(&mut state, &make_pod("p").info(), &snapshot);
        assert!(status.is_success());
        assert_eq!(result, None);
    }
}
