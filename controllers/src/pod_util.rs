//! Pod predicates and lookups every workload controller shares (upstream pkg/api/v1/pod/util.go and the pod
//! helpers of pkg/controller/controller_utils.go): active, terminating, ready, available; the owning
//! controller; the pod-by-controller index; when to look at availability again.

use std::sync::Arc;
use std::time::Duration;

use component_base::informer::IndexFunc;
use k8s_openapi::api::core::v1::PodCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;

use crate::pod::Pod;

/// Name of the pod index by controller ([`pod_controller_index`], upstream `PodControllerIndex`).
pub const POD_CONTROLLER_INDEX: &str = "podController";

/// `namespace/name`, the key pod expectations track (upstream `PodKey`).
pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The owner reference marked `controller: true`, if any (upstream `metav1.GetControllerOf`).
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
}

/// Whether `meta`'s controller is the object with `owner_uid` (upstream `metav1.IsControlledBy`).
pub fn is_controlled_by(meta: &ObjectMeta, owner_uid: &str) -> bool {
    controller_of(meta).is_some_and(|r| r.uid == owner_uid)
}

/// Index value of pods controlled by `owner_uid` in `namespace`, or of orphans in `namespace` when `None`
/// (upstream `PodControllerIndexKey`, keyed by UID alone since it is unique).
pub fn pod_controller_index_key(namespace: &str, owner_uid: Option<&str>) -> String {
    match owner_uid {
        Some(uid) => format!("{namespace}/{uid}"),
        None => namespace.to_string(),
    }
}

/// Indexes pods by their controller (or as orphans of their namespace); register it on the shared pod
/// informer under [`POD_CONTROLLER_INDEX`] (upstream `AddPodControllerIndexer`).
pub fn pod_controller_index() -> IndexFunc<Pod> {
    Arc::new(|pod: &Pod| {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let owner = controller_of(&pod.metadata).map(|r| r.uid.as_str());
        vec![pod_controller_index_key(namespace, owner)]
    })
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// Whether the pod is Succeeded or Failed (upstream `podutil.IsPodTerminal`).
pub fn is_pod_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// Not terminal and not being deleted: the pod counts towards a controller's replicas (upstream
/// `IsPodActive`).
pub fn is_pod_active(pod: &Pod) -> bool {
    !is_pod_terminal(pod) && pod.metadata.deletion_timestamp.is_none()
}

/// Being deleted but not terminal yet (upstream `IsPodTerminating`).
pub fn is_pod_terminating(pod: &Pod) -> bool {
    !is_pod_terminal(pod) && pod.metadata.deletion_timestamp.is_some()
}

/// The pod's Ready condition (upstream `GetPodReadyCondition`).
pub fn pod_ready_condition(pod: &Pod) -> Option<&PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
}

/// Whether the pod's Ready condition is True (upstream `IsPodReady`).
pub fn is_pod_ready(pod: &Pod) -> bool {
    pod_ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// When a ready pod became Ready; `None` when not ready or unknown (upstream `podReadyTime`'s zero time).
pub fn pod_ready_time(pod: &Pod) -> Option<Timestamp> {
    if !is_pod_ready(pod) {
        return None;
    }
    pod_ready_condition(pod)?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

/// Whether the pod has been Ready for more than `min_ready_seconds` at `now`; with 0 any ready pod is
/// available (upstream `podutil.IsPodAvailable`).
pub fn is_pod_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    if !is_pod_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    let Some(since) = pod_ready_condition(pod).and_then(|c| c.last_transition_time.as_ref()) else {
        return false;
    };
    let wait = k8s_openapi::jiff::SignedDuration::from_secs(i64::from(min_ready_seconds));
    since.0.checked_add(wait).is_ok_and(|at| at < now)
}

/// How long until a ready but not yet available pod becomes available; `None` if it never will by waiting
/// or already is (upstream `nextPodAvailabilityCheck`).
pub fn next_pod_availability_check(
    pod: &Pod,
    min_ready_seconds: i32,
    now: Timestamp,
) -> Option<Duration> {
    if min_ready_seconds <= 0 {
        return None;
    }
    let since = pod_ready_time(pod)?;
    let at = since
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(i64::from(
            min_ready_seconds,
        )))
        .ok()?;
    let wait = at.duration_since(now);
    (wait.is_positive())
        .then(|| Duration::try_from(wait).ok())
        .flatten()
}

/// The soonest [`next_pod_availability_check`] among `pods` (upstream `FindMinNextPodAvailabilityCheck`,
/// evaluated at the same `now` the caller computed availability with).
pub fn min_next_pod_availability_check<'a>(
    pods: impl IntoIterator<Item = &'a Pod>,
    min_ready_seconds: i32,
    now: Timestamp,
) -> Option<Duration> {
    pods.into_iter()
        .filter_map(|p| next_pod_availability_check(p, min_ready_seconds, now))
        .min()
}

/// Upstream's `controller.kubernetes.io/pod-deletion-cost` annotation.
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// The pod's deletion cost; 0 when absent or malformed (upstream `GetDeletionCostFromPodAnnotations`, whose
/// errors callers ignore).
pub fn pod_deletion_cost(pod: &Pod) -> i32 {
    let Some(value) = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_DELETION_COST))
    else {
        return 0;
    };
    // "+10" and "008" are rejected upstream; only "0" may start with a zero.
    let digits = value.strip_prefix('-').unwrap_or(value);
    let valid_first = value == "0"
        || value.starts_with('-')
        || value
            .chars()
            .next()
            .is_some_and(|c| ('1'..='9').contains(&c));
    if !valid_first || digits.is_empty() {
        return 0;
    }
    value.parse::<i32>().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::PodStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("valid")
    }

    fn ready_pod(since: i64) -> Pod {
        Pod {
            status: Some(PodStatus {
                phase: Some("Running".into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(ts(since))),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn active_terminal_terminating() {
        let mut pod = Pod::default();
        assert!(is_pod_active(&pod));
        pod.metadata.deletion_timestamp = Some(Time(ts(1)));
        assert!(!is_pod_active(&pod));
        assert!(is_pod_terminating(&pod));
        pod.status = Some(PodStatus {
            phase: Some("Failed".into()),
            ..Default::default()
        });
        assert!(
            !is_pod_terminating(&pod),
            "terminal pods are not terminating"
        );
        pod.metadata.deletion_timestamp = None;
        assert!(!is_pod_active(&pod));
    }

    #[test]
    fn availability_honours_min_ready_seconds() {
        let pod = ready_pod(1000);
        assert!(is_pod_ready(&pod));
        assert!(is_pod_available(&pod, 0, ts(1000)));
        assert!(!is_pod_available(&pod, 10, ts(1005)));
        assert!(!is_pod_available(&pod, 10, ts(1010)), "strictly after");
        assert!(is_pod_available(&pod, 10, ts(1011)));
        assert!(!is_pod_available(&Pod::default(), 0, ts(1)));
        assert_eq!(
            next_pod_availability_check(&pod, 10, ts(1004)),
            Some(Duration::from_secs(6))
        );
        assert_eq!(next_pod_availability_check(&pod, 10, ts(1011)), None);
        assert_eq!(next_pod_availability_check(&pod, 0, ts(1004)), None);
        let later = ready_pod(1002);
        assert_eq!(
            min_next_pod_availability_check([&later, &pod], 10, ts(1004)),
            Some(Duration::from_secs(6))
        );
    }

    #[test]
    fn controller_index_and_keys() {
        let mut pod = Pod::default();
        pod.metadata.namespace = Some("ns".into());
        pod.metadata.name = Some("p".into());
        assert_eq!(pod_key(&pod), "ns/p");
        assert_eq!(pod_controller_index()(&pod), ["ns"]);
        pod.metadata.owner_references = Some(vec![
            OwnerReference {
                uid: "not-controller".into(),
                ..Default::default()
            },
            OwnerReference {
                uid: "u1".into(),
                controller: Some(true),
                ..Default::default()
            },
        ]);
        assert_eq!(pod_controller_index()(&pod), ["ns/u1"]);
        assert!(is_controlled_by(&pod.metadata, "u1"));
        assert!(!is_controlled_by(&pod.metadata, "not-controller"));
    }

    #[test]
    fn deletion_cost_parses_like_upstream() {
        let mut pod = Pod::default();
        for (value, cost) in [
            ("5", 5),
            ("-3", -3),
            ("0", 0),
            ("+10", 0),
            ("008", 0),
            ("x", 0),
            ("", 0),
            ("99999999999", 0),
        ] {
            pod.metadata.annotations = Some([(POD_DELETION_COST.to_string(), value.into())].into());
            assert_eq!(pod_deletion_cost(&pod), cost, "{value}");
        }
    }
}
