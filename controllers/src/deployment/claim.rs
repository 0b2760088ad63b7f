//! Ownership helpers: the Deployment's controller reference, its selector, and controller references of
//! ReplicaSets and pods. Claiming (adoption and release) is the shared `controller_ref_manager`'s.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use kube::core::SelectorExt;

use crate::controller_ref_manager::label_selector_as_selector;
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

/// The controller reference a Deployment puts on its ReplicaSets.
pub fn owner_reference(d: &Deployment) -> OwnerReference {
    CONTROLLER_KIND.controller_ref(&d.metadata)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
