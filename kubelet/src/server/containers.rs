//! Finding what a streaming or run request names: the pod as the apiserver has it, and its running
//! container as the runtime has it (upstream's `findContainer` over the runtime's running pods).

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use k8s_openapi::api::core::v1::Pod;

use super::{ServerContext, text};
use crate::kuberuntime::record::{LABEL_CONTAINER_NAME, LABEL_POD_UID};
use crate::runtime::{Runtime, RuntimeError, TaskStatus};

/// A request's `{podNamespace}/{podID}[/{uid}]` and optional container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The pod UID the path named, if it did.
    pub uid: Option<String>,
}

impl Target {
    /// The pod bound to this node.
    pub fn pod(&self, context: &ServerContext) -> Option<Arc<Pod>> {
        context.pod(&self.namespace, &self.pod)
    }

    /// The UID the runtime's pod is looked up by: the path's, else the API pod's (as upstream's `FindPod`,
    /// which matches by UID when one is given).
    pub fn runtime_uid(&self, pod: &Pod) -> String {
        self.uid
            .clone()
            .unwrap_or_else(|| pod.metadata.uid.clone().unwrap_or_default())
    }

    /// The pod's full name as upstream prints it in messages (`name_namespace`).
    pub fn full_name(&self) -> String {
        format!("{}_{}", self.pod, self.namespace)
    }
}

/// Upstream's answer for a pod not bound to this node.
pub fn pod_not_found() -> Response {
    text(StatusCode::NOT_FOUND, "pod does not exist")
}

/// The id of the running container `name` of runtime pod `pod_uid`, `None` when there is none.
pub async fn running_container(
    runtime: &Runtime,
    pod_uid: &str,
    name: &str,
) -> Result<Option<String>, RuntimeError> {
    if pod_uid.is_empty() {
        return Ok(None);
    }
    for summary in runtime
        .list_containers_labelled(LABEL_POD_UID, pod_uid)
        .await?
    {
        if summary.labels.get(LABEL_CONTAINER_NAME).map(String::as_str) != Some(name) {
            continue;
        }
        if let Some(state) = runtime.task_state(&summary.id).await?
            && state.status == TaskStatus::Running
        {
            return Ok(Some(summary.id));
        }
    }
    Ok(None)
}
