//! DynamicResources (upstream `plugins/dynamicresources`), in the default profile since DRA went GA.
//! ferrokube does not allocate ResourceClaims yet: pods without claims skip the plugin, as upstream's do;
//! pods with claims are refused with a message saying why, instead of being placed without their devices.

use crate::framework::{
    ActionType, ClusterEvent, CycleState, EventResource, Plugin, PodInfo, PreFilterPlugin,
    PreFilterResult, Snapshot, Status,
};

/// The plugin's name.
pub const NAME: &str = "DynamicResources";

/// Refuses pods with resource claims; skips the rest.
#[derive(Default)]
pub struct DynamicResources;

impl Plugin for DynamicResources {
    fn name(&self) -> &'static str {
        NAME
    }
    fn events_to_register(&self) -> Vec<ClusterEvent> {
        vec![ClusterEvent::new(
            EventResource::UnscheduledPod,
            ActionType::UPDATE,
        )]
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for DynamicResources {
    fn pre_filter(
        &self,
        _state: &mut CycleState,
        pod: &PodInfo,
        _snapshot: &Snapshot,
    ) -> (Option<PreFilterResult>, Status) {
        let claims = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.resource_claims.as_ref())
            .is_some_and(|c| !c.is_empty());
        if !claims {
            return (None, Status::skip());
        }
        (
            None,
            Status::unresolvable("resource claims are not supported by ferrokube-scheduler yet"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::make_pod;
    use k8s_openapi::api::core::v1::PodResourceClaim;

    #[test]
    fn pods_without_claims_skip_and_pods_with_claims_are_refused() {
        let plugin = DynamicResources;
        let mut state = CycleState::default();
        let (_, status) =
            plugin.pre_filter(&mut state, &make_pod("p").info(), &Snapshot::default());
        assert!(status.is_skip());
        let claimed = make_pod("c").with_spec(|s| {
            s.resource_claims = Some(vec![PodResourceClaim {
                name: "gpu".into(),
                ..Default::default()
            }])
        });
        let (_, status) = plugin.pre_filter(&mut state, &claimed.info(), &Snapshot::default());
        assert_eq!(
            status.code(),
            crate::framework::Code::UnschedulableAndUnresolvable
        );
    }
}
