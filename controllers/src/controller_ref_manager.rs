//! Adoption and release of pods by their controller (upstream pkg/controller/controller_ref_manager.go):
//! a controller claims the pods it controls that still match its selector, adopts matching orphans (unless
//! it is being deleted) and releases the pods it controls that no longer match. Adopting and releasing are
//! strategic-merge patches of `metadata.ownerReferences` carrying the pod's UID, so a pod recreated under
//! the same name is never touched.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::{Patch, PatchParams};
use kube::core::{Expression, Selector, SelectorExt};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::OnceCell;

use crate::pod::Pod;
use crate::pod_control::{ControllerKind, PodControlError};
use crate::pod_util::controller_of;

/// Converts a LabelSelector into a matcher, refusing what upstream's `metav1.LabelSelectorAsSelector`
/// refuses (unknown operators, In/NotIn without values, Exists/DoesNotExist with values). An empty
/// selector matches everything.
pub fn label_selector_as_selector(selector: &LabelSelector) -> Result<Selector, String> {
    for r in selector.match_expressions.iter().flatten() {
        let values = r.values.as_ref().map_or(0, Vec::len);
        match r.operator.as_str() {
            "In" | "NotIn" if values == 0 => {
                return Err(format!(
                    "for 'in', 'notin' operators, values set can't be empty (key {:?})",
                    r.key
                ));
            }
            "Exists" | "DoesNotExist" if values > 0 => {
                return Err(format!(
                    "values set must be empty for exists and does not exist (key {:?})",
                    r.key
                ));
            }
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => return Err(format!("{other:?} is not a valid label selector operator")),
        }
    }
    Selector::try_from(selector.clone()).map_err(|e| e.to_string())
}

/// A selector from a label set (upstream `labels.SelectorFromSet`): an empty set matches everything.
pub fn selector_from_set(set: &BTreeMap<String, String>) -> Selector {
    set.iter()
        .map(|(k, v)| Expression::Equal(k.clone(), v.clone()))
        .collect()
}

/// What a controller does with one candidate object (upstream `ClaimObject`'s branches).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimAction {
    /// Controlled by us and matching: ours.
    Keep,
    /// Not ours to touch: controlled by someone else, or no match, or being deleted.
    Ignore,
    /// A matching orphan: becomes ours after an adopt patch.
    Adopt,
    /// Controlled by us but no longer matching: give it up with a release patch.
    Release,
}

/// Decides what `owner` does with the dependent `object` (whose match against the owner's selector and any
/// extra filters is `matches`).
pub fn claim_action(owner: &ObjectMeta, object: &ObjectMeta, matches: bool) -> ClaimAction {
    let owner_deleting = owner.deletion_timestamp.is_some();
    if let Some(controller) = controller_of(object) {
        if Some(&controller.uid) != owner.uid.as_ref() {
            return ClaimAction::Ignore;
        }
        if matches {
            return ClaimAction::Keep;
        }
        // A controller being deleted keeps what it has: its dependents go with it.
        if owner_deleting {
            return ClaimAction::Ignore;
        }
        return ClaimAction::Release;
    }
    if owner_deleting || !matches || object.deletion_timestamp.is_some() {
        return ClaimAction::Ignore;
    }
    let owner_namespace = owner.namespace.as_deref().unwrap_or_default();
    if !owner_namespace.is_empty() && owner.namespace != object.namespace {
        return ClaimAction::Ignore;
    }
    ClaimAction::Adopt
}

/// Patch making `owner` the controller of the object with `object_uid` (upstream
/// `ownerRefControllerPatch`); `finalizers` are added too.
pub fn adopt_patch(
    kind: ControllerKind,
    owner: &ObjectMeta,
    object_uid: &str,
    finalizers: &[String],
) -> serde_json::Value {
    let mut metadata = json!({
        "uid": object_uid,
        "ownerReferences": [kind.controller_ref(owner)],
    });
    if !finalizers.is_empty() {
        metadata["finalizers"] = json!(finalizers);
    }
    json!({ "metadata": metadata })
}

/// Strategic-merge patch removing the references to `owner_uids` from the object with `object_uid` (and
/// `finalizers`) (upstream `GenerateDeleteOwnerRefStrategicMergeBytes`).
pub fn release_patch(
    object_uid: &str,
    owner_uids: &[&str],
    finalizers: &[String],
) -> serde_json::Value {
    let refs: Vec<serde_json::Value> = owner_uids
        .iter()
        .map(|uid| json!({"$patch": "delete", "uid": uid}))
        .collect();
    let mut metadata = json!({ "uid": object_uid, "ownerReferences": refs });
    if !finalizers.is_empty() {
        metadata["$deleteFromPrimitiveList/finalizers"] = json!(finalizers);
    }
    json!({ "metadata": metadata })
}

/// Checks, once per claim, that the owner may adopt (typically: a fresh GET shows it is not being
/// deleted); returns why not.
pub type CanAdopt =
    Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send>;

/// Builds a [`CanAdopt`] that GETs the owner fresh (via `get`, which must fail if the UID changed) and
/// refuses when it is being deleted (upstream `RecheckDeletionTimestamp`).
pub fn recheck_deletion_timestamp<F, Fut>(get: F) -> CanAdopt
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<ObjectMeta, String>> + Send + 'static,
{
    Box::new(move || {
        Box::pin(async move {
            let meta = get()
                .await
                .map_err(|e| format!("can't recheck DeletionTimestamp: {e}"))?;
            match &meta.deletion_timestamp {
                Some(at) => Err(format!(
                    "{}/{} has just been deleted at {}",
                    meta.namespace.as_deref().unwrap_or_default(),
                    meta.name.as_deref().unwrap_or_default(),
                    at.0
                )),
                None => Ok(()),
            }
        })
    })
}

/// Claiming failed for some pods; the message lists each failure (upstream's aggregate error).
#[derive(Debug, thiserror::Error)]
#[error("{}", if .0.len() == 1 { .0[0].clone() } else { format!("[{}]", .0.join(", ")) })]
pub struct ClaimError(pub Vec<String>);

/// Claims dependents of kind `K` (pods, or a Deployment's ReplicaSets) for one controller (upstream
/// `BaseControllerRefManager` with `PodControllerRefManager` / `ReplicaSetControllerRefManager`). Adopt and
/// release patches go through `client`, as strategic-merge patches.
pub struct ControllerRefManager<K> {
    client: Client,
    owner: ObjectMeta,
    kind: ControllerKind,
    selector: Selector,
    finalizers: Vec<String>,
    can_adopt: std::sync::Mutex<Option<CanAdopt>>,
    can_adopt_result: OnceCell<Result<(), String>>,
    dependent: PhantomData<fn() -> K>,
}

/// Claims pods (upstream `PodControllerRefManager`).
pub type PodControllerRefManager = ControllerRefManager<Pod>;

impl<K> ControllerRefManager<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    /// A manager claiming for `owner` (of `kind`) the objects `selector` matches, writing through
    /// `client`; adoption first passes `can_adopt`, at most once per manager (make one per sync).
    pub fn new(
        client: Client,
        owner: ObjectMeta,
        kind: ControllerKind,
        selector: Selector,
        can_adopt: CanAdopt,
    ) -> Self {
        Self {
            client,
            owner,
            kind,
            selector,
            finalizers: Vec::new(),
            can_adopt: std::sync::Mutex::new(Some(can_adopt)),
            can_adopt_result: OnceCell::new(),
            dependent: PhantomData,
        }
    }

    /// Also adds (on adoption) and removes (on release) these finalizers (Job's tracking finalizer).
    pub fn with_finalizers(mut self, finalizers: Vec<String>) -> Self {
        self.finalizers = finalizers;
        self
    }

    async fn can_adopt(&self) -> Result<(), String> {
        self.can_adopt_result
            .get_or_init(|| async {
                let check = self
                    .can_adopt
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                match check {
                    Some(check) => check().await,
                    None => Ok(()),
                }
            })
            .await
            .clone()
    }

    /// The objects of `candidates` this controller owns after adopting and releasing (upstream
    /// `ClaimPods` / `ClaimReplicaSets`); `filter` further narrows what matches besides the selector.
    /// Objects that vanish meanwhile are skipped; other failures are returned together.
    pub async fn claim<P>(
        &self,
        candidates: Vec<P>,
        filter: impl Fn(&K) -> bool,
    ) -> Result<Vec<P>, ClaimError>
    where
        P: Borrow<K>,
    {
        let mut claimed = Vec::new();
        let mut errors = Vec::new();
        for candidate in candidates {
            let object: &K = candidate.borrow();
            let labels = object.meta().labels.clone().unwrap_or_default();
            let matches = self.selector.matches(&labels) && filter(object);
            let result = match claim_action(&self.owner, object.meta(), matches) {
                ClaimAction::Keep => Ok(true),
                ClaimAction::Ignore => Ok(false),
                ClaimAction::Adopt => self.adopt(object).await,
                ClaimAction::Release => self.release(object).await.map(|()| false),
            };
            match result {
                Ok(true) => claimed.push(candidate),
                Ok(false) => {}
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(claimed)
        } else {
            Err(ClaimError(errors))
        }
    }

    async fn patch(&self, object: &K, patch: &serde_json::Value) -> Result<(), PodControlError> {
        let meta = object.meta();
        let api: Api<K> = Api::namespaced(
            self.client.clone(),
            meta.namespace.as_deref().unwrap_or_default(),
        );
        let name = meta.name.as_deref().unwrap_or_default();
        api.patch(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await?;
        Ok(())
    }

    /// Adopts `object`; `Ok(false)` when it vanished meanwhile.
    async fn adopt(&self, object: &K) -> Result<bool, String> {
        let meta = object.meta();
        let namespace = meta.namespace.as_deref().unwrap_or_default();
        let name = meta.name.as_deref().unwrap_or_default();
        let uid = meta.uid.as_deref().unwrap_or_default();
        if let Err(e) = self.can_adopt().await {
            return Err(format!(
                "can't adopt {} {namespace}/{name} ({uid}): {e}",
                K::kind(&())
            ));
        }
        let patch = adopt_patch(self.kind, &self.owner, uid, &self.finalizers);
        match self.patch(object, &patch).await {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn release(&self, object: &K) -> Result<(), String> {
        let meta = object.meta();
        let uid = meta.uid.as_deref().unwrap_or_default();
        tracing::debug!(
            object = %format!("{}/{}", meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default()),
            kind = self.kind.kind, controller = ?self.owner.name,
            "Patching {} to remove its controllerRef", K::kind(&())
        );
        let owner_uid = self.owner.uid.as_deref().unwrap_or_default();
        let patch = release_patch(uid, &[owner_uid], &self.finalizers);
        match self.patch(object, &patch).await {
            Ok(()) => Ok(()),
            // Gone, or the UID precondition failed (a new object with the same name): nothing to release.
            Err(e) if e.is_not_found() || e.is_invalid() => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        LabelSelectorRequirement, OwnerReference, Time,
    };
    use k8s_openapi::jiff::Timestamp;

    fn owner() -> ObjectMeta {
        ObjectMeta {
            name: Some("rs".into()),
            namespace: Some("ns".into()),
            uid: Some("owner".into()),
            ..Default::default()
        }
    }

    fn pod(controller: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some("p".into()),
            namespace: Some("ns".into()),
            uid: Some("pod".into()),
            owner_references: controller.map(|uid| {
                vec![OwnerReference {
                    uid: uid.into(),
                    controller: Some(true),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }
    }

    fn deleting(mut meta: ObjectMeta) -> ObjectMeta {
        meta.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
        meta
    }

    #[test]
    fn claim_decisions_follow_upstream() {
        use ClaimAction::*;
        assert_eq!(claim_action(&owner(), &pod(Some("owner")), true), Keep);
        assert_eq!(claim_action(&owner(), &pod(Some("owner")), false), Release);
        assert_eq!(
            claim_action(&deleting(owner()), &pod(Some("owner")), false),
            Ignore,
            "a deleting owner releases nothing"
        );
        assert_eq!(
            claim_action(&deleting(owner()), &pod(Some("owner")), true),
            Keep
        );
        assert_eq!(claim_action(&owner(), &pod(Some("other")), true), Ignore);
        assert_eq!(claim_action(&owner(), &pod(None), true), Adopt);
        assert_eq!(claim_action(&owner(), &pod(None), false), Ignore);
        assert_eq!(
            claim_action(&deleting(owner()), &pod(None), true),
            Ignore,
            "a deleting owner adopts nothing"
        );
        assert_eq!(
            claim_action(&owner(), &deleting(pod(None)), true),
            Ignore,
            "a deleting orphan is not adopted"
        );
        let mut elsewhere = pod(None);
        elsewhere.namespace = Some("other".into());
        assert_eq!(claim_action(&owner(), &elsewhere, true), Ignore);
        // A non-controller owner reference does not make a pod owned.
        let mut shared = pod(None);
        shared.owner_references = Some(vec![OwnerReference {
            uid: "x".into(),
            ..Default::default()
        }]);
        assert_eq!(claim_action(&owner(), &shared, true), Adopt);
    }

    #[test]
    fn patches_carry_the_uid_precondition() {
        let kind = ControllerKind {
            api_version: "apps/v1",
            kind: "ReplicaSet",
        };
        assert_eq!(
            adopt_patch(kind, &owner(), "pod", &[]),
            json!({"metadata": {"uid": "pod", "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "owner",
                "controller": true, "blockOwnerDeletion": true,
            }]}})
        );
        assert_eq!(
            release_patch("pod", &["owner"], &["f".to_string()]),
            json!({"metadata": {"uid": "pod", "ownerReferences": [{"$patch": "delete", "uid": "owner"}],
                                "$deleteFromPrimitiveList/finalizers": ["f"]}})
        );
    }

    #[test]
    fn selectors_convert_like_upstream() {
        let labels: BTreeMap<String, String> = [("app".to_string(), "web".to_string())].into();
        let ok = LabelSelector {
            match_labels: Some(labels.clone()),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "DoesNotExist".into(),
                values: None,
            }]),
        };
        assert!(
            label_selector_as_selector(&ok)
                .expect("valid")
                .matches(&labels)
        );
        for (operator, values) in [
            ("In", None),
            ("NotIn", Some(vec![])),
            ("Exists", Some(vec!["x".to_string()])),
            ("Near", None),
        ] {
            let bad = LabelSelector {
                match_labels: None,
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "k".into(),
                    operator: operator.into(),
                    values,
                }]),
            };
            assert!(label_selector_as_selector(&bad).is_err(), "{operator}");
        }
        assert!(
            label_selector_as_selector(&LabelSelector::default())
                .expect("empty")
                .matches(&labels),
            "empty matches all"
        );
        assert!(selector_from_set(&labels).matches(&labels));
        assert!(!selector_from_set(&labels).matches(&BTreeMap::new()));
    }
}
