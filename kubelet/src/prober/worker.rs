//! One probe of one container (upstream's prober worker): a pure state machine — which container it
//! watches, the initial delay, the startup gate, the thresholds — and the task that runs it every
//! periodSeconds, at once when its container is replaced, and stops with the pod.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, ContainerStatus, Pod, PodStatus, Probe};
use k8s_openapi::jiff::Timestamp;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::probe::{ProbeTarget, Prober};
use super::results::ResultsCache;
use super::{ProbeResult, ProbeType};
use crate::kuberuntime::actions::is_sidecar;

/// The part of a container's status a worker acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerView {
    /// The runtime's container id (without `containerd://`).
    pub id: String,
    /// Since when it runs, when running.
    pub running_since: Option<Timestamp>,
    /// Whether it has terminated.
    pub terminated: bool,
    /// Whether its status says started.
    pub started: bool,
}

/// The view of container `name` in `status` (app containers first, then init containers), once it has an
/// id.
pub fn container_view(status: &PodStatus, name: &str) -> Option<ContainerView> {
    let find = |list: &Option<Vec<ContainerStatus>>| {
        list.iter()
            .flatten()
            .find(|c| c.name == name && c.container_id.as_deref().is_some_and(|id| !id.is_empty()))
            .cloned()
    };
    let found =
        find(&status.container_statuses).or_else(|| find(&status.init_container_statuses))?;
    let id = found.container_id.unwrap_or_default();
    let state = found.state.unwrap_or_default();
    Some(ContainerView {
        id: id
            .split_once("://")
            .map_or(id.as_str(), |(_, raw)| raw)
            .to_string(),
        running_since: state
            .running
            .map(|r| r.started_at.map_or(Timestamp::UNIX_EPOCH, |t| t.0)),
        terminated: state.terminated.is_some(),
        started: found.started == Some(true),
    })
}

/// A change the worker makes to the results cache.
#[derive(Debug, Clone, PartialEq)]
pub enum ResultOp {
    /// Set the container's result.
    Set(String, ProbeResult),
    /// Forget the container's result.
    Remove(String),
}

/// What to do on a tick.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Nothing now.
    Wait,
    /// Run the probe against this container.
    Probe(String),
    /// The container will not run again: the worker ends.
    Stop,
}

/// The state of one worker.
#[derive(Debug, Clone)]
pub struct WorkerState {
    kind: ProbeType,
    initial_delay: i64,
    success_threshold: u32,
    failure_threshold: u32,
    /// Whether a terminated container comes back (restartPolicy not Never, or a sidecar).
    restarts: bool,
    container_id: Option<String>,
    last: Option<ProbeResult>,
    run: u32,
    /// After a liveness failure or a startup verdict: no probes until the container is replaced.
    on_hold: bool,
    /// Containers running since before this were found running when the kubelet started.
    restart_cutoff: Option<Timestamp>,
}

impl WorkerState {
    /// The state of a `kind` worker running `probe` on `container` of a pod with restart policy `policy`.
    pub fn new(kind: ProbeType, probe: &Probe, container: &Container, policy: &str) -> Self {
        let threshold = |value: Option<i32>, default: u32| {
            value
                .and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v > 0)
                .unwrap_or(default)
        };
        Self {
            kind,
            initial_delay: i64::from(probe.initial_delay_seconds.unwrap_or(0)),
            success_threshold: threshold(probe.success_threshold, 1),
            failure_threshold: threshold(probe.failure_threshold, 3),
            restarts: policy != "Never" || is_sidecar(container),
            container_id: None,
            last: None,
            run: 0,
            on_hold: false,
            restart_cutoff: None,
        }
    }

    /// Containers running since before `cutoff` ran before the kubelet started: they get no initial
    /// result, so their status stays as it was until their first verdict.
    pub fn with_restart_cutoff(mut self, cutoff: Timestamp) -> Self {
        self.restart_cutoff = Some(cutoff);
        self
    }

    /// The container this worker last saw.
    pub fn container_id(&self) -> Option<&str> {
        self.container_id.as_deref()
    }

    /// Upstream's initial results: readiness fails until proven, liveness passes, startup is unknown.
    fn initial(&self) -> ProbeResult {
        match self.kind {
            ProbeType::Readiness => ProbeResult::Failure,
            ProbeType::Liveness => ProbeResult::Success,
            ProbeType::Startup => ProbeResult::Unknown,
        }
    }

    /// Whether a status change calls for a probe now rather than at the next tick: the container was
    /// replaced, or (readiness) it started and is not ready yet, as upstream's manual trigger.
    pub fn wants_probe_now(
        &self,
        view: Option<&ContainerView>,
        current: Option<ProbeResult>,
    ) -> bool {
        let Some(view) = view else {
            return false;
        };
        if self.container_id.as_deref() != Some(view.id.as_str()) {
            return true;
        }
        self.kind == ProbeType::Readiness
            && view.running_since.is_some()
            && view.started
            && current != Some(ProbeResult::Success)
    }

    /// Decides a tick (upstream's doProbe up to the probe itself), given the pod's phase and the
    /// container's view at `now`; changes to the results go to `ops`.
    pub fn before(
        &mut self,
        pod_terminal: bool,
        view: Option<&ContainerView>,
        now: Timestamp,
        ops: &mut Vec<ResultOp>,
    ) -> Next {
        if pod_terminal {
            return Next::Stop;
        }
        let Some(view) = view else {
            return Next::Wait;
        };
        if self.container_id.as_deref() != Some(view.id.as_str()) {
            if let Some(old) = self.container_id.take() {
                ops.push(ResultOp::Remove(old));
            }
            self.container_id = Some(view.id.clone());
            let adopted = matches!(
                (self.restart_cutoff, view.running_since),
                (Some(cut), Some(since)) if since < cut
            );
            if !adopted {
                ops.push(ResultOp::Set(view.id.clone(), self.initial()));
            }
            self.on_hold = false;
        }
        if self.on_hold {
            return Next::Wait;
        }
        let Some(since) = view.running_since else {
            ops.push(ResultOp::Set(view.id.clone(), ProbeResult::Failure));
            return if view.terminated && !self.restarts {
                Next::Stop
            } else {
                Next::Wait
            };
        };
        if now.duration_since(since).as_secs() < self.initial_delay {
            return Next::Wait;
        }
        // Startup runs until the container has started; the others only after.
        if view.started == (self.kind == ProbeType::Startup) {
            return Next::Wait;
        }
        Next::Probe(view.id.clone())
    }

    /// Applies a probe's `result` for container `id`: the result changes only once its threshold is met.
    pub fn after(&mut self, id: &str, result: ProbeResult) -> Option<ResultOp> {
        if self.container_id.as_deref() != Some(id) {
            return None;
        }
        if self.last == Some(result) {
            self.run += 1;
        } else {
            self.last = Some(result);
            self.run = 1;
        }
        let threshold = match result {
            ProbeResult::Failure => self.failure_threshold,
            ProbeResult::Success => self.success_threshold,
            ProbeResult::Unknown => 1,
        };
        if self.run < threshold {
            return None;
        }
        if (self.kind == ProbeType::Liveness && result == ProbeResult::Failure)
            || self.kind == ProbeType::Startup
        {
            // The container is about to be killed (or has started): probing it again is pointless.
            self.on_hold = true;
            self.run = 0;
        }
        Some(ResultOp::Set(id.to_string(), result))
    }
}

/// A worker's task: everything it needs to run.
pub struct Worker {
    /// The pod, as when the worker was made.
    pub pod: Arc<Pod>,
    /// The probed container's spec.
    pub container: Container,
    /// Which probe.
    pub kind: ProbeType,
    /// Its state.
    pub state: WorkerState,
    /// The pod's latest status, as the pod worker computed it.
    pub status: watch::Receiver<Option<Arc<PodStatus>>>,
    /// Where results go.
    pub results: Arc<ResultsCache>,
    /// Runs the probe.
    pub prober: Prober,
    /// Cancelled when the pod goes.
    pub stop: CancellationToken,
}

impl Worker {
    /// Probes until the pod goes or the container will not run again.
    pub async fn run(mut self) {
        let Some(probe) = self.kind.of(&self.container).cloned() else {
            return;
        };
        let seconds = u64::try_from(probe.period_seconds.unwrap_or(10)).unwrap_or(10);
        let period = Duration::from_secs(seconds.max(1));
        let uid = self.pod.metadata.uid.clone().unwrap_or_default();
        let mut next = Instant::now();
        loop {
            let now_due = tokio::select! {
                () = self.stop.cancelled() => break,
                () = tokio::time::sleep_until(next) => true,
                changed = self.status.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let view = self.view();
                    let current = view
                        .as_ref()
                        .and_then(|v| self.results.get(self.kind, &v.id));
                    self.state.wants_probe_now(view.as_ref(), current)
                }
            };
            if !now_due {
                continue;
            }
            next = Instant::now() + period;
            let (terminal, pod_ip) = {
                let status = self.status.borrow();
                let status = status.as_deref();
                let phase = status.and_then(|s| s.phase.as_deref());
                let ip = status.and_then(|s| s.pod_ip.clone()).unwrap_or_default();
                (matches!(phase, Some("Succeeded" | "Failed")), ip)
            };
            let view = self.view();
            let mut ops = Vec::new();
            let step = self
                .state
                .before(terminal, view.as_ref(), Timestamp::now(), &mut ops);
            self.apply(&uid, ops);
            let id = match step {
                Next::Stop => break,
                Next::Wait => continue,
                Next::Probe(id) => id,
            };
            let target = ProbeTarget {
                pod: &self.pod,
                container: &self.container,
                container_id: &id,
                pod_ip: &pod_ip,
            };
            let result = tokio::select! {
                () = self.stop.cancelled() => break,
                result = self.prober.probe(self.kind, &probe, &target) => result,
            };
            if let Some(op) = result.and_then(|r| self.state.after(&id, r)) {
                self.apply(&uid, vec![op]);
            }
        }
        if let Some(id) = self.state.container_id() {
            self.results.remove(self.kind, id);
        }
    }

    fn view(&self) -> Option<ContainerView> {
        let status = self.status.borrow();
        container_view(status.as_deref()?, &self.container.name)
    }

    fn apply(&self, uid: &str, ops: Vec<ResultOp>) {
        for op in ops {
            match op {
                ResultOp::Set(id, result) => self.results.set(self.kind, &id, result, uid),
                ResultOp::Remove(id) => self.results.remove(self.kind, &id),
            }
        }
    }
}

#[cfg(test)]
#[path = "worker_tests.rs"]
mod tests;
