use k8s_openapi::api::core::v1::{
    Affinity, NodeSelectorRequirement, NodeSelectorTerm, PreferredSchedulingTerm,
};

use super::*;
use crate::framework::{Code, StaticListers};
use crate::testing::{MakePod, make_node, make_pod};

pub(super) fn expr(key: &str, operator: &str, values: &[&str]) -> NodeSelectorRequirement {
    NodeSelectorRequirement {
        key: key.into(),
        operator: operator.into(),
        values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
    }
}

pub(super) fn name_in(name: &str) -> NodeSelectorRequirement {
    expr("metadata.name", "In", &[name])
}

pub(super) fn term(
    expressions: Vec<NodeSelectorRequirement>,
    fields: Vec<NodeSelectorRequirement>,
) -> NodeSelectorTerm {
    NodeSelectorTerm {
        match_expressions: (!expressions.is_empty()).then_some(expressions),
        match_fields: (!fields.is_empty()).then_some(fields),
    }
}

pub(super) fn exprs(expressions: Vec<NodeSelectorRequirement>) -> NodeSelectorTerm {
    term(expressions, vec![])
}

pub(super) fn affinity(
    spec: NodeAffinitySpec,
) -> impl FnOnce(&mut k8s_openapi::api::core::v1::PodSpec) {
    move |s| {
        s.affinity = Some(Affinity {
            node_affinity: Some(spec),
            ..Default::default()
        })
    }
}

pub(super) fn required_spec(terms: Vec<NodeSelectorTerm>) -> NodeAffinitySpec {
    NodeAffinitySpec {
        required_during_scheduling_ignored_during_execution: Some(NodeSelector {
            node_selector_terms: terms,
        }),
        ..Default::default()
    }
}

pub(super) fn preferred_spec(terms: &[(i32, NodeSelectorTerm)]) -> NodeAffinitySpec {
    NodeAffinitySpec {
        preferred_during_scheduling_ignored_during_execution: Some(
            terms
                .iter()
                .map(|(weight, preference)| PreferredSchedulingTerm {
                    weight: *weight,
                    preference: preference.clone(),
                })
                .collect(),
        ),
        ..Default::default()
    }
}

pub(super) fn required(terms: Vec<NodeSelectorTerm>) -> MakePod {
    make_pod("p").with_spec(affinity(required_spec(terms)))
}

pub(super) fn node(name: &str, labels: &[(&str, &str)]) -> NodeInfo {
    labels
        .iter()
        .fold(make_node(name), |n, (k, v)| n.label(k, v))
        .info(vec![])
}

pub(super) fn plugin(added: Option<NodeAffinitySpec>) -> NodeAffinity {
    NodeAffinity::new(
        &NodeAffinityArgs {
            added_affinity: added,
        },
        &Handle::for_tests(StaticListers::default()),
    )
    .unwrap()
}

mod score;

#[derive(Debug)]
enum PreFilter {
    NotRun,
    Skip,
    Pass,
    Narrow(&'static [&'static str]),
    Reject(&'static str),
}

struct Case {
    name: &'static str,
    pod: MakePod,
    node: NodeInfo,
    added: Option<NodeAffinitySpec>,
    pre_filter: PreFilter,
    filter: Option<&'static str>,
}

fn case(
    name: &'static str,
    pod: MakePod,
    node: NodeInfo,
    pre_filter: PreFilter,
    filter: Option<&'static str>,
) -> Case {
    Case {
        name,
        pod,
        node,
        added: None,
        pre_filter,
        filter,
    }
}

#[test]
fn filter_and_pre_filter_follow_upstream() {
    use PreFilter::*;
    let foo_bar = &[("foo", "bar")];
    let gpu = &[("GPU", "NVIDIA-GRID-K1")];
    let mismatch = Some(ERR_REASON_POD);
    let added_node2 = required_spec(vec![term(vec![], vec![name_in("node2")])]);
    let cases = vec![
        case(
            "missing labels",
            make_pod("p").node_selector("foo", "bar"),
            node("n", &[]),
            Pass,
            mismatch,
        ),
        case(
            "same labels",
            make_pod("p").node_selector("foo", "bar"),
            node("n", foo_bar),
            Pass,
            None,
        ),
        case(
            "node labels are superset",
            make_pod("p").node_selector("foo", "bar"),
            node("n", &[("foo", "bar"), ("baz", "blah")]),
            Pass,
            None,
        ),
        case(
            "node labels are subset",
            make_pod("p")
                .node_selector("foo", "bar")
                .node_selector("baz", "blah"),
            node("n", foo_bar),
            Pass,
            mismatch,
        ),
        case(
            "matchExpressions In matches",
            required(vec![exprs(vec![expr("foo", "In", &["bar", "value2"])])]),
            node("n", foo_bar),
            Pass,
            None,
        ),
        case(
            "matchExpressions Gt matches",
            required(vec![exprs(vec![expr("kernel-version", "Gt", &["0204"])])]),
            node("n", &[("kernel-version", "0206")]),
            Pass,
            None,
        ),
        case(
            "matchExpressions NotIn matches",
            required(vec![exprs(vec![expr(
                "mem-type",
                "NotIn",
                &["DDR", "DDR2"],
            )])]),
            node("n", &[("mem-type", "DDR3")]),
            Pass,
            None,
        ),
        case(
            "matchExpressions Exists matches",
            required(vec![exprs(vec![expr("GPU", "Exists", &[])])]),
            node("n", gpu),
            Pass,
            None,
        ),
        case(
            "affinity that doesn't match the node's labels",
            required(vec![exprs(vec![expr("foo", "In", &["value1", "value2"])])]),
            node("n", foo_bar),
            Pass,
            mismatch,
        ),
        case(
            "empty matchExpressions match no objects",
            required(vec![NodeSelectorTerm {
                match_expressions: Some(vec![]),
                ..Default::default()
            }]),
            node("n", foo_bar),
            Pass,
            mismatch,
        ),
        case("no affinity", make_pod("p"), node("n", foo_bar), Skip, None),
        case(
            "affinity but nil node selector",
            make_pod("p").with_spec(affinity(NodeAffinitySpec::default())),
            node("n", foo_bar),
            Skip,
            None,
        ),
        case(
            "multiple matchExpressions ANDed that match",
            required(vec![exprs(vec![
                expr("GPU", "Exists", &[]),
                expr("GPU", "NotIn", &["AMD", "INTER"]),
            ])]),
            node("n", gpu),
            Pass,
            None,
        ),
        case(
            "multiple matchExpressions ANDed that don't match",
            required(vec![exprs(vec![
                expr("GPU", "Exists", &[]),
                expr("GPU", "In", &["AMD", "INTER"]),
            ])]),
            node("n", gpu),
            Pass,
            mismatch,
        ),
        case(
            "multiple terms ORed, one matches",
            required(vec![
                exprs(vec![expr("foo", "In", &["bar", "value2"])]),
                exprs(vec![expr("diffkey", "In", &["wrong", "value2"])]),
            ]),
            node("n", foo_bar),
            Pass,
            None,
        ),
        case(
            "affinity and nodeSelector both satisfied",
            required(vec![exprs(vec![expr("foo", "Exists", &[])])]).node_selector("foo", "bar"),
            node("n", foo_bar),
            Pass,
            None,
        ),
        case(
            "affinity matches but nodeSelector does not",
            required(vec![exprs(vec![expr("foo", "Exists", &[])])]).node_selector("foo", "bar"),
            node("n", &[("foo", "barrrrrr")]),
            Pass,
            mismatch,
        ),
        case(
            "an invalid value in an affinity term",
            required(vec![exprs(vec![expr(
                "foo",
                "NotIn",
                &["invalid value: ___@#$%^"],
            )])]),
            node("n", foo_bar),
            Pass,
            mismatch,
        ),
        case(
            "matchFields In matches the node",
            required(vec![term(vec![], vec![name_in("node1")])]),
            node("node1", &[]),
            Narrow(&["node1"]),
            None,
        ),
        case(
            "matchFields In does not match the node",
            required(vec![term(vec![], vec![name_in("node1")])]),
            node("node2", &[]),
            Narrow(&["node1"]),
            mismatch,
        ),
        case(
            "two terms: matchFields does not match, matchExpressions matches",
            required(vec![
                term(vec![], vec![name_in("node1"), name_in("node2")]),
                exprs(vec![expr("foo", "In", &["bar"])]),
            ]),
            node("node2", foo_bar),
            Pass,
            None,
        ),
        case(
            "one term: matchFields does not match, matchExpressions matches",
            required(vec![term(
                vec![expr("foo", "In", &["bar"])],
                vec![name_in("node1")],
            )]),
            node("node2", foo_bar),
            Narrow(&["node1"]),
            mismatch,
        ),
        case(
            "one term: both matchFields and matchExpressions match",
            required(vec![term(
                vec![expr("foo", "In", &["bar"])],
                vec![name_in("node1")],
            )]),
            node("node1", foo_bar),
            Narrow(&["node1"]),
            None,
        ),
        case(
            "two terms: neither matches",
            required(vec![
                term(vec![], vec![name_in("node1")]),
                exprs(vec![expr("foo", "In", &["not-match-to-bar"])]),
            ]),
            node("node2", foo_bar),
            Pass,
            mismatch,
        ),
        case(
            "two terms of node.Name affinity",
            required(vec![
                term(vec![], vec![name_in("node1")]),
                term(vec![], vec![name_in("node2")]),
            ]),
            node("node2", &[]),
            Narrow(&["node1", "node2"]),
            None,
        ),
        case(
            "two conflicting matchFields requirements",
            required(vec![term(vec![], vec![name_in("node1"), name_in("node2")])]),
            node("node2", foo_bar),
            Reject(ERR_REASON_CONFLICT),
            mismatch,
        ),
        Case {
            added: Some(added_node2.clone()),
            ..case(
                "matches added affinity and the pod's node affinity",
                required(vec![exprs(vec![expr("zone", "In", &["foo"])])]),
                node("node2", &[("zone", "foo")]),
                Pass,
                None,
            )
        },
        Case {
            added: Some(added_node2),
            ..case(
                "matches added affinity but not the pod's node affinity",
                required(vec![exprs(vec![expr("zone", "In", &["bar"])])]),
                node("node2", &[("zone", "foo")]),
                Pass,
                mismatch,
            )
        },
        Case {
            added: Some(required_spec(vec![exprs(vec![expr(
                "zone",
                "In",
                &["bar"],
            )])])),
            ..case(
                "doesn't match added affinity",
                make_pod("p"),
                node("node2", &[("zone", "foo")]),
                Pass,
                Some(ERR_REASON_ENFORCED),
            )
        },
        case(
            "nodeSelector matches even if PreFilter is not called",
            make_pod("p").node_selector("foo", "bar"),
            node("n", &[("foo", "bar"), ("baz", "blah")]),
            NotRun,
            None,
        ),
        case(
            "node affinity matches even if PreFilter is not called",
            required(vec![exprs(vec![
                expr("GPU", "Exists", &[]),
                expr("GPU", "NotIn", &["AMD", "INTER"]),
            ])]),
            node("n", gpu),
            NotRun,
            None,
        ),
        case(
            "an invalid term does not match even if PreFilter is not called",
            required(vec![exprs(vec![expr(
                "foo",
                "NotIn",
                &["invalid value: ___@#$%^"],
            )])]),
            node("n", foo_bar),
            NotRun,
            mismatch,
        ),
    ];
    for c in cases {
        let plugin = plugin(c.added);
        let pod = c.pod.info();
        let mut state = CycleState::default();
        if !matches!(c.pre_filter, PreFilter::NotRun) {
            let (result, status) = plugin.pre_filter(&mut state, &pod, &Snapshot::default());
            let names = result.and_then(|r| r.node_names);
            match c.pre_filter {
                PreFilter::NotRun => unreachable!(),
                PreFilter::Skip => assert!(status.is_skip(), "{}: {status}", c.name),
                PreFilter::Pass => {
                    assert!(status.is_success(), "{}: {status}", c.name);
                    assert_eq!(names, None, "{}", c.name);
                }
                PreFilter::Narrow(want) => {
                    assert!(status.is_success(), "{}: {status}", c.name);
                    let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
                    assert_eq!(names, Some(want), "{}", c.name);
                }
                PreFilter::Reject(reason) => {
                    assert_eq!(
                        status.code(),
                        Code::UnschedulableAndUnresolvable,
                        "{}",
                        c.name
                    );
                    assert_eq!(status.reasons(), [reason], "{}", c.name);
                }
            }
        }
        let status = plugin.filter(&state, &pod, &c.node);
        match c.filter {
            None => assert!(status.is_success(), "{}: {status}", c.name),
            Some(reason) => {
                assert_eq!(
                    status.code(),
                    Code::UnschedulableAndUnresolvable,
                    "{}",
                    c.name
                );
                assert_eq!(status.reasons(), [reason], "{}", c.name);
            }
        }
    }
}
