//! `POST /run/{podNamespace}/{podID}[/{uid}]/{containerName}?cmd=…`: runs a command in a running container
//! and answers its output (upstream's `getRun`, server.go; `RunInContainer`, kubelet_pods.go).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::containers::{Target, pod_not_found, running_container};
use super::{ServerContext, text};

/// Upstream runs without a timeout; a request cannot outlive the server's 4 h write timeout anyway.
const RUN_TIMEOUT: Duration = Duration::from_secs(4 * 3600);

/// `/run/{ns}/{pod}/{container}`.
pub async fn run(
    State(context): State<Arc<ServerContext>>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let target = Target {
        namespace,
        pod,
        uid: None,
    };
    serve(&context, &target, &container, &query).await
}

/// `/run/{ns}/{pod}/{uid}/{container}`.
pub async fn run_uid(
    State(context): State<Arc<ServerContext>>,
    Path((namespace, pod, uid, container)): Path<(String, String, String, String)>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let target = Target {
        namespace,
        pod,
        uid: Some(uid),
    };
    serve(&context, &target, &container, &query).await
}

async fn serve(
    context: &ServerContext,
    target: &Target,
    container: &str,
    query: &[(String, String)],
) -> Response {
    let Some(pod) = target.pod(context) else {
        return pod_not_found();
    };
    let argv = command(query);
    let id = match running_container(&context.runtime, &target.runtime_uid(&pod), container).await {
        Ok(Some(id)) => id,
        Ok(None) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("container not found ({container:?})"),
            );
        }
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    match context.runtime.exec(&id, &argv, RUN_TIMEOUT).await {
        Ok(done) if done.exit_code == 0 => output(done.output),
        // The runtime's ExecSync error (cri-client remote_runtime.go), whose last part is the stderr;
        // ferrokube's exec keeps only the combined output, so that is what follows the colon.
        Ok(done) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "command '{}' exited with {}: {}",
                argv.join(" "),
                done.exit_code,
                String::from_utf8_lossy(&done.output)
            ),
        ),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The command: the first `cmd` parameter split on single spaces, as upstream (`strings.Split(cmd, " ")`).
fn command(query: &[(String, String)]) -> Vec<String> {
    let cmd = query
        .iter()
        .find(|(key, _)| key == "cmd")
        .map_or("", |(_, value)| value.as_str());
    cmd.split(' ').map(str::to_string).collect()
}

/// Upstream's `writeJSONResponse`: the output labelled JSON whatever it is; no output is a bare 200.
fn output(data: Vec<u8>) -> Response {
    if data.is_empty() {
        return StatusCode::OK.into_response();
    }
    ([(header::CONTENT_TYPE, "application/json")], data).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_command_is_the_first_cmd_split_on_single_spaces() {
        assert_eq!(
            command(&query(&[("x", "1"), ("cmd", "echo hi"), ("cmd", "ls")])),
            ["echo", "hi"]
        );
        assert_eq!(command(&query(&[("cmd", "a  b")])), ["a", "", "b"]);
        assert_eq!(command(&query(&[])), [""]);
    }

    #[tokio::test]
    async fn output_is_labelled_json_and_nothing_is_a_bare_ok() {
        let answer = output(b"hi\n".to_vec());
        assert_eq!(answer.status(), StatusCode::OK);
        assert_eq!(answer.headers()[header::CONTENT_TYPE], "application/json");
        let body = axum::body::to_bytes(answer.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], b"hi\n");
        let empty = output(Vec::new());
        assert_eq!(empty.status(), StatusCode::OK);
        assert!(empty.headers().get(header::CONTENT_TYPE).is_none());
    }
}
