//! What the runtime knows about a pod's containers, as the kubelet reads it back from containerd: one record
//! per container attempt, identified by the labels the kubelet put on it (upstream's kubecontainer.PodStatus).

use std::collections::HashMap;

use k8s_openapi::jiff::Timestamp;

/// Label: the pod's UID.
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
/// Label: the pod's name.
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
/// Label: the pod's namespace.
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// Label: the container's name in the pod spec.
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// Label: which attempt of the container this is (its restart count when it was created).
pub const LABEL_ATTEMPT: &str = "io.kubernetes.container.restartCount";
/// The container's terminationMessagePolicy, as upstream's annotation.
pub const LABEL_TERMINATION_MESSAGE_POLICY: &str =
    "io.kubernetes.container.terminationMessagePolicy";
/// The host file mounted at the container's terminationMessagePath (upstream finds it among the CRI's
/// mounts; containerd's native API keeps no such list).
pub const LABEL_TERMINATION_MESSAGE_FILE: &str = "ferrokube.io/termination-message-file";

/// Label: set when the kernel killed the container for memory (ours; the CRI keeps this in its own store).
pub const LABEL_OOM_KILLED: &str = "io.ferrokube.container.oomKilled";

/// Label: when the container's process started (RFC 3339), for a restarted kubelet once it has exited.
pub const LABEL_STARTED_AT: &str = "io.ferrokube.container.startedAt";

/// Label: why the container's start failed (ours; containerd's CRI keeps this in its own store).
pub const LABEL_START_ERROR: &str = "io.ferrokube.container.startError";

/// Label: when the container's start failed (RFC 3339).
pub const LABEL_START_FAILED_AT: &str = "io.ferrokube.container.startFailedAt";

/// The exit code of a container whose start failed, as containerd's CRI reports it.
pub const START_ERROR_EXIT_CODE: i32 = 128;

/// The reason of a container whose start failed, as containerd's CRI reports it.
pub const START_ERROR_REASON: &str = "StartError";

/// A container whose start failed at `at` with `message`: exited, as containerd's CRI shows it, so that
/// its restart waits out the same CrashLoopBackOff as a container that ran and exited.
pub fn start_failed(message: &str, at: Timestamp) -> RecordState {
    RecordState::Exited {
        exit_code: START_ERROR_EXIT_CODE,
        reason: START_ERROR_REASON.to_string(),
        started_at: None,
        finished_at: at,
        message: Some(message.to_string()),
    }
}

/// The state the labels of a container without a running task record: its failed start, if any.
pub fn labelled_start_failure(labels: &HashMap<String, String>) -> Option<RecordState> {
    let message = labels.get(LABEL_START_ERROR)?;
    let at = labels.get(LABEL_START_FAILED_AT)?.parse().ok()?;
    Some(start_failed(message, at))
}

/// The state of one container attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordState {
    /// Created, never started (a failed start reads as [`start_failed`]).
    Created,
    /// Running since `started_at`.
    Running {
        /// When the process started.
        started_at: Timestamp,
    },
    /// Exited.
    Exited {
        /// The process's exit code (128 + signal when killed).
        exit_code: i32,
        /// Why, in upstream's words: `Completed`, `Error`, `OOMKilled`.
        reason: String,
        /// When it started, when known.
        started_at: Option<Timestamp>,
        /// When it exited.
        finished_at: Timestamp,
        /// Its termination message, if any.
        message: Option<String>,
    },
}

/// One container attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerRecord {
    /// The runtime's container id.
    pub id: String,
    /// The container's name in the pod spec.
    pub name: String,
    /// The attempt, from 0.
    pub attempt: i32,
    /// The image the pod asked for.
    pub image: String,
    /// The image's id (`sha256:...` of its config) as upstream's imageID shows.
    pub image_id: String,
    /// Its state.
    pub state: RecordState,
}

impl ContainerRecord {
    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        matches!(self.state, RecordState::Running { .. })
    }

    /// The exit code, once exited.
    pub fn exit_code(&self) -> Option<i32> {
        match self.state {
            RecordState::Exited { exit_code, .. } => Some(exit_code),
            _ => None,
        }
    }
}

/// The runtime's view of one pod: its containers' attempts and its sandbox's IPs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodRuntimeStatus {
    /// Every attempt of every container still known to the runtime.
    pub containers: Vec<ContainerRecord>,
    /// The pod's IPs, once its sandbox has them.
    pub ips: Vec<String>,
    /// Whether the sandbox is ready (namespaces made, network set up).
    pub sandbox_ready: bool,
}

impl PodRuntimeStatus {
    /// The newest attempt of container `name`.
    pub fn latest(&self, name: &str) -> Option<&ContainerRecord> {
        self.containers
            .iter()
            .filter(|c| c.name == name)
            .max_by_key(|c| c.attempt)
    }

    /// The attempt of `name` before the newest one.
    pub fn previous(&self, name: &str) -> Option<&ContainerRecord> {
        let latest = self.latest(name)?.attempt;
        self.containers
            .iter()
            .filter(|c| c.name == name && c.attempt < latest)
            .max_by_key(|c| c.attempt)
    }
}

/// The labels a container of `pod` is created with.
pub fn container_labels(
    pod_uid: &str,
    pod_name: &str,
    namespace: &str,
    container: &str,
    attempt: i32,
) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_POD_UID.to_string(), pod_uid.to_string()),
        (LABEL_POD_NAME.to_string(), pod_name.to_string()),
        (LABEL_POD_NAMESPACE.to_string(), namespace.to_string()),
        (LABEL_CONTAINER_NAME.to_string(), container.to_string()),
        (LABEL_ATTEMPT.to_string(), attempt.to_string()),
    ])
}

/// Upstream's reason for an exit: OOMKilled when the kernel killed it for memory, else Completed or Error.
pub fn exit_reason(exit_code: i32, oom_killed: bool) -> &'static str {
    match (oom_killed, exit_code) {
        (true, _) => "OOMKilled",
        (false, 0) => "Completed",
        (false, _) => "Error",
    }
}

/// A record for tests: id `NAME-ATTEMPT`, busybox.
#[cfg(test)]
pub(crate) fn test_record(name: &str, attempt: i32, state: RecordState) -> ContainerRecord {
    ContainerRecord {
        id: format!("{name}-{attempt}"),
        name: name.into(),
        attempt,
        image: "docker.io/library/busybox:latest".into(),
        image_id: "sha256:1".into(),
        state,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use test_record as record;

    #[test]
    fn the_latest_and_previous_attempts_are_found() {
        let exited = RecordState::Exited {
            exit_code: 1,
            reason: "Error".into(),
            started_at: None,
            finished_at: Timestamp::UNIX_EPOCH,
            message: None,
        };
        let status = PodRuntimeStatus {
            containers: vec![
                record("a", 0, exited.clone()),
                record("a", 2, RecordState::Created),
                record("a", 1, exited),
                record("b", 0, RecordState::Created),
            ],
            ..PodRuntimeStatus::default()
        };
        assert_eq!(status.latest("a").map(|c| c.attempt), Some(2));
        assert_eq!(status.previous("a").map(|c| c.attempt), Some(1));
        assert_eq!(status.previous("b"), None);
        assert_eq!(status.latest("c"), None);
        assert_eq!(exit_reason(137, true), "OOMKilled");
        assert_eq!(exit_reason(0, false), "Completed");
        assert_eq!(exit_reason(2, false), "Error");
    }
}
