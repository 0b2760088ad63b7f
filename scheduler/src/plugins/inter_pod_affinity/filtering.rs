//! PreFilter and Filter (upstream `interpodaffinity/filtering.go`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rayon::prelude::*;

use super::{
    InterPodAffinity, MergedSelector, NO_LABELS, PairCounts, TopologyCounts, add_pair,
    admit_namespace, merge_namespace_selectors, merge_pairs, pod_matches_all_terms,
};
use crate::framework::pod_info::AffinityTerm;
use crate::framework::{
    CycleState, FilterPlugin, NodeInfo, PodInfo, PreFilterExtensions, PreFilterPlugin,
    PreFilterResult, Snapshot, Status,
};

/// The CycleState key of the PreFilter state.
pub const PRE_FILTER_STATE_KEY: &str = "PreFilterInterPodAffinity";

/// The node would break an existing pod's required anti-affinity.
pub const ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";
/// The node does not satisfy the pod's required affinity.
pub const ERR_REASON_AFFINITY_RULES_NOT_MATCH: &str = "node(s) didn't match pod affinity rules";
/// The node does not satisfy the pod's required anti-affinity.
pub const ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH: &str =
    "node(s) didn't match pod anti-affinity rules";

/// The incoming pod's required terms with namespaceSelectors merged, and what depends only on them. Shared
/// between the clones preemption makes of the state.
#[derive(Clone, Debug)]
struct IncomingTerms {
    affinity: Vec<AffinityTerm>,
    anti_affinity: Vec<AffinityTerm>,
    merged_affinity: Vec<MergedSelector>,
    merged_anti_affinity: Vec<MergedSelector>,
    /// The pod matches all its own affinity terms (the first pod of a self-affine group).
    matches_own_affinity: bool,
    /// The incoming pod's namespace labels, for existing pods' namespaceSelectors.
    namespace_labels: BTreeMap<String, String>,
}

/// What PreFilter computes for Filter (upstream `preFilterState`).
#[derive(Clone, Debug)]
pub(crate) struct PreFilterState {
    /// Existing pods whose required anti-affinity terms match the incoming pod, by topology pair.
    existing_anti_affinity_counts: TopologyCounts,
    /// Existing pods matching all the incoming pod's required affinity terms, by topology pair.
    affinity_counts: TopologyCounts,
    /// Existing pods matching the incoming pod's required anti-affinity terms, by topology pair.
    anti_affinity_counts: TopologyCounts,
    terms: Arc<IncomingTerms>,
}

impl PreFilterState {
    /// Counts `other` on `node` `multiplier` times (1 added, -1 removed), as upstream's `updateWithPod`.
    fn update_with_pod(
        &mut self,
        pod: &PodInfo,
        other: &PodInfo,
        node: &NodeInfo,
        multiplier: i64,
    ) {
        let labels = node.labels();
        for term in &other.required_anti_affinity_terms {
            if term.matches(&pod.pod, &self.terms.namespace_labels) {
                update(
                    &mut self.existing_anti_affinity_counts,
                    labels,
                    term,
                    multiplier,
                );
            }
        }
        if pod_matches_all_terms(&self.terms.affinity, other) {
            for term in &self.terms.affinity {
                update(&mut self.affinity_counts, labels, term, multiplier);
            }
        }
        for term in &self.terms.anti_affinity {
            if term.matches(&other.pod, &NO_LABELS) {
                update(&mut self.anti_affinity_counts, labels, term, multiplier);
            }
        }
    }

    /// Entries of the three maps, for tests.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> [&TopologyCounts; 3] {
        [
            &self.existing_anti_affinity_counts,
            &self.affinity_counts,
            &self.anti_affinity_counts,
        ]
    }
}

fn update(
    counts: &mut TopologyCounts,
    labels: &BTreeMap<String, String>,
    term: &AffinityTerm,
    delta: i64,
) {
    if let Some(value) = labels.get(&term.topology_key) {
        counts.update(&term.topology_key, value, delta);
    }
}

/// Existing pods' required anti-affinity terms that match the incoming pod, by topology pair (upstream
/// `getExistingAntiAffinityCounts`).
fn existing_anti_affinity_counts(
    pod: &PodInfo,
    namespace_labels: &BTreeMap<String, String>,
    nodes: &[&Arc<NodeInfo>],
) -> TopologyCounts {
    let pairs = nodes
        .par_iter()
        .fold(HashMap::new, |mut pairs: PairCounts<'_>, node| {
            let labels = node.labels();
            for existing in &node.pods_with_required_anti_affinity {
                for term in &existing.required_anti_affinity_terms {
                    if term.matches(&pod.pod, namespace_labels) {
                        add_pair(&mut pairs, labels, &term.topology_key, 1);
                    }
                }
            }
            pairs
        })
        .reduce(HashMap::new, merge_pairs);
    TopologyCounts::from_pairs(pairs)
}

/// Existing pods matching all the incoming pod's affinity terms, and those matching each of its anti-affinity
/// terms, by topology pair (upstream `getIncomingAffinityAntiAffinityCounts`).
fn incoming_counts(
    terms: &IncomingTerms,
    nodes: &[Arc<NodeInfo>],
) -> (TopologyCounts, TopologyCounts) {
    let (affinity, anti_affinity) = nodes
        .par_iter()
        .fold(
            || (HashMap::new(), HashMap::new()),
            |(mut affinity, mut anti): (PairCounts<'_>, PairCounts<'_>), node| {
                let labels = node.labels();
                for existing in &node.pods {
                    if pod_matches_all_terms(&terms.affinity, existing) {
                        for term in &terms.affinity {
                            add_pair(&mut affinity, labels, &term.topology_key, 1);
                        }
                    }
                    for term in &terms.anti_affinity {
                        if term.matches(&existing.pod, &NO_LABELS) {
                            add_pair(&mut anti, labels, &term.topology_key, 1);
                        }
                    }
                }
                (affinity, anti)
            },
        )
        .reduce(
            || (HashMap::new(), HashMap::new()),
            |a, b| (merge_pairs(a.0, b.0), merge_pairs(a.1, b.1)),
        );
    (
        TopologyCounts::from_pairs(affinity),
        TopologyCounts::from_pairs(anti_affinity),
    )
}

impl PreFilterPlugin for InterPodAffinity {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> (Option<PreFilterResult>, Status) {
        if let Some(error) = &pod.parse_error {
            return (None, Status::unresolvable(format!("parsing pod: {error}")));
        }
        let has_terms =
            !pod.required_affinity_terms.is_empty() || !pod.required_anti_affinity_terms.is_empty();
        let with_anti_affinity: Vec<_> = snapshot.nodes_with_required_anti_affinity().collect();
        if !has_terms && with_anti_affinity.is_empty() {
            return (None, Status::skip());
        }
        let namespace_labels = self.namespace_labels(pod.namespace());
        let existing_anti_affinity_counts =
            existing_anti_affinity_counts(pod, &namespace_labels, &with_anti_affinity);
        if !has_terms && existing_anti_affinity_counts.is_empty() {
            return (None, Status::skip());
        }

        let listers = self.listers.as_ref();
        let mut affinity = pod.required_affinity_terms.clone();
        let mut anti_affinity = pod.required_anti_affinity_terms.clone();
        let merged_affinity =
            merge_namespace_selectors(affinity.iter_mut(), pod, snapshot.nodes(), listers);
        let merged_anti_affinity =
            merge_namespace_selectors(anti_affinity.iter_mut(), pod, snapshot.nodes(), listers);
        let terms = IncomingTerms {
            matches_own_affinity: pod_matches_all_terms(&affinity, pod),
            affinity,
            anti_affinity,
            merged_affinity,
            merged_anti_affinity,
            namespace_labels,
        };
        let (affinity_counts, anti_affinity_counts) = if has_terms {
            incoming_counts(&terms, snapshot.nodes())
        } else {
            Default::default()
        };
        state.write(
            PRE_FILTER_STATE_KEY,
            PreFilterState {
                existing_anti_affinity_counts,
                affinity_counts,
                anti_affinity_counts,
                terms: Arc::new(terms),
            },
        );
        (None, Status::success())
    }

    fn pre_filter_extensions(&self) -> Option<&dyn PreFilterExtensions> {
        Some(self)
    }
}

impl InterPodAffinity {
    fn update_state(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        other: &PodInfo,
        node: &NodeInfo,
        multiplier: i64,
    ) -> Status {
        let Some(s) = state.read_mut::<PreFilterState>(PRE_FILTER_STATE_KEY) else {
            return not_found();
        };
        let terms = &s.terms;
        let unseen = |merged: &[MergedSelector], terms: &[AffinityTerm]| {
            merged
                .iter()
                .any(|m| !terms[m.index].namespaces.contains(other.namespace()))
        };
        if unseen(&terms.merged_affinity, &terms.affinity)
            || unseen(&terms.merged_anti_affinity, &terms.anti_affinity)
        {
            let terms = Arc::make_mut(&mut s.terms);
            let listers = self.listers.as_ref();
            let namespace = other.namespace();
            admit_namespace(
                &mut terms.affinity,
                &terms.merged_affinity,
                namespace,
                listers,
            );
            admit_namespace(
                &mut terms.anti_affinity,
                &terms.merged_anti_affinity,
                namespace,
                listers,
            );
        }
        s.update_with_pod(pod, other, node, multiplier);
        Status::success()
    }
}

impl PreFilterExtensions for InterPodAffinity {
    fn add_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        added: &PodInfo,
        node: &NodeInfo,
    ) -> Status {
        self.update_state(state, pod, added, node, 1)
    }

    fn remove_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        removed: &PodInfo,
        node: &NodeInfo,
    ) -> Status {
        self.update_state(state, pod, removed, node, -1)
    }
}

fn not_found() -> Status {
    Status::error(format!(
        "error reading {PRE_FILTER_STATE_KEY:?} from cycleState: not found"
    ))
}

/// Whether placing the pod on a node labelled `labels` breaks no existing pod's required anti-affinity.
fn satisfy_existing_pods_anti_affinity(
    s: &PreFilterState,
    labels: &BTreeMap<String, String>,
) -> bool {
    // Upstream walks the node's labels; walking the few topology keys counted is the same test.
    s.existing_anti_affinity_counts
        .by_key()
        .all(|(key, values)| {
            labels
                .get(key)
                .and_then(|value| values.get(value))
                .is_none_or(|count| *count <= 0)
        })
}

/// Whether no pod matching the pod's required anti-affinity shares a topology domain with the node.
fn satisfy_pod_anti_affinity(s: &PreFilterState, labels: &BTreeMap<String, String>) -> bool {
    s.anti_affinity_counts.is_empty()
        || s.terms.anti_affinity.iter().all(|term| {
            labels
                .get(&term.topology_key)
                .is_none_or(|value| s.anti_affinity_counts.get(&term.topology_key, value) <= 0)
        })
}

/// Whether the node has every topology key of the pod's required affinity, with a matching pod in each
/// domain; or no pod matches anywhere and the pod matches its own terms (the first of a self-affine group).
fn satisfy_pod_affinity(s: &PreFilterState, labels: &BTreeMap<String, String>) -> bool {
    let mut pods_exist = true;
    for term in &s.terms.affinity {
        let Some(value) = labels.get(&term.topology_key) else {
            return false;
        };
        if s.affinity_counts.get(&term.topology_key, value) <= 0 {
            pods_exist = false;
        }
    }
    pods_exist || (s.affinity_counts.is_empty() && s.terms.matches_own_affinity)
}

impl FilterPlugin for InterPodAffinity {
    fn filter(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>(PRE_FILTER_STATE_KEY) else {
            return not_found();
        };
        let labels = node.labels();
        if !satisfy_pod_affinity(s, labels) {
            // Evicting pods cannot create the pods the affinity needs.
            return Status::unresolvable(ERR_REASON_AFFINITY_RULES_NOT_MATCH);
        }
        if !satisfy_pod_anti_affinity(s, labels) {
            return Status::unschedulable(ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH);
        }
        if !satisfy_existing_pods_anti_affinity(s, labels) {
            return Status::unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH);
        }
        Status::success()
    }
}
