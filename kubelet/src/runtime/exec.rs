//! Running a command in a running container (exec probes and lifecycle hooks): a process added to the
//! container's task with the container's own process settings, its output collected through FIFOs.

use std::path::PathBuf;
use std::time::Duration;

use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::{
    DeleteProcessRequest, ExecProcessRequest, GetContainerRequest, KillRequest, StartRequest,
    WaitRequest,
};
use prost_types::Any;
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

use super::error::{Result, RuntimeError};
use super::{Runtime, logs};

/// The Any type URL containerd expects an exec process's OCI spec under.
const PROCESS_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";
/// How much output an exec keeps, as upstream's exec prober (10 KiB); the rest is read and dropped.
pub const MAX_EXEC_OUTPUT: usize = 10 * 1024;
/// How long the output is read after the process exited (a child it left may hold the FIFOs open).
const OUTPUT_DRAIN_LIMIT: Duration = Duration::from_millis(500);

/// What a command run in a container did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Its exit code (128 + the signal when killed by one).
    pub exit_code: i32,
    /// Its stdout and stderr as they came, at most [`MAX_EXEC_OUTPUT`] bytes.
    pub output: Vec<u8>,
}

impl Runtime {
    /// Runs `argv` in running container `id` as the container's own process would run (user, env,
    /// working directory, capabilities), waiting at most `timeout`; a process still running then is
    /// killed and [`RuntimeError::ExecTimeout`] returned.
    pub async fn exec(&self, id: &str, argv: &[String], timeout: Duration) -> Result<ExecOutput> {
        crate::metrics::runtime_operation("exec_sync");
        let exec_id = format!("exec-{:016x}", rand::random::<u64>());
        let process = self.exec_process_spec(id, argv).await?;
        let fifo = |stream: &str| {
            self.fifo_dir
                .join(format!("{id}-{exec_id}-{stream}"))
                .to_string_lossy()
                .into_owned()
        };
        let (stdout, stderr) = (fifo("stdout"), fifo("stderr"));
        let _cleanup = RemoveOnDrop(vec![PathBuf::from(&stdout), PathBuf::from(&stderr)]);
        let mut readers = Vec::new();
        for path in [&stdout, &stderr] {
            let path = PathBuf::from(path);
            logs::make_fifo(id, &path)?;
            readers.push(logs::open_fifo(id, &path)?);
        }
        let mut tasks = TasksClient::new(self.channel.clone());
        tasks
            .exec(self.request(ExecProcessRequest {
                container_id: id.to_string(),
                stdin: String::new(),
                stdout,
                stderr,
                terminal: false,
                spec: Some(process),
                exec_id: exec_id.clone(),
            }))
            .await
            .map_err(|s| RuntimeError::rpc("tasks.Exec", id, s))?;
        let collected = tokio::spawn(collect_output(readers));
        let outcome = self.run_exec(id, &exec_id, argv, timeout).await;
        let output = match tokio::time::timeout(OUTPUT_DRAIN_LIMIT, collected).await {
            Ok(Ok(output)) => output,
            _ => Vec::new(),
        };
        let _ = tasks
            .delete_process(self.request(DeleteProcessRequest {
                container_id: id.to_string(),
                exec_id,
            }))
            .await;
        Ok(ExecOutput {
            exit_code: outcome?,
            output,
        })
    }

    /// Starts exec `exec_id` and waits for its exit code, killing it after `timeout`.
    async fn run_exec(
        &self,
        id: &str,
        exec_id: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<i32> {
        let mut tasks = TasksClient::new(self.channel.clone());
        // Wait before Start, so an exit that comes at once is not missed.
        let wait = {
            let mut tasks = tasks.clone();
            let request = self.request(WaitRequest {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
            });
            tokio::spawn(async move { tasks.wait(request).await })
        };
        tasks
            .start(self.request(StartRequest {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
            }))
            .await
            .map_err(|s| RuntimeError::rpc("tasks.Start", id, s))?;
        match tokio::time::timeout(timeout, wait).await {
            Ok(Ok(Ok(response))) => {
                Ok(i32::try_from(response.into_inner().exit_status).unwrap_or(i32::MAX))
            }
            Ok(Ok(Err(status))) => Err(RuntimeError::rpc("tasks.Wait", id, status)),
            Ok(Err(join)) => Err(RuntimeError::Container {
                container: id.to_string(),
                message: format!("waiting for exec {exec_id}: {join}"),
            }),
            Err(_) => {
                let _ = tasks
                    .kill(self.request(KillRequest {
                        container_id: id.to_string(),
                        exec_id: exec_id.to_string(),
                        signal: libc::SIGKILL as u32,
                        all: false,
                    }))
                    .await;
                Err(RuntimeError::ExecTimeout {
                    command: argv.join(" "),
                    timeout: component_base::config::GoDuration::from_std(timeout).to_string(),
                })
            }
        }
    }

    /// The container's own OCI process with `argv` as its arguments and no terminal.
    async fn exec_process_spec(&self, id: &str, argv: &[String]) -> Result<Any> {
        let container = ContainersClient::new(self.channel.clone())
            .get(self.request(GetContainerRequest { id: id.to_string() }))
            .await
            .map_err(|s| RuntimeError::rpc("containers.Get", id, s))?
            .into_inner()
            .container
            .and_then(|c| c.spec)
            .ok_or_else(|| RuntimeError::Container {
                container: id.to_string(),
                message: "it has no OCI spec".to_string(),
            })?;
        let bad_spec = |message: String| RuntimeError::Container {
            container: id.to_string(),
            message,
        };
        let spec: serde_json::Value = serde_json::from_slice(&container.value)
            .map_err(|e| bad_spec(format!("its OCI spec does not parse: {e}")))?;
        let process = exec_process(&spec, argv)
            .ok_or_else(|| bad_spec("its OCI spec has no process".to_string()))?;
        let value = serde_json::to_vec(&process)
            .map_err(|e| bad_spec(format!("encoding the exec process: {e}")))?;
        Ok(Any {
            type_url: PROCESS_TYPE_URL.to_string(),
            value,
        })
    }
}

/// The container spec's process with `argv` as its arguments, no terminal and no console size.
fn exec_process(spec: &serde_json::Value, argv: &[String]) -> Option<serde_json::Value> {
    let mut process = spec.get("process")?.clone();
    let fields = process.as_object_mut()?;
    fields.insert("args".to_string(), serde_json::json!(argv));
    fields.insert("terminal".to_string(), serde_json::Value::Bool(false));
    fields.remove("consoleSize");
    Some(process)
}

/// Reads every FIFO to its end, keeping the first [`MAX_EXEC_OUTPUT`] bytes in arrival order.
async fn collect_output(readers: Vec<pipe::Receiver>) -> Vec<u8> {
    let (sender, mut chunks) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    for mut reader in readers {
        let sender = sender.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => {
                        if sender.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        });
    }
    drop(sender);
    let mut output = Vec::new();
    while let Some(chunk) = chunks.recv().await {
        let room = MAX_EXEC_OUTPUT.saturating_sub(output.len());
        output.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    output
}

/// Removes the exec's FIFOs however it ends.
struct RemoveOnDrop(Vec<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exec_process_is_the_containers_with_new_args() {
        let spec = serde_json::json!({
            "process": {
                "args": ["sleep", "3600"],
                "env": ["PATH=/bin"],
                "cwd": "/work",
                "user": {"uid": 1000, "gid": 1000},
                "terminal": true,
                "consoleSize": {"height": 10, "width": 10}
            }
        });
        let argv = vec!["cat".to_string(), "/tmp/healthy".to_string()];
        let process = exec_process(&spec, &argv).unwrap();
        assert_eq!(process["args"], serde_json::json!(["cat", "/tmp/healthy"]));
        assert_eq!(process["env"], serde_json::json!(["PATH=/bin"]));
        assert_eq!(process["cwd"], "/work");
        assert_eq!(process["user"]["uid"], 1000);
        assert_eq!(process["terminal"], false);
        assert!(process.get("consoleSize").is_none());
        assert!(exec_process(&serde_json::json!({}), &argv).is_none());
    }

    #[tokio::test]
    async fn output_is_capped_and_read_to_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        logs::make_fifo("c", &path).unwrap();
        let reader = logs::open_fifo("c", &path).unwrap();
        let writer = tokio::spawn(async move {
            let mut sender = pipe::OpenOptions::new().open_sender(&path).unwrap();
            use tokio::io::AsyncWriteExt;
            sender
                .write_all(&vec![b'x'; 3 * MAX_EXEC_OUTPUT])
                .await
                .unwrap();
        });
        let output = collect_output(vec![reader]).await;
        writer.await.unwrap();
        assert_eq!(output.len(), MAX_EXEC_OUTPUT);
    }
}
