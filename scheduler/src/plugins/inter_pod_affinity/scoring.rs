//! PreScore, Score and NormalizeScore (upstream `interpodaffinity/scoring.go`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rayon::prelude::*;

use super::{
    InterPodAffinity, NO_LABELS, PairCounts, TopologyCounts, add_pair, merge_namespace_selectors,
    merge_pairs,
};
use crate::framework::pod_info::{AffinityTerm, WeightedAffinityTerm};
use crate::framework::{
    CycleState, MAX_NODE_SCORE, NodeInfo, NodeScore, PodInfo, PreScorePlugin, ScorePlugin,
    Snapshot, Status,
};

/// The CycleState key of the PreScore state.
pub const PRE_SCORE_STATE_KEY: &str = "PreScoreInterPodAffinity";

/// Summed weights by topology pair (upstream `preScoreState`).
#[derive(Clone, Debug)]
pub(crate) struct PreScoreState {
    topology_score: Arc<TopologyCounts>,
}

/// What PreScore matches each existing pod against.
struct Incoming<'a> {
    pod: &'a PodInfo,
    /// Preferred terms with namespaceSelectors merged into their namespaces.
    preferred_affinity: Vec<WeightedAffinityTerm>,
    preferred_anti_affinity: Vec<WeightedAffinityTerm>,
    namespace_labels: BTreeMap<String, String>,
    hard_pod_affinity_weight: i32,
}

/// Adds `weight * multiplier` for `term` on the existing pod's node if `pod` matches it.
fn process_term<'a>(
    pairs: &mut PairCounts<'a>,
    term: &'a AffinityTerm,
    weight: i32,
    pod: &PodInfo,
    namespace_labels: &BTreeMap<String, String>,
    labels: &'a BTreeMap<String, String>,
    multiplier: i32,
) {
    if term.matches(&pod.pod, namespace_labels) {
        add_pair(
            pairs,
            labels,
            &term.topology_key,
            i64::from(weight * multiplier),
        );
    }
}

fn process_terms<'a>(
    pairs: &mut PairCounts<'a>,
    terms: &'a [WeightedAffinityTerm],
    pod: &PodInfo,
    namespace_labels: &BTreeMap<String, String>,
    labels: &'a BTreeMap<String, String>,
    multiplier: i32,
) {
    for t in terms {
        process_term(
            pairs,
            &t.term,
            t.weight,
            pod,
            namespace_labels,
            labels,
            multiplier,
        );
    }
}

impl Incoming<'_> {
    /// Upstream's `processExistingPod`: the incoming pod's preferred terms against `existing`, and
    /// `existing`'s required (hard weight) and preferred terms against the incoming pod.
    fn process_existing_pod<'a>(
        &'a self,
        pairs: &mut PairCounts<'a>,
        existing: &'a PodInfo,
        labels: &'a BTreeMap<String, String>,
    ) {
        if labels.is_empty() {
            return;
        }
        process_terms(
            pairs,
            &self.preferred_affinity,
            existing,
            &NO_LABELS,
            labels,
            1,
        );
        process_terms(
            pairs,
            &self.preferred_anti_affinity,
            existing,
            &NO_LABELS,
            labels,
            -1,
        );
        let ns_labels = &self.namespace_labels;
        if self.hard_pod_affinity_weight > 0 {
            for term in &existing.required_affinity_terms {
                process_term(
                    pairs,
                    term,
                    self.hard_pod_affinity_weight,
                    self.pod,
                    ns_labels,
                    labels,
                    1,
                );
            }
        }
        process_terms(
            pairs,
            &existing.preferred_affinity_terms,
            self.pod,
            ns_labels,
            labels,
            1,
        );
        process_terms(
            pairs,
            &existing.preferred_anti_affinity_terms,
            self.pod,
            ns_labels,
            labels,
            -1,
        );
    }
}

/// Whether the pod's spec has preferred pod affinity or anti-affinity terms.
fn has_preferred_terms(pod: &PodInfo) -> bool {
    let affinity = pod.pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    let preferred_affinity = affinity
        .and_then(|a| a.pod_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        });
    let preferred_anti_affinity = affinity
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        });
    preferred_affinity.is_some_and(|t| !t.is_empty())
        || preferred_anti_affinity.is_some_and(|t| !t.is_empty())
}

impl PreScorePlugin for InterPodAffinity {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[Arc<NodeInfo>],
        snapshot: &Snapshot,
    ) -> Status {
        let has_constraints = has_preferred_terms(pod);
        if self.settings.ignore_preferred_terms_of_existing_pods && !has_constraints {
            return Status::skip();
        }
        // Without preferred terms of its own, only pods with affinity can contribute.
        let nodes: Vec<&Arc<NodeInfo>> = if has_constraints {
            snapshot.nodes().iter().collect()
        } else {
            snapshot.nodes_with_affinity().collect()
        };
        if let Some(error) = &pod.parse_error {
            return Status::error(format!("failed to parse pod: {error}"));
        }

        let listers = self.listers.as_ref();
        let mut preferred_affinity = pod.preferred_affinity_terms.clone();
        let mut preferred_anti_affinity = pod.preferred_anti_affinity_terms.clone();
        let all = snapshot.nodes();
        merge_namespace_selectors(
            preferred_affinity.iter_mut().map(|t| &mut t.term),
            pod,
            all,
            listers,
        );
        merge_namespace_selectors(
            preferred_anti_affinity.iter_mut().map(|t| &mut t.term),
            pod,
            all,
            listers,
        );
        let incoming = Incoming {
            pod,
            preferred_affinity,
            preferred_anti_affinity,
            namespace_labels: self.namespace_labels(pod.namespace()),
            hard_pod_affinity_weight: self.settings.hard_pod_affinity_weight,
        };

        let pairs = nodes
            .par_iter()
            .fold(HashMap::new, |mut pairs: PairCounts<'_>, node| {
                let labels = node.labels();
                let existing_pods = if has_constraints {
                    &node.pods
                } else {
                    &node.pods_with_affinity
                };
                for existing in existing_pods {
                    incoming.process_existing_pod(&mut pairs, existing, labels);
                }
                pairs
            })
            .reduce(HashMap::new, merge_pairs);
        if pairs.is_empty() {
            return Status::skip();
        }
        state.write(
            PRE_SCORE_STATE_KEY,
            PreScoreState {
                topology_score: Arc::new(TopologyCounts::from_pairs(pairs)),
            },
        );
        Status::success()
    }
}

fn read_state(state: &CycleState) -> Result<&PreScoreState, Status> {
    state
        .read::<PreScoreState>(PRE_SCORE_STATE_KEY)
        .ok_or_else(|| {
            Status::error(format!(
                "failed to read {PRE_SCORE_STATE_KEY:?} from cycleState: not found"
            ))
        })
}

impl ScorePlugin for InterPodAffinity {
    /// The summed weights of the topology pairs the node is in: positive for affinity, negative for
    /// anti-affinity; normalised afterwards.
    fn score(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        let s = read_state(state)?;
        let labels = node.labels();
        Ok(s.topology_score
            .by_key()
            .filter_map(|(key, values)| labels.get(key).and_then(|v| values.get(v)))
            .sum())
    }

    /// Maps [min, max] of the raw scores onto [0, MaxNodeScore].
    fn normalize_score(
        &self,
        state: &CycleState,
        _pod: &PodInfo,
        scores: &mut [NodeScore],
    ) -> Status {
        let s = match read_state(state) {
            Ok(s) => s,
            Err(status) => return status,
        };
        if s.topology_score.is_empty() {
            return Status::success();
        }
        let min = scores.iter().map(|s| s.score).min().unwrap_or(0);
        let max = scores.iter().map(|s| s.score).max().unwrap_or(0);
        let diff = max - min;
        for score in scores.iter_mut() {
            // Float arithmetic as upstream, so truncation gives the same integers.
            score.score = if diff > 0 {
                (MAX_NODE_SCORE as f64 * ((score.score - min) as f64 / diff as f64)) as i64
            } else {
                0
            };
        }
        Status::success()
    }
}
