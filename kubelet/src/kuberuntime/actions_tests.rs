use super::super::record::ContainerRecord;
use super::*;
use crate::kuberuntime::record::test_record as record;
use crate::prober::ProbeResult;

/// Without probe verdicts.
fn compute_pod_actions(spec: &PodSpec, status: &PodRuntimeStatus, now: Timestamp) -> PodActions {
    super::compute_pod_actions(spec, status, &PodProbeResults::default(), now)
}

fn container(name: &str, restart_policy: Option<&str>) -> Container {
    Container {
        name: name.into(),
        image: Some("busybox".into()),
        restart_policy: restart_policy.map(Into::into),
        ..Container::default()
    }
}

fn spec(policy: &str, init: Vec<Container>, containers: Vec<Container>) -> PodSpec {
    PodSpec {
        restart_policy: Some(policy.into()),
        init_containers: (!init.is_empty()).then_some(init),
        containers,
        ..PodSpec::default()
    }
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + seconds).expect("time")
}

fn running(name: &str, attempt: i32) -> ContainerRecord {
    record(name, attempt, RecordState::Running { started_at: at(0) })
}

fn exited(
    name: &str,
    attempt: i32,
    exit_code: i32,
    started: i64,
    finished: i64,
) -> ContainerRecord {
    record(
        name,
        attempt,
        RecordState::Exited {
            exit_code,
            reason: "Error".into(),
            started_at: Some(at(started)),
            finished_at: at(finished),
            message: None,
        },
    )
}

fn status(containers: Vec<ContainerRecord>) -> PodRuntimeStatus {
    PodRuntimeStatus {
        containers,
        ips: vec!["10.0.0.2".into()],
        sandbox_ready: true,
    }
}

#[test]
fn a_new_pod_gets_a_sandbox_and_its_first_init_container_only() {
    let spec = spec(
        "Always",
        vec![container("init-1", None), container("init-2", None)],
        vec![container("app", None)],
    );
    let actions = compute_pod_actions(&spec, &PodRuntimeStatus::default(), at(0));
    assert!(actions.create_sandbox);
    assert_eq!(actions.start, vec!["init-1"]);
}

#[test]
fn init_containers_run_in_order_then_the_app_containers_together() {
    let spec = spec(
        "Always",
        vec![container("init-1", None), container("init-2", None)],
        vec![container("a", None), container("b", None)],
    );
    let one_done = status(vec![exited("init-1", 0, 0, 0, 1)]);
    assert_eq!(
        compute_pod_actions(&spec, &one_done, at(2)).start,
        vec!["init-2"]
    );
    let one_running = status(vec![exited("init-1", 0, 0, 0, 1), running("init-2", 0)]);
    assert!(
        compute_pod_actions(&spec, &one_running, at(2))
            .start
            .is_empty()
    );
    let both_done = status(vec![
        exited("init-1", 0, 0, 0, 1),
        exited("init-2", 0, 0, 1, 2),
    ]);
    let actions = compute_pod_actions(&spec, &both_done, at(3));
    assert!(!actions.create_sandbox);
    assert_eq!(actions.start, vec!["a", "b"]);
}

#[test]
fn sidecars_start_with_the_next_init_container_and_keep_running() {
    let spec = spec(
        "Never",
        vec![container("proxy", Some("Always")), container("setup", None)],
        vec![container("app", None)],
    );
    let actions = compute_pod_actions(&spec, &status(vec![]), at(0));
    assert_eq!(actions.start, vec!["proxy", "setup"]);
    let crashed_sidecar = status(vec![
        exited("proxy", 0, 1, 0, 5),
        exited("setup", 0, 0, 0, 1),
    ]);
    let actions = compute_pod_actions(&spec, &crashed_sidecar, at(6));
    assert_eq!(
        actions.start,
        vec!["proxy", "app"],
        "a sidecar restarts even under Never"
    );
}

#[test]
fn a_failed_init_container_restarts_unless_the_policy_is_never() {
    let init = vec![container("init", None)];
    let failed = status(vec![exited("init", 0, 3, 0, 1)]);
    let never = spec("Never", init.clone(), vec![container("app", None)]);
    let actions = compute_pod_actions(&never, &failed, at(2));
    assert!(actions.kill_pod);
    assert!(actions.start.is_empty());
    let on_failure = spec("OnFailure", init, vec![container("app", None)]);
    assert_eq!(
        compute_pod_actions(&on_failure, &failed, at(2)).start,
        vec!["init"]
    );
}

#[test]
fn restart_policies_decide_which_exits_restart() {
    for (policy, code, restarts) in [
        ("Always", 0, true),
        ("Always", 1, true),
        ("OnFailure", 0, false),
        ("OnFailure", 1, true),
        ("Never", 1, false),
    ] {
        let spec = spec(policy, vec![], vec![container("c", None)]);
        let actions =
            compute_pod_actions(&spec, &status(vec![exited("c", 0, code, 0, 1)]), at(100));
        assert_eq!(!actions.start.is_empty(), restarts, "{policy} exit {code}");
    }
}

#[test]
fn crash_loops_back_off_from_10s_doubling_to_5m() {
    assert_eq!(backoff_delay(0), Duration::ZERO);
    assert_eq!(backoff_delay(1), Duration::from_secs(10));
    assert_eq!(backoff_delay(2), Duration::from_secs(20));
    assert_eq!(backoff_delay(6), Duration::from_secs(300));
    assert_eq!(backoff_delay(60), Duration::from_secs(300));
    let spec = spec("Always", vec![], vec![container("c", None)]);
    // The first restart is immediate.
    let first = status(vec![exited("c", 0, 1, 0, 1)]);
    assert_eq!(compute_pod_actions(&spec, &first, at(1)).start, vec!["c"]);
    // The second waits 10 s after the exit.
    let second = status(vec![exited("c", 0, 1, 0, 1), exited("c", 1, 1, 2, 3)]);
    let actions = compute_pod_actions(&spec, &second, at(7));
    assert!(actions.start.is_empty());
    assert_eq!(
        actions.backing_off,
        vec![("c".to_string(), Duration::from_secs(6))]
    );
    assert_eq!(compute_pod_actions(&spec, &second, at(13)).start, vec!["c"]);
    // A container that ran ten minutes before exiting restarts at once.
    let long_run = status(vec![exited("c", 4, 1, 0, 600)]);
    assert_eq!(
        compute_pod_actions(&spec, &long_run, at(600)).start,
        vec!["c"]
    );
}

#[test]
fn running_containers_are_left_alone() {
    let spec = spec("Always", vec![], vec![container("c", None)]);
    let actions = compute_pod_actions(&spec, &status(vec![running("c", 0)]), at(1));
    assert_eq!(actions, PodActions::default());
}

#[test]
fn failed_liveness_and_startup_probes_kill_and_restart_running_containers() {
    let spec_always = spec(
        "Always",
        vec![container("side", Some("Always"))],
        vec![
            container("a", None),
            container("b", None),
            container("c", None),
        ],
    );
    let runtime = status(vec![
        running("side", 0),
        running("a", 0),
        running("b", 2),
        running("c", 0),
    ]);
    let mut probes = PodProbeResults::default();
    probes.set(ProbeType::Liveness, "a-0", ProbeResult::Failure);
    probes.set(ProbeType::Startup, "b-2", ProbeResult::Failure);
    probes.set(ProbeType::Liveness, "side-0", ProbeResult::Failure);
    probes.set(ProbeType::Readiness, "c-0", ProbeResult::Failure);
    let actions = super::compute_pod_actions(&spec_always, &runtime, &probes, at(1));
    assert_eq!(actions.start, vec!["side", "a", "b"]);
    let kills: Vec<(&str, &str, &str)> = actions
        .kill
        .iter()
        .map(|k| (k.name.as_str(), k.id.as_str(), k.message.as_str()))
        .collect();
    assert_eq!(
        kills,
        vec![
            (
                "side",
                "side-0",
                "Container side failed liveness probe, will be restarted"
            ),
            (
                "a",
                "a-0",
                "Container a failed liveness probe, will be restarted"
            ),
            (
                "b",
                "b-2",
                "Container b failed startup probe, will be restarted"
            ),
        ]
    );
    // Under Never the container is killed for good.
    let never = spec("Never", vec![], vec![container("a", None)]);
    let actions =
        super::compute_pod_actions(&never, &status(vec![running("a", 0)]), &probes, at(1));
    assert!(actions.start.is_empty());
    assert_eq!(actions.kill[0].message, "Container a failed liveness probe");
}

/// A start that failed (a command missing from the image) counts as an exit, as containerd's CRI reports
/// it: restarted at once the first time, then backed off like any crash loop, also under OnFailure
/// (exit code 128) and for init containers; Never leaves it failed.
#[test]
fn failed_starts_back_off_like_exits() {
    use crate::kuberuntime::record::{START_ERROR_EXIT_CODE, start_failed};
    let failed = |name: &str, attempt: i32, at_second: i64| {
        record(
            name,
            attempt,
            start_failed("exec: no such file", at(at_second)),
        )
    };
    let app = spec("Always", vec![], vec![container("app", None)]);
    let actions = compute_pod_actions(&app, &status(vec![failed("app", 0, 0)]), at(0));
    assert_eq!(actions.start, vec!["app"]);
    let actions = compute_pod_actions(&app, &status(vec![failed("app", 1, 0)]), at(3));
    assert_eq!(actions.start, Vec::<String>::new());
    assert_eq!(
        actions.backing_off,
        vec![("app".to_string(), Duration::from_secs(7))]
    );
    let actions = compute_pod_actions(&app, &status(vec![failed("app", 2, 0)]), at(10));
    assert_eq!(
        actions.backing_off,
        vec![("app".to_string(), Duration::from_secs(10))]
    );
    let actions = compute_pod_actions(&app, &status(vec![failed("app", 2, 0)]), at(20));
    assert_eq!(actions.start, vec!["app"]);

    let on_failure = spec("OnFailure", vec![], vec![container("app", None)]);
    let actions = compute_pod_actions(&on_failure, &status(vec![failed("app", 1, 0)]), at(1));
    assert_eq!(actions.backing_off.len(), 1);
    assert_ne!(START_ERROR_EXIT_CODE, 0);

    let init = spec(
        "Always",
        vec![container("init", None)],
        vec![container("app", None)],
    );
    let actions = compute_pod_actions(&init, &status(vec![failed("init", 1, 0)]), at(1));
    assert_eq!(actions.start, Vec::<String>::new());
    assert_eq!(actions.backing_off.len(), 1);

    let never = spec("Never", vec![], vec![container("app", None)]);
    let actions = compute_pod_actions(&never, &status(vec![failed("app", 0, 0)]), at(100));
    assert_eq!(actions, PodActions::default());
}

/// What the runtime reads back for a container without a running task: its recorded failed start, or
/// (created but never started, as after a kubelet crash between create and start) nothing, which starts
/// it again at once as upstream's ShouldContainerBeRestarted does.
#[test]
fn a_container_without_a_task_reads_as_its_failed_start() {
    use crate::kuberuntime::record::{
        LABEL_START_ERROR, LABEL_START_FAILED_AT, START_ERROR_REASON, labelled_start_failure,
    };
    use std::collections::HashMap;
    let labels = HashMap::from([
        (LABEL_START_ERROR.to_string(), "exec failed".to_string()),
        (LABEL_START_FAILED_AT.to_string(), at(5).to_string()),
    ]);
    let Some(RecordState::Exited {
        exit_code,
        reason,
        finished_at,
        message,
        ..
    }) = labelled_start_failure(&labels)
    else {
        panic!("a failed start reads as exited");
    };
    assert_eq!(
        (exit_code, reason.as_str(), finished_at, message.as_deref()),
        (128, START_ERROR_REASON, at(5), Some("exec failed"))
    );
    assert_eq!(labelled_start_failure(&HashMap::new()), None);
    let app = spec("Always", vec![], vec![container("app", None)]);
    let created = status(vec![record("app", 3, RecordState::Created)]);
    assert_eq!(
        compute_pod_actions(&app, &created, at(0)).start,
        vec!["app"]
    );
}
