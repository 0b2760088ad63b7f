//! Creating, deleting and patching a controller's pods, with upstream's events (upstream `RealPodControl`
//! and `GetPodFromTemplate` in pkg/controller/controller_utils.go): pods are made from the owner's template
//! with `generateName: <owner>-` and a controller ownerReference; each create and delete is recorded as a
//! SuccessfulCreate/FailedCreate/SuccessfulDelete/FailedDelete event on the owner.

use component_base::client::error_message;
use k8s_openapi::api::core::v1::{self as api, ObjectReference, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};

use component_base::events::EventRecorder;

use crate::pod::Pod;

/// Event reason of a failed pod creation (upstream `FailedCreatePodReason`).
pub const FAILED_CREATE_POD_REASON: &str = "FailedCreate";
/// Event reason of a pod creation (upstream `SuccessfulCreatePodReason`).
pub const SUCCESSFUL_CREATE_POD_REASON: &str = "SuccessfulCreate";
/// Event reason of a failed pod deletion (upstream `FailedDeletePodReason`).
pub const FAILED_DELETE_POD_REASON: &str = "FailedDelete";
/// Event reason of a pod deletion (upstream `SuccessfulDeletePodReason`).
pub const SUCCESSFUL_DELETE_POD_REASON: &str = "SuccessfulDelete";

/// The status cause the apiserver gives when a namespace being deleted refuses new objects.
const NAMESPACE_TERMINATING_CAUSE: &str = "NamespaceTerminating";

/// Why a pod operation failed. Displays as Go's error would, so it can go into conditions verbatim.
#[derive(Debug, thiserror::Error)]
pub enum PodControlError {
    /// The apiserver refused; displays its message (e.g. `pods "x" is forbidden: exceeded quota: ...`).
    #[error("{}", .0.message)]
    Api(Box<kube::core::Status>),
    /// The request did not get an answer.
    #[error("{}", error_message(.0))]
    Request(kube::Error),
    /// The template has no labels, so the pods could never be selected.
    #[error("unable to create pods, no labels")]
    NoLabels,
    /// The controller reference is unusable.
    #[error("{0}")]
    InvalidControllerRef(&'static str),
}

impl From<kube::Error> for PodControlError {
    fn from(e: kube::Error) -> Self {
        match e {
            kube::Error::Api(status) => Self::Api(status),
            other => Self::Request(other),
        }
    }
}

impl PodControlError {
    /// Whether the apiserver said NotFound.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Api(s) if s.code == 404)
    }

    /// Whether the apiserver said Invalid (422).
    pub fn is_invalid(&self) -> bool {
        matches!(self, Self::Api(s) if s.code == 422)
    }

    /// Whether the namespace is being deleted (upstream `HasStatusCause(err, NamespaceTerminatingCause)`):
    /// creating there is pointless and not worth an event.
    pub fn is_namespace_terminating(&self) -> bool {
        matches!(self, Self::Api(s) if s.details.as_ref().is_some_and(|d| {
            d.causes.iter().any(|c| c.reason == NAMESPACE_TERMINATING_CAUSE)
        }))
    }
}

/// The kind of a controlling object, as it goes into ownerReferences and events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControllerKind {
    /// `apps/v1`, `v1`, `batch/v1`, ...
    pub api_version: &'static str,
    /// `ReplicaSet`, `ReplicationController`, ...
    pub kind: &'static str,
}

impl ControllerKind {
    /// The reference making `owner` the controller of a dependent (upstream `metav1.NewControllerRef`):
    /// `controller: true` and `blockOwnerDeletion: true`.
    pub fn controller_ref(&self, owner: &ObjectMeta) -> OwnerReference {
        OwnerReference {
            api_version: self.api_version.to_string(),
            kind: self.kind.to_string(),
            name: owner.name.clone().unwrap_or_default(),
            uid: owner.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    /// The reference events about `owner` are recorded against.
    pub fn object_reference(&self, owner: &ObjectMeta) -> ObjectReference {
        ObjectReference {
            api_version: Some(self.api_version.to_string()),
            kind: Some(self.kind.to_string()),
            name: owner.name.clone(),
            namespace: owner.namespace.clone(),
            uid: owner.uid.clone(),
            resource_version: owner.resource_version.clone(),
            field_path: None,
        }
    }
}

/// Upstream `validateControllerRef`.
fn validate_controller_ref(r: &OwnerReference) -> Result<(), PodControlError> {
    if r.api_version.is_empty() {
        return Err(PodControlError::InvalidControllerRef(
            "controllerRef has empty APIVersion",
        ));
    }
    if r.kind.is_empty() {
        return Err(PodControlError::InvalidControllerRef(
            "controllerRef has empty Kind",
        ));
    }
    if r.controller != Some(true) {
        return Err(PodControlError::InvalidControllerRef(
            "controllerRef.Controller is not set to true",
        ));
    }
    if r.block_owner_deletion != Some(true) {
        return Err(PodControlError::InvalidControllerRef(
            "controllerRef.BlockOwnerDeletion is not set",
        ));
    }
    Ok(())
}

/// `<owner>-`, the pods' generateName, unless that is no valid name prefix (upstream `getPodsPrefix`: the
/// apiserver appends 5 random characters and the result must be a DNS subdomain of at most 253).
pub fn pods_prefix(owner_name: &str) -> String {
    if owner_name.len() < 253 {
        format!("{owner_name}-")
    } else {
        owner_name.to_string()
    }
}

/// The pod `template` describes, owned by `controller_ref` (upstream `GetPodFromTemplate`): the template's
/// labels, annotations, finalizers and spec, with `generateName: <owner_name>-`.
pub fn pod_from_template(
    template: &PodTemplateSpec,
    owner_name: &str,
    controller_ref: Option<OwnerReference>,
) -> api::Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    api::Pod {
        metadata: ObjectMeta {
            labels: Some(meta.labels.unwrap_or_default()),
            annotations: Some(meta.annotations.unwrap_or_default()),
            finalizers: Some(meta.finalizers.unwrap_or_default()),
            generate_name: Some(pods_prefix(owner_name)),
            owner_references: controller_ref.map(|r| vec![r]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// The reference to the pod with `meta` that events name as related.
fn pod_reference(meta: &ObjectMeta) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        field_path: None,
    }
}

/// Writes pods for a controller and records the matching events; cheap to clone.
#[derive(Clone)]
pub struct PodControl {
    client: Client,
    recorder: EventRecorder,
}

impl PodControl {
    /// Writes through `client`, records events with `recorder`.
    pub fn new(client: Client, recorder: EventRecorder) -> Self {
        Self { client, recorder }
    }

    /// Creates one pod from `template` in `namespace`, owned by `controller_ref` (with a generated name
    /// prefixed by the owner's, or `generate_name` when given). Records SuccessfulCreate "Created pod:
    /// NAME" or FailedCreate "Error creating: MESSAGE" (none when the namespace is terminating) on `owner`.
    pub async fn create_pod(
        &self,
        namespace: &str,
        template: &PodTemplateSpec,
        owner: &ObjectReference,
        controller_ref: OwnerReference,
        generate_name: Option<String>,
    ) -> Result<(), PodControlError> {
        validate_controller_ref(&controller_ref)?;
        let owner_name = owner.name.as_deref().unwrap_or_default();
        let mut pod = pod_from_template(template, owner_name, Some(controller_ref));
        if let Some(name) = generate_name.filter(|n| !n.is_empty()) {
            pod.metadata.generate_name = Some(name);
        }
        if pod.metadata.labels.as_ref().is_none_or(|l| l.is_empty()) {
            return Err(PodControlError::NoLabels);
        }
        let pods: Api<api::Pod> = Api::namespaced(self.client.clone(), namespace);
        match pods.create(&PostParams::default(), &pod).await {
            Ok(created) => {
                let name = created.metadata.name.clone().unwrap_or_default();
                tracing::debug!(controller = owner_name, pod = %name, "Controller created pod");
                self.recorder.normal_related(
                    owner,
                    &pod_reference(&created.metadata),
                    SUCCESSFUL_CREATE_POD_REASON,
                    "Create",
                    format!("Created pod: {name}"),
                );
                Ok(())
            }
            Err(e) => {
                let e = PodControlError::from(e);
                if !e.is_namespace_terminating() {
                    self.recorder.warning(
                        owner,
                        FAILED_CREATE_POD_REASON,
                        "Create",
                        format!("Error creating: {e}"),
                    );
                }
                Err(e)
            }
        }
    }

    /// Deletes the pod `name` in `namespace`. Records SuccessfulDelete "Deleted pod: NAME" or FailedDelete
    /// "Error deleting: MESSAGE" on `owner`; a pod already gone is returned as a NotFound error, without an
    /// event.
    pub async fn delete_pod(
        &self,
        namespace: &str,
        name: &str,
        owner: &ObjectReference,
    ) -> Result<(), PodControlError> {
        tracing::debug!(controller = ?owner.name, pod = %format!("{namespace}/{name}"), "Deleting pod");
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {
                let pod = ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: Some(name.to_string()),
                    namespace: Some(namespace.to_string()),
                    ..Default::default()
                };
                self.recorder.normal_related(
                    owner,
                    &pod,
                    SUCCESSFUL_DELETE_POD_REASON,
                    "Delete",
                    format!("Deleted pod: {name}"),
                );
                Ok(())
            }
            Err(e) => {
                let e = PodControlError::from(e);
                if !e.is_not_found() {
                    self.recorder.warning(
                        owner,
                        FAILED_DELETE_POD_REASON,
                        "Delete",
                        format!("Error deleting: {e}"),
                    );
                }
                Err(e)
            }
        }
    }

    /// Applies a strategic-merge `patch` to the pod `name` in `namespace`.
    pub async fn patch_pod(
        &self,
        namespace: &str,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<Pod, PodControlError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        Ok(api
            .patch(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> PodTemplateSpec {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "ignored",
                "labels": {"app": "web"},
                "annotations": {"a": "1"},
                "finalizers": ["example.com/f"],
            },
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }))
        .expect("valid template")
    }

    #[test]
    fn pods_are_made_from_the_template_and_owned() {
        let owner = ObjectMeta {
            name: Some("web".into()),
            uid: Some("u1".into()),
            ..Default::default()
        };
        let kind = ControllerKind {
            api_version: "apps/v1",
            kind: "ReplicaSet",
        };
        let reference = kind.controller_ref(&owner);
        assert!(validate_controller_ref(&reference).is_ok());
        let pod = pod_from_template(&template(), "web", Some(reference.clone()));
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-"));
        assert_eq!(pod.metadata.name, None, "the template's name is not copied");
        assert_eq!(
            pod.metadata.labels,
            Some([("app".to_string(), "web".to_string())].into())
        );
        assert_eq!(
            pod.metadata.annotations,
            Some([("a".to_string(), "1".to_string())].into())
        );
        assert_eq!(
            pod.metadata.finalizers,
            Some(vec!["example.com/f".to_string()])
        );
        assert_eq!(pod.metadata.owner_references, Some(vec![reference.clone()]));
        assert_eq!(reference.controller, Some(true));
        assert_eq!(reference.block_owner_deletion, Some(true));
        assert_eq!(
            (
                reference.api_version.as_str(),
                reference.kind.as_str(),
                reference.uid.as_str()
            ),
            ("apps/v1", "ReplicaSet", "u1")
        );
        assert_eq!(pod.spec, template().spec);
    }

    #[test]
    fn invalid_controller_refs_are_refused() {
        let good = ControllerKind {
            api_version: "v1",
            kind: "ReplicationController",
        }
        .controller_ref(&ObjectMeta::default());
        let mut r = good.clone();
        r.block_owner_deletion = None;
        assert!(validate_controller_ref(&r).is_err());
        let mut r = good.clone();
        r.controller = Some(false);
        assert!(validate_controller_ref(&r).is_err());
        let mut r = good;
        r.kind.clear();
        assert!(validate_controller_ref(&r).is_err());
        assert_eq!(pods_prefix(&"x".repeat(253)), "x".repeat(253));
    }

    #[test]
    fn api_errors_display_the_apiserver_message() {
        let status =
            kube::core::Status::failure("pods \"a\" is forbidden: exceeded quota: q", "Forbidden")
                .with_code(403);
        let e = PodControlError::from(kube::Error::Api(status.boxed()));
        assert_eq!(e.to_string(), "pods \"a\" is forbidden: exceeded quota: q");
        assert!(!e.is_not_found());
        assert!(!e.is_namespace_terminating());
    }
}
