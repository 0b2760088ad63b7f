//! Unit tests mirroring upstream's `noderesources` tests, case for case and number for number.

mod balanced_allocation;
mod fit;
mod fit_enough_requests;
mod least_allocated;
mod most_allocated;
mod requested_to_capacity_ratio;

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::ResourceSpec;
use crate::framework::{
    CycleState, Handle, NodeInfo, PodInfo, PreScorePlugin, ScorePlugin, Snapshot, StaticListers,
    Status,
};
use crate::testing::{MakeNode, MakePod, make_node, make_pod};

/// A handle without cluster objects.
fn handle() -> Handle {
    Handle::for_tests(StaticListers::default())
}

/// A pod without containers, as upstream's `st.MakePod()`; add containers with `.container(..)`.
fn pod() -> MakePod {
    make_pod("pod").with_spec(|spec| spec.containers.clear())
}

/// A node whose capacity and allocatable are `resources`.
fn node(name: &str, resources: &[(&str, &str)]) -> MakeNode {
    make_node(name).capacity(resources)
}

/// Upstream's `makeNode(name, milliCPU, memory, extended)` from `test_util.go`.
fn sized_node(name: &str, milli_cpu: i64, memory: i64, extended: &[(&str, i64)]) -> MakeNode {
    let mut resources = vec![
        ("cpu".to_string(), format!("{milli_cpu}m")),
        ("memory".to_string(), memory.to_string()),
    ];
    resources.extend(extended.iter().map(|(n, q)| (n.to_string(), q.to_string())));
    let pairs: Vec<(&str, &str)> = resources
        .iter()
        .map(|(n, q)| (n.as_str(), q.as_str()))
        .collect();
    node(name, &pairs)
}

/// A container requesting `requests`.
fn container(requests: &[(&str, &str)]) -> Container {
    Container {
        name: "c".into(),
        resources: Some(ResourceRequirements {
            requests: Some(quantities(requests)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect()
}

/// NodeInfos for `nodes`, each holding the `pods` bound to it.
fn node_infos(nodes: Vec<MakeNode>, pods: &[Pod]) -> Vec<Arc<NodeInfo>> {
    nodes
        .into_iter()
        .map(|node| {
            let name = node.0.metadata.name.clone();
            let mine = pods
                .iter()
                .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()) == name)
                .cloned()
                .collect();
            Arc::new(node.info(mine))
        })
        .collect()
}

/// The default resources with explicit weights, as upstream's `defaultResources`.
fn default_resources() -> Vec<ResourceSpec> {
    crate::config::ScoringStrategy::default().resources
}

/// Upstream's `extendedRes` and `extendedResourceSet`.
const EXTENDED_RES: &str = "abc.com/xyz";

fn extended_resource_set() -> Vec<ResourceSpec> {
    vec![
        ResourceSpec::new("cpu", 1),
        ResourceSpec::new("memory", 1),
        ResourceSpec::new(EXTENDED_RES, 1),
    ]
}

/// Runs PreScore (when asked) and Score on every node; returns PreScore's status and the scores.
fn run_score<P: PreScorePlugin + ScorePlugin>(
    plugin: &P,
    pod: &PodInfo,
    nodes: &[Arc<NodeInfo>],
    run_pre_score: bool,
) -> (Status, Vec<Result<i64, Status>>) {
    let mut state = CycleState::default();
    let snapshot = Snapshot::new(nodes.to_vec());
    let status = if run_pre_score {
        plugin.pre_score(&mut state, pod, nodes, &snapshot)
    } else {
        Status::success()
    };
    let scores = nodes
        .iter()
        .map(|node| plugin.score(&state, pod, node))
        .collect();
    (status, scores)
}

/// Runs PreScore and Score and expects both to succeed.
fn scores<P: PreScorePlugin + ScorePlugin>(
    plugin: &P,
    pod: &PodInfo,
    nodes: &[Arc<NodeInfo>],
    run_pre_score: bool,
) -> Vec<i64> {
    let (status, scores) = run_score(plugin, pod, nodes, run_pre_score);
    assert!(status.is_success(), "PreScore: {status}");
    scores
        .into_iter()
        .map(|score| score.unwrap_or_else(|status| panic!("Score: {status}")))
        .collect()
}
