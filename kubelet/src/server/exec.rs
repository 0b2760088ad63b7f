//! `/exec/{namespace}/{pod}[/{uid}]/{container}` (server.go `getExec`): a command in a running container,
//! streamed over SPDY with the remote command protocol. Upstream's kubelet proxies to the CRI's streaming
//! server; ferrokube has none, so it serves the protocol itself on containerd's task Exec.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use super::containers::pod_not_found;
use super::remotecommand::{
    self, Outcome, Process, ProcessIo, Protocol, STREAM_CREATION_TIMEOUT, Streams, TerminalSize,
};
use super::spdy::{self, upgrade::http_error};
use super::{ServerContext, text};
use crate::runtime::{ExecProcess, Runtime, StdioOptions};

/// `/exec/{namespace}/{pod}/{container}`.
pub async fn exec(
    State(context): State<Arc<ServerContext>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    serve_exec(&context, &namespace, &pod, None, &container, request).await
}

/// `/exec/{namespace}/{pod}/{uid}/{container}`.
pub async fn exec_with_uid(
    State(context): State<Arc<ServerContext>>,
    Path((namespace, pod, uid, container)): Path<(String, String, String, String)>,
    request: Request,
) -> Response {
    serve_exec(&context, &namespace, &pod, Some(&uid), &container, request).await
}

async fn serve_exec(
    context: &ServerContext,
    namespace: &str,
    name: &str,
    uid: Option<&str>,
    container: &str,
    request: Request,
) -> Response {
    let query = request.uri().query().unwrap_or_default().to_string();
    let options = match remotecommand::parse_options(Some(&query)) {
        Ok(options) => options,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    let command: Vec<String> = remotecommand::url_pairs(&query)
        .filter(|(key, _)| key == "command")
        .map(|(_, value)| value)
        .collect();
    let Some(pod) = context.pod(namespace, name) else {
        return pod_not_found();
    };
    let Some(container_id) = running_container_id(&pod, uid, container) else {
        // streaming.WriteError of GetExec's error: no gRPC code, so a 500.
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("container not found ({container:?})"),
        );
    };
    let runtime = context.runtime.clone();
    start_streaming(
        request,
        options,
        container_id.clone(),
        move |streams| async move {
            run(streams, runtime, &container_id, command, options).await;
        },
    )
}

/// The upgrade as the proxy to the CRI streaming server answers it: an upgrade is required, then the
/// protocol is negotiated, then the connection switches to SPDY and `serve` gets the client's streams.
pub(super) fn start_streaming<F, Fut>(
    request: Request,
    options: StdioOptions,
    container_id: String,
    serve: F,
) -> Response
where
    F: FnOnce(Streams) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    if !is_upgrade_request(&request) {
        // UpgradeAwareHandler's BadRequest goes through the kubelet's responder, which answers 500.
        return http_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Upgrade request required",
        );
    }
    let chosen = match spdy::negotiate(request.headers(), &remotecommand::SUPPORTED_PROTOCOLS) {
        Ok(chosen) => chosen,
        Err(refusal) => return refusal.into_response(),
    };
    let protocol = Protocol::from_name(&chosen).unwrap_or(Protocol::V1);
    spdy::upgrade(request, &chosen, move |session| async move {
        match Streams::collect(session, protocol, options, STREAM_CREATION_TIMEOUT).await {
            Ok(streams) => serve(streams).await,
            Err(e) => tracing::info!(container = %container_id, error = %e, "no streams"),
        }
    })
}

/// Starts the command and runs the streams against it; the process is gone from containerd afterwards.
async fn run(
    streams: Streams,
    runtime: Runtime,
    container_id: &str,
    command: Vec<String>,
    options: StdioOptions,
) {
    let started = runtime
        .exec_interactive(container_id, &command, options)
        .await;
    let exec = match started {
        Ok(exec) => exec,
        Err(e) => {
            tracing::info!(container = %container_id, error = %e, "exec: cannot start");
            streams
                .finish(&Outcome::Failed(format!(
                    "failed to exec in container: {e}"
                )))
                .await;
            return;
        }
    };
    let io = ProcessIo {
        stdin: exec.stdin.map(|s| Box::new(s) as _),
        stdout: exec.stdout.map(|s| Box::new(s) as _),
        stderr: exec.stderr.map(|s| Box::new(s) as _),
    };
    let process = Exec {
        process: exec.process,
        command,
    };
    let outcome = streams.serve(io, process.clone()).await;
    tracing::debug!(container = %container_id, exec = process.process.exec_id(), ?outcome, "exec: done");
    // Killed when the client went away; deleted in any case.
    process.process.kill().await;
}

/// An exec process as the remote command protocol drives it.
#[derive(Clone)]
struct Exec {
    process: ExecProcess,
    command: Vec<String>,
}

impl Process for Exec {
    async fn resize(&self, size: TerminalSize) {
        if let Err(e) = self.process.resize(size.width, size.height).await {
            tracing::debug!(error = %e, "exec: resizing the terminal");
        }
    }

    async fn close_stdin(&self) {
        if let Err(e) = self.process.close_stdin().await {
            tracing::debug!(error = %e, "exec: closing stdin");
        }
    }

    async fn wait(&self) -> Outcome {
        match self.process.wait().await {
            Ok(code) => Outcome::Exited {
                code,
                command: self.command.clone(),
            },
            Err(e) => Outcome::Failed(e),
        }
    }

    async fn abort(&self) {
        self.process.kill().await;
    }
}

/// `httpstream.IsUpgradeRequest`: a `Connection` header naming `upgrade`.
fn is_upgrade_request(request: &Request) -> bool {
    request
        .headers()
        .get_all(axum::http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("upgrade"))
}

/// The runtime ID of `name`'s running container in `pod` (app, init or ephemeral), as the kubelet last
/// reported it; none when `uid` is given and is not the pod's.
pub fn running_container_id(pod: &Pod, uid: Option<&str>, name: &str) -> Option<String> {
    if uid.is_some_and(|uid| pod.metadata.uid.as_deref() != Some(uid)) {
        return None;
    }
    let status = pod.status.as_ref()?;
    let statuses: [&Option<Vec<ContainerStatus>>; 3] = [
        &status.container_statuses,
        &status.init_container_statuses,
        &status.ephemeral_container_statuses,
    ];
    statuses
        .into_iter()
        .flatten()
        .flatten()
        .find(|s| s.name == name && s.state.as_ref().is_some_and(|st| st.running.is_some()))
        .and_then(|s| s.container_id.as_deref())
        .and_then(|id| id.split_once("://").map(|(_, id)| id.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
            "status": {
                "containerStatuses": [
                    {"name": "app", "ready": true, "restartCount": 0, "image": "i", "imageID": "",
                     "containerID": "containerd://abc", "state": {"running": {}}},
                    {"name": "done", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                     "containerID": "containerd://def", "state": {"terminated": {"exitCode": 0}}}
                ],
                "initContainerStatuses": [
                    {"name": "sidecar", "ready": true, "restartCount": 0, "image": "i", "imageID": "",
                     "containerID": "containerd://ghi", "state": {"running": {}}}
                ]
            }
        }))
        .unwrap()
    }

    #[test]
    fn only_running_containers_are_found() {
        let pod = pod();
        assert_eq!(
            running_container_id(&pod, None, "app").as_deref(),
            Some("abc")
        );
        assert_eq!(
            running_container_id(&pod, Some("u1"), "sidecar").as_deref(),
            Some("ghi")
        );
        assert_eq!(running_container_id(&pod, None, "done"), None);
        assert_eq!(running_container_id(&pod, None, "nope"), None);
        assert_eq!(running_container_id(&pod, Some("u2"), "app"), None);
    }
}
