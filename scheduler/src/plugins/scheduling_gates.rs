//! SchedulingGates: keeps pods that carry `spec.schedulingGates` out of the active queue until every gate
//! is removed (upstream `plugins/schedulinggates`).

use k8s_openapi::api::core::v1::Pod;

use crate::framework::{
    ActionType, ClusterEvent, EventResource, Handle, Plugin, PreEnqueuePlugin, Status,
};

/// The plugin name.
pub const NAME: &str = "SchedulingGates";

/// The SchedulingGates plugin.
#[derive(Debug, Default)]
pub struct SchedulingGates;

impl SchedulingGates {
    /// Creates the plugin; it has no arguments.
    pub fn new(_handle: &Handle) -> Result<Self, String> {
        Ok(Self)
    }
}

impl Plugin for SchedulingGates {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEvent> {
        // Only the removal of the pod's own gates can admit it.
        vec![ClusterEvent::new(
            EventResource::UnscheduledPod,
            ActionType::UPDATE_POD_SCHEDULING_GATES_ELIMINATED,
        )]
    }

    fn as_pre_enqueue(&self) -> Option<&dyn PreEnqueuePlugin> {
        Some(self)
    }
}

impl PreEnqueuePlugin for SchedulingGates {
    fn pre_enqueue(&self, pod: &Pod) -> Status {
        let gates = pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduling_gates.as_deref())
            .unwrap_or_default();
        if gates.is_empty() {
            return Status::success();
        }
        // Formatted as Go's `%v` of a string slice, which users see in the pod's condition.
        let names: Vec<&str> = gates.iter().map(|g| g.name.as_str()).collect();
        Status::unresolvable(format!(
            "waiting for scheduling gates: [{}]",
            names.join(" ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PodSchedulingGate;

    use super::*;
    use crate::framework::{Code, StaticListers};
    use crate::testing::make_pod;

    fn gated(names: &[&str]) -> Pod {
        make_pod("p")
            .with_spec(|s| {
                s.scheduling_gates = Some(
                    names
                        .iter()
                        .map(|n| PodSchedulingGate {
                            name: n.to_string(),
                        })
                        .collect(),
                )
            })
            .obj()
    }

    #[test]
    fn pre_enqueue_gates_pods_with_scheduling_gates() {
        let plugin = SchedulingGates::new(&Handle::for_tests(StaticListers::default())).unwrap();
        let cases = [
            (
                "pod does not carry scheduling gates",
                make_pod("p").obj(),
                None,
            ),
            ("empty gate list", gated(&[]), None),
            (
                "pod carrying scheduling gates",
                gated(&["foo", "bar"]),
                Some("waiting for scheduling gates: [foo bar]"),
            ),
        ];
        for (name, pod, want) in cases {
            let status = plugin.pre_enqueue(&pod);
            match want {
                None => assert!(status.is_success(), "{name}: {status}"),
                Some(message) => {
                    assert_eq!(status.code(), Code::UnschedulableAndUnresolvable, "{name}");
                    assert_eq!(status.message(), message, "{name}");
                }
            }
        }
    }

    #[test]
    fn registers_gate_removal_only() {
        let events = SchedulingGates.events_to_register();
        assert_eq!(
            events,
            [ClusterEvent::new(
                EventResource::UnscheduledPod,
                ActionType::UPDATE_POD_SCHEDULING_GATES_ELIMINATED
            )]
        );
        assert!(SchedulingGates.as_pre_enqueue().is_some());
        assert!(SchedulingGates.as_filter().is_none());
    }
}
