//! PreScore, Score and NormalizeScore (upstream `podtopologyspread/scoring.go`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rayon::prelude::*;

use super::common::{
    LABEL_HOSTNAME, TopologySpreadConstraint, count_node_pods, count_pods_match_selector,
    node_labels_match_spread_constraints, pod_constraints,
};
use super::{PodTopologySpread, SCHEDULE_ANYWAY};
use crate::framework::{
    CycleState, MAX_NODE_SCORE, NodeInfo, NodeScore, PodInfo, PreScorePlugin, ScorePlugin,
    Snapshot, Status,
};

/// CycleState key of [`PreScoreState`].
pub const PRE_SCORE_STATE_KEY: &str = "PreScorePodTopologySpread";

const INVALID_SCORE: i64 = -1;

/// What PreScore computes for Score and NormalizeScore.
#[derive(Clone, Debug, Default)]
pub struct PreScoreState {
    /// The pod's ScheduleAnyway constraints (or the defaults).
    pub constraints: Vec<TopologySpreadConstraint>,
    /// Feasible nodes missing a required topology key: they score 0.
    pub ignored_nodes: HashSet<String>,
    /// Per constraint, matching pods by topology value, for the values of feasible nodes; empty for
    /// hostname constraints, which Score counts on the node itself.
    pub topology_value_to_pod_counts: Vec<HashMap<String, i64>>,
    /// Per constraint, log(domains + 2), so counts in small topologies are not watered down.
    pub topology_normalizing_weight: Vec<f64>,
}

/// The weight of a topology with `size` domains (upstream `topologyNormalizingWeight`).
pub fn topology_normalizing_weight(size: usize) -> f64 {
    (size as f64 + 2.0).ln()
}

/// A domain's raw score: `maxSkew - 1` added so small differences are tolerated (upstream `scoreForCount`).
fn score_for_count(count: i64, max_skew: i32, weight: f64) -> f64 {
    count as f64 * weight + f64::from(max_skew - 1)
}

impl PodTopologySpread {
    /// The constraints, ignored nodes, zeroed domain counts and weights from the feasible `nodes`
    /// (upstream `initPreScoreState`).
    fn init_pre_score_state(
        &self,
        pod: &PodInfo,
        nodes: &[Arc<NodeInfo>],
        require_all_topologies: bool,
    ) -> Result<PreScoreState, String> {
        let constraints = self
            .constraints_for(&pod.pod, SCHEDULE_ANYWAY)
            .map_err(|e| match pod_constraints(&pod.pod) {
                [] => format!("setting default soft topology spread constraints: {e}"),
                _ => format!("obtaining pod's soft topology spread constraints: {e}"),
            })?;
        let mut s = PreScoreState {
            topology_value_to_pod_counts: vec![HashMap::new(); constraints.len()],
            constraints,
            ..Default::default()
        };
        if s.constraints.is_empty() {
            return Ok(s);
        }
        for node in nodes {
            let node_labels = node.labels();
            if require_all_topologies
                && !node_labels_match_spread_constraints(node_labels, &s.constraints)
            {
                s.ignored_nodes.insert(node.name().to_string());
                continue;
            }
            for (i, c) in s.constraints.iter().enumerate() {
                if c.topology_key == LABEL_HOSTNAME {
                    continue;
                }
                // A node without the key is counted in the "" domain, as upstream.
                let value = node_labels.get(&c.topology_key).map_or("", String::as_str);
                if !s.topology_value_to_pod_counts[i].contains_key(value) {
                    s.topology_value_to_pod_counts[i].insert(value.to_string(), 0);
                }
            }
        }
        let scored_nodes = nodes.len() - s.ignored_nodes.len();
        s.topology_normalizing_weight = s
            .constraints
            .iter()
            .zip(&s.topology_value_to_pod_counts)
            .map(|(c, domains)| {
                topology_normalizing_weight(if c.topology_key == LABEL_HOSTNAME {
                    scored_nodes
                } else {
                    domains.len()
                })
            })
            .collect();
        Ok(s)
    }
}

impl PreScorePlugin for PodTopologySpread {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[Arc<NodeInfo>],
        snapshot: &Snapshot,
    ) -> Status {
        if snapshot.is_empty() {
            return Status::skip();
        }
        // Only the system defaults tolerate nodes missing a topology key, so that nodes without a zone
        // label still spread by hostname.
        let require_all_topologies =
            !pod_constraints(&pod.pod).is_empty() || !self.system_defaulted;
        let mut s = match self.init_pre_score_state(pod, nodes, require_all_topologies) {
            Ok(s) => s,
            Err(e) => return Status::error(format!("calculating preScoreState: {e}")),
        };
        if s.constraints.is_empty() {
            return Status::skip();
        }
        let per_node: Vec<_> = snapshot
            .nodes()
            .par_iter()
            .map(|node| {
                count_node_pods(
                    &pod.pod,
                    node,
                    &s.constraints,
                    require_all_topologies,
                    // Only domains of feasible nodes are scored; hostname ones are counted in Score.
                    |i, value| s.topology_value_to_pod_counts[i].contains_key(value),
                )
            })
            .collect();
        for count in per_node.iter().flatten() {
            if let Some(total) =
                s.topology_value_to_pod_counts[count.constraint_id].get_mut(count.value)
            {
                *total += count.count;
            }
        }
        drop(per_node);
        state.write(PRE_SCORE_STATE_KEY, s);
        Status::success()
    }
}

fn not_found(key: &str) -> Status {
    Status::error(format!("error reading {key:?} from cycleState: not found"))
}

impl ScorePlugin for PodTopologySpread {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        let s = state
            .read::<PreScoreState>(PRE_SCORE_STATE_KEY)
            .ok_or_else(|| not_found(PRE_SCORE_STATE_KEY))?;
        if s.ignored_nodes.contains(node.name()) {
            return Ok(0);
        }
        let node_labels = node.labels();
        let mut score = 0.0;
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(value) = node_labels.get(&c.topology_key) else {
                continue;
            };
            let count = if c.topology_key == LABEL_HOSTNAME {
                count_pods_match_selector(&node.pods, &c.selector, pod.namespace())
            } else {
                s.topology_value_to_pod_counts[i]
                    .get(value.as_str())
                    .copied()
                    .unwrap_or(0)
            };
            score += score_for_count(count, c.max_skew, s.topology_normalizing_weight[i]);
        }
        Ok(score.round() as i64)
    }

    fn normalize_score(
        &self,
        state: &CycleState,
        _pod: &PodInfo,
        scores: &mut [NodeScore],
    ) -> Status {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_STATE_KEY) else {
            return not_found(PRE_SCORE_STATE_KEY);
        };
        let mut min_score = i64::MAX;
        let mut max_score = 0;
        for score in scores.iter_mut() {
            if s.ignored_nodes.contains(&score.name) {
                score.score = INVALID_SCORE;
                continue;
            }
            min_score = min_score.min(score.score);
            max_score = max_score.max(score.score);
        }
        for score in scores.iter_mut() {
            score.score = if score.score == INVALID_SCORE {
                0
            } else if max_score == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max_score + min_score - score.score) / max_score
            };
        }
        Status::success()
    }
}
