//! Mirrors upstream's `filtering_test.go` TestSingleConstraint and TestMultipleConstraints: Filter's
//! verdict on every node.

use k8s_openapi::api::core::v1::{Node, Pod, TopologySpreadConstraint};

use super::DO_NOT_SCHEDULE;
use super::test_util::{
    SpreadPodExt, TAINT_UNSCHEDULABLE, constraint, exists, filter_all, foo_pods, four_nodes, hard,
    incoming, node, zoned,
};
use crate::framework::Code;
use crate::testing::{MakePod, make_pod};

use Code::{Success as S, Unschedulable as U, UnschedulableAndUnresolvable as UU};

/// A verdict case: name, incoming pod, nodes, existing pods, each node's expected code.
type VerdictCase<'a> = (&'a str, Pod, Vec<Node>, Vec<Pod>, Vec<(&'a str, Code)>);

fn check_verdicts(cases: Vec<VerdictCase<'_>>) {
    for (name, pod, nodes, pods, want) in cases {
        let got = filter_all(pod, &nodes, &pods);
        let got: Vec<(&str, Code)> = got.iter().map(|(n, s)| (n.as_str(), s.code())).collect();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn single_constraint_verdicts() {
    let abxy = |codes: [Code; 4]| -> Vec<(&'static str, Code)> {
        ["node-a", "node-b", "node-x", "node-y"]
            .into_iter()
            .zip(codes)
            .collect()
    };
    let spread_2103 = || foo_pods(&[("node-a", 2), ("node-b", 1), ("node-y", 3)]);
    let with_min_domains = |max_skew, key: &str, min_domains| {
        incoming().spread(TopologySpreadConstraint {
            min_domains: Some(min_domains),
            ..hard(max_skew, key)
        })
    };
    let three_nodes = || {
        ["node-a", "node-b", "node-c"]
            .map(|n| node(n, &[("node", n)]).obj())
            .to_vec()
    };
    let foo_nodes = || {
        vec![
            node("node-a", &[("node", "node-a"), ("foo", "")]).obj(),
            node("node-b", &[("node", "node-b"), ("foo", "")]).obj(),
            node("node-x", &[("node", "node-x"), ("foo", "")]).obj(),
            node("node-y", &[("node", "node-y")]).obj(),
        ]
    };
    let tainted_nodes = || {
        let mut nodes = foo_nodes();
        nodes[3] = node("node-y", &[("node", "node-y")])
            .taint(TAINT_UNSCHEDULABLE, "", "NoSchedule")
            .obj();
        nodes
    };
    let one_each = || foo_pods(&[("node-a", 1), ("node-b", 1), ("node-y", 1)]);
    let ignore = Some("Ignore".to_string());
    let honor = Some("Honor".to_string());
    let cases = vec![
        (
            "no existing pods",
            incoming().spread(hard(1, "zone")).obj(),
            four_nodes(),
            vec![],
            abxy([S, S, S, S]),
        ),
        (
            "no existing pods, incoming pod doesn't match itself",
            incoming()
                .spread(constraint(1, "zone", DO_NOT_SCHEDULE, exists("bar")))
                .obj(),
            four_nodes(),
            vec![],
            abxy([S, S, S, S]),
        ),
        (
            "existing pods in a different namespace do not count",
            incoming().spread(hard(1, "zone")).obj(),
            four_nodes(),
            vec![
                make_pod("p-a1")
                    .namespace("ns1")
                    .node("node-a")
                    .label("foo", "")
                    .obj(),
                make_pod("p-b1")
                    .namespace("ns2")
                    .node("node-a")
                    .label("foo", "")
                    .obj(),
                make_pod("p-x1").node("node-x").label("foo", "").obj(),
                make_pod("p-y1").node("node-y").label("foo", "").obj(),
            ],
            abxy([S, S, U, U]),
        ),
        (
            "existing pods do not match null selector",
            incoming()
                .spread(constraint(1, "zone", DO_NOT_SCHEDULE, None))
                .obj(),
            four_nodes(),
            foo_pods(&[("node-x", 1), ("node-y", 1)]),
            abxy([S, S, S, S]),
        ),
        (
            "pods spread across zones as 3/3, all nodes fit",
            incoming().spread(hard(1, "zone")).obj(),
            four_nodes(),
            spread_2103(),
            abxy([S, S, S, S]),
        ),
        (
            "pods spread across zones as 1/2 due to absence of label 'zone' on node-b",
            incoming().spread(hard(1, "zone")).obj(),
            vec![
                zoned("node-a", "zone1"),
                node("node-b", &[("zon", "zone1"), ("node", "node-b")]).obj(),
                zoned("node-x", "zone2"),
                zoned("node-y", "zone2"),
            ],
            foo_pods(&[("node-a", 1), ("node-b", 1), ("node-x", 1), ("node-y", 1)]),
            abxy([S, UU, U, U]),
        ),
        (
            "pod cannot be scheduled as all nodes don't have label 'rack'",
            incoming().spread(hard(1, "rack")).obj(),
            vec![zoned("node-a", "zone1"), zoned("node-x", "zone2")],
            vec![],
            vec![("node-a", UU), ("node-x", UU)],
        ),
        (
            "pods spread across nodes as 2/1/0/3, only node-x fits",
            incoming().spread(hard(1, "node")).obj(),
            four_nodes(),
            spread_2103(),
            abxy([U, U, S, U]),
        ),
        (
            "pods spread across nodes as 2/1/0/3, maxSkew is 2, node-b and node-x fit",
            incoming().spread(hard(2, "node")).obj(),
            four_nodes(),
            spread_2103(),
            abxy([U, S, S, U]),
        ),
        (
            "pods spread across nodes as 2/1/0/3, but pod doesn't match itself",
            make_pod("p").label("bar", "").spread(hard(1, "node")).obj(),
            four_nodes(),
            spread_2103(),
            abxy([U, S, S, U]),
        ),
        (
            "incoming pod has nodeAffinity, pods spread as 2/~1~/~0~/3, hence node-a fits",
            incoming()
                .node_affinity("node", "In", &["node-a", "node-y"])
                .spread(hard(1, "node"))
                .obj(),
            four_nodes(),
            spread_2103(),
            abxy([S, S, S, U]),
        ),
        (
            "terminating Pods should be excluded",
            incoming().spread(hard(1, "node")).obj(),
            vec![
                node("node-a", &[("node", "node-a")]).obj(),
                node("node-b", &[("node", "node-b")]).obj(),
            ],
            vec![
                make_pod("p-a")
                    .node("node-a")
                    .label("foo", "")
                    .terminating()
                    .obj(),
                make_pod("p-b").node("node-b").label("foo", "").obj(),
            ],
            vec![("node-a", S), ("node-b", U)],
        ),
        (
            "incoming pod has nodeAffinity, pods spread as 0/~2~/0/1, hence node-a fits",
            incoming()
                .node_affinity("node", "NotIn", &["node-b"])
                .spread(hard(1, "zone"))
                .obj(),
            four_nodes(),
            foo_pods(&[("node-b", 2), ("node-y", 1)]),
            abxy([S, S, U, U]),
        ),
        (
            "pods spread across nodes as 2/2/1, maxSkew is 2, and the number of domains < minDomains, then the third node fits",
            with_min_domains(2, "node", 4).obj(),
            three_nodes(),
            foo_pods(&[("node-a", 2), ("node-b", 2), ("node-c", 1)]),
            vec![("node-a", U), ("node-b", U), ("node-c", S)],
        ),
        (
            "pods spread across nodes as 2/2/1, maxSkew is 2, and the number of domains > minDomains, then the all nodes fit",
            with_min_domains(2, "node", 2).obj(),
            three_nodes(),
            foo_pods(&[("node-a", 2), ("node-b", 2), ("node-c", 1)]),
            vec![("node-a", S), ("node-b", S), ("node-c", S)],
        ),
        (
            "pods spread across zone as 2/1, maxSkew is 2 and the number of domains < minDomains, then the third and fourth nodes fit",
            with_min_domains(2, "zone", 3).obj(),
            four_nodes(),
            foo_pods(&[("node-a", 1), ("node-b", 1), ("node-y", 1)]),
            abxy([U, U, S, S]),
        ),
        (
            "pods spread across zone as 2/1, maxSkew is 2 and the number of domains > minDomains, then the all nodes fit",
            with_min_domains(2, "zone", 1).obj(),
            four_nodes(),
            foo_pods(&[("node-a", 1), ("node-b", 1), ("node-y", 1)]),
            abxy([S, S, S, S]),
        ),
        (
            "NodeAffinityPolicy honored with labelSelectors",
            incoming()
                .node_selector("foo", "")
                .spread(hard(1, "node"))
                .obj(),
            foo_nodes(),
            one_each(),
            abxy([U, U, S, S]),
        ),
        (
            "NodeAffinityPolicy ignored with labelSelectors",
            incoming()
                .node_selector("foo", "")
                .spread(TopologySpreadConstraint {
                    node_affinity_policy: ignore.clone(),
                    ..hard(1, "node")
                })
                .obj(),
            foo_nodes(),
            one_each(),
            abxy([U, U, S, U]),
        ),
        (
            "NodeAffinityPolicy honored with nodeAffinity",
            incoming()
                .node_affinity("foo", "In", &[""])
                .spread(hard(1, "node"))
                .obj(),
            foo_nodes(),
            one_each(),
            abxy([U, U, S, S]),
        ),
        (
            "NodeAffinityPolicy ignored with nodeAffinity",
            incoming()
                .node_affinity("foo", "In", &[""])
                .spread(TopologySpreadConstraint {
                    node_affinity_policy: ignore,
                    ..hard(1, "node")
                })
                .obj(),
            foo_nodes(),
            one_each(),
            abxy([U, U, S, U]),
        ),
        (
            "NodeTaintsPolicy honored",
            incoming()
                .spread(TopologySpreadConstraint {
                    node_taints_policy: honor,
                    ..hard(1, "node")
                })
                .obj(),
            tainted_nodes(),
            one_each(),
            abxy([U, U, S, S]),
        ),
        (
            "NodeTaintsPolicy ignored",
            incoming().spread(hard(1, "node")).obj(),
            tainted_nodes(),
            one_each(),
            abxy([U, U, S, U]),
        ),
    ];
    check_verdicts(cases);
}

#[test]
fn multiple_constraints_verdicts() {
    let abxy = |codes: [Code; 4]| -> Vec<(&'static str, Code)> {
        ["node-a", "node-b", "node-x", "node-y"]
            .into_iter()
            .zip(codes)
            .collect()
    };
    let zone_and_node = || incoming().spread(hard(1, "zone")).spread(hard(1, "node"));
    let foo_and_bar = |pod: MakePod| {
        pod.spread(hard(1, "zone"))
            .spread(constraint(1, "node", DO_NOT_SCHEDULE, exists("bar")))
    };
    let labelled = |name: &str, node: &str, labels: &[&str]| {
        labels
            .iter()
            .fold(make_pod(name).node(node), |p, l| p.label(l, ""))
            .obj()
    };
    let foo_nodes = |tainted_y_has_foo: bool| {
        let mut nodes = vec![
            node(
                "node-a",
                &[("zone", "zone1"), ("node", "node-a"), ("foo", "")],
            ),
            node(
                "node-b",
                &[("zone", "zone1"), ("node", "node-b"), ("foo", "")],
            ),
            node(
                "node-x",
                &[("zone", "zone2"), ("node", "node-x"), ("foo", "")],
            ),
            node("node-y", &[("zone", "zone2"), ("node", "node-y")]),
        ];
        if tainted_y_has_foo {
            nodes[1] = node("node-b", &[("zone", "zone1"), ("node", "node-b")]);
            nodes[3] = node(
                "node-y",
                &[("zone", "zone2"), ("node", "node-y"), ("foo", "")],
            )
            .taint(TAINT_UNSCHEDULABLE, "", "NoSchedule");
        }
        nodes.into_iter().map(|n| n.obj()).collect::<Vec<_>>()
    };
    let one_each = || foo_pods(&[("node-a", 1), ("node-b", 1), ("node-y", 1)]);
    let policies =
        |affinity: Option<&str>, taints: Option<&str>, key: &str| TopologySpreadConstraint {
            node_affinity_policy: affinity.map(String::from),
            node_taints_policy: taints.map(String::from),
            ..hard(1, key)
        };
    let mut tainted_y = foo_nodes(false);
    tainted_y[3] = node("node-y", &[("zone", "zone2"), ("node", "node-y")])
        .taint(TAINT_UNSCHEDULABLE, "", "NoSchedule")
        .obj();
    let cases = vec![
        (
            "two Constraints on zone and node, spreads = [3/3, 2/1/0/3]",
            zone_and_node().obj(),
            four_nodes(),
            foo_pods(&[("node-a", 2), ("node-b", 1), ("node-y", 3)]),
            abxy([U, U, S, U]),
        ),
        (
            "two Constraints on zone and node, spreads = [3/4, 2/1/0/4]",
            zone_and_node().obj(),
            four_nodes(),
            foo_pods(&[("node-a", 2), ("node-b", 1), ("node-y", 4)]),
            abxy([U, U, U, U]),
        ),
        (
            "Constraints hold different labelSelectors, spreads = [1/0, 1/0/0/1]",
            foo_and_bar(incoming().label("bar", "")).obj(),
            four_nodes(),
            vec![
                labelled("p-a1", "node-a", &["foo"]),
                labelled("p-y1", "node-y", &["bar"]),
            ],
            abxy([U, U, S, U]),
        ),
        (
            "Constraints hold different labelSelectors, spreads = [1/0, 0/0/1/1]",
            foo_and_bar(incoming().label("bar", "")).obj(),
            four_nodes(),
            vec![
                labelled("p-a1", "node-a", &["foo"]),
                labelled("p-x1", "node-x", &["bar"]),
                labelled("p-y1", "node-y", &["bar"]),
            ],
            abxy([U, U, U, U]),
        ),
        (
            "Constraints hold different labelSelectors, spreads = [2/3, 1/0/0/1]",
            foo_and_bar(incoming().label("bar", "")).obj(),
            four_nodes(),
            vec![
                labelled("p-a1", "node-a", &["foo"]),
                labelled("p-a2", "node-a", &["foo", "bar"]),
                labelled("p-y1", "node-y", &["foo"]),
                labelled("p-y2", "node-y", &["foo", "bar"]),
                labelled("p-y3", "node-y", &["foo"]),
            ],
            abxy([U, S, U, U]),
        ),
        (
            "Constraints hold different labelSelectors but pod doesn't match itself on 'zone' constraint",
            foo_and_bar(make_pod("p").label("bar", "")).obj(),
            four_nodes(),
            vec![
                labelled("p-a1", "node-a", &["foo"]),
                labelled("p-x1", "node-x", &["bar"]),
                labelled("p-y1", "node-y", &["bar"]),
            ],
            abxy([S, S, U, U]),
        ),
        (
            "two Constraints on zone and node, absence of label 'node' on node-x, spreads = [1/1, 1/0/0/1]",
            zone_and_node().obj(),
            vec![
                zoned("node-a", "zone1"),
                zoned("node-b", "zone1"),
                node("node-x", &[("zone", "zone2")]).obj(),
                zoned("node-y", "zone2"),
            ],
            foo_pods(&[("node-a", 1), ("node-y", 1)]),
            abxy([U, S, UU, U]),
        ),
        (
            "two node inclusion Constraints, zone: honor/ignore, node: ignore/ignore",
            incoming()
                .node_selector("foo", "")
                .spread(hard(1, "zone"))
                .spread(policies(Some("Ignore"), None, "node"))
                .obj(),
            foo_nodes(false),
            one_each(),
            abxy([U, U, S, U]),
        ),
        (
            "two node inclusion Constraints, zone: honor/honor, node: honor/ignore",
            incoming()
                .spread(policies(None, Some("Honor"), "zone"))
                .spread(hard(1, "node"))
                .obj(),
            tainted_y,
            one_each(),
            abxy([U, U, S, U]),
        ),
        (
            "two node inclusion Constraints, zone: honor/ignore, node: honor/ignore",
            incoming()
                .node_selector("foo", "")
                .spread(hard(1, "zone"))
                .spread(hard(1, "node"))
                .obj(),
            foo_nodes(true),
            one_each(),
            abxy([U, S, S, U]),
        ),
    ];
    check_verdicts(cases);
}
