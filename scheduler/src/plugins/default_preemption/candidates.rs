//! The dry run over candidate nodes and the choice among them (upstream `framework/preemption`:
//! DryRunPreemption, pickOneNodeForPreemption, and the FitError message when nothing helps).

use std::cmp::Reverse;
use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use rayon::prelude::*;

use super::victims::{Preemptor, start_time};
use crate::framework::pod_info::priority;
use crate::framework::{Code, CycleState, NodeInfo, PodInfo, Status};

/// The reason counted for nodes the dry run did not look at.
pub const PREEMPTION_NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";

/// A node the pod fits on once `victims` are gone.
#[derive(Clone, Debug)]
pub(super) struct Candidate {
    /// The node.
    pub name: String,
    /// The pods to evict, most important first.
    pub victims: Vec<Arc<PodInfo>>,
    /// How many of the victims violate a PodDisruptionBudget.
    pub num_pdb_violations: i64,
}

/// What the dry run found.
#[derive(Debug, Default)]
pub(super) struct DryRun {
    /// Candidates that violate no budget, then those that do.
    pub candidates: Vec<Candidate>,
    /// Why preemption does not help on the nodes evaluated without success.
    pub statuses: Vec<(String, Status)>,
    /// Messages of the internal errors among `statuses`.
    pub errors: Vec<String>,
}

/// Evaluates `nodes` starting at `offset` (wrapping around) until `num_candidates` candidates are found,
/// at least one of them without budget violations. Nodes are evaluated in parallel batches, but the
/// result is what evaluating them one by one in that order gives, so it does not depend on timing.
pub(super) fn dry_run_preemption(
    preemptor: &Preemptor<'_>,
    state: &CycleState,
    nodes: &[&Arc<NodeInfo>],
    offset: usize,
    num_candidates: usize,
) -> DryRun {
    let mut non_violating: Vec<Candidate> = Vec::new();
    let mut violating: Vec<Candidate> = Vec::new();
    let mut result = DryRun::default();
    let pool = preemptor.framework.pool();
    let batch = pool.current_num_threads().max(1);
    let mut start = 0;
    'batches: while start < nodes.len() {
        let end = (start + batch).min(nodes.len());
        let outcomes: Vec<Result<Candidate, (String, Status)>> = pool.install(|| {
            (start..end)
                .into_par_iter()
                .map(|i| check_node(preemptor, state, nodes[(offset + i) % nodes.len()]))
                .collect()
        });
        for outcome in outcomes {
            match outcome {
                Ok(candidate) => {
                    // Upstream's candidate lists hold at most num_candidates each; later ones are dropped.
                    let list = if candidate.num_pdb_violations == 0 {
                        &mut non_violating
                    } else {
                        &mut violating
                    };
                    if list.len() < num_candidates {
                        list.push(candidate);
                    }
                    if !non_violating.is_empty()
                        && non_violating.len() + violating.len() >= num_candidates
                    {
                        break 'batches;
                    }
                }
                Err((name, status)) => {
                    if status.code() == Code::Error {
                        result.errors.push(status.message());
                    }
                    result.statuses.push((name, status));
                }
            }
        }
        start = end;
    }
    non_violating.extend(violating);
    result.candidates = non_violating;
    result
}

fn check_node(
    preemptor: &Preemptor<'_>,
    state: &CycleState,
    node: &Arc<NodeInfo>,
) -> Result<Candidate, (String, Status)> {
    let name = node.name().to_string();
    let mut node = NodeInfo::clone(node);
    let mut state = state.clone();
    match preemptor.select_victims_on_node(&mut state, &mut node) {
        Ok((victims, num_pdb_violations)) if !victims.is_empty() => Ok(Candidate {
            name,
            victims,
            num_pdb_violations,
        }),
        Ok(_) => {
            let status =
                Status::error(format!("expected at least one victim pod on node {name:?}"));
            Err((name, status))
        }
        Err(status) => Err((name, status)),
    }
}

/// Upstream's aggregate error text: one message alone, several (deduplicated) in brackets.
pub(super) fn aggregate_errors(errors: &[String]) -> String {
    let mut unique: Vec<&str> = Vec::new();
    for error in errors {
        if !unique.contains(&error.as_str()) {
            unique.push(error);
        }
    }
    match unique.as_slice() {
        [one] => (*one).to_string(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// Upstream's FitError text for a preemption that found no candidate: `0/N nodes are available:`, then
/// each reason with the number of nodes that gave it, sorted as strings; nodes without a status count as
/// "Preemption is not helpful for scheduling".
pub(super) fn no_candidate_message(num_all_nodes: usize, statuses: &[(String, Status)]) -> String {
    let mut histogram: HashMap<&str, usize> = HashMap::new();
    for (_, status) in statuses {
        for reason in status.reasons() {
            *histogram.entry(reason).or_default() += 1;
        }
    }
    if statuses.len() < num_all_nodes {
        *histogram.entry(PREEMPTION_NOT_HELPFUL).or_default() += num_all_nodes - statuses.len();
    }
    let mut reasons: Vec<String> = histogram
        .into_iter()
        .map(|(reason, count)| format!("{count} {reason}"))
        .collect();
    reasons.sort();
    let mut message = format!("0/{num_all_nodes} nodes are available:");
    if !reasons.is_empty() {
        message.push_str(&format!(" {}.", reasons.join(", ")));
    }
    message
}

/// Upstream's pickOneNodeForPreemption: the fewest budget violations, then the lowest highest victim
/// priority, then the smallest sum of victim priorities, then the fewest victims, then the latest start
/// of the highest-priority victims; remaining ties go to the first candidate.
pub(super) fn pick_one_node_for_preemption(
    candidates: &[Candidate],
    now: Timestamp,
) -> Option<&Candidate> {
    candidates
        .iter()
        .min_by_key(|candidate| selection_key(candidate, now))
}

fn selection_key(
    candidate: &Candidate,
    now: Timestamp,
) -> (i64, i32, i64, usize, Reverse<Timestamp>) {
    let victims = &candidate.victims;
    let highest = victims.first().map_or(i32::MIN, |v| v.priority());
    // Shifting every priority to be non-negative keeps a few negative-priority victims from beating
    // fewer victims of the same priority.
    let sum: i64 = victims
        .iter()
        .map(|v| i64::from(v.priority()) + i64::from(i32::MAX) + 1)
        .sum();
    (
        candidate.num_pdb_violations,
        highest,
        sum,
        victims.len(),
        Reverse(earliest_start_of_highest_priority(victims, now)),
    )
}

/// Upstream's GetEarliestPodStartTime: the earliest start among the victims of the highest priority.
fn earliest_start_of_highest_priority(victims: &[Arc<PodInfo>], now: Timestamp) -> Timestamp {
    let Some(first) = victims.first() else {
        return Timestamp::MIN;
    };
    let mut max_priority = priority(&first.pod);
    let mut earliest = start_time(&first.pod, now);
    for victim in victims {
        let victim_priority = priority(&victim.pod);
        let started = start_time(&victim.pod, now);
        if victim_priority == max_priority {
            earliest = earliest.min(started);
        } else if victim_priority > max_priority {
            max_priority = victim_priority;
            earliest = started;
        }
    }
    earliest
}
