//! An interactive exec (`kubectl exec`): a process added to a running container's task with FIFOs for the
//! stdio the client asked for, a terminal when it asked for one, resizes, stdin closing, and its exit.
//! A process whose client went away is killed and deleted, so none is left behind.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::{
    CloseIoRequest, DeleteProcessRequest, ExecProcessRequest, KillRequest, ResizePtyRequest,
    StartRequest, WaitRequest,
};
use tokio::net::unix::pipe;
use tokio::sync::watch;

use super::error::{Result, RuntimeError};
use super::exec::RemoveOnDrop;
use super::{Runtime, logs};

/// How long a killed exec process gets to be reported exited before it is deleted anyway.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Which stdio an interactive exec has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StdioOptions {
    /// The client sends input.
    pub stdin: bool,
    /// The client reads the output.
    pub stdout: bool,
    /// The client reads the error output (never with a terminal: it is merged into stdout).
    pub stderr: bool,
    /// The process runs on a terminal.
    pub tty: bool,
}

/// A started interactive exec: its stdio, and the process to resize, wait for and clean up.
pub struct InteractiveExec {
    /// Where the client's input goes; dropping it is the input's end.
    pub stdin: Option<pipe::Sender>,
    /// The process's output (the terminal's, with a tty).
    pub stdout: Option<pipe::Receiver>,
    /// The process's error output.
    pub stderr: Option<pipe::Receiver>,
    /// The process.
    pub process: ExecProcess,
}

/// A process started by [`Runtime::exec_interactive`]. Cheap to clone.
#[derive(Clone)]
pub struct ExecProcess {
    inner: Arc<ProcessInner>,
}

struct ProcessInner {
    runtime: Runtime,
    container_id: String,
    exec_id: String,
    /// The exit code once containerd reported it, or why waiting failed.
    exit: watch::Receiver<Option<std::result::Result<u32, String>>>,
    /// The FIFOs go when the last handle does.
    _fifos: RemoveOnDrop,
}

impl Runtime {
    /// Starts `argv` in running container `id` as the container's own process would run, with the stdio
    /// `options` ask for (FIFOs in the FIFO directory) and a terminal when `tty`.
    pub async fn exec_interactive(
        &self,
        id: &str,
        argv: &[String],
        options: StdioOptions,
    ) -> Result<InteractiveExec> {
        let exec_id = format!("exec-{:016x}", rand::random::<u64>());
        let process = self.exec_process_spec(id, argv, options.tty).await?;
        let fifo = |stream: &str| self.fifo_dir.join(format!("{id}-{exec_id}-{stream}"));
        let wanted = [
            ("stdin", options.stdin),
            ("stdout", options.stdout || options.tty),
            ("stderr", options.stderr && !options.tty),
        ];
        let mut paths: Vec<Option<PathBuf>> = Vec::new();
        for (stream, wanted) in wanted {
            let path = wanted.then(|| fifo(stream));
            if let Some(path) = &path {
                logs::make_fifo(id, path)?;
            }
            paths.push(path);
        }
        let fifos = RemoveOnDrop(paths.iter().flatten().cloned().collect());
        let io = |path: &PathBuf, source| RuntimeError::Io {
            container: id.to_string(),
            path: path.clone(),
            source,
        };
        // Read-write, so opening does not wait for the shim to open the reading end.
        let stdin = match &paths[0] {
            Some(path) => Some(
                pipe::OpenOptions::new()
                    .read_write(true)
                    .open_sender(path)
                    .map_err(|e| io(path, e))?,
            ),
            None => None,
        };
        let stdout = paths[1]
            .as_ref()
            .map(|path| logs::open_fifo(id, path))
            .transpose()?;
        let stderr = paths[2]
            .as_ref()
            .map(|path| logs::open_fifo(id, path))
            .transpose()?;
        let path_string = |path: &Option<PathBuf>| {
            path.as_ref()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let mut tasks = TasksClient::new(self.channel.clone());
        tasks
            .exec(self.request(ExecProcessRequest {
                container_id: id.to_string(),
                stdin: path_string(&paths[0]),
                stdout: path_string(&paths[1]),
                stderr: path_string(&paths[2]),
                terminal: options.tty,
                spec: Some(process),
                exec_id: exec_id.clone(),
            }))
            .await
            .map_err(|s| RuntimeError::rpc("tasks.Exec", id, s))?;
        let (exit_tx, exit) = watch::channel(None);
        let process = ExecProcess {
            inner: Arc::new(ProcessInner {
                runtime: self.clone(),
                container_id: id.to_string(),
                exec_id: exec_id.clone(),
                exit,
                _fifos: fifos,
            }),
        };
        // Wait before Start, so an exit that comes at once is not missed.
        let wait = self.request(WaitRequest {
            container_id: id.to_string(),
            exec_id: exec_id.clone(),
        });
        let mut waiter = tasks.clone();
        let container = id.to_string();
        tokio::spawn(async move {
            let exit = match waiter.wait(wait).await {
                Ok(response) => Ok(response.into_inner().exit_status),
                Err(status) => Err(RuntimeError::rpc("tasks.Wait", &container, status).to_string()),
            };
            let _ = exit_tx.send(Some(exit));
        });
        let started = tasks
            .start(self.request(StartRequest {
                container_id: id.to_string(),
                exec_id: exec_id.clone(),
            }))
            .await;
        if let Err(status) = started {
            process.delete().await;
            return Err(RuntimeError::rpc("tasks.Start", id, status));
        }
        Ok(InteractiveExec {
            stdin,
            stdout,
            stderr,
            process,
        })
    }
}

impl ExecProcess {
    /// The exec's ID in containerd.
    pub fn exec_id(&self) -> &str {
        &self.inner.exec_id
    }

    /// Its exit code (128 + the signal when killed by one), once it exited.
    pub async fn wait(&self) -> std::result::Result<u32, String> {
        let mut exit = self.inner.exit.clone();
        match exit.wait_for(Option::is_some).await {
            Ok(exit) => exit.clone().unwrap_or(Err("no exit reported".to_string())),
            Err(_) => Err("the wait for the exit ended".to_string()),
        }
    }

    /// Sets its terminal's size.
    pub async fn resize(&self, width: u16, height: u16) -> Result<()> {
        let inner = &self.inner;
        TasksClient::new(inner.runtime.channel.clone())
            .resize_pty(inner.runtime.request(ResizePtyRequest {
                container_id: inner.container_id.clone(),
                exec_id: inner.exec_id.clone(),
                width: u32::from(width),
                height: u32::from(height),
            }))
            .await
            .map_err(|s| RuntimeError::rpc("tasks.ResizePty", &inner.container_id, s))?;
        Ok(())
    }

    /// Closes its stdin (after the client's input ended and the FIFO's writer was dropped).
    pub async fn close_stdin(&self) -> Result<()> {
        let inner = &self.inner;
        TasksClient::new(inner.runtime.channel.clone())
            .close_io(inner.runtime.request(CloseIoRequest {
                container_id: inner.container_id.clone(),
                exec_id: inner.exec_id.clone(),
                stdin: true,
            }))
            .await
            .map_err(|s| RuntimeError::rpc("tasks.CloseIO", &inner.container_id, s))?;
        Ok(())
    }

    /// Kills it (SIGKILL) unless it already exited, waits for the exit, and deletes it.
    pub async fn kill(&self) {
        let inner = &self.inner;
        if inner.exit.borrow().is_none() {
            let killed = TasksClient::new(inner.runtime.channel.clone())
                .kill(inner.runtime.request(KillRequest {
                    container_id: inner.container_id.clone(),
                    exec_id: inner.exec_id.clone(),
                    signal: libc::SIGKILL as u32,
                    all: false,
                }))
                .await;
            if let Err(status) = killed {
                tracing::debug!(exec = %inner.exec_id, %status, "killing an exec process");
            }
            let _ = tokio::time::timeout(KILL_WAIT, self.wait()).await;
        }
        self.delete().await;
    }

    /// Removes it from containerd (after its exit).
    pub async fn delete(&self) {
        let inner = &self.inner;
        let deleted = TasksClient::new(inner.runtime.channel.clone())
            .delete_process(inner.runtime.request(DeleteProcessRequest {
                container_id: inner.container_id.clone(),
                exec_id: inner.exec_id.clone(),
            }))
            .await;
        if let Err(status) = deleted
            && status.code() != containerd_client::tonic::Code::NotFound
        {
            tracing::debug!(exec = %inner.exec_id, %status, "deleting an exec process");
        }
    }
}
