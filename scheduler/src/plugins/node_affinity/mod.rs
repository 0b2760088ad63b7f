//! NodeAffinity: a pod fits nodes matching its nodeSelector and required node affinity (plus the
//! profile's `addedAffinity`), and prefers nodes matching its preferred terms (upstream
//! `plugins/nodeaffinity`).

mod parse;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Node, NodeAffinity as NodeAffinitySpec, NodeSelector, Pod, PreferredSchedulingTerm,
};

use super::helper::{default_normalize_score, node_labels, node_selector_matches, term_matches};
use crate::config::NodeAffinityArgs;
use crate::framework::{
    ActionType, ClusterEvent, CycleState, EventResource, FilterPlugin, Handle, MAX_NODE_SCORE,
    NodeInfo, NodeScore, Plugin, PodInfo, PreFilterPlugin, PreFilterResult, PreScorePlugin,
    ScorePlugin, Snapshot, Status,
};
use parse::{is_empty_term, scored_terms, term_error};

/// The plugin name.
pub const NAME: &str = "NodeAffinity";
/// The reason for a node that does not match the pod's nodeSelector or required node affinity.
pub const ERR_REASON_POD: &str = "node(s) didn't match Pod's node affinity/selector";
/// The reason for a node that does not match the profile's added affinity.
pub const ERR_REASON_ENFORCED: &str = "node(s) didn't match scheduler-enforced node affinity";
/// The PreFilter reason when every term names nodes by `metadata.name` and no node is left.
pub const ERR_REASON_CONFLICT: &str = "pod affinity terms conflict";
const PRE_FILTER_STATE_KEY: &str = "PreFilterNodeAffinity";
const PRE_SCORE_STATE_KEY: &str = "PreScoreNodeAffinity";

/// Which of the pod's required terms upstream could parse, computed once per cycle.
#[derive(Clone, Debug)]
struct PreFilterState {
    valid_terms: Option<Arc<[bool]>>,
}

/// The indices of the pod's preferred terms that count, computed once per cycle.
#[derive(Clone, Debug)]
struct PreScoreState {
    scored_terms: Arc<[usize]>,
}

/// The NodeAffinity plugin.
#[derive(Debug, Default)]
pub struct NodeAffinity {
    added_node_selector: Option<NodeSelector>,
    // Only the terms that count; `Some` whenever the added affinity lists preferred terms.
    added_preferred_terms: Option<Vec<PreferredSchedulingTerm>>,
}

impl NodeAffinity {
    /// Creates the plugin; refuses added affinity upstream cannot parse.
    pub fn new(args: &NodeAffinityArgs, _handle: &Handle) -> Result<Self, String> {
        let Some(added) = args.added_affinity.clone() else {
            return Ok(Self::default());
        };
        if let Some(selector) = &added.required_during_scheduling_ignored_during_execution {
            let error = selector
                .node_selector_terms
                .iter()
                .enumerate()
                .filter(|(_, t)| !is_empty_term(t))
                .find_map(|(i, t)| term_error(t).map(|e| format!("nodeSelectorTerms[{i}].{e}")));
            if let Some(error) = error {
                return Err(format!(
                    "parsing addedAffinity.requiredDuringSchedulingIgnoredDuringExecution: {error}"
                ));
            }
        }
        let added_preferred_terms = match added.preferred_during_scheduling_ignored_during_execution
        {
            Some(terms) if !terms.is_empty() => {
                let scored = scored_terms(&terms).map_err(|e| {
                    format!(
                        "parsing addedAffinity.preferredDuringSchedulingIgnoredDuringExecution: {e}"
                    )
                })?;
                Some(scored.into_iter().map(|i| terms[i].clone()).collect())
            }
            _ => None,
        };
        Ok(Self {
            added_node_selector: added.required_during_scheduling_ignored_during_execution,
            added_preferred_terms,
        })
    }
}

fn node_affinity(pod: &Pod) -> Option<&NodeAffinitySpec> {
    pod.spec.as_ref()?.affinity.as_ref()?.node_affinity.as_ref()
}

fn required_affinity(pod: &Pod) -> Option<&NodeSelector> {
    node_affinity(pod)?
        .required_during_scheduling_ignored_during_execution
        .as_ref()
}

fn preferred_affinity(pod: &Pod) -> Option<&[PreferredSchedulingTerm]> {
    node_affinity(pod)?
        .preferred_during_scheduling_ignored_during_execution
        .as_deref()
}

/// Whether `node` satisfies the pod's nodeSelector and required affinity; `valid_terms` says which
/// required terms parse (computed here when PreFilter did not run).
fn matches_required(pod: &Pod, node: &Node, valid_terms: Option<&[bool]>) -> bool {
    let labels = node_labels(node);
    let selector_ok = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_selector.as_ref())
        .is_none_or(|selector| selector.iter().all(|(k, v)| labels.get(k) == Some(v)));
    if !selector_ok {
        return false;
    }
    let Some(required) = required_affinity(pod) else {
        return true;
    };
    required
        .node_selector_terms
        .iter()
        .enumerate()
        .any(|(i, term)| {
            let valid = match valid_terms {
                Some(valid) => valid.get(i).copied().unwrap_or(false),
                None => term_error(term).is_none(),
            };
            valid && term_matches(term, node)
        })
}

/// The nodes named by `metadata.name In` field requirements when every term has one (terms are ORed,
/// requirements within a term ANDed); `None` when some term allows any node.
fn required_node_names(required: &NodeSelector) -> Option<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for term in &required.node_selector_terms {
        let mut term_names: Option<BTreeSet<String>> = None;
        for r in term.match_fields.iter().flatten() {
            if r.key != "metadata.name" || r.operator != "In" {
                continue;
            }
            let values: BTreeSet<String> = r.values.iter().flatten().cloned().collect();
            term_names = Some(match term_names {
                None => values,
                Some(names) => names.intersection(&values).cloned().collect(),
            });
        }
        names.extend(term_names?);
    }
    Some(names)
}

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEvent> {
        vec![ClusterEvent::new(
            EventResource::Node,
            ActionType::ADD.or(ActionType::UPDATE_NODE_LABEL),
        )]
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

impl PreFilterPlugin for NodeAffinity {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _snapshot: &Snapshot,
    ) -> (Option<PreFilterResult>, Status) {
        let required = required_affinity(&pod.pod);
        let has_node_selector = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.node_selector.as_ref())
            .is_some_and(|s| !s.is_empty());
        if required.is_none() && self.added_node_selector.is_none() && !has_node_selector {
            return (None, Status::skip());
        }
        let valid_terms = required.map(|r| {
            r.node_selector_terms
                .iter()
                .map(|t| term_error(t).is_none())
                .collect()
        });
        state.write(PRE_FILTER_STATE_KEY, PreFilterState { valid_terms });
        let Some(required) = required.filter(|r| !r.node_selector_terms.is_empty()) else {
            return (None, Status::success());
        };
        match required_node_names(required) {
            Some(names) if names.is_empty() => (None, Status::unresolvable(ERR_REASON_CONFLICT)),
            Some(names) => (
                Some(PreFilterResult {
                    node_names: Some(names),
                }),
                Status::success(),
            ),
            None => (None, Status::success()),
        }
    }
}

impl FilterPlugin for NodeAffinity {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(node) = node.node() else {
            return Status::error("node not found");
        };
        if let Some(added) = &self.added_node_selector
            && !node_selector_matches(added, node)
        {
            return Status::unresolvable(ERR_REASON_ENFORCED);
        }
        // Without PreFilter state (PreFilter disabled) the terms are checked here, as upstream.
        let valid_terms = state
            .read::<PreFilterState>(PRE_FILTER_STATE_KEY)
            .and_then(|s| s.valid_terms.as_deref());
        if matches_required(&pod.pod, node, valid_terms) {
            Status::success()
        } else {
            Status::unresolvable(ERR_REASON_POD)
        }
    }
}

impl PreScorePlugin for NodeAffinity {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[Arc<NodeInfo>],
        _snapshot: &Snapshot,
    ) -> Status {
        let preferred = preferred_affinity(&pod.pod);
        if preferred.is_none() && self.added_preferred_terms.is_none() {
            return Status::skip();
        }
        match scored_terms(preferred.unwrap_or_default()) {
            Ok(scored) => {
                state.write(
                    PRE_SCORE_STATE_KEY,
                    PreScoreState {
                        scored_terms: scored.into(),
                    },
                );
                Status::success()
            }
            Err(error) => Status::error(error),
        }
    }
}

impl ScorePlugin for NodeAffinity {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        let Some(node) = node.node() else {
            return Err(Status::error("node not found"));
        };
        let weight_if_matches = |term: &PreferredSchedulingTerm| {
            if term_matches(&term.preference, node) {
                i64::from(term.weight)
            } else {
                0
            }
        };
        let mut count: i64 = self
            .added_preferred_terms
            .iter()
            .flatten()
            .map(weight_if_matches)
            .sum();
        let preferred = preferred_affinity(&pod.pod).unwrap_or_default();
        match state.read::<PreScoreState>(PRE_SCORE_STATE_KEY) {
            Some(s) => {
                count += s
                    .scored_terms
                    .iter()
                    .filter_map(|i| preferred.get(*i))
                    .map(weight_if_matches)
                    .sum::<i64>();
            }
            // Without PreScore state (PreScore disabled) the terms are parsed here, as upstream.
            None => {
                let scored = scored_terms(preferred).map_err(Status::error)?;
                count += scored
                    .iter()
                    .map(|i| weight_if_matches(&preferred[*i]))
                    .sum::<i64>();
            }
        }
        Ok(count)
    }

    fn normalize_score(
        &self,
        _state: &CycleState,
        _pod: &PodInfo,
        scores: &mut [NodeScore],
    ) -> Status {
        default_normalize_score(MAX_NODE_SCORE, false, scores);
        Status::success()
    }
}
