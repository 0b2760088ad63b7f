//! Upstream TestRequiredAffinitySingleNode.

use super::builders::*;
use super::*;

#[test]
fn required_affinity_single_node() {
    let existing = || make_pod("existing").labels(&[SERVICE]).node("node1");
    let incoming = || make_pod("incoming").labels(&[SECURITY]);
    let scan_in_region = || term_in("service", "region", &["securityscan", "value2"]);
    let team1 = Some(&["team1"][..]);
    let mut skipped = single(
        "no required terms and no existing pods",
        make_pod("p").obj(),
        vec![],
        OK,
    );
    skipped.pre_filter = Code::Skip;
    let mut existing_not_in = single(
        "existing pod's anti-affinity (NotIn) does not match",
        make_pod("p").labels(&[SERVICE]).obj(),
        vec![
            existing()
                .anti_affinity(term(
                    "zone",
                    &[("service", "NotIn", &["securityscan", "value2"])],
                ))
                .obj(),
        ],
        OK,
    );
    existing_not_in.pre_filter = Code::Skip;
    let cases = vec![
        skipped,
        single(
            "affinity In matches the existing pod",
            incoming().affinity(scan_in_region()).obj(),
            vec![existing().obj()],
            OK,
        ),
        single(
            "affinity NotIn matches the existing pod",
            incoming()
                .affinity(term(
                    "region",
                    &[("service", "NotIn", &["securityscan3", "value3"])],
                ))
                .obj(),
            vec![existing().obj()],
            OK,
        ),
        single(
            "affinity does not match a pod in another namespace",
            incoming()
                .affinity(in_namespaces(
                    term_in("service", "", &["securityscan", "value2"]),
                    &["DiffNameSpace"],
                    None,
                ))
                .obj(),
            vec![existing().namespace("ns").obj()],
            AFFINITY,
        ),
        single(
            "affinity selector does not match the existing pod",
            make_pod("p")
                .labels(&[SERVICE])
                .affinity(term_in("service", "", &["antivirusscan", "value2"]))
                .obj(),
            vec![existing().obj()],
            AFFINITY,
        ),
        single(
            "several terms with different operators all match",
            incoming()
                .affinity(term(
                    "region",
                    &[
                        ("service", "Exists", &[]),
                        ("wrongkey", "DoesNotExist", &[]),
                    ],
                ))
                .affinity(term(
                    "region",
                    &[
                        ("service", "In", &["securityscan"]),
                        ("service", "NotIn", &["WrongValue"]),
                    ],
                ))
                .obj(),
            vec![existing().obj()],
            OK,
        ),
        single(
            "requirements are ANDed: one does not match",
            incoming()
                .affinity(term(
                    "region",
                    &[
                        ("service", "Exists", &[]),
                        ("wrongkey", "DoesNotExist", &[]),
                    ],
                ))
                .affinity(term(
                    "region",
                    &[
                        ("service", "In", &["securityscan2"]),
                        ("service", "NotIn", &["WrongValue"]),
                    ],
                ))
                .obj(),
            vec![existing().obj()],
            AFFINITY,
        ),
        single(
            "affinity and anti-affinity both satisfied",
            incoming()
                .affinity(scan_in_region())
                .anti_affinity(term_in("service", "node", &["antivirusscan", "value2"]))
                .obj(),
            vec![existing().obj()],
            OK,
        ),
        single(
            "affinity, anti-affinity and the existing pod's anti-affinity satisfied",
            incoming()
                .affinity(scan_in_region())
                .anti_affinity(term_in("service", "node", &["antivirusscan", "value2"]))
                .obj(),
            vec![
                existing()
                    .anti_affinity(term_in("service", "node", &["antivirusscan", "value2"]))
                    .obj(),
            ],
            OK,
        ),
        single(
            "affinity satisfied, anti-affinity not",
            incoming()
                .affinity(scan_in_region())
                .anti_affinity(term_in("service", "zone", &["securityscan", "value2"]))
                .obj(),
            vec![existing().obj()],
            ANTI,
        ),
        single(
            "the existing pod's anti-affinity is not satisfied",
            make_pod("p")
                .labels(&[SERVICE])
                .affinity(scan_in_region())
                .anti_affinity(term_in("service", "node", &["antivirusscan", "value2"]))
                .obj(),
            vec![
                existing()
                    .anti_affinity(term_in("service", "zone", &["securityscan", "value2"]))
                    .obj(),
            ],
            EXISTING,
        ),
        single(
            "a pod matching its own NotIn affinity is not the first of its group",
            make_pod("p")
                .labels(&[SERVICE])
                .affinity(term(
                    "region",
                    &[("service", "NotIn", &["securityscan", "value2"])],
                ))
                .obj(),
            vec![make_pod("elsewhere").labels(&[SERVICE]).node("node2").obj()],
            AFFINITY,
        ),
        single(
            "the existing pod's anti-affinity applies to a pod without terms",
            make_pod("p").labels(&[SERVICE]).obj(),
            vec![
                existing()
                    .anti_affinity(term_in("service", "zone", &["securityscan", "value2"]))
                    .obj(),
            ],
            EXISTING,
        ),
        existing_not_in,
        single(
            "the incoming pod's anti-affinity is checked first",
            make_pod("p")
                .labels(&[SERVICE])
                .anti_affinity(term_exists("service", "region"))
                .anti_affinity(term_exists("security", "region"))
                .obj(),
            vec![
                make_pod("e")
                    .labels(&[SECURITY])
                    .node("node1")
                    .anti_affinity(term_exists("security", "zone"))
                    .obj(),
            ],
            ANTI,
        ),
        single(
            "symmetry a1: partial match on both sides",
            make_pod("p")
                .labels(&[SERVICE])
                .anti_affinity(term_exists("service", "zone"))
                .anti_affinity(term_exists("security", "zone"))
                .obj(),
            vec![
                make_pod("e")
                    .labels(&[SECURITY])
                    .node("node1")
                    .anti_affinity(term_exists("security", "zone"))
                    .obj(),
            ],
            ANTI,
        ),
        single(
            "symmetry a2: only the existing pod's term matches",
            make_pod("p")
                .labels(&[SECURITY])
                .anti_affinity(term_exists("security", "zone"))
                .obj(),
            vec![
                existing()
                    .anti_affinity(term_exists("service", "zone"))
                    .anti_affinity(term_exists("security", "zone"))
                    .obj(),
            ],
            EXISTING,
        ),
        single(
            "symmetry b1",
            make_pod("p")
                .labels(&[("abc", ""), ("xyz", "")])
                .anti_affinity(term_exists("abc", "zone"))
                .anti_affinity(term_exists("def", "zone"))
                .obj(),
            vec![
                make_pod("e")
                    .labels(&[("def", ""), ("xyz", "")])
                    .node("node1")
                    .anti_affinity(term_exists("abc", "zone"))
                    .anti_affinity(term_exists("def", "zone"))
                    .obj(),
            ],
            ANTI,
        ),
        single(
            "affinity with a matching namespaceSelector",
            incoming()
                .affinity(in_namespaces(scan_in_region(), &[], team1))
                .obj(),
            vec![existing().namespace("subteam1.team1").obj()],
            OK,
        ),
        single(
            "affinity with a non-matching namespaceSelector",
            incoming()
                .affinity(in_namespaces(scan_in_region(), &[], team1))
                .obj(),
            vec![existing().namespace("subteam1.team2").obj()],
            AFFINITY,
        ),
        single(
            "anti-affinity with a matching namespaceSelector",
            incoming()
                .namespace("subteam1.team1")
                .anti_affinity(in_namespaces(
                    term_in("service", "zone", &["securityscan"]),
                    &[],
                    team1,
                ))
                .obj(),
            vec![existing().namespace("subteam2.team1").obj()],
            ANTI,
        ),
        single(
            "anti-affinity with an all-namespaces selector",
            incoming()
                .namespace("subteam1.team1")
                .anti_affinity(in_namespaces(
                    term_in("service", "zone", &["securityscan"]),
                    &[],
                    Some(&[]),
                ))
                .obj(),
            vec![existing().namespace("subteam2.team1").obj()],
            ANTI,
        ),
        single(
            "anti-affinity with a non-matching namespaceSelector",
            incoming()
                .namespace("subteam1.team1")
                .anti_affinity(in_namespaces(
                    term_in("service", "zone", &["securityscan"]),
                    &[],
                    team1,
                ))
                .obj(),
            vec![existing().namespace("subteam1.team2").obj()],
            OK,
        ),
    ];
    run_filter(cases, &team_namespaces());
}

#[test]
fn unparsable_terms_fail_pre_filter_as_unresolvable() {
    let p = plugin(InterPodAffinityArgs::default(), &[]);
    let pod = make_pod("p")
        .affinity(term("region", &[("service", "Bogus", &["x"])]))
        .info();
    let snapshot = snapshot(&[], &[node("node1", &[("region", "r1")])]);
    let (_, status) = p.pre_filter(&mut CycleState::default(), &pod, &snapshot);
    assert_eq!(status.code(), Code::UnschedulableAndUnresolvable);
    assert!(status.message().starts_with("parsing pod: "), "{status}");
}
