use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;

use super::*;
use crate::config::{Plugin as PluginRef, PluginSet, Plugins};
use crate::framework::{
    BindPlugin, FilterPlugin, NoNominations, Plugin, QueueSortPlugin, QueuedPodInfo, ScorePlugin,
};
use crate::testing::{make_node, make_pod};

/// Rejects nodes labelled `bad` (unresolvable when `bad=forever`); scores by the `score` label.
struct TestPlugin;

impl Plugin for TestPlugin {
    fn name(&self) -> &'static str {
        "Test"
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
    fn as_queue_sort(&self) -> Option<&dyn QueueSortPlugin> {
        Some(self)
    }
    fn as_bind(&self) -> Option<&dyn BindPlugin> {
        Some(self)
    }
}

impl FilterPlugin for TestPlugin {
    fn filter(&self, _: &CycleState, _: &PodInfo, node: &NodeInfo) -> Status {
        match node.labels().get("bad").map(String::as_str) {
            Some("forever") => Status::unresolvable("node(s) were bad forever"),
            Some(_) => Status::new(
                crate::framework::Code::Unschedulable,
                vec!["Insufficient cpu".into(), "Insufficient memory".into()],
            ),
            None => Status::success(),
        }
    }
}

impl ScorePlugin for TestPlugin {
    fn score(&self, _: &CycleState, _: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        Ok(node
            .labels()
            .get("score")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0))
    }
}

impl QueueSortPlugin for TestPlugin {
    fn less(&self, _: &QueuedPodInfo, _: &QueuedPodInfo) -> bool {
        false
    }
}

impl BindPlugin for TestPlugin {
    fn bind<'a>(&'a self, _: &'a CycleState, _: &'a Pod, _: &'a str) -> BoxFuture<'a, Status> {
        Box::pin(async { Status::success() })
    }
}

fn framework() -> Framework {
    let plugins = Plugins {
        multi_point: PluginSet {
            enabled: vec![PluginRef {
                name: "Test".into(),
                weight: Some(2),
            }],
            disabled: vec![],
        },
        ..Default::default()
    };
    let pool = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap(),
    );
    Framework::new(
        "default-scheduler",
        &plugins,
        &|_| Some(Ok(Arc::new(TestPlugin) as Arc<dyn Plugin>)),
        None,
        pool,
    )
    .unwrap()
}

fn snapshot(nodes: Vec<crate::testing::MakeNode>) -> Snapshot {
    Snapshot::new(
        nodes
            .into_iter()
            .map(|n| Arc::new(n.info(vec![])))
            .collect(),
    )
}

#[test]
fn the_highest_weighted_score_wins() {
    let snapshot = snapshot(vec![
        make_node("a").label("score", "10"),
        make_node("b").label("score", "90"),
        make_node("c").label("score", "50").label("bad", "yes"),
    ]);
    let result = Algorithm::default()
        .schedule_pod(
            &framework(),
            &mut CycleState::default(),
            &make_pod("p").info(),
            &snapshot,
            &NoNominations,
        )
        .unwrap();
    assert_eq!(
        result,
        ScheduleResult {
            suggested_host: "b".into(),
            evaluated_nodes: 3,
            feasible_nodes: 2
        }
    );
}

#[test]
fn no_fit_gives_upstreams_message_and_the_rejecting_plugins() {
    let snapshot = snapshot(vec![
        make_node("a").label("bad", "yes"),
        make_node("b").label("bad", "yes"),
        make_node("c").label("bad", "forever"),
    ]);
    let error = Algorithm::default()
        .schedule_pod(
            &framework(),
            &mut CycleState::default(),
            &make_pod("p").info(),
            &snapshot,
            &NoNominations,
        )
        .unwrap_err();
    let ScheduleError::Fit(mut fit) = error else {
        panic!("expected a fit error, got {error:?}");
    };
    assert_eq!(
        fit.message(),
        "0/3 nodes are available: 1 node(s) were bad forever, 2 Insufficient cpu, 2 Insufficient memory."
    );
    assert_eq!(
        fit.diagnosis.unschedulable_plugins,
        BTreeSet::from(["Test"])
    );
    fit.diagnosis.post_filter_msg =
        "preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling".into();
    assert!(fit.message().ends_with(
        "2 Insufficient memory. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    ));
}

#[test]
fn an_empty_cluster_is_an_error() {
    let error = Algorithm::default()
        .schedule_pod(
            &framework(),
            &mut CycleState::default(),
            &make_pod("p").info(),
            &Snapshot::default(),
            &NoNominations,
        )
        .unwrap_err();
    assert!(matches!(error, ScheduleError::Error(s) if s.message() == NO_NODES_AVAILABLE));
}

#[test]
fn the_number_of_nodes_to_find_adapts_to_cluster_size() {
    let cases = [
        (0, 50, 50),
        (0, 100, 100),
        (0, 1000, 420),
        (0, 5000, 500),
        (0, 6000, 300),
        (0, 100_000, 5000),
        (10, 500, 100),
        (50, 1000, 500),
        (100, 1000, 1000),
    ];
    for (percentage, nodes, expected) in cases {
        assert_eq!(
            num_feasible_nodes_to_find(percentage, nodes),
            expected,
            "{percentage}% of {nodes}"
        );
    }
}

#[test]
fn the_search_stops_after_enough_feasible_nodes_and_rotates_its_start() {
    let nodes: Vec<_> = (0..200).map(|i| make_node(&format!("n{i:03}"))).collect();
    let snapshot = snapshot(nodes);
    let mut algorithm = Algorithm {
        percentage_of_nodes_to_score: 10,
        ..Default::default()
    };
    let framework = framework();
    let result = algorithm
        .schedule_pod(
            &framework,
            &mut CycleState::default(),
            &make_pod("p").info(),
            &snapshot,
            &NoNominations,
        )
        .unwrap();
    assert_eq!(result.feasible_nodes, 100);
    assert_eq!(algorithm.next_start_node_index, 100);
}

#[test]
fn ties_are_broken_among_the_best_only() {
    let scores: Vec<NodeScore> = [("a", 5), ("b", 9), ("c", 9), ("d", 1)]
        .iter()
        .map(|(n, s)| NodeScore {
            name: n.to_string(),
            score: *s,
        })
        .collect();
    let mut rng = rand::rng();
    let picked: BTreeSet<String> = (0..200).map(|_| select_host(&scores, &mut rng)).collect();
    assert_eq!(picked, BTreeSet::from(["b".to_string(), "c".to_string()]));
}
