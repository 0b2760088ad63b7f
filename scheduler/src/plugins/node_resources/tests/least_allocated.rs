//! Mirrors upstream's `least_allocated_test.go` (TestLeastAllocatedScoringStrategy).

use super::{
    EXTENDED_RES, default_resources, extended_resource_set, handle, node, node_infos, pod,
    run_score, scores,
};
use crate::config::{NodeResourcesFitArgs, ScoringStrategy, ScoringStrategyType};
use crate::framework::{Code, MAX_NODE_SCORE, MIN_NODE_SCORE};
use crate::plugins::node_resources::ResourceSpec;
use crate::plugins::node_resources::fit::Fit;

pub(super) fn fit(type_: ScoringStrategyType, resources: Vec<ResourceSpec>) -> Result<Fit, String> {
    Fit::new(
        &NodeResourcesFitArgs {
            scoring_strategy: ScoringStrategy {
                type_,
                resources,
                requested_to_capacity_ratio: None,
            },
            ..Default::default()
        },
        &handle(),
    )
}

/// The cases both LeastAllocated and MostAllocated share, by name: (pod requests per container,
/// node capacities, existing pods as (node, requests), resources).
pub(super) type ScoreCase = (
    &'static str,
    Vec<Vec<(&'static str, &'static str)>>,
    [Vec<(&'static str, &'static str)>; 2],
    Vec<(&'static str, Vec<(&'static str, &'static str)>)>,
    Vec<ResourceSpec>,
    [i64; 2],
);

pub(super) fn check(type_: ScoringStrategyType, cases: Vec<ScoreCase>) {
    for (name, requests, capacities, existing, resources, expected) in cases {
        let plugin = fit(type_, resources).expect("valid settings");
        let mut incoming = pod();
        for container in &requests {
            incoming = incoming.container("c", container);
        }
        let existing: Vec<_> = existing
            .iter()
            .map(|(node, requests)| {
                let p = pod().node(node);
                if requests.is_empty() {
                    p
                } else {
                    p.container("c", requests)
                }
                .obj()
            })
            .collect();
        let [node1, node2] = capacities;
        let nodes = node_infos(
            vec![node("node1", &node1), node("node2", &node2)],
            &existing,
        );
        assert_eq!(
            scores(&plugin, &incoming.info(), &nodes, true),
            expected,
            "{name}"
        );
    }
}

pub(super) fn resources_not_set_is_an_error(type_: ScoringStrategyType) {
    let plugin = fit(type_, vec![]).expect("valid settings");
    let nodes = node_infos(
        vec![node("node1", &[("cpu", "4000"), ("memory", "10000")])],
        &[],
    );
    let pod = pod()
        .container("c", &[("cpu", "1000"), ("memory", "2000")])
        .info();
    let (_, scores) = run_score(&plugin, &pod, &nodes, true);
    assert_eq!(scores[0].as_ref().map_err(|s| s.code()), Err(Code::Error));
}

pub(super) fn cap(cpu: &'static str, memory: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![("cpu", cpu), ("memory", memory)]
}

pub(super) fn two_containers() -> Vec<Vec<(&'static str, &'static str)>> {
    vec![cap("1000", "2000"), cap("2000", "3000")]
}

#[test]
fn least_allocated_scoring_strategy() {
    let weighted = vec![ResourceSpec::new("memory", 2), ResourceSpec::new("cpu", 1)];
    let ext_node = vec![("cpu", "6000"), ("memory", "10000"), (EXTENDED_RES, "4")];
    let ext_node10 = vec![("cpu", "6000"), ("memory", "10000"), (EXTENDED_RES, "10")];
    let cases: Vec<ScoreCase> = vec![
        (
            "nothing scheduled, nothing requested",
            vec![],
            [cap("4000", "10000"), cap("4000", "10000")],
            vec![],
            default_resources(),
            [MAX_NODE_SCORE, MAX_NODE_SCORE],
        ),
        (
            "nothing scheduled, resources requested, differently sized nodes",
            two_containers(),
            [cap("4000", "10000"), cap("6000", "10000")],
            vec![],
            default_resources(),
            [37, 50],
        ),
        (
            "no resources requested, pods scheduled",
            vec![],
            [cap("4000", "10000"), cap("4000", "10000")],
            vec![
                ("node1", vec![]),
                ("node1", vec![]),
                ("node2", vec![]),
                ("node2", vec![]),
            ],
            default_resources(),
            [MAX_NODE_SCORE, MAX_NODE_SCORE],
        ),
        (
            "no resources requested, pods scheduled with resources",
            vec![],
            [cap("10000", "20000"), cap("10000", "20000")],
            vec![
                ("node1", cap("3000", "0")),
                ("node1", cap("3000", "0")),
                ("node2", cap("3000", "0")),
                ("node2", cap("3000", "5000")),
            ],
            default_resources(),
            [70, 57],
        ),
        (
            "resources requested, pods scheduled with resources",
            two_containers(),
            [cap("10000", "20000"), cap("10000", "20000")],
            vec![("node1", cap("3000", "0")), ("node2", cap("3000", "5000"))],
            default_resources(),
            [57, 45],
        ),
        (
            "resources requested, pods scheduled with resources, differently sized nodes",
            two_containers(),
            [cap("10000", "20000"), cap("10000", "50000")],
            vec![("node1", cap("3000", "0")), ("node2", cap("3000", "5000"))],
            default_resources(),
            [57, 60],
        ),
        (
            "requested resources exceed node capacity",
            vec![cap("3000", "0")],
            [cap("4000", "10000"), cap("4000", "10000")],
            vec![("node1", cap("3000", "0")), ("node2", cap("3000", "5000"))],
            default_resources(),
            [50, 25],
        ),
        (
            "zero node resources, pods scheduled with resources",
            vec![],
            [vec![], vec![]],
            vec![("node1", cap("3000", "0")), ("node2", cap("3000", "5000"))],
            default_resources(),
            [MIN_NODE_SCORE, MIN_NODE_SCORE],
        ),
        (
            "nothing scheduled, resources requested with different weight on CPU and memory, differently sized nodes",
            two_containers(),
            [cap("4000", "10000"), cap("6000", "10000")],
            vec![],
            weighted,
            [41, 50],
        ),
        (
            "bypass extended resource if the pod does not request",
            two_containers(),
            [cap("6000", "10000"), ext_node.clone()],
            vec![],
            extended_resource_set(),
            [50, 50],
        ),
        (
            "honor extended resource if the pod requests",
            vec![vec![
                ("cpu", "3000"),
                ("memory", "5000"),
                (EXTENDED_RES, "2"),
            ]],
            [ext_node, ext_node10],
            vec![],
            extended_resource_set(),
            [50, 60],
        ),
        (
            "if the node doesn't have a resource",
            vec![cap("3000", "4000")],
            [
                cap("6000", "10000"),
                vec![("cpu", "6000"), ("memory", "10000"), (EXTENDED_RES, "4")],
            ],
            vec![],
            vec![
                ResourceSpec::new(EXTENDED_RES, 2),
                ResourceSpec::new("cpu", 1),
                ResourceSpec::new("memory", 1),
            ],
            [55, 55],
        ),
    ];
    check(ScoringStrategyType::LeastAllocated, cases);
    resources_not_set_is_an_error(ScoringStrategyType::LeastAllocated);
}
