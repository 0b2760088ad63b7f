//! Builders shared by the filtering and scoring tests (upstream's `st.MakePod().PodAffinityIn(...)` and
//! friends).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Affinity, Node, Pod, PodAffinity, PodAffinityTerm, PodAntiAffinity, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::super::InterPodAffinity;
use crate::config::InterPodAffinityArgs;
use crate::framework::{Code, Handle, NodeInfo, PodInfo, Snapshot, StaticListers, Status};
use crate::testing::{MakePod, make_node};

/// An expected Filter verdict: None for success, else code and reason.
pub type Want = Option<(Code, &'static str)>;
/// Filter passes.
pub const OK: Want = None;
/// The pod's affinity is not satisfied.
pub const AFFINITY: Want = Some((
    Code::UnschedulableAndUnresolvable,
    super::super::ERR_REASON_AFFINITY_RULES_NOT_MATCH,
));
/// The pod's anti-affinity is not satisfied.
pub const ANTI: Want = Some((
    Code::Unschedulable,
    super::super::ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH,
));
/// An existing pod's anti-affinity is not satisfied.
pub const EXISTING: Want = Some((
    Code::Unschedulable,
    super::super::ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH,
));

/// A status as a Want.
pub fn verdict(status: &Status) -> Want {
    (!status.is_success()).then(|| {
        let reason: &'static str = match status.message().as_str() {
            super::super::ERR_REASON_AFFINITY_RULES_NOT_MATCH => {
                super::super::ERR_REASON_AFFINITY_RULES_NOT_MATCH
            }
            super::super::ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH => {
                super::super::ERR_REASON_ANTI_AFFINITY_RULES_NOT_MATCH
            }
            super::super::ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH => {
                super::super::ERR_REASON_EXISTING_ANTI_AFFINITY_RULES_NOT_MATCH
            }
            _ => "unexpected reason",
        };
        (status.code(), reason)
    })
}

/// A node with exactly `labels`.
pub fn node(name: &str, labels: &[(&str, &str)]) -> Node {
    let mut node = make_node(name).obj();
    node.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    node
}

/// A snapshot of `nodes` holding `pods` on the nodes they are bound to (pods on unknown nodes are dropped,
/// as a snapshot only lists nodes it has objects for).
pub fn snapshot(pods: &[Pod], nodes: &[Node]) -> Snapshot {
    let infos = nodes
        .iter()
        .map(|n| {
            let mut info = NodeInfo::new(Arc::new(n.clone()));
            for pod in pods {
                let bound = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
                if bound == n.metadata.name.as_deref() {
                    info.add_pod(Arc::new(PodInfo::new(Arc::new(pod.clone()))));
                }
            }
            Arc::new(info)
        })
        .collect();
    Snapshot::new(infos)
}

/// Upstream's test namespaces: two labelled team=team1, two team=team2.
pub fn team_namespaces() -> Vec<(&'static str, &'static str)> {
    vec![
        ("subteam1.team1", "team1"),
        ("subteam2.team1", "team1"),
        ("subteam1.team2", "team2"),
        ("subteam2.team2", "team2"),
    ]
}

/// The plugin over namespaces (name, team label).
pub fn plugin(settings: InterPodAffinityArgs, namespaces: &[(&str, &str)]) -> InterPodAffinity {
    let listers = StaticListers {
        namespaces: namespaces
            .iter()
            .map(|(name, team)| {
                let labels = BTreeMap::from([("team".to_string(), team.to_string())]);
                (name.to_string(), labels)
            })
            .collect(),
        ..Default::default()
    };
    InterPodAffinity::new(&settings, &Handle::for_tests(listers)).expect("valid settings")
}

/// A label selector of (key, operator, values) requirements.
pub fn selector(requirements: &[(&str, &str, &[&str])]) -> LabelSelector {
    LabelSelector {
        match_expressions: Some(
            requirements
                .iter()
                .map(|(key, operator, values)| LabelSelectorRequirement {
                    key: key.to_string(),
                    operator: operator.to_string(),
                    values: (!values.is_empty())
                        .then(|| values.iter().map(|v| v.to_string()).collect()),
                })
                .collect(),
        ),
        ..Default::default()
    }
}

/// A term over `topology` whose selector has `requirements`.
pub fn term(topology: &str, requirements: &[(&str, &str, &[&str])]) -> PodAffinityTerm {
    PodAffinityTerm {
        label_selector: Some(selector(requirements)),
        topology_key: topology.to_string(),
        ..Default::default()
    }
}

/// `key In values` over `topology`.
pub fn term_in(key: &str, topology: &str, values: &[&str]) -> PodAffinityTerm {
    term(topology, &[(key, "In", values)])
}

/// `key Exists` over `topology`.
pub fn term_exists(key: &str, topology: &str) -> PodAffinityTerm {
    term(topology, &[(key, "Exists", &[])])
}

/// The term restricted to `namespaces` and namespaces labelled team in `teams` (empty: every namespace).
pub fn in_namespaces(
    mut term: PodAffinityTerm,
    namespaces: &[&str],
    teams: Option<&[&str]>,
) -> PodAffinityTerm {
    term.namespaces =
        (!namespaces.is_empty()).then(|| namespaces.iter().map(|n| n.to_string()).collect());
    term.namespace_selector = teams.map(|teams| match teams {
        [] => LabelSelector::default(),
        teams => selector(&[("team", "In", teams)]),
    });
    term
}

/// Pod (anti-)affinity additions for MakePod.
pub trait AffinityExt {
    /// Adds labels.
    fn labels(self, labels: &[(&str, &str)]) -> Self;
    /// Adds a required affinity term.
    fn affinity(self, term: PodAffinityTerm) -> Self;
    /// Adds a required anti-affinity term.
    fn anti_affinity(self, term: PodAffinityTerm) -> Self;
    /// Adds a preferred affinity term.
    fn preferred_affinity(self, weight: i32, term: PodAffinityTerm) -> Self;
    /// Adds a preferred anti-affinity term.
    fn preferred_anti_affinity(self, weight: i32, term: PodAffinityTerm) -> Self;
}

fn affinity(pod: &mut MakePod) -> &mut Affinity {
    pod.0
        .spec
        .get_or_insert_with(Default::default)
        .affinity
        .get_or_insert_with(Default::default)
}

fn pod_affinity(pod: &mut MakePod) -> &mut PodAffinity {
    affinity(pod)
        .pod_affinity
        .get_or_insert_with(Default::default)
}

fn pod_anti_affinity(pod: &mut MakePod) -> &mut PodAntiAffinity {
    affinity(pod)
        .pod_anti_affinity
        .get_or_insert_with(Default::default)
}

fn weighted(weight: i32, term: PodAffinityTerm) -> WeightedPodAffinityTerm {
    WeightedPodAffinityTerm {
        weight,
        pod_affinity_term: term,
    }
}

impl AffinityExt for MakePod {
    fn labels(mut self, labels: &[(&str, &str)]) -> Self {
        for (k, v) in labels {
            self = self.label(k, v);
        }
        self
    }
    fn affinity(mut self, term: PodAffinityTerm) -> Self {
        pod_affinity(&mut self)
            .required_during_scheduling_ignored_during_execution
            .get_or_insert_with(Default::default)
            .push(term);
        self
    }
    fn anti_affinity(mut self, term: PodAffinityTerm) -> Self {
        pod_anti_affinity(&mut self)
            .required_during_scheduling_ignored_during_execution
            .get_or_insert_with(Default::default)
            .push(term);
        self
    }
    fn preferred_affinity(mut self, weight: i32, term: PodAffinityTerm) -> Self {
        pod_affinity(&mut self)
            .preferred_during_scheduling_ignored_during_execution
            .get_or_insert_with(Default::default)
            .push(weighted(weight, term));
        self
    }
    fn preferred_anti_affinity(mut self, weight: i32, term: PodAffinityTerm) -> Self {
        pod_anti_affinity(&mut self)
            .preferred_during_scheduling_ignored_during_execution
            .get_or_insert_with(Default::default)
            .push(weighted(weight, term));
        self
    }
}
