//! The status a ReplicaSet or ReplicationController reports (upstream `calculateStatus` and the condition
//! helpers of pkg/controller/replicaset/replica_set_utils.go): counts of its active pods, and the
//! ReplicaFailure condition while creating or deleting pods fails.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::kind::{Condition, ReplicaStatus};
use crate::pod::Pod;
use crate::pod_util::{is_pod_available, is_pod_ready};

/// The condition type set while pods cannot be created or deleted.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// What the last attempt to reach spec.replicas did wrong, for the ReplicaFailure condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManageFailure {
    /// The error's message (the apiserver's, for API errors).
    pub message: String,
}

/// Inputs of [`calculate_status`] that come from the controlling object.
pub struct StatusInputs<'a> {
    /// The current status.
    pub current: ReplicaStatus,
    /// spec.replicas.
    pub replicas: i32,
    /// spec.minReadySeconds.
    pub min_ready_seconds: i32,
    /// The template's labels (for fullyLabeledReplicas).
    pub template_labels: &'a BTreeMap<String, String>,
    /// Whether terminatingReplicas is reported.
    pub report_terminating: bool,
}

/// The new status from the claimed active pods, the claimed terminating pods and the outcome of managing
/// replicas (upstream `calculateStatus`; observedGeneration is left to the writer).
pub fn calculate_status<'a>(
    inputs: &StatusInputs<'_>,
    active: impl IntoIterator<Item = &'a Pod>,
    terminating: usize,
    failure: Option<&ManageFailure>,
    now: Timestamp,
) -> ReplicaStatus {
    let mut status = inputs.current.clone();
    let (mut count, mut fully_labeled, mut ready, mut available) = (0, 0, 0, 0);
    for pod in active {
        count += 1;
        let labels = pod.metadata.labels.as_ref();
        let has_all = inputs
            .template_labels
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v));
        if has_all {
            fully_labeled += 1;
        }
        if is_pod_ready(pod) {
            ready += 1;
            if is_pod_available(pod, inputs.min_ready_seconds, now) {
                available += 1;
            }
        }
    }
    let has_failure = status.conditions.iter().any(|c| c.type_ == REPLICA_FAILURE);
    match failure {
        Some(failure) if !has_failure => {
            // The sign of the difference says which way it failed; at zero upstream leaves the reason empty.
            let diff = i64::from(count) - i64::from(inputs.replicas);
            let reason = match diff.cmp(&0) {
                std::cmp::Ordering::Less => "FailedCreate",
                std::cmp::Ordering::Greater => "FailedDelete",
                std::cmp::Ordering::Equal => "",
            };
            set_condition(
                &mut status.conditions,
                Condition {
                    type_: REPLICA_FAILURE.to_string(),
                    status: "True".to_string(),
                    reason: Some(reason.to_string()),
                    message: Some(failure.message.clone()),
                    last_transition_time: Some(Time(now)),
                },
            );
        }
        None if has_failure => status.conditions.retain(|c| c.type_ != REPLICA_FAILURE),
        _ => {}
    }
    status.replicas = count;
    status.fully_labeled_replicas = fully_labeled;
    status.ready_replicas = ready;
    status.available_replicas = available;
    status.terminating_replicas = inputs
        .report_terminating
        .then(|| i32::try_from(terminating).unwrap_or(i32::MAX));
    status
}

/// Sets `condition` unless one of its type with the same status and reason is there (upstream
/// `SetCondition`: the new condition goes last).
pub fn set_condition(conditions: &mut Vec<Condition>, condition: Condition) {
    if conditions.iter().any(|c| {
        c.type_ == condition.type_ && c.status == condition.status && c.reason == condition.reason
    }) {
        return;
    }
    conditions.retain(|c| c.type_ != condition.type_);
    conditions.push(condition);
}

/// Whether writing `new` (with `generation` observed) would change anything (upstream
/// `updateReplicaSetStatus`'s early return).
pub fn status_changed(current: &ReplicaStatus, new: &ReplicaStatus, generation: i64) -> bool {
    current.replicas != new.replicas
        || current.fully_labeled_replicas != new.fully_labeled_replicas
        || current.ready_replicas != new.ready_replicas
        || current.available_replicas != new.available_replicas
        || current.terminating_replicas != new.terminating_replicas
        || current.observed_generation != generation
        || current.conditions != new.conditions
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodCondition;

    use crate::pod::PodStatus;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("valid")
    }

    fn pod(labels: &[(&str, &str)], ready_since: Option<i64>) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        pod.status = Some(PodStatus {
            conditions: ready_since.map(|s| {
                vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(ts(s))),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        });
        pod
    }

    fn inputs(template: &BTreeMap<String, String>, min_ready: i32) -> StatusInputs<'_> {
        StatusInputs {
            current: ReplicaStatus::default(),
            replicas: 3,
            min_ready_seconds: min_ready,
            template_labels: template,
            report_terminating: true,
        }
    }

    #[test]
    fn counts_labeled_ready_available_terminating() {
        let template: BTreeMap<String, String> = [("app", "web"), ("tier", "fe")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        let pods = [
            pod(&[("app", "web"), ("tier", "fe")], Some(100)),
            pod(&[("app", "web")], Some(195)),
            pod(&[("app", "web"), ("tier", "fe"), ("x", "y")], None),
        ];
        let status = calculate_status(&inputs(&template, 10), &pods, 2, None, ts(200));
        assert_eq!(
            (
                status.replicas,
                status.fully_labeled_replicas,
                status.ready_replicas,
                status.available_replicas
            ),
            (3, 2, 2, 1)
        );
        assert_eq!(status.terminating_replicas, Some(2));
        let mut rc = inputs(&template, 0);
        rc.report_terminating = false;
        let status = calculate_status(&rc, &pods, 2, None, ts(200));
        assert_eq!(status.available_replicas, 2);
        assert_eq!(status.terminating_replicas, None);
    }

    #[test]
    fn replica_failure_is_set_once_and_removed_when_fine() {
        let template = BTreeMap::new();
        let failure = ManageFailure {
            message: "exceeded quota".into(),
        };
        let pods = [pod(&[], None)];
        let failed = calculate_status(&inputs(&template, 0), &pods, 0, Some(&failure), ts(1));
        assert_eq!(failed.conditions.len(), 1);
        let c = &failed.conditions[0];
        assert_eq!(
            (c.type_.as_str(), c.status.as_str()),
            ("ReplicaFailure", "True")
        );
        assert_eq!(c.reason.as_deref(), Some("FailedCreate"));
        assert_eq!(c.message.as_deref(), Some("exceeded quota"));

        // A later failure keeps the first condition (and its time) unchanged.
        let mut again = inputs(&template, 0);
        again.current = failed.clone();
        let other = ManageFailure {
            message: "other".into(),
        };
        let still = calculate_status(&again, &pods, 0, Some(&other), ts(50));
        assert_eq!(still.conditions, failed.conditions);

        let fine = calculate_status(&again, &pods, 0, None, ts(60));
        assert!(fine.conditions.is_empty());

        let mut too_many = inputs(&template, 0);
        too_many.replicas = 0;
        let deleting = calculate_status(&too_many, &pods, 0, Some(&failure), ts(1));
        assert_eq!(
            deleting.conditions[0].reason.as_deref(),
            Some("FailedDelete")
        );
    }

    #[test]
    fn unchanged_status_is_not_written() {
        let s = ReplicaStatus {
            observed_generation: 2,
            ..Default::default()
        };
        assert!(!status_changed(&s, &s, 2));
        assert!(
            status_changed(&s, &s, 3),
            "a new generation is always observed"
        );
        let mut t = s.clone();
        t.ready_replicas = 1;
        assert!(status_changed(&s, &t, 2));
    }
}
