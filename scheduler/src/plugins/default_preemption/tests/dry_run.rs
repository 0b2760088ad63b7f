//! The dry run itself: victims per node, budget violations, how many nodes it evaluates (upstream
//! TestDryRunPreemption and TestCalculateNumCandidates).

use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::plugins::default_preemption::candidates::{
    aggregate_errors, dry_run_preemption, no_candidate_message,
};
use crate::plugins::default_preemption::pdb::PdbInfo;
use crate::plugins::default_preemption::victims::Preemptor;

/// A candidate as (node, victims most important first, budget violations).
type Found = (String, Vec<String>, i64);

/// Runs the dry run over every node of `cluster` (all potential) and returns the candidates in order
/// with the statuses of the nodes that are not.
fn dry_run(
    cluster: Cluster,
    pod: Pod,
    num_candidates: usize,
) -> (Vec<Found>, Vec<(String, String)>) {
    let pdbs: Vec<PdbInfo> = cluster
        .pdbs
        .iter()
        .cloned()
        .map(|p| PdbInfo::new(Arc::new(p)))
        .collect();
    let offset = cluster.offset;
    let setup = Setup::new(cluster);
    let (state, pod) = setup.pre_filter(pod);
    let preemptor = Preemptor {
        framework: &setup.framework,
        pod: &pod,
        nominator: &setup.nominator,
        pdbs: &pdbs,
        now: Timestamp::now(),
    };
    let nodes: Vec<_> = setup.snapshot.nodes().iter().collect();
    let result = dry_run_preemption(&preemptor, &state, &nodes, offset, num_candidates);
    let found = result
        .candidates
        .iter()
        .map(|c| {
            let victims = c.victims.iter().map(|v| v.name().to_string()).collect();
            (c.name.clone(), victims, c.num_pdb_violations)
        })
        .collect();
    let statuses = result
        .statuses
        .iter()
        .map(|(n, s)| (n.clone(), s.message()))
        .collect();
    (found, statuses)
}

fn found(node: &str, victims: &[&str], violations: i64) -> Found {
    (
        node.into(),
        victims.iter().map(|v| v.to_string()).collect(),
        violations,
    )
}

fn two_nodes(pods: Vec<Pod>) -> Cluster {
    let (nodes, statuses) = nodes(&["node1", "node2"], NODE_VERY_LARGE);
    Cluster {
        nodes,
        statuses,
        pods,
        ..Default::default()
    }
}

#[test]
fn dry_run_mirrors_upstream() {
    let pod = |req| make_pod("p").priority(HIGH).req(req).obj();
    let at = |name: &str, node: &str, priority, req| on(name, node, priority).req(req).obj();
    let cases: Vec<(&str, Cluster, Pod, Vec<Found>)> = vec![
        (
            "a pod that fits on both nodes when lower priority pods are preempted",
            two_nodes(vec![
                at("p1", "node1", MID, LARGE),
                at("p2", "node2", MID, LARGE),
            ]),
            pod(LARGE),
            vec![found("node1", &["p1"], 0), found("node2", &["p2"], 0)],
        ),
        (
            "other pods running are higher priority, no preemption would happen",
            two_nodes(vec![
                at("p1", "node1", MID, LARGE),
                at("p2", "node2", MID, LARGE),
            ]),
            make_pod("p").priority(LOW).req(LARGE).obj(),
            vec![],
        ),
        (
            "medium priority pod is preempted, but lower priority one stays as it is small",
            two_nodes(vec![
                at("p1.1", "node1", LOW, SMALL),
                at("p1.2", "node1", MID, LARGE),
                at("p2", "node2", MID, LARGE),
            ]),
            pod(LARGE),
            vec![found("node1", &["p1.2"], 0), found("node2", &["p2"], 0)],
        ),
        (
            "mixed priority pods are preempted",
            two_nodes(vec![
                at("p1.1", "node1", MID, SMALL),
                at("p1.2", "node1", LOW, SMALL),
                at("p1.3", "node1", MID, MEDIUM),
                at("p1.4", "node1", HIGH, SMALL),
                at("p2", "node2", HIGH, LARGE),
            ]),
            pod(LARGE),
            vec![found("node1", &["p1.3", "p1.2"], 0)],
        ),
        (
            "mixed priority pods are preempted, pick later StartTime one when priorities are equal",
            two_nodes(vec![
                started(on("p1.1", "node1", LOW).req(SMALL), 5),
                started(on("p1.2", "node1", LOW).req(SMALL), 4),
                started(on("p1.3", "node1", MID).req(MEDIUM), 3),
                started(on("p1.4", "node1", HIGH).req(SMALL), 2),
                started(on("p2", "node2", HIGH).req(LARGE), 1),
            ]),
            pod(LARGE),
            vec![found("node1", &["p1.3", "p1.1"], 0)],
        ),
        (
            "preemption with violation of same pdb",
            Cluster {
                pdbs: vec![pdb("app", "foo", 1, &[])],
                ..two_nodes(vec![
                    at("p1.1", "node1", MID, MEDIUM),
                    at("p1.2", "node1", MID, MEDIUM),
                ])
            },
            make_pod("p").priority(HIGH).req(VERY_LARGE).obj(),
            vec![found("node1", &["p1.2", "p1.1"], 1)],
        ),
        (
            "the victim already in DisruptedPods does not violate",
            Cluster {
                pdbs: vec![pdb("app", "foo", 1, &["p1.2"])],
                ..two_nodes(vec![
                    at("p1.1", "node1", MID, MEDIUM),
                    at("p1.2", "node1", MID, MEDIUM),
                ])
            },
            make_pod("p").priority(HIGH).req(VERY_LARGE).obj(),
            vec![found("node1", &["p1.1", "p1.2"], 0)],
        ),
        (
            "a pod in DisruptedPods is non-violating, the others spend the budget",
            Cluster {
                pdbs: vec![pdb("app", "foo", 1, &["p1.3"])],
                ..two_nodes(vec![
                    at("p1.1", "node1", MID, MEDIUM),
                    at("p1.2", "node1", MID, MEDIUM),
                    at("p1.3", "node1", MID, MEDIUM),
                ])
            },
            make_pod("p").priority(HIGH).req(VERY_LARGE).obj(),
            vec![found("node1", &["p1.2", "p1.1", "p1.3"], 1)],
        ),
        (
            "budget-violating victims are reprieved first",
            Cluster {
                pdbs: vec![pdb("app", "foo", 0, &[])],
                ..two_nodes(vec![
                    at("protected", "node1", LOW, LARGE),
                    at("unprotected", "node1", MID, LARGE),
                ])
            },
            // Without the budget the MID pod would be reprieved and the LOW one evicted.
            pod(SMALL),
            vec![found("node1", &["unprotected"], 0)],
        ),
        (
            "budget-violating victims are reprieved most important first",
            Cluster {
                pdbs: vec![pdb("app", "foo", 0, &[])],
                ..two_nodes(vec![
                    at("p1.a", "node1", MID, LARGE),
                    at("p1.b", "node1", LOW, SMALL),
                ])
            },
            pod(MEDIUM),
            vec![found("node1", &["p1.b"], 1)],
        ),
    ];
    // Victims of equal importance keep their order on the node; budget-violating ones are tried first.
    for (name, mut cluster, pod, want) in cases {
        // Upstream's "app: foo" pods carry the label the budgets select.
        for p in &mut cluster.pods {
            let labels = p.metadata.labels.get_or_insert_with(Default::default);
            if p.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("p1.") || n == "protected")
            {
                labels.insert("app".into(), "foo".into());
            }
        }
        let (got, _) = dry_run(cluster, pod, 100);
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn dry_run_stops_after_enough_candidates_starting_at_the_offset() {
    let names = ["node1", "node2", "node3", "node4", "node5"];
    let (nodes, statuses) = nodes(&names, NODE_VERY_LARGE);
    let pods: Vec<Pod> = names
        .iter()
        .enumerate()
        .map(|(i, n)| on(&format!("p{}", i + 1), n, MID).req(LARGE).obj())
        .collect();
    let pod = || make_pod("p").priority(HIGH).req(LARGE).obj();
    let cluster = || Cluster {
        nodes: nodes.clone(),
        statuses: statuses.clone(),
        pods: pods.clone(),
        offset: 4,
        ..Default::default()
    };
    // Upstream: 40% of 5 nodes, at least 1: two candidates, from node5 wrapping to node1.
    let (got, _) = dry_run(cluster(), pod(), 2);
    assert_eq!(
        got,
        vec![found("node5", &["p5"], 0), found("node1", &["p1"], 0)]
    );
    // Budget-violating candidates do not end the search; non-violating ones are listed first.
    let mut violating = cluster();
    violating.offset = 0;
    violating.pdbs = vec![pdb("app", "foo", 0, &[])];
    violating.pods[0].metadata.labels = Some([("app".into(), "foo".into())].into());
    let (got, _) = dry_run(violating, pod(), 1);
    assert_eq!(
        got,
        vec![found("node2", &["p2"], 0), found("node1", &["p1"], 1)]
    );
    // Each list holds at most the wanted number: node2, violating too, is dropped, as upstream's
    // fixed-size candidateList does.
    let mut violating = cluster();
    violating.offset = 0;
    violating.pdbs = vec![pdb("app", "foo", 0, &[])];
    for pod in &mut violating.pods[..2] {
        pod.metadata.labels = Some([("app".into(), "foo".into())].into());
    }
    let (got, statuses) = dry_run(violating, pod(), 1);
    assert_eq!(
        got,
        vec![found("node3", &["p3"], 0), found("node1", &["p1"], 1)]
    );
    assert!(statuses.is_empty(), "{statuses:?}");
}

#[test]
fn a_node_where_the_pod_fits_without_preemption_is_an_error() {
    let (nodes, statuses) = nodes(&["node1", "node2"], NODE_VERY_LARGE);
    let cluster = Cluster {
        nodes,
        statuses,
        pods: vec![on("p1", "node1", MID).obj(), on("p2", "node2", MID).obj()],
        ..Default::default()
    };
    let (result, status) = Setup::new(cluster).post_filter(make_pod("p").priority(HIGH).obj());
    assert!(result.is_none());
    assert_eq!(status.code(), Code::Error);
    assert_eq!(
        status.message(),
        "preemption: [expected at least one victim pod on node \"node1\", expected at least one victim pod on node \"node2\"]"
    );
}

#[test]
fn fit_error_message_counts_reasons_and_absent_nodes() {
    let status = |reasons: &[&str]| {
        Status::new(
            Code::Unschedulable,
            reasons.iter().map(|r| r.to_string()).collect(),
        )
    };
    let statuses: Vec<(String, Status)> = (0..10)
        .map(|i| {
            (
                format!("n{i}"),
                status(&["Insufficient cpu", "Insufficient memory"]),
            )
        })
        .chain([("x".to_string(), status(&["Too many pods"]))])
        .collect();
    assert_eq!(
        no_candidate_message(13, &statuses),
        // Sorted as strings, as upstream does: "1 Too many pods" comes before "10 ...".
        "0/13 nodes are available: 1 Too many pods, 10 Insufficient cpu, 10 Insufficient memory, 2 Preemption is not helpful for scheduling."
    );
    assert_eq!(
        no_candidate_message(1, &[("n".into(), status(&[]))]),
        "0/1 nodes are available:"
    );
    assert_eq!(aggregate_errors(&["a".into(), "a".into()]), "a");
    assert_eq!(aggregate_errors(&["a".into(), "b".into()]), "[a, b]");
}

#[test]
fn calculate_num_candidates_as_upstream() {
    let cases = [
        // (percentage, absolute, nodes, candidates)
        (50, 10, 100, 50),
        (10, 50, 100, 50),
        (50, 10, 5, 5),
        (10, 100, 0, 0),
        (10, 100, 50, 50),
        (10, 100, 1000, 100),
        (10, 100, 5000, 500),
        (40, 1, 5, 2),
        (0, 1, 10, 1),
        (1, 0, 10, 0),
    ];
    for (percentage, absolute, nodes, want) in cases {
        let args = DefaultPreemptionArgs {
            min_candidate_nodes_percentage: percentage,
            min_candidate_nodes_absolute: absolute,
        };
        let plugin = DefaultPreemption::new(&args, &Handle::for_tests(StaticListers::default()))
            .expect("valid args");
        assert_eq!(
            plugin.calculate_num_candidates(nodes),
            want,
            "{percentage}% / {absolute} of {nodes}"
        );
    }
}
