//! Running a remote command's streams against a process (exec's or an attached container's): stdin in,
//! output out, resizes to the terminal, the exit to the error stream. A client going away aborts the process.

use std::future::Future;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{Outcome, Streams, TerminalSize, take_sizes};
use crate::server::spdy::{StreamReader, StreamWriter};

/// How long output may stay silent after the exit before it is considered over (a child the process left
/// may hold the output open; the shim closes it once the process's output ended).
const OUTPUT_DRAIN_IDLE: Duration = Duration::from_secs(2);
/// The buffer of each output copy.
const COPY_BUFFER: usize = 32 * 1024;

/// What a remote command runs against: exec's new process, or attach's container.
pub trait Process: Clone + Send + Sync + 'static {
    /// Sets the terminal's size.
    fn resize(&self, size: TerminalSize) -> impl Future<Output = ()> + Send;
    /// The client's input ended (the stdin writer was already shut down and dropped).
    fn close_stdin(&self) -> impl Future<Output = ()> + Send;
    /// Resolves with how the process ended.
    fn wait(&self) -> impl Future<Output = Outcome> + Send;
    /// The client went away before the end (exec kills its process; attach leaves the container be).
    fn abort(&self) -> impl Future<Output = ()> + Send;
}

/// The process's side of the stdio.
#[derive(Default)]
pub struct ProcessIo {
    /// Its input.
    pub stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    /// Its output (the terminal's with a tty).
    pub stdout: Option<Box<dyn AsyncRead + Send + Unpin>>,
    /// Its error output.
    pub stderr: Option<Box<dyn AsyncRead + Send + Unpin>>,
}

impl Streams {
    /// Connects the client's streams to `io`, waits for `process` to end, writes the status and closes the
    /// connection. `None` when the client went away first (the process was aborted).
    pub async fn serve<P: Process>(mut self, io: ProcessIo, process: P) -> Option<Outcome> {
        // Stdin and resizes end with the command; the output is waited for.
        let mut inputs = JoinSet::new();
        let mut outputs = JoinSet::new();
        if let (Some(from), Some(to)) = (self.stdin.take(), io.stdin) {
            inputs.spawn(copy_stdin(from, to, process.clone()));
        }
        if let Some(from) = self.resize.take() {
            inputs.spawn(apply_resizes(from, process.clone()));
        }
        let exited = CancellationToken::new();
        for (from, to) in [
            (io.stdout, self.stdout.take()),
            (io.stderr, self.stderr.take()),
        ] {
            if let (Some(from), Some(to)) = (from, to) {
                outputs.spawn(copy_output(from, to, exited.clone()));
            }
        }
        let session = self.session.clone();
        let ended = async {
            let outcome = process.wait().await;
            exited.cancel();
            while outputs.join_next().await.is_some() {}
            outcome
        };
        // The session's end comes first: it also ends stdin, which must not pass for the input's end.
        let outcome = tokio::select! {
            biased;
            () = session.closed() => {
                process.abort().await;
                return None;
            }
            outcome = ended => outcome,
        };
        inputs.abort_all();
        self.finish(&outcome).await;
        Some(outcome)
    }
}

/// Copies the client's input until it closes stdin (FIN), then closes the process's.
async fn copy_stdin<P: Process>(
    mut from: StreamReader,
    mut to: Box<dyn AsyncWrite + Send + Unpin>,
    process: P,
) {
    if let Err(e) = tokio::io::copy(&mut from, &mut to).await {
        tracing::debug!(error = %e, "remotecommand: copying stdin");
    }
    let _ = to.shutdown().await;
    drop(to);
    process.close_stdin().await;
}

/// Applies each size the client sends until the resize stream ends or stops being sizes.
async fn apply_resizes<P: Process>(mut from: StreamReader, process: P) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        match from.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
        match take_sizes(&mut buffer) {
            Ok(sizes) => {
                for size in sizes {
                    process.resize(size).await;
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "remotecommand: bad resize event");
                return;
            }
        }
    }
}

/// Copies output to the client until it ends (or stays silent [`OUTPUT_DRAIN_IDLE`] after the exit), then FINs.
async fn copy_output(
    mut from: Box<dyn AsyncRead + Send + Unpin>,
    mut to: StreamWriter,
    exited: CancellationToken,
) {
    let mut buffer = vec![0u8; COPY_BUFFER];
    let mut draining = false;
    loop {
        let read = if draining {
            match tokio::time::timeout(OUTPUT_DRAIN_IDLE, from.read(&mut buffer)).await {
                Ok(read) => read,
                Err(_) => break,
            }
        } else {
            tokio::select! {
                read = from.read(&mut buffer) => read,
                () = exited.cancelled() => {
                    draining = true;
                    continue;
                }
            }
        };
        match read {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).await.is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::debug!(error = %e, "remotecommand: reading output");
                break;
            }
        }
    }
    let _ = to.shutdown().await;
}
