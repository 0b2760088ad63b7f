//! Upstream TestPreferredAffinity.

use super::builders::*;
use super::*;

#[test]
fn preferred_affinity() {
    use Expect::{PreScore, Scores};
    let s1 = |name, node| pod(name, &[S1], node);
    let s2 = |name, node| pod(name, &[S2], node);
    let in_ns = |name, ns, node| pod(name, &[S1], node).namespace(ns);
    let incoming = || {
        make_pod("incoming")
            .labels(&[S1])
            .namespace("subteam1.team1")
    };
    let by_namespace = || {
        vec![
            in_ns("a", "subteam1.team1", "node1"),
            in_ns("b", "subteam1.team1", "node1"),
            in_ns("c", "subteam1.team2", "node1"),
            in_ns("d", "subteam2.team1", "node2"),
        ]
    };
    let with_subteam2_team2 = || {
        vec![
            in_ns("a", "subteam1.team1", "node1"),
            in_ns("b", "subteam1.team1", "node1"),
            in_ns("c", "subteam2.team2", "node1"),
            in_ns("d", "subteam2.team1", "node2"),
        ]
    };
    let cases = vec![
        case(
            "no affinity anywhere",
            make_pod("p").labels(&[S1]),
            vec![],
            vec![china("node1"), india("node2"), az("node3", "az1")],
            PreScore(Code::Skip),
        ),
        case(
            "affinity: matching pods in the topology score high",
            stay_with_s1_in_region(make_pod("p").labels(&[S1])),
            vec![s1("a", "node1"), s2("b", "node2"), s1("c", "node3")],
            vec![china("node1"), india("node2"), az("node3", "az1")],
            Scores(vec![100, 0, 0]),
        ),
        case(
            "affinity: nodes sharing the topology value score the same",
            stay_with_s1_in_region(make_pod("p")),
            vec![s1("a", "node1")],
            vec![china("node1"), china_az1("node2"), india("node3")],
            Scores(vec![100, 100, 0]),
        ),
        case(
            "affinity: the region with more matching pods scores high",
            stay_with_s2_in_region(make_pod("p").labels(&[S1])),
            vec![
                s2("a", "node1"),
                s2("b", "node1"),
                s2("c", "node2"),
                s2("d", "node3"),
                s2("e", "node4"),
                s2("f", "node5"),
            ],
            vec![
                china("node1"),
                india("node2"),
                china("node3"),
                china("node4"),
                india("node5"),
            ],
            Scores(vec![100, 0, 100, 100, 0]),
        ),
        case(
            "affinity: different operators, some not matching",
            make_pod("p")
                .labels(&[S1])
                .preferred_affinity(
                    8,
                    term(
                        "region",
                        &[("security", "NotIn", &["S1"]), ("security", "In", &["S2"])],
                    ),
                )
                .preferred_affinity(
                    2,
                    term(
                        "region",
                        &[
                            ("security", "Exists", &[]),
                            ("wrongkey", "DoesNotExist", &[]),
                        ],
                    ),
                ),
            vec![s1("a", "node1"), s2("b", "node2"), s1("c", "node3")],
            vec![china("node1"), india("node2"), az("node3", "az1")],
            Scores(vec![20, 100, 0]),
        ),
        case(
            "affinity symmetry: existing pods' preferred terms",
            make_pod("p").labels(&[S2]),
            vec![
                stay_with_s1_in_region(s1("a", "node1")),
                stay_with_s2_in_region(s2("b", "node2")),
            ],
            vec![china("node1"), india("node2"), az("node3", "az1")],
            Scores(vec![0, 100, 0]),
        ),
        case(
            "affinity symmetry with a namespaceSelector",
            incoming(),
            vec![
                s1("a", "node1")
                    .preferred_affinity(5, team1_or_subteam2_team2(security("S1", "region"))),
                stay_with_s2_in_region(s2("b", "node2")),
            ],
            vec![china("node1"), india("node2"), az("node3", "az1")],
            Scores(vec![100, 0, 0]),
        ),
        case(
            "anti-affinity symmetry with a namespaceSelector",
            incoming(),
            vec![
                s1("a", "node1")
                    .preferred_anti_affinity(5, team1_or_subteam2_team2(security("S1", "region"))),
                stay_with_s2_in_region(s2("b", "node2")),
            ],
            vec![china("node1"), india("node2"), az("node3", "az1")],
            Scores(vec![0, 100, 100]),
        ),
        case(
            "affinity symmetry: existing pods' required terms with the hard weight",
            make_pod("p").labels(&[S1]),
            vec![
                hard_affinity(s1("a", "node1")),
                hard_affinity(s2("b", "node2")),
            ],
            vec![china("node1"), india("node2"), az("node3", "az1")],
            Scores(vec![100, 100, 0]),
        ),
        case(
            "anti-affinity: nodes without matching pods score high",
            away_from_in_az(make_pod("p").labels(&[S1]), "S1"),
            vec![s1("a", "node1"), s2("b", "node2")],
            vec![az("node1", "az1"), china("node2")],
            Scores(vec![0, 100]),
        ),
        case(
            "anti-affinity: nodes without the topology key score high",
            away_from_in_az(make_pod("p").labels(&[S1]), "S1"),
            vec![s1("a", "node1"), s1("b", "node2")],
            vec![az("node1", "az1"), china("node2")],
            Scores(vec![0, 100]),
        ),
        case(
            "anti-affinity: the node with more matching pods scores low",
            away_from_in_az(make_pod("p").labels(&[S1]), "S1"),
            vec![s1("a", "node1"), s1("b", "node1"), s2("c", "node2")],
            vec![az("node1", "az1"), india("node2")],
            Scores(vec![0, 100]),
        ),
        case(
            "anti-affinity symmetry",
            make_pod("p").labels(&[S2]),
            vec![
                away_from_in_az(s1("a", "node1"), "S2"),
                away_from_in_az(s2("b", "node2"), "S1"),
            ],
            vec![az("node1", "az1"), az("node2", "az2")],
            Scores(vec![0, 100]),
        ),
        case(
            "affinity and anti-affinity",
            stay_with_s1_away_from_s2(make_pod("p").labels(&[S1])),
            vec![s1("a", "node1"), s1("b", "node2")],
            vec![china("node1"), az("node2", "az1")],
            Scores(vec![100, 0]),
        ),
        case(
            "affinity and anti-affinity towards pods with the same labels",
            stay_with_s1_away_from_s2(make_pod("p").labels(&[S1])),
            vec![
                s1("a", "node1"),
                s1("b", "node1"),
                s1("c", "node2"),
                s1("d", "node3"),
                s1("e", "node3"),
                s1("f", "node4"),
                s1("g", "node5"),
            ],
            vec![
                china_az1("node1"),
                india("node2"),
                china("node3"),
                china("node4"),
                india("node5"),
            ],
            Scores(vec![100, 0, 100, 100, 0]),
        ),
        case(
            "affinity, anti-affinity and symmetry",
            stay_with_s1_away_from_s2(make_pod("p").labels(&[S1])),
            vec![
                s1("a", "node1"),
                s2("b", "node2"),
                stay_with_s1_away_from_s2(pod("c", &[], "node3")),
                away_from_in_az(pod("d", &[], "node4"), "S1"),
            ],
            vec![
                china("node1"),
                az("node2", "az1"),
                india("node3"),
                az("node4", "az2"),
            ],
            Scores(vec![100, 0, 100, 0]),
        ),
        case(
            "nodes of a topology without pods with affinity (kubernetes#82796)",
            make_pod("p").labels(&[S1]),
            vec![
                s1("a", "node1"),
                stay_with_s1_away_from_s2(pod("b", &[], "node2")),
            ],
            vec![china("node1"), china("node2")],
            Scores(vec![0, 0]),
        ),
        case(
            "an unparsable preferred term fails PreScore",
            make_pod("p").preferred_affinity(8, term("region", &[("security", "Bogus", &["x"])])),
            vec![],
            vec![china("node1"), china("node2")],
            PreScore(Code::Error),
        ),
        case(
            "affinity with pods matching the namespaceSelector",
            incoming().preferred_affinity(5, team1_or_subteam2_team2(security("S1", "region"))),
            by_namespace(),
            vec![china("node1"), india("node2")],
            Scores(vec![100, 0]),
        ),
        case(
            "affinity with pods matching the namespaceSelector and namespaces",
            incoming().preferred_affinity(5, team1_or_subteam2_team2(security("S1", "region"))),
            with_subteam2_team2(),
            vec![china("node1"), india("node2")],
            Scores(vec![100, 0]),
        ),
        case(
            "anti-affinity with pods matching the namespaceSelector",
            incoming()
                .preferred_anti_affinity(5, team1_or_subteam2_team2(security("S1", "region"))),
            by_namespace(),
            vec![china("node1"), india("node2")],
            Scores(vec![0, 100]),
        ),
        case(
            "anti-affinity with pods matching the namespaceSelector and namespaces",
            incoming()
                .preferred_anti_affinity(5, team1_or_subteam2_team2(security("S1", "region"))),
            with_subteam2_team2(),
            vec![china("node1"), india("node2")],
            Scores(vec![0, 100]),
        ),
        case(
            "existing pods' preferred terms count by default",
            make_pod("p").labels(&[S2]),
            vec![
                stay_with_s1_away_from_s2(s1("a", "node1")),
                stay_with_s2_in_region(s2("b", "node2")),
            ],
            vec![china("node1"), india("node2")],
            Scores(vec![0, 100]),
        ),
        case(
            "no nodes to score",
            make_pod("p").labels(&[S2]),
            vec![],
            vec![],
            PreScore(Code::Skip),
        ),
    ];
    run_score(InterPodAffinityArgs::default(), cases);
}
