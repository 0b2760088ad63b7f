//! Mirrors upstream's `most_allocated_test.go` (TestMostAllocatedScoringStrategy).

use super::least_allocated::{
    ScoreCase, cap, check, resources_not_set_is_an_error, two_containers,
};
use super::{EXTENDED_RES, default_resources, extended_resource_set};
use crate::config::ScoringStrategyType;
use crate::framework::MIN_NODE_SCORE;
use crate::plugins::node_resources::ResourceSpec;

#[test]
fn most_allocated_scoring_strategy() {
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
            [MIN_NODE_SCORE, MIN_NODE_SCORE],
        ),
        (
            "nothing scheduled, resources requested, differently sized nodes",
            two_containers(),
            [cap("4000", "10000"), cap("6000", "10000")],
            vec![],
            default_resources(),
            [62, 50],
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
            [30, 42],
        ),
        (
            "resources requested, pods scheduled with resources",
            two_containers(),
            [cap("10000", "20000"), cap("10000", "20000")],
            vec![("node1", cap("3000", "0")), ("node2", cap("3000", "5000"))],
            default_resources(),
            [42, 55],
        ),
        (
            "resources requested equal node capacity",
            vec![cap("2000", "4000"), cap("3000", "5000")],
            [cap("5000", "10000"), cap("10000", "9000")],
            vec![],
            default_resources(),
            [95, 75],
        ),
        (
            "nothing scheduled, resources requested with different weight on CPU and memory, differently sized nodes",
            two_containers(),
            [cap("4000", "10000"), cap("6000", "10000")],
            vec![],
            weighted,
            [58, 50],
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
            "honor extended resource if the pod request",
            vec![vec![
                ("cpu", "3000"),
                ("memory", "5000"),
                (EXTENDED_RES, "2"),
            ]],
            [ext_node, ext_node10],
            vec![],
            extended_resource_set(),
            [50, 40],
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
            [45, 45],
        ),
    ];
    check(ScoringStrategyType::MostAllocated, cases);
    resources_not_set_is_an_error(ScoringStrategyType::MostAllocated);
}

/// Containers without requests count at the defaults (100m CPU, 200Mi memory), beyond a small node's
/// capacity, where the used share is capped at 100%.
#[test]
fn most_allocated_counts_containers_without_requests_at_defaults() {
    use super::{node, node_infos, pod, scores};
    let plugin =
        super::least_allocated::fit(ScoringStrategyType::MostAllocated, default_resources())
            .expect("valid settings");
    let empty: &[(&str, &str)] = &[];
    let existing = vec![
        pod().node("node1").container("c", empty).obj(),
        pod().node("node1").container("c", empty).obj(),
    ];
    let small = [("cpu", "250m"), ("memory", "1000Mi")];
    let nodes = node_infos(
        vec![node("node1", &small), node("node2", &small)],
        &existing,
    );
    let incoming = pod().container("c", empty).info();
    assert_eq!(scores(&plugin, &incoming, &nodes, true), [80, 30]);
}
