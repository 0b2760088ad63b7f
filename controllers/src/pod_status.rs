//! Pod status writes shared by the controllers that act on pods they do not own (upstream's
//! `apipod.UpdatePodCondition` and `utilpod.PatchPodStatus`): conditions with upstream's transition-time
//! rules, written as a strategic merge patch whose `metadata.uid` is a precondition.

use k8s_openapi::api::core::v1::PodCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::pod::Pod;

/// A condition as upstream controllers set it: observedGeneration is the pod's generation
/// (PodObservedGenerationTracking is on in 1.36), transition time now.
pub fn condition(
    pod: &Pod,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
) -> PodCondition {
    PodCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        observed_generation: pod.metadata.generation,
        last_transition_time: Some(Time(Timestamp::now())),
        ..Default::default()
    }
}

/// Upstream's `UpdatePodCondition`: `wanted` with the old transition time when the status is unchanged,
/// or `None` when nothing would change.
pub fn updated_condition(pod: &Pod, mut wanted: PodCondition) -> Option<PodCondition> {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_ref());
    let Some(old) = conditions.and_then(|c| c.iter().find(|c| c.type_ == wanted.type_)) else {
        return Some(wanted);
    };
    if old.status == wanted.status {
        wanted.last_transition_time = old.last_transition_time.clone();
    }
    let same = old.status == wanted.status
        && old.reason == wanted.reason
        && old.message == wanted.message
        && old.last_probe_time == wanted.last_probe_time;
    (!same).then_some(wanted)
}

/// Patches `pod`'s status with `status` (a strategic merge patch body for `.status`); the pod's UID is a
/// precondition, so a pod recreated under the same name is never touched.
pub async fn patch_status(api: &Api<Pod>, pod: &Pod, status: Value) -> Result<(), kube::Error> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let patch = json!({ "metadata": { "uid": pod.metadata.uid }, "status": status });
    api.patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .map(|_| ())
}

/// Whether `e` is the apiserver's NotFound.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.is_not_found())
}

/// Whether `e` is the apiserver's Conflict.
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.is_conflict())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::PodStatus;

    fn pod_with(conditions: Vec<PodCondition>) -> Pod {
        Pod {
            status: Some(PodStatus {
                conditions: Some(conditions),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn unchanged_condition_is_not_rewritten() {
        let pod = Pod::default();
        let wanted = condition(&pod, "DisruptionTarget", "True", "R", "M");
        let pod = pod_with(vec![wanted.clone()]);
        assert!(updated_condition(&pod, wanted).is_none());
    }

    #[test]
    fn changed_status_is_written_with_new_transition_time() {
        let pod = Pod::default();
        let mut old = condition(&pod, "Ready", "True", "", "");
        old.last_transition_time = Some(Time(Timestamp::UNIX_EPOCH));
        let pod = pod_with(vec![old]);
        let wanted = condition(&pod, "Ready", "False", "", "");
        let got = updated_condition(&pod, wanted).unwrap();
        assert_ne!(got.last_transition_time, Some(Time(Timestamp::UNIX_EPOCH)));
    }
}
