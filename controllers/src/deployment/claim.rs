//! Which ReplicaSets a Deployment owns (upstream `ReplicaSetControllerRefManager.ClaimReplicaSets`):
//! its own that still match its selector, plus orphans that match, which it adopts; its own that no
//! longer match are released. The decision and the patches are the shared controller_ref_manager's.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use kube::core::SelectorExt;

pub use crate::controller_ref_manager::ClaimAction;
use crate::controller_ref_manager::{
    adopt_patch, claim_action, label_selector_as_selector, release_patch,
};
use crate::pod_control::ControllerKind;

/// The Deployment kind, for controller references.
pub const CONTROLLER_KIND: ControllerKind = ControllerKind {
    api_version: "apps/v1",
    kind: "Deployment",
};

/// The controller reference of an object's owners.
pub fn controller_ref(owners: Option<&Vec<OwnerReference>>) -> Option<&OwnerReference> {
    owners?.iter().find(|o| o.controller == Some(true))
}

/// Whether the selector selects nothing in particular (upstream warns "SelectingAll" and does nothing).
pub fn selects_everything(selector: &LabelSelector) -> bool {
    selector
        .match_labels
        .as_ref()
        .is_none_or(BTreeMap::is_empty)
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty)
}

/// `metav1.LabelSelectorAsSelector(selector).Matches(labels)`; an invalid selector matches nothing.
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    label_selector_as_selector(selector).is_ok_and(|s| s.matches(labels))
}

/// Upstream's `ClaimObject` decision for one ReplicaSet.
pub fn claim(d: &Deployment, rs: &ReplicaSet) -> ClaimAction {
    let empty = BTreeMap::new();
    let labels = rs.metadata.labels.as_ref().unwrap_or(&empty);
    let matches = d
        .spec
        .as_ref()
        .is_some_and(|s| selector_matches(&s.selector, labels));
    claim_action(&d.metadata, &rs.metadata, matches)
}

/// The controller reference a Deployment puts on its ReplicaSets.
pub fn owner_reference(d: &Deployment) -> OwnerReference {
    CONTROLLER_KIND.controller_ref(&d.metadata)
}

/// Adopts (`adopt`) or releases an orphan/owned ReplicaSet with upstream's strategic-merge patches; the
/// UID in the patch makes it fail if the ReplicaSet was replaced meanwhile.
pub async fn patch_owner(
    client: &Client,
    d: &Deployment,
    rs: &ReplicaSet,
    adopt: bool,
) -> Result<Option<ReplicaSet>, kube::Error> {
    let namespace = rs.metadata.namespace.as_deref().unwrap_or_default();
    let name = rs.metadata.name.as_deref().unwrap_or_default();
    let rs_uid = rs.metadata.uid.as_deref().unwrap_or_default();
    let patch = if adopt {
        adopt_patch(CONTROLLER_KIND, &d.metadata, rs_uid, &[])
    } else {
        release_patch(
            rs_uid,
            &[d.metadata.uid.as_deref().unwrap_or_default()],
            &[],
        )
    };
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
    match api
        .patch(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
    {
        Ok(rs) => Ok(Some(rs)),
        // Gone (or replaced, which the UID precondition reports as invalid/conflict): nothing to claim.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 422 => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(selector: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "d", "namespace": "ns", "uid": "d-uid"},
            "spec": {"selector": selector, "template": {}}
        }))
        .unwrap()
    }

    fn rs(labels: serde_json::Value, owner: Option<&str>) -> ReplicaSet {
        let owners: Vec<serde_json::Value> = owner
            .map(|uid| json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "x", "uid": uid, "controller": true}))
            .into_iter()
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": "r", "namespace": "ns", "uid": "r-uid", "labels": labels, "ownerReferences": owners}
        }))
        .unwrap()
    }

    #[test]
    fn selectors_match_labels_and_expressions() {
        let s: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["a", "b"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "env", "operator": "NotIn", "values": ["prod"]}
            ]
        }))
        .unwrap();
        let labels =
            |v: serde_json::Value| serde_json::from_value::<BTreeMap<String, String>>(v).unwrap();
        assert!(selector_matches(
            &s,
            &labels(json!({"app": "web", "tier": "a"}))
        ));
        assert!(!selector_matches(
            &s,
            &labels(json!({"app": "web", "tier": "c"}))
        ));
        assert!(!selector_matches(
            &s,
            &labels(json!({"app": "web", "tier": "a", "canary": "1"}))
        ));
        assert!(!selector_matches(
            &s,
            &labels(json!({"app": "web", "tier": "a", "env": "prod"}))
        ));
        assert!(!selector_matches(&s, &labels(json!({"tier": "a"}))));
        assert!(selects_everything(&LabelSelector::default()));
        assert!(!selects_everything(&s));
    }

    #[test]
    fn claims_follow_controller_refs_and_the_selector() {
        let d = deployment(json!({"matchLabels": {"app": "web"}}));
        assert_eq!(
            claim(&d, &rs(json!({"app": "web"}), Some("d-uid"))),
            ClaimAction::Keep
        );
        assert_eq!(
            claim(&d, &rs(json!({"app": "db"}), Some("d-uid"))),
            ClaimAction::Release
        );
        assert_eq!(
            claim(&d, &rs(json!({"app": "web"}), Some("other"))),
            ClaimAction::Ignore
        );
        assert_eq!(
            claim(&d, &rs(json!({"app": "web"}), None)),
            ClaimAction::Adopt
        );
        assert_eq!(
            claim(&d, &rs(json!({"app": "db"}), None)),
            ClaimAction::Ignore
        );
        let mut deleting = d.clone();
        deleting.metadata.deletion_timestamp = Some(crate::deployment::util::now());
        assert_eq!(
            claim(&deleting, &rs(json!({"app": "web"}), None)),
            ClaimAction::Ignore
        );
        assert_eq!(
            claim(&deleting, &rs(json!({"app": "db"}), Some("d-uid"))),
            ClaimAction::Ignore
        );
    }
}
