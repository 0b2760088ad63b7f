//! Upstream's pod startup latency tracker (pkg/kubelet/util/pod_startup_latency_tracker.go): from a pod's
//! creation to when the kubelet observes, on its watch, every container of the pod running. The SLI
//! excludes init containers' run time and image pulls (this kubelet pulls none: images are imported) and
//! stateful pods (a volume other than secret, configMap, downwardAPI, emptyDir or projected).

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Durations to observe once a pod has started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Startup {
    /// Creation to started, everything included (`kubelet_pod_start_total_duration_seconds`).
    pub total: SignedDuration,
    /// The SLI (`kubelet_pod_start_sli_duration_seconds`), `None` for a stateful pod.
    pub sli: Option<SignedDuration>,
}

#[derive(Debug, Default)]
struct PodState {
    recorded: bool,
}

/// The pods being tracked, by UID.
#[derive(Debug, Default)]
pub struct StartupTracker {
    pods: HashMap<String, PodState>,
    excluded: HashSet<String>,
}

impl StartupTracker {
    /// The kubelet's watch delivered `pod` at `when`; returns the durations the first time every
    /// container is seen running.
    pub fn observed(&mut self, pod: &Pod, when: Timestamp) -> Option<Startup> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let status = pod.status.clone().unwrap_or_default();
        if matches!(status.phase.as_deref(), Some("Failed" | "Succeeded")) {
            self.pods.remove(&uid);
            return None;
        }
        if unschedulable(pod) {
            self.pods.remove(&uid);
            self.excluded.insert(uid);
            return None;
        }
        let Some(state) = self.pods.get_mut(&uid) else {
            // Only pods seen before they started are tracked (a restarted kubelet's pods are not).
            if !self.excluded.contains(&uid) && status.start_time.is_none() {
                self.pods.insert(uid, PodState::default());
            }
            return None;
        };
        if state.recorded || !started(pod) {
            return None;
        }
        state.recorded = true;
        let created = pod.metadata.creation_timestamp.as_ref()?.0;
        let total = when.duration_since(created);
        let sli = (!stateful(pod)).then(|| total - init_runtime(pod));
        Some(Startup { total, sli })
    }

    /// Pod `uid` is gone.
    pub fn forget(&mut self, uid: &str) {
        self.pods.remove(uid);
        self.excluded.remove(uid);
    }
}

/// hasPodStartedSLO: every container has been seen running.
fn started(pod: &Pod) -> bool {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref());
    let Some(statuses) = statuses else {
        return false;
    };
    !statuses.is_empty()
        && statuses.iter().all(|c| {
            c.state
                .as_ref()
                .and_then(|s| s.running.as_ref())
                .is_some_and(|r| r.started_at.is_some())
        })
}

/// PodScheduled=False: not immediately schedulable, so outside the SLI.
fn unschedulable(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "PodScheduled" && c.status == "False")
        })
}

/// isStatefulPod.
fn stateful(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|volumes| {
            volumes.iter().any(|v| {
                v.secret.is_none()
                    && v.config_map.is_none()
                    && v.downward_api.is_none()
                    && v.empty_dir.is_none()
                    && v.projected.is_none()
            })
        })
}

/// How long the init containers ran, from their terminated states.
fn init_runtime(pod: &Pod) -> SignedDuration {
    pod.status
        .as_ref()
        .and_then(|s| s.init_container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let terminated = c.state.as_ref()?.terminated.as_ref()?;
            let started = terminated.started_at.as_ref()?.0;
            let finished = terminated.finished_at.as_ref()?.0;
            Some(finished.duration_since(started))
        })
        .fold(SignedDuration::ZERO, |sum, d| {
            sum + d.max(SignedDuration::ZERO)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    fn pod(status: serde_json::Value, volumes: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "uid": "u", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "main"}], "volumes": volumes},
            "status": status,
        }))
        .unwrap()
    }

    fn running() -> serde_json::Value {
        json!({
            "phase": "Running",
            "startTime": "2026-01-01T00:00:01Z",
            "initContainerStatuses": [{
                "name": "init", "ready": false, "restartCount": 0, "image": "", "imageID": "",
                "state": {"terminated": {"exitCode": 0,
                    "startedAt": "2026-01-01T00:00:01Z", "finishedAt": "2026-01-01T00:00:03Z"}},
            }],
            "containerStatuses": [{
                "name": "main", "ready": true, "restartCount": 0, "image": "", "imageID": "",
                "state": {"running": {"startedAt": "2026-01-01T00:00:04Z"}},
            }],
        })
    }

    #[test]
    fn a_pod_seen_before_it_started_is_recorded_once_running() {
        let created = pod(json!({"phase": "Pending"}), json!([]))
            .metadata
            .creation_timestamp;
        let created = created.unwrap().0;
        let mut tracker = StartupTracker::default();
        assert_eq!(
            tracker.observed(&pod(json!({"phase": "Pending"}), json!([])), created),
            None
        );
        let when = created + SignedDuration::from_secs(5);
        let startup = tracker.observed(&pod(running(), json!([])), when).unwrap();
        assert_eq!(startup.total, SignedDuration::from_secs(5));
        assert_eq!(
            startup.sli,
            Some(SignedDuration::from_secs(3)),
            "init ran 2 s"
        );
        assert_eq!(tracker.observed(&pod(running(), json!([])), when), None);
    }

    #[test]
    fn pods_already_started_unschedulable_or_stateful_are_left_out_of_the_sli() {
        let mut tracker = StartupTracker::default();
        assert_eq!(tracker.observed(&pod(running(), json!([])), at(1)), None);
        assert_eq!(tracker.observed(&pod(running(), json!([])), at(2)), None);

        let mut tracker = StartupTracker::default();
        let unschedulable = json!({"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False"}]});
        assert_eq!(
            tracker.observed(&pod(unschedulable, json!([])), at(1)),
            None
        );
        assert_eq!(tracker.observed(&pod(json!({}), json!([])), at(1)), None);
        assert_eq!(tracker.observed(&pod(running(), json!([])), at(2)), None);

        let mut tracker = StartupTracker::default();
        let volumes = json!([{"name": "data", "hostPath": {"path": "/data"}}]);
        tracker.observed(&pod(json!({"phase": "Pending"}), volumes.clone()), at(1));
        let startup = tracker.observed(&pod(running(), volumes), at(1_767_225_610));
        assert_eq!(startup.map(|s| s.sli), Some(None));
    }
}
