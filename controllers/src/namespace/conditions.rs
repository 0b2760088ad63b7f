//! A terminating namespace's status conditions (upstream deletion/status_condition_utils.go): each content
//! deletion pass reports failures and what remains; every condition type is always present, False with
//! its "ok" reason when nothing is wrong.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NamespaceCondition, NamespaceStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub const DISCOVERY_FAILURE: &str = "NamespaceDeletionDiscoveryFailure";
pub const GROUP_VERSION_PARSING_FAILURE: &str = "NamespaceDeletionGroupVersionParsingFailure";
pub const CONTENT_FAILURE: &str = "NamespaceDeletionContentFailure";
pub const CONTENT_REMAINING: &str = "NamespaceContentRemaining";
pub const FINALIZERS_REMAINING: &str = "NamespaceFinalizersRemaining";

/// The condition types in upstream's order, with their reason and message when all is well.
const OK: [(&str, &str, &str); 5] = [
    (
        DISCOVERY_FAILURE,
        "ResourcesDiscovered",
        "All resources successfully discovered",
    ),
    (
        GROUP_VERSION_PARSING_FAILURE,
        "ParsedGroupVersions",
        "All legacy kube types successfully parsed",
    ),
    (
        CONTENT_FAILURE,
        "ContentDeleted",
        "All content successfully deleted, may be waiting on finalization",
    ),
    (
        CONTENT_REMAINING,
        "ContentRemoved",
        "All content successfully removed",
    ),
    (
        FINALIZERS_REMAINING,
        "ContentHasNoFinalizers",
        "All content-preserving finalizers finished",
    ),
];

/// What one deletion pass left behind.
#[derive(Debug, Default)]
pub struct ContentTotals {
    /// Remaining objects by (resource, group).
    pub by_resource: BTreeMap<(String, String), usize>,
    /// Remaining objects by finalizer they carry.
    pub by_finalizer: BTreeMap<String, usize>,
}

/// Collects one pass's outcome, then folds it into the namespace's status.
#[derive(Debug, Default)]
pub struct ConditionUpdater {
    conditions: Vec<(&'static str, &'static str, String)>,
    delete_content_errors: Vec<String>,
}

impl ConditionUpdater {
    /// Discovery failed.
    pub fn discovery_failed(&mut self, message: String) {
        self.conditions
            .push((DISCOVERY_FAILURE, "DiscoveryFailed", message));
    }

    /// A group/version could not be parsed.
    pub fn group_version_failed(&mut self, message: String) {
        self.conditions.push((
            GROUP_VERSION_PARSING_FAILURE,
            "GroupVersionParsingFailed",
            message,
        ));
    }

    /// Deleting one resource's content failed.
    pub fn delete_content_failed(&mut self, message: String) {
        self.delete_content_errors.push(message);
    }

    /// What remains after the pass.
    pub fn content_totals(&mut self, totals: &ContentTotals) {
        let mut resources: Vec<String> = totals
            .by_resource
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|((resource, group), n)| format!("{resource}.{group} has {n} resource instances"))
            .collect();
        if !totals.by_resource.is_empty() {
            resources.sort();
            self.conditions.push((
                CONTENT_REMAINING,
                "SomeResourcesRemain",
                format!("Some resources are remaining: {}", resources.join(", ")),
            ));
        }
        let mut finalizers: Vec<String> = totals
            .by_finalizer
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(finalizer, n)| format!("{finalizer} in {n} resource instances"))
            .collect();
        if !totals.by_finalizer.is_empty() {
            finalizers.sort();
            self.conditions.push((
                FINALIZERS_REMAINING,
                "SomeFinalizersRemain",
                format!(
                    "Some content in the namespace has finalizers remaining: {}",
                    finalizers.join(", ")
                ),
            ));
        }
    }

    /// Writes every condition type into `status` (transition time `now` where the status flips); whether
    /// anything changed.
    pub fn update(mut self, status: &mut NamespaceStatus, now: &Time) -> bool {
        if !self.delete_content_errors.is_empty()
            && !self
                .conditions
                .iter()
                .any(|(t, _, _)| *t == CONTENT_FAILURE)
        {
            let mut messages = std::mem::take(&mut self.delete_content_errors);
            messages.sort();
            self.conditions.push((
                CONTENT_FAILURE,
                "ContentDeletionFailed",
                format!(
                    "Failed to delete all resource types, {} remaining: {}",
                    messages.len(),
                    messages.join(", ")
                ),
            ));
        }
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        let mut changed = false;
        for (type_, ok_reason, ok_message) in OK {
            let (status_value, reason, message) =
                match self.conditions.iter().find(|(t, _, _)| *t == type_) {
                    Some((_, reason, message)) => ("True", *reason, message.clone()),
                    None => ("False", ok_reason, ok_message.to_string()),
                };
            match conditions.iter_mut().find(|c| c.type_ == type_) {
                None => {
                    conditions.push(NamespaceCondition {
                        type_: type_.to_string(),
                        status: status_value.to_string(),
                        reason: Some(reason.to_string()),
                        message: Some(message),
                        last_transition_time: Some(now.clone()),
                    });
                    changed = true;
                }
                Some(old) => {
                    if old.status != status_value
                        || old.reason.as_deref() != Some(reason)
                        || old.message.as_deref() != Some(message.as_str())
                    {
                        if old.status != status_value {
                            old.last_transition_time = Some(now.clone());
                        }
                        old.status = status_value.to_string();
                        old.reason = Some(reason.to_string());
                        old.message = Some(message);
                        changed = true;
                    }
                }
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap())
    }

    fn find<'a>(status: &'a NamespaceStatus, type_: &str) -> &'a NamespaceCondition {
        status
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == type_)
            .unwrap()
    }

    #[test]
    fn a_clean_pass_sets_every_condition_false_with_ok_reasons() {
        let mut status = NamespaceStatus::default();
        assert!(ConditionUpdater::default().update(&mut status, &now()));
        let conditions = status.conditions.as_ref().unwrap();
        let types: Vec<&str> = conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(
            types,
            [
                DISCOVERY_FAILURE,
                GROUP_VERSION_PARSING_FAILURE,
                CONTENT_FAILURE,
                CONTENT_REMAINING,
                FINALIZERS_REMAINING
            ]
        );
        assert!(conditions.iter().all(|c| c.status == "False"));
        let content = find(&status, CONTENT_FAILURE);
        assert_eq!(content.reason.as_deref(), Some("ContentDeleted"));
        assert_eq!(
            content.message.as_deref(),
            Some("All content successfully deleted, may be waiting on finalization")
        );
        assert_eq!(
            find(&status, FINALIZERS_REMAINING).reason.as_deref(),
            Some("ContentHasNoFinalizers")
        );
        // The same pass again changes nothing.
        assert!(!ConditionUpdater::default().update(&mut status, &now()));
    }

    #[test]
    fn remaining_content_and_finalizers_are_counted_as_upstream() {
        let mut totals = ContentTotals::default();
        totals.by_resource.insert(("pods".into(), String::new()), 2);
        totals
            .by_resource
            .insert(("widgets".into(), "example.com".into()), 1);
        totals.by_finalizer.insert("example.com/keep".into(), 3);
        let mut updater = ConditionUpdater::default();
        updater.content_totals(&totals);
        let mut status = NamespaceStatus::default();
        updater.update(&mut status, &now());
        let remaining = find(&status, CONTENT_REMAINING);
        assert_eq!(remaining.status, "True");
        assert_eq!(remaining.reason.as_deref(), Some("SomeResourcesRemain"));
        assert_eq!(
            remaining.message.as_deref(),
            Some(
                "Some resources are remaining: pods. has 2 resource instances, \
                 widgets.example.com has 1 resource instances"
            )
        );
        let finalizers = find(&status, FINALIZERS_REMAINING);
        assert_eq!(finalizers.reason.as_deref(), Some("SomeFinalizersRemain"));
        assert_eq!(
            finalizers.message.as_deref(),
            Some(
                "Some content in the namespace has finalizers remaining: example.com/keep in 3 \
                 resource instances"
            )
        );
    }

    #[test]
    fn failures_become_true_conditions() {
        let mut updater = ConditionUpdater::default();
        updater.discovery_failed("boom".into());
        updater.delete_content_failed("b failed".into());
        updater.delete_content_failed("a failed".into());
        let mut status = NamespaceStatus::default();
        updater.update(&mut status, &now());
        let discovery = find(&status, DISCOVERY_FAILURE);
        assert_eq!(
            (discovery.status.as_str(), discovery.reason.as_deref()),
            ("True", Some("DiscoveryFailed"))
        );
        let content = find(&status, CONTENT_FAILURE);
        assert_eq!(content.reason.as_deref(), Some("ContentDeletionFailed"));
        assert_eq!(
            content.message.as_deref(),
            Some("Failed to delete all resource types, 2 remaining: a failed, b failed")
        );
    }

    #[test]
    fn the_transition_time_moves_only_when_the_status_flips() {
        let mut status = NamespaceStatus::default();
        let earlier = Time(k8s_openapi::jiff::Timestamp::from_second(1).unwrap());
        ConditionUpdater::default().update(&mut status, &earlier);
        let mut totals = ContentTotals::default();
        totals.by_resource.insert(("pods".into(), String::new()), 1);
        let mut updater = ConditionUpdater::default();
        updater.content_totals(&totals);
        assert!(updater.update(&mut status, &now()));
        assert_eq!(
            find(&status, CONTENT_REMAINING).last_transition_time,
            Some(now())
        );
        assert_eq!(
            find(&status, CONTENT_FAILURE).last_transition_time,
            Some(earlier)
        );
    }
}
