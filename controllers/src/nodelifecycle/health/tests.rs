use super::*;
use k8s_openapi::api::coordination::v1::LeaseSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

const STARTUP: Duration = Duration::from_secs(60);
const GRACE: Duration = Duration::from_secs(40);

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + seconds).unwrap()
}

fn ready(status: &str, heartbeat: i64, transition: i64) -> NodeCondition {
    NodeCondition {
        type_: "Ready".into(),
        status: status.into(),
        reason: Some("KubeletReady".into()),
        last_heartbeat_time: Some(Time(at(heartbeat))),
        last_transition_time: Some(Time(at(transition))),
        ..Default::default()
    }
}

fn node(conditions: Vec<NodeCondition>) -> Node {
    let mut node = Node {
        status: Some(NodeStatus {
            conditions: Some(conditions),
            ..Default::default()
        }),
        ..Default::default()
    };
    node.metadata.name = Some("n".into());
    node.metadata.creation_timestamp = Some(Time(at(0)));
    node
}

fn lease(renew: i64) -> Lease {
    Lease {
        spec: Some(LeaseSpec {
            renew_time: Some(MicroTime(at(renew))),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn run(node: &Node, saved: Option<&NodeHealth>, lease: Option<&Lease>, now: i64) -> HealthCheck {
    check(node, saved, lease, at(now), STARTUP, GRACE)
}

#[test]
fn first_sight_starts_counting_now_whatever_the_nodes_clock() {
    // The heartbeat is ancient by the node's clock, but the controller only counts from its own sighting.
    let n = node(vec![ready("True", -10_000, -10_000)]);
    let got = run(&n, None, None, 100);
    assert_eq!(got.health.probe_timestamp, at(100));
    assert!(got.status_update.is_none());
    assert_eq!(got.current_ready.unwrap().status, "True");
}

#[test]
fn unchanged_heartbeat_beyond_grace_goes_unknown() {
    let n = node(vec![ready("True", 5, 5)]);
    let first = run(&n, None, None, 10);
    let still = run(&n, Some(&first.health), None, 10 + 40);
    assert!(
        still.status_update.is_none(),
        "not stale at exactly the grace period"
    );
    let stale = run(&n, Some(&first.health), None, 10 + 41);
    let (status, written) = stale.status_update.expect("stale node is written");
    let conditions = status.conditions.unwrap();
    let get = |t: &str| conditions.iter().find(|c| c.type_ == t).unwrap();
    let r = get("Ready");
    assert_eq!(r.status, "Unknown");
    assert_eq!(r.reason.as_deref(), Some("NodeStatusUnknown"));
    assert_eq!(
        r.message.as_deref(),
        Some("Kubelet stopped posting node status.")
    );
    assert_eq!(r.last_transition_time, Some(Time(at(51))));
    assert_eq!(r.last_heartbeat_time, Some(Time(at(5))));
    for t in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
        let c = get(t);
        assert_eq!(c.status, "Unknown");
        assert_eq!(c.reason.as_deref(), Some("NodeStatusNeverUpdated"));
        assert_eq!(
            c.message.as_deref(),
            Some("Kubelet never posted node status.")
        );
    }
    assert!(conditions.iter().all(|c| c.type_ != "NetworkUnavailable"));
    assert_eq!(stale.current_ready.unwrap().status, "Unknown");
    assert_eq!(stale.observed_ready.status, "True");
    assert_eq!(written.ready_transition_timestamp, at(51));
    assert_eq!(written.probe_timestamp, at(10));
}

#[test]
fn new_heartbeat_keeps_the_node_fresh() {
    let first = run(&node(vec![ready("True", 5, 5)]), None, None, 10);
    let beat = run(
        &node(vec![ready("True", 6, 5)]),
        Some(&first.health),
        None,
        45,
    );
    assert_eq!(beat.health.probe_timestamp, at(45));
    assert_eq!(beat.health.ready_transition_timestamp, at(10));
    let later = run(
        &node(vec![ready("True", 6, 5)]),
        Some(&beat.health),
        None,
        80,
    );
    assert!(later.status_update.is_none());
}

#[test]
fn ready_transition_is_timed_by_the_controller() {
    let first = run(&node(vec![ready("True", 5, 5)]), None, None, 10);
    let flipped = run(
        &node(vec![ready("False", 6, 6)]),
        Some(&first.health),
        None,
        20,
    );
    assert_eq!(flipped.health.ready_transition_timestamp, at(20));
    assert_eq!(flipped.current_ready.unwrap().status, "False");
}

#[test]
fn renewed_lease_is_a_heartbeat() {
    let n = node(vec![ready("True", 5, 5)]);
    let first = run(&n, None, Some(&lease(5)), 10);
    let renewed = run(&n, Some(&first.health), Some(&lease(30)), 45);
    assert_eq!(renewed.health.probe_timestamp, at(45));
    let later = run(&n, Some(&renewed.health), Some(&lease(30)), 80);
    assert!(later.status_update.is_none());
    let stale = run(&n, Some(&later.health), Some(&lease(30)), 86);
    assert!(stale.status_update.is_some());
}

#[test]
fn never_reported_node_gets_the_startup_grace_from_creation() {
    let n = node(vec![]);
    let early = run(&n, None, None, 60);
    assert!(early.status_update.is_none());
    assert_eq!(early.grace_period, STARTUP);
    assert_eq!(early.health.probe_timestamp, at(0));
    let late = run(&n, None, None, 61);
    let (status, _) = late
        .status_update
        .expect("never-reported node goes Unknown");
    let conditions = status.conditions.unwrap();
    let r = conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(r.status, "Unknown");
    assert_eq!(r.reason.as_deref(), Some("NodeStatusNeverUpdated"));
    assert_eq!(
        r.message.as_deref(),
        Some("Kubelet never posted node status.")
    );
}

#[test]
fn already_unknown_node_is_not_rewritten() {
    let mut unknown = ready("Unknown", 5, 5);
    unknown.reason = Some("NodeStatusUnknown".into());
    let mut n = node(vec![unknown]);
    let first = run(&n, None, None, 10);
    let mut status = n.status.take().unwrap();
    mark_unknown(&mut status, at(0), at(10));
    n.status = Some(status);
    let first = run(&n, Some(&first.health), None, 10);
    let later = run(&n, Some(&first.health), None, 100);
    assert!(later.status_update.is_none());
    assert_eq!(later.current_ready.unwrap().status, "Unknown");
}
