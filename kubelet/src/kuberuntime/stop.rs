//! Stopping containers (upstream's killContainer): the image's stop signal, the grace period, then SIGKILL.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use super::manager::{PodEvent, RuntimeManager, SyncResult, field_path};
use super::record::{ContainerRecord, PodRuntimeStatus};
use crate::runtime::Runtime;

impl RuntimeManager {
    /// Stops every running container of the pod: the stop signal, `grace` to exit, then SIGKILL.
    pub async fn stop_containers(
        &self,
        pod: &Pod,
        status: &PodRuntimeStatus,
        grace: Duration,
        result: &mut SyncResult,
    ) {
        let spec = pod.spec.clone().unwrap_or_default();
        let running: Vec<&ContainerRecord> = status
            .containers
            .iter()
            .filter(|c| c.is_running())
            .collect();
        let stops = running.iter().map(|record| async {
            stop_container(&self.runtime, record, grace).await;
        });
        for record in &running {
            result.events.push(PodEvent {
                warning: false,
                reason: "Killing",
                message: format!("Stopping container {}", record.name),
                field_path: Some(field_path(&spec, &record.name)),
            });
        }
        futures::future::join_all(stops).await;
    }
}

/// The image's stop signal (SIGTERM unless it names another), `grace` to exit, then SIGKILL.
async fn stop_container(runtime: &Runtime, record: &ContainerRecord, grace: Duration) {
    let stop_signal = runtime
        .image(&record.image)
        .await
        .ok()
        .flatten()
        .and_then(|image| signal_number(&image.stop_signal))
        .unwrap_or(libc::SIGTERM);
    if runtime.kill(&record.id, stop_signal as u32).await.is_ok()
        && tokio::time::timeout(grace, runtime.wait(&record.id))
            .await
            .is_ok()
    {
        return;
    }
    let _ = runtime.kill(&record.id, libc::SIGKILL as u32).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), runtime.wait(&record.id)).await;
}

/// A StopSignal as images write it (`SIGQUIT`, `QUIT`, `3`); `None` for empty or unknown.
fn signal_number(name: &str) -> Option<i32> {
    if let Ok(number) = name.parse() {
        return Some(number);
    }
    let signal = match name.trim_start_matches("SIG") {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "USR2" => libc::SIGUSR2,
        "TERM" => libc::SIGTERM,
        "WINCH" => libc::SIGWINCH,
        "STOP" => libc::SIGSTOP,
        _ => return None,
    };
    Some(signal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_signals_parse_as_images_write_them() {
        assert_eq!(signal_number("SIGQUIT"), Some(libc::SIGQUIT));
        assert_eq!(signal_number("WINCH"), Some(libc::SIGWINCH));
        assert_eq!(signal_number("15"), Some(15));
        assert_eq!(signal_number(""), None);
        assert_eq!(signal_number("SIGNOPE"), None);
    }
}
