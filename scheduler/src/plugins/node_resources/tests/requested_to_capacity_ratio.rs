//! Mirrors upstream's `requested_to_capacity_ratio_test.go`: TestRequestedToCapacityRatioScoringStrategy,
//! TestBrokenLinearFunction, TestResourceBinPackingSingleExtended and
//! TestResourceBinPackingMultipleExtended.

use super::least_allocated::cap;
use super::{default_resources, handle, node, node_infos, pod, scores, sized_node};
use crate::config::{
    NodeResourcesFitArgs, RequestedToCapacityRatioParam, ScoringStrategy, ScoringStrategyType,
    UtilizationShapePoint,
};
use crate::framework::MAX_NODE_SCORE;
use crate::plugins::node_resources::ResourceSpec;
use crate::plugins::node_resources::fit::Fit;
use crate::plugins::node_resources::requested_to_capacity_ratio::{
    FunctionShape, FunctionShapePoint,
};

fn fit(resources: Vec<ResourceSpec>, shape: &[(i32, i32)]) -> Fit {
    let shape = shape
        .iter()
        .map(|&(utilization, score)| UtilizationShapePoint { utilization, score })
        .collect();
    let scoring_strategy = ScoringStrategy {
        type_: ScoringStrategyType::RequestedToCapacityRatio,
        resources,
        requested_to_capacity_ratio: Some(RequestedToCapacityRatioParam { shape }),
    };
    Fit::new(
        &NodeResourcesFitArgs {
            scoring_strategy,
            ..Default::default()
        },
        &handle(),
    )
    .expect("valid settings")
}

#[test]
fn requested_to_capacity_ratio_scoring_strategy() {
    let plugin = fit(default_resources(), &[(0, 10), (100, 0)]);
    let idle = || vec![pod().node("node1").obj(), pod().node("node1").obj()];
    let busy = || {
        vec![
            pod()
                .node("node1")
                .container("c", &cap("3000", "5000"))
                .obj(),
            pod()
                .node("node2")
                .container("c", &cap("3000", "5000"))
                .obj(),
        ]
    };
    let two_containers = pod()
        .container("c", &cap("1000", "2000"))
        .container("c", &cap("2000", "3000"));
    let cases = [
        (
            "nothing scheduled, nothing requested (default - least requested nodes have priority)",
            pod(),
            "4000",
            idle(),
            [MAX_NODE_SCORE, MAX_NODE_SCORE],
        ),
        (
            "nothing scheduled, resources requested, differently sized nodes (default - least requested nodes have priority)",
            two_containers,
            "6000",
            idle(),
            [38, 50],
        ),
        (
            "no resources requested, pods scheduled with resources (default - least requested nodes have priority)",
            pod(),
            "6000",
            busy(),
            [38, 50],
        ),
    ];
    for (name, incoming, node2_cpu, existing, expected) in cases {
        let nodes = node_infos(
            vec![
                node("node1", &cap("4000", "10000")),
                node("node2", &cap(node2_cpu, "10000")),
            ],
            &existing,
        );
        assert_eq!(
            scores(&plugin, &incoming.info(), &nodes, true),
            expected,
            "{name}"
        );
    }
}

/// A function's points and (argument, value) assertions, as (utilization, score) pairs.
type Points = (&'static [(i64, i64)], &'static [(i64, i64)]);

#[test]
fn broken_linear_function() {
    let cases: [Points; 3] = [
        (
            &[(10, 1), (90, 9)],
            &[
                (-10, 1),
                (0, 1),
                (9, 1),
                (10, 1),
                (15, 1),
                (19, 1),
                (20, 2),
                (89, 8),
                (90, 9),
                (99, 9),
                (100, 9),
                (110, 9),
            ],
        ),
        (
            &[(0, 2), (40, 10), (100, 0)],
            &[
                (-10, 2),
                (0, 2),
                (20, 6),
                (30, 8),
                (40, 10),
                (70, 5),
                (100, 0),
                (110, 0),
            ],
        ),
        (
            &[(0, 2), (40, 2), (100, 2)],
            &[
                (-10, 2),
                (0, 2),
                (20, 2),
                (30, 2),
                (40, 2),
                (70, 2),
                (100, 2),
                (110, 2),
            ],
        ),
    ];
    for (points, assertions) in cases {
        let shape = FunctionShape(
            points
                .iter()
                .map(|&(utilization, score)| FunctionShapePoint { utilization, score })
                .collect(),
        );
        for &(p, expected) in assertions {
            assert_eq!(shape.value(p), expected, "points={points:?}, p={p}");
        }
    }
}

const FOO: &str = "intel.com/foo";
const BAR: &str = "intel.com/bar";
/// 10000Mi, upstream's `10000*1024*1024`.
const MEMORY: i64 = 10000 * 1024 * 1024;

#[test]
fn resource_bin_packing_single_extended() {
    let plugin = fit(vec![ResourceSpec::new(FOO, 1)], &[(0, 0), (100, 1)]);
    let cases = [
        (
            "nothing scheduled, nothing requested",
            pod(),
            vec![],
            [0, 0],
        ),
        (
            "resources requested, pods scheduled with less resources",
            pod().container("c", &[(FOO, "2")]),
            vec![pod().obj()],
            [2, 5],
        ),
        (
            "resources requested, pods scheduled with resources, on node with existing pod running",
            pod().container("c", &[(FOO, "2")]),
            vec![pod().container("c", &[(FOO, "2")]).node("node2").obj()],
            [2, 10],
        ),
        (
            "resources requested, pods scheduled with more resources",
            pod().container("c", &[(FOO, "4")]),
            vec![pod().obj()],
            [5, 10],
        ),
    ];
    for (name, incoming, existing, expected) in cases {
        let nodes = node_infos(
            vec![
                sized_node("node1", 4000, MEMORY, &[(FOO, 8)]),
                sized_node("node2", 4000, MEMORY, &[(FOO, 4)]),
            ],
            &existing,
        );
        assert_eq!(
            scores(&plugin, &incoming.info(), &nodes, true),
            expected,
            "{name}"
        );
    }
}

#[test]
fn resource_bin_packing_multiple_extended() {
    let plugin = fit(
        vec![ResourceSpec::new(FOO, 3), ResourceSpec::new(BAR, 5)],
        &[(0, 0), (100, 1)],
    );
    let pod1 = [(FOO, "2"), (BAR, "2")];
    let pod2 = [(FOO, "4"), (BAR, "2")];
    let cases = [
        (
            "nothing scheduled, nothing requested",
            pod(),
            vec![pod().obj()],
            [0, 0],
        ),
        (
            "resources requested, pods scheduled with less resources",
            pod().container("c", &pod1),
            vec![pod().obj()],
            [4, 3],
        ),
        (
            "resources requested, pods scheduled with resources, on node with existing pod running",
            pod().container("c", &pod1),
            vec![pod().container("c", &pod2).node("node2").obj()],
            [4, 7],
        ),
        (
            "resources requested, pods scheduled with more resources",
            pod().container("c", &pod2),
            vec![pod().obj()],
            [5, 5],
        ),
    ];
    for (name, incoming, existing, expected) in cases {
        let nodes = node_infos(
            vec![
                sized_node("node1", 4000, MEMORY, &[(FOO, 8), (BAR, 4)]),
                sized_node("node2", 4000, MEMORY, &[(FOO, 4), (BAR, 8)]),
            ],
            &existing,
        );
        assert_eq!(
            scores(&plugin, &incoming.info(), &nodes, true),
            expected,
            "{name}"
        );
    }
}
