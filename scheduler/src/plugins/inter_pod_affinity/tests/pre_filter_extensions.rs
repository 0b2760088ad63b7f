//! Upstream TestPreFilterStateAddRemovePod, and namespaces admitted on AddPod.

use k8s_openapi::api::core::v1::Pod;

use super::super::filtering::PreFilterState;
use super::builders::*;
use super::*;
use crate::framework::PreFilterExtensions;

type Entries = std::collections::BTreeSet<(String, String, i64)>;

fn entries(pairs: &[(&str, &str, i64)]) -> Entries {
    pairs
        .iter()
        .map(|(k, v, c)| (k.to_string(), v.to_string(), *c))
        .collect()
}

fn counts(state: &CycleState) -> [Entries; 3] {
    let s = state
        .read::<PreFilterState>(PRE_FILTER_STATE_KEY)
        .expect("PreFilter state");
    s.counts().map(TopologyCounts::entries)
}

#[test]
fn pre_filter_state_add_remove_pod() {
    let nodes = vec![
        node("nodeA", &[("region", "r1"), ("zone", "z11")]),
        node("nodeB", &[("region", "r1"), ("zone", "z12")]),
        node("nodeC", &[("region", "r2"), ("zone", "z21")]),
    ];
    let foo_bar = || term_in("foo", "region", &["bar"]);
    let complex = || {
        [
            term_in("foo", "region", &["bar", "buzz"]),
            term(
                "zone",
                &[("service", "NotIn", &["bar", "security", "test"])],
            ),
        ]
    };
    let pending = || make_pod("pending").labels(&[("foo", "bar")]);
    let p1 = || make_pod("p1").labels(&[("foo", "bar")]).node("nodeA").obj();
    let [c1, c2] = complex();
    let [c3, c4] = complex();
    let [c5, c6] = complex();
    let [c7, c8] = complex();
    // (name, pending pod, existing pods, added pod, expected affinity counts, expected anti-affinity counts)
    let cases = vec![
        (
            "anti-affinity counts follow an added pod",
            pending().anti_affinity(foo_bar()).obj(),
            vec![
                p1(),
                make_pod("p2").node("nodeC").anti_affinity(foo_bar()).obj(),
            ],
            make_pod("added")
                .labels(&[("foo", "bar")])
                .node("nodeB")
                .anti_affinity(foo_bar())
                .obj(),
            entries(&[]),
            entries(&[("region", "r1", 2)]),
        ),
        (
            "anti-affinity counts with several terms",
            pending().anti_affinity(c1).anti_affinity(c2).obj(),
            vec![
                p1(),
                make_pod("p2").node("nodeC").anti_affinity(foo_bar()).obj(),
            ],
            make_pod("added")
                .labels(&[("foo", "bar")])
                .node("nodeA")
                .anti_affinity(c3)
                .anti_affinity(c4)
                .obj(),
            entries(&[]),
            entries(&[("region", "r1", 2), ("zone", "z11", 2), ("zone", "z21", 1)]),
        ),
        (
            "affinity counts follow an added pod",
            pending().affinity(c5).affinity(c6).obj(),
            vec![
                p1(),
                make_pod("p2")
                    .node("nodeC")
                    .anti_affinity(foo_bar())
                    .affinity(c7)
                    .affinity(c8)
                    .obj(),
            ],
            make_pod("added")
                .labels(&[("foo", "bar")])
                .node("nodeA")
                .anti_affinity(complex()[0].clone())
                .anti_affinity(complex()[1].clone())
                .obj(),
            entries(&[("region", "r1", 2), ("zone", "z11", 2)]),
            entries(&[]),
        ),
    ];
    let p = plugin(InterPodAffinityArgs::default(), &[]);
    for (name, pending, existing, added, want_affinity, want_anti) in cases {
        let pending = PodInfo::new(std::sync::Arc::new(pending));
        let pre_filter = |pods: &[Pod]| {
            let mut state = CycleState::default();
            let (_, status) = p.pre_filter(&mut state, &pending, &snapshot(pods, &nodes));
            assert!(status.is_success(), "{name}: {status}");
            state
        };
        let mut all = existing.clone();
        all.push(added.clone());
        let with_all = counts(&pre_filter(&all));
        let mut state = pre_filter(&existing);
        let original = counts(&state);

        let snapshot = snapshot(&existing, &nodes);
        let node_name = added
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let node = snapshot.get(&node_name).expect("the added pod's node");
        let added = PodInfo::new(std::sync::Arc::new(added));
        assert!(p.add_pod(&mut state, &pending, &added, node).is_success());
        let [_, affinity, anti] = counts(&state);
        assert_eq!(affinity, want_affinity, "{name}");
        assert_eq!(anti, want_anti, "{name}");
        assert_eq!(counts(&state), with_all, "{name}");
        assert!(
            p.remove_pod(&mut state, &pending, &added, node)
                .is_success()
        );
        assert_eq!(counts(&state), original, "{name}");
    }
}

#[test]
fn added_pods_from_unseen_namespaces_resolve_the_namespace_selector() {
    let p = plugin(InterPodAffinityArgs::default(), &team_namespaces());
    let nodes = [
        node("nodeA", &[("region", "r1")]),
        node("nodeB", &[("region", "r2")]),
    ];
    let snapshot = snapshot(&[], &nodes);
    let team1 = in_namespaces(term_in("foo", "region", &["bar"]), &[], Some(&["team1"]));
    let pending = make_pod("pending")
        .namespace("subteam1.team1")
        .anti_affinity(team1)
        .info();
    let mut state = CycleState::default();
    assert!(p.pre_filter(&mut state, &pending, &snapshot).1.is_success());
    let node_a = snapshot.get("nodeA").expect("nodeA");
    // A nominated pod in a namespace no pod of the snapshot is in.
    let nominated = make_pod("nominated")
        .namespace("subteam2.team1")
        .labels(&[("foo", "bar")])
        .info();
    let other_team = make_pod("other")
        .namespace("subteam1.team2")
        .labels(&[("foo", "bar")])
        .info();
    assert!(
        p.add_pod(&mut state, &pending, &other_team, node_a)
            .is_success()
    );
    assert_eq!(counts(&state)[2], entries(&[]));
    let original = counts(&state);
    assert!(
        p.add_pod(&mut state, &pending, &nominated, node_a)
            .is_success()
    );
    assert_eq!(counts(&state)[2], entries(&[("region", "r1", 1)]));
    assert_eq!(verdict(&p.filter(&state, &pending, node_a)), ANTI);
    assert_eq!(
        verdict(&p.filter(&state, &pending, snapshot.get("nodeB").expect("nodeB"))),
        OK
    );
    assert!(
        p.remove_pod(&mut state, &pending, &nominated, node_a)
            .is_success()
    );
    assert_eq!(counts(&state), original);
    assert_eq!(verdict(&p.filter(&state, &pending, node_a)), OK);
}

#[test]
fn extensions_without_pre_filter_state_are_errors() {
    let p = plugin(InterPodAffinityArgs::default(), &[]);
    let node = crate::testing::make_node("n").info(vec![]);
    let pod = make_pod("p").info();
    assert_eq!(
        p.add_pod(&mut CycleState::default(), &pod, &pod, &node)
            .code(),
        Code::Error
    );
    assert_eq!(
        p.remove_pod(&mut CycleState::default(), &pod, &pod, &node)
            .code(),
        Code::Error
    );
}
