//! What the node's Ready condition knows about the container runtime and the pod network (upstream's
//! `runtimeState`): refreshed by the runtime health loop, read by the node status loop.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ContainerImage;

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

/// The network error containerd's CRI reports while no CNI configuration is installed, which is what
/// users of upstream's kubelet see on a node without a network plugin.
pub fn cni_not_initialized() -> String {
    "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady \
     message:Network plugin returns error: cni plugin not initialized"
        .to_string()
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
