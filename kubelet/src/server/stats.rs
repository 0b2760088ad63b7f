//! `/metrics`, `/metrics/resource` and `/stats/summary` (server.go:495-520, server/stats/handler.go).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::{ServerContext, text};
use crate::stats::summary::Summary;
use crate::stats::{StatsError, resource};

/// client_golang's content type for the text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `/metrics/resource`: the node's, pods' and containers' CPU and memory, timestamped.
pub async fn resource_metrics(State(context): State<Arc<ServerContext>>) -> Response {
    let summary = match summary(&context, true).await {
        Ok(summary) => Some(summary),
        Err(e) => {
            tracing::error!(error = %e, "Error getting summary for resourceMetric prometheus endpoint");
            None
        }
    };
    (
        [(header::CONTENT_TYPE, TEXT_FORMAT)],
        resource::render(summary.as_ref()),
    )
        .into_response()
}

/// `/stats/summary`, GET or POST; `only_cpu_and_memory=true` (exactly once) leaves out the rest.
pub async fn stats_summary(
    State(context): State<Arc<ServerContext>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let only: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "only_cpu_and_memory")
        .map(|(_, v)| v.as_str())
        .collect();
    let only_cpu_and_memory = only == ["true"];
    match summary(&context, only_cpu_and_memory).await {
        Ok(summary) => match pretty_json(&summary) {
            Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
            Err(e) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Internal Error: {e}"),
            ),
        },
        Err(e) => {
            tracing::error!(error = %e, request = "/stats/summary", "HTTP InternalServerError serving");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Internal Error: {e}"),
            )
        }
    }
}

async fn summary(
    context: &ServerContext,
    only_cpu_and_memory: bool,
) -> Result<Summary, StatsError> {
    let containers = context.runtime.list_containers().await?;
    let pods = context.pods.list();
    let stats = context.stats.clone();
    let node_name = context.node_name.clone();
    // cgroup files are small but many; keep their reads off the async workers.
    tokio::task::spawn_blocking(move || {
        stats.summary(&node_name, &pods, &containers, only_cpu_and_memory)
    })
    .await?
}

/// JSON indented by one space, as go-restful's pretty-printed responses.
fn pretty_json(value: &impl Serialize) -> serde_json::Result<Vec<u8>> {
    let mut body = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut body, formatter);
    value.serialize(&mut serializer)?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_indented_by_one_space() {
        let body =
            pretty_json(&serde_json::json!({"node": {"nodeName": "n"}, "pods": []})).unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "{\n \"node\": {\n  \"nodeName\": \"n\"\n },\n \"pods\": []\n}"
        );
    }
}
