//! InterPodAffinity (upstream `plugins/interpodaffinity`): required pod affinity and anti-affinity, the pod's
//! own and the existing pods' towards it, as a filter; preferred terms of both sides, and the existing pods'
//! required affinity weighted by `hardPodAffinityWeight`, as a score.

mod filtering;
mod scoring;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use kube::core::{Selector, SelectorExt};

use crate::config::InterPodAffinityArgs;
use crate::framework::pod_info::AffinityTerm;
use crate::framework::{
    ActionType, ClusterEvent, EventResource, FilterPlugin, Handle, Listers, NodeInfo, Plugin,
    PodInfo, PreFilterPlugin, PreScorePlugin, ScorePlugin,
};

pub use filtering::{
    ERR_REASON_AFFINITY_RULES_NOT_MATCH, ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH,
    ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH, PRE_FILTER_STATE_KEY,
};
pub use scoring::PRE_SCORE_STATE_KEY;

/// The plugin name.
pub const NAME: &str = "InterPodAffinity";

/// The InterPodAffinity plugin.
pub struct InterPodAffinity {
    settings: InterPodAffinityArgs,
    listers: Arc<dyn Listers>,
}

impl InterPodAffinity {
    /// Builds the plugin with `args`, already validated with the configuration.
    pub fn new(args: &InterPodAffinityArgs, handle: &Handle) -> Result<Self, String> {
        Ok(Self {
            settings: args.clone(),
            listers: handle.listers.clone(),
        })
    }

    /// The labels of `namespace`, empty when it is unknown (upstream `GetNamespaceLabelsSnapshot`).
    fn namespace_labels(&self, namespace: &str) -> BTreeMap<String, String> {
        self.listers.namespace_labels(namespace).unwrap_or_default()
    }
}

impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEvent> {
        vec![
            // Deleting a pod may lift an anti-affinity conflict; adding or relabelling one may satisfy
            // an affinity term.
            ClusterEvent::new(
                EventResource::AssignedPod,
                ActionType::ADD
                    .or(ActionType::UPDATE_POD_LABEL)
                    .or(ActionType::DELETE),
            ),
            // Upstream without queueing hints also registers UpdateNodeTaint: a node added while not ready
            // is only seen once its taints change.
            ClusterEvent::new(
                EventResource::Node,
                ActionType::ADD
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

/// Counts (or summed weights) by topology key and value (upstream `topologyToMatchedTermCount` and
/// `scoreMap`). Nested maps so that Filter and Score look pairs up by `&str` without allocating.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TopologyCounts(HashMap<String, HashMap<String, i64>>);

/// Counts by borrowed (topology key, value), while PreFilter/PreScore accumulate them in parallel.
type PairCounts<'a> = HashMap<(&'a str, &'a str), i64>;

impl TopologyCounts {
    /// The count for `key`=`value`.
    pub(crate) fn get(&self, key: &str, value: &str) -> i64 {
        self.0
            .get(key)
            .and_then(|values| values.get(value))
            .copied()
            .unwrap_or(0)
    }

    /// Adds `delta` to `key`=`value`, dropping the entry at zero so that emptiness keeps meaning
    /// "nothing matched" after preemption's what-if removals.
    pub(crate) fn update(&mut self, key: &str, value: &str, delta: i64) {
        let values = self.0.entry(key.to_string()).or_default();
        let count = values.entry(value.to_string()).or_default();
        *count += delta;
        if *count == 0 {
            values.remove(value);
            if values.is_empty() {
                self.0.remove(key);
            }
        }
    }

    /// Whether there are no entries.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries by topology key.
    pub(crate) fn by_key(&self) -> impl Iterator<Item = (&String, &HashMap<String, i64>)> {
        self.0.iter()
    }

    /// Owned counts from borrowed pairs, keeping every entry.
    fn from_pairs(pairs: PairCounts<'_>) -> Self {
        let mut counts = Self::default();
        for ((key, value), count) in pairs {
            *counts
                .0
                .entry(key.to_string())
                .or_default()
                .entry(value.to_string())
                .or_default() += count;
        }
        counts
    }

    /// Entries as (key, value, count), for tests comparing with upstream's maps.
    #[cfg(test)]
    pub(crate) fn entries(&self) -> std::collections::BTreeSet<(String, String, i64)> {
        self.0
            .iter()
            .flat_map(|(k, values)| values.iter().map(|(v, c)| (k.clone(), v.clone(), *c)))
            .collect()
    }
}

/// Adds `delta` for `key` on a node labelled `labels`, if the node has that label.
fn add_pair<'a>(
    pairs: &mut PairCounts<'a>,
    labels: &'a BTreeMap<String, String>,
    key: &'a str,
    delta: i64,
) {
    if let Some(value) = labels.get(key) {
        *pairs.entry((key, value.as_str())).or_default() += delta;
    }
}

/// Merges per-thread pair counts.
fn merge_pairs<'a>(mut a: PairCounts<'a>, mut b: PairCounts<'a>) -> PairCounts<'a> {
    if a.len() < b.len() {
        std::mem::swap(&mut a, &mut b);
    }
    for (pair, count) in b {
        *a.entry(pair).or_default() += count;
    }
    a
}

/// Labels of a pod's namespace when the term's namespaces were already resolved (upstream passes nil).
static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// Whether `pod` matches every term; false without terms (upstream `podMatchesAllAffinityTerms`). The terms
/// are the incoming pod's, whose namespaceSelector is already merged into their namespaces.
fn pod_matches_all_terms(terms: &[AffinityTerm], pod: &PodInfo) -> bool {
    !terms.is_empty() && terms.iter().all(|t| t.matches(&pod.pod, &NO_LABELS))
}

/// A namespaceSelector that picked particular namespaces, merged away from term `index`; kept so that
/// namespaces not seen when merging (a nominated pod's) can still be admitted later.
#[derive(Clone, Debug)]
pub(crate) struct MergedSelector {
    index: usize,
    selector: Selector,
}

/// Whether the term's namespaceSelector must be resolved into names: one selecting everything matches
/// every pod as it is, and a missing one matches none.
fn selects_some_namespaces(term: &AffinityTerm) -> bool {
    term.namespace_selector
        .as_ref()
        .is_some_and(|s| !s.selects_all())
}

/// The namespaces a namespaceSelector may usefully pick, with their labels: those of the pods in the snapshot
/// and the incoming pod's own. Upstream lists every namespace; the others hold no pod a term could match.
fn candidate_namespaces(
    pod: &PodInfo,
    nodes: &[Arc<NodeInfo>],
    listers: &dyn Listers,
) -> Vec<(String, BTreeMap<String, String>)> {
    let mut names: HashSet<&str> = nodes
        .iter()
        .flat_map(|n| n.pods.iter().map(|p| p.namespace()))
        .collect();
    names.insert(pod.namespace());
    names
        .into_iter()
        .filter_map(|ns| listers.namespace_labels(ns).map(|l| (ns.to_string(), l)))
        .collect()
}

/// Upstream's `mergeAffinityTermNamespacesIfNotEmpty` over `terms`: a namespaceSelector that picks particular
/// namespaces is replaced by the names of the matching candidates, so that matching an existing pod needs no
/// lookup of its namespace. Returns the selectors merged away.
fn merge_namespace_selectors<'a>(
    terms: impl Iterator<Item = &'a mut AffinityTerm>,
    pod: &PodInfo,
    nodes: &[Arc<NodeInfo>],
    listers: &dyn Listers,
) -> Vec<MergedSelector> {
    let mut candidates = None;
    let mut merged = Vec::new();
    for (index, term) in terms.enumerate() {
        if !selects_some_namespaces(term) {
            continue;
        }
        let Some(selector) = term.namespace_selector.take() else {
            continue;
        };
        let candidates =
            candidates.get_or_insert_with(|| candidate_namespaces(pod, nodes, listers));
        for (namespace, labels) in candidates.iter() {
            if selector.matches(labels) {
                term.namespaces.insert(namespace.clone());
            }
        }
        merged.push(MergedSelector { index, selector });
    }
    merged
}

/// Adds `namespace` to the terms whose merged selector picks it, if it was not a candidate when merging.
fn admit_namespace(
    terms: &mut [AffinityTerm],
    merged: &[MergedSelector],
    namespace: &str,
    listers: &dyn Listers,
) {
    if merged
        .iter()
        .all(|m| terms[m.index].namespaces.contains(namespace))
    {
        return;
    }
    let Some(labels) = listers.namespace_labels(namespace) else {
        return;
    };
    for m in merged {
        if m.selector.matches(&labels) {
            terms[m.index].namespaces.insert(namespace.to_string());
        }
    }
}
