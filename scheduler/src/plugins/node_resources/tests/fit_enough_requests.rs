//! Mirrors upstream's `fit_test.go` TestEnoughRequests (without the DRA extended-resource cases).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use super::fit::{
    EXTENDED_A, EXTENDED_B, HUGE_PAGE_A, KUBERNETES_IO_A, KUBERNETES_IO_B, Lacking, Usage, filter,
    fit, init_pod, insufficient, overhead_pod, pod_level_pod, resource_pod, s, standard_node, u,
};
use super::pod;
use crate::config::NodeResourcesFitArgs;
use crate::framework::{Code, PodInfo, Status};
use crate::plugins::node_resources::fit::{FitRequest, fits_request};

/// (name, pod, the node's existing pod, ignored resources, ignored groups, expected code and lacks).
type Case = (
    &'static str,
    Pod,
    Usage,
    &'static [&'static str],
    &'static [&'static str],
    (Code, &'static [Lacking]),
);

#[test]
fn enough_requests() {
    use Code::{Unschedulable as U, UnschedulableAndUnresolvable as UU};
    let no_reasons: (Code, &[Lacking]) = (Code::Success, &[]);
    let cases: Vec<Case> = vec![
        (
            "no resources requested always fits",
            pod().obj(),
            u(10, 20),
            &[],
            &[],
            no_reasons,
        ),
        (
            "too many resources fails",
            resource_pod(&[u(1, 1)]),
            u(10, 20),
            &[],
            &[],
            (
                U,
                &[("cpu", 1, 10, 10, false), ("memory", 1, 20, 20, false)],
            ),
        ),
        (
            "too many resources fails due to init container cpu",
            init_pod(resource_pod(&[u(1, 1)]), &[u(3, 1)]),
            u(8, 19),
            &[],
            &[],
            (U, &[("cpu", 3, 8, 10, false)]),
        ),
        (
            "too many resources fails due to highest init container cpu",
            init_pod(resource_pod(&[u(1, 1)]), &[u(3, 1), u(2, 1)]),
            u(8, 19),
            &[],
            &[],
            (U, &[("cpu", 3, 8, 10, false)]),
        ),
        (
            "too many resources fails due to init container memory",
            init_pod(resource_pod(&[u(1, 1)]), &[u(1, 3)]),
            u(9, 19),
            &[],
            &[],
            (U, &[("memory", 3, 19, 20, false)]),
        ),
        (
            "too many resources fails due to highest init container memory",
            init_pod(resource_pod(&[u(1, 1)]), &[u(1, 3), u(1, 2)]),
            u(9, 19),
            &[],
            &[],
            (U, &[("memory", 3, 19, 20, false)]),
        ),
        (
            "init container fits because it's the max, not sum, of containers and init containers",
            init_pod(resource_pod(&[u(1, 1)]), &[u(1, 1)]),
            u(9, 19),
            &[],
            &[],
            no_reasons,
        ),
        (
            "multiple init containers fit because it's the max, not sum, of containers and init containers",
            init_pod(resource_pod(&[u(1, 1)]), &[u(1, 1), u(1, 1)]),
            u(9, 19),
            &[],
            &[],
            no_reasons,
        ),
        (
            "both resources fit",
            resource_pod(&[u(1, 1)]),
            u(5, 5),
            &[],
            &[],
            no_reasons,
        ),
        (
            "one resource memory fits",
            resource_pod(&[u(2, 1)]),
            u(9, 5),
            &[],
            &[],
            (U, &[("cpu", 2, 9, 10, false)]),
        ),
        (
            "one resource cpu fits",
            resource_pod(&[u(1, 2)]),
            u(5, 19),
            &[],
            &[],
            (U, &[("memory", 2, 19, 20, false)]),
        ),
        (
            "equal edge case",
            resource_pod(&[u(5, 1)]),
            u(5, 19),
            &[],
            &[],
            no_reasons,
        ),
        (
            "equal edge case for init container",
            init_pod(resource_pod(&[u(4, 1)]), &[u(5, 1)]),
            u(5, 19),
            &[],
            &[],
            no_reasons,
        ),
        (
            "extended resource fits",
            resource_pod(&[s(0, 0, &[(EXTENDED_A, 1)])]),
            u(0, 0),
            &[],
            &[],
            no_reasons,
        ),
        (
            "extended resource fits for init container",
            init_pod(resource_pod(&[u(0, 0)]), &[s(0, 0, &[(EXTENDED_A, 1)])]),
            u(0, 0),
            &[],
            &[],
            no_reasons,
        ),
        (
            "extended resource capacity enforced",
            resource_pod(&[s(1, 1, &[(EXTENDED_A, 10)])]),
            s(0, 0, &[(EXTENDED_A, 0)]),
            &[],
            &[],
            (UU, &[(EXTENDED_A, 10, 0, 5, true)]),
        ),
        (
            "extended resource capacity enforced for init container",
            init_pod(resource_pod(&[u(0, 0)]), &[s(1, 1, &[(EXTENDED_A, 10)])]),
            s(0, 0, &[(EXTENDED_A, 0)]),
            &[],
            &[],
            (UU, &[(EXTENDED_A, 10, 0, 5, true)]),
        ),
        (
            "extended resource allocatable enforced",
            resource_pod(&[s(1, 1, &[(EXTENDED_A, 1)])]),
            s(0, 0, &[(EXTENDED_A, 5)]),
            &[],
            &[],
            (U, &[(EXTENDED_A, 1, 5, 5, false)]),
        ),
        (
            "extended resource allocatable enforced for init container",
            init_pod(resource_pod(&[u(0, 0)]), &[s(1, 1, &[(EXTENDED_A, 1)])]),
            s(0, 0, &[(EXTENDED_A, 5)]),
            &[],
            &[],
            (U, &[(EXTENDED_A, 1, 5, 5, false)]),
        ),
        (
            "extended resource allocatable enforced for multiple containers",
            resource_pod(&[s(1, 1, &[(EXTENDED_A, 3)]), s(1, 1, &[(EXTENDED_A, 3)])]),
            s(0, 0, &[(EXTENDED_A, 2)]),
            &[],
            &[],
            (UU, &[(EXTENDED_A, 6, 2, 5, true)]),
        ),
        (
            "extended resource allocatable admits multiple init containers",
            init_pod(
                resource_pod(&[u(0, 0)]),
                &[s(1, 1, &[(EXTENDED_A, 3)]), s(1, 1, &[(EXTENDED_A, 3)])],
            ),
            s(0, 0, &[(EXTENDED_A, 2)]),
            &[],
            &[],
            no_reasons,
        ),
        (
            "extended resource allocatable enforced for multiple init containers",
            init_pod(
                resource_pod(&[u(0, 0)]),
                &[s(1, 1, &[(EXTENDED_A, 6)]), s(1, 1, &[(EXTENDED_A, 3)])],
            ),
            s(0, 0, &[(EXTENDED_A, 2)]),
            &[],
            &[],
            (UU, &[(EXTENDED_A, 6, 2, 5, true)]),
        ),
        (
            "extended resource allocatable enforced for unknown resource",
            resource_pod(&[s(1, 1, &[(EXTENDED_B, 1)])]),
            u(0, 0),
            &[],
            &[],
            (UU, &[(EXTENDED_B, 1, 0, 0, true)]),
        ),
        (
            "extended resource allocatable enforced for unknown resource for init container",
            init_pod(resource_pod(&[u(0, 0)]), &[s(1, 1, &[(EXTENDED_B, 1)])]),
            u(0, 0),
            &[],
            &[],
            (UU, &[(EXTENDED_B, 1, 0, 0, true)]),
        ),
        (
            "kubernetes.io resource capacity enforced",
            resource_pod(&[s(1, 1, &[(KUBERNETES_IO_A, 10)])]),
            u(0, 0),
            &[],
            &[],
            (UU, &[(KUBERNETES_IO_A, 10, 0, 0, true)]),
        ),
        (
            "kubernetes.io resource capacity enforced for init container",
            init_pod(
                resource_pod(&[u(0, 0)]),
                &[s(1, 1, &[(KUBERNETES_IO_B, 10)])],
            ),
            u(0, 0),
            &[],
            &[],
            (UU, &[(KUBERNETES_IO_B, 10, 0, 0, true)]),
        ),
        (
            "hugepages resource capacity enforced",
            resource_pod(&[s(1, 1, &[(HUGE_PAGE_A, 10)])]),
            s(0, 0, &[(HUGE_PAGE_A, 0)]),
            &[],
            &[],
            (UU, &[(HUGE_PAGE_A, 10, 0, 5, true)]),
        ),
        (
            "hugepages resource capacity enforced for init container",
            init_pod(resource_pod(&[u(0, 0)]), &[s(1, 1, &[(HUGE_PAGE_A, 10)])]),
            s(0, 0, &[(HUGE_PAGE_A, 0)]),
            &[],
            &[],
            (UU, &[(HUGE_PAGE_A, 10, 0, 5, true)]),
        ),
        (
            "hugepages resource allocatable enforced for multiple containers",
            resource_pod(&[s(1, 1, &[(HUGE_PAGE_A, 3)]), s(1, 1, &[(HUGE_PAGE_A, 3)])]),
            s(0, 0, &[(HUGE_PAGE_A, 2)]),
            &[],
            &[],
            (UU, &[(HUGE_PAGE_A, 6, 2, 5, true)]),
        ),
        // Not upstream's: a request as large as the whole node is resolvable by preemption.
        (
            "request equal to allocatable on a used node",
            resource_pod(&[u(10, 1)]),
            u(1, 1),
            &[],
            &[],
            (U, &[("cpu", 10, 1, 10, false)]),
        ),
        (
            "skip checking ignored extended resource",
            resource_pod(&[s(1, 1, &[(EXTENDED_B, 1)])]),
            u(0, 0),
            &[EXTENDED_B],
            &[],
            no_reasons,
        ),
        (
            "resources + pod overhead fits",
            overhead_pod(resource_pod(&[u(1, 1)]), &[("cpu", "3m"), ("memory", "13")]),
            u(5, 5),
            &[],
            &[],
            no_reasons,
        ),
        (
            "requests + overhead does not fit for memory",
            overhead_pod(resource_pod(&[u(1, 1)]), &[("cpu", "1m"), ("memory", "15")]),
            u(5, 5),
            &[],
            &[],
            (U, &[("memory", 16, 5, 20, false)]),
        ),
        (
            "skip checking ignored extended resource via resource groups",
            resource_pod(&[s(1, 1, &[(EXTENDED_B, 1), (KUBERNETES_IO_A, 1)])]),
            u(0, 0),
            &[],
            &["example.com"],
            (UU, &[(KUBERNETES_IO_A, 1, 0, 0, true)]),
        ),
        (
            "skip checking extended resource request with quantity zero via resource groups",
            resource_pod(&[s(1, 1, &[(EXTENDED_A, 0)])]),
            s(0, 0, &[(EXTENDED_A, 6)]),
            &[],
            &[],
            no_reasons,
        ),
        (
            "skip checking resource request with quantity zero",
            resource_pod(&[s(0, 0, &[(EXTENDED_A, 1)])]),
            s(20, 30, &[(EXTENDED_A, 1)]),
            &[],
            &[],
            no_reasons,
        ),
        (
            "both pod-level and container-level resources fit",
            pod_level_pod(resource_pod(&[u(1, 1)]), &[("cpu", "1m"), ("memory", "2")]),
            u(5, 5),
            &[],
            &[],
            no_reasons,
        ),
        (
            "pod-level cpu resource not fit",
            pod_level_pod(resource_pod(&[u(1, 1)]), &[("cpu", "7m"), ("memory", "2")]),
            u(5, 5),
            &[],
            &[],
            (U, &[("cpu", 7, 5, 10, false)]),
        ),
        (
            "pod-level memory resource not fit",
            pod_level_pod(resource_pod(&[u(1, 1)]), &[("cpu", "3m"), ("memory", "2")]),
            u(5, 19),
            &[],
            &[],
            (U, &[("memory", 2, 19, 20, false)]),
        ),
        (
            "pod-level hugepages resource fit",
            pod_level_pod(
                pod().obj(),
                &[("cpu", "3m"), ("memory", "2"), (HUGE_PAGE_A, "5")],
            ),
            u(0, 0),
            &[],
            &[],
            no_reasons,
        ),
        (
            "both pod-level and container-level hugepages resource fit",
            pod_level_pod(
                resource_pod(&[s(1, 1, &[(HUGE_PAGE_A, 3)])]),
                &[("cpu", "3m"), ("memory", "2"), (HUGE_PAGE_A, "5")],
            ),
            u(0, 0),
            &[],
            &[],
            no_reasons,
        ),
        (
            "pod-level hugepages resource not fit",
            pod_level_pod(
                pod().obj(),
                &[("cpu", "3m"), ("memory", "2"), (HUGE_PAGE_A, "10")],
            ),
            u(0, 0),
            &[],
            &[],
            (UU, &[(HUGE_PAGE_A, 10, 0, 5, true)]),
        ),
        (
            "one pod-level cpu resource fits and all init and non-init containers resources fit",
            init_pod(
                pod_level_pod(resource_pod(&[u(1, 1)]), &[("cpu", "3m"), ("memory", "2")]),
                &[u(1, 1)],
            ),
            u(5, 19),
            &[],
            &[],
            (U, &[("memory", 2, 19, 20, false)]),
        ),
    ];
    for (name, pod, existing, ignored, groups, (code, lacking)) in cases {
        let (ignored, groups) = (strings(ignored), strings(groups));
        let plugin = fit(NodeResourcesFitArgs {
            ignored_resources: ignored.clone(),
            ignored_resource_groups: groups.clone(),
            ..Default::default()
        });
        let node = standard_node(resource_pod(&[existing]));
        let pod_info = PodInfo::new(Arc::new(pod.clone()));
        let request = FitRequest::new(&pod_info.requests, &ignored, &groups);
        let got: Vec<(String, i64, i64, i64, bool)> = fits_request(&request, &node)
            .iter()
            .map(|r| {
                (
                    r.resource_name.to_string(),
                    r.requested,
                    r.used,
                    r.capacity,
                    r.unresolvable,
                )
            })
            .collect();
        let lacking: Vec<(String, i64, i64, i64, bool)> = lacking
            .iter()
            .map(|l| (l.0.to_string(), l.1, l.2, l.3, l.4))
            .collect();
        assert_eq!(got, lacking, "{name}: insufficient resources");
        let reasons: Vec<String> = lacking.iter().map(|l| insufficient(&l.0)).collect();
        let expected = if lacking.is_empty() {
            Status::success()
        } else {
            Status::new(code, reasons)
        };
        assert_eq!(filter(&plugin, pod, &node), expected, "{name}: status");
    }
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}
