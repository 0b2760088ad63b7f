//! A pod with what the scheduler computes from it once: requests and parsed (anti-)affinity terms
//! (upstream `framework.PodInfo`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, WeightedPodAffinityTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};

use super::resource::{Resource, pod_requests};

/// A label selector as the scheduler evaluates it: `None` matches nothing (a nil selector), an empty one
/// matches everything.
pub type CompiledSelector = Option<Selector>;

/// Compiles a LabelSelector, keeping nil distinct from empty.
pub fn compile_selector(selector: Option<&LabelSelector>) -> Result<CompiledSelector, String> {
    selector
        .map(|s| Selector::try_from(s.clone()).map_err(|e| e.to_string()))
        .transpose()
}

/// Whether `selector` matches `labels`.
pub fn selector_matches(selector: &CompiledSelector, labels: &BTreeMap<String, String>) -> bool {
    selector.as_ref().is_some_and(|s| s.matches(labels))
}

/// One pod (anti-)affinity term, with its namespaces resolved (upstream `framework.AffinityTerm`).
#[derive(Clone, Debug)]
pub struct AffinityTerm {
    /// Namespaces named by the term, or the pod's own when it names none and has no namespace selector.
    pub namespaces: BTreeSet<String>,
    /// Which pods the term is about.
    pub selector: CompiledSelector,
    /// The node label that defines "the same place".
    pub topology_key: String,
    /// Namespaces chosen by their labels.
    pub namespace_selector: CompiledSelector,
}

impl AffinityTerm {
    fn new(pod_namespace: &str, term: &PodAffinityTerm) -> Result<Self, String> {
        let mut namespaces: BTreeSet<String> = term.namespaces.iter().flatten().cloned().collect();
        if namespaces.is_empty() && term.namespace_selector.is_none() {
            namespaces.insert(pod_namespace.to_string());
        }
        Ok(Self {
            namespaces,
            selector: compile_selector(term.label_selector.as_ref())?,
            topology_key: term.topology_key.clone(),
            namespace_selector: compile_selector(term.namespace_selector.as_ref())?,
        })
    }

    /// Whether `pod` (in a namespace labelled `namespace_labels`) is one this term is about.
    pub fn matches(&self, pod: &Pod, namespace_labels: &BTreeMap<String, String>) -> bool {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        (self.namespaces.contains(namespace)
            || selector_matches(&self.namespace_selector, namespace_labels))
            && selector_matches(&self.selector, labels(pod))
    }
}

/// A preferred term with its weight.
#[derive(Clone, Debug)]
pub struct WeightedAffinityTerm {
    /// The term.
    pub term: AffinityTerm,
    /// Its weight, 1-100.
    pub weight: i32,
}

/// A pod with its precomputed scheduling facts.
#[derive(Clone, Debug)]
pub struct PodInfo {
    /// The pod.
    pub pod: Arc<Pod>,
    /// Effective requests (Fit).
    pub requests: Resource,
    /// Requests with defaults for containers that ask for nothing (scoring).
    pub non_zero_requests: Resource,
    /// requiredDuringScheduling pod affinity.
    pub required_affinity_terms: Vec<AffinityTerm>,
    /// requiredDuringScheduling pod anti-affinity.
    pub required_anti_affinity_terms: Vec<AffinityTerm>,
    /// preferredDuringScheduling pod affinity.
    pub preferred_affinity_terms: Vec<WeightedAffinityTerm>,
    /// preferredDuringScheduling pod anti-affinity.
    pub preferred_anti_affinity_terms: Vec<WeightedAffinityTerm>,
    /// Why a term could not be parsed, if one could not.
    pub parse_error: Option<String>,
}

impl PodInfo {
    /// Computes the facts for `pod`.
    pub fn new(pod: Arc<Pod>) -> Self {
        let (requests, non_zero_requests) = pod_requests(&pod);
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let affinity = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
        let pod_affinity = affinity.and_then(|a| a.pod_affinity.as_ref());
        let pod_anti_affinity = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        let mut errors = Vec::new();
        let mut required = |terms: Option<&Vec<PodAffinityTerm>>| -> Vec<AffinityTerm> {
            terms
                .into_iter()
                .flatten()
                .filter_map(|t| {
                    AffinityTerm::new(&namespace, t)
                        .map_err(|e| errors.push(e))
                        .ok()
                })
                .collect()
        };
        let required_affinity_terms = required(pod_affinity.and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        }));
        let required_anti_affinity_terms = required(pod_anti_affinity.and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        }));
        let mut preferred = |terms: Option<&Vec<WeightedPodAffinityTerm>>| {
            terms
                .into_iter()
                .flatten()
                .filter_map(|t| {
                    AffinityTerm::new(&namespace, &t.pod_affinity_term)
                        .map(|term| WeightedAffinityTerm {
                            term,
                            weight: t.weight,
                        })
                        .map_err(|e| errors.push(e))
                        .ok()
                })
                .collect()
        };
        let preferred_affinity_terms = preferred(pod_affinity.and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        }));
        let preferred_anti_affinity_terms = preferred(pod_anti_affinity.and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        }));
        Self {
            pod,
            requests,
            non_zero_requests,
            required_affinity_terms,
            required_anti_affinity_terms,
            preferred_affinity_terms,
            preferred_anti_affinity_terms,
            parse_error: (!errors.is_empty()).then(|| errors.join("; ")),
        }
    }

    /// The pod's name.
    pub fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or_default()
    }

    /// The pod's namespace.
    pub fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or_default()
    }

    /// The pod's UID.
    pub fn uid(&self) -> &str {
        self.pod.metadata.uid.as_deref().unwrap_or_default()
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace(), self.name())
    }

    /// The pod's priority (0 when admission set none).
    pub fn priority(&self) -> i32 {
        priority(&self.pod)
    }

    /// Whether the pod has any pod affinity or anti-affinity terms.
    pub fn has_affinity(&self) -> bool {
        !self.required_affinity_terms.is_empty()
            || !self.required_anti_affinity_terms.is_empty()
            || !self.preferred_affinity_terms.is_empty()
            || !self.preferred_anti_affinity_terms.is_empty()
    }
}

/// A pod's labels (empty when it has none).
pub fn labels(pod: &Pod) -> &BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    pod.metadata.labels.as_ref().unwrap_or(&EMPTY)
}

/// A pod's priority (0 when admission set none).
pub fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}
