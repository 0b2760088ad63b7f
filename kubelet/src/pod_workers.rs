//! One worker task per pod (upstream's podWorkers): it syncs its pod whenever the pod changes, one of its
//! containers exits, a backoff ends or the resync period passes, and it terminates the pod when the pod is
//! deleted — stop the containers within the grace period, clean up, then delete the pod object with grace
//! 0, as upstream's kubelet does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use component_base::events::EventRecorder;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Preconditions};
use kube::{Api, Client};
use tokio::sync::mpsc;

use crate::kuberuntime::manager::{PodEvent, RuntimeManager};
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
    /// The node's IPs, for hostIP(s).
    pub host_ips: Vec<String>,
    /// How often an idle pod is synced anyway.
    pub resync: Duration,
    /// Sets up and tears down the pods' volumes.
    pub volumes: VolumeManager,
}

/// The pod workers.
#[derive(Clone)]
pub struct PodWorkers {
    context: Arc<WorkerContext>,
    workers: Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Update>>>>,
    /// Which pod each container belongs to, for container exits.
    containers: Arc<Mutex<HashMap<String, String>>>,
}

impl PodWorkers {
    /// Workers sharing `context`.
    pub fn new(context: WorkerContext) -> Self {
        Self {
            context: Arc::new(context),
            workers: Arc::default(),
            containers: Arc::default(),
        }
    }

    /// The pod was added or changed: its worker syncs it (started if new).
    pub fn update(&self, pod: Arc<Pod>) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(worker) = workers.get(&uid)
            && worker.send(Update::Pod(pod.clone())).is_ok()
        {
            return;
        }
        let (sender, receiver) = mpsc::unbounded_channel();
        workers.insert(uid.clone(), sender);
        let this = self.clone();
        tokio::spawn(async move {
            this.run_worker(pod, receiver).await;
            this.workers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&uid);
        });
    }

    /// The pod object is gone.
    pub fn removed(&self, uid: &str) {
        self.send(uid, Update::Removed);
    }

    /// Container `id` exited: its pod's worker syncs.
    pub fn container_exited(&self, id: &str) {
        let uid = self
            .containers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned();
        if let Some(uid) = uid {
            self.send(&uid, Update::Resync);
        }
    }

    fn send(&self, uid: &str, update: Update) {
        let workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(worker) = workers.get(uid) {
            let _ = worker.send(update);
        }
    }

    async fn run_worker(&self, mut pod: Arc<Pod>, mut updates: mpsc::UnboundedReceiver<Update>) {
        loop {
            if pod.metadata.deletion_timestamp.is_some() {
                self.terminate(&pod, false).await;
                return;
            }
            let wait = self.sync(&pod).await;
            let update = tokio::select! {
                update = updates.recv() => update,
                () = tokio::time::sleep(wait) => Some(Update::Resync),
            };
            match update {
                Some(Update::Pod(newer)) => pod = newer,
                Some(Update::Resync) => {}
                Some(Update::Removed) | None => {
                    self.terminate(&pod, true).await;
                    return;
                }
            }
            // Only the newest pod matters; a removal among the queued updates still wins.
            while let Ok(update) = updates.try_recv() {
                match update {
                    Update::Pod(newer) => pod = newer,
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
    async fn sync(&self, pod: &Pod) -> Duration {
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
                let result = context.manager.sync_pod(pod, &before, &volumes).await;
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
            let mut containers = self.containers.lock().unwrap_or_else(|e| e.into_inner());
            for record in &runtime.containers {
                containers.insert(record.id.clone(), uid.clone());
            }
        }
        let status = generate_pod_status(
            pod,
            &StatusInputs {
                runtime: &runtime,
                waiting: &waiting,
                host_ips: &context.host_ips,
                now: Timestamp::now(),
            },
        );
        let finished = matches!(status.phase.as_deref(), Some("Succeeded" | "Failed"));
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
        let context = &self.context;
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .or(pod
                .spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds))
            .unwrap_or(30);
        let grace = if object_gone { 0 } else { grace };
        if let Ok(runtime) = context.manager.pod_status(&uid).await {
            let mut result = Default::default();
            context
                .manager
                .stop_containers(
                    pod,
                    &runtime,
                    Duration::from_secs(u64::try_from(grace).unwrap_or(0)),
                    &mut result,
                )
                .await;
            self.record(pod, &result.events);
            if let Err(e) = context.manager.remove_pod(&uid, &runtime).await {
                tracing::warn!(pod = %pod_name(pod), error = %e, "cannot remove the pod's containers");
            }
            let mut containers = self.containers.lock().unwrap_or_else(|e| e.into_inner());
            for record in &runtime.containers {
                containers.remove(&record.id);
            }
        }
        if let Err(e) = context.volumes.unmount_pod(&uid).await {
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
        if let Err(e) = api
            .delete(pod.metadata.name.as_deref().unwrap_or_default(), &params)
            .await
        {
            tracing::warn!(pod = %pod_name(pod), error = %e, "cannot delete the terminated pod");
        }
    }

    fn record(&self, pod: &Pod, events: &[PodEvent]) {
        for event in events {
            let regarding = ObjectReference {
                api_version: Some("v1".to_string()),
                kind: Some("Pod".to_string()),
                name: pod.metadata.name.clone(),
                namespace: pod.metadata.namespace.clone(),
                uid: pod.metadata.uid.clone(),
                field_path: event.field_path.clone(),
                ..ObjectReference::default()
            };
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

fn pod_name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}
