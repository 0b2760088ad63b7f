//! DefaultBinder: binds a pod to its node by creating the pod's `binding` subresource (upstream
//! `plugins/defaultbinder`).

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Binding, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};

use crate::framework::{BindPlugin, CycleState, Handle, Plugin, Status};

/// The plugin name.
pub const NAME: &str = "DefaultBinder";

/// The Binding that assigns `pod` to `node`. It carries the pod's UID so that a pod deleted and
/// recreated under the same name meanwhile is not bound by mistake.
pub fn binding_for(pod: &Pod, node: &str) -> Binding {
    Binding {
        metadata: ObjectMeta {
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        target: ObjectReference {
            kind: Some("Node".to_string()),
            name: Some(node.to_string()),
            ..Default::default()
        },
    }
}

/// The DefaultBinder plugin.
#[derive(Clone)]
pub struct DefaultBinder {
    client: Option<kube::Client>,
}

impl DefaultBinder {
    /// Creates the plugin with the handle's client; it has no arguments.
    pub fn new(handle: &Handle) -> Result<Self, String> {
        Ok(Self {
            client: handle.client.clone(),
        })
    }

    async fn bind_pod(&self, pod: &Pod, node: &str) -> Status {
        let Some(client) = self.client.clone() else {
            return Status::error("no API client to bind the pod with");
        };
        let binding = binding_for(pod, node);
        let namespace = binding.metadata.namespace.as_deref().unwrap_or_default();
        let name = binding.metadata.name.as_deref().unwrap_or_default();
        tracing::debug!(pod = %format!("{namespace}/{name}"), node, "Attempting to bind pod to node");
        let pods: Api<Pod> = Api::namespaced(client, namespace);
        match pods
            .create_subresource::<_, kube::core::Status>(
                "binding",
                name,
                &PostParams::default(),
                &binding,
            )
            .await
        {
            Ok(_) => Status::success(),
            // The apiserver's message, as upstream's `AsStatus(err)` reports it.
            Err(kube::Error::Api(status)) => Status::error(status.message),
            Err(error) => Status::error(error.to_string()),
        }
    }
}

impl Plugin for DefaultBinder {
    fn name(&self) -> &'static str {
        NAME
    }

    fn as_bind(&self) -> Option<&dyn BindPlugin> {
        Some(self)
    }
}

impl BindPlugin for DefaultBinder {
    fn bind<'a>(
        &'a self,
        _state: &'a CycleState,
        pod: &'a Pod,
        node: &'a str,
    ) -> BoxFuture<'a, Status> {
        Box::pin(self.bind_pod(pod, node))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::{Code, StaticListers};
    use crate::testing::make_pod;

    #[test]
    fn binding_names_the_pod_and_targets_the_node() {
        let pod = make_pod("foo").namespace("ns").obj();
        let binding = binding_for(&pod, "node1");
        assert_eq!(binding.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(binding.metadata.name.as_deref(), Some("foo"));
        assert_eq!(binding.metadata.uid.as_deref(), Some("foo"));
        assert_eq!(binding.target.kind.as_deref(), Some("Node"));
        assert_eq!(binding.target.name.as_deref(), Some("node1"));
        assert_eq!(binding.target.namespace, None);
    }

    #[test]
    fn bind_without_a_client_is_an_error() {
        let binder = DefaultBinder::new(&Handle::for_tests(StaticListers::default())).unwrap();
        let pod = make_pod("foo").obj();
        let status = futures::executor::block_on(binder.bind(&CycleState::default(), &pod, "n1"));
        assert_eq!(status.code(), Code::Error);
        assert_eq!(status.message(), "no API client to bind the pod with");
    }
}
