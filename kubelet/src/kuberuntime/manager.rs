//! Doing what [`compute_pod_actions`] decided, on containerd and the pod's sandbox (upstream's
//! kubeGenericRuntimeManager): reading a pod's containers back, starting containers, and stopping pods.

use crate::pod_spec::{field_path, find_container};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use component_base::informer::SharedInformer;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::jiff::Timestamp;
use kube::Client;

use super::actions::{backoff_delay, compute_pod_actions};
use super::image_pull::PullBackOff;
use super::pod_files::PodFiles;
use super::record::{
    ContainerRecord, LABEL_ATTEMPT, LABEL_CONTAINER_NAME, LABEL_OOM_KILLED, LABEL_POD_UID,
    LABEL_START_ERROR, LABEL_START_FAILED_AT, LABEL_STARTED_AT, LABEL_TERMINATION_MESSAGE_FILE,
    LABEL_TERMINATION_MESSAGE_POLICY, PodRuntimeStatus, RecordState, exit_reason,
    labelled_start_failure, start_failed,
};
use super::termination_message::termination_message;
use crate::prober::PodProbeResults;
use crate::runtime::{Runtime, RuntimeError, TaskStatus};
use crate::sandbox::{PortMapping, Protocol, Sandbox, SandboxRequest, SandboxStatus};
use crate::status::generate::WaitingReasons;
use crate::volumemanager::PodVolumes;

/// An event about the pod or one of its containers, for the pod worker to record.
#[derive(Debug, Clone, PartialEq)]
pub struct PodEvent {
    /// `Normal` or `Warning`.
    pub warning: bool,
    /// Upstream's reason (`Pulled`, `Created`, `Started`, `BackOff`, `Killing`, `Failed`).
    pub reason: &'static str,
    /// Upstream's message.
    pub message: String,
    /// `spec.containers{NAME}` when about a container.
    pub field_path: Option<String>,
}

/// What one sync did and what the status must say.
#[derive(Debug, Default)]
pub struct SyncResult {
    /// Waiting reasons the status shows for containers that could not start.
    pub waiting: WaitingReasons,
    /// Events to record.
    pub events: Vec<PodEvent>,
    /// When to sync again at the latest (a backoff ending).
    pub requeue_after: Option<Duration>,
}

/// The runtime side of the kubelet.
pub struct RuntimeManager {
    pub(super) runtime: Runtime,
    sandbox: Sandbox,
    /// Reads the ConfigMaps and Secrets containers' environments name.
    pub(super) client: Client,
    pub(super) pod_logs_dir: PathBuf,
    /// Start times of containers; containerd keeps none, so they come from /proc while the process runs.
    pub(super) started: Mutex<HashMap<String, Timestamp>>,
    /// Containers the kernel killed for memory (containerd's `/tasks/oom`), until they are removed.
    oom_killed: Mutex<HashSet<String>>,
    /// Containers whose start failed: when, and why; until they are removed.
    start_failures: Mutex<HashMap<String, (Timestamp, String)>>,
    /// Sandboxes made by this process.
    sandboxes: Mutex<HashMap<String, SandboxStatus>>,
    /// Image pulls that failed, backing off.
    pub(super) pull_backoff: Mutex<PullBackOff>,
    /// The pods' hosts, resolv.conf and hostname files.
    pub(super) pod_files: PodFiles,
    /// Every Service, for the containers' Service variables.
    pub(super) services: SharedInformer<Service>,
}

impl RuntimeManager {
    /// A manager over `runtime` and `sandbox`, writing container logs under `pod_logs_dir`; `services`
    /// must be indexed by namespace.
    pub fn new(
        runtime: Runtime,
        sandbox: Sandbox,
        client: Client,
        pod_logs_dir: &Path,
        pod_files: PodFiles,
        services: SharedInformer<Service>,
    ) -> Self {
        Self {
            runtime,
            sandbox,
            client,
            pod_logs_dir: pod_logs_dir.to_path_buf(),
            started: Mutex::default(),
            oom_killed: Mutex::default(),
            start_failures: Mutex::default(),
            sandboxes: Mutex::default(),
            pull_backoff: Mutex::default(),
            pod_files,
            services,
        }
    }

    /// The runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The sandbox maker.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// What the runtime knows about pod `uid`.
    pub async fn pod_status(&self, uid: &str) -> Result<PodRuntimeStatus, RuntimeError> {
        let mut containers = Vec::new();
        for summary in self
            .runtime
            .list_containers_labelled(LABEL_POD_UID, uid)
            .await?
        {
            let never_ran = || {
                self.start_failure(&summary.id)
                    .or_else(|| labelled_start_failure(&summary.labels))
                    .unwrap_or(RecordState::Created)
            };
            let state = match self.runtime.task_state(&summary.id).await? {
                None => never_ran(),
                Some(task) => match (task.status, task.exit) {
                    (TaskStatus::Stopped, Some(exit)) => {
                        let code = i32::try_from(exit.code).unwrap_or(i32::MAX);
                        RecordState::Exited {
                            exit_code: code,
                            reason: exit_reason(
                                code,
                                self.was_oom_killed(&summary.id)
                                    || summary.labels.contains_key(LABEL_OOM_KILLED),
                            )
                            .to_string(),
                            started_at: self
                                .started_at(&summary.id, 0)
                                .or_else(|| summary.labels.get(LABEL_STARTED_AT)?.parse().ok()),
                            finished_at: exit
                                .exited_at
                                .and_then(to_timestamp)
                                .unwrap_or_else(Timestamp::now),
                            message: self.exit_message(&summary.labels, code),
                        }
                    }
                    (TaskStatus::Created, _) => never_ran(),
                    _ => RecordState::Running {
                        started_at: self
                            .started_at(&summary.id, task.pid)
                            .unwrap_or_else(Timestamp::now),
                    },
                },
            };
            let image = self.runtime.image(&summary.image).await.ok().flatten();
            containers.push(ContainerRecord {
                name: summary
                    .labels
                    .get(LABEL_CONTAINER_NAME)
                    .cloned()
                    .unwrap_or_default(),
                attempt: summary
                    .labels
                    .get(LABEL_ATTEMPT)
                    .and_then(|a| a.parse().ok())
                    .unwrap_or(0),
                image: summary.image.clone(),
                image_id: image.map(|i| i.id).unwrap_or_default(),
                id: summary.id,
                state,
            });
        }
        let sandbox = self.lock_sandboxes().get(uid).cloned();
        Ok(PodRuntimeStatus {
            containers,
            ips: sandbox
                .iter()
                .flat_map(|s| s.ips.iter().map(ToString::to_string))
                .collect(),
            sandbox_ready: sandbox.is_some(),
        })
    }

    /// The termination message of a container (by its labels) that exited with `code`.
    fn exit_message(&self, labels: &HashMap<String, String>, code: i32) -> Option<String> {
        let log = super::pod_logs::labelled_log_path(&self.pod_logs_dir, labels)?;
        let file = labels.get(LABEL_TERMINATION_MESSAGE_FILE).map(Path::new);
        let fallback = labels
            .get(LABEL_TERMINATION_MESSAGE_POLICY)
            .map(String::as_str)
            == Some("FallbackToLogsOnError");
        termination_message(file, fallback, code, &log)
    }

    /// When container `id` started: as recorded, else (after a kubelet restart) from its process `pid`.
    fn started_at(&self, id: &str, pid: u32) -> Option<Timestamp> {
        let mut started = self.started.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = started.get(id) {
            return Some(*at);
        }
        let at = super::start_time::process_start_time(pid)?;
        started.insert(id.to_string(), at);
        Some(at)
    }

    /// Container `id` was killed by the kernel for memory: its exit reads OOMKilled, also after a restart
    /// (a label on the container remembers it).
    pub async fn oom_killed(&self, id: &str) {
        self.lock_oom().insert(id.to_string());
        if let Err(e) = self.runtime.set_label(id, LABEL_OOM_KILLED, "true").await {
            tracing::warn!(container = id, error = %e, "cannot record the OOM kill on the container");
        }
    }

    /// Container `id`'s start failed with `message`: it reads as exited with StartError from now on, also
    /// after a restart (labels on the container remember it).
    pub(super) async fn record_start_failure(&self, id: &str, message: &str) {
        let at = Timestamp::now();
        self.lock_start_failures()
            .insert(id.to_string(), (at, message.to_string()));
        let at = at.to_string();
        let labels = [(LABEL_START_ERROR, message), (LABEL_START_FAILED_AT, &at)];
        if let Err(e) = self.runtime.set_labels(id, &labels).await {
            tracing::warn!(container = id, error = %e, "cannot record the failed start on the container");
        }
    }

    /// The state of container `id` if its start failed since this process began.
    fn start_failure(&self, id: &str) -> Option<RecordState> {
        let failures = self.lock_start_failures();
        let (at, message) = failures.get(id)?;
        Some(start_failed(message, *at))
    }

    fn lock_start_failures(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (Timestamp, String)>> {
        self.start_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Drops what is remembered about container `id`, which is gone.
    pub(super) fn forget_container(&self, id: &str) {
        self.started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        self.lock_oom().remove(id);
        self.lock_start_failures().remove(id);
    }

    fn was_oom_killed(&self, id: &str) -> bool {
        self.lock_oom().contains(id)
    }

    fn lock_oom(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.oom_killed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The first IP of pod `uid`'s sandbox, if it has one.
    pub(super) fn pod_ip(&self, uid: &str) -> Option<String> {
        let sandboxes = self.lock_sandboxes();
        Some(sandboxes.get(uid)?.ips.first()?.to_string())
    }

    fn lock_sandboxes(&self) -> std::sync::MutexGuard<'_, HashMap<String, SandboxStatus>> {
        self.sandboxes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Brings pod's containers to what its spec, restart policy and probe verdicts want (upstream's
    /// SyncPod), their volumeMounts bound from `volumes`.
    pub async fn sync_pod(
        &self,
        pod: &Pod,
        status: &PodRuntimeStatus,
        probes: &PodProbeResults,
        volumes: &PodVolumes,
    ) -> SyncResult {
        let mut result = SyncResult::default();
        let Some(spec) = pod.spec.as_ref() else {
            return result;
        };
        let actions = compute_pod_actions(spec, status, probes, Timestamp::now());
        if actions.kill_pod {
            self.stop_containers(pod, status, Duration::ZERO, &mut result)
                .await;
            return result;
        }
        for kill in &actions.kill {
            self.kill_for_probe(pod, status, kill, &mut result).await;
        }
        let sandbox = if actions.create_sandbox {
            crate::metrics::sandbox_creating();
            match self.ensure_sandbox(pod, &mut result).await {
                Ok(sandbox) => sandbox,
                Err(message) => {
                    result.events.push(PodEvent {
                        warning: true,
                        reason: "FailedCreatePodSandBox",
                        message: format!("Failed to create pod sandbox: {message}"),
                        field_path: None,
                    });
                    result.requeue_after = Some(Duration::from_secs(5));
                    return result;
                }
            }
        } else {
            match self.lock_sandboxes().get(pod_uid(pod)).cloned() {
                Some(sandbox) => sandbox,
                None => return result,
            }
        };
        for name in &actions.start {
            let Some(container) = find_container(spec, name) else {
                continue;
            };
            let attempt = status.latest(name).map_or(0, |c| c.attempt + 1);
            let init = spec
                .init_containers
                .iter()
                .flatten()
                .any(|c| &c.name == name);
            crate::metrics::container_starting(init);
            self.start_container(pod, container, attempt, &sandbox, volumes, &mut result)
                .await;
        }
        for (name, left) in &actions.backing_off {
            let restarts = status.latest(name).map_or(0, |c| c.attempt);
            let message = format!(
                "back-off {} restarting failed container={name} pod={}",
                go_seconds(backoff_delay(restarts)),
                pod_description(pod)
            );
            result.events.push(PodEvent {
                warning: true,
                reason: "BackOff",
                message: format!(
                    "Back-off restarting failed container {name} in pod {}",
                    pod_description(pod)
                ),
                field_path: Some(field_path(spec, name)),
            });
            result
                .waiting
                .insert(name.clone(), ("CrashLoopBackOff".to_string(), message));
            let next = result.requeue_after.map_or(*left, |r| r.min(*left));
            result.requeue_after = Some(next);
        }
        result
    }

    /// The pod's sandbox, made or found again, and its hosts/DNS files written (DNS warnings go to
    /// `result`).
    async fn ensure_sandbox(
        &self,
        pod: &Pod,
        result: &mut SyncResult,
    ) -> Result<SandboxStatus, String> {
        let spec = pod.spec.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let port_mappings = spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                let host_port = u16::try_from(p.host_port?).ok().filter(|p| *p > 0)?;
                Some(PortMapping {
                    host_port,
                    container_port: u16::try_from(p.container_port).ok()?,
                    protocol: Protocol::from_api(p.protocol.as_deref().unwrap_or("TCP"))?,
                    host_ip: p.host_ip.as_deref().and_then(|ip| ip.parse().ok()),
                })
            })
            .collect();
        let request = SandboxRequest {
            uid: pod_uid(pod).to_string(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            hostname: spec.hostname.clone().unwrap_or_else(|| name.clone()),
            name,
            host_network: spec.host_network.unwrap_or(false),
            port_mappings,
        };
        let status = self
            .sandbox
            .ensure(&request)
            .await
            .map_err(|e| e.to_string())?;
        let warnings = self
            .pod_files
            .write(pod, &status)
            .map_err(|e| format!("cannot write the pod's hosts and DNS files: {e}"))?;
        for (reason, message) in warnings {
            result.events.push(PodEvent {
                warning: true,
                reason,
                message,
                field_path: None,
            });
        }
        self.lock_sandboxes().insert(request.uid, status.clone());
        Ok(status)
    }

    /// `/var/log/pods/NAMESPACE_NAME_UID/CONTAINER/ATTEMPT.log`, as upstream's BuildContainerLogsDirectory.
    pub fn log_path(&self, pod: &Pod, container: &str, attempt: i32) -> PathBuf {
        let meta = &pod.metadata;
        super::pod_logs::log_path(
            &self.pod_logs_dir,
            [
                meta.namespace.as_deref().unwrap_or_default(),
                meta.name.as_deref().unwrap_or_default(),
                pod_uid(pod),
            ],
            container,
            attempt,
        )
    }

    /// Removes every container of pod `uid`, its sandbox, cgroups and logs: the pod is gone.
    pub async fn remove_pod(&self, uid: &str, status: &PodRuntimeStatus) -> Result<(), String> {
        self.pull_backoff
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .forget(uid);
        for record in &status.containers {
            self.runtime
                .delete(&record.id)
                .await
                .map_err(|e| e.to_string())?;
            self.forget_container(&record.id);
        }
        crate::cgroups::remove_pod(uid).map_err(|e| e.to_string())?;
        super::pod_logs::remove_pod_logs(&self.pod_logs_dir, uid)?;
        // The sandbox last: while its state is on disk, housekeeping retries whatever failed before.
        self.release_sandbox(uid).await
    }

    /// Tears the pod's network down (a finished pod keeps its containers for logs and status).
    pub async fn release_sandbox(&self, uid: &str) -> Result<(), String> {
        self.sandbox.remove(uid).await.map_err(|e| e.to_string())?;
        self.lock_sandboxes().remove(uid);
        Ok(())
    }
}

fn to_timestamp(time: chrono::DateTime<chrono::Utc>) -> Option<Timestamp> {
    Timestamp::from_nanosecond(i128::from(time.timestamp_nanos_opt()?)).ok()
}

pub(super) fn pod_uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

/// `NAME_NAMESPACE(UID)`, how upstream names a pod in messages.
pub fn pod_description(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod_uid(pod)
    )
}

/// Go's Duration string for whole seconds (`10s`, `5m0s`).
fn go_seconds(d: Duration) -> String {
    component_base::config::GoDuration::from_std(d).to_string()
}
