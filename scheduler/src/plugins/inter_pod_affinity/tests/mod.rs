//! Unit tests mirroring upstream's `filtering_test.go` and `scoring_test.go`, with the runners and fixtures
//! they share.

mod builders;
mod filtering_multiple_nodes;
mod filtering_single_node;
mod pre_filter_extensions;
mod scoring;
mod scoring_args;

use k8s_openapi::api::core::v1::{Node, Pod, PodAffinityTerm};

use super::*;
use crate::framework::{Code, CycleState, NodeScore, Status};
use crate::testing::{MakePod, make_pod};
use builders::*;

// Filter: PreFilter then Filter on every node.

pub struct Case {
    name: &'static str,
    pod: Pod,
    pods: Vec<Pod>,
    nodes: Vec<Node>,
    /// Success or Skip.
    pre_filter: Code,
    /// One verdict per node.
    want: Vec<Want>,
}

pub fn run_filter(cases: Vec<Case>, namespaces: &[(&str, &str)]) {
    let p = plugin(InterPodAffinityArgs::default(), namespaces);
    for case in cases {
        let snapshot = snapshot(&case.pods, &case.nodes);
        let pod = PodInfo::new(std::sync::Arc::new(case.pod));
        let mut state = CycleState::default();
        let (result, status) = p.pre_filter(&mut state, &pod, &snapshot);
        assert_eq!(result, None, "{}", case.name);
        assert_eq!(
            status.code(),
            case.pre_filter,
            "{}: PreFilter {status}",
            case.name
        );
        if status.is_skip() {
            continue;
        }
        let got: Vec<Want> = snapshot
            .nodes()
            .iter()
            .map(|n| verdict(&p.filter(&state, &pod, n)))
            .collect();
        assert_eq!(got, case.want, "{}", case.name);
    }
}

pub const SERVICE: (&str, &str) = ("service", "securityscan");
pub const SECURITY: (&str, &str) = ("security", "S1");

pub fn single(name: &'static str, pod: Pod, pods: Vec<Pod>, want: Want) -> Case {
    let node1 = node("node1", &[("region", "r1"), ("zone", "z11")]);
    Case {
        name,
        pod,
        pods,
        nodes: vec![node1],
        pre_filter: Code::Success,
        want: vec![want],
    }
}

pub fn multi(
    name: &'static str,
    pod: Pod,
    pods: Vec<Pod>,
    nodes: Vec<Node>,
    want: Vec<Want>,
) -> Case {
    Case {
        name,
        pod,
        pods,
        nodes,
        pre_filter: Code::Success,
        want,
    }
}

// Score: PreScore, Score on every node, NormalizeScore.

/// Upstream's expectations: the normalised scores, or the PreScore code when it does not succeed.
pub enum Expect {
    Scores(Vec<i64>),
    PreScore(Code),
}

pub struct ScoreCase {
    name: &'static str,
    pod: Pod,
    pods: Vec<Pod>,
    nodes: Vec<Node>,
    want: Expect,
}

pub fn case(
    name: &'static str,
    pod: MakePod,
    pods: Vec<MakePod>,
    nodes: Vec<Node>,
    want: Expect,
) -> ScoreCase {
    let pods = pods.into_iter().map(MakePod::obj).collect();
    ScoreCase {
        name,
        pod: pod.obj(),
        pods,
        nodes,
        want,
    }
}

pub fn run_score(settings: InterPodAffinityArgs, cases: Vec<ScoreCase>) {
    let p = plugin(settings, &team_namespaces());
    for case in cases {
        let snapshot = snapshot(&case.pods, &case.nodes);
        let pod = PodInfo::new(std::sync::Arc::new(case.pod));
        let mut state = CycleState::default();
        let status = p.pre_score(&mut state, &pod, snapshot.nodes(), &snapshot);
        let want = match case.want {
            Expect::PreScore(code) => {
                assert_eq!(status.code(), code, "{}: {status}", case.name);
                continue;
            }
            Expect::Scores(scores) => scores,
        };
        assert!(status.is_success(), "{}: {status}", case.name);
        let mut scores: Vec<NodeScore> = snapshot
            .nodes()
            .iter()
            .map(|n| NodeScore {
                name: n.name().to_string(),
                score: p.score(&state, &pod, n).expect("score"),
            })
            .collect();
        assert!(p.normalize_score(&state, &pod, &mut scores).is_success());
        let got: Vec<i64> = scores.iter().map(|s| s.score).collect();
        assert_eq!(got, want, "{}", case.name);
    }
}

pub const S1: (&str, &str) = ("security", "S1");
pub const S2: (&str, &str) = ("security", "S2");

pub fn china(name: &str) -> Node {
    node(name, &[("region", "China")])
}
pub fn india(name: &str) -> Node {
    node(name, &[("region", "India")])
}
pub fn az(name: &str, zone: &str) -> Node {
    node(name, &[("az", zone)])
}
pub fn china_az1(name: &str) -> Node {
    node(name, &[("region", "China"), ("az", "az1")])
}

pub fn security(value: &str, topology: &str) -> PodAffinityTerm {
    term_in("security", topology, &[value])
}
pub fn pod(name: &str, labels: &[(&str, &str)], node: &str) -> MakePod {
    make_pod(name).labels(labels).node(node)
}
pub fn stay_with_s1_in_region(p: MakePod) -> MakePod {
    p.preferred_affinity(5, security("S1", "region"))
}
pub fn stay_with_s2_in_region(p: MakePod) -> MakePod {
    p.preferred_affinity(6, security("S2", "region"))
}
pub fn away_from_in_az(p: MakePod, value: &str) -> MakePod {
    p.preferred_anti_affinity(5, security(value, "az"))
}
pub fn stay_with_s1_away_from_s2(p: MakePod) -> MakePod {
    p.preferred_affinity(8, security("S1", "region"))
        .preferred_anti_affinity(5, security("S2", "az"))
}
pub fn team1_or_subteam2_team2(term: PodAffinityTerm) -> PodAffinityTerm {
    in_namespaces(term, &["subteam2.team2"], Some(&["team1"]))
}
pub fn hard_affinity(p: MakePod) -> MakePod {
    p.affinity(term("region", &[("security", "In", &["S1", "value2"])]))
        .affinity(term(
            "region",
            &[
                ("security", "Exists", &[]),
                ("wrongkey", "DoesNotExist", &[]),
            ],
        ))
}
