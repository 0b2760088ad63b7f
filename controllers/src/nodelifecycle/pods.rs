//! Pods on unhealthy nodes (upstream's `MarkPodsNotReady` and `processPod`): their Ready condition is set
//! False, since no kubelet is left to say otherwise.

use k8s_openapi::api::core::v1::{ObjectReference, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::{Api, Client};
use serde_json::json;

use component_base::events::EventRecorder;

use crate::pod::Pod;
use crate::pod_status;

/// The Ready condition to write for a pod on a not-Ready node, `None` when it has none or it is False.
pub fn not_ready_condition(pod: &Pod) -> Option<PodCondition> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    let ready = conditions.iter().find(|c| c.type_ == "Ready")?;
    let wanted = PodCondition {
        status: "False".into(),
        last_transition_time: Some(Time(Timestamp::now())),
        ..ready.clone()
    };
    pod_status::updated_condition(pod, wanted)
}

/// Upstream's `MarkPodsNotReady`: sets Ready=False on the pods bound to `node_name`, recording a
/// NodeNotReady warning on each; the first error is returned after trying them all.
pub async fn mark_pods_not_ready(
    client: &Client,
    recorder: &EventRecorder,
    pods: &[std::sync::Arc<Pod>],
    node_name: &str,
) -> Result<(), kube::Error> {
    let mut first_error = None;
    for pod in pods {
        let bound = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        if bound != Some(node_name) {
            continue;
        }
        let Some(condition) = not_ready_condition(pod) else {
            continue;
        };
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        tracing::debug!(pod = ?pod.metadata.name, "Updating ready status of pod to false");
        let api = Api::<Pod>::namespaced(client.clone(), namespace);
        match pod_status::patch_status(&api, pod, json!({ "conditions": [condition] })).await {
            Err(e) if pod_status::is_not_found(&e) => continue,
            Err(e) => {
                tracing::info!(pod = ?pod.metadata.name, "Failed to update status for pod: {e}");
                first_error.get_or_insert(e);
            }
            Ok(()) => {}
        }
        recorder.warning(
            &pod_reference(pod),
            "NodeNotReady",
            "MarkPodNotReady",
            "Node is not ready".into(),
        );
    }
    first_error.map_or(Ok(()), Err)
}

fn pod_reference(pod: &Pod) -> ObjectReference {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::PodStatus;

    fn pod(ready: Option<&str>) -> Pod {
        Pod {
            status: Some(PodStatus {
                conditions: ready.map(|s| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: s.into(),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn ready_pods_are_marked_not_ready() {
        let got = not_ready_condition(&pod(Some("True"))).unwrap();
        assert_eq!(got.status, "False");
        assert!(not_ready_condition(&pod(Some("False"))).is_none());
        assert!(not_ready_condition(&pod(None)).is_none());
    }
}
