//! Upstream TestRequiredAffinityMultipleNodes and TestPreFilterDisabled.

use super::builders::*;
use super::*;

#[test]
fn required_affinity_multiple_nodes() {
    let china = || [("region", "China")];
    let zoned = |name: &str, zone: &str| {
        node(
            name,
            &[("region", "r1"), ("zone", zone), ("hostname", name)],
        )
    };
    let three = || {
        vec![
            node("nodeA", &china()),
            node("nodeB", &[("region", "China"), ("az", "az1")]),
            node("nodeC", &[("region", "India")]),
        ]
    };
    let group = || {
        make_pod("p")
            .labels(&[("foo", "bar"), SERVICE])
            .affinity(term_in("foo", "zone", &["bar"]))
            .affinity(term_in("service", "zone", &["securityscan"]))
    };
    let foo_bar = || vec![make_pod("p1").node("nodeA").labels(&[("foo", "bar")]).obj()];
    let labelled = |labels: &[(&str, &str)]| make_pod("p").labels(labels);
    let mut invalid_existing = multi(
        "an existing pod's anti-affinity with a topology key no node has",
        labelled(&[("foo", "")]).obj(),
        vec![
            make_pod("e")
                .node("nodeA")
                .anti_affinity(term_exists("foo", "invalid-node-label"))
                .obj(),
        ],
        vec![zoned("nodeA", "z1"), zoned("nodeB", "z1")],
        vec![OK, OK],
    );
    invalid_existing.pre_filter = Code::Skip;
    let cases = vec![
        multi(
            "nodes sharing the topology value of a matching pod fit",
            make_pod("p")
                .affinity(term_in("foo", "region", &["bar"]))
                .obj(),
            foo_bar(),
            three(),
            vec![OK, OK, AFFINITY],
        ),
        multi(
            "the first pod of a self-affine group may go anywhere",
            group().obj(),
            foo_bar(),
            vec![
                node("nodeA", &[("zone", "az1"), ("hostname", "h1")]),
                node("nodeB", &[("zone", "az2"), ("hostname", "h2")]),
            ],
            vec![OK, OK],
        ),
        multi(
            "the first pod of a group still needs the topology keys",
            group().obj(),
            foo_bar(),
            vec![
                node("nodeA", &[("zoneLabel", "az1"), ("hostname", "h1")]),
                node("nodeB", &[("zoneLabel", "az2"), ("hostname", "h2")]),
            ],
            vec![AFFINITY, AFFINITY],
        ),
        multi(
            "anti-affinity excludes the whole topology domain",
            make_pod("p")
                .anti_affinity(term_in("foo", "region", &["abc"]))
                .obj(),
            vec![make_pod("e").node("nodeA").labels(&[("foo", "abc")]).obj()],
            vec![zoned("nodeA", "z1"), zoned("nodeB", "z2")],
            vec![ANTI, ANTI],
        ),
        multi(
            "anti-affinity excludes only that domain",
            make_pod("p")
                .anti_affinity(term_in("foo", "region", &["abc"]))
                .obj(),
            vec![make_pod("e").node("nodeA").labels(&[("foo", "abc")]).obj()],
            three(),
            vec![ANTI, ANTI, OK],
        ),
        multi(
            "terms only apply in their namespaces",
            make_pod("p")
                .namespace("NS1")
                .labels(&[("foo", "123")])
                .anti_affinity(term_in("foo", "region", &["bar"]))
                .obj(),
            vec![
                make_pod("a")
                    .node("nodeA")
                    .namespace("NS1")
                    .labels(&[("foo", "bar")])
                    .obj(),
                make_pod("c")
                    .node("nodeC")
                    .namespace("NS2")
                    .anti_affinity(term_in("foo", "region", &["123"]))
                    .obj(),
            ],
            three(),
            vec![ANTI, ANTI, OK],
        ),
        invalid_existing,
        multi(
            "the incoming pod's anti-affinity needs the topology key too",
            make_pod("p")
                .node("nodeA")
                .anti_affinity(term_exists("foo", "invalid-node-label"))
                .obj(),
            vec![make_pod("e").node("nodeA").labels(&[("foo", "")]).obj()],
            vec![zoned("nodeA", "z1"), zoned("nodeB", "z1")],
            vec![OK, OK],
        ),
        multi(
            "each existing pod's anti-affinity excludes its domain",
            labelled(&[("foo", ""), ("bar", "")]).obj(),
            vec![
                make_pod("e1")
                    .node("nodeA")
                    .anti_affinity(term_exists("foo", "zone"))
                    .obj(),
                make_pod("e2")
                    .node("nodeA")
                    .anti_affinity(term_exists("bar", "region"))
                    .obj(),
            ],
            vec![zoned("nodeA", "z1"), zoned("nodeB", "z2")],
            vec![EXISTING, EXISTING],
        ),
        multi(
            "one anti-affinity term violated is enough",
            make_pod("p")
                .anti_affinity(term_exists("foo", "zone"))
                .anti_affinity(term_exists("bar", "region"))
                .obj(),
            vec![
                make_pod("e1").node("nodeA").labels(&[("foo", "")]).obj(),
                make_pod("e2").node("nodeB").labels(&[("bar", "")]).obj(),
            ],
            vec![zoned("nodeA", "z1"), zoned("nodeB", "z2")],
            vec![ANTI, ANTI],
        ),
        multi(
            "an existing pod's term counts only with its topology key",
            labelled(&[("foo", ""), ("bar", "")]).obj(),
            vec![
                make_pod("e")
                    .node("nodeA")
                    .anti_affinity(term_exists("foo", "invalid-node-label"))
                    .anti_affinity(term_exists("bar", "zone"))
                    .obj(),
            ],
            vec![zoned("nodeA", "z1"), zoned("nodeB", "z2")],
            vec![EXISTING, OK],
        ),
        multi(
            "an incoming term counts only with its topology key",
            make_pod("p")
                .anti_affinity(term_exists("foo", "invalid-node-label"))
                .anti_affinity(term_exists("bar", "zone"))
                .obj(),
            vec![
                make_pod("podA")
                    .node("nodeA")
                    .labels(&[("foo", ""), ("bar", "")])
                    .obj(),
            ],
            vec![zoned("nodeA", "z1"), zoned("nodeB", "z2")],
            vec![ANTI, OK],
        ),
        multi(
            "existing pods exclude every domain they span",
            labelled(&[("foo", ""), ("bar", "")]).obj(),
            vec![
                make_pod("a")
                    .node("nodeA")
                    .anti_affinity(term_exists("foo", "zone"))
                    .anti_affinity(term_exists("labelA", "zone"))
                    .obj(),
                make_pod("b")
                    .node("nodeB")
                    .anti_affinity(term_exists("bar", "zone"))
                    .anti_affinity(term_exists("labelB", "zone"))
                    .obj(),
            ],
            vec![
                zoned("nodeA", "z1"),
                zoned("nodeB", "z2"),
                zoned("nodeC", "z3"),
            ],
            vec![EXISTING, EXISTING, OK],
        ),
        multi(
            "all affinity terms matched by one pod",
            make_pod("p")
                .affinity(term_exists("foo", "region"))
                .affinity(term_exists("bar", "zone"))
                .obj(),
            vec![
                make_pod("pod1")
                    .labels(&[("foo", ""), ("bar", "")])
                    .node("nodeA")
                    .obj(),
            ],
            vec![zoned("nodeA", "z1"), zoned("nodeB", "z1")],
            vec![OK, OK],
        ),
        multi(
            "affinity terms matched by different pods do not count",
            make_pod("p")
                .affinity(term_exists("foo", "region"))
                .affinity(term_exists("bar", "zone"))
                .obj(),
            vec![
                make_pod("pod1").node("nodeA").labels(&[("foo", "")]).obj(),
                make_pod("pod2").node("nodeB").labels(&[("bar", "")]).obj(),
            ],
            vec![zoned("nodeA", "z1"), zoned("nodeB", "z2")],
            vec![AFFINITY, AFFINITY],
        ),
    ];
    run_filter(cases, &[("NS1", "")]);
}

#[test]
fn filter_without_pre_filter_state_is_an_error() {
    let p = plugin(InterPodAffinityArgs::default(), &[]);
    let node = crate::testing::make_node("n").info(vec![]);
    let status = p.filter(&CycleState::default(), &make_pod("p").info(), &node);
    assert_eq!(
        status,
        Status::error(r#"error reading "PreFilterInterPodAffinity" from cycleState: not found"#)
    );
}
