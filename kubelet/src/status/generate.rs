//! The pod status the kubelet reports, computed from the pod and the runtime's records (upstream's
//! generateAPIPodStatus and getPhase): container statuses, phase, the four kubelet-owned conditions, IPs,
//! start time and QoS class.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::qos::qos_class;
use crate::kuberuntime::actions::{is_sidecar, should_restart};
use crate::kuberuntime::record::{
    ContainerRecord, PodRuntimeStatus, RecordState, START_ERROR_REASON,
};
use crate::prober::{PodProbeResults, Previous};

/// Why a container is waiting, when the kubelet knows better than "ContainerCreating" (image pulls,
/// CrashLoopBackOff, start errors): reason and message by container name.
pub type WaitingReasons = HashMap<String, (String, String)>;

/// What the status is computed from besides the pod.
pub struct StatusInputs<'a> {
    /// The runtime's records of the pod.
    pub runtime: &'a PodRuntimeStatus,
    /// Waiting reasons from the last sync.
    pub waiting: &'a WaitingReasons,
    /// The probes' verdicts on the pod's containers: `started` and `ready`.
    pub probes: &'a PodProbeResults,
    /// The node's IPs.
    pub host_ips: &'a [String],
    /// Now.
    pub now: Timestamp,
}

/// The pod's status as the kubelet sees it, keeping what others own (PodScheduled, other conditions).
pub fn generate_pod_status(pod: &Pod, inputs: &StatusInputs) -> PodStatus {
    let spec = pod.spec.clone().unwrap_or_default();
    let old = pod.status.clone().unwrap_or_default();
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let init_policy = if policy == "Always" {
        "OnFailure"
    } else {
        policy
    };
    let init_statuses: Vec<ContainerStatus> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| container_status(c, inputs, &old, true))
        .collect();
    let statuses: Vec<ContainerStatus> = spec
        .containers
        .iter()
        .map(|c| container_status(c, inputs, &old, false))
        .collect();
    let incomplete_init: Vec<String> = spec
        .init_containers
        .iter()
        .flatten()
        .zip(&init_statuses)
        .filter(|(c, s)| !init_complete(c, s, init_policy))
        .map(|(c, _)| c.name.clone())
        .collect();
    let phase = phase(
        &spec.containers,
        &statuses,
        policy,
        !incomplete_init.is_empty(),
        init_failed(&spec, &init_statuses, init_policy),
    );
    let unready: Vec<String> = spec
        .init_containers
        .iter()
        .flatten()
        .zip(&init_statuses)
        .filter(|(c, s)| is_sidecar(c) && !s.ready)
        .chain(
            spec.containers
                .iter()
                .zip(&statuses)
                .filter(|(_, s)| !s.ready),
        )
        .map(|(c, _)| c.name.clone())
        .collect();

    let now = Time(inputs.now);
    let terminal = phase == "Succeeded" || phase == "Failed";
    let mut conditions: Vec<PodCondition> = old
        .conditions
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| !KUBELET_CONDITIONS.contains(&c.type_.as_str()))
        .collect();
    let mut set = |type_: &str, ok: bool, reason: Option<&str>, message: Option<String>| {
        let previous = old.conditions.iter().flatten().find(|c| c.type_ == type_);
        let status = if ok { "True" } else { "False" };
        let transition = match previous {
            Some(p) if p.status == status => p.last_transition_time.clone(),
            _ => Some(now.clone()),
        };
        conditions.push(PodCondition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.map(str::to_string),
            message,
            last_transition_time: transition,
            ..PodCondition::default()
        });
    };
    set(
        "PodReadyToStartContainers",
        inputs.runtime.sandbox_ready,
        None,
        None,
    );
    if incomplete_init.is_empty() {
        set("Initialized", true, None, None);
    } else {
        let message = format!(
            "containers with incomplete status: [{}]",
            incomplete_init.join(" ")
        );
        set(
            "Initialized",
            false,
            Some("ContainersNotInitialized"),
            Some(message),
        );
    }
    for type_ in ["ContainersReady", "Ready"] {
        if terminal {
            set(type_, false, Some("PodCompleted"), None);
        } else if unready.is_empty() {
            set(type_, true, None, None);
        } else {
            let message = format!("containers with unready status: [{}]", unready.join(" "));
            set(type_, false, Some("ContainersNotReady"), Some(message));
        }
    }

    let ips = &pod_ips(&spec, inputs, &old);
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(conditions),
        host_ip: inputs.host_ips.first().cloned(),
        host_ips: Some(
            inputs
                .host_ips
                .iter()
                .map(|ip| HostIP { ip: ip.clone() })
                .collect(),
        ),
        pod_ip: ips.first().cloned().or(old.pod_ip.clone()),
        pod_ips: if ips.is_empty() {
            old.pod_ips.clone()
        } else {
            Some(ips.iter().map(|ip| PodIP { ip: ip.clone() }).collect())
        },
        start_time: old.start_time.clone().or(Some(now)),
        qos_class: Some(qos_class(&spec).to_string()),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        container_statuses: Some(statuses),
        ..old
    }
}

/// The pod's IPs: the sandbox's, or for a hostNetwork pod the node's (upstream's generateAPIPodStatus: they
/// inherit the node IPs, and keep them once set).
fn pod_ips(spec: &PodSpec, inputs: &StatusInputs, old: &PodStatus) -> Vec<String> {
    if !spec.host_network.unwrap_or(false) {
        return inputs.runtime.ips.clone();
    }
    match &old.pod_ips {
        Some(ips) if !ips.is_empty() => ips.iter().map(|ip| ip.ip.clone()).collect(),
        _ => inputs.host_ips.iter().take(2).cloned().collect(),
    }
}

/// The conditions the kubelet owns; the rest are kept as they are.
const KUBELET_CONDITIONS: [&str; 4] = [
    "PodReadyToStartContainers",
    "Initialized",
    "ContainersReady",
    "Ready",
];

fn container_status(
    container: &Container,
    inputs: &StatusInputs,
    old: &PodStatus,
    init: bool,
) -> ContainerStatus {
    let runtime = inputs.runtime;
    let latest = runtime.latest(&container.name);
    let waiting = inputs.waiting.get(&container.name);
    let default_waiting = if init {
        "PodInitializing"
    } else {
        "ContainerCreating"
    };
    let (state, last) = match (latest, waiting) {
        (_, Some((reason, message))) => {
            // Waiting again (CrashLoopBackOff, image errors): the newest exit is the last state.
            let last = latest
                .filter(|l| l.exit_code().is_some())
                .or(runtime.previous(&container.name));
            (waiting_state(reason, Some(message.clone())), last)
        }
        (None, None) => (waiting_state(default_waiting, None), None),
        (Some(record), None) => (
            record_state(record).unwrap_or_else(|| waiting_state(default_waiting, None)),
            runtime.previous(&container.name),
        ),
    };
    let running = latest.is_some_and(ContainerRecord::is_running);
    let id = latest.map_or("", |l| l.id.as_str());
    // Regular init containers have no probes: started while running, never ready (upstream's
    // UpdatePodStatus); the others follow their startup and readiness probes.
    let running_since = match latest.map(|l| &l.state) {
        Some(RecordState::Running { started_at }) => Some(*started_at),
        _ => None,
    };
    let runtime_id = format!("containerd://{id}");
    let previous = Previous {
        status: old
            .init_container_statuses
            .iter()
            .chain(old.container_statuses.iter())
            .flatten()
            .find(|s| s.name == container.name && s.container_id.as_deref() == Some(&runtime_id)),
        pod_ready: old
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
    };
    let (probe_started, probe_ready) =
        inputs
            .probes
            .started_and_ready(container, id, running_since, previous);
    let started = running && ((init && !is_sidecar(container)) || probe_started);
    let ready = (!init || is_sidecar(container)) && probe_ready;
    ContainerStatus {
        name: container.name.clone(),
        image: latest
            .map(|l| l.image.clone())
            .or(container.image.clone())
            .unwrap_or_default(),
        image_id: latest.map(|l| l.image_id.clone()).unwrap_or_default(),
        container_id: latest.map(|l| format!("containerd://{}", l.id)),
        restart_count: latest.map(|l| l.attempt).unwrap_or(0),
        ready,
        started: Some(started),
        state: Some(state),
        last_state: Some(last.and_then(record_state).unwrap_or_default()),
        ..ContainerStatus::default()
    }
}

fn waiting_state(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message,
        }),
        ..ContainerState::default()
    }
}

/// The API state of a record; `None` for a container that was created but never ran.
fn record_state(record: &ContainerRecord) -> Option<ContainerState> {
    match &record.state {
        RecordState::Created => None,
        RecordState::Running { started_at } => Some(ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(Time(*started_at)),
            }),
            ..ContainerState::default()
        }),
        RecordState::Exited {
            exit_code,
            reason,
            started_at,
            finished_at,
            message,
        } => Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: *exit_code,
                reason: Some(reason.clone()),
                message: message.clone(),
                // containerd's CRI reports a container that never started as started at the Unix epoch.
                started_at: started_at
                    .or((reason == START_ERROR_REASON).then_some(Timestamp::UNIX_EPOCH))
                    .map(Time),
                finished_at: Some(Time(*finished_at)),
                container_id: Some(format!("containerd://{}", record.id)),
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        }),
    }
}

fn terminated_code(status: &ContainerStatus) -> Option<i32> {
    status
        .state
        .as_ref()?
        .terminated
        .as_ref()
        .map(|t| t.exit_code)
}

fn last_terminated_code(status: &ContainerStatus) -> Option<i32> {
    status
        .last_state
        .as_ref()?
        .terminated
        .as_ref()
        .map(|t| t.exit_code)
}

/// A regular init container is complete once it exited 0; a sidecar once it runs.
fn init_complete(container: &Container, status: &ContainerStatus, _policy: &str) -> bool {
    if is_sidecar(container) {
        status.started == Some(true)
    } else {
        terminated_code(status) == Some(0)
    }
}

/// A regular init container failed and will not be restarted.
fn init_failed(
    spec: &k8s_openapi::api::core::v1::PodSpec,
    statuses: &[ContainerStatus],
    policy: &str,
) -> bool {
    spec.init_containers
        .iter()
        .flatten()
        .zip(statuses)
        .filter(|(c, _)| !is_sidecar(c))
        .any(|(c, s)| {
            let code = terminated_code(s).or_else(|| {
                let waiting = s.state.as_ref().is_some_and(|st| st.waiting.is_some());
                waiting.then(|| last_terminated_code(s)).flatten()
            });
            code.is_some_and(|code| code != 0 && !should_restart(c, policy, code))
        })
}

/// Upstream's getPhase for the app containers.
fn phase(
    containers: &[Container],
    statuses: &[ContainerStatus],
    policy: &str,
    initializing: bool,
    init_failed: bool,
) -> &'static str {
    if init_failed {
        return "Failed";
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for (_, status) in containers.iter().zip(statuses) {
        let state = status.state.clone().unwrap_or_default();
        if state.running.is_some() {
            running += 1;
        } else if let Some(terminated) = state.terminated {
            stopped += 1;
            if terminated.exit_code == 0 {
                succeeded += 1;
            }
        } else if last_terminated_code(status).is_some() {
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    match () {
        _ if initializing || waiting > 0 => "Pending",
        _ if running > 0 => "Running",
        _ if stopped > 0 => match policy {
            "Always" => "Running",
            _ if stopped == succeeded => "Succeeded",
            "Never" => "Failed",
            _ => "Running",
        },
        _ => "Pending",
    }
}

#[cfg(test)]
#[path = "generate_tests.rs"]
mod tests;
