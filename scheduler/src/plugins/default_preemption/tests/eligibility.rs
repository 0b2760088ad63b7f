//! Who may preempt (upstream TestPodEligibleToPreemptOthers), through the whole PostFilter.

use super::post_filter::{Case, Want, check, cluster};
use super::*;

#[test]
fn pod_eligible_to_preempt_others_mirrors_upstream() {
    let preemptor = |priority| make_pod("p").priority(priority);
    let cases = vec![
        Case {
            name: "no preempting in pod: preemptionPolicy Never",
            pod: preemptor(HIGH)
                .req(VERY_LARGE)
                .with_spec(|s| s.preemption_policy = Some("Never".into()))
                .obj(),
            cluster: cluster(
                &["node1"],
                NODE_VERY_LARGE,
                vec![on("p1.1", "node1", LOW).obj()],
            ),
            want: Want::Refuse(
                Code::Unschedulable,
                "preemption: not eligible due to preemptionPolicy=Never.",
            ),
        },
        Case {
            name: "victim of an earlier preemption still terminating on the nominated node",
            pod: nominated(preemptor(HIGH).req(VERY_LARGE), "node1"),
            cluster: cluster(
                &["node1"],
                NODE_VERY_LARGE,
                vec![terminating(on("p1", "node1", LOW).req(LARGE), true)],
            ),
            want: Want::Refuse(
                Code::Unschedulable,
                "preemption: not eligible due to a terminating pod on the nominated node.",
            ),
        },
        Case {
            name: "a pod terminating for another reason does not hold the preemptor back",
            pod: nominated(preemptor(HIGH).req(VERY_LARGE), "node1"),
            cluster: cluster(
                &["node1"],
                NODE_VERY_LARGE,
                vec![terminating(on("p1", "node1", LOW).req(LARGE), false)],
            ),
            want: Want::Nominate("node1", vec!["p1"]),
        },
        Case {
            name: "a DisruptionTarget condition that is not True does not hold the preemptor back",
            pod: nominated(preemptor(HIGH).req(VERY_LARGE), "node1"),
            cluster: cluster(&["node1"], NODE_VERY_LARGE, {
                let mut victim = terminating(on("p1", "node1", LOW).req(LARGE), true);
                if let Some(conditions) = victim.status.as_mut().and_then(|s| s.conditions.as_mut())
                {
                    conditions[0].status = "False".into();
                }
                vec![victim]
            }),
            want: Want::Nominate("node1", vec!["p1"]),
        },
        Case {
            name: "an unresolvable nominated node lets the pod preempt elsewhere",
            pod: nominated(preemptor(HIGH).req(VERY_LARGE), "node1"),
            cluster: Cluster {
                statuses: vec![
                    ("node1", Code::UnschedulableAndUnresolvable),
                    ("node2", Code::Unschedulable),
                ],
                ..cluster(
                    &["node1", "node2"],
                    NODE_VERY_LARGE,
                    vec![
                        terminating(on("p1", "node1", LOW).req(LARGE), true),
                        on("p2", "node2", LOW).req(LARGE).obj(),
                    ],
                )
            },
            want: Want::Nominate("node2", vec!["p2"]),
        },
        Case {
            name: "a terminating pod of higher priority on the nominated node is no victim of ours",
            pod: nominated(preemptor(MID).req(LARGE), "node1"),
            cluster: cluster(
                &["node1"],
                NODE_VERY_LARGE,
                vec![
                    terminating(on("high", "node1", HIGH).req(SMALL), true),
                    on("p1", "node1", LOW).req(LARGE).obj(),
                ],
            ),
            want: Want::Nominate("node1", vec!["p1"]),
        },
        Case {
            name: "a victim terminating on another node does not hold the preemptor back",
            pod: nominated(preemptor(HIGH).req(VERY_LARGE), "node1"),
            cluster: cluster(
                &["node1", "node2"],
                NODE_VERY_LARGE,
                vec![
                    on("p1", "node1", LOW).req(LARGE).obj(),
                    terminating(on("p2", "node2", LOW).req(LARGE), true),
                ],
            ),
            want: Want::Nominate("node1", vec!["p1"]),
        },
        Case {
            name: "a pod without a nominated node may preempt despite terminating victims",
            pod: preemptor(HIGH).req(VERY_LARGE).obj(),
            cluster: cluster(
                &["node1"],
                NODE_VERY_LARGE,
                vec![terminating(on("p1", "node1", LOW).req(LARGE), true)],
            ),
            want: Want::Nominate("node1", vec!["p1"]),
        },
    ];
    for case in cases {
        check(case);
    }
}
