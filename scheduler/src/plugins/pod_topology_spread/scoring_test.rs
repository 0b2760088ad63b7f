//! Mirrors upstream's `scoring_test.go` TestPodTopologySpreadScore: normalised scores.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Node, Pod, Service, ServiceSpec, TopologySpreadConstraint as ApiConstraint,
};

use super::test_util::{
    SpreadPodExt, TAINT_UNSCHEDULABLE, constraint, exists, foo_pods, host, incoming, meta, node,
    plugin, pods, snapshot, soft,
};
use super::{LABEL_HOSTNAME, PodTopologySpread, PodTopologySpreadArgs, SCHEDULE_ANYWAY};
use crate::framework::{
    CycleState, NodeScore, PodInfo, PreScorePlugin, ScorePlugin, StaticListers,
};
use crate::testing::make_pod;

/// A node with a zone and a hostname label.
fn zone_host(name: &str, zone: &str) -> Node {
    node(name, &[("zone", zone), (LABEL_HOSTNAME, name)]).obj()
}

/// A node with only the `node` label.
fn plain(name: &str) -> Node {
    node(name, &[("node", name)]).obj()
}

fn system_plugin(listers: StaticListers) -> PodTopologySpread {
    plugin(PodTopologySpreadArgs::default(), listers)
}

/// PreScore over the candidate `nodes` (the snapshot also holds `failed`), Score and NormalizeScore.
fn run_scores(
    plugin: &PodTopologySpread,
    pod: Pod,
    nodes: &[Node],
    failed: &[Node],
    existing: &[Pod],
) -> Vec<(String, i64)> {
    let pod = PodInfo::new(Arc::new(pod));
    let all: Vec<Node> = nodes.iter().chain(failed).cloned().collect();
    let snapshot = snapshot(&all, existing);
    let candidates: Vec<_> = snapshot.nodes()[..nodes.len()].to_vec();
    let mut state = CycleState::default();
    let status = plugin.pre_score(&mut state, &pod, &candidates, &snapshot);
    assert!(status.is_success(), "PreScore: {status}");
    let mut scores: Vec<NodeScore> = candidates
        .iter()
        .map(|n| NodeScore {
            name: n.name().to_string(),
            score: plugin
                .score(&state, &pod, n)
                .unwrap_or_else(|s| panic!("Score: {s}")),
        })
        .collect();
    let status = plugin.normalize_score(&state, &pod, &mut scores);
    assert!(status.is_success(), "NormalizeScore: {status}");
    scores.into_iter().map(|s| (s.name, s.score)).collect()
}

type ScoreCase = (
    &'static str,
    Pod,
    Vec<Node>,
    Vec<Node>,
    Vec<Pod>,
    Vec<(&'static str, i64)>,
);

#[test]
fn scores_match_upstream() {
    let hosts = |names: &[&str]| names.iter().map(|n| host(n)).collect::<Vec<_>>();
    let abcd = || hosts(&["node-a", "node-b", "node-c", "node-d"]);
    let spread_2103 = || foo_pods(&[("node-a", 2), ("node-b", 1), ("node-d", 3)]);
    let spread_4321 = || foo_pods(&[("node-a", 4), ("node-b", 3), ("node-c", 2), ("node-d", 1)]);
    let spread_4213 = || foo_pods(&[("node-a", 4), ("node-b", 2), ("node-x", 1), ("node-y", 3)]);
    let zones4 = || {
        vec![
            zone_host("node-a", "zone1"),
            zone_host("node-b", "zone1"),
            zone_host("node-x", "zone2"),
            zone_host("node-y", "zone2"),
        ]
    };
    let two_selectors = || {
        incoming()
            .label("bar", "")
            .spread(soft(1, "zone"))
            .spread(constraint(
                1,
                LABEL_HOSTNAME,
                SCHEDULE_ANYWAY,
                exists("bar"),
            ))
    };
    let mixed = || {
        pods(&[
            ("p-a1", "node-a", &["foo"]),
            ("p-b1", "node-b", &["foo", "bar"]),
            ("p-y1", "node-y", &["foo"]),
            ("p-y2", "node-y", &["bar"]),
        ])
    };
    let abc_plain = || vec![plain("node-a"), plain("node-b"), plain("node-c")];
    let abc_foo = || {
        vec![
            node("node-a", &[("node", "node-a"), ("foo", "")]).obj(),
            node("node-b", &[("node", "node-b"), ("foo", "")]).obj(),
            plain("node-c"),
        ]
    };
    let spread_211 = || foo_pods(&[("node-a", 2), ("node-b", 1), ("node-c", 1)]);
    let with = |c: ApiConstraint| incoming().spread(c);
    let zone_abcd = || {
        vec![
            zone_host("node-a", "zone1"),
            zone_host("node-b", "zone1"),
            zone_host("node-c", "zone2"),
            zone_host("node-d", "zone2"),
        ]
    };
    let match_keys = |c: ApiConstraint, keys: &[&str]| ApiConstraint {
        match_label_keys: Some(keys.iter().map(|k| k.to_string()).collect()),
        ..c
    };
    let cases: Vec<ScoreCase> = vec![
        (
            "one constraint on node, no existing pods",
            with(soft(1, LABEL_HOSTNAME)).obj(),
            hosts(&["node-a", "node-b"]),
            vec![],
            vec![],
            vec![("node-a", 100), ("node-b", 100)],
        ),
        (
            "one constraint on node, only one node is candidate",
            with(soft(1, LABEL_HOSTNAME)).obj(),
            hosts(&["node-a"]),
            hosts(&["node-b"]),
            foo_pods(&[("node-a", 2), ("node-b", 1)]),
            vec![("node-a", 100)],
        ),
        (
            "one constraint on node, all nodes have the same number of matching pods",
            with(soft(1, LABEL_HOSTNAME)).obj(),
            hosts(&["node-a", "node-b"]),
            vec![],
            foo_pods(&[("node-a", 1), ("node-b", 1)]),
            vec![("node-a", 100), ("node-b", 100)],
        ),
        (
            "one constraint on node, all 4 nodes are candidates",
            with(soft(1, LABEL_HOSTNAME)).obj(),
            abcd(),
            vec![],
            spread_2103(),
            vec![
                ("node-a", 20),
                ("node-b", 60),
                ("node-c", 100),
                ("node-d", 0),
            ],
        ),
        (
            "one constraint on node, null selector",
            with(constraint(1, LABEL_HOSTNAME, SCHEDULE_ANYWAY, None)).obj(),
            abcd(),
            vec![],
            spread_2103(),
            vec![
                ("node-a", 100),
                ("node-b", 100),
                ("node-c", 100),
                ("node-d", 100),
            ],
        ),
        (
            "one constraint on node, all 4 nodes are candidates, maxSkew=2",
            with(soft(2, LABEL_HOSTNAME)).obj(),
            abcd(),
            vec![],
            spread_2103(),
            vec![
                ("node-a", 33),
                ("node-b", 66),
                ("node-c", 100),
                ("node-d", 16),
            ],
        ),
        (
            "one constraint on node, all 4 nodes are candidates, maxSkew=3",
            with(soft(3, LABEL_HOSTNAME)).obj(),
            abcd(),
            vec![],
            spread_4321(),
            vec![
                ("node-a", 44),
                ("node-b", 66),
                ("node-c", 77),
                ("node-d", 100),
            ],
        ),
        (
            "one constraint on node, 3 out of 4 nodes are candidates",
            with(soft(1, LABEL_HOSTNAME)).obj(),
            hosts(&["node-a", "node-b", "node-x"]),
            hosts(&["node-y"]),
            spread_4213(),
            vec![("node-a", 33), ("node-b", 83), ("node-x", 100)],
        ),
        (
            "one constraint on node, 3 out of 4 nodes are candidates, one node doesn't match topology key",
            with(soft(1, LABEL_HOSTNAME)).obj(),
            vec![
                host("node-a"),
                node("node-b", &[("n", "node-b")]).obj(),
                host("node-x"),
            ],
            hosts(&["node-y"]),
            spread_4213(),
            vec![("node-a", 16), ("node-b", 0), ("node-x", 100)],
        ),
        (
            "one constraint on zone, 3 out of 4 nodes are candidates",
            with(soft(1, "zone")).obj(),
            zones4()[..3].to_vec(),
            zones4()[3..].to_vec(),
            spread_4213(),
            vec![("node-a", 75), ("node-b", 75), ("node-x", 100)],
        ),
        (
            "two Constraints on zone and node, 2 out of 4 nodes are candidates",
            incoming()
                .spread(soft(1, "zone"))
                .spread(soft(1, LABEL_HOSTNAME))
                .obj(),
            vec![zone_host("node-a", "zone1"), zone_host("node-x", "zone2")],
            vec![zone_host("node-b", "zone1"), zone_host("node-y", "zone2")],
            foo_pods(&[("node-a", 2), ("node-b", 1), ("node-x", 2), ("node-y", 4)]),
            vec![("node-a", 100), ("node-x", 63)],
        ),
        (
            "two Constraints on zone and node, with different labelSelectors",
            two_selectors().obj(),
            zones4(),
            vec![],
            mixed(),
            vec![
                ("node-a", 60),
                ("node-b", 20),
                ("node-x", 100),
                ("node-y", 60),
            ],
        ),
        (
            "two Constraints on zone and node, with different labelSelectors, some nodes have 0 pods",
            two_selectors().obj(),
            zones4(),
            vec![],
            pods(&[
                ("p-b1", "node-b", &["bar"]),
                ("p-x1", "node-x", &["foo"]),
                ("p-y1", "node-y", &["foo", "bar"]),
            ]),
            vec![
                ("node-a", 100),
                ("node-b", 60),
                ("node-x", 40),
                ("node-y", 0),
            ],
        ),
        (
            "two Constraints on zone and node, with different labelSelectors, 3 out of 4 nodes are candidates",
            two_selectors().obj(),
            zones4()[..3].to_vec(),
            zones4()[3..].to_vec(),
            mixed(),
            vec![("node-a", 50), ("node-b", 25), ("node-x", 100)],
        ),
        (
            "existing pods in a different namespace do not count",
            with(soft(1, LABEL_HOSTNAME)).obj(),
            hosts(&["node-a", "node-b"]),
            vec![],
            vec![
                make_pod("p-a1")
                    .namespace("ns1")
                    .node("node-a")
                    .label("foo", "")
                    .obj(),
                make_pod("p-a2").node("node-a").label("foo", "").obj(),
                make_pod("p-b1").node("node-b").label("foo", "").obj(),
                make_pod("p-b2").node("node-b").label("foo", "").obj(),
            ],
            vec![("node-a", 100), ("node-b", 33)],
        ),
        (
            "terminating Pods should be excluded",
            with(soft(1, LABEL_HOSTNAME)).obj(),
            hosts(&["node-a", "node-b"]),
            vec![],
            vec![
                make_pod("p-a")
                    .node("node-a")
                    .label("foo", "")
                    .terminating()
                    .obj(),
                make_pod("p-b").node("node-b").label("foo", "").obj(),
            ],
            vec![("node-a", 100), ("node-b", 0)],
        ),
        (
            "minDomains has no effect when ScheduleAnyway",
            with(ApiConstraint {
                min_domains: Some(10),
                ..soft(2, "node")
            })
            .obj(),
            abc_plain(),
            vec![],
            foo_pods(&[("node-a", 2), ("node-b", 2), ("node-c", 1)]),
            vec![("node-a", 75), ("node-b", 75), ("node-c", 100)],
        ),
        (
            "NodeAffinityPolicy honored with labelSelectors",
            incoming()
                .node_selector("foo", "")
                .spread(soft(1, "node"))
                .obj(),
            abc_foo(),
            vec![],
            spread_211(),
            vec![("node-a", 0), ("node-b", 33), ("node-c", 100)],
        ),
        (
            "NodeAffinityPolicy ignored with labelSelectors",
            incoming()
                .node_selector("foo", "")
                .spread(ApiConstraint {
                    node_affinity_policy: Some("Ignore".into()),
                    ..soft(1, "node")
                })
                .obj(),
            abc_foo(),
            vec![],
            spread_211(),
            vec![("node-a", 66), ("node-b", 100), ("node-c", 100)],
        ),
        (
            "NodeAffinityPolicy honored with nodeAffinity",
            incoming()
                .node_affinity("foo", "In", &[""])
                .spread(soft(1, "node"))
                .obj(),
            abc_foo(),
            vec![],
            spread_211(),
            vec![("node-a", 0), ("node-b", 33), ("node-c", 100)],
        ),
        (
            "NodeTaintsPolicy honored",
            with(ApiConstraint {
                node_taints_policy: Some("Honor".into()),
                ..soft(1, "node")
            })
            .obj(),
            vec![
                plain("node-a"),
                plain("node-b"),
                node("node-c", &[("node", "node-c")])
                    .taint(TAINT_UNSCHEDULABLE, "", "NoSchedule")
                    .obj(),
            ],
            vec![],
            spread_211(),
            vec![("node-a", 0), ("node-b", 33), ("node-c", 100)],
        ),
        (
            "NodeTaintsPolicy ignored",
            with(soft(1, "node")).obj(),
            vec![
                plain("node-a"),
                plain("node-b"),
                node("node-c", &[("node", "node-c")])
                    .taint(TAINT_UNSCHEDULABLE, "", "NoSchedule")
                    .obj(),
            ],
            vec![],
            spread_211(),
            vec![("node-a", 66), ("node-b", 100), ("node-c", 100)],
        ),
        (
            "matchLabelKeys ANDed with LabelSelector when LabelSelector is empty",
            incoming()
                .label("bar", "")
                .spread(match_keys(
                    constraint(1, "zone", SCHEDULE_ANYWAY, Some(Default::default())),
                    &["foo"],
                ))
                .spread(match_keys(
                    constraint(1, LABEL_HOSTNAME, SCHEDULE_ANYWAY, Some(Default::default())),
                    &["bar"],
                ))
                .obj(),
            zone_abcd(),
            vec![],
            pods(&[
                ("p-a1", "node-a", &["foo"]),
                ("p-b1", "node-b", &["foo", "bar"]),
                ("p-y1", "node-c", &["foo"]),
                ("p-y2", "node-c", &["bar"]),
            ]),
            vec![
                ("node-a", 60),
                ("node-b", 20),
                ("node-c", 60),
                ("node-d", 100),
            ],
        ),
        (
            "matchLabelKeys ANDed with LabelSelector when LabelSelector isn't empty",
            incoming()
                .label("bar", "")
                .label("baz", "")
                .spread(soft(1, "zone"))
                .spread(match_keys(
                    constraint(1, LABEL_HOSTNAME, SCHEDULE_ANYWAY, exists("bar")),
                    &["baz"],
                ))
                .obj(),
            zone_abcd(),
            vec![],
            pods(&[
                ("p-a1", "node-a", &["foo"]),
                ("p-b1", "node-b", &["foo", "bar", "baz"]),
                ("p-c1", "node-c", &["foo"]),
                ("p-c2", "node-c", &["bar"]),
                ("p-d3", "node-c", &["bar", "baz"]),
            ]),
            vec![
                ("node-a", 60),
                ("node-b", 20),
                ("node-c", 60),
                ("node-d", 100),
            ],
        ),
    ];
    let plugin = system_plugin(StaticListers::default());
    for (name, pod, nodes, failed, existing, want) in cases {
        let got = run_scores(&plugin, pod, &nodes, &failed, &existing);
        let want: Vec<(String, i64)> = want.into_iter().map(|(n, s)| (n.to_string(), s)).collect();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn system_defaults_spread_pods_selected_by_a_service() {
    // Upstream "system defaulting, nodes don't have zone, pods match service": same scores as one
    // hostname constraint with maxSkew 3, because nodes without a zone are still scored.
    let service = Service {
        metadata: meta("svc"),
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([("foo".into(), "".into())])),
            ..Default::default()
        }),
        ..Default::default()
    };
    let plugin = system_plugin(StaticListers {
        services: vec![Arc::new(service)],
        ..Default::default()
    });
    let nodes: Vec<Node> = ["node-a", "node-b", "node-c", "node-d"].map(host).to_vec();
    let existing = foo_pods(&[("node-a", 4), ("node-b", 3), ("node-c", 2), ("node-d", 1)]);
    let got = run_scores(&plugin, incoming().obj(), &nodes, &[], &existing);
    let want = [
        ("node-a", 44),
        ("node-b", 66),
        ("node-c", 77),
        ("node-d", 100),
    ]
    .map(|(n, s)| (n.to_string(), s));
    assert_eq!(got, want);
}
