//! Attaching to a container's own process, as containerd's CRI plugin does (pkg/cri/io/container_io.go):
//! its stdout and stderr, already read from the shim's FIFOs for the log file, are also broadcast to every
//! attacher; a container created with `stdin: true` gets a stdin FIFO at task creation, which attachers
//! write into. A lagging attacher misses output rather than slowing the container down.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::{CloseIoRequest, ResizePtyRequest};
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;
use tokio::sync::broadcast;

use super::Runtime;
use super::error::{Result, RuntimeError};

/// A piece of a container's output as it was read.
pub type Chunk = Arc<[u8]>;
/// How many chunks an attacher may fall behind before it misses output.
const LIVE_CAPACITY: usize = 1024;

/// How a container's stdio is set up when its task is created (the pod spec's `stdin` and `tty`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stdio {
    /// The process gets a stdin that attachers write into.
    pub stdin: bool,
    /// The process runs on a terminal (its stdout carries both outputs; stderr is unused).
    pub tty: bool,
}

/// The path of a container's stdin FIFO under `dir`.
pub fn stdin_fifo_path(dir: &Path, container: &str) -> PathBuf {
    dir.join(format!("{container}-stdin"))
}

/// Opens the write end of a stdin FIFO without waiting for a reader. Read-write, so the shim never reads
/// end-of-file while the kubelet holds it: the container's stdin stays open until it is closed on purpose.
pub fn open_stdin(container: &str, path: &Path) -> Result<pipe::Sender> {
    pipe::OpenOptions::new()
        .read_write(true)
        .open_sender(path)
        .map_err(|source| RuntimeError::Io {
            container: container.to_string(),
            path: path.to_path_buf(),
            source,
        })
}

/// The live output of one stream: the copier owns the sender, so attachers see the end when it ends.
pub fn live_stream() -> broadcast::Sender<Chunk> {
    broadcast::channel(LIVE_CAPACITY).0
}

/// What the runtime keeps of a running container's stdio for attachers.
#[derive(Debug)]
pub(crate) struct ContainerIo {
    stdout: broadcast::WeakSender<Chunk>,
    stderr: broadcast::WeakSender<Chunk>,
    stdin: Option<Arc<tokio::sync::Mutex<Option<pipe::Sender>>>>,
}

impl ContainerIo {
    /// The attachable stdio of a container whose copiers hold `stdout` and `stderr`.
    pub(crate) fn new(
        stdout: &broadcast::Sender<Chunk>,
        stderr: &broadcast::Sender<Chunk>,
        stdin: Option<pipe::Sender>,
    ) -> Self {
        Self {
            stdout: stdout.downgrade(),
            stderr: stderr.downgrade(),
            stdin: stdin.map(|s| Arc::new(tokio::sync::Mutex::new(Some(s)))),
        }
    }
}

/// The attachable stdio of every container this kubelet reads the output of.
pub(crate) type IoRegistry = Arc<Mutex<HashMap<String, ContainerIo>>>;

/// One attach to a running container.
#[derive(Debug)]
pub struct Attachment {
    /// Its stdout from now on; closed when the container's output ends.
    pub stdout: broadcast::Receiver<Chunk>,
    /// Its stderr from now on (nothing for a terminal container).
    pub stderr: broadcast::Receiver<Chunk>,
    /// Its stdin, when it was created with one.
    pub stdin: Option<AttachedStdin>,
}

/// The write end of a container's stdin, shared by its attachers.
#[derive(Debug, Clone)]
pub struct AttachedStdin {
    container: String,
    writer: Arc<tokio::sync::Mutex<Option<pipe::Sender>>>,
}

impl AttachedStdin {
    /// Writes `data` to the container's stdin; an error once it was closed.
    pub async fn write(&self, data: &[u8]) -> std::io::Result<()> {
        match self.writer.lock().await.as_mut() {
            Some(writer) => writer.write_all(data).await,
            None => Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                format!("the stdin of container {} is closed", self.container),
            )),
        }
    }
}

impl Runtime {
    /// Attaches to running container `id`'s stdio; an error when this kubelet does not read its output
    /// (it is not running).
    pub fn attach(&self, id: &str) -> Result<Attachment> {
        let registry = self.io.lock().unwrap_or_else(|e| e.into_inner());
        let not_running = || RuntimeError::Container {
            container: id.to_string(),
            message: "its output is not being read (it is not running)".to_string(),
        };
        let io = registry.get(id).ok_or_else(not_running)?;
        let (Some(stdout), Some(stderr)) = (io.stdout.upgrade(), io.stderr.upgrade()) else {
            return Err(not_running());
        };
        Ok(Attachment {
            stdout: stdout.subscribe(),
            stderr: stderr.subscribe(),
            stdin: io.stdin.as_ref().map(|writer| AttachedStdin {
                container: id.to_string(),
                writer: writer.clone(),
            }),
        })
    }

    /// Closes container `id`'s stdin for good (a `stdinOnce` container after its first attach): the
    /// kubelet's write end, and the shim's side of it.
    pub async fn close_stdin(&self, id: &str, stdin: &AttachedStdin) -> Result<()> {
        stdin.writer.lock().await.take();
        TasksClient::new(self.channel.clone())
            .close_io(self.request(CloseIoRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
                stdin: true,
            }))
            .await
            .map_err(|s| RuntimeError::rpc("tasks.CloseIO", id, s))?;
        Ok(())
    }

    /// Resizes the terminal of container `id` (or of its exec `exec_id`, when not empty).
    pub async fn resize_pty(&self, id: &str, exec_id: &str, width: u16, height: u16) -> Result<()> {
        TasksClient::new(self.channel.clone())
            .resize_pty(self.request(ResizePtyRequest {
                container_id: id.to_string(),
                exec_id: exec_id.to_string(),
                width: u32::from(width),
                height: u32::from(height),
            }))
            .await
            .map_err(|s| RuntimeError::rpc("tasks.ResizePty", id, s))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn attachers_see_the_end_when_the_copier_drops_its_sender() {
        let stdout = live_stream();
        let stderr = live_stream();
        let io = ContainerIo::new(&stdout, &stderr, None);
        let mut rx = io.stdout.upgrade().unwrap().subscribe();
        stdout.send(Arc::from(&b"hi"[..])).unwrap();
        drop(stdout);
        assert_eq!(&*rx.recv().await.unwrap(), b"hi");
        assert!(matches!(
            rx.recv().await,
            Err(broadcast::error::RecvError::Closed)
        ));
        assert!(io.stdout.upgrade().is_none());
    }

    #[tokio::test]
    async fn stdin_writes_reach_the_fifo_until_it_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = stdin_fifo_path(dir.path(), "c1");
        super::super::logs::make_fifo("c1", &path).unwrap();
        // No reader yet: opening read-write does not fail or wait.
        let writer = open_stdin("c1", &path).unwrap();
        let mut reader = pipe::OpenOptions::new().open_receiver(&path).unwrap();
        let stdin = AttachedStdin {
            container: "c1".to_string(),
            writer: Arc::new(tokio::sync::Mutex::new(Some(writer))),
        };
        stdin.write(b"hello\n").await.unwrap();
        let mut buf = [0u8; 16];
        use tokio::io::AsyncReadExt;
        let n = reader.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hello\n");
        stdin.writer.lock().await.take();
        assert_eq!(
            reader.read(&mut buf).await.unwrap(),
            0,
            "end of file once closed"
        );
        let error = stdin.write(b"late").await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe);
    }
}
