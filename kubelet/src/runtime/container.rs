//! Containers and their tasks: the container record (spec + snapshot), the runc task started from it, its
//! exit, and removing all of it again.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use containerd_client::services::v1::container::Runtime as ContainerRuntime;
use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::{
    MountsRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteTaskRequest, GetContainerRequest, GetRequest, KillRequest, ListContainersRequest,
    StartRequest, UpdateContainerRequest, WaitRequest,
};
use containerd_client::tonic::Code;
use containerd_client::types::v1::Status;
use prost_types::Any;

use super::attach::{self, ContainerIo, Stdio};
use super::error::{Result, RuntimeError};
use super::image::ImageConfig;
use super::logs::{self, LogFile, Stream};
use super::{RUNC_RUNTIME, Runtime};

/// The Any type URL containerd stores OCI runtime specs under.
const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
/// How long [`Runtime::wait`] waits for the output copiers after the exit (the shim closes the FIFOs once
/// the container's output has ended; a child that keeps them open past the exit is not waited for).
const LOG_DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// A container record, as the kubelet rebuilds its view from after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSummary {
    /// The container ID.
    pub id: String,
    /// The image name it was created from.
    pub image: String,
    /// Its labels (pod UID, container name, ... as the kubelet set them).
    pub labels: HashMap<String, String>,
    /// When containerd created it (the CRI's `CreatedAt`, the container's start time in the stats).
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The state of a container's task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskStatus {
    /// Created, not started.
    Created,
    /// Running.
    Running,
    /// Exited (see the exit status).
    Stopped,
    /// Paused or pausing.
    Paused,
    /// containerd does not know.
    Unknown,
}

/// A task's state: status, pid, and the exit once stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskState {
    /// The status.
    pub status: TaskStatus,
    /// The process id of the container's init process (0 once gone).
    pub pid: u32,
    /// The exit, when stopped.
    pub exit: Option<ExitStatus>,
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitStatus {
    /// The exit code; 128 + the signal for a process killed by a signal (137 for SIGKILL).
    pub code: u32,
    /// When it exited.
    pub exited_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A protobuf timestamp as a UTC time.
pub(crate) fn timestamp(
    ts: Option<prost_types::Timestamp>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let ts = ts?;
    let nanos = u32::try_from(ts.nanos).ok()?;
    chrono::DateTime::from_timestamp(ts.seconds, nanos)
}

impl Runtime {
    /// Creates container `id` from `image` with OCI runtime spec `spec` and `labels`, and prepares its
    /// writable snapshot on the image's root filesystem. The task is not started.
    pub async fn create_container(
        &self,
        id: &str,
        image: &ImageConfig,
        spec: &serde_json::Value,
        labels: HashMap<String, String>,
    ) -> Result<()> {
        crate::metrics::runtime_operation("create_container");
        let mut snapshots = SnapshotsClient::new(self.channel.clone());
        let parent = snapshots
            .stat(self.request(StatSnapshotRequest {
                snapshotter: self.snapshotter.clone(),
                key: image.chain_id.clone(),
            }))
            .await;
        match parent {
            Ok(_) => {}
            Err(s) if s.code() == Code::NotFound => {
                return Err(RuntimeError::NotUnpacked {
                    image: image.name.clone(),
                    snapshotter: self.snapshotter.clone(),
                    chain_id: image.chain_id.clone(),
                });
            }
            Err(s) => return Err(RuntimeError::rpc("snapshots.Stat", &image.name, s)),
        }
        let spec_bytes = serde_json::to_vec(spec).map_err(|e| RuntimeError::Container {
            container: id.to_string(),
            message: format!("encoding the OCI spec: {e}"),
        })?;
        let container = Container {
            id: id.to_string(),
            labels,
            image: image.name.clone(),
            runtime: Some(ContainerRuntime {
                name: RUNC_RUNTIME.to_string(),
                options: None,
            }),
            spec: Some(Any {
                type_url: SPEC_TYPE_URL.to_string(),
                value: spec_bytes,
            }),
            snapshotter: self.snapshotter.clone(),
            snapshot_key: id.to_string(),
            ..Container::default()
        };
        // The record first: once it names the snapshot, containerd's garbage collector keeps the snapshot
        // (an unreferenced one could be collected between Prepare and Create without a lease).
        ContainersClient::new(self.channel.clone())
            .create(self.request(CreateContainerRequest {
                container: Some(container),
            }))
            .await
            .map_err(|s| RuntimeError::rpc("containers.Create", id, s))?;
        let prepared = snapshots
            .prepare(self.request(PrepareSnapshotRequest {
                snapshotter: self.snapshotter.clone(),
                key: id.to_string(),
                parent: image.chain_id.clone(),
                labels: HashMap::new(),
            }))
            .await;
        if let Err(s) = prepared {
            let _ = ContainersClient::new(self.channel.clone())
                .delete(self.request(DeleteContainerRequest { id: id.to_string() }))
                .await;
            return Err(RuntimeError::rpc("snapshots.Prepare", id, s));
        }
        Ok(())
    }

    /// Creates and starts container `id`'s task, its stdout and stderr appended to `log` in the CRI log
    /// format and offered to attachers, with a stdin and a terminal as `stdio` says; returns the pid.
    pub async fn start(&self, id: &str, log: &Path, stdio: Stdio) -> Result<u32> {
        crate::metrics::runtime_operation("start_container");
        let mounts = SnapshotsClient::new(self.channel.clone())
            .mounts(self.request(MountsRequest {
                snapshotter: self.snapshotter.clone(),
                key: id.to_string(),
            }))
            .await
            .map_err(|s| RuntimeError::rpc("snapshots.Mounts", id, s))?
            .into_inner()
            .mounts;
        let (stdout, stderr) = logs::fifo_paths(&self.fifo_dir, id);
        logs::make_fifo(id, &stdout)?;
        logs::make_fifo(id, &stderr)?;
        let stdin = if stdio.stdin {
            let path = attach::stdin_fifo_path(&self.fifo_dir, id);
            logs::make_fifo(id, &path)?;
            Some((attach::open_stdin(id, &path)?, path))
        } else {
            None
        };
        let log_file = LogFile::open(id, log)?;
        // Read ends before the task: the shim opens the write ends while creating it and waits for a reader.
        let out = logs::open_fifo(id, &stdout)?;
        let err = logs::open_fifo(id, &stderr)?;
        let mut tasks = TasksClient::new(self.channel.clone());
        tasks
            .create(
                self.request(CreateTaskRequest {
                    container_id: id.to_string(),
                    rootfs: mounts,
                    stdin: stdin
                        .as_ref()
                        .map(|(_, path)| path.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    stdout: stdout.to_string_lossy().into_owned(),
                    // On a terminal both outputs are the terminal's, copied to stdout (as containerd's CRI).
                    stderr: if stdio.tty {
                        String::new()
                    } else {
                        stderr.to_string_lossy().into_owned()
                    },
                    terminal: stdio.tty,
                    ..CreateTaskRequest::default()
                }),
            )
            .await
            .map_err(|s| RuntimeError::rpc("tasks.Create", id, s))?;
        // Only now does the shim hold the write ends, so reading sees end-of-file only when it closes them.
        self.spawn_copiers(id, out, err, log_file, stdin.map(|(writer, _)| writer));
        let started = tasks
            .start(self.request(StartRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
            }))
            .await;
        match started {
            Ok(started) => Ok(started.into_inner().pid),
            Err(status) => {
                // As containerd's CRI: a task that could not start is deleted, so nothing of it lingers.
                let deleted = tasks
                    .delete(self.request(DeleteTaskRequest {
                        container_id: id.to_string(),
                    }))
                    .await;
                if let Err(e) = deleted {
                    tracing::debug!(container = id, error = %e, "cannot delete the task that did not start");
                }
                Err(RuntimeError::rpc("tasks.Start", id, status))
            }
        }
    }

    /// After a kubelet restart: reads container `id`'s output FIFOs again, appending to `log`, and takes
    /// its stdin FIFO back if it has one.
    pub async fn reopen_logs(&self, id: &str, log: &Path) -> Result<()> {
        crate::metrics::runtime_operation("reopen_container_log");
        let (stdout, stderr) = logs::fifo_paths(&self.fifo_dir, id);
        if !stdout.exists() || !stderr.exists() {
            return Err(RuntimeError::Container {
                container: id.to_string(),
                message: format!("its output FIFOs are gone from {}", self.fifo_dir.display()),
            });
        }
        let log_file = LogFile::open(id, log)?;
        let out = logs::open_fifo(id, &stdout)?;
        let err = logs::open_fifo(id, &stderr)?;
        let stdin_path = attach::stdin_fifo_path(&self.fifo_dir, id);
        let stdin = if stdin_path.exists() {
            Some(attach::open_stdin(id, &stdin_path)?)
        } else {
            None
        };
        self.spawn_copiers(id, out, err, log_file, stdin);
        Ok(())
    }

    fn spawn_copiers(
        &self,
        id: &str,
        out: tokio::net::unix::pipe::Receiver,
        err: tokio::net::unix::pipe::Receiver,
        log: LogFile,
        stdin: Option<tokio::net::unix::pipe::Sender>,
    ) {
        let (live_out, live_err) = (attach::live_stream(), attach::live_stream());
        self.io.lock().unwrap_or_else(|e| e.into_inner()).insert(
            id.to_string(),
            ContainerIo::new(&live_out, &live_err, stdin),
        );
        let handles = vec![
            tokio::spawn(logs::copy_stream(
                out,
                Stream::Stdout,
                log.clone(),
                live_out,
            )),
            tokio::spawn(logs::copy_stream(err, Stream::Stderr, log, live_err)),
        ];
        let mut copiers = self.copiers.lock().unwrap_or_else(|e| e.into_inner());
        copiers.entry(id.to_string()).or_default().extend(handles);
    }

    /// Waits (bounded) until container `id`'s output has reached its log file.
    async fn drain_logs(&self, id: &str) {
        let handles = {
            let mut copiers = self.copiers.lock().unwrap_or_else(|e| e.into_inner());
            copiers.remove(id).unwrap_or_default()
        };
        for handle in handles {
            let abort = handle.abort_handle();
            if tokio::time::timeout(LOG_DRAIN_LIMIT, handle).await.is_err() {
                abort.abort();
            }
        }
    }

    /// Sends `signal` to container `id`'s init process.
    pub async fn kill(&self, id: &str, signal: u32) -> Result<()> {
        crate::metrics::runtime_operation("stop_container");
        TasksClient::new(self.channel.clone())
            .kill(self.request(KillRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
                signal,
                all: false,
            }))
            .await
            .map_err(|s| RuntimeError::rpc("tasks.Kill", id, s))?;
        Ok(())
    }

    /// Waits until container `id`'s task exits and its output has reached the log; returns the exit.
    pub async fn wait(&self, id: &str) -> Result<ExitStatus> {
        let response = TasksClient::new(self.channel.clone())
            .wait(self.request(WaitRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
            }))
            .await
            .map_err(|s| RuntimeError::rpc("tasks.Wait", id, s))?
            .into_inner();
        self.drain_logs(id).await;
        Ok(ExitStatus {
            code: response.exit_status,
            exited_at: timestamp(response.exited_at),
        })
    }

    /// The state of container `id`'s task; `None` when it has no task (never started, or deleted).
    pub async fn task_state(&self, id: &str) -> Result<Option<TaskState>> {
        crate::metrics::runtime_operation("container_status");
        let response = TasksClient::new(self.channel.clone())
            .get(self.request(GetRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
            }))
            .await;
        let process = match response {
            Ok(r) => r.into_inner().process,
            Err(s) if s.code() == Code::NotFound => return Ok(None),
            Err(s) => return Err(RuntimeError::rpc("tasks.Get", id, s)),
        };
        let Some(process) = process else {
            return Ok(None);
        };
        let status = match Status::try_from(process.status).unwrap_or(Status::Unknown) {
            Status::Created => TaskStatus::Created,
            Status::Running => TaskStatus::Running,
            Status::Stopped => TaskStatus::Stopped,
            Status::Paused | Status::Pausing => TaskStatus::Paused,
            Status::Unknown => TaskStatus::Unknown,
        };
        let exit = (status == TaskStatus::Stopped).then(|| ExitStatus {
            code: process.exit_status,
            exited_at: timestamp(process.exited_at),
        });
        Ok(Some(TaskState {
            status,
            pid: process.pid,
            exit,
        }))
    }

    /// Removes container `id` entirely: its task (killed with SIGKILL if still running), the container
    /// record, its snapshot and its FIFOs. Parts already gone are skipped, so it can be called again.
    pub async fn delete(&self, id: &str) -> Result<()> {
        crate::metrics::runtime_operation("remove_container");
        let mut tasks = TasksClient::new(self.channel.clone());
        if let Some(state) = self.task_state(id).await?
            && matches!(state.status, TaskStatus::Running | TaskStatus::Paused)
        {
            match self.kill(id, libc::SIGKILL as u32).await {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
            self.wait(id).await?;
        }
        let deleted = tasks
            .delete(self.request(DeleteTaskRequest {
                container_id: id.to_string(),
            }))
            .await;
        match deleted {
            Ok(_) => {}
            Err(s) if s.code() == Code::NotFound => {}
            Err(s) => return Err(RuntimeError::rpc("tasks.Delete", id, s)),
        }
        self.drain_logs(id).await;
        self.io.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
        let deleted = ContainersClient::new(self.channel.clone())
            .delete(self.request(DeleteContainerRequest { id: id.to_string() }))
            .await;
        match deleted {
            Ok(_) => {}
            Err(s) if s.code() == Code::NotFound => {}
            Err(s) => return Err(RuntimeError::rpc("containers.Delete", id, s)),
        }
        let removed = SnapshotsClient::new(self.channel.clone())
            .remove(self.request(RemoveSnapshotRequest {
                snapshotter: self.snapshotter.clone(),
                key: id.to_string(),
            }))
            .await;
        match removed {
            Ok(_) => {}
            Err(s) if s.code() == Code::NotFound => {}
            Err(s) => return Err(RuntimeError::rpc("snapshots.Remove", id, s)),
        }
        let (stdout, stderr) = logs::fifo_paths(&self.fifo_dir, id);
        for fifo in [stdout, stderr, attach::stdin_fifo_path(&self.fifo_dir, id)] {
            match std::fs::remove_file(&fifo) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(RuntimeError::Io {
                        container: id.to_string(),
                        path: fifo,
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// Sets label `key` of container `id` to `value`, its other labels kept: what the kubelet must still
    /// know about a container after a restart.
    pub async fn set_label(&self, id: &str, key: &str, value: &str) -> Result<()> {
        self.set_labels(id, &[(key, value)]).await
    }

    /// Sets the `labels` of container `id` in one update, its other labels kept.
    pub async fn set_labels(&self, id: &str, labels: &[(&str, &str)]) -> Result<()> {
        crate::metrics::runtime_operation("update_container");
        let container = Container {
            id: id.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Container::default()
        };
        ContainersClient::new(self.channel.clone())
            .update(self.request(UpdateContainerRequest {
                container: Some(container),
                update_mask: Some(prost_types::FieldMask {
                    paths: labels.iter().map(|(k, _)| format!("labels.{k}")).collect(),
                }),
            }))
            .await
            .map_err(|s| RuntimeError::rpc("containers.Update", id, s))?;
        Ok(())
    }

    /// Whether container record `id` exists.
    pub async fn container_exists(&self, id: &str) -> Result<bool> {
        let found = ContainersClient::new(self.channel.clone())
            .get(self.request(GetContainerRequest { id: id.to_string() }))
            .await;
        match found {
            Ok(_) => Ok(true),
            Err(s) if s.code() == Code::NotFound => Ok(false),
            Err(s) => Err(RuntimeError::rpc("containers.Get", id, s)),
        }
    }

    /// The labels of container record `id`; `None` when there is no such container.
    pub async fn container_labels(&self, id: &str) -> Result<Option<HashMap<String, String>>> {
        let found = ContainersClient::new(self.channel.clone())
            .get(self.request(GetContainerRequest { id: id.to_string() }))
            .await;
        match found {
            Ok(r) => Ok(r.into_inner().container.map(|c| c.labels)),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(RuntimeError::rpc("containers.Get", id, s)),
        }
    }

    /// Every container in the namespace, with its labels.
    pub async fn list_containers(&self) -> Result<Vec<ContainerSummary>> {
        crate::metrics::runtime_operation("list_containers");
        self.list_filtered(Vec::new(), "all containers").await
    }

    /// The containers whose label `key` is `value` (containerd filters them: a pod's sync reads only its
    /// own containers, not every container's record and OCI spec).
    pub async fn list_containers_labelled(
        &self,
        key: &str,
        value: &str,
    ) -> Result<Vec<ContainerSummary>> {
        crate::metrics::runtime_operation("list_containers");
        let filter = label_filter(key, value);
        self.list_filtered(vec![filter.clone()], &filter).await
    }

    async fn list_filtered(
        &self,
        filters: Vec<String>,
        what: &str,
    ) -> Result<Vec<ContainerSummary>> {
        let containers = ContainersClient::new(self.channel.clone())
            .list(self.request(ListContainersRequest { filters }))
            .await
            .map_err(|s| RuntimeError::rpc("containers.List", what, s))?
            .into_inner()
            .containers;
        Ok(containers
            .into_iter()
            .map(|c| ContainerSummary {
                id: c.id,
                image: c.image,
                labels: c.labels,
                created_at: timestamp(c.created_at),
            })
            .collect())
    }
}

/// containerd's filter for label `key` equal to `value`, both quoted (keys hold dots, values dashes).
fn label_filter(key: &str, value: &str) -> String {
    let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    format!("labels.\"{}\"==\"{}\"", quote(key), quote(value))
}

#[cfg(test)]
mod tests {
    use super::label_filter;

    #[test]
    fn label_filters_quote_key_and_value() {
        assert_eq!(
            label_filter("io.kubernetes.pod.uid", "1b2-c3"),
            r#"labels."io.kubernetes.pod.uid"=="1b2-c3""#
        );
        assert_eq!(label_filter("k", r#"a"b"#), r#"labels."k"=="a\"b""#);
    }
}
