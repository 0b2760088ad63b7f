//! NodeResourcesBalancedAllocation (upstream `balanced_allocation.go`): favours nodes whose resource
//! usage becomes more balanced, across the configured resources, when the pod is placed there.

use std::sync::Arc;

use super::resource_allocation::{Amounts, PreScoreState, ResourceAllocation};
use crate::config::NodeResourcesBalancedAllocationArgs;
use crate::framework::{
    CycleState, Handle, MAX_NODE_SCORE, NodeInfo, Plugin, PodInfo, PreScorePlugin, ScorePlugin,
    Snapshot, Status,
};

/// The plugin's upstream name.
pub const NAME: &str = "NodeResourcesBalancedAllocation";
/// Where PreScore leaves the pod's requests of the balanced resources for Score.
pub const PRE_SCORE_STATE_KEY: &str = "PreScoreNodeResourcesBalancedAllocation";

/// The NodeResourcesBalancedAllocation plugin.
#[derive(Debug)]
pub struct BalancedAllocation {
    allocation: ResourceAllocation,
}

impl BalancedAllocation {
    /// The plugin with `args`, already validated with the configuration.
    pub fn new(
        args: &NodeResourcesBalancedAllocationArgs,
        _handle: &Handle,
    ) -> Result<Self, String> {
        // Balance is about the pod's exact requests: defaults for containers without requests would make
        // every node look as loaded in CPU as in memory.
        Ok(Self {
            allocation: ResourceAllocation::new(&args.resources, true),
        })
    }
}

impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        NAME
    }

    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }

    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl PreScorePlugin for BalancedAllocation {
    /// Skips pods that request none of the balanced resources: every node would look equally good to
    /// them, and scoring them piled them onto one node (kubernetes#129138).
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[Arc<NodeInfo>],
        _snapshot: &Snapshot,
    ) -> Status {
        let pod_requests = self.allocation.pod_requests(pod);
        if pod_requests.iter().all(|request| *request == 0) {
            return Status::skip();
        }
        state.write(PRE_SCORE_STATE_KEY, PreScoreState { pod_requests });
        Status::success()
    }
}

impl ScorePlugin for BalancedAllocation {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        let pod_requests = self
            .allocation
            .scored_requests(state, PRE_SCORE_STATE_KEY, pod)?;
        Ok(score(self.allocation.amounts(&pod_requests, node)))
    }
}

/// How much placing the pod improves the node's balance (upstream `balancedResourceScorer` since
/// kubernetes#135573): both balances lie in [MAX/2, MAX], so their difference in [-MAX/2, MAX/2] is mapped
/// back onto [MAX/2, MAX]; an unchanged balance scores 75.
pub(crate) fn score(amounts: impl Iterator<Item = Amounts> + Clone) -> i64 {
    let with_pod = balance(
        amounts
            .clone()
            .map(|a| fraction(a.requested, a.allocatable)),
    );
    let without_pod = balance(amounts.map(|a| fraction(a.allocated, a.allocatable)));
    MAX_NODE_SCORE / 2 + (MAX_NODE_SCORE / 2 + with_pod - without_pod) / 2
}

/// The share of `allocatable` in use, capped at 1: pods without requests are counted at defaults that
/// can exceed a small node.
fn fraction(requested: i64, allocatable: i64) -> f64 {
    (requested as f64 / allocatable as f64).min(1.0)
}

/// `(1 - std) * MAX_NODE_SCORE` of the fractions, truncated (upstream `balancedResourceScore`). With two
/// fractions the standard deviation is half their distance; with one or none it is 0. The computation
/// follows upstream's order of floating-point operations so truncation lands on the same integers.
fn balance(fractions: impl Iterator<Item = f64> + Clone) -> i64 {
    let (mut count, mut total, mut first, mut second) = (0usize, 0.0f64, 0.0f64, 0.0f64);
    for f in fractions.clone() {
        match count {
            0 => first = f,
            1 => second = f,
            _ => {}
        }
        total += f;
        count += 1;
    }
    let std = match count {
        2 => ((first - second) / 2.0).abs(),
        n if n > 2 => {
            let mean = total / n as f64;
            let sum = fractions.fold(0.0, |sum, f| sum + (f - mean) * (f - mean));
            (sum / n as f64).sqrt()
        }
        _ => 0.0,
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}
