//! Starting one container (upstream's startContainer): its image, the environment's sources, the OCI spec
//! from pod and image, then create and start on containerd, each failure reported with upstream's reason.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::jiff::Timestamp;

use super::container_spec::{SandboxNamespaces, SpecInputs, container_spec};
use super::env::{fetch_env_sources, service_env};
use super::lifecycle::POST_START_LIMIT;
use super::manager::{PodEvent, RuntimeManager, SyncResult, pod_description, pod_uid};
use super::record::{
    ContainerRecord, LABEL_STARTED_AT, LABEL_TERMINATION_MESSAGE_FILE,
    LABEL_TERMINATION_MESSAGE_POLICY, RecordState, container_labels,
};
use super::stop::termination_grace;
use crate::pod_spec::field_path;
use crate::runtime::Stdio;
use crate::runtime::reference;
use crate::runtime::spec::{self, BindMount, NamespaceMode};
use crate::sandbox::SandboxStatus;
use crate::volumemanager::PodVolumes;

impl RuntimeManager {
    pub(super) async fn start_container(
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
        let mut env_sources = match fetch_env_sources(&self.client, pod, container).await {
            Ok(sources) => sources,
            Err(e) => {
                tracing::warn!(pod = %pod_description(pod), error = %e, "cannot read the environment's sources");
                result.requeue_after = Some(Duration::from_secs(5));
                return;
            }
        };
        env_sources.services = match service_env(&self.services, pod) {
            Ok(vars) => vars,
            Err(e) => {
                let failed = event(true, "Failed", String::new());
                step_failed(
                    result,
                    failed,
                    &container.name,
                    "CreateContainerConfigError",
                    e,
                );
                result.requeue_after = Some(CONFIG_ERROR_RETRY);
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
        let mut container_spec = match container_spec(&pod_with_ip, container, &inputs) {
            Ok(spec) => spec,
            Err(e) => {
                let failed = event(true, "Failed", String::new());
                step_failed(
                    result,
                    failed,
                    &container.name,
                    "CreateContainerConfigError",
                    e,
                );
                result.requeue_after = Some(CONFIG_ERROR_RETRY);
                return;
            }
        };
        container_spec
            .mounts
            .extend(self.pod_files.mounts(uid, container));
        let message_path = container
            .termination_message_path
            .as_deref()
            .unwrap_or(DEFAULT_TERMINATION_MESSAGE_PATH);
        let message_file = if message_path.is_empty() {
            None
        } else {
            match self
                .pod_files
                .termination_message_file(uid, &container.name)
            {
                Ok(file) => {
                    container_spec.mounts.push(BindMount {
                        source: file.clone(),
                        destination: message_path.to_string(),
                        read_only: false,
                    });
                    Some(file)
                }
                Err(e) => {
                    let failed = event(true, "Failed", String::new());
                    let message = format!("create termination-log file: {e}");
                    step_failed(
                        result,
                        failed,
                        &container.name,
                        "CreateContainerConfigError",
                        message,
                    );
                    return;
                }
            }
        };
        let oci = spec::build(&container_spec);
        let mut labels = container_labels(
            uid,
            pod.metadata.name.as_deref().unwrap_or_default(),
            pod.metadata.namespace.as_deref().unwrap_or_default(),
            &container.name,
            attempt,
        );
        labels.insert(
            LABEL_TERMINATION_MESSAGE_POLICY.to_string(),
            container
                .termination_message_policy
                .clone()
                .unwrap_or_else(|| "File".to_string()),
        );
        if let Some(file) = message_file {
            labels.insert(
                LABEL_TERMINATION_MESSAGE_FILE.to_string(),
                file.to_string_lossy().into_owned(),
            );
        }
        if let Err(e) = self
            .runtime
            .create_container(&id, &image, &oci, labels)
            .await
        {
            let failed = event(true, "Failed", String::new());
            step_failed(result, failed, &container.name, "CreateContainerError", e);
            return;
        }
        result.events.push(event(
            false,
            "Created",
            format!("Created container: {}", container.name),
        ));
        let log = self.log_path(pod, &container.name, attempt);
        let stdio = Stdio {
            stdin: container.stdin.unwrap_or(false),
            tty: container.tty.unwrap_or(false),
        };
        match self.runtime.start(&id, &log, stdio).await {
            Ok(pid) => {
                // The process's own start time, which a restarted kubelet reads back the same way.
                let at = super::start_time::process_start_time(pid).unwrap_or_else(Timestamp::now);
                self.started
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id.clone(), at);
                // Once the process is gone /proc cannot tell; the label can. Off the start's path.
                let runtime = self.runtime.clone();
                let labelled = id.clone();
                tokio::spawn(async move {
                    let at = at.to_string();
                    if let Err(e) = runtime.set_label(&labelled, LABEL_STARTED_AT, &at).await {
                        tracing::debug!(container = %labelled, error = %e, "cannot label the start time");
                    }
                });
                result.events.push(event(
                    false,
                    "Started",
                    format!("Started container {}", container.name),
                ));
                let record = ContainerRecord {
                    id,
                    name: container.name.clone(),
                    attempt,
                    image: image.name.clone(),
                    image_id: image.id.clone(),
                    state: RecordState::Running { started_at: at },
                };
                self.post_start(pod, container, &record, result).await;
            }
            Err(e) => {
                let failed = event(true, "Failed", String::new());
                let message = format!("failed to start container \"{}\": {e}", container.name);
                self.record_start_failure(&id, &message).await;
                step_failed(
                    result,
                    failed,
                    &container.name,
                    "RunContainerError",
                    message,
                );
            }
        }
    }
}

impl RuntimeManager {
    /// Runs the container's postStart hook; when it fails the container is killed (and restarted by its
    /// restart policy later) and shows upstream's PostStartHookError.
    async fn post_start(
        &self,
        pod: &Pod,
        container: &Container,
        record: &ContainerRecord,
        result: &mut SyncResult,
    ) {
        let Some(hook) = container
            .lifecycle
            .as_ref()
            .and_then(|l| l.post_start.as_ref())
        else {
            return;
        };
        let Err(message) = self
            .run_handler(pod, container, &record.id, hook, POST_START_LIMIT)
            .await
        else {
            return;
        };
        tracing::warn!(pod = %pod_description(pod), container = %container.name, %message, "Failed to execute PostStartHook");
        let spec = pod.spec.clone().unwrap_or_default();
        result.events.push(PodEvent {
            warning: true,
            reason: "FailedPostStartHook",
            message: "PostStartHook failed".to_string(),
            field_path: Some(field_path(&spec, &container.name)),
        });
        let killed = self
            .kill_container(
                pod,
                record,
                Some("FailedPostStartHook".to_string()),
                termination_grace(pod, None),
            )
            .await;
        result.events.extend(killed);
        result.waiting.insert(
            container.name.clone(),
            ("PostStartHookError".to_string(), message),
        );
    }
}

/// A start step failed, reported as upstream's startContainer does: the `failed` event says "Error:
/// MESSAGE", the container waits with `reason` and MESSAGE.
fn step_failed(
    result: &mut SyncResult,
    mut failed: PodEvent,
    container: &str,
    reason: &str,
    message: impl std::fmt::Display,
) {
    let message = message.to_string();
    failed.message = format!("Error: {message}");
    result.events.push(failed);
    result
        .waiting
        .insert(container.to_string(), (reason.to_string(), message));
}

/// How soon a container whose configuration could not be made is tried again (upstream's pod worker
/// back-off after a failed sync).
const CONFIG_ERROR_RETRY: Duration = Duration::from_secs(10);

/// Where a container's termination message goes unless its spec says otherwise (the API's default).
const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";

/// A fresh container id: 64 hex digits, as containerd's CRI makes them.
fn container_id() -> String {
    (0..4)
        .map(|_| format!("{:016x}", rand::random::<u64>()))
        .collect()
}
