//! The choice among candidate nodes (upstream TestSelectBestCandidate / pickOneNodeForPreemption), and
//! the room nominated pods keep.

use super::post_filter::cluster;
use super::*;

#[test]
fn nominated_pods_of_higher_priority_keep_their_room() {
    let pods = || {
        vec![
            on("low1", "node1", LOW).req(LARGE).obj(),
            on("low2", "node2", LOW).req(LARGE).obj(),
        ]
    };
    let pod = || make_pod("p").priority(MID).req(LARGE).obj();
    // Without nominations the nodes tie and the first wins.
    let setup = Setup::new(cluster(&["node1", "node2"], NODE_VERY_LARGE, pods()));
    let (result, _) = setup.post_filter(pod());
    assert_eq!(
        result.map(|r| r.nominated_node_name).as_deref(),
        Some("node1")
    );
    // A pod of higher priority nominated to node1 takes room the preemptor cannot have.
    let nominee = make_pod("nominee").priority(HIGH).req(LARGE).info();
    let setup = Setup::new(Cluster {
        nominator: TestNominator(vec![("node1".into(), nominee)]),
        ..cluster(&["node1", "node2"], NODE_VERY_LARGE, pods())
    });
    let (result, status) = setup.post_filter(pod());
    assert!(status.is_success(), "{status}");
    assert_eq!(
        result.map(|r| r.nominated_node_name).as_deref(),
        Some("node2")
    );
}

#[test]
fn select_best_candidate_mirrors_upstream() {
    let pod = || make_pod("p").priority(HIGH).req(VERY_LARGE).obj();
    let node1 = ["node1", "node2", "node3"];
    let at = |name: &str, node: &str, priority, req, time| {
        started(on(name, node, priority).req(req), time)
    };
    let cases: Vec<(&str, Vec<Pod>, Pod, &str)> = vec![
        (
            "node with min highest priority pod is picked",
            vec![
                at("p1.1", "node1", MID, MEDIUM, 0),
                at("p1.2", "node1", MID, LARGE, 0),
                at("p2.1", "node2", MID, MEDIUM, 0),
                at("p2.2", "node2", LOW, MEDIUM, 0),
                at("p3.1", "node3", LOW, MEDIUM, 0),
                at("p3.2", "node3", LOW, MEDIUM, 0),
            ],
            pod(),
            "node3",
        ),
        (
            "when highest priorities are the same, minimum sum of priorities is picked",
            vec![
                at("p1.1", "node1", MID, MEDIUM, 0),
                at("p1.2", "node1", MID, LARGE, 0),
                at("p2.1", "node2", MID, LARGE, 0),
                at("p2.2", "node2", LOW, MEDIUM, 0),
                at("p3.1", "node3", MID, MEDIUM, 0),
                at("p3.2", "node3", MID, MEDIUM, 0),
            ],
            pod(),
            "node2",
        ),
        (
            "when highest priority and sum are the same, minimum number of pods is picked",
            vec![
                at("p1.1", "node1", MID, SMALL, 0),
                at("p1.2", "node1", NEG, SMALL, 0),
                at("p1.3", "node1", MID, SMALL, 0),
                at("p1.4", "node1", NEG, SMALL, 0),
                at("p2.1", "node2", MID, LARGE, 0),
                at("p2.2", "node2", NEG, MEDIUM, 0),
                at("p3.1", "node3", MID, MEDIUM, 0),
                at("p3.2", "node3", NEG, SMALL, 0),
                at("p3.3", "node3", LOW, SMALL, 0),
            ],
            pod(),
            "node2",
        ),
        (
            "sum of adjusted priorities is considered",
            vec![
                at("p1.1", "node1", MID, SMALL, 0),
                at("p1.2", "node1", NEG, SMALL, 0),
                at("p1.3", "node1", NEG, SMALL, 0),
                at("p2.1", "node2", MID, LARGE, 0),
                at("p2.2", "node2", NEG, MEDIUM, 0),
                at("p3.1", "node3", MID, MEDIUM, 0),
                at("p3.2", "node3", NEG, SMALL, 0),
                at("p3.3", "node3", LOW, SMALL, 0),
            ],
            pod(),
            "node2",
        ),
        (
            "same priority, same number of victims, different start time for each node's pod",
            vec![
                at("p1.1", "node1", MID, MEDIUM, 2),
                at("p1.2", "node1", MID, MEDIUM, 2),
                at("p2.1", "node2", MID, MEDIUM, 3),
                at("p2.2", "node2", MID, MEDIUM, 3),
                at("p3.1", "node3", MID, MEDIUM, 1),
                at("p3.2", "node3", MID, MEDIUM, 1),
            ],
            pod(),
            "node2",
        ),
        (
            "same priority, same number of victims, different start time for all pods",
            vec![
                at("p1.1", "node1", MID, MEDIUM, 4),
                at("p1.2", "node1", MID, MEDIUM, 2),
                at("p2.1", "node2", MID, MEDIUM, 5),
                at("p2.2", "node2", MID, MEDIUM, 1),
                at("p3.1", "node3", MID, MEDIUM, 3),
                at("p3.2", "node3", MID, MEDIUM, 6),
            ],
            pod(),
            "node3",
        ),
        (
            "different priority, same number of victims, different start time for all pods",
            vec![
                at("p1.1", "node1", LOW, MEDIUM, 4),
                at("p1.2", "node1", MID, MEDIUM, 2),
                at("p2.1", "node2", MID, MEDIUM, 6),
                at("p2.2", "node2", LOW, MEDIUM, 1),
                at("p3.1", "node3", LOW, MEDIUM, 3),
                at("p3.2", "node3", MID, MEDIUM, 5),
            ],
            pod(),
            "node2",
        ),
    ];
    for (name, pods, pod, want) in cases {
        let setup = Setup::new(cluster(&node1, NODE_VERY_LARGE, pods));
        let (result, status) = setup.post_filter(pod);
        assert!(status.is_success(), "{name}: {status}");
        assert_eq!(
            result.map(|r| r.nominated_node_name).as_deref(),
            Some(want),
            "{name}"
        );
    }
    // Four nodes where each criterion would pick differently: the lowest highest priority decides.
    let pods = vec![
        at("p1.1", "node1", MID, SMALL, 0),
        at("p1.2", "node1", LOW, SMALL, 0),
        at("p1.3", "node1", LOW, SMALL, 0),
        at("p2.1", "node2", HIGH, LARGE, 0),
        at("p3.1", "node3", MID, MEDIUM, 0),
        at("p3.2", "node3", LOW, SMALL, 0),
        at("p3.3", "node3", LOW, SMALL, 0),
        at("p3.4", "node3", LOW, MEDIUM, 0),
        at("p4.1", "node4", MID, MEDIUM, 0),
        at("p4.2", "node4", MID, SMALL, 0),
        at("p4.3", "node4", MID, SMALL, 0),
        at("p4.4", "node4", NEG, SMALL, 0),
    ];
    let setup = Setup::new(cluster(
        &["node1", "node2", "node3", "node4"],
        NODE_VERY_LARGE,
        pods,
    ));
    let (result, _) = setup.post_filter(make_pod("p").priority(VERY_HIGH).req(VERY_LARGE).obj());
    assert_eq!(
        result.map(|r| r.nominated_node_name).as_deref(),
        Some("node1")
    );
    // Equal highest priority and equal adjusted sums (0+0 against 0-2^30-2^30, each victim shifted by 2^31): the
    // node with fewer victims wins even though it comes second.
    const NEG_HALF_SHIFT: i32 = -(1 << 30);
    let pods = vec![
        at("p1.1", "node1", LOW, SMALL, 0),
        at("p1.2", "node1", NEG_HALF_SHIFT, SMALL, 0),
        at("p1.3", "node1", NEG_HALF_SHIFT, SMALL, 0),
        at("p2.1", "node2", LOW, SMALL, 0),
        at("p2.2", "node2", LOW, SMALL, 0),
    ];
    let setup = Setup::new(cluster(&["node1", "node2"], NODE_VERY_LARGE, pods));
    let (result, _) = setup.post_filter(make_pod("p").priority(HIGH).req(VERY_LARGE).obj());
    assert_eq!(
        result.map(|r| r.nominated_node_name).as_deref(),
        Some("node2")
    );
}
