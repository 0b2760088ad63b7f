//! PostFilter verdicts, nominations, victims and messages (upstream TestPostFilter and TestPreempt).

use super::*;

/// What PostFilter should answer.
pub(super) enum Want {
    /// Success: nominate the node and evict these pods.
    Nominate(&'static str, Vec<&'static str>),
    /// Unschedulable with an empty nomination (upstream's NewPostFilterResultWithNominatedNode("")).
    Clear(&'static str),
    /// No result, with this code and message.
    Refuse(Code, &'static str),
}

pub(super) struct Case {
    pub name: &'static str,
    pub pod: Pod,
    pub cluster: Cluster,
    pub want: Want,
}

pub(super) fn check(case: Case) {
    let setup = Setup::new(case.cluster);
    let (result, status) = setup.post_filter(case.pod);
    match case.want {
        Want::Nominate(node, victims) => {
            assert!(status.is_success(), "{}: {status}", case.name);
            let result = result.unwrap_or_else(|| panic!("{}: no result", case.name));
            assert_eq!(result.nominated_node_name, node, "{}", case.name);
            assert_eq!(victim_names(&result), victims, "{}", case.name);
        }
        Want::Clear(message) => {
            assert_eq!(status.code(), Code::Unschedulable, "{}", case.name);
            assert_eq!(status.reasons(), [message], "{}", case.name);
            let result = result.unwrap_or_else(|| panic!("{}: no result", case.name));
            assert_eq!(result.nominated_node_name, "", "{}", case.name);
            assert!(result.victims.is_empty(), "{}", case.name);
        }
        Want::Refuse(code, message) => {
            assert_eq!(status.code(), code, "{}", case.name);
            assert_eq!(status.reasons(), [message], "{}", case.name);
            assert!(result.is_none(), "{}", case.name);
        }
    }
}

pub(super) fn cluster(
    names: &[&'static str],
    capacity: &[(&str, &str)],
    pods: Vec<Pod>,
) -> Cluster {
    let (nodes, statuses) = nodes(names, capacity);
    Cluster {
        nodes,
        statuses,
        pods,
        ..Default::default()
    }
}

#[test]
fn post_filter_mirrors_upstream() {
    let preemptor = |priority| make_pod("p").priority(priority);
    let cases = vec![
        Case {
            name: "pod with higher priority can be made schedulable",
            pod: preemptor(HIGH).obj(),
            cluster: cluster(
                &["node1"],
                NODE_ONE_POD,
                vec![make_pod("p1").node("node1").obj()],
            ),
            want: Want::Nominate("node1", vec!["p1"]),
        },
        Case {
            name: "pod with tied priority is still unschedulable",
            pod: preemptor(LOW).obj(),
            cluster: cluster(
                &["node1"],
                NODE_ONE_POD,
                vec![make_pod("p1").node("node1").obj()],
            ),
            want: Want::Clear(
                "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.",
            ),
        },
        Case {
            name: "preemption should respect filteredNodesStatuses",
            pod: preemptor(HIGH).obj(),
            cluster: Cluster {
                statuses: vec![("node1", Code::UnschedulableAndUnresolvable)],
                ..cluster(
                    &["node1"],
                    NODE_ONE_POD,
                    vec![make_pod("p1").node("node1").obj()],
                )
            },
            want: Want::Clear(
                "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.",
            ),
        },
        Case {
            name: "an absent status means UnschedulableAndUnresolvable",
            pod: preemptor(HIGH).obj(),
            cluster: Cluster {
                statuses: Vec::new(),
                ..cluster(
                    &["node1"],
                    NODE_ONE_POD,
                    vec![make_pod("p1").node("node1").obj()],
                )
            },
            want: Want::Clear(
                "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.",
            ),
        },
        Case {
            name: "pod can be made schedulable on one node",
            pod: preemptor(MID).obj(),
            cluster: cluster(
                &["node1", "node2"],
                NODE_ONE_POD,
                vec![on("p1", "node1", HIGH).obj(), on("p2", "node2", LOW).obj()],
            ),
            want: Want::Nominate("node2", vec!["p2"]),
        },
        Case {
            name: "pod can be made schedulable on minHighestPriority node",
            pod: preemptor(VERY_HIGH).obj(),
            cluster: Cluster {
                pdbs: vec![
                    pdb("pdb", "violating", 0, &[]),
                    pdb("pdb", "non-violating", i32::MAX, &[]),
                ],
                ..cluster(
                    &["node1", "node2"],
                    NODE_ONE_POD,
                    vec![
                        on("p1", "node1", HIGH).label("pdb", "non-violating").obj(),
                        on("p2", "node1", LOW).label("pdb", "violating").obj(),
                        on("p3", "node2", MID).label("pdb", "violating").obj(),
                    ],
                )
            },
            want: Want::Nominate("node2", vec!["p3"]),
        },
        Case {
            name: "a node without budget violations beats a lower-priority victim that violates one",
            pod: preemptor(HIGH).obj(),
            cluster: Cluster {
                pdbs: vec![pdb("app", "guarded", 0, &[])],
                ..cluster(
                    &["node1", "node2"],
                    NODE_ONE_POD,
                    vec![
                        on("guarded", "node1", LOW).label("app", "guarded").obj(),
                        on("free", "node2", MID).label("app", "free").obj(),
                    ],
                )
            },
            want: Want::Nominate("node2", vec!["free"]),
        },
        Case {
            name: "no candidate nodes found, no enough resource after removing low priority pods",
            pod: preemptor(HIGH).req(LARGE).obj(),
            cluster: cluster(
                &["node1", "node2"],
                NODE_RES,
                vec![
                    make_pod("p1").node("node1").obj(),
                    make_pod("p2").node("node2").obj(),
                ],
            ),
            want: Want::Clear("preemption: 0/2 nodes are available: 2 Insufficient cpu."),
        },
        Case {
            name: "no candidate nodes found with mixed reasons",
            pod: preemptor(HIGH).req(LARGE).obj(),
            cluster: Cluster {
                nodes: vec![
                    make_node("node1").capacity(NODE_ONE_POD).obj(),
                    make_node("node2").capacity(NODE_RES).obj(),
                    make_node("node3").capacity(NODE_ONE_POD).obj(),
                ],
                ..cluster(
                    &["node1", "node2", "node3"],
                    NODE_ONE_POD,
                    vec![
                        on("p1", "node1", HIGH).obj(),
                        make_pod("p2").node("node2").obj(),
                        on("p3", "node3", HIGH).obj(),
                    ],
                )
            },
            want: Want::Clear(
                "preemption: 0/3 nodes are available: 1 Insufficient cpu, 2 No preemption victims found for incoming pod.",
            ),
        },
        Case {
            name: "no candidate nodes found with mixed reasons, 2 unresolvable or absent nodes",
            pod: preemptor(HIGH).req(LARGE).obj(),
            cluster: Cluster {
                statuses: vec![
                    ("node1", Code::Unschedulable),
                    ("node2", Code::Unschedulable),
                    ("node4", Code::UnschedulableAndUnresolvable),
                ],
                ..cluster(
                    &["node1", "node2", "node3", "node4"],
                    NODE_RES,
                    vec![
                        make_pod("p1").node("node1").obj(),
                        make_pod("p2").node("node2").obj(),
                    ],
                )
            },
            want: Want::Clear(
                "preemption: 0/4 nodes are available: 2 Insufficient cpu, 2 Preemption is not helpful for scheduling.",
            ),
        },
        Case {
            name: "only one node but it fails in a PreFilter extension",
            pod: preemptor(HIGH).req(LARGE).obj(),
            cluster: Cluster {
                nodes: vec![
                    make_node("node1")
                        .capacity(NODE_VERY_LARGE)
                        .label("error", "true")
                        .obj(),
                ],
                ..cluster(
                    &["node1"],
                    NODE_VERY_LARGE,
                    vec![make_pod("p1").node("node1").obj()],
                )
            },
            want: Want::Refuse(
                Code::Error,
                "preemption: running TestBlocker PreFilter extension: failed to remove pod: p",
            ),
        },
        Case {
            name: "one node fails in a PreFilter extension and the other passes",
            pod: preemptor(HIGH).req(LARGE).obj(),
            cluster: Cluster {
                nodes: vec![
                    make_node("node1")
                        .capacity(NODE_VERY_LARGE)
                        .label("error", "true")
                        .obj(),
                    make_node("node2").capacity(NODE_VERY_LARGE).obj(),
                ],
                ..cluster(
                    &["node1", "node2"],
                    NODE_VERY_LARGE,
                    vec![
                        make_pod("p1").node("node1").obj(),
                        make_pod("p2").node("node2").req(LARGE).obj(),
                    ],
                )
            },
            want: Want::Nominate("node2", vec!["p2"]),
        },
        Case {
            name: "basic preemption logic (TestPreempt)",
            pod: preemptor(HIGH).req(VERY_LARGE).obj(),
            cluster: cluster(
                &["node1", "node2", "node3"],
                NODE_VERY_LARGE,
                vec![
                    on("p1.1", "node1", LOW).req(SMALL).obj(),
                    on("p1.2", "node1", LOW).req(SMALL).obj(),
                    on("p2.1", "node2", HIGH).req(LARGE).obj(),
                    on("p3.1", "node3", MID).req(MEDIUM).obj(),
                ],
            ),
            want: Want::Nominate("node1", vec!["p1.1", "p1.2"]),
        },
        Case {
            name: "victims are removed through PreFilter extensions, unneeded ones reprieved",
            pod: preemptor(HIGH).req(SMALL).obj(),
            cluster: cluster(
                &["node1"],
                NODE_VERY_LARGE,
                vec![
                    on("blocker", "node1", LOW)
                        .label("blocker", "")
                        .req(SMALL)
                        .obj(),
                    on("bystander", "node1", LOW).req(SMALL).obj(),
                ],
            ),
            want: Want::Nominate("node1", vec!["blocker"]),
        },
    ];
    for case in cases {
        check(case);
    }
}
