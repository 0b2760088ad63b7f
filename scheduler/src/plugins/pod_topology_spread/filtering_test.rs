//! Mirrors upstream's `filtering_test.go`: the PreFilter state, the add/remove extensions used by
//! preemption, and Filter's reasons.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, TopologySpreadConstraint};

use super::test_util::{
    SpreadPodExt, TAINT_UNSCHEDULABLE, constraint, exists, filter_all, foo_pods, four_nodes, hard,
    incoming, label_selector, list_plugin, node, snapshot, zoned,
};
use super::{
    DO_NOT_SCHEDULE, ERR_REASON_CONSTRAINTS_NOT_MATCH, ERR_REASON_NODE_LABEL_NOT_MATCH,
    PRE_FILTER_STATE_KEY, PreFilterState, SCHEDULE_ANYWAY,
};
use crate::framework::{
    Code, CycleState, FilterPlugin, PodInfo, PreFilterExtensions, PreFilterPlugin, Status,
};
use crate::testing::{MakePod, make_pod};

fn pre_filter(pod: &PodInfo, nodes: &[Node], pods: &[Pod]) -> (CycleState, Status) {
    let mut state = CycleState::default();
    let (_, status) = list_plugin().pre_filter(&mut state, pod, &snapshot(nodes, pods));
    (state, status)
}

/// The state's counts and critical paths, with equal-count paths sorted by value as upstream's cmp does.
type Counts = Vec<BTreeMap<String, i64>>;
fn summary(s: &PreFilterState) -> (Counts, Vec<[(String, i64); 2]>) {
    let counts = s
        .tp_value_to_match_num
        .iter()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
        .collect();
    let paths = s
        .critical_paths
        .iter()
        .map(|p| {
            let [a, b] = &p.0;
            let mut paths = [
                (a.topology_value.clone(), a.match_num),
                (b.topology_value.clone(), b.match_num),
            ];
            if paths[0].1 == paths[1].1 && paths[0].0 > paths[1].0 {
                let (first, second) = (paths[1].0.clone(), paths[0].0.clone());
                paths[0].0 = first;
                paths[1].0 = second;
            }
            paths
        })
        .collect();
    (counts, paths)
}

fn counts(domains: &[&[(&str, i64)]]) -> Counts {
    domains
        .iter()
        .map(|d| d.iter().map(|(k, v)| (k.to_string(), *v)).collect())
        .collect()
}

fn paths(paths: &[[(&str, i64); 2]]) -> Vec<[(String, i64); 2]> {
    paths
        .iter()
        .map(|[a, b]| [(a.0.to_string(), a.1), (b.0.to_string(), b.1)])
        .collect()
}

/// A PreFilter case: name, incoming pod, existing pods, expected counts and critical paths.
type StateCase = (
    &'static str,
    MakePod,
    Vec<Pod>,
    Counts,
    Vec<[(String, i64); 2]>,
);

#[test]
fn pre_filter_state_counts_domains_and_critical_paths() {
    let two = |s| {
        incoming()
            .label("bar", "")
            .spread(hard(1, "zone"))
            .spread(constraint(1, "node", DO_NOT_SCHEDULE, s))
    };
    let cases: Vec<StateCase> = vec![
        (
            "clean cluster with one spreadConstraint",
            incoming().spread(constraint(
                5,
                "zone",
                DO_NOT_SCHEDULE,
                label_selector("foo", "bar"),
            )),
            vec![],
            counts(&[&[("zone1", 0), ("zone2", 0)]]),
            paths(&[[("zone1", 0), ("zone2", 0)]]),
        ),
        (
            "normal case with one spreadConstraint",
            incoming().spread(hard(1, "zone")),
            foo_pods(&[("node-a", 2), ("node-b", 1), ("node-y", 2)]),
            counts(&[&[("zone1", 3), ("zone2", 2)]]),
            paths(&[[("zone2", 2), ("zone1", 3)]]),
        ),
        (
            "normal case with null label selector",
            incoming().spread(constraint(1, "zone", DO_NOT_SCHEDULE, None)),
            foo_pods(&[("node-a", 2), ("node-b", 1), ("node-y", 2)]),
            counts(&[&[("zone1", 0), ("zone2", 0)]]),
            paths(&[[("zone1", 0), ("zone2", 0)]]),
        ),
        (
            "namespace mismatch doesn't count",
            incoming().spread(hard(1, "zone")),
            vec![
                make_pod("p-a1").node("node-a").label("foo", "").obj(),
                make_pod("p-a2")
                    .namespace("ns1")
                    .node("node-a")
                    .label("foo", "")
                    .obj(),
                make_pod("p-b1").node("node-b").label("foo", "").obj(),
                make_pod("p-y1")
                    .namespace("ns2")
                    .node("node-y")
                    .label("foo", "")
                    .obj(),
                make_pod("p-y2").node("node-y").label("foo", "").obj(),
            ],
            counts(&[&[("zone1", 2), ("zone2", 1)]]),
            paths(&[[("zone2", 1), ("zone1", 2)]]),
        ),
        (
            "normal case with two spreadConstraints",
            incoming().spread(hard(1, "zone")).spread(hard(1, "node")),
            foo_pods(&[("node-a", 2), ("node-b", 1), ("node-y", 4)]),
            counts(&[
                &[("zone1", 3), ("zone2", 4)],
                &[("node-a", 2), ("node-b", 1), ("node-x", 0), ("node-y", 4)],
            ]),
            paths(&[[("zone1", 3), ("zone2", 4)], [("node-x", 0), ("node-b", 1)]]),
        ),
        (
            "soft spreadConstraints should be bypassed",
            incoming()
                .spread(constraint(1, "zone", SCHEDULE_ANYWAY, exists("foo")))
                .spread(hard(1, "zone"))
                .spread(constraint(1, "node", SCHEDULE_ANYWAY, exists("foo")))
                .spread(hard(1, "node")),
            foo_pods(&[("node-a", 2), ("node-b", 1), ("node-y", 4)]),
            counts(&[
                &[("zone1", 3), ("zone2", 4)],
                &[("node-a", 2), ("node-b", 1), ("node-x", 0), ("node-y", 4)],
            ]),
            paths(&[[("zone1", 3), ("zone2", 4)], [("node-x", 0), ("node-b", 1)]]),
        ),
        (
            "different labelSelectors",
            two(exists("bar")),
            vec![
                make_pod("p-a1").node("node-a").label("foo", "").obj(),
                make_pod("p-b1")
                    .node("node-b")
                    .label("foo", "")
                    .label("bar", "")
                    .obj(),
                make_pod("p-y1").node("node-y").label("bar", "").obj(),
            ],
            counts(&[
                &[("zone1", 2), ("zone2", 0)],
                &[("node-a", 0), ("node-b", 1), ("node-x", 0), ("node-y", 1)],
            ]),
            paths(&[[("zone2", 0), ("zone1", 2)], [("node-a", 0), ("node-x", 0)]]),
        ),
        (
            "matchLabelKeys are ANDed with the labelSelector",
            incoming()
                .label("bar", "a")
                .spread(TopologySpreadConstraint {
                    match_label_keys: Some(vec!["bar".into(), "missing".into()]),
                    ..hard(1, "zone")
                }),
            vec![
                make_pod("p-a1")
                    .node("node-a")
                    .label("foo", "")
                    .label("bar", "a")
                    .obj(),
                make_pod("p-a2").node("node-a").label("foo", "").obj(),
                make_pod("p-y1")
                    .node("node-y")
                    .label("foo", "")
                    .label("bar", "b")
                    .obj(),
            ],
            counts(&[&[("zone1", 1), ("zone2", 0)]]),
            paths(&[[("zone2", 0), ("zone1", 1)]]),
        ),
    ];
    for (name, pod, pods, want_counts, want_paths) in cases {
        let pod = pod.info();
        let (state, status) = pre_filter(&pod, &four_nodes(), &pods);
        assert!(status.is_success(), "{name}: {status}");
        let s = state
            .read::<PreFilterState>(PRE_FILTER_STATE_KEY)
            .unwrap_or_else(|| panic!("{name}: no state"));
        assert_eq!(summary(s), (want_counts, want_paths), "{name}");
    }

    let (state, status) = pre_filter(&incoming().info(), &four_nodes(), &[]);
    assert_eq!(status.code(), Code::Skip, "no constraints: skip");
    assert!(state.read::<PreFilterState>(PRE_FILTER_STATE_KEY).is_none());
}

#[test]
fn rejections_carry_upstream_reasons_and_codes() {
    let got = filter_all(
        incoming().spread(hard(1, "zone")).obj(),
        &[
            zoned("node-a", "zone1"),
            zoned("node-x", "zone2"),
            node("node-b", &[("node", "node-b")]).obj(),
        ],
        &foo_pods(&[("node-a", 1)]),
    );
    let want = [
        (
            "node-a",
            Status::unschedulable(ERR_REASON_CONSTRAINTS_NOT_MATCH),
        ),
        ("node-x", Status::success()),
        (
            "node-b",
            Status::unresolvable(ERR_REASON_NODE_LABEL_NOT_MATCH),
        ),
    ];
    let got: Vec<_> = got.iter().map(|(n, s)| (n.as_str(), s.clone())).collect();
    assert_eq!(got, want);
    assert_eq!(
        ERR_REASON_NODE_LABEL_NOT_MATCH,
        "node(s) didn't match pod topology spread constraints (missing required label)"
    );

    let pod = incoming().info();
    let status = list_plugin().filter(&CycleState::default(), &pod, &node("n", &[]).info(vec![]));
    assert_eq!(status.code(), Code::Error, "Filter without PreFilter state");
    assert_eq!(
        status.message(),
        "reading \"PreFilterPodTopologySpread\" from cycleState: not found"
    );
}

/// PreFilter for `preemptor`, then AddPod (or RemovePod) of `changed` on `nodes[node_idx]`.
fn after_update(
    preemptor: MakePod,
    nodes: &[Node],
    existing: &[Pod],
    changed: Pod,
    node_idx: usize,
    add: bool,
) -> (Counts, Vec<[(String, i64); 2]>) {
    let plugin = list_plugin();
    let preemptor = preemptor.info();
    let snapshot = snapshot(nodes, existing);
    let mut state = CycleState::default();
    let (_, status) = plugin.pre_filter(&mut state, &preemptor, &snapshot);
    assert!(status.is_success(), "PreFilter: {status}");
    let changed = PodInfo::new(Arc::new(changed));
    let node = &snapshot.nodes()[node_idx];
    let status = if add {
        plugin.add_pod(&mut state, &preemptor, &changed, node)
    } else {
        plugin.remove_pod(&mut state, &preemptor, &changed, node)
    };
    assert!(status.is_success(), "extension: {status}");
    match state.read::<PreFilterState>(PRE_FILTER_STATE_KEY) {
        Some(s) => summary(s),
        None => panic!("no state"),
    }
}

#[test]
fn add_pod_updates_counts_and_critical_paths() {
    let node_only = || incoming().spread(hard(1, "node"));
    let zone_and_node = || incoming().spread(hard(1, "zone")).spread(hard(1, "node"));
    let ab = || vec![zoned("node-a", "zone1"), zoned("node-b", "zone1")];
    let p_a1 = || make_pod("p-a1").node("node-a").label("foo", "").obj();
    let cases = vec![
        (
            "node a and b both impact current min match",
            node_only(),
            ab(),
            vec![],
            p_a1(),
            0,
            counts(&[&[("node-a", 1), ("node-b", 0)]]),
            paths(&[[("node-b", 0), ("node-a", 1)]]),
        ),
        (
            "only node a impacts current min match",
            node_only(),
            ab(),
            foo_pods(&[("node-b", 1)]),
            p_a1(),
            0,
            counts(&[&[("node-a", 1), ("node-b", 1)]]),
            paths(&[[("node-a", 1), ("node-b", 1)]]),
        ),
        (
            "add a pod in a different namespace doesn't change topologyKeyToMinPodsMap",
            node_only(),
            ab(),
            foo_pods(&[("node-b", 1)]),
            make_pod("p-a1")
                .namespace("ns1")
                .node("node-a")
                .label("foo", "")
                .obj(),
            0,
            counts(&[&[("node-a", 0), ("node-b", 1)]]),
            paths(&[[("node-a", 0), ("node-b", 1)]]),
        ),
        (
            "add pod on non-critical node won't trigger re-calculation",
            node_only(),
            ab(),
            foo_pods(&[("node-b", 1)]),
            make_pod("p-b2").node("node-b").label("foo", "").obj(),
            1,
            counts(&[&[("node-a", 0), ("node-b", 2)]]),
            paths(&[[("node-a", 0), ("node-b", 2)]]),
        ),
        (
            "node a and x both impact topologyKeyToMinPodsMap on zone and node",
            zone_and_node(),
            vec![zoned("node-a", "zone1"), zoned("node-x", "zone2")],
            vec![],
            p_a1(),
            0,
            counts(&[
                &[("zone1", 1), ("zone2", 0)],
                &[("node-a", 1), ("node-x", 0)],
            ]),
            paths(&[[("zone2", 0), ("zone1", 1)], [("node-x", 0), ("node-a", 1)]]),
        ),
        (
            "node a impacts topologyKeyToMinPodsMap on node, node x impacts topologyKeyToMinPodsMap on zone",
            zone_and_node(),
            vec![
                zoned("node-a", "zone1"),
                zoned("node-b", "zone1"),
                zoned("node-x", "zone2"),
            ],
            foo_pods(&[("node-b", 2), ("node-x", 1)]),
            p_a1(),
            0,
            counts(&[
                &[("zone1", 3), ("zone2", 1)],
                &[("node-a", 1), ("node-b", 2), ("node-x", 1)],
            ]),
            paths(&[[("zone2", 1), ("zone1", 3)], [("node-a", 1), ("node-x", 1)]]),
        ),
        (
            "add a pod when scheduling taint tolerated pod with NodeInclusionPolicy enabled",
            incoming().spread(TopologySpreadConstraint {
                node_taints_policy: Some("Honor".into()),
                ..hard(1, "zone")
            }),
            vec![
                node("node-a", &[("zone", "zone1"), ("node", "node-a")])
                    .taint(TAINT_UNSCHEDULABLE, "", "NoSchedule")
                    .obj(),
                zoned("node-b", "zone2"),
            ],
            foo_pods(&[("node-a", 1), ("node-b", 1)]),
            make_pod("p-a2").node("node-a").label("foo", "").obj(),
            0,
            counts(&[&[("zone2", 1)]]),
            paths(&[[("zone2", 1), ("", i64::from(i32::MAX))]]),
        ),
    ];
    for (name, preemptor, nodes, existing, added, node_idx, want_counts, want_paths) in cases {
        let got = after_update(preemptor, &nodes, &existing, added, node_idx, true);
        assert_eq!(got, (want_counts, want_paths), "{name}");
    }
}

#[test]
fn remove_pod_updates_counts_and_critical_paths() {
    let zone_only = || incoming().spread(hard(1, "zone"));
    let abx = || {
        vec![
            zoned("node-a", "zone1"),
            zoned("node-b", "zone1"),
            zoned("node-x", "zone2"),
        ]
    };
    let cases = vec![
        (
            "one spreadConstraint on zone, topologyKeyToMinPodsMap unchanged",
            zone_only(),
            abx(),
            foo_pods(&[("node-a", 1), ("node-b", 1), ("node-x", 1)]),
            0,
            counts(&[&[("zone1", 1), ("zone2", 1)]]),
            paths(&[[("zone1", 1), ("zone2", 1)]]),
        ),
        (
            "one spreadConstraint on node, topologyKeyToMinPodsMap changed",
            zone_only(),
            four_nodes(),
            foo_pods(&[("node-a", 1), ("node-b", 1), ("node-x", 1), ("node-y", 1)]),
            0,
            counts(&[&[("zone1", 1), ("zone2", 2)]]),
            paths(&[[("zone1", 1), ("zone2", 2)]]),
        ),
        (
            "two spreadConstraints",
            incoming().spread(hard(1, "zone")).spread(hard(1, "node")),
            abx(),
            foo_pods(&[("node-a", 2), ("node-b", 1), ("node-x", 2)]),
            3,
            counts(&[
                &[("zone1", 3), ("zone2", 1)],
                &[("node-a", 2), ("node-b", 1), ("node-x", 1)],
            ]),
            paths(&[[("zone2", 1), ("zone1", 3)], [("node-b", 1), ("node-x", 1)]]),
        ),
    ];
    for (name, preemptor, nodes, existing, removed_idx, want_counts, want_paths) in cases {
        let removed = existing[removed_idx].clone();
        let node_idx = nodes
            .iter()
            .position(|n| {
                n.metadata.name == removed.spec.as_ref().and_then(|s| s.node_name.clone())
            })
            .unwrap_or_else(|| panic!("{name}: no node"));
        let got = after_update(preemptor, &nodes, &existing, removed, node_idx, false);
        assert_eq!(got, (want_counts, want_paths), "{name}");
    }

    // An irrelevant pod (not matching) changes nothing.
    let existing = foo_pods(&[("node-a", 1), ("node-b", 1), ("node-x", 1), ("node-y", 1)]);
    let irrelevant = make_pod("p-a0").node("node-a").label("bar", "").obj();
    let got = after_update(zone_only(), &four_nodes(), &existing, irrelevant, 0, false);
    assert_eq!(
        got,
        (
            counts(&[&[("zone1", 2), ("zone2", 2)]]),
            paths(&[[("zone1", 2), ("zone2", 2)]])
        )
    );

    // A node the preemptor's node affinity excludes is not counted, before or after.
    let nodes = vec![
        node(
            "node-a",
            &[("zone", "zone1"), ("node", "node-a"), ("foo", "bar")],
        )
        .obj(),
        node(
            "node-b",
            &[("zone", "zone2"), ("node", "node-b"), ("foo", "")],
        )
        .obj(),
    ];
    let existing = foo_pods(&[("node-a", 1), ("node-b", 1)]);
    let removed = make_pod("p-a0").node("node-a").label("foo", "").obj();
    let preemptor = zone_only().node_affinity("foo", "NotIn", &["bar"]);
    let got = after_update(preemptor, &nodes, &existing, removed, 0, false);
    assert_eq!(
        got,
        (
            counts(&[&[("zone2", 1)]]),
            paths(&[[("zone2", 1), ("", i64::from(i32::MAX))]])
        )
    );
}
