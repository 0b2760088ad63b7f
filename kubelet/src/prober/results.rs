//! The probe results cache (upstream's prober/results): the latest result of each probe type by container
//! id. A change is reported (by pod UID) so the pod's worker syncs at once; a pure snapshot of one pod's
//! results decides `started`, `ready` and which containers to restart.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Container, ContainerStatus};
use k8s_openapi::jiff::Timestamp;
use tokio::sync::mpsc;

use super::ProbeType;

/// A probe's current verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeResult {
    /// Not known yet (a startup probe before its first verdict).
    Unknown,
    /// Passing.
    Success,
    /// Failing past its threshold.
    Failure,
}

/// The results of every probe, by probe type and container id.
pub struct ResultsCache {
    results: Mutex<HashMap<(ProbeType, String), ProbeResult>>,
    changes: mpsc::UnboundedSender<String>,
}

impl ResultsCache {
    /// An empty cache that sends the pod UID of every change to `changes`.
    pub fn new(changes: mpsc::UnboundedSender<String>) -> Self {
        Self {
            results: Mutex::default(),
            changes,
        }
    }

    /// Sets the result of `kind` for container `id` of pod `pod_uid`; reports a change.
    pub fn set(&self, kind: ProbeType, id: &str, result: ProbeResult, pod_uid: &str) {
        let previous = self.lock().insert((kind, id.to_string()), result);
        if previous != Some(result) {
            let _ = self.changes.send(pod_uid.to_string());
        }
    }

    /// The result of `kind` for container `id`, if any.
    pub fn get(&self, kind: ProbeType, id: &str) -> Option<ProbeResult> {
        self.lock().get(&(kind, id.to_string())).copied()
    }

    /// Forgets the result of `kind` for container `id` (the container is gone or replaced).
    pub fn remove(&self, kind: ProbeType, id: &str) {
        self.lock().remove(&(kind, id.to_string()));
    }

    /// The results of the containers `ids`.
    pub fn snapshot<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> PodProbeResults {
        let results = self.lock();
        let mut snapshot = PodProbeResults::default();
        for id in ids {
            for kind in ProbeType::ALL {
                if let Some(result) = results.get(&(kind, id.to_string())) {
                    snapshot.set(kind, id, *result);
                }
            }
        }
        snapshot
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(ProbeType, String), ProbeResult>> {
        self.results.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The probe results of one pod's containers at one moment: what status and actions are computed from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodProbeResults {
    results: HashMap<(ProbeType, String), ProbeResult>,
    /// Containers running since before this are from before the kubelet started (upstream's
    /// kubeletRestartGracePeriod: its start less 10 s).
    pub restart_cutoff: Option<Timestamp>,
}

/// What a container's status said before this sync, for containers the kubelet found running at start.
#[derive(Debug, Clone, Copy, Default)]
pub struct Previous<'a> {
    /// The container's previous status, when it was about the same container id.
    pub status: Option<&'a ContainerStatus>,
    /// Whether the pod was Ready.
    pub pod_ready: bool,
}

impl PodProbeResults {
    /// Records `result` of `kind` for container `id`.
    pub fn set(&mut self, kind: ProbeType, id: &str, result: ProbeResult) {
        self.results.insert((kind, id.to_string()), result);
    }

    /// The result of `kind` for container `id`, if any.
    pub fn get(&self, kind: ProbeType, id: &str) -> Option<ProbeResult> {
        self.results.get(&(kind, id.to_string())).copied()
    }

    /// Whether container `id` (a run of `container`) has started (upstream's isContainerStarted): it runs,
    /// and its startup probe succeeded or it has none.
    pub fn started(&self, container: &Container, id: &str, running: bool) -> bool {
        running
            && match self.get(ProbeType::Startup, id) {
                Some(result) => result == ProbeResult::Success,
                None => container.startup_probe.is_none(),
            }
    }

    /// Whether container `id` is ready: started, and its readiness probe succeeded or it has none.
    pub fn ready(&self, container: &Container, id: &str, running: bool) -> bool {
        self.started(container, id, running)
            && (container.readiness_probe.is_none()
                || self.get(ProbeType::Readiness, id) == Some(ProbeResult::Success))
    }

    /// `started` and `ready` of container `id`, running since `running_since`; a container that ran before
    /// the kubelet started and has no verdict yet keeps what its status said (upstream's
    /// isContainerStarted and setReadyStateOnKubeletRestart), so a kubelet restart does not flap readiness.
    pub fn started_and_ready(
        &self,
        container: &Container,
        id: &str,
        running_since: Option<Timestamp>,
        previous: Previous<'_>,
    ) -> (bool, bool) {
        let running = running_since.is_some();
        let mut started = self.started(container, id, running);
        let mut ready = self.ready(container, id, running);
        let adopted =
            matches!((self.restart_cutoff, running_since), (Some(cut), Some(since)) if since < cut);
        if !adopted {
            return (started, ready);
        }
        if !started
            && self.get(ProbeType::Startup, id).is_none()
            && previous.status.and_then(|s| s.started) == Some(true)
        {
            started = true;
        }
        if started && !ready && self.get(ProbeType::Readiness, id).is_none() {
            ready = container.readiness_probe.is_none() || previous.pod_ready;
        }
        (started, ready)
    }

    /// Whether container `id` failed its liveness or startup probe and must be killed, and which.
    pub fn failed(&self, id: &str) -> Option<ProbeType> {
        [ProbeType::Liveness, ProbeType::Startup]
            .into_iter()
            .find(|kind| self.get(*kind, id) == Some(ProbeResult::Failure))
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Probe;

    use super::*;

    fn container(startup: bool, readiness: bool) -> Container {
        Container {
            name: "c".into(),
            startup_probe: startup.then(Probe::default),
            readiness_probe: readiness.then(Probe::default),
            ..Container::default()
        }
    }

    #[test]
    fn containers_from_before_a_kubelet_restart_keep_their_state_until_probed() {
        let at = |s: i64| Timestamp::from_second(1_700_000_000 + s).expect("time");
        let mut results = PodProbeResults {
            restart_cutoff: Some(at(100)),
            ..PodProbeResults::default()
        };
        let c = container(true, true);
        let old = ContainerStatus {
            started: Some(true),
            ready: true,
            ..ContainerStatus::default()
        };
        let was = |pod_ready| Previous {
            status: Some(&old),
            pod_ready,
        };
        assert_eq!(
            results.started_and_ready(&c, "a", Some(at(50)), was(true)),
            (true, true)
        );
        assert_eq!(
            results.started_and_ready(&c, "a", Some(at(50)), was(false)),
            (true, false)
        );
        // Started after the kubelet: the probes decide.
        assert_eq!(
            results.started_and_ready(&c, "a", Some(at(150)), was(true)),
            (false, false)
        );
        // Once probed, the verdict wins.
        results.set(ProbeType::Startup, "a", ProbeResult::Success);
        results.set(ProbeType::Readiness, "a", ProbeResult::Failure);
        assert_eq!(
            results.started_and_ready(&c, "a", Some(at(50)), was(true)),
            (true, false)
        );
        assert_eq!(
            results.started_and_ready(&c, "a", None, was(true)),
            (false, false)
        );
    }

    #[test]
    fn changes_are_reported_once_per_change() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let cache = ResultsCache::new(tx);
        cache.set(ProbeType::Readiness, "a", ProbeResult::Failure, "pod");
        cache.set(ProbeType::Readiness, "a", ProbeResult::Failure, "pod");
        cache.set(ProbeType::Readiness, "a", ProbeResult::Success, "pod");
        assert_eq!(rx.try_recv().ok().as_deref(), Some("pod"));
        assert_eq!(rx.try_recv().ok().as_deref(), Some("pod"));
        assert!(rx.try_recv().is_err());
        assert_eq!(
            cache.get(ProbeType::Readiness, "a"),
            Some(ProbeResult::Success)
        );
        cache.remove(ProbeType::Readiness, "a");
        assert_eq!(cache.get(ProbeType::Readiness, "a"), None);
    }

    #[test]
    fn started_and_ready_follow_the_probes() {
        let mut results = PodProbeResults::default();
        // No probes: ready once running.
        assert!(results.ready(&container(false, false), "a", true));
        assert!(!results.ready(&container(false, false), "a", false));
        // A readiness probe without a verdict: not ready.
        assert!(!results.ready(&container(false, true), "a", true));
        results.set(ProbeType::Readiness, "a", ProbeResult::Success);
        assert!(results.ready(&container(false, true), "a", true));
        // A startup probe gates both.
        assert!(!results.started(&container(true, true), "a", true));
        results.set(ProbeType::Startup, "a", ProbeResult::Unknown);
        assert!(!results.ready(&container(true, true), "a", true));
        results.set(ProbeType::Startup, "a", ProbeResult::Success);
        assert!(results.started(&container(true, true), "a", true));
        assert!(results.ready(&container(true, true), "a", true));
        assert_eq!(results.failed("a"), None);
        results.set(ProbeType::Liveness, "a", ProbeResult::Failure);
        assert_eq!(results.failed("a"), Some(ProbeType::Liveness));
    }
}
