//! What the scheduler writes besides bindings: the PodScheduled condition and nomination, and the
//! deletion of preemption victims (upstream `updatePod` and `prepareCandidate`).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{ObjectReference, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

use super::Scheduler;
use super::cycle::Failure;
use crate::framework::{Nominator, PodInfo, PostFilterResult};

/// The reference events use for `pod`.
pub fn object_reference(pod: &Pod) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        resource_version: pod.metadata.resource_version.clone(),
        ..Default::default()
    }
}

fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.is_not_found())
}

fn pods(scheduler: &Scheduler, pod: &Pod) -> Api<Pod> {
    Api::namespaced(
        scheduler.client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    )
}

/// Whether `pod` already carries the condition and nomination the failure would write.
fn condition_unchanged(pod: &Pod, failure: &Failure) -> bool {
    let status = pod.status.as_ref();
    let same_condition = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"))
        .is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some(failure.reason)
                && c.message.as_deref() == Some(failure.message.as_str())
        });
    let nominated = status
        .and_then(|s| s.nominated_node_name.as_deref())
        .unwrap_or_default();
    same_condition
        && failure
            .nominated_node
            .as_deref()
            .is_none_or(|node| node == nominated)
}

impl Scheduler {
    /// Sets PodScheduled=False with the failure's reason and message, and nominatedNodeName if preemption
    /// chose a node. Nothing is written when nothing would change.
    pub(super) async fn update_pod_scheduled_condition(&self, pod: &Pod, failure: &Failure) {
        if condition_unchanged(pod, failure) {
            return;
        }
        let condition = PodCondition {
            type_: "PodScheduled".into(),
            status: "False".into(),
            reason: Some(failure.reason.into()),
            message: Some(failure.message.clone()),
            last_transition_time: Some(Time(k8s_openapi::jiff::Timestamp::now())),
            ..Default::default()
        };
        let mut status = json!({ "conditions": [condition] });
        match failure.nominated_node.as_deref() {
            Some("") => status["nominatedNodeName"] = serde_json::Value::Null,
            Some(node) => status["nominatedNodeName"] = json!(node),
            None => {}
        }
        self.patch_status(
            pod,
            Patch::Strategic(json!({ "status": status })),
            "updating the PodScheduled condition",
        )
        .await;
    }

    /// Patches `pod`'s status; failures are logged (a pod deleted meanwhile needs nothing).
    async fn patch_status(&self, pod: &Pod, patch: Patch<serde_json::Value>, what: &str) {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let result = pods(self, pod)
            .patch_status(name, &PatchParams::default(), &patch)
            .await;
        if let Err(e) = result
            && !is_not_found(&e)
        {
            tracing::warn!(pod = name, "{what}: {e}");
        }
    }

    /// Evicts the victims (DisruptionTarget condition, delete, Preempted event) and clears the nominations
    /// of lower-priority pods nominated to the same node.
    pub(super) async fn prepare_candidate(
        &self,
        profile: &str,
        preemptor: &Arc<PodInfo>,
        result: &PostFilterResult,
    ) {
        for victim in &result.victims {
            // Graceful deletion already started: upstream makes no further call and sends no event.
            if victim.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let name = victim.metadata.name.as_deref().unwrap_or_default();
            let condition = PodCondition {
                type_: "DisruptionTarget".into(),
                status: "True".into(),
                reason: Some("PreemptionByScheduler".into()),
                message: Some(format!(
                    "{profile}: preempting to accommodate a higher priority pod"
                )),
                last_transition_time: Some(Time(k8s_openapi::jiff::Timestamp::now())),
                ..Default::default()
            };
            let patch = json!({ "status": { "conditions": [condition] } });
            self.patch_status(victim, Patch::Strategic(patch), "marking preemption victim")
                .await;
            match pods(self, victim)
                .delete(name, &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    tracing::warn!(pod = name, "deleting preemption victim: {e}");
                    continue;
                }
            }
            if let Some(recorder) = self.profiles.get(profile).map(|p| &p.recorder) {
                recorder.normal(
                    &object_reference(victim),
                    "Preempted",
                    "Preempting",
                    format!(
                        "Preempted by pod {} on node {}",
                        preemptor.uid(),
                        result.nominated_node_name
                    ),
                );
            }
        }
        let lower = self
            .queue
            .nominator
            .nominated_pods_for_node(&result.nominated_node_name)
            .into_iter()
            .filter(|p| p.priority() < preemptor.priority());
        for pod in lower {
            self.queue.nominator.delete(pod.uid());
            let patch = json!({ "status": { "nominatedNodeName": null } });
            self.patch_status(&pod.pod, Patch::Merge(patch), "clearing nominatedNodeName")
                .await;
        }
    }
}
