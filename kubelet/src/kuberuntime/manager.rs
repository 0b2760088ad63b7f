//! Doing what [`compute_pod_actions`] decided, on containerd and the pod's sandbox (upstream's
//! kubeGenericRuntimeManager): reading a pod's containers back, starting containers, and stopping pods.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Client;

use super::actions::{backoff_delay, compute_pod_actions};
use super::container_spec::{SandboxNamespaces, SpecInputs, container_spec};
use super::env::fetch_env_sources;
use super::image_pull::PullBackOff;
use super::record::{
    ContainerRecord, LABEL_ATTEMPT, LABEL_CONTAINER_NAME, LABEL_POD_UID, PodRuntimeStatus,
    RecordState, container_labels, exit_reason,
};
use crate::runtime::spec::{self, NamespaceMode};
use crate::runtime::{Runtime, RuntimeError, TaskStatus, reference};
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
    runtime: Runtime,
    sandbox: Sandbox,
    /// Reads the ConfigMaps and Secrets containers' environments name.
    client: Client,
    pod_logs_dir: PathBuf,
    /// Start times of running containers; containerd keeps none (after a restart they are unknown).
    started: Mutex<HashMap<String, Timestamp>>,
    /// Sandboxes made by this process.
    sandboxes: Mutex<HashMap<String, SandboxStatus>>,
    /// Image pulls that failed, backing off.
    pull_backoff: Mutex<PullBackOff>,
}

impl RuntimeManager {
    /// A manager over `runtime` and `sandbox`, writing container logs under `pod_logs_dir`.
    pub fn new(runtime: Runtime, sandbox: Sandbox, client: Client, pod_logs_dir: &Path) -> Self {
        Self {
            runtime,
            sandbox,
            client,
            pod_logs_dir: pod_logs_dir.to_path_buf(),
            started: Mutex::default(),
            sandboxes: Mutex::default(),
            pull_backoff: Mutex::default(),
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
        for summary in self.runtime.list_containers().await? {
            if summary.labels.get(LABEL_POD_UID).map(String::as_str) != Some(uid) {
                continue;
            }
            let state = match self.runtime.task_state(&summary.id).await? {
                None => RecordState::Created,
                Some(task) => match (task.status, task.exit) {
                    (TaskStatus::Stopped, Some(exit)) => {
                        let code = i32::try_from(exit.code).unwrap_or(i32::MAX);
                        RecordState::Exited {
                            exit_code: code,
                            reason: exit_reason(code, false).to_string(),
                            started_at: self.started_at(&summary.id),
                            finished_at: exit
                                .exited_at
                                .and_then(to_timestamp)
                                .unwrap_or_else(Timestamp::now),
                        }
                    }
                    (TaskStatus::Created, _) => RecordState::Created,
                    _ => RecordState::Running {
                        started_at: self.started_at(&summary.id).unwrap_or_else(Timestamp::now),
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

    fn started_at(&self, id: &str) -> Option<Timestamp> {
        self.started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .copied()
    }

    fn lock_sandboxes(&self) -> std::sync::MutexGuard<'_, HashMap<String, SandboxStatus>> {
        self.sandboxes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Brings pod's containers to what its spec and restart policy want (upstream's SyncPod), their
    /// volumeMounts bound from `volumes`.
    pub async fn sync_pod(
        &self,
        pod: &Pod,
        status: &PodRuntimeStatus,
        volumes: &PodVolumes,
    ) -> SyncResult {
        let mut result = SyncResult::default();
        let Some(spec) = pod.spec.as_ref() else {
            return result;
        };
        let actions = compute_pod_actions(spec, status, Timestamp::now());
        if actions.kill_pod {
            self.stop_containers(pod, status, Duration::ZERO, &mut result)
                .await;
            return result;
        }
        let sandbox = if actions.create_sandbox {
            match self.ensure_sandbox(pod).await {
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
        let all: Vec<&Container> = spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
            .collect();
        for name in &actions.start {
            let Some(container) = all.iter().find(|c| &c.name == name) else {
                continue;
            };
            let attempt = status.latest(name).map_or(0, |c| c.attempt + 1);
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

    async fn ensure_sandbox(&self, pod: &Pod) -> Result<SandboxStatus, String> {
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
        self.lock_sandboxes().insert(request.uid, status.clone());
        Ok(status)
    }

    async fn start_container(
        &self,
        pod: &Pod,
        container: &Container,
        attempt: i32,
        sandbox: &SandboxStatus,
        volumes: &PodVolumes,
        result: &mut SyncResult,
    ) {
        let spec = pod.spec.clone().unwrap_or_default();
        let path = field_path(&spec, &container.name);
        let event = |warning, reason, message: String| PodEvent {
            warning,
            reason,
            message,
            field_path: Some(path.clone()),
        };
        let requested = container.image.clone().unwrap_or_default();
        let image = match reference::normalize(&requested) {
            Ok(name) => self.runtime.image(&name).await.ok().flatten(),
            Err(_) => None,
        };
        let Some(image) = image else {
            let policy = container
                .image_pull_policy
                .as_deref()
                .unwrap_or("IfNotPresent");
            let missing = self
                .pull_backoff
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .missing(pod_uid(pod), &requested, policy, Instant::now());
            for (warning, reason, message) in missing.events {
                result.events.push(event(warning, reason, message));
            }
            result.waiting.insert(
                container.name.clone(),
                (missing.reason.to_string(), missing.message),
            );
            let next = result
                .requeue_after
                .map_or(missing.retry_after, |r| r.min(missing.retry_after));
            result.requeue_after = Some(next);
            return;
        };
        result.events.push(event(
            false,
            "Pulled",
            format!("Container image \"{requested}\" already present on machine"),
        ));
        let uid = pod_uid(pod);
        let id = container_id();
        let host_network = spec.host_network.unwrap_or(false);
        let join = |path: &Option<PathBuf>| {
            path.clone()
                .map_or(NamespaceMode::Host, NamespaceMode::Join)
        };
        let namespaces = SandboxNamespaces {
            network: if host_network {
                NamespaceMode::Host
            } else {
                join(&sandbox.netns_path)
            },
            ipc: join(&sandbox.ipc_path),
            uts: join(&sandbox.uts_path),
            hostname: None,
        };
        let cgroup_parent = format!(
            "/kubepods/{}/pod{uid}",
            crate::status::qos::qos_class(&spec).to_lowercase()
        );
        let env_sources = match fetch_env_sources(&self.client, pod, container).await {
            Ok(sources) => sources,
            Err(e) => {
                tracing::warn!(pod = %pod_description(pod), error = %e, "cannot read the environment's sources");
                result.requeue_after = Some(Duration::from_secs(5));
                return;
            }
        };
        // status.podIP in the environment is the sandbox's, as the pod's status may not say it yet.
        let mut pod_with_ip = pod.clone();
        if let Some(ip) = sandbox.ips.first() {
            pod_with_ip
                .status
                .get_or_insert_with(Default::default)
                .pod_ip = Some(ip.to_string());
        }
        let inputs = SpecInputs {
            image: &image,
            sandbox: &namespaces,
            volumes,
            env_sources: &env_sources,
            cgroup_parent: &cgroup_parent,
            id: &id,
        };
        let container_spec = match container_spec(&pod_with_ip, container, &inputs) {
            Ok(spec) => spec,
            Err(e) => {
                let message = format!("Error: {e}");
                result.events.push(event(true, "Failed", message.clone()));
                result.waiting.insert(
                    container.name.clone(),
                    ("CreateContainerConfigError".to_string(), message),
                );
                result.requeue_after = Some(Duration::from_secs(10));
                return;
            }
        };
        let oci = spec::build(&container_spec);
        let labels = container_labels(
            uid,
            pod.metadata.name.as_deref().unwrap_or_default(),
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            &container.name,
            attempt,
        );
        if let Err(e) = self
            .runtime
            .create_container(&id, &image, &oci, labels)
            .await
        {
            let message = format!("Error: {e}");
            result.events.push(event(true, "Failed", message.clone()));
            result.waiting.insert(
                container.name.clone(),
                ("CreateContainerError".to_string(), message),
            );
            return;
        }
        result.events.push(event(
            false,
            "Created",
            format!("Created container: {}", container.name),
        ));
        let log = self.log_path(pod, &container.name, attempt);
        match self.runtime.start(&id, &log).await {
            Ok(_) => {
                self.started
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id, Timestamp::now());
                result.events.push(event(
                    false,
                    "Started",
                    format!("Started container {}", container.name),
                ));
            }
            Err(e) => {
                let message = format!(
                    "Error: failed to start container \"{}\": {e}",
                    container.name
                );
                result.events.push(event(true, "Failed", message.clone()));
                result.waiting.insert(
                    container.name.clone(),
                    ("RunContainerError".to_string(), message),
                );
            }
        }
    }

    /// `/var/log/pods/NAMESPACE_NAME_UID/CONTAINER/ATTEMPT.log`, as upstream's BuildContainerLogsDirectory.
    pub fn log_path(&self, pod: &Pod, container: &str, attempt: i32) -> PathBuf {
        self.pod_logs_dir
            .join(format!(
                "{}_{}_{}",
                pod.metadata.namespace.as_deref().unwrap_or_default(),
                pod.metadata.name.as_deref().unwrap_or_default(),
                pod_uid(pod)
            ))
            .join(container)
            .join(format!("{attempt}.log"))
    }

    /// Stops every running container of the pod: the stop signal, `grace` to exit, then SIGKILL.
    pub async fn stop_containers(
        &self,
        pod: &Pod,
        status: &PodRuntimeStatus,
        grace: Duration,
        result: &mut SyncResult,
    ) {
        let spec = pod.spec.clone().unwrap_or_default();
        let running: Vec<&ContainerRecord> = status
            .containers
            .iter()
            .filter(|c| c.is_running())
            .collect();
        let stops = running.iter().map(|record| async {
            stop_container(&self.runtime, record, grace).await;
        });
        for record in &running {
            result.events.push(PodEvent {
                warning: false,
                reason: "Killing",
                message: format!("Stopping container {}", record.name),
                field_path: Some(field_path(&spec, &record.name)),
            });
        }
        futures::future::join_all(stops).await;
    }

    /// Removes every container of pod `uid` and its sandbox: the pod is gone.
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
            self.started
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&record.id);
        }
        self.release_sandbox(uid).await
    }

    /// Tears the pod's network down (a finished pod keeps its containers for logs and status).
    pub async fn release_sandbox(&self, uid: &str) -> Result<(), String> {
        self.sandbox.remove(uid).await.map_err(|e| e.to_string())?;
        self.lock_sandboxes().remove(uid);
        Ok(())
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

fn to_timestamp(time: chrono::DateTime<chrono::Utc>) -> Option<Timestamp> {
    Timestamp::from_nanosecond(i128::from(time.timestamp_nanos_opt()?)).ok()
}

fn pod_uid(pod: &Pod) -> &str {
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

/// The field path events about a container carry.
fn field_path(spec: &k8s_openapi::api::core::v1::PodSpec, name: &str) -> String {
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .any(|c| c.name == name);
    if init {
        format!("spec.initContainers{{{name}}}")
    } else {
        format!("spec.containers{{{name}}}")
    }
}

/// A fresh container id: 64 hex digits, as containerd's CRI makes them.
fn container_id() -> String {
    (0..4)
        .map(|_| format!("{:016x}", rand::random::<u64>()))
        .collect()
}

/// Go's Duration string for whole seconds (`10s`, `5m0s`).
fn go_seconds(d: Duration) -> String {
    component_base::config::GoDuration::from_std(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_signals_parse_as_images_write_them() {
        assert_eq!(signal_number("SIGQUIT"), Some(libc::SIGQUIT));
        assert_eq!(signal_number("WINCH"), Some(libc::SIGWINCH));
        assert_eq!(signal_number("15"), Some(15));
        assert_eq!(signal_number(""), None);
        assert_eq!(signal_number("SIGNOPE"), None);
    }
}
