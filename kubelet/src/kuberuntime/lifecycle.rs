//! Lifecycle hooks (upstream's HandlerRunner): a container's postStart and preStop handlers — exec in the
//! container, an HTTP GET to it (any response will do), or sleep — with upstream's failure messages.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, HTTPGetAction, LifecycleHandler, Pod};

use super::manager::{RuntimeManager, pod_description};
use crate::prober::http;

/// The longest a postStart hook may run (upstream gives none; a hook that hangs would stall its pod's
/// worker, which upstream's cancellable sync avoids and ours cannot).
pub const POST_START_LIMIT: Duration = Duration::from_secs(120);

impl RuntimeManager {
    /// Runs `handler` for `container` (its runtime id `id`) within `timeout`; on failure the message
    /// upstream logs.
    pub(super) async fn run_handler(
        &self,
        pod: &Pod,
        container: &Container,
        id: &str,
        handler: &LifecycleHandler,
        timeout: Duration,
    ) -> Result<(), String> {
        if let Some(exec) = &handler.exec {
            let command = exec.command.clone().unwrap_or_default();
            let failed = |error: String, output: &[u8]| {
                format!(
                    "Exec lifecycle hook ([{}]) for Container {:?} in Pod {:?} failed - error: \
                     {error}, message: {:?}",
                    command.join(" "),
                    container.name,
                    pod_description(pod),
                    String::from_utf8_lossy(output)
                )
            };
            return match self.runtime.exec(id, &command, timeout).await {
                Ok(out) if out.exit_code == 0 => Ok(()),
                Ok(out) => Err(failed(
                    exit_error(&command, out.exit_code, &out.output),
                    &out.output,
                )),
                Err(e) => Err(failed(e.to_string(), &[])),
            };
        }
        if let Some(action) = &handler.http_get {
            let path = action.path.clone().unwrap_or_default();
            return self
                .run_http_handler(pod, container, action, timeout)
                .await
                .map_err(|error| {
                    format!(
                        "HTTP lifecycle hook ({path}) for Container {:?} in Pod {:?} failed - \
                         error: {error}",
                        container.name,
                        pod_description(pod)
                    )
                });
        }
        if let Some(sleep) = &handler.sleep {
            let seconds = u64::try_from(sleep.seconds).unwrap_or(0);
            tokio::time::sleep(Duration::from_secs(seconds).min(timeout)).await;
            return Ok(());
        }
        Err(format!(
            "Cannot run handler: invalid handler: {}",
            handler_kind(handler)
        ))
    }
}

impl RuntimeManager {
    /// GETs the hook's URL (the pod's IP unless the action names a host) within `timeout`.
    async fn run_http_handler(
        &self,
        pod: &Pod,
        container: &Container,
        action: &HTTPGetAction,
        timeout: Duration,
    ) -> Result<(), String> {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let pod_ip = self.pod_ip(uid).unwrap_or_default();
        if action.host.as_deref().unwrap_or_default().is_empty() && pod_ip.is_empty() {
            return Err("failed to find networking container".to_string());
        }
        let request =
            http::http_get_request(action, container, &pod_ip, http::LIFECYCLE_USER_AGENT)
                .map_err(|e| e.to_string())?;
        match tokio::time::timeout(timeout, http::get(&request)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("Get {:?}: {e}", request.url())),
            Err(_) => Err(format!(
                "Get {:?}: context deadline exceeded",
                request.url()
            )),
        }
    }
}

/// The CRI's error for a command that exited non-zero: `command 'CMD' exited with N: OUTPUT`.
fn exit_error(command: &[String], code: i32, output: &[u8]) -> String {
    format!(
        "command '{}' exited with {code}: {}",
        command.join(" "),
        String::from_utf8_lossy(output)
    )
}

/// What a handler without exec or sleep has, for the error.
fn handler_kind(handler: &LifecycleHandler) -> &'static str {
    if handler.tcp_socket.is_some() {
        "tcpSocket"
    } else {
        "none"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_errors_read_as_the_cris() {
        let command = vec!["sh".to_string(), "-c".to_string(), "exit 3".to_string()];
        assert_eq!(
            exit_error(&command, 3, b"boom\n"),
            "command 'sh -c exit 3' exited with 3: boom\n"
        );
    }
}
