//! `/containerLogs/{namespace}/{pod}/{container}`: what `kubectl logs` reads through the apiserver
//! (server.go getContainerLogs, kubelet_pods.go GetKubeletContainerLogs).

pub mod query;
pub mod select;

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use tokio::sync::mpsc;

use super::{ServerContext, text};
use crate::kuberuntime::log_reader::{ContainerState, LogOptions, read_logs};
use crate::kuberuntime::pod_logs::labelled_log_path;
use crate::runtime::{Runtime, RuntimeError, TaskStatus};
use select::ContainerId;

/// How many chunks may wait for a slow client before reading pauses.
const PENDING_CHUNKS: usize = 4;

/// Answers a log request: upstream's 400/422/404 answers for bad requests, else 200 with the log
/// streamed in chunks (an error met while reading ends the body with its text, as upstream's).
pub async fn container_logs(
    State(context): State<Arc<ServerContext>>,
    Path((namespace, pod_name, container)): Path<(String, String, String)>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Response {
    let options = match query::decode(&pairs) {
        Ok(options) => options,
        Err(e) => return text(e.status(), e.to_string()),
    };
    let Some(pod) = context.pod(&namespace, &pod_name) else {
        return text(
            StatusCode::NOT_FOUND,
            format!("pod {pod_name:?} does not exist"),
        );
    };
    if !select::has_container(pod.spec.as_ref(), &container) {
        return text(
            StatusCode::NOT_FOUND,
            format!("container {container:?} not found in pod {pod_name:?}"),
        );
    }
    // PodLogsQuerySplitStreams is alpha and off in 1.36: only both streams together.
    if let Some(stream) = options.stream.as_deref().filter(|s| *s != "All") {
        return text(
            StatusCode::BAD_REQUEST,
            format!(
                "unable to return the given log stream: {stream:?}. Please enable PodLogsQuerySplitStreams feature gate in kubelet"
            ),
        );
    }
    let status = pod.status.clone().unwrap_or_default();
    let id = match select::log_container(&pod_name, &status, &container, options.previous) {
        Ok(id) => id,
        Err(reason) => return text(StatusCode::BAD_REQUEST, reason),
    };
    let reader_options = options.reader_options(chrono::Utc::now());
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(PENDING_CHUNKS);
    tokio::spawn(stream_logs(context, id, reader_options, tx));
    let body = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|chunk| chunk.map(|c| Ok::<_, Infallible>(Bytes::from(c))))
    });
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = StatusCode::OK;
    response
}

/// Reads container `id`'s log into `tx`; an error after the answer has started ends the body.
async fn stream_logs(
    context: Arc<ServerContext>,
    id: ContainerId,
    options: LogOptions,
    tx: mpsc::Sender<Vec<u8>>,
) {
    let result = async {
        let labels = context.runtime.container_labels(&id.id).await;
        let path = match labels {
            Ok(Some(labels)) => labelled_log_path(&context.pod_logs_dir, &labels),
            Ok(None) => None,
            Err(e) => {
                tracing::debug!(container = %id, error = %e, "no container record for its logs");
                None
            }
        };
        let path = path.ok_or_else(|| format!("unable to retrieve container logs for {id}"))?;
        let container = TaskContainer {
            runtime: context.runtime.clone(),
            id: id.id.clone(),
        };
        read_logs(&path, &options, &container, &tx)
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    if let Err(message) = result {
        tracing::debug!(container = %id, error = %message, "container logs ended with an error");
        // Upstream writes the error into the body that has already begun.
        let _ = tx.send(message.into_bytes()).await;
    }
}

/// A container as containerd sees its task: following its log goes on while it runs.
struct TaskContainer {
    runtime: Runtime,
    id: String,
}

impl ContainerState for TaskContainer {
    async fn is_running(&self) -> Result<bool, String> {
        match self.runtime.task_state(&self.id).await {
            Ok(state) => {
                Ok(state
                    .is_some_and(|s| matches!(s.status, TaskStatus::Running | TaskStatus::Paused)))
            }
            // As upstream: a runtime that does not answer is assumed to keep its containers running.
            Err(RuntimeError::Rpc {
                code: containerd_client::tonic::Code::Unavailable,
                ..
            }) => Ok(true),
            Err(e) => Err(e.to_string()),
        }
    }
}
