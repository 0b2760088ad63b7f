//! PodTopologySpread: keeps matching pods evenly spread over topology domains (upstream
//! `pkg/scheduler/framework/plugins/podtopologyspread`). DoNotSchedule constraints filter, ScheduleAnyway
//! constraints (or the configured defaults for pods without constraints) score.

mod common;
#[cfg(test)]
mod filter_verdicts_test;
mod filtering;
#[cfg(test)]
mod filtering_test;
#[cfg(test)]
mod pre_score_test;
mod scoring;
#[cfg(test)]
mod scoring_test;
#[cfg(test)]
mod test_util;

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1;

use crate::framework::{
    ActionType, ClusterEvent, EventResource, FilterPlugin, Handle, Listers, Plugin,
    PreFilterPlugin, PreScorePlugin, ScorePlugin,
};

pub use common::{LABEL_HOSTNAME, LABEL_TOPOLOGY_ZONE, TopologySpreadConstraint};
pub use filtering::{CriticalPath, CriticalPaths, PRE_FILTER_STATE_KEY, PreFilterState};
pub use scoring::{PRE_SCORE_STATE_KEY, PreScoreState};

/// The plugin's name in configurations.
pub const NAME: &str = "PodTopologySpread";

/// Filter reason when a DoNotSchedule constraint's skew would be exceeded.
pub const ERR_REASON_CONSTRAINTS_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints";
/// Filter reason when the node lacks a constraint's topology key.
pub const ERR_REASON_NODE_LABEL_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

/// `whenUnsatisfiable: DoNotSchedule`.
pub const DO_NOT_SCHEDULE: &str = "DoNotSchedule";
/// `whenUnsatisfiable: ScheduleAnyway`.
pub const SCHEDULE_ANYWAY: &str = "ScheduleAnyway";

pub use crate::config::{DefaultingType, PodTopologySpreadArgs};

/// Upstream's `systemDefaultConstraints`.
pub fn system_default_constraints() -> Vec<v1::TopologySpreadConstraint> {
    [(LABEL_HOSTNAME, 3), (LABEL_TOPOLOGY_ZONE, 5)]
        .into_iter()
        .map(|(key, max_skew)| v1::TopologySpreadConstraint {
            max_skew,
            topology_key: key.to_string(),
            when_unsatisfiable: SCHEDULE_ANYWAY.to_string(),
            ..Default::default()
        })
        .collect()
}

/// The PodTopologySpread plugin.
pub struct PodTopologySpread {
    /// Whether the defaults are the system ones: then nodes missing a default topology key still score.
    system_defaulted: bool,
    default_constraints: Vec<v1::TopologySpreadConstraint>,
    /// Services, ReplicaSets, ReplicationControllers and StatefulSets, for the default constraints' selector.
    listers: Arc<dyn Listers>,
}

impl PodTopologySpread {
    /// Validates `settings` as upstream's `ValidatePodTopologySpreadArgs` and builds the plugin.
    pub fn new(settings: PodTopologySpreadArgs, handle: &Handle) -> Result<Self, String> {
        validate_settings(&settings)?;
        let system_defaulted = settings.defaulting_type == DefaultingType::System;
        let default_constraints = if system_defaulted {
            system_default_constraints()
        } else {
            settings.default_constraints
        };
        Ok(Self {
            system_defaulted,
            default_constraints,
            listers: handle.listers.clone(),
        })
    }
}

impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEvent> {
        // Upstream registers the `Pod` wildcard (assigned and unscheduled pods alike) with queueing hints on.
        let pod_actions = ActionType::ADD
            .or(ActionType::UPDATE_POD_LABEL)
            .or(ActionType::UPDATE_POD_TOLERATIONS)
            .or(ActionType::DELETE);
        vec![
            ClusterEvent::new(EventResource::AssignedPod, pod_actions),
            ClusterEvent::new(EventResource::UnscheduledPod, pod_actions),
            ClusterEvent::new(
                EventResource::Node,
                ActionType::ADD
                    .or(ActionType::DELETE)
                    .or(ActionType::UPDATE_NODE_LABEL)
                    .or(ActionType::UPDATE_NODE_TAINT),
            ),
        ]
    }

    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }

    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }

    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }

    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

/// Upstream's `ValidatePodTopologySpreadArgs` (with a nil path), except the topology key's label-name syntax.
fn validate_settings(settings: &PodTopologySpreadArgs) -> Result<(), String> {
    let mut errors = Vec::new();
    if settings.defaulting_type == DefaultingType::System
        && !settings.default_constraints.is_empty()
    {
        errors.push(
            "defaultingType: Invalid value: \"System\": when .defaultConstraints are not empty"
                .to_string(),
        );
    }
    let mut seen = BTreeSet::new();
    for (i, c) in settings.default_constraints.iter().enumerate() {
        let path = format!("defaultConstraints[{i}]");
        if c.max_skew <= 0 {
            errors.push(format!(
                "{path}.maxSkew: Invalid value: {}: not in valid range (0, inf)",
                c.max_skew
            ));
        }
        if c.topology_key.is_empty() {
            errors.push(format!(
                "{path}.topologyKey: Required value: can not be empty"
            ));
        }
        match c.when_unsatisfiable.as_str() {
            "" => errors.push(format!(
                "{path}.whenUnsatisfiable: Required value: can not be empty"
            )),
            DO_NOT_SCHEDULE | SCHEDULE_ANYWAY => {}
            other => errors.push(format!(
                "{path}.whenUnsatisfiable: Unsupported value: {other:?}: supported values: \"DoNotSchedule\", \"ScheduleAnyway\""
            )),
        }
        if c.label_selector.is_some() {
            errors.push(format!(
                "{path}.labelSelector: Forbidden: constraint must not define a selector, as they deduced for each pod"
            ));
        }
        if !seen.insert((c.topology_key.as_str(), c.when_unsatisfiable.as_str())) {
            errors.push(format!(
                "{path}: Duplicate value: \"{{{}, {}}}\"",
                c.topology_key, c.when_unsatisfiable
            ));
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(format!("[{}]", errors.join(", "))),
    }
}
