//! The plugin arguments: ignorePreferredTermsOfExistingPods, hardPodAffinityWeight
//! (upstream TestPreferredAffinityWithHardPodAffinitySymmetricWeight) and their validation; normalisation; events.

use super::builders::*;
use super::*;

#[test]
fn ignore_preferred_terms_of_existing_pods() {
    use Expect::{PreScore, Scores};
    let settings = InterPodAffinityArgs {
        ignore_preferred_terms_of_existing_pods: true,
        ..Default::default()
    };
    let cases = vec![
        case(
            "skipped when the incoming pod has no preferred terms",
            make_pod("p").labels(&[S2]),
            vec![
                stay_with_s1_away_from_s2(pod("a", &[S1], "node1")),
                stay_with_s2_in_region(pod("b", &[S2], "node2")),
            ],
            vec![china("node1"), india("node2")],
            PreScore(Code::Skip),
        ),
        // As upstream, the setting only skips scoring: with preferred terms of its own, the existing pods'
        // terms still count (India's 6 beats China's 5).
        case(
            "existing pods' terms still count when the incoming pod has preferred terms",
            stay_with_s1_in_region(make_pod("p").labels(&[S2])),
            vec![
                pod("a", &[S1], "node1"),
                stay_with_s2_in_region(pod("b", &[], "node2")),
            ],
            vec![china("node1"), india("node2")],
            Scores(vec![0, 100]),
        ),
    ];
    run_score(settings, cases);
}

#[test]
fn preferred_affinity_with_hard_pod_affinity_symmetric_weight() {
    use Expect::{PreScore, Scores};
    let hard = |name, node| {
        let t = term_in("service", "region", &["S1"]);
        make_pod(name).node(node).affinity(in_namespaces(
            t,
            &["default", "subteam2.team2"],
            Some(&["team1"]),
        ))
    };
    let incoming = |ns| make_pod("p").namespace(ns).labels(&[("service", "S1")]);
    let nodes = || vec![china("node1"), india("node2"), az("node3", "az1")];
    let pods = || vec![hard("a", "node1"), hard("b", "node2")];
    let weighted = |weight| InterPodAffinityArgs {
        hard_pod_affinity_weight: weight,
        ..Default::default()
    };
    run_score(
        weighted(1),
        vec![
            case(
                "with default weight",
                incoming("default"),
                pods(),
                nodes(),
                Scores(vec![100, 100, 0]),
            ),
            case(
                "with no matching namespace",
                incoming("subteam1.team2"),
                pods(),
                nodes(),
                PreScore(Code::Skip),
            ),
            case(
                "with matching NamespaceSelector",
                incoming("subteam1.team1"),
                pods(),
                nodes(),
                Scores(vec![100, 100, 0]),
            ),
            case(
                "with matching Namespaces",
                incoming("subteam2.team2"),
                pods(),
                nodes(),
                Scores(vec![100, 100, 0]),
            ),
        ],
    );
    run_score(
        weighted(0),
        vec![case(
            "with zero weight",
            incoming("default"),
            pods(),
            nodes(),
            PreScore(Code::Skip),
        )],
    );
}

#[test]
fn normalize_maps_min_and_max_onto_the_score_range() {
    let p = plugin(InterPodAffinityArgs::default(), &[]);
    let pods = [away_from_in_az(pod("a", &[S1], "n1"), "S1").obj()];
    let snapshot = snapshot(&pods, &[az("n1", "az1")]);
    let pod = make_pod("p").labels(&[S1]).info();
    let mut state = CycleState::default();
    assert!(
        p.pre_score(&mut state, &pod, snapshot.nodes(), &snapshot)
            .is_success()
    );
    let mut scores: Vec<NodeScore> = [-7, -2, 0, 3]
        .iter()
        .enumerate()
        .map(|(i, s)| NodeScore {
            name: format!("n{i}"),
            score: *s,
        })
        .collect();
    assert!(p.normalize_score(&state, &pod, &mut scores).is_success());
    // 100*(s-min)/(max-min) truncated: 0, 50, 70, 100.
    assert_eq!(
        scores.iter().map(|s| s.score).collect::<Vec<_>>(),
        vec![0, 50, 70, 100]
    );
    let mut equal = vec![
        NodeScore {
            name: "a".into(),
            score: -5,
        },
        NodeScore {
            name: "b".into(),
            score: -5,
        },
    ];
    assert!(p.normalize_score(&state, &pod, &mut equal).is_success());
    assert_eq!(
        equal.iter().map(|s| s.score).collect::<Vec<_>>(),
        vec![0, 0]
    );
    assert_eq!(
        p.score(&CycleState::default(), &pod, &snapshot.nodes()[0])
            .map_err(|s| s.code()),
        Err(Code::Error)
    );
}

#[test]
fn defaults_and_events_are_upstream() {
    assert_eq!(
        InterPodAffinityArgs::default(),
        InterPodAffinityArgs {
            hard_pod_affinity_weight: 1,
            ignore_preferred_terms_of_existing_pods: false
        }
    );

    let p = plugin(InterPodAffinityArgs::default(), &[]);
    assert_eq!(p.name(), "InterPodAffinity");
    let events = p.events_to_register();
    let covered = |resource, action| {
        events
            .iter()
            .any(|e| e.covers(&ClusterEvent::new(resource, action)))
    };
    for action in [
        ActionType::ADD,
        ActionType::UPDATE_POD_LABEL,
        ActionType::DELETE,
    ] {
        assert!(covered(EventResource::AssignedPod, action));
    }
    for action in [
        ActionType::ADD,
        ActionType::UPDATE_NODE_LABEL,
        ActionType::UPDATE_NODE_TAINT,
    ] {
        assert!(covered(EventResource::Node, action));
    }
    assert!(!covered(EventResource::Node, ActionType::DELETE));
    assert!(!covered(EventResource::UnscheduledPod, ActionType::ADD));
    assert!(!covered(
        EventResource::AssignedPod,
        ActionType::UPDATE_POD_SCALE_DOWN
    ));
    assert!(
        p.as_pre_filter()
            .is_some_and(|f| f.pre_filter_extensions().is_some())
    );
    assert!(p.as_filter().is_some() && p.as_pre_score().is_some() && p.as_score().is_some());
}
