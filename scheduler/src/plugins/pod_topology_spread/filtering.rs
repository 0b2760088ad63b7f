//! PreFilter, its add/remove extensions for preemption, and Filter (upstream
//! `podtopologyspread/filtering.go`).

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use rayon::prelude::*;

use super::common::{
    TopologySpreadConstraint, count_node_pods, node_labels_match_spread_constraints,
};
use super::{ERR_REASON_CONSTRAINTS_NOT_MATCH, ERR_REASON_NODE_LABEL_NOT_MATCH, PodTopologySpread};
use crate::framework::pod_info::{labels, selector_matches};
use crate::framework::{
    CycleState, FilterPlugin, NodeInfo, PodInfo, PreFilterExtensions, PreFilterPlugin,
    PreFilterResult, Snapshot, Status,
};

/// CycleState key of [`PreFilterState`].
pub const PRE_FILTER_STATE_KEY: &str = "PreFilterPodTopologySpread";

/// One domain and its matching pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CriticalPath {
    /// The topology value (domain).
    pub topology_value: String,
    /// Matching pods in it.
    pub match_num: i64,
}

/// The two domains with the fewest matching pods: `0` always holds the minimum, `1` is not less than it
/// but not necessarily the second minimum. Two suffice because preemption evaluates one node at a time on
/// its own copy of the state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CriticalPaths(pub [CriticalPath; 2]);

impl Default for CriticalPaths {
    fn default() -> Self {
        let unset = CriticalPath {
            topology_value: String::new(),
            match_num: i64::from(i32::MAX),
        };
        Self([unset.clone(), unset])
    }
}

impl CriticalPaths {
    /// Records that domain `value` now has `num` matching pods.
    pub fn update(&mut self, value: &str, num: i64) {
        let paths = &mut self.0;
        let existing = if value == paths[0].topology_value {
            Some(0)
        } else if value == paths[1].topology_value {
            Some(1)
        } else {
            None
        };
        match existing {
            Some(i) => {
                paths[i].match_num = num;
                if paths[0].match_num > paths[1].match_num {
                    paths.swap(0, 1);
                }
            }
            None if num < paths[0].match_num => {
                paths[1] = paths[0].clone();
                paths[0] = CriticalPath {
                    topology_value: value.to_string(),
                    match_num: num,
                };
            }
            None if num < paths[1].match_num => {
                paths[1] = CriticalPath {
                    topology_value: value.to_string(),
                    match_num: num,
                };
            }
            None => {}
        }
    }
}

/// What PreFilter computes for Filter: the pod's DoNotSchedule constraints and, per constraint, the
/// matching pods per domain and the critical paths.
#[derive(Clone, Debug)]
pub struct PreFilterState {
    /// The constraints (shared by copies: they never change).
    pub constraints: Arc<[TopologySpreadConstraint]>,
    /// Per constraint, 1 when the incoming pod matches its own selector.
    pub self_match_num: Arc<[i64]>,
    /// Per constraint, the domains with the fewest matching pods.
    pub critical_paths: Vec<CriticalPaths>,
    /// Per constraint, matching pods by topology value over the eligible nodes.
    pub tp_value_to_match_num: Vec<HashMap<String, i64>>,
}

impl PreFilterState {
    /// The global minimum for constraint `i`, 0 while there are fewer than `min_domains` domains.
    pub fn min_match_num(&self, i: usize, min_domains: i32) -> i64 {
        if (self.tp_value_to_match_num[i].len() as i64) < i64::from(min_domains) {
            return 0;
        }
        self.critical_paths[i].0[0].match_num
    }
}

fn not_found(key: &str) -> Status {
    Status::error(format!("reading {key:?} from cycleState: not found"))
}

impl PodTopologySpread {
    /// Counts matching pods per domain over all nodes (upstream `calPreFilterState`); `None` when the
    /// pod has no hard constraints.
    fn cal_pre_filter_state(
        &self,
        pod: &Pod,
        nodes: &[Arc<NodeInfo>],
    ) -> Result<Option<PreFilterState>, String> {
        let constraints = self
            .get_constraints(pod)
            .map_err(|e| format!("get constraints from pod: {e}"))?;
        if constraints.is_empty() {
            return Ok(None);
        }
        let per_node: Vec<_> = nodes
            .par_iter()
            .map(|node| count_node_pods(pod, node, &constraints, true, |_, _| true))
            .collect();
        let mut tp_value_to_match_num = vec![HashMap::<String, i64>::new(); constraints.len()];
        for count in per_node.iter().flatten() {
            let domains = &mut tp_value_to_match_num[count.constraint_id];
            match domains.get_mut(count.value) {
                Some(num) => *num += count.count,
                None => {
                    domains.insert(count.value.to_string(), count.count);
                }
            }
        }
        let critical_paths = tp_value_to_match_num
            .iter()
            .map(|domains| {
                let mut paths = CriticalPaths::default();
                for (value, num) in domains {
                    paths.update(value, *num);
                }
                paths
            })
            .collect();
        let pod_labels = labels(pod);
        let self_match_num = constraints
            .iter()
            .map(|c| i64::from(selector_matches(&c.selector, pod_labels)))
            .collect();
        Ok(Some(PreFilterState {
            constraints: constraints.into(),
            self_match_num,
            critical_paths,
            tp_value_to_match_num,
        }))
    }

    /// Adds `delta` matching pods for `updated` on `node_info` (upstream `updateWithPod`).
    fn update_with_pod(
        &self,
        state: &mut CycleState,
        updated: &Pod,
        preemptor: &Pod,
        node_info: &NodeInfo,
        delta: i64,
    ) -> Status {
        let Some(s) = state.read_mut::<PreFilterState>(PRE_FILTER_STATE_KEY) else {
            return not_found(PRE_FILTER_STATE_KEY);
        };
        let Some(node) = node_info.node() else {
            return Status::success();
        };
        if updated.metadata.namespace != preemptor.metadata.namespace {
            return Status::success();
        }
        let node_labels = node_info.labels();
        if !node_labels_match_spread_constraints(node_labels, &s.constraints) {
            return Status::success();
        }
        let affinity = std::cell::OnceCell::new();
        let updated_labels = labels(updated);
        for (i, c) in s.constraints.iter().enumerate() {
            if !selector_matches(&c.selector, updated_labels)
                || !c.match_node_inclusion_policies(preemptor, node, &affinity)
            {
                continue;
            }
            let value = node_labels.get(&c.topology_key).map_or("", String::as_str);
            let num = s.tp_value_to_match_num[i]
                .entry(value.to_string())
                .or_insert(0);
            *num += delta;
            let num = *num;
            s.critical_paths[i].update(value, num);
        }
        Status::success()
    }
}

impl PreFilterPlugin for PodTopologySpread {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> (Option<PreFilterResult>, Status) {
        match self.cal_pre_filter_state(&pod.pod, snapshot.nodes()) {
            Err(e) => (None, Status::error(e)),
            Ok(None) => (None, Status::skip()),
            Ok(Some(s)) => {
                state.write(PRE_FILTER_STATE_KEY, s);
                (None, Status::success())
            }
        }
    }

    fn pre_filter_extensions(&self) -> Option<&dyn PreFilterExtensions> {
        Some(self)
    }
}

impl PreFilterExtensions for PodTopologySpread {
    fn add_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        added: &PodInfo,
        node: &NodeInfo,
    ) -> Status {
        self.update_with_pod(state, &added.pod, &pod.pod, node, 1)
    }

    fn remove_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        removed: &PodInfo,
        node: &NodeInfo,
    ) -> Status {
        self.update_with_pod(state, &removed.pod, &pod.pod, node, -1)
    }
}

impl FilterPlugin for PodTopologySpread {
    fn filter(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>(PRE_FILTER_STATE_KEY) else {
            return not_found(PRE_FILTER_STATE_KEY);
        };
        let node_labels = node.labels();
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(value) = node_labels.get(&c.topology_key) else {
                return Status::unresolvable(ERR_REASON_NODE_LABEL_NOT_MATCH);
            };
            // 'existing matching num' + 'if self-match (1 or 0)' - 'global minimum' <= 'maxSkew'
            let match_num = s.tp_value_to_match_num[i]
                .get(value.as_str())
                .copied()
                .unwrap_or(0);
            let skew = match_num + s.self_match_num[i] - s.min_match_num(i, c.min_domains);
            if skew > i64::from(c.max_skew) {
                return Status::unschedulable(ERR_REASON_CONSTRAINTS_NOT_MATCH);
            }
        }
        Status::success()
    }
}
