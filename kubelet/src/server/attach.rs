//! `/attach/{namespace}/{pod}[/{uid}]/{container}` (server.go `getAttach`): the running container's own
//! stdio, streamed with the remote command protocol as exec is. Output comes live from the copier that
//! writes the container's log; input goes to its stdin FIFO (`stdin: true` containers).

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::containers::pod_not_found;
use super::exec::{running_container_id, start_streaming};
use super::remotecommand::{self, Outcome, Process, ProcessIo, Streams, TerminalSize};
use super::{ServerContext, text};
use crate::runtime::Runtime;
use crate::runtime::attach::{AttachedStdin, Attachment, Chunk};

/// Room in the pipes between the live output or stdin and the client's streams.
const PIPE_BYTES: usize = 64 * 1024;

/// `/attach/{namespace}/{pod}/{container}`.
pub async fn attach(
    State(context): State<Arc<ServerContext>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    serve_attach(&context, &namespace, &pod, None, &container, request).await
}

/// `/attach/{namespace}/{pod}/{uid}/{container}`.
pub async fn attach_with_uid(
    State(context): State<Arc<ServerContext>>,
    Path((namespace, pod, uid, container)): Path<(String, String, String, String)>,
    request: Request,
) -> Response {
    serve_attach(&context, &namespace, &pod, Some(&uid), &container, request).await
}

async fn serve_attach(
    context: &ServerContext,
    namespace: &str,
    name: &str,
    uid: Option<&str>,
    container: &str,
    request: Request,
) -> Response {
    let options = match remotecommand::parse_options(request.uri().query()) {
        Ok(options) => options,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    let Some(pod) = context.pod(namespace, name) else {
        return pod_not_found();
    };
    let not_found = || {
        text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("container not found ({container:?})"),
        )
    };
    let Some(container_id) = running_container_id(&pod, uid, container) else {
        return not_found();
    };
    let stdin_once = pod
        .spec
        .as_ref()
        .and_then(|spec| crate::pod_spec::find_container(spec, container))
        .is_some_and(|c| c.stdin_once == Some(true) && c.tty != Some(true));
    let attachment = match context.runtime.attach(&container_id) {
        Ok(attachment) => attachment,
        Err(e) => {
            tracing::info!(container = %container_id, error = %e, "attach: cannot attach");
            return not_found();
        }
    };
    let runtime = context.runtime.clone();
    start_streaming(request, options, container_id.clone(), move |streams| {
        run(streams, runtime, container_id, attachment, stdin_once)
    })
}

/// Connects the client's streams to the container until its output ends or the client goes away.
async fn run(
    streams: Streams,
    runtime: Runtime,
    container_id: String,
    attachment: Attachment,
    stdin_once: bool,
) {
    let output_ended = CancellationToken::new();
    let stdin_fed = CancellationToken::new();
    let io = ProcessIo {
        stdin: attachment
            .stdin
            .clone()
            .map(|stdin| Box::new(feed_stdin(stdin, stdin_fed.clone())) as _),
        stdout: Some(Box::new(live_output(attachment.stdout, output_ended.clone())) as _),
        stderr: Some(Box::new(live_output(attachment.stderr, CancellationToken::new())) as _),
    };
    let process = Attached {
        runtime,
        container_id,
        stdin: attachment.stdin,
        stdin_once,
        stdin_fed,
        output_ended,
    };
    streams.serve(io, process).await;
}

/// A pipe whose read end carries the live output from now on; `ended` is cancelled when it ends.
fn live_output(mut live: broadcast::Receiver<Chunk>, ended: CancellationToken) -> DuplexStream {
    let (reader, mut writer) = tokio::io::duplex(PIPE_BYTES);
    tokio::spawn(async move {
        loop {
            match live.recv().await {
                Ok(chunk) => {
                    if writer.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
                // An attacher that fell behind misses output, as a slow terminal would.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
        ended.cancel();
    });
    reader
}

/// A pipe whose write end feeds the container's stdin; `fed` is cancelled once all of it was written.
fn feed_stdin(stdin: AttachedStdin, fed: CancellationToken) -> DuplexStream {
    let (mut reader, writer) = tokio::io::duplex(PIPE_BYTES);
    tokio::spawn(async move {
        let mut buffer = vec![0u8; PIPE_BYTES];
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Err(e) = stdin.write(&buffer[..n]).await {
                        tracing::debug!(error = %e, "attach: writing stdin");
                        break;
                    }
                }
            }
        }
        fed.cancel();
    });
    writer
}

/// The attached container as the remote command protocol drives it; never killed by a leaving client.
#[derive(Clone)]
struct Attached {
    runtime: Runtime,
    container_id: String,
    stdin: Option<AttachedStdin>,
    stdin_once: bool,
    stdin_fed: CancellationToken,
    output_ended: CancellationToken,
}

impl Process for Attached {
    async fn resize(&self, size: TerminalSize) {
        let resized = self
            .runtime
            .resize_pty(&self.container_id, "", size.width, size.height)
            .await;
        if let Err(e) = resized {
            tracing::debug!(error = %e, "attach: resizing the terminal");
        }
    }

    async fn close_stdin(&self) {
        // What the client sent reaches the container before its stdin closes.
        self.stdin_fed.cancelled().await;
        // stdinOnce: the container's stdin closes after its first attach, as the CRI does.
        if let (true, Some(stdin)) = (self.stdin_once, &self.stdin)
            && let Err(e) = self.runtime.close_stdin(&self.container_id, stdin).await
        {
            tracing::debug!(error = %e, "attach: closing stdin");
        }
    }

    async fn wait(&self) -> Outcome {
        self.output_ended.cancelled().await;
        Outcome::Exited {
            code: 0,
            command: Vec::new(),
        }
    }

    async fn abort(&self) {}
}
