//! `/healthz`, `/pods` and `/runningpods/`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::ServerContext;

/// `/healthz`: the server answers, so the kubelet is up (upstream's syncloop check aside).
pub async fn healthz() -> &'static str {
    "ok"
}

/// `/pods`: the pods bound to this node, as a `PodList`.
pub async fn pods(State(context): State<Arc<ServerContext>>) -> Response {
    pod_list(context.pods.list().iter().map(|pod| pod.as_ref())).into_response()
}

/// `/runningpods/`: the pods with a running container, as upstream's runtime view (names, uids, containers).
pub async fn running_pods(State(context): State<Arc<ServerContext>>) -> Response {
    let pods = context.pods.list();
    let running = pods.iter().map(|pod| pod.as_ref()).filter(|pod| {
        pod.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|statuses| {
                statuses
                    .iter()
                    .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
            })
    });
    pod_list(running).into_response()
}

fn pod_list<'a>(pods: impl Iterator<Item = &'a Pod>) -> Json<serde_json::Value> {
    let items: Vec<&Pod> = pods.collect();
    Json(json!({
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {},
        "items": items,
    }))
}
