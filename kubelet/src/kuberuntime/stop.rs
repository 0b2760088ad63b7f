//! Stopping containers (upstream's killContainer): the preStop hook, the image's stop signal, the rest
//! of the grace period, then SIGKILL.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

use super::actions::ContainerKill;
use super::manager::{PodEvent, RuntimeManager, SyncResult};
use super::record::{ContainerRecord, PodRuntimeStatus};
use crate::pod_spec::{field_path, find_container};
use crate::prober::ProbeType;
use crate::runtime::Runtime;

/// The least time a container gets to stop after its stop signal (upstream's
/// minimumGracePeriodInSeconds).
pub const MINIMUM_GRACE: Duration = Duration::from_secs(2);

impl RuntimeManager {
    /// Stops every running container of the pod at once, each as [`Self::kill_container`] does.
    pub async fn stop_containers(
        &self,
        pod: &Pod,
        status: &PodRuntimeStatus,
        grace: Duration,
        result: &mut SyncResult,
    ) {
        let kills = status
            .containers
            .iter()
            .filter(|c| c.is_running())
            .map(|record| self.kill_container(pod, record, None, grace));
        for events in futures::future::join_all(kills).await {
            result.events.extend(events);
        }
    }

    /// Stops one container as upstream's killContainer: a `Killing` event (`message`, or "Stopping
    /// container NAME"), its preStop hook within `grace`, then the image's stop signal with what is left
    /// of `grace` (at least 2 s), then SIGKILL. Returns the events to record.
    pub async fn kill_container(
        &self,
        pod: &Pod,
        record: &ContainerRecord,
        message: Option<String>,
        grace: Duration,
    ) -> Vec<PodEvent> {
        let spec = pod.spec.clone().unwrap_or_default();
        let event = |warning, reason, message| PodEvent {
            warning,
            reason,
            message,
            field_path: Some(field_path(&spec, &record.name)),
        };
        let mut events = vec![event(
            false,
            "Killing",
            message.unwrap_or_else(|| format!("Stopping container {}", record.name)),
        )];
        let container = find_container(&spec, &record.name);
        let pre_stop = container.and_then(|c| Some((c, c.lifecycle.as_ref()?.pre_stop.as_ref()?)));
        let mut left = grace;
        if let (Some((container, hook)), false) = (pre_stop, grace.is_zero()) {
            let started = Instant::now();
            let ran = tokio::time::timeout(
                grace,
                self.run_handler(pod, container, &record.id, hook, grace),
            )
            .await;
            if let Ok(Err(message)) = ran {
                tracing::warn!(container = %record.name, %message, "PreStop hook failed");
                // Upstream leaves the message out of the event: it may hold secrets.
                events.push(event(
                    true,
                    "FailedPreStopHook",
                    "PreStopHook failed".to_string(),
                ));
            }
            // Whole seconds, as upstream counts them.
            left = grace.saturating_sub(Duration::from_secs(started.elapsed().as_secs()));
        }
        stop_container(&self.runtime, record, left.max(MINIMUM_GRACE)).await;
        events
    }
}

/// How long a container gets to stop (upstream's setTerminationGracePeriod): the deletion's grace period,
/// else — for a container killed for failing a probe — that probe's own terminationGracePeriodSeconds, else
/// the pod's; without any, the 2 s minimum every stop gets anyway.
pub fn termination_grace(pod: &Pod, probe_kill: Option<(&str, ProbeType)>) -> Duration {
    let spec = pod.spec.as_ref();
    let probe_grace = || {
        let (container, probe) = probe_kill?;
        let container = find_container(spec?, container)?;
        probe.of(container)?.termination_grace_period_seconds
    };
    let seconds = match pod.metadata.deletion_grace_period_seconds {
        Some(grace) => grace,
        None => match spec.and_then(|s| s.termination_grace_period_seconds) {
            Some(pod_grace) => probe_grace().unwrap_or(pod_grace),
            None => return MINIMUM_GRACE,
        },
    };
    Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

impl RuntimeManager {
    /// Stops the container `kill` names, which failed a probe, within its grace period (upstream's
    /// killContainer with reasonLivenessProbe / reasonStartupProbe), with a `Killing` event.
    pub(super) async fn kill_for_probe(
        &self,
        pod: &Pod,
        status: &PodRuntimeStatus,
        kill: &ContainerKill,
        result: &mut SyncResult,
    ) {
        let Some(record) = status.containers.iter().find(|c| c.id == kill.id) else {
            return;
        };
        let grace = termination_grace(pod, Some((&kill.name, kill.probe)));
        tracing::info!(container = %kill.name, grace = grace.as_secs(), "Killing container that failed its {:?} probe", kill.probe);
        let events = self
            .kill_container(pod, record, Some(kill.message.clone()), grace)
            .await;
        result.events.extend(events);
    }
}

/// The image's stop signal (SIGTERM unless it names another), `grace` to exit, then SIGKILL.
async fn stop_container(runtime: &Runtime, record: &ContainerRecord, grace: Duration) {
    let stop_signal = runtime
        .image(&record.image)
        .await
        .ok()
        .flatten()
        .and_then(|image| signal_number(&image.stop_signal))
        .unwrap_or(libc::SIGTERM);
    if runtime.kill(&record.id, stop_signal as u32).await.is_ok()
        && tokio::time::timeout(grace, runtime.wait(&record.id))
            .await
            .is_ok()
    {
        return;
    }
    let _ = runtime.kill(&record.id, libc::SIGKILL as u32).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), runtime.wait(&record.id)).await;
}

/// A StopSignal as images write it (`SIGQUIT`, `QUIT`, `3`); `None` for empty or unknown.
fn signal_number(name: &str) -> Option<i32> {
    if let Ok(number) = name.parse() {
        return Some(number);
    }
    let signal = match name.trim_start_matches("SIG") {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "WINCH" => libc::SIGWINCH,
        "STOP" => libc::SIGSTOP,
        _ => return None,
    };
    Some(signal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_periods_are_upstreams() {
        let pod = |pod_grace: Option<i64>, probe_grace: Option<i64>| -> Pod {
            serde_json::from_value(serde_json::json!({
                "spec": {
                    "terminationGracePeriodSeconds": pod_grace,
                    "containers": [{"name": "c", "livenessProbe": {
                        "terminationGracePeriodSeconds": probe_grace,
                        "exec": {"command": ["true"]}}}],
                },
            }))
            .expect("pod")
        };
        assert_eq!(
            termination_grace(&pod(Some(30), None), Some(("c", ProbeType::Liveness))).as_secs(),
            30
        );
        assert_eq!(
            termination_grace(&pod(Some(30), Some(5)), Some(("c", ProbeType::Liveness))).as_secs(),
            5
        );
        assert_eq!(
            termination_grace(&pod(Some(30), Some(5)), Some(("c", ProbeType::Startup))).as_secs(),
            30
        );
        assert_eq!(
            termination_grace(&pod(None, Some(5)), Some(("c", ProbeType::Liveness))).as_secs(),
            2
        );
        // A zero grace stays zero here (no preStop hook runs); kill_container still gives the 2 s minimum.
        assert_eq!(
            termination_grace(&pod(Some(0), None), Some(("c", ProbeType::Liveness))).as_secs(),
            0
        );
        assert_eq!(
            termination_grace(&pod(Some(30), Some(5)), None).as_secs(),
            30
        );
        let mut deleting = pod(Some(30), Some(5));
        deleting.metadata.deletion_grace_period_seconds = Some(7);
        assert_eq!(
            termination_grace(&deleting, Some(("c", ProbeType::Liveness))).as_secs(),
            7
        );
    }

    #[test]
    fn stop_signals_parse_as_images_write_them() {
        assert_eq!(signal_number("SIGQUIT"), Some(libc::SIGQUIT));
        assert_eq!(signal_number("WINCH"), Some(libc::SIGWINCH));
        assert_eq!(signal_number("15"), Some(15));
        assert_eq!(signal_number(""), None);
        assert_eq!(signal_number("SIGNOPE"), None);
    }
}
