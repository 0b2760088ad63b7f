//! DefaultPreemption (upstream `plugins/defaultpreemption` with `framework/preemption`): when no node
//! fits, find the node where evicting the fewest, least important pods lets the pod in. The plugin only
//! decides; the scheduler core (`scheduler/api.rs`, upstream `prepareCandidate`) marks and deletes the
//! victims, clears lower-priority nominations to the node and nominates it.

mod candidates;
mod pdb;
mod victims;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;

use self::candidates::{
    aggregate_errors, dry_run_preemption, no_candidate_message, pick_one_node_for_preemption,
};
use self::pdb::PdbInfo;
use self::victims::{Preemptor, pod_eligible_to_preempt_others};
use crate::config::DefaultPreemptionArgs;
use crate::framework::{
    Code, Handle, Listers, NodeInfo, Plugin, PostFilterContext, PostFilterPlugin, PostFilterResult,
    Status,
};

pub use self::candidates::PREEMPTION_NOT_HELPFUL;
pub use self::victims::{NO_VICTIMS_FOUND, NOT_ELIGIBLE_PREEMPT_NEVER, NOT_ELIGIBLE_TERMINATING};

/// The plugin's upstream name.
pub const NAME: &str = "DefaultPreemption";

/// The DefaultPreemption PostFilter plugin.
pub struct DefaultPreemption {
    args: DefaultPreemptionArgs,
    listers: Arc<dyn Listers>,
    /// Replaces the random starting node, so tests are deterministic.
    fixed_offset: Option<usize>,
}

impl DefaultPreemption {
    /// Creates the plugin; PodDisruptionBudgets come from `handle`'s listers. `args` were validated with
    /// the configuration (upstream's ValidateDefaultPreemptionArgs), so this cannot fail.
    pub fn new(args: &DefaultPreemptionArgs, handle: &Handle) -> Result<Self, String> {
        Ok(Self {
            args: args.clone(),
            listers: handle.listers.clone(),
            fixed_offset: None,
        })
    }

    /// The same plugin starting its dry run at `offset` instead of a random node.
    #[cfg(test)]
    pub(crate) fn with_fixed_offset(mut self, offset: usize) -> Self {
        self.fixed_offset = Some(offset);
        self
    }

    /// Upstream's calculateNumCandidates: the percentage of `num_nodes`, at least the absolute minimum,
    /// at most `num_nodes`.
    pub fn calculate_num_candidates(&self, num_nodes: usize) -> usize {
        let num_nodes = i64::try_from(num_nodes).unwrap_or(i64::MAX);
        let by_percentage =
            num_nodes.saturating_mul(i64::from(self.args.min_candidate_nodes_percentage)) / 100;
        let wanted = by_percentage.max(i64::from(self.args.min_candidate_nodes_absolute));
        usize::try_from(wanted.min(num_nodes)).unwrap_or(0)
    }

    /// Where the dry run starts: random, so preemption does not always pick from the same nodes.
    fn offset(&self, num_nodes: usize) -> usize {
        if let Some(offset) = self.fixed_offset {
            return offset % num_nodes.max(1);
        }
        let random = RandomState::new().hash_one(Timestamp::now().as_nanosecond());
        usize::try_from(random % num_nodes.max(1) as u64).unwrap_or(0)
    }

    /// Upstream's Evaluator.Preempt without the API calls.
    fn preempt(&self, context: &PostFilterContext<'_>) -> (Option<PostFilterResult>, Status) {
        let pod = context.pod;
        let snapshot = context.snapshot;
        let nominated = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .unwrap_or_default();
        let nominated_status = context
            .statuses
            .get(nominated)
            .map_or(Code::UnschedulableAndUnresolvable, Status::code);
        if let Err(reason) = pod_eligible_to_preempt_others(pod, snapshot, nominated_status) {
            return (None, Status::unschedulable(reason));
        }
        if snapshot.is_empty() {
            return (None, Status::error("no nodes available"));
        }
        // Only nodes where removing pods might help; upstream's absent entries count as unresolvable.
        let potential: Vec<&Arc<NodeInfo>> = snapshot
            .nodes()
            .iter()
            .filter(|n| {
                context.statuses.get(n.name()).map(Status::code) == Some(Code::Unschedulable)
            })
            .collect();
        let now = Timestamp::now();
        let dry_run = if potential.is_empty() {
            Default::default()
        } else {
            let pdbs = self.pdbs_for(&potential, pod.priority());
            let preemptor = Preemptor {
                framework: context.framework,
                pod,
                nominator: context.nominator,
                pdbs: &pdbs,
                now,
            };
            let offset = self.offset(potential.len());
            let num_candidates = self.calculate_num_candidates(potential.len());
            dry_run_preemption(
                &preemptor,
                context.state,
                &potential,
                offset,
                num_candidates,
            )
        };
        if dry_run.candidates.is_empty() && !dry_run.errors.is_empty() {
            return (None, Status::error(aggregate_errors(&dry_run.errors)));
        }
        let Some(best) = pick_one_node_for_preemption(&dry_run.candidates, now) else {
            // An empty nomination tells the core to clear the pod's nominatedNodeName.
            let message = no_candidate_message(snapshot.len(), &dry_run.statuses);
            return (
                Some(PostFilterResult::default()),
                Status::unschedulable(message),
            );
        };
        let result = PostFilterResult {
            nominated_node_name: best.name.clone(),
            victims: best.victims.iter().map(|v| v.pod.clone()).collect(),
        };
        (Some(result), Status::success())
    }

    /// The budgets of every namespace a victim could come from (budgets only cover their own namespace).
    fn pdbs_for(&self, nodes: &[&Arc<NodeInfo>], preemptor_priority: i32) -> Vec<PdbInfo> {
        let namespaces: BTreeSet<&str> = nodes
            .iter()
            .flat_map(|n| n.pods.iter())
            .filter(|p| p.priority() < preemptor_priority)
            .map(|p| p.namespace())
            .collect();
        namespaces
            .into_iter()
            .flat_map(|ns| self.listers.pod_disruption_budgets(ns))
            .map(PdbInfo::new)
            .collect()
    }
}

impl Plugin for DefaultPreemption {
    fn name(&self) -> &'static str {
        NAME
    }

    // Upstream registers events only for its async-preemption PreEnqueue gate, which lives in the core
    // here: pods this plugin leaves unschedulable were rejected by the filters, whose events requeue them.

    fn as_post_filter(&self) -> Option<&dyn PostFilterPlugin> {
        Some(self)
    }
}

impl PostFilterPlugin for DefaultPreemption {
    fn post_filter(&self, context: &PostFilterContext<'_>) -> (Option<PostFilterResult>, Status) {
        let (result, status) = self.preempt(context);
        let message = status.message();
        if message.is_empty() {
            return (result, status);
        }
        (
            result,
            Status::new(status.code(), vec![format!("preemption: {message}")]),
        )
    }
}
