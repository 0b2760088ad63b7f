//! Which attempt of a container the logs are read from, by its status (kubelet_pods.go
//! validateContainerLogStatus): the running one, else the terminated one, `previous` the one before.

use k8s_openapi::api::core::v1::{ContainerStatus, PodSpec, PodStatus};

/// Whether `name` is a container, init container or ephemeral container of `spec` (GetContainerSpec).
pub fn has_container(spec: Option<&PodSpec>, name: &str) -> bool {
    let Some(spec) = spec else {
        return false;
    };
    spec.containers.iter().any(|c| c.name == name)
        || spec
            .init_containers
            .iter()
            .flatten()
            .any(|c| c.name == name)
        || spec
            .ephemeral_containers
            .iter()
            .flatten()
            .any(|c| c.name == name)
}

/// A runtime's container ID, `containerd://ID` (kubecontainer.ContainerID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerId {
    /// The runtime, `containerd`.
    pub runtime: String,
    /// The ID in that runtime.
    pub id: String,
}

impl ContainerId {
    /// Splits `type://id`; anything else is an empty ID, as upstream's ParseContainerID leaves it.
    pub fn parse(raw: &str) -> Self {
        let trimmed = raw.trim_matches('"');
        let parts: Vec<&str> = trimmed.split("://").collect();
        match parts.as_slice() {
            [runtime, id] => Self {
                runtime: (*runtime).to_string(),
                id: (*id).to_string(),
            },
            _ => Self {
                runtime: String::new(),
                id: String::new(),
            },
        }
    }
}

impl std::fmt::Display for ContainerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.runtime, self.id)
    }
}

/// The container whose log to read for `container` of pod `pod` with `status`, or upstream's reason why
/// there is none.
pub fn log_container(
    pod: &str,
    status: &PodStatus,
    container: &str,
    previous: bool,
) -> Result<ContainerId, String> {
    let find = |statuses: &Option<Vec<ContainerStatus>>| {
        statuses
            .iter()
            .flatten()
            .find(|s| s.name == container)
            .cloned()
    };
    let Some(status) = find(&status.container_statuses)
        .or_else(|| find(&status.init_container_statuses))
        .or_else(|| find(&status.ephemeral_container_statuses))
    else {
        return Err(format!(
            "container {container:?} in pod {pod:?} is not available"
        ));
    };
    let state = status.state.unwrap_or_default();
    let last_terminated_id = status
        .last_state
        .and_then(|s| s.terminated)
        .map(|t| t.container_id.unwrap_or_default());
    let terminated = |what: &str| format!("container {container:?} in pod {pod:?} is {what}");
    let id = if previous {
        match last_terminated_id {
            Some(id) if !id.is_empty() => id,
            _ => {
                return Err(format!(
                    "previous terminated container {container:?} in pod {pod:?} not found"
                ));
            }
        }
    } else if state.running.is_some() {
        status.container_id.unwrap_or_default()
    } else if let Some(current) = state.terminated {
        match current.container_id.filter(|id| !id.is_empty()) {
            Some(id) => id,
            // The next attempt did not start: the last one's log.
            None => match last_terminated_id {
                Some(id) if !id.is_empty() => id,
                _ => return Err(terminated("terminated")),
            },
        }
    } else if let Some(id) = last_terminated_id {
        if id.is_empty() {
            return Err(terminated("terminated"));
        }
        id
    } else if let Some(waiting) = state.waiting {
        let reason = waiting.reason.unwrap_or_default();
        let why = match reason.as_str() {
            "ErrImagePull" => "image can't be pulled",
            "ImagePullBackOff" => "trying and failing to pull image",
            other => other,
        };
        return Err(format!(
            "container {container:?} in pod {pod:?} is waiting to start: {why}"
        ));
    } else {
        return Err(format!(
            "container {container:?} in pod {pod:?} is waiting to start - no logs yet"
        ));
    };
    Ok(ContainerId::parse(&id))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn status(containers: serde_json::Value) -> PodStatus {
        serde_json::from_value(json!({ "containerStatuses": containers })).unwrap()
    }

    fn pick(s: &PodStatus, previous: bool) -> Result<String, String> {
        log_container("p", s, "c", previous).map(|id| id.to_string())
    }

    #[test]
    fn a_running_container_is_its_current_attempt() {
        let s = status(json!([{
            "name": "c", "image": "i", "imageID": "", "ready": true, "restartCount": 1,
            "containerID": "containerd://now",
            "state": {"running": {}},
            "lastState": {"terminated": {"exitCode": 1, "containerID": "containerd://before"}},
        }]));
        assert_eq!(pick(&s, false), Ok("containerd://now".into()));
        assert_eq!(pick(&s, true), Ok("containerd://before".into()));
    }

    #[test]
    fn previous_without_a_terminated_attempt_is_not_found() {
        let s = status(json!([{
            "name": "c", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
            "containerID": "containerd://now", "state": {"running": {}},
        }]));
        assert_eq!(
            pick(&s, true),
            Err(r#"previous terminated container "c" in pod "p" not found"#.into())
        );
    }

    #[test]
    fn a_terminated_container_without_an_id_falls_back_to_the_last_attempt() {
        let s = status(json!([{
            "name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 1,
            "state": {"terminated": {"exitCode": 0}},
            "lastState": {"terminated": {"exitCode": 1, "containerID": "containerd://before"}},
        }]));
        assert_eq!(pick(&s, false), Ok("containerd://before".into()));
        let s = status(json!([{
            "name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "containerID": "containerd://done"}},
        }]));
        assert_eq!(pick(&s, false), Ok("containerd://done".into()));
        let s = status(json!([{
            "name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0}},
        }]));
        assert_eq!(
            pick(&s, false),
            Err(r#"container "c" in pod "p" is terminated"#.into())
        );
    }

    #[test]
    fn a_waiting_container_after_a_crash_shows_the_crashed_attempt() {
        let s = status(json!([{
            "name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 2,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "containerID": "containerd://crashed"}},
        }]));
        assert_eq!(pick(&s, false), Ok("containerd://crashed".into()));
    }

    #[test]
    fn waiting_containers_say_why() {
        let waiting = |reason: &str| {
            status(json!([{
                "name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": reason}},
            }]))
        };
        assert_eq!(
            pick(&waiting("ContainerCreating"), false),
            Err(r#"container "c" in pod "p" is waiting to start: ContainerCreating"#.into())
        );
        assert_eq!(
            pick(&waiting("ErrImagePull"), false),
            Err(r#"container "c" in pod "p" is waiting to start: image can't be pulled"#.into())
        );
        assert_eq!(
            pick(&waiting("ImagePullBackOff"), false),
            Err(
                r#"container "c" in pod "p" is waiting to start: trying and failing to pull image"#
                    .into()
            )
        );
        let unknown = status(json!([{
            "name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": {},
        }]));
        assert_eq!(
            pick(&unknown, false),
            Err(r#"container "c" in pod "p" is waiting to start - no logs yet"#.into())
        );
    }

    #[test]
    fn a_container_without_status_is_not_available() {
        assert_eq!(
            pick(&PodStatus::default(), false),
            Err(r#"container "c" in pod "p" is not available"#.into())
        );
    }

    #[test]
    fn init_container_statuses_are_searched_too() {
        let s: PodStatus = serde_json::from_value(json!({"initContainerStatuses": [{
            "name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "containerID": "containerd://init", "state": {"running": {}},
        }]}))
        .unwrap();
        assert_eq!(pick(&s, false), Ok("containerd://init".into()));
    }

    #[test]
    fn container_ids_are_split_as_upstream() {
        assert_eq!(
            ContainerId::parse("containerd://abc"),
            ContainerId {
                runtime: "containerd".into(),
                id: "abc".into()
            }
        );
        assert_eq!(ContainerId::parse("abc").to_string(), "://");
        assert_eq!(ContainerId::parse("\"containerd://abc\"").id, "abc");
    }

    #[test]
    fn containers_of_every_kind_are_found_in_the_spec() {
        let spec: PodSpec = serde_json::from_value(json!({
            "containers": [{"name": "main"}],
            "initContainers": [{"name": "init"}],
            "ephemeralContainers": [{"name": "debug"}],
        }))
        .unwrap();
        for name in ["main", "init", "debug"] {
            assert!(has_container(Some(&spec), name), "{name}");
        }
        assert!(!has_container(Some(&spec), "other"));
        assert!(!has_container(None, "main"));
    }
}
