use k8s_openapi::api::core::v1::PodSpec;

use super::*;
use crate::kuberuntime::record::test_record as record;

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + seconds).expect("time")
}

fn pod(policy: &str, init: &[&str], containers: &[&str]) -> Pod {
    let container = |name: &&str| Container {
        name: name.to_string(),
        image: Some("busybox".into()),
        ..Container::default()
    };
    Pod {
        spec: Some(PodSpec {
            restart_policy: Some(policy.into()),
            init_containers: (!init.is_empty()).then(|| init.iter().map(container).collect()),
            containers: containers.iter().map(container).collect(),
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

fn running(name: &str, attempt: i32) -> ContainerRecord {
    record(name, attempt, RecordState::Running { started_at: at(1) })
}

fn exited(name: &str, attempt: i32, exit_code: i32) -> ContainerRecord {
    let reason = if exit_code == 0 { "Completed" } else { "Error" };
    record(
        name,
        attempt,
        RecordState::Exited {
            exit_code,
            reason: reason.into(),
            started_at: Some(at(1)),
            finished_at: at(2),
            message: None,
        },
    )
}

fn generate(pod: &Pod, containers: Vec<ContainerRecord>, waiting: &WaitingReasons) -> PodStatus {
    let runtime = PodRuntimeStatus {
        containers,
        ips: vec!["10.244.1.5".into()],
        sandbox_ready: true,
    };
    let host_ips = ["10.0.0.1".to_string()];
    generate_pod_status(
        pod,
        &StatusInputs {
            runtime: &runtime,
            waiting,
            probes: &PodProbeResults::default(),
            host_ips: &host_ips,
            now: at(3),
        },
    )
}

fn condition(status: &PodStatus, type_: &str) -> (String, Option<String>, Option<String>) {
    let c = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_}"));
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

#[test]
fn a_new_pod_is_pending_with_creating_containers() {
    let pod = pod("Always", &["init"], &["app"]);
    let status = generate(&pod, vec![], &WaitingReasons::new());
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    let init = &status.init_container_statuses.as_ref().expect("init")[0];
    let waiting = init
        .state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .expect("waiting");
    assert_eq!(waiting.reason.as_deref(), Some("PodInitializing"));
    let app = &status.container_statuses.as_ref().expect("containers")[0];
    let waiting = app
        .state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .expect("waiting");
    assert_eq!(waiting.reason.as_deref(), Some("ContainerCreating"));
    assert_eq!(
        condition(&status, "Initialized"),
        (
            "False".into(),
            Some("ContainersNotInitialized".into()),
            Some("containers with incomplete status: [init]".into())
        )
    );
    assert_eq!(
        condition(&status, "Ready"),
        (
            "False".into(),
            Some("ContainersNotReady".into()),
            Some("containers with unready status: [app]".into())
        )
    );
    assert_eq!(status.pod_ip.as_deref(), Some("10.244.1.5"));
    assert_eq!(status.host_ip.as_deref(), Some("10.0.0.1"));
    assert_eq!(status.qos_class.as_deref(), Some("BestEffort"));
    assert!(status.start_time.is_some());
}

#[test]
fn a_running_pod_is_ready() {
    let pod = pod("Always", &["init"], &["app"]);
    let status = generate(
        &pod,
        vec![exited("init", 0, 0), running("app", 0)],
        &WaitingReasons::new(),
    );
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(condition(&status, "Initialized").0, "True");
    assert_eq!(condition(&status, "ContainersReady").0, "True");
    assert_eq!(condition(&status, "Ready").0, "True");
    let app = &status.container_statuses.as_ref().expect("containers")[0];
    assert!(app.ready);
    assert_eq!(app.started, Some(true));
    assert_eq!(app.container_id.as_deref(), Some("containerd://app-0"));
    assert_eq!(app.image, "docker.io/library/busybox:latest");
}

#[test]
fn completed_and_failed_pods_by_restart_policy() {
    for (policy, code, phase) in [
        ("Never", 0, "Succeeded"),
        ("Never", 1, "Failed"),
        ("OnFailure", 0, "Succeeded"),
    ] {
        let pod = pod(policy, &[], &["app"]);
        let status = generate(&pod, vec![exited("app", 0, code)], &WaitingReasons::new());
        assert_eq!(status.phase.as_deref(), Some(phase), "{policy} exit {code}");
        assert_eq!(
            condition(&status, "Ready").1.as_deref(),
            Some("PodCompleted")
        );
        let app = &status.container_statuses.as_ref().expect("containers")[0];
        let terminated = app
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .expect("terminated");
        assert_eq!(terminated.exit_code, code);
    }
    let pod = pod("Never", &["init"], &["app"]);
    let status = generate(&pod, vec![exited("init", 0, 2)], &WaitingReasons::new());
    assert_eq!(
        status.phase.as_deref(),
        Some("Failed"),
        "a failed init container under Never"
    );
}

#[test]
fn a_crash_looping_container_waits_with_its_last_exit() {
    let pod = pod("Always", &[], &["app"]);
    let mut waiting = WaitingReasons::new();
    let message = "back-off 10s restarting failed container=app pod=p_ns(uid)".to_string();
    waiting.insert("app".into(), ("CrashLoopBackOff".into(), message.clone()));
    let status = generate(
        &pod,
        vec![exited("app", 0, 1), exited("app", 1, 1)],
        &waiting,
    );
    assert_eq!(status.phase.as_deref(), Some("Running"));
    let app = &status.container_statuses.as_ref().expect("containers")[0];
    assert_eq!(app.restart_count, 1);
    let state = app
        .state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .expect("waiting");
    assert_eq!(
        (state.reason.as_deref(), state.message.as_deref()),
        (Some("CrashLoopBackOff"), Some(message.as_str()))
    );
    let last = app
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("last state");
    assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
    assert_eq!(last.container_id.as_deref(), Some("containerd://app-1"));
}

#[test]
fn conditions_owned_by_others_are_kept_and_transitions_are_dated() {
    let mut pod = pod("Always", &[], &["app"]);
    pod.status = Some(PodStatus {
        conditions: Some(vec![
            PodCondition {
                type_: "PodScheduled".into(),
                status: "True".into(),
                ..PodCondition::default()
            },
            PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(Time(at(0))),
                ..PodCondition::default()
            },
        ]),
        ..PodStatus::default()
    });
    let status = generate(&pod, vec![running("app", 0)], &WaitingReasons::new());
    assert_eq!(condition(&status, "PodScheduled").0, "True");
    let ready = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!(
        ready.last_transition_time,
        Some(Time(at(0))),
        "unchanged: the old transition time"
    );
    let initialized = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Initialized")
        .expect("Initialized");
    assert_eq!(initialized.last_transition_time, Some(Time(at(3))));
}

#[test]
fn host_network_pods_inherit_the_node_ips_and_keep_them() {
    let mut pod = pod("Always", &[], &["app"]);
    pod.spec.as_mut().expect("spec").host_network = Some(true);
    let status = generate(&pod, vec![running("app", 0)], &WaitingReasons::new());
    assert_eq!(status.pod_ip.as_deref(), Some("10.0.0.1"));
    let ips: Vec<String> = status
        .pod_ips
        .iter()
        .flatten()
        .map(|i| i.ip.clone())
        .collect();
    assert_eq!(ips, ["10.0.0.1"]);
    // Immutable once set, as upstream: a node IP change does not move the pod.
    pod.status = Some(PodStatus {
        pod_ip: Some("10.0.0.9".into()),
        pod_ips: Some(vec![PodIP {
            ip: "10.0.0.9".into(),
        }]),
        ..PodStatus::default()
    });
    let status = generate(&pod, vec![running("app", 0)], &WaitingReasons::new());
    assert_eq!(status.pod_ip.as_deref(), Some("10.0.0.9"));
}

/// A failed start, as upstream shows it with containerd: waiting RunContainerError, the failed attempt as
/// the last state (exit code 128, StartError, started at the Unix epoch).
#[test]
fn a_failed_start_waits_with_a_start_error_last_state() {
    use crate::kuberuntime::record::start_failed;
    let pod = pod("Always", &[], &["app"]);
    let mut waiting = WaitingReasons::new();
    let message = "failed to start container \"app\": exec: no such file".to_string();
    waiting.insert("app".into(), ("RunContainerError".into(), message.clone()));
    let status = generate(
        &pod,
        vec![record("app", 0, start_failed(&message, at(2)))],
        &waiting,
    );
    let app = &status.container_statuses.as_ref().expect("containers")[0];
    assert_eq!(app.restart_count, 0);
    let state = app.state.as_ref().and_then(|s| s.waiting.as_ref());
    assert_eq!(
        state.and_then(|s| s.reason.as_deref()),
        Some("RunContainerError")
    );
    let last = app
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.clone())
        .expect("last state");
    assert_eq!(
        (last.exit_code, last.reason.as_deref(), last.message),
        (128, Some("StartError"), Some(message))
    );
    assert_eq!(last.started_at, Some(Time(Timestamp::UNIX_EPOCH)));
    assert_eq!(last.finished_at, Some(Time(at(2))));
}
