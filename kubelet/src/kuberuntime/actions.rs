//! What a sync must do to a pod, decided from its spec and what the runtime reports (upstream's
//! computePodActions): make the sandbox, start the next init container, keep sidecars up, start or restart
//! app containers by restart policy and CrashLoopBackOff, or give up on a pod whose init failed for good.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::jiff::Timestamp;

use super::record::{PodRuntimeStatus, RecordState};
use crate::prober::{PodProbeResults, ProbeType};

/// The first CrashLoopBackOff delay; it doubles per restart up to [`MAX_BACKOFF`].
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(10);
/// The longest CrashLoopBackOff delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A container that ran this long before exiting starts its backoff afresh.
pub const BACKOFF_RESET: Duration = Duration::from_secs(600);

/// What to do to one pod now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodActions {
    /// Make the sandbox (namespaces, network) first.
    pub create_sandbox: bool,
    /// Containers to start now, in order (init containers one at a time, sidecars and app containers
    /// together).
    pub start: Vec<String>,
    /// Containers that would restart but wait out their CrashLoopBackOff, with what is left of it.
    pub backing_off: Vec<(String, Duration)>,
    /// A regular init container failed and may not restart: the pod has failed; stop everything.
    pub kill_pod: bool,
    /// Running containers to stop first (failed liveness or startup probes); those that restart are in
    /// `start` too.
    pub kill: Vec<ContainerKill>,
}

/// A running container to stop, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerKill {
    /// The container's name.
    pub name: String,
    /// The runtime's id of the running attempt.
    pub id: String,
    /// The probe that failed.
    pub probe: ProbeType,
    /// The `Killing` event's message, as upstream's.
    pub message: String,
}

/// Whether a container that exited with `exit_code` restarts: its own restartPolicy (sidecars: Always)
/// or the pod's (upstream's ContainerShouldRestart).
pub fn should_restart(container: &Container, pod_policy: &str, exit_code: i32) -> bool {
    match container.restart_policy.as_deref().unwrap_or(pod_policy) {
        "Always" => true,
        "OnFailure" => exit_code != 0,
        _ => false,
    }
}

/// Whether an init container is a sidecar (restartPolicy Always), which keeps running beside the app.
pub fn is_sidecar(container: &Container) -> bool {
    container.restart_policy.as_deref() == Some("Always")
}

/// The CrashLoopBackOff delay before restart number `restarts + 1`: none before the first restart, then
/// 10 s doubling to 5 min.
pub fn backoff_delay(restarts: i32) -> Duration {
    match restarts {
        ..=0 => Duration::ZERO,
        n => {
            let doublings = u32::try_from(n - 1).unwrap_or(0).min(16);
            INITIAL_BACKOFF
                .saturating_mul(1 << doublings)
                .min(MAX_BACKOFF)
        }
    }
}

/// Decides what to do about `spec`'s containers given `status` and the probes' verdicts, at `now`.
pub fn compute_pod_actions(
    spec: &PodSpec,
    status: &PodRuntimeStatus,
    probes: &PodProbeResults,
    now: Timestamp,
) -> PodActions {
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let mut actions = PodActions {
        create_sandbox: !status.sandbox_ready,
        ..PodActions::default()
    };
    // Regular init containers run to completion: under Always they restart only when they fail.
    let init_policy = if policy == "Always" {
        "OnFailure"
    } else {
        policy
    };
    let mut initialized = true;
    for container in spec.init_containers.iter().flatten() {
        match next_step(container, init_policy, status, now) {
            Step::Start => {
                actions.start.push(container.name.clone());
                if !is_sidecar(container) {
                    initialized = false;
                    break;
                }
            }
            Step::BackOff(left) => {
                actions.backing_off.push((container.name.clone(), left));
                if !is_sidecar(container) {
                    initialized = false;
                    break;
                }
            }
            Step::Keep => {
                if is_sidecar(container) {
                    // A sidecar that failed its probe restarts whatever its restart policy.
                    probe_failure(container, status, probes, true, &mut actions);
                } else if !succeeded(container, status) {
                    initialized = false;
                    break;
                }
            }
            Step::Done { exit_code } => {
                if !is_sidecar(container) && exit_code != 0 {
                    actions.kill_pod = true;
                    return actions;
                }
            }
        }
    }
    if !initialized {
        return actions;
    }
    for container in &spec.containers {
        match next_step(container, policy, status, now) {
            Step::Start => actions.start.push(container.name.clone()),
            Step::BackOff(left) => actions.backing_off.push((container.name.clone(), left)),
            Step::Keep => {
                probe_failure(container, status, probes, policy != "Never", &mut actions);
            }
            Step::Done { .. } => {}
        }
    }
    actions
}

/// Kills `container`'s running attempt if it failed its liveness or startup probe, and starts it again
/// when `restart` (upstream: unless the pod's restartPolicy is Never).
fn probe_failure(
    container: &Container,
    status: &PodRuntimeStatus,
    probes: &PodProbeResults,
    restart: bool,
    actions: &mut PodActions,
) {
    let Some(latest) = status.latest(&container.name).filter(|c| c.is_running()) else {
        return;
    };
    let Some(probe) = probes.failed(&latest.id) else {
        return;
    };
    let kind = match probe {
        ProbeType::Startup => "startup",
        _ => "liveness",
    };
    let mut message = format!("Container {} failed {kind} probe", container.name);
    if restart {
        message.push_str(", will be restarted");
        actions.start.push(container.name.clone());
    }
    actions.kill.push(ContainerKill {
        name: container.name.clone(),
        id: latest.id.clone(),
        probe,
        message,
    });
}

/// What one container needs.
enum Step {
    /// Never started, or exited and restarts now.
    Start,
    /// Exited, restarts when the backoff is over.
    BackOff(Duration),
    /// Running (or exited and finished for good with code 0 for init containers).
    Keep,
    /// Exited and does not restart.
    Done { exit_code: i32 },
}

fn next_step(
    container: &Container,
    policy: &str,
    status: &PodRuntimeStatus,
    now: Timestamp,
) -> Step {
    let Some(latest) = status.latest(&container.name) else {
        return Step::Start;
    };
    match &latest.state {
        RecordState::Running { .. } => Step::Keep,
        RecordState::Created => Step::Start,
        RecordState::Exited {
            exit_code,
            started_at,
            finished_at,
            ..
        } => {
            if !should_restart(container, policy, *exit_code) {
                return if *exit_code == 0 && !is_sidecar(container) {
                    Step::Keep
                } else {
                    Step::Done {
                        exit_code: *exit_code,
                    }
                };
            }
            let ran = started_at
                .map(|s| finished_at.duration_since(s).unsigned_abs())
                .unwrap_or_default();
            let delay = if ran >= BACKOFF_RESET {
                Duration::ZERO
            } else {
                backoff_delay(latest.attempt)
            };
            let since = now.duration_since(*finished_at).unsigned_abs();
            if since >= delay {
                Step::Start
            } else {
                Step::BackOff(delay - since)
            }
        }
    }
}

/// Whether a (regular init) container's newest attempt exited 0.
fn succeeded(container: &Container, status: &PodRuntimeStatus) -> bool {
    status.latest(&container.name).and_then(|c| c.exit_code()) == Some(0)
}

#[cfg(test)]
#[path = "actions_tests.rs"]
mod tests;
