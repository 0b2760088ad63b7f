//! Mirrors upstream's `balanced_allocation_test.go` (TestNodeResourcesBalancedAllocation) as of 1.36,
//! where the score reflects the change in balance (kubernetes#135573). Each case's comment gives the
//! resources' fractions without -> with the pod and the balances without -> with it.

use k8s_openapi::api::core::v1::Pod;

use super::{handle, node_infos, pod, run_score, scores, sized_node};
use crate::config::NodeResourcesBalancedAllocationArgs;
use crate::framework::Code;
use crate::plugins::node_resources::ResourceSpec;
use crate::plugins::node_resources::balanced_allocation::BalancedAllocation;

const GPU: &str = "nvidia.com/gpu";

fn plugin(resources: &[&str]) -> BalancedAllocation {
    let resources = resources.iter().map(|r| ResourceSpec::new(r, 1)).collect();
    BalancedAllocation::new(
        &NodeResourcesBalancedAllocationArgs { resources },
        &handle(),
    )
    .expect("valid settings")
}

fn spec(node: &str, containers: &[&[(&str, &str)]]) -> Pod {
    containers
        .iter()
        .fold(pod().node(node), |p, requests| p.container("c", requests))
        .obj()
}

fn cpu_only(node: &str) -> Pod {
    spec(
        node,
        &[
            &[("cpu", "1000m"), ("memory", "0")],
            &[("cpu", "2000m"), ("memory", "0")],
        ],
    )
}

fn memory_only(node: &str) -> Pod {
    spec(
        node,
        &[
            &[("cpu", "0"), ("memory", "2000")],
            &[("cpu", "0"), ("memory", "3000")],
        ],
    )
}

fn cpu_and_memory(node: &str) -> Pod {
    spec(
        node,
        &[
            &[("cpu", "1000m"), ("memory", "2000")],
            &[("cpu", "2000m"), ("memory", "3000")],
        ],
    )
}

fn cpu_and_memory_and_gpu(node: &str) -> Pod {
    spec(
        node,
        &[
            &[("cpu", "1000m"), ("memory", "2000")],
            &[("cpu", "2000m"), ("memory", "3000"), (GPU, "3")],
        ],
    )
}

#[test]
fn best_effort_pods_are_skipped_in_pre_score() {
    let plugin = plugin(&["cpu", "memory"]);
    let nodes = node_infos(
        vec![
            sized_node("node1", 4000, 10000, &[]),
            sized_node("node2", 4000, 10000, &[]),
        ],
        &[],
    );
    let (status, _) = run_score(&plugin, &pod().info(), &nodes, true);
    assert_eq!(status.code(), Code::Skip);
}

/// (name, incoming pod, node1 and node2 as (milli CPU, memory, extended), existing pods, balanced
/// resources, expected scores).
type Case = (
    &'static str,
    Pod,
    [(i64, i64, &'static [(&'static str, i64)]); 2],
    Vec<Pod>,
    &'static [&'static str],
    [i64; 2],
);

#[test]
fn node_resources_balanced_allocation() {
    const DEFAULT: &[&str] = &["cpu", "memory"];
    const WITH_GPU: &[&str] = &["cpu", "memory", GPU];
    let gpu_pod = pod().container("c", &[("memory", "0"), (GPU, "1")]).obj();
    let cases: Vec<Case> = vec![
        // node1: cpu 0 -> 75%, memory 0 -> 50%: 100 -> 87. node2: cpu 0 -> 50%, memory 0 -> 50%: 100 -> 100.
        (
            "nothing scheduled, resources requested, differently sized nodes",
            cpu_and_memory("node2"),
            [(4000, 10000, &[]), (6000, 10000, &[])],
            vec![],
            DEFAULT,
            [68, 75],
        ),
        // node1: cpu 30% -> 60%, memory 0 -> 25%: 85 -> 82. node2: cpu 30% -> 60%, memory 25% -> 50%: 97 -> 95.
        (
            "resources requested, pods scheduled with resources",
            cpu_and_memory("node2"),
            [(10000, 20000, &[]), (10000, 20000, &[])],
            vec![cpu_only("node1"), cpu_and_memory("node2")],
            DEFAULT,
            [73, 74],
        ),
        // node2: cpu 30% -> 60%, memory 10% -> 20%: 90 -> 80.
        (
            "resources requested, pods scheduled with resources, differently sized nodes",
            cpu_and_memory("node2"),
            [(10000, 20000, &[]), (10000, 50000, &[])],
            vec![cpu_only("node1"), cpu_and_memory("node2")],
            DEFAULT,
            [73, 70],
        ),
        // node1: cpu 100% -> 100%, memory 0 -> 100%: 50 -> 100. node2: cpu 0 -> 0, memory 0 -> 100%: 100 -> 50.
        (
            "resources requested, pods scheduled with resources, nodes to reach min/max score",
            memory_only("node1"),
            [(3000, 5000, &[]), (3000, 5000, &[])],
            vec![cpu_only("node1")],
            DEFAULT,
            [100, 50],
        ),
        // node1: cpu 50% -> 100%, memory 0 -> 0: 75 -> 50. node2: cpu 50% -> 100%, memory 50% -> 50%: 100 -> 75.
        (
            "requested resources at node capacity",
            cpu_only("node1"),
            [(6000, 10000, &[]), (6000, 10000, &[])],
            vec![cpu_only("node1"), cpu_and_memory("node2")],
            DEFAULT,
            [62, 62],
        ),
        // node1: cpu 85.7%, memory 12.5%, gpu 37.5% -> 50%: 69 -> 70.
        // node2: cpu 85.7%, memory 12.5%, gpu 0 -> 12.5%: 62 -> 65.
        (
            "include scalar resource on a node for balanced resource allocation",
            gpu_pod,
            [(3500, 40000, &[(GPU, 8)]), (3500, 40000, &[(GPU, 8)])],
            vec![cpu_and_memory("node2"), cpu_and_memory_and_gpu("node1")],
            WITH_GPU,
            [75, 76],
        ),
        // Both: cpu 0 -> 85.7%, memory 0 -> 12.5%, the GPU the pod does not request left out: 100 -> 63.
        (
            "node without the scalar resource should skip the scalar resource",
            cpu_and_memory("node2"),
            [(3500, 40000, &[(GPU, 8)]), (3500, 40000, &[])],
            vec![],
            WITH_GPU,
            [56, 56],
        ),
    ];
    for (name, incoming, [(cpu1, mem1, ext1), (cpu2, mem2, ext2)], existing, resources, expected) in
        cases
    {
        let plugin = plugin(resources);
        let nodes = node_infos(
            vec![
                sized_node("node1", cpu1, mem1, ext1),
                sized_node("node2", cpu2, mem2, ext2),
            ],
            &existing,
        );
        let incoming = crate::framework::PodInfo::new(std::sync::Arc::new(incoming));
        // Whether or not PreScore ran, the scores are the same.
        for run_pre_score in [true, false] {
            assert_eq!(
                scores(&plugin, &incoming, &nodes, run_pre_score),
                expected,
                "{name}, PreScore run: {run_pre_score}"
            );
        }
    }
}
