//! One worker task per pod (upstream's podWorkers): it syncs its pod whenever the pod changes, one of its
//! containers exits, a backoff ends or the resync period passes, and it terminates the pod when the pod is
//! deleted — stop the containers within the grace period, clean up, then delete the pod object with grace
//! 0, as upstream's kubelet does.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use component_base::events::EventRecorder;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, PodStatus};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Preconditions};
use kube::{Api, Client};
use tokio::sync::mpsc;

use crate::admission::{Rejection, admit};
use crate::kuberuntime::manager::{PodEvent, RuntimeManager};
use crate::kuberuntime::stop::termination_grace;
use crate::metrics::{self, SyncType};
use crate::prober::ProbeManager;
use crate::status::generate::{StatusInputs, generate_pod_status};
use crate::status::manager::StatusManager;
use crate::volumemanager::VolumeManager;

/// How soon a pod whose volumes could not be mounted is synced again.
const MOUNT_RETRY: Duration = Duration::from_secs(3);

/// What a worker is told.
enum Update {
    /// The pod as the apiserver has it now.
    Pod(Arc<Pod>),
    /// Something changed in the runtime (a container exited): sync again.
    Resync,
    /// The pod object is gone from the apiserver.
    Removed,
}

/// What the workers share.
pub struct WorkerContext {
    /// The runtime side.
    pub manager: RuntimeManager,
    /// Posts statuses.
    pub statuses: StatusManager,
    /// Records pod events.
    pub recorder: EventRecorder,
    /// Deletes finished pods.
    pub client: Client,
    /// The node's name, read for admission.
    pub node_name: String,
    /// The node's IPs, for hostIP(s).
    pub host_ips: Vec<String>,
    /// How often an idle pod is synced anyway.
    pub resync: Duration,
    /// Sets up and tears down the pods' volumes.
    pub volumes: VolumeManager,
    /// The pods' probe workers and their results.
    pub probes: ProbeManager,
}

/// The pod workers.
#[derive(Clone)]
pub struct PodWorkers {
    context: Arc<WorkerContext>,
    workers: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Update>>>>,
    /// Which pod each container belongs to, for container exits.
    containers: Arc<Mutex<HashMap<String, String>>>,
    /// The newest version of each pod with a worker: what admission counts.
    pods: Arc<Mutex<HashMap<String, Arc<Pod>>>>,
    /// Pods admission refused; they never get a worker.
    rejected: Arc<Mutex<HashSet<String>>>,
}

impl PodWorkers {
    /// Workers sharing `context`.
    pub fn new(context: WorkerContext) -> Self {
        let changes = context.probes.take_changes();
        let workers = Self {
            context: Arc::new(context),
            workers: Arc::default(),
            containers: Arc::default(),
            pods: Arc::default(),
            rejected: Arc::default(),
        };
        // A probe verdict changed: the pod syncs at once (a restart, readiness in the status).
        if let Some(mut changes) = changes {
            let this = workers.clone();
            tokio::spawn(async move {
                while let Some(uid) = changes.recv().await {
                    this.send(&uid, Update::Resync);
                }
            });
        }
        workers
    }

    /// The pod was added or changed: its worker syncs it. A new pod is admitted first, against the pods
    /// admitted before it (callers deliver pods one at a time, so admission is in arrival order).
    pub async fn update(&self, pod: Arc<Pod>) {
        let first_seen = Instant::now();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if lock(&self.rejected).contains(&uid) {
            return;
        }
        let sent = lock(&self.workers)
            .get(&uid)
            .is_some_and(|worker| worker.send(Update::Pod(pod.clone())).is_ok());
        if sent {
            lock(&self.pods).insert(uid, pod);
            return;
        }
        if !is_terminal(&pod)
            && let Err(rejection) = self.admit(&pod).await
        {
            self.reject(&pod, rejection).await;
            return;
        }
        let (sender, receiver) = mpsc::unbounded_channel();
        lock(&self.workers).insert(uid.clone(), sender);
        lock(&self.pods).insert(uid.clone(), pod.clone());
        let this = self.clone();
        tokio::spawn(async move {
            this.run_worker(pod, receiver, first_seen).await;
            lock(&this.workers).remove(&uid);
            lock(&this.pods).remove(&uid);
        });
    }

    async fn admit(&self, pod: &Pod) -> Result<(), Rejection> {
        let nodes: Api<Node> = Api::all(self.context.client.clone());
        let node = nodes
            .get(&self.context.node_name)
            .await
            .map_err(|e| Rejection {
                reason: "InvalidNodeInfo".to_string(),
                message: format!("Kubelet cannot get node info: {e}"),
            })?;
        let active: Vec<Arc<Pod>> = lock(&self.pods)
            .values()
            .filter(|p| !is_terminal(p))
            .cloned()
            .collect();
        let active: Vec<&Pod> = active.iter().map(Arc::as_ref).collect();
        admit(pod, &active, &node)
    }

    /// Upstream's rejectPod: a Warning event and the pod Failed with "Pod was rejected: ...".
    async fn reject(&self, pod: &Pod, rejection: Rejection) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        tracing::info!(pod = %pod_name(pod), reason = %rejection.reason, "Failed to admit pod");
        self.context.recorder.warning(
            &pod_reference(pod, None),
            &rejection.reason,
            &rejection.reason,
            rejection.message.clone(),
        );
        let spec = pod.spec.clone().unwrap_or_default();
        let status = PodStatus {
            phase: Some("Failed".to_string()),
            reason: Some(rejection.reason),
            message: Some(format!("Pod was rejected: {}", rejection.message)),
            qos_class: Some(crate::status::qos::qos_class(&spec).to_string()),
            ..PodStatus::default()
        };
        match self.context.statuses.set(pod, status).await {
            Ok(()) => {
                lock(&self.rejected).insert(uid);
            }
            Err(e) => tracing::warn!(pod = %pod_name(pod), error = %e, "cannot post the rejection"),
        }
    }

    /// What the workers share.
    pub fn context(&self) -> &WorkerContext {
        &self.context
    }

    /// The UIDs of the pods that have a worker (running, or terminating): housekeeping leaves them alone.
    pub fn active(&self) -> HashSet<String> {
        lock(&self.workers).keys().cloned().collect()
    }

    /// The pod object is gone.
    pub fn removed(&self, uid: &str) {
        lock(&self.rejected).remove(uid);
        self.send(uid, Update::Removed);
    }

    /// Container `id` exited: its pod's worker syncs.
    pub fn container_exited(&self, id: &str) {
        let uid = lock(&self.containers).get(id).cloned();
        if let Some(uid) = uid {
            self.send(&uid, Update::Resync);
        }
    }

    fn send(&self, uid: &str, update: Update) {
        let workers = lock(&self.workers);
        if let Some(worker) = workers.get(uid) {
            let _ = worker.send(update);
        }
    }

    async fn run_worker(
        &self,
        mut pod: Arc<Pod>,
        mut updates: mpsc::UnboundedReceiver<Update>,
        first_seen: Instant,
    ) {
        if !is_terminal(&pod) {
            self.context.probes.add_pod(&pod);
        }
        let mut progress = WorkerProgress {
            first_seen,
            operation: SyncType::Create,
            phase: None,
        };
        metrics::pod_worker_started(first_seen);
        loop {
            if pod.metadata.deletion_timestamp.is_some() {
                self.terminate(&pod, false).await;
                return;
            }
            let start = Instant::now();
            let wait = self.sync(&pod, &mut progress).await;
            metrics::pod_worker_done(progress.operation, start);
            let update = tokio::select! {
                update = updates.recv() => update,
                () = tokio::time::sleep(wait) => Some(Update::Resync),
            };
            progress.operation = SyncType::Sync;
            match update {
                Some(Update::Pod(newer)) => {
                    pod = newer;
                    progress.operation = SyncType::Update;
                }
                Some(Update::Resync) => {}
                Some(Update::Removed) | None => {
                    self.terminate(&pod, true).await;
                    return;
                }
            }
            // Only the newest pod matters; a removal among the queued updates still wins.
            while let Ok(update) = updates.try_recv() {
                match update {
                    Update::Pod(newer) => {
                        pod = newer;
                        progress.operation = SyncType::Update;
                    }
                    Update::Resync => {}
                    Update::Removed => {
                        self.terminate(&pod, true).await;
                        return;
                    }
                }
            }
        }
    }

    /// One sync; returns when to sync again at the latest.
    async fn sync(&self, pod: &Pod, progress: &mut WorkerProgress) -> Duration {
        let context = &self.context;
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let terminal = matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        let mut requeue = context.resync;
        let mut waiting = Default::default();
        if !terminal {
            let before = match context.manager.pod_status(&uid).await {
                Ok(status) => status,
                Err(e) => {
                    tracing::error!(pod = %pod_name(pod), error = %e, "cannot read the pod's containers");
                    return Duration::from_secs(2);
                }
            };
            // Volumes before containers; a failed mount leaves the containers ContainerCreating and is
            // retried soon (the missing source may appear).
            let volumes = match context.volumes.mount_pod(pod).await {
                Ok(volumes) => Some(volumes),
                Err(e) => {
                    tracing::warn!(pod = %pod_name(pod), error = %e, "cannot mount the pod's volumes");
                    let failed = PodEvent {
                        warning: true,
                        reason: "FailedMount",
                        message: e.to_string(),
                        field_path: None,
                    };
                    self.record(pod, &[failed]);
                    requeue = requeue.min(MOUNT_RETRY);
                    // Volumes mounted before stay usable: only a pod never mounted in full waits.
                    context.volumes.mounted(&uid)
                }
            };
            if let Some(volumes) = volumes {
                let probes = context.probes.results(&before);
                let result = context
                    .manager
                    .sync_pod(pod, &before, &probes, &volumes)
                    .await;
                self.record(pod, &result.events);
                waiting = result.waiting;
                if let Some(after) = result.requeue_after {
                    requeue = requeue.min(after);
                }
            }
        }
        let Ok(runtime) = context.manager.pod_status(&uid).await else {
            return Duration::from_secs(2);
        };
        {
            let mut containers = lock(&self.containers);
            for record in &runtime.containers {
                containers.insert(record.id.clone(), uid.clone());
            }
        }
        metrics::pod_runtime_observed(&uid, Some(&runtime));
        let status = generate_pod_status(
            pod,
            &StatusInputs {
                runtime: &runtime,
                waiting: &waiting,
                probes: &context.probes.results(&runtime),
                host_ips: &context.host_ips,
                now: Timestamp::now(),
            },
        );
        let finished = matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"));
        if !finished
            && metrics::observes_pod_start(progress.phase.as_deref(), status.phase.as_deref())
        {
            metrics::pod_started(progress.first_seen);
        }
        progress.phase.clone_from(&status.phase);
        context.probes.update_status(&uid, &status);
        if let Err(e) = context.statuses.set(pod, status).await {
            tracing::warn!(pod = %pod_name(pod), error = %e, "cannot update the pod's status");
            return Duration::from_secs(1);
        }
        if finished && runtime.sandbox_ready {
            // A finished pod keeps its containers (logs, statuses) but not its network.
            if let Err(e) = context.manager.release_sandbox(&uid).await {
                tracing::warn!(pod = %pod_name(pod), error = %e, "cannot tear down the pod's sandbox");
            }
            // Nor its volumes (upstream unmounts a terminated pod's volumes too).
            if let Err(e) = context.volumes.unmount_pod(&uid).await {
                tracing::warn!(pod = %pod_name(pod), error = %e, "cannot tear down the pod's volumes");
            }
        }
        requeue
    }

    /// Stops the pod's containers within its grace period, removes them and the sandbox, and — unless the
    /// pod object is already gone — deletes it with grace 0.
    async fn terminate(&self, pod: &Pod, object_gone: bool) {
        let start = Instant::now();
        self.terminate_pod(pod, object_gone).await;
        metrics::pod_worker_done(SyncType::Kill, start);
    }

    async fn terminate_pod(&self, pod: &Pod, object_gone: bool) {
        let context = &self.context;
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let grace = if object_gone {
            Duration::ZERO
        } else {
            termination_grace(pod)
        };
        tracing::info!(pod = %pod_name(pod), grace = grace.as_secs(), "Killing pod");
        context.probes.remove_pod(&uid);
        if let Ok(runtime) = context.manager.pod_status(&uid).await {
            let mut result = Default::default();
            context
                .manager
                .stop_containers(pod, &runtime, grace, &mut result)
                .await;
            self.record(pod, &result.events);
            if let Err(e) = context.manager.remove_pod(&uid, &runtime).await {
                tracing::warn!(pod = %pod_name(pod), error = %e, "cannot remove the pod's containers");
            }
            let mut containers = lock(&self.containers);
            for record in &runtime.containers {
                containers.remove(&record.id);
            }
        }
        metrics::pod_runtime_observed(&uid, None);
        if let Err(e) = context.volumes.remove_pod(&uid).await {
            tracing::warn!(pod = %pod_name(pod), error = %e, "cannot tear down the pod's volumes");
        }
        context.statuses.forget(&uid);
        if object_gone {
            return;
        }
        let api: Api<Pod> = Api::namespaced(
            context.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api
            .delete(pod.metadata.name.as_deref().unwrap_or_default(), &params)
            .await
        {
            Ok(_) => tracing::info!(pod = %pod_name(pod), "Pod deleted after termination"),
            // A finished pod is deleted at once by the apiserver itself.
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => {
                tracing::warn!(pod = %pod_name(pod), error = %e, "cannot delete the terminated pod")
            }
        }
    }

    fn record(&self, pod: &Pod, events: &[PodEvent]) {
        for event in events {
            let regarding = pod_reference(pod, event.field_path.clone());
            let recorder = &self.context.recorder;
            let note = event.message.clone();
            if event.warning {
                recorder.warning(&regarding, event.reason, event.reason, note);
            } else {
                recorder.normal(&regarding, event.reason, event.reason, note);
            }
        }
    }
}

/// What a pod's worker remembers between syncs, for its metrics.
struct WorkerProgress {
    /// When the kubelet first saw the pod.
    first_seen: Instant,
    /// Why the next sync runs.
    operation: SyncType,
    /// The phase the last sync posted; `None` before the first.
    phase: Option<String>,
}

/// A reference to the pod, or to one of its containers by field path, for events.
fn pod_reference(pod: &Pod, field_path: Option<String>) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".to_string()),
        kind: Some("Pod".to_string()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        field_path,
        ..ObjectReference::default()
    }
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn pod_name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}
