//! Mirrors upstream's `scoring_test.go` TestPreScoreStateEmptyNodes and TestPreScoreSkip, and covers the
//! default selector, the settings' validation and the registered events.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec, StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Node, Pod, ReplicationController, ReplicationControllerSpec, Service, ServiceSpec,
};
use kube::core::SelectorExt;

use super::common::default_selector;
use super::scoring::topology_normalizing_weight;
use super::test_util::{
    SpreadPodExt, constraint, exists, host, incoming, list_plugin, meta, node, node_infos, plugin,
    snapshot, soft,
};
use super::{
    DefaultingType, LABEL_HOSTNAME, LABEL_TOPOLOGY_ZONE, PRE_SCORE_STATE_KEY, PodTopologySpread,
    PodTopologySpreadArgs, PreScoreState, SCHEDULE_ANYWAY,
};
use crate::framework::{
    ActionType, ClusterEvent, Code, CycleState, EventResource, Handle, Plugin, PodInfo,
    PreScorePlugin, ScorePlugin, StaticListers,
};
use crate::testing::make_pod;

fn system_plugin(listers: StaticListers) -> PodTopologySpread {
    plugin(PodTopologySpreadArgs::default(), listers)
}

fn foo_replica_set(name: &str) -> Arc<ReplicaSet> {
    Arc::new(ReplicaSet {
        metadata: meta(name),
        spec: Some(ReplicaSetSpec {
            selector: exists("foo").unwrap_or_default(),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// PreScore's state for `pod` over `nodes` (all candidates).
fn pre_score_state(
    plugin: &PodTopologySpread,
    pod: Pod,
    nodes: &[Node],
) -> (Code, Option<PreScoreState>) {
    let pod = PodInfo::new(Arc::new(pod));
    let snapshot = snapshot(nodes, &[]);
    let mut state = CycleState::default();
    let status = plugin.pre_score(&mut state, &pod, snapshot.nodes(), &snapshot);
    (
        status.code(),
        state.read::<PreScoreState>(PRE_SCORE_STATE_KEY).cloned(),
    )
}

type StateSummary = (
    Vec<(String, i32)>,
    Vec<String>,
    Vec<BTreeMap<String, i64>>,
    Vec<f64>,
);
fn state_summary(s: &PreScoreState) -> StateSummary {
    let mut ignored: Vec<String> = s.ignored_nodes.iter().cloned().collect();
    ignored.sort();
    (
        s.constraints
            .iter()
            .map(|c| (c.topology_key.clone(), c.max_skew))
            .collect(),
        ignored,
        s.topology_value_to_pod_counts
            .iter()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .collect(),
        s.topology_normalizing_weight.clone(),
    )
}

#[test]
fn pre_score_state_matches_upstream() {
    let rs_pod = || {
        make_pod("p")
            .label("foo", "tar")
            .label("baz", "sup")
            .owner("apps/v1", "ReplicaSet", "rs1")
    };
    let listers = || StaticListers {
        replica_sets: vec![foo_replica_set("rs1")],
        ..Default::default()
    };
    let counts = |domains: &[&[(&str, i64)]]| -> Vec<BTreeMap<String, i64>> {
        domains
            .iter()
            .map(|d| d.iter().map(|(k, v)| (k.to_string(), *v)).collect())
            .collect()
    };

    // System defaults: nodes without a zone are not excluded; they form the "" zone.
    let nodes = vec![
        node(
            "node-a",
            &[(LABEL_HOSTNAME, "node-a"), (LABEL_TOPOLOGY_ZONE, "mars")],
        )
        .obj(),
        node(
            "node-b",
            &[(LABEL_HOSTNAME, "node-b"), (LABEL_TOPOLOGY_ZONE, "mars")],
        )
        .obj(),
        host("node-c"),
        host("node-d"),
    ];
    let (code, state) = pre_score_state(&system_plugin(listers()), rs_pod().obj(), &nodes);
    assert_eq!(code, Code::Success);
    let state = state.unwrap_or_default();
    assert_eq!(
        state_summary(&state),
        (
            vec![
                (LABEL_HOSTNAME.to_string(), 3),
                (LABEL_TOPOLOGY_ZONE.to_string(), 5)
            ],
            vec![],
            counts(&[&[], &[("mars", 0), ("", 0)]]),
            vec![
                topology_normalizing_weight(4),
                topology_normalizing_weight(2)
            ],
        )
    );
    assert!(state.constraints[0].selector.as_ref().is_some_and(|s| {
        s.matches(&BTreeMap::from([("foo".into(), "x".into())]))
            && !s.matches(&BTreeMap::from([("bar".into(), "x".into())]))
    }));

    // Listed defaults: only ScheduleAnyway ones score, selecting by the ReplicaSet; a node missing a key is
    // ignored.
    let listed = PodTopologySpreadArgs {
        defaulting_type: DefaultingType::List,
        default_constraints: vec![
            constraint(1, LABEL_HOSTNAME, SCHEDULE_ANYWAY, None),
            constraint(2, "rack", super::DO_NOT_SCHEDULE, None),
            constraint(2, "planet", SCHEDULE_ANYWAY, None),
        ],
    };
    let nodes = vec![
        node(
            "node-a",
            &[
                ("rack", "rack1"),
                (LABEL_HOSTNAME, "node-a"),
                ("planet", "mars"),
            ],
        )
        .obj(),
        node("node-b", &[(LABEL_HOSTNAME, "node-b")]).obj(),
    ];
    let (code, state) = pre_score_state(&plugin(listed.clone(), listers()), rs_pod().obj(), &nodes);
    assert_eq!(code, Code::Success);
    assert_eq!(
        state_summary(&state.unwrap_or_default()),
        (
            vec![(LABEL_HOSTNAME.to_string(), 1), ("planet".to_string(), 2)],
            vec!["node-b".to_string()],
            counts(&[&[], &[("mars", 0)]]),
            vec![
                topology_normalizing_weight(1),
                topology_normalizing_weight(1)
            ],
        )
    );

    // The pod's own constraints win over the defaults, even when only hard ones.
    let own = rs_pod().spread(constraint(2, "planet", SCHEDULE_ANYWAY, exists("baz")));
    let (_, state) = pre_score_state(&plugin(listed.clone(), listers()), own.obj(), &nodes[..1]);
    assert_eq!(
        state_summary(&state.unwrap_or_default()).0,
        vec![("planet".to_string(), 2)]
    );
    let hard_only = rs_pod().spread(constraint(1, "zone", super::DO_NOT_SCHEDULE, exists("bar")));
    let (code, _) = pre_score_state(&plugin(listed, listers()), hard_only.obj(), &nodes[..1]);
    assert_eq!(code, Code::Skip);
}

#[test]
fn pre_score_skips_without_soft_constraints() {
    let nodes = [host("node-a"), host("node-b")];
    let (code, state) = pre_score_state(&list_plugin(), make_pod("p").obj(), &nodes);
    assert_eq!(
        (code, state.is_none()),
        (Code::Skip, true),
        "no constraints"
    );

    // Default constraints, but the pod's ReplicaSet is not known: nothing selects it.
    let settings = PodTopologySpreadArgs {
        defaulting_type: DefaultingType::List,
        default_constraints: vec![constraint(2, "planet", SCHEDULE_ANYWAY, None)],
    };
    let listers = StaticListers {
        replica_sets: vec![foo_replica_set("rs1")],
        ..Default::default()
    };
    let pod = make_pod("p")
        .label("foo", "bar")
        .owner("apps/v1", "ReplicaSet", "rs2")
        .obj();
    let (code, _) = pre_score_state(
        &plugin(settings, listers),
        pod,
        &[node("node-a", &[("planet", "mars")]).obj()],
    );
    assert_eq!(code, Code::Skip, "unknown ReplicaSet");

    let (code, _) = pre_score_state(
        &list_plugin(),
        incoming().spread(soft(1, "zone")).obj(),
        &[],
    );
    assert_eq!(code, Code::Skip, "no nodes");
}

#[test]
fn default_selector_merges_services_and_the_controller() {
    let svc = |name: &str, selector: Option<&[(&str, &str)]>| {
        Arc::new(Service {
            metadata: meta(name),
            spec: Some(ServiceSpec {
                selector: selector.map(|s| {
                    s.iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
    };
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let listers = StaticListers {
        services: vec![
            svc("matching", Some(&[("app", "web")])),
            svc("other", Some(&[("app", "db")])),
            svc("nil-selector", None),
        ],
        replication_controllers: vec![Arc::new(ReplicationController {
            metadata: meta("rc"),
            spec: Some(ReplicationControllerSpec {
                selector: Some(map(&[("tier", "front")])),
                ..Default::default()
            }),
            ..Default::default()
        })],
        stateful_sets: vec![Arc::new(StatefulSet {
            metadata: meta("ss"),
            spec: Some(StatefulSetSpec {
                selector: exists("ordinal").unwrap_or_default(),
                ..Default::default()
            }),
            ..Default::default()
        })],
        ..Default::default()
    };
    let pod = |owner: Option<(&str, &str, &str)>| {
        let pod = make_pod("p").label("app", "web").label("tier", "front");
        match owner {
            Some((api_version, kind, name)) => pod.owner(api_version, kind, name).obj(),
            None => pod.obj(),
        }
    };
    let matches = |owner, labels: &[(&str, &str)]| {
        default_selector(&pod(owner), &listers).matches(&map(labels))
    };
    // Services only: app=web.
    assert!(matches(None, &[("app", "web")]));
    assert!(!matches(None, &[("app", "db")]));
    // A ReplicationController adds its selector map.
    assert!(matches(
        Some(("v1", "ReplicationController", "rc")),
        &[("app", "web"), ("tier", "front")]
    ));
    assert!(!matches(
        Some(("v1", "ReplicationController", "rc")),
        &[("app", "web")]
    ));
    // A StatefulSet adds its requirements.
    assert!(matches(
        Some(("apps/v1", "StatefulSet", "ss")),
        &[("app", "web"), ("ordinal", "0")]
    ));
    assert!(!matches(
        Some(("apps/v1", "StatefulSet", "ss")),
        &[("app", "web")]
    ));
    // Unknown controllers add nothing; nothing selecting the pod leaves an empty selector.
    assert!(matches(
        Some(("apps/v1", "Deployment", "ss")),
        &[("app", "web")]
    ));
    let alone = make_pod("p").label("x", "y").obj();
    assert!(default_selector(&alone, &listers).selects_all());
}

#[test]
fn settings_are_validated_as_upstream() {
    let new = |settings| {
        PodTopologySpread::new(settings, &Handle::for_tests(StaticListers::default())).err()
    };
    assert_eq!(new(PodTopologySpreadArgs::default()), None);
    assert_eq!(
        new(PodTopologySpreadArgs {
            default_constraints: vec![soft(1, "zone")],
            defaulting_type: DefaultingType::System,
        }),
        Some(
            "[defaultingType: Invalid value: \"System\": when .defaultConstraints are not empty, defaultConstraints[0].labelSelector: Forbidden: constraint must not define a selector, as they deduced for each pod]"
                .to_string()
        )
    );
    assert_eq!(
        new(PodTopologySpreadArgs {
            default_constraints: vec![
                constraint(0, "zone", SCHEDULE_ANYWAY, None),
                constraint(1, "zone", SCHEDULE_ANYWAY, None),
                constraint(1, "", "Sometimes", None),
            ],
            defaulting_type: DefaultingType::List,
        }),
        Some(
            "[defaultConstraints[0].maxSkew: Invalid value: 0: not in valid range (0, inf), defaultConstraints[1]: Duplicate value: \"{zone, ScheduleAnyway}\", defaultConstraints[2].topologyKey: Required value: can not be empty, defaultConstraints[2].whenUnsatisfiable: Unsupported value: \"Sometimes\": supported values: \"DoNotSchedule\", \"ScheduleAnyway\"]"
                .to_string()
        )
    );
}

#[test]
fn registers_pod_and_node_events_as_upstream() {
    let plugin = list_plugin();
    assert_eq!(plugin.name(), "PodTopologySpread");
    let events = plugin.events_to_register();
    let covered = |resource, action| {
        events
            .iter()
            .any(|e| e.covers(&ClusterEvent::new(resource, action)))
    };
    for action in [
        ActionType::ADD,
        ActionType::DELETE,
        ActionType::UPDATE_POD_LABEL,
    ] {
        assert!(covered(EventResource::AssignedPod, action), "{action:?}");
    }
    assert!(covered(
        EventResource::UnscheduledPod,
        ActionType::UPDATE_POD_TOLERATIONS
    ));
    for action in [
        ActionType::ADD,
        ActionType::DELETE,
        ActionType::UPDATE_NODE_LABEL,
        ActionType::UPDATE_NODE_TAINT,
    ] {
        assert!(covered(EventResource::Node, action), "{action:?}");
    }
    assert!(!covered(
        EventResource::Node,
        ActionType::UPDATE_NODE_ALLOCATABLE
    ));
    assert!(!covered(
        EventResource::AssignedPod,
        ActionType::UPDATE_POD_SCALE_DOWN
    ));
    assert!(!covered(EventResource::PersistentVolume, ActionType::ADD));
}

#[test]
fn score_and_normalize_need_pre_score_state() {
    let plugin = list_plugin();
    let pod = incoming().info();
    let state = CycleState::default();
    let node = &node_infos(&[host("node-a")], &[])[0];
    let err = plugin.score(&state, &pod, node).err();
    assert_eq!(
        err.map(|s| (s.code(), s.message())),
        Some((
            Code::Error,
            "error reading \"PreScorePodTopologySpread\" from cycleState: not found".to_string()
        ))
    );
    let status = plugin.normalize_score(&state, &pod, &mut []);
    assert_eq!(status.code(), Code::Error);
}
