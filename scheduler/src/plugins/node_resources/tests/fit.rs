//! Mirrors upstream's `fit_test.go` (TestEnoughRequests is in `fit_enough_requests.rs`): TestPreFilterDisabled, TestNotEnoughRequests,
//! TestStorageRequests, TestRestartableInitContainers (sidecars enabled, as in 1.36), TestFitScore and
//! TestEventsToRegister (queueing hints enabled).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Pod, ResourceRequirements};

use super::{container, default_resources, handle, node, node_infos, pod, quantities, scores};
use crate::config::{
    NodeResourcesFitArgs, RequestedToCapacityRatioParam, ScoringStrategy, ScoringStrategyType,
    UtilizationShapePoint,
};
use crate::framework::{
    ActionType, ClusterEvent, Code, CycleState, EventResource, FilterPlugin, NodeInfo, Plugin,
    PreFilterPlugin, Snapshot, Status,
};
use crate::plugins::node_resources::fit::Fit;
use crate::testing::make_node;

pub(super) const EXTENDED_A: &str = "example.com/aaa";
pub(super) const EXTENDED_B: &str = "example.com/bbb";
pub(super) const KUBERNETES_IO_A: &str = "kubernetes.io/something";
pub(super) const KUBERNETES_IO_B: &str = "subdomain.kubernetes.io/something";
pub(super) const HUGE_PAGE_A: &str = "hugepages-2Mi";

/// One container's requests, as upstream's `framework.Resource` arguments to `newResourcePod`.
#[derive(Clone, Copy, Default)]
pub(super) struct Usage {
    pub(super) cpu: i64,
    pub(super) memory: i64,
    pub(super) storage: i64,
    pub(super) scalar: &'static [(&'static str, i64)],
}

pub(super) fn u(cpu: i64, memory: i64) -> Usage {
    Usage {
        cpu,
        memory,
        ..Default::default()
    }
}

pub(super) fn s(cpu: i64, memory: i64, scalar: &'static [(&'static str, i64)]) -> Usage {
    Usage {
        cpu,
        memory,
        scalar,
        ..Default::default()
    }
}

fn storage(storage: i64) -> Usage {
    Usage {
        storage,
        ..Default::default()
    }
}

/// Upstream's `newResourcePod` container: every field requested, zeros included.
fn usage_container(usage: &Usage) -> Container {
    let (cpu, memory, storage) = (
        format!("{}m", usage.cpu),
        usage.memory.to_string(),
        usage.storage.to_string(),
    );
    let scalar: Vec<(&str, String)> = usage
        .scalar
        .iter()
        .map(|(n, q)| (*n, q.to_string()))
        .collect();
    let mut requests = vec![
        ("cpu", cpu.as_str()),
        ("memory", memory.as_str()),
        ("pods", "0"),
        ("ephemeral-storage", storage.as_str()),
    ];
    requests.extend(scalar.iter().map(|(n, q)| (*n, q.as_str())));
    container(&requests)
}

pub(super) fn resource_pod(usages: &[Usage]) -> Pod {
    let containers = usages.iter().map(usage_container).collect();
    pod().with_spec(|spec| spec.containers = containers).obj()
}

pub(super) fn init_pod(mut pod: Pod, usages: &[Usage]) -> Pod {
    if let Some(spec) = pod.spec.as_mut() {
        spec.init_containers = Some(usages.iter().map(usage_container).collect());
    }
    pod
}

pub(super) fn overhead_pod(mut pod: Pod, overhead: &[(&str, &str)]) -> Pod {
    if let Some(spec) = pod.spec.as_mut() {
        spec.overhead = Some(quantities(overhead));
    }
    pod
}

pub(super) fn pod_level_pod(mut pod: Pod, requests: &[(&str, &str)]) -> Pod {
    if let Some(spec) = pod.spec.as_mut() {
        spec.resources = Some(ResourceRequirements {
            requests: Some(quantities(requests)),
            ..Default::default()
        });
    }
    pod
}

/// A node with upstream's `makeAllocatableResources(10, 20, 32, 5, 20, 5)` holding `existing`.
pub(super) fn standard_node(existing: Pod) -> NodeInfo {
    make_node("node")
        .capacity(&[
            ("cpu", "10m"),
            ("memory", "20"),
            ("pods", "32"),
            (EXTENDED_A, "5"),
            ("ephemeral-storage", "20"),
            (HUGE_PAGE_A, "5"),
        ])
        .info(vec![existing])
}

pub(super) fn fit(args: NodeResourcesFitArgs) -> Fit {
    Fit::new(&args, &handle()).expect("valid settings")
}

/// PreFilter then Filter, as the framework runs them.
pub(super) fn filter(plugin: &Fit, pod: Pod, node: &NodeInfo) -> Status {
    let pod = crate::framework::PodInfo::new(Arc::new(pod));
    let mut state = CycleState::default();
    let (_, status) = plugin.pre_filter(&mut state, &pod, &Snapshot::default());
    assert!(status.is_success(), "PreFilter: {status}");
    plugin.filter(&state, &pod, node)
}

fn want(code: Code, reasons: &[&str]) -> Status {
    Status::new(code, reasons.iter().map(|r| r.to_string()).collect())
}

pub(super) fn insufficient(name: &str) -> String {
    format!("Insufficient {name}")
}

/// (resource, requested, used, capacity, unresolvable) of each insufficient resource.
pub(super) type Lacking = (&'static str, i64, i64, i64, bool);

#[test]
fn filter_without_pre_filter_is_an_error() {
    let plugin = fit(NodeResourcesFitArgs::default());
    let pod = crate::framework::PodInfo::new(Arc::new(pod().obj()));
    let status = plugin.filter(
        &CycleState::default(),
        &pod,
        &make_node("node").info(vec![]),
    );
    assert_eq!(status.code(), Code::Error);
}

#[test]
fn not_enough_requests() {
    let cases = [
        (
            "even without specified resources, predicate fails when there's no space for additional pod",
            pod().obj(),
            u(10, 20),
        ),
        (
            "even if both resources fit, predicate fails when there's no space for additional pod",
            resource_pod(&[u(1, 1)]),
            u(5, 5),
        ),
        (
            "even for equal edge case, predicate fails when there's no space for additional pod",
            resource_pod(&[u(5, 1)]),
            u(5, 19),
        ),
        (
            "even for equal edge case, predicate fails when there's no space for additional pod due to init container",
            init_pod(resource_pod(&[u(5, 1)]), &[u(5, 1)]),
            u(5, 19),
        ),
    ];
    let plugin = fit(NodeResourcesFitArgs::default());
    for (name, pod, existing) in cases {
        let node = make_node("node")
            .capacity(&[
                ("cpu", "10m"),
                ("memory", "20"),
                ("pods", "1"),
                (EXTENDED_A, "0"),
                ("ephemeral-storage", "0"),
                (HUGE_PAGE_A, "0"),
            ])
            .info(vec![resource_pod(&[existing])]);
        assert_eq!(
            filter(&plugin, pod, &node),
            want(Code::Unschedulable, &["Too many pods"]),
            "{name}"
        );
    }
}

#[test]
fn storage_requests() {
    let cases = [
        (
            "empty storage requested, and pod fits",
            resource_pod(&[u(1, 1)]),
            u(2, 10),
            Status::success(),
        ),
        (
            "storage ephemeral local storage request exceeds allocatable",
            resource_pod(&[storage(25)]),
            u(2, 2),
            want(
                Code::UnschedulableAndUnresolvable,
                &["Insufficient ephemeral-storage"],
            ),
        ),
        (
            "ephemeral local storage is sufficient",
            init_pod(resource_pod(&[storage(5)]), &[]),
            Usage {
                storage: 10,
                ..u(2, 2)
            },
            Status::success(),
        ),
        (
            "pod fits",
            resource_pod(&[storage(10)]),
            u(2, 2),
            Status::success(),
        ),
    ];
    let plugin = fit(NodeResourcesFitArgs::default());
    for (name, pod, existing, expected) in cases {
        let node = standard_node(resource_pod(&[existing]));
        assert_eq!(filter(&plugin, pod, &node), expected, "{name}");
    }
}

#[test]
fn restartable_init_containers_count_with_the_app_containers() {
    let with_sidecar = |regular: Option<&str>, sidecar: Option<&str>| {
        let requests =
            |cpu: Option<&str>| cpu.map(|c| container(&[("cpu", c)])).unwrap_or_default();
        let mut sidecar = requests(sidecar);
        sidecar.restart_policy = Some("Always".into());
        pod()
            .with_spec(|spec| {
                spec.containers = vec![requests(regular)];
                spec.init_containers = Some(vec![sidecar]);
            })
            .obj()
    };
    let cases = [
        (
            "allow pod without restartable init containers",
            pod()
                .with_spec(|s| s.containers = vec![Container::default()])
                .obj(),
            Status::success(),
        ),
        (
            "allow pod with restartable init containers",
            with_sidecar(None, None),
            Status::success(),
        ),
        (
            "allow pod if the total requested resources do not exceed the node's allocatable resources",
            with_sidecar(Some("1m"), Some("1m")),
            Status::success(),
        ),
        (
            "not allow pod if the total requested resources do exceed the node's allocatable resources",
            with_sidecar(Some("1m"), Some("2m")),
            want(Code::UnschedulableAndUnresolvable, &["Insufficient cpu"]),
        ),
    ];
    let plugin = fit(NodeResourcesFitArgs::default());
    for (name, pod, expected) in cases {
        let node = make_node("node")
            .capacity(&[("cpu", "2m"), ("memory", "0"), ("pods", "1")])
            .info(vec![]);
        assert_eq!(filter(&plugin, pod, &node), expected, "{name}");
    }
}

fn rtcr(shape: &[(i32, i32)]) -> ScoringStrategy {
    ScoringStrategy {
        type_: ScoringStrategyType::RequestedToCapacityRatio,
        resources: default_resources(),
        requested_to_capacity_ratio: Some(RequestedToCapacityRatioParam {
            shape: shape
                .iter()
                .map(|&(utilization, score)| UtilizationShapePoint { utilization, score })
                .collect(),
        }),
    }
}

fn strategy(type_: ScoringStrategyType) -> ScoringStrategy {
    ScoringStrategy {
        type_,
        ..Default::default()
    }
}

#[test]
fn fit_score() {
    use ScoringStrategyType::{LeastAllocated, MostAllocated};
    let sidecar_pod = pod()
        .node("node1")
        .container("c", &[("cpu", "1000"), ("memory", "2000")])
        .with_spec(|spec| {
            let mut sidecar = container(&[("cpu", "1000"), ("memory", "2000")]);
            sidecar.restart_policy = Some("Always".into());
            spec.init_containers = Some(vec![sidecar]);
        })
        .obj();
    let plain = || {
        vec![
            pod()
                .node("node1")
                .container("c", &[("cpu", "2000"), ("memory", "4000")])
                .obj(),
            pod()
                .node("node2")
                .container("c", &[("cpu", "1000"), ("memory", "2000")])
                .obj(),
        ]
    };
    let with_sidecar = || {
        vec![
            sidecar_pod.clone(),
            pod()
                .node("node2")
                .container("c", &[("cpu", "1000"), ("memory", "2000")])
                .obj(),
        ]
    };
    let big = [("cpu", "3000"), ("memory", "5000")];
    let small = [("cpu", "1000"), ("memory", "2000")];
    let cases = [
        (
            "RequestedToCapacityRatio case1",
            &big[..],
            "6000",
            plain(),
            rtcr(&[(0, 10), (100, 0)]),
            [10, 32],
        ),
        (
            "RequestedToCapacityRatio case2",
            &big[..],
            "6000",
            plain(),
            rtcr(&[(0, 0), (100, 10)]),
            [95, 68],
        ),
        (
            "MostAllocated",
            &small[..],
            "6000",
            plain(),
            strategy(MostAllocated),
            [67, 36],
        ),
        (
            "LeastAllocated",
            &small[..],
            "6000",
            plain(),
            strategy(LeastAllocated),
            [32, 63],
        ),
        (
            "MostAllocated with sidecar container",
            &small[..],
            "4000",
            with_sidecar(),
            strategy(MostAllocated),
            [67, 45],
        ),
        (
            "LeastAllocated with sidecar container",
            &small[..],
            "4000",
            with_sidecar(),
            strategy(LeastAllocated),
            [32, 55],
        ),
    ];
    for (name, requests, node2_cpu, existing, scoring_strategy, expected) in cases {
        let plugin = fit(NodeResourcesFitArgs {
            scoring_strategy,
            ..Default::default()
        });
        let nodes = node_infos(
            vec![
                node("node1", &[("cpu", "4000"), ("memory", "10000")]),
                node("node2", &[("cpu", node2_cpu), ("memory", "10000")]),
            ],
            &existing,
        );
        let pod = pod().container("c", requests).info();
        for run_pre_score in [true, false] {
            assert_eq!(
                scores(&plugin, &pod, &nodes, run_pre_score),
                expected,
                "{name}, PreScore run: {run_pre_score}"
            );
        }
    }
}

#[test]
fn events_to_register() {
    let pod_actions = ActionType::DELETE.or(ActionType::UPDATE_POD_SCALE_DOWN);
    assert_eq!(
        fit(NodeResourcesFitArgs::default()).events_to_register(),
        vec![
            ClusterEvent::new(EventResource::AssignedPod, pod_actions),
            ClusterEvent::new(EventResource::UnscheduledPod, pod_actions),
            ClusterEvent::new(
                EventResource::Node,
                ActionType::ADD.or(ActionType::UPDATE_NODE_ALLOCATABLE)
            ),
        ]
    );
}
