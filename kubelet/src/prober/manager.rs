//! The probe workers of every pod (upstream's prober_manager): started when the pod worker first sees a
//! pod, fed the pod's status after each sync, stopped when the pod terminates; and the results cache the
//! sync reads `started`, `ready` and probe failures from.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use component_base::events::EventRecorder;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::ProbeType;
use super::probe::Prober;
use super::results::{PodProbeResults, ResultsCache};
use super::worker::{Worker, WorkerState};
use crate::kuberuntime::actions::is_sidecar;
use crate::kuberuntime::record::PodRuntimeStatus;
use crate::runtime::Runtime;

/// The probe workers and their results.
#[derive(Clone)]
pub struct ProbeManager {
    inner: Arc<Inner>,
}

struct Inner {
    prober: Prober,
    /// Containers running since before this ran before the kubelet started (its start less 10 s).
    restart_cutoff: Timestamp,
    results: Arc<ResultsCache>,
    pods: Mutex<HashMap<String, PodProbes>>,
    changes: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
}

/// One pod's workers.
struct PodProbes {
    status: watch::Sender<Option<Arc<PodStatus>>>,
    stop: CancellationToken,
}

impl ProbeManager {
    /// A manager whose exec probes go through `runtime` and whose events go to `recorder`.
    pub fn new(runtime: Runtime, recorder: EventRecorder) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        Self {
            inner: Arc::new(Inner {
                prober: Prober::new(runtime, recorder),
                restart_cutoff: Timestamp::now()
                    .checked_sub(SignedDuration::from_secs(10))
                    .unwrap_or(Timestamp::UNIX_EPOCH),
                results: Arc::new(ResultsCache::new(sender)),
                pods: Mutex::default(),
                changes: Mutex::new(Some(receiver)),
            }),
        }
    }

    /// The UIDs of pods whose results changed, for whoever syncs them (once).
    pub fn take_changes(&self) -> Option<mpsc::UnboundedReceiver<String>> {
        self.inner
            .changes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Starts the workers of `pod`'s probes (app containers and sidecars), unless they run already.
    pub fn add_pod(&self, pod: &Arc<Pod>) {
        let Some(spec) = pod.spec.as_ref() else {
            return;
        };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut pods = self.lock();
        if pods.contains_key(&uid) {
            return;
        }
        let policy = spec.restart_policy.as_deref().unwrap_or("Always");
        let probed: Vec<_> = spec
            .containers
            .iter()
            .chain(
                spec.init_containers
                    .iter()
                    .flatten()
                    .filter(|c| is_sidecar(c)),
            )
            .flat_map(|c| {
                ProbeType::ALL
                    .into_iter()
                    .filter_map(move |kind| Some((c, kind, kind.of(c)?)))
            })
            .collect();
        if probed.is_empty() {
            return;
        }
        let (status, _) = watch::channel(None);
        let stop = CancellationToken::new();
        for (container, kind, probe) in probed {
            let worker = Worker {
                pod: pod.clone(),
                container: container.clone(),
                kind,
                state: WorkerState::new(kind, probe, container, policy)
                    .with_restart_cutoff(self.inner.restart_cutoff),
                status: status.subscribe(),
                results: self.inner.results.clone(),
                prober: self.inner.prober.clone(),
                stop: stop.clone(),
            };
            tokio::spawn(worker.run());
        }
        pods.insert(uid, PodProbes { status, stop });
    }

    /// Stops the workers of pod `uid`; they forget their results.
    pub fn remove_pod(&self, uid: &str) {
        if let Some(pod) = self.lock().remove(uid) {
            pod.stop.cancel();
        }
    }

    /// The status the pod worker computed for pod `uid`: what the workers probe against.
    pub fn update_status(&self, uid: &str, status: &PodStatus) {
        if let Some(pod) = self.lock().get(uid) {
            pod.status.send_replace(Some(Arc::new(status.clone())));
        }
    }

    /// The results of the containers in `runtime`.
    pub fn results(&self, runtime: &PodRuntimeStatus) -> PodProbeResults {
        let mut results = self
            .inner
            .results
            .snapshot(runtime.containers.iter().map(|c| c.id.as_str()));
        results.restart_cutoff = Some(self.inner.restart_cutoff);
        results
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PodProbes>> {
        self.inner.pods.lock().unwrap_or_else(|e| e.into_inner())
    }
}
