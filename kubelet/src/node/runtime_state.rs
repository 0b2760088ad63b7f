//! What the node's Ready condition knows about the container runtime and the pod network (upstream's
//! `runtimeState`): refreshed by the runtime health loop, read by the node status loop.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ContainerImage;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::runtime::{ImageSummary, Runtime};
use crate::sandbox::Sandbox;

/// How long a runtime that has not answered still counts as up (upstream's maxWaitForContainerRuntime).
pub const RUNTIME_SYNC_THRESHOLD: Duration = Duration::from_secs(30);

/// The network error upstream starts with, before the first runtime status.
const NETWORK_UNKNOWN: &str = "network state unknown";

/// The runtime's last known state.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeState {
    /// When the runtime last answered.
    pub last_sync: Option<Instant>,
    /// `containerd://1.6.20`-style version, once known.
    pub version: Option<String>,
    /// The runtime's images, largest first, for the node status.
    pub images: Vec<ContainerImage>,
    /// Why the pod network is not ready, if it is not.
    pub network_error: Option<String>,
}

impl Default for RuntimeState {
    fn default() -> Self {
        Self {
            last_sync: None,
            version: None,
            images: Vec::new(),
            network_error: Some(NETWORK_UNKNOWN.to_string()),
        }
    }
}

impl RuntimeState {
    /// Why the runtime is not ready, at `now`, in upstream's words.
    pub fn runtime_errors(&self, now: Instant) -> Vec<String> {
        match self.last_sync {
            None => vec!["container runtime status check may not have completed yet".to_string()],
            Some(at) if at + RUNTIME_SYNC_THRESHOLD <= now => {
                vec!["container runtime is down".to_string()]
            }
            Some(_) => Vec::new(),
        }
    }

    /// Why the pod network is not ready.
    pub fn network_errors(&self) -> Vec<String> {
        self.network_error.iter().cloned().collect()
    }
}

/// How often the runtime's health is checked (upstream's updateRuntimeUp period).
pub const RUNTIME_CHECK_PERIOD: Duration = Duration::from_secs(5);

/// Checks the runtime and the network every [`RUNTIME_CHECK_PERIOD`] until `stop`, publishing the state.
/// Watchers are woken only when something but the sync time changed.
pub async fn watch_runtime(
    runtime: Runtime,
    sandbox: Sandbox,
    state: watch::Sender<RuntimeState>,
    stop: CancellationToken,
) {
    loop {
        let version = runtime.version().await;
        let images = runtime.list_images().await;
        let network_error = sandbox.network_ready().err();
        state.send_if_modified(|current| {
            let before = current.clone();
            if let Ok(version) = &version {
                current.last_sync = Some(Instant::now());
                current.version = Some(version.clone());
            }
            if let Ok(images) = &images {
                current.images = node_images(images);
            }
            current.network_error = network_error.clone();
            let others_changed = RuntimeState {
                last_sync: before.last_sync,
                ..current.clone()
            } != before;
            others_changed || before.last_sync.is_none() != current.last_sync.is_none()
        });
        if let Err(e) = version {
            tracing::warn!(error = %e, "container runtime is not answering");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(RUNTIME_CHECK_PERIOD) => {}
        }
    }
}

/// Images as Node.status.images lists them: largest first.
fn node_images(images: &[ImageSummary]) -> Vec<ContainerImage> {
    let mut images: Vec<&ImageSummary> = images.iter().collect();
    images.sort_by_key(|image| std::cmp::Reverse(image.size));
    images
        .into_iter()
        .map(|image| ContainerImage {
            names: Some(image.names.clone()),
            size_bytes: i64::try_from(image.size).ok(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_is_unknown_then_up_then_down() {
        let now = Instant::now();
        let mut state = RuntimeState::default();
        assert_eq!(
            state.runtime_errors(now),
            vec!["container runtime status check may not have completed yet"]
        );
        assert_eq!(state.network_errors(), vec!["network state unknown"]);
        state.last_sync = Some(now);
        assert!(state.runtime_errors(now).is_empty());
        assert_eq!(
            state.runtime_errors(now + RUNTIME_SYNC_THRESHOLD),
            vec!["container runtime is down"]
        );
    }
}
