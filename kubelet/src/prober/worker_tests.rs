use k8s_openapi::api::core::v1::{ContainerState, ContainerStateRunning, ContainerStateTerminated};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + seconds).expect("time")
}

fn probe(failure: i32, success: i32, delay: i32) -> Probe {
    Probe {
        failure_threshold: Some(failure),
        success_threshold: Some(success),
        initial_delay_seconds: Some(delay),
        ..Probe::default()
    }
}

fn state(kind: ProbeType, probe: &Probe, policy: &str) -> WorkerState {
    WorkerState::new(kind, probe, &Container::default(), policy)
}

fn running(id: &str, started: bool) -> ContainerView {
    ContainerView {
        id: id.into(),
        running_since: Some(at(0)),
        terminated: false,
        started,
    }
}

fn tick(state: &mut WorkerState, view: &ContainerView, now: i64) -> (Next, Vec<ResultOp>) {
    let mut ops = Vec::new();
    let next = state.before(false, Some(view), at(now), &mut ops);
    (next, ops)
}

fn set(id: &str, result: ProbeResult) -> ResultOp {
    ResultOp::Set(id.into(), result)
}

#[test]
fn a_new_container_gets_the_initial_result_of_its_probe_type() {
    let p = probe(3, 1, 0);
    for (kind, initial) in [
        (ProbeType::Readiness, ProbeResult::Failure),
        (ProbeType::Liveness, ProbeResult::Success),
        (ProbeType::Startup, ProbeResult::Unknown),
    ] {
        let mut s = state(kind, &p, "Always");
        let started = kind != ProbeType::Startup;
        let (next, ops) = tick(&mut s, &running("a", started), 5);
        assert_eq!(ops, vec![set("a", initial)], "{kind:?}");
        assert_eq!(next, Next::Probe("a".into()), "{kind:?}");
    }
}

#[test]
fn failures_count_up_to_the_threshold_and_a_success_resets_them() {
    let p = probe(3, 2, 0);
    let mut s = state(ProbeType::Readiness, &p, "Always");
    tick(&mut s, &running("a", true), 1);
    assert_eq!(s.after("a", ProbeResult::Success), None);
    assert_eq!(
        s.after("a", ProbeResult::Success),
        Some(set("a", ProbeResult::Success))
    );
    assert_eq!(s.after("a", ProbeResult::Failure), None);
    assert_eq!(s.after("a", ProbeResult::Failure), None);
    assert_eq!(s.after("a", ProbeResult::Success), None);
    assert_eq!(s.after("a", ProbeResult::Failure), None);
    assert_eq!(s.after("a", ProbeResult::Failure), None);
    assert_eq!(
        s.after("a", ProbeResult::Failure),
        Some(set("a", ProbeResult::Failure))
    );
    // Readiness keeps probing after a failure.
    assert_eq!(
        tick(&mut s, &running("a", true), 2).0,
        Next::Probe("a".into())
    );
    // A result for a container that is gone is dropped.
    assert_eq!(s.after("old", ProbeResult::Success), None);
}

#[test]
fn a_liveness_failure_holds_the_worker_until_the_container_is_replaced() {
    let p = probe(1, 1, 0);
    let mut s = state(ProbeType::Liveness, &p, "Always");
    tick(&mut s, &running("a", true), 1);
    assert_eq!(
        s.after("a", ProbeResult::Failure),
        Some(set("a", ProbeResult::Failure))
    );
    assert_eq!(tick(&mut s, &running("a", true), 2), (Next::Wait, vec![]));
    let (next, ops) = tick(&mut s, &running("b", true), 3);
    assert_eq!(next, Next::Probe("b".into()));
    assert_eq!(
        ops,
        vec![ResultOp::Remove("a".into()), set("b", ProbeResult::Success)]
    );
}

#[test]
fn the_initial_delay_and_the_startup_gate_hold_probes_back() {
    let p = probe(3, 1, 10);
    let mut liveness = state(ProbeType::Liveness, &p, "Always");
    assert_eq!(tick(&mut liveness, &running("a", true), 9).0, Next::Wait);
    assert_eq!(
        tick(&mut liveness, &running("a", true), 10).0,
        Next::Probe("a".into())
    );
    // Not started: only the startup probe runs.
    let p = probe(3, 1, 0);
    let mut readiness = state(ProbeType::Readiness, &p, "Always");
    assert_eq!(tick(&mut readiness, &running("a", false), 1).0, Next::Wait);
    let mut startup = state(ProbeType::Startup, &p, "Always");
    assert_eq!(
        tick(&mut startup, &running("a", false), 1).0,
        Next::Probe("a".into())
    );
    // A startup verdict holds the startup worker; once started, readiness runs.
    assert_eq!(
        startup.after("a", ProbeResult::Success),
        Some(set("a", ProbeResult::Success))
    );
    assert_eq!(tick(&mut startup, &running("a", true), 2).0, Next::Wait);
    assert_eq!(
        tick(&mut readiness, &running("a", true), 2).0,
        Next::Probe("a".into())
    );
}

#[test]
fn a_stopped_container_fails_and_ends_the_worker_only_when_it_will_not_restart() {
    let p = probe(3, 1, 0);
    let exited = ContainerView {
        id: "a".into(),
        running_since: None,
        terminated: true,
        started: false,
    };
    let mut always = state(ProbeType::Readiness, &p, "Always");
    let (next, ops) = tick(&mut always, &exited, 1);
    assert_eq!(next, Next::Wait);
    assert_eq!(ops.last(), Some(&set("a", ProbeResult::Failure)));
    let mut never = state(ProbeType::Readiness, &p, "Never");
    assert_eq!(tick(&mut never, &exited, 1).0, Next::Stop);
    let mut ops = Vec::new();
    assert_eq!(
        always.before(true, Some(&exited), at(1), &mut ops),
        Next::Stop
    );
}

#[test]
fn status_changes_trigger_probes_for_new_containers_and_unready_started_ones() {
    let p = probe(3, 1, 0);
    let mut s = state(ProbeType::Readiness, &p, "Always");
    assert!(!s.wants_probe_now(None, None));
    assert!(s.wants_probe_now(Some(&running("a", false)), None));
    tick(&mut s, &running("a", false), 1);
    assert!(!s.wants_probe_now(Some(&running("a", false)), Some(ProbeResult::Failure)));
    assert!(s.wants_probe_now(Some(&running("a", true)), Some(ProbeResult::Failure)));
    assert!(!s.wants_probe_now(Some(&running("a", true)), Some(ProbeResult::Success)));
    let mut l = state(ProbeType::Liveness, &p, "Always");
    tick(&mut l, &running("a", true), 1);
    assert!(!l.wants_probe_now(Some(&running("a", true)), Some(ProbeResult::Success)));
}

#[test]
fn views_come_from_the_pod_status() {
    let status = PodStatus {
        container_statuses: Some(vec![ContainerStatus {
            name: "app".into(),
            container_id: Some("containerd://abc".into()),
            started: Some(true),
            state: Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(Time(at(4))),
                }),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }]),
        init_container_statuses: Some(vec![ContainerStatus {
            name: "side".into(),
            container_id: Some("containerd://def".into()),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated::default()),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }]),
        ..PodStatus::default()
    };
    assert_eq!(
        container_view(&status, "app"),
        Some(ContainerView {
            id: "abc".into(),
            running_since: Some(at(4)),
            terminated: false,
            started: true,
        })
    );
    let side = container_view(&status, "side").expect("side");
    assert!(side.terminated && side.running_since.is_none());
    assert_eq!(container_view(&status, "none"), None);
}

#[test]
fn containers_from_before_a_kubelet_restart_get_no_initial_result() {
    let p = probe(3, 1, 0);
    let mut s = state(ProbeType::Readiness, &p, "Always").with_restart_cutoff(at(10));
    let (next, ops) = tick(&mut s, &running("a", true), 20);
    assert_eq!((next, ops), (Next::Probe("a".into()), vec![]));
    let mut s = state(ProbeType::Readiness, &p, "Always").with_restart_cutoff(at(-10));
    assert_eq!(
        tick(&mut s, &running("a", true), 20).1,
        vec![set("a", ProbeResult::Failure)]
    );
}
