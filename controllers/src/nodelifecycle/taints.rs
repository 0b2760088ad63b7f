//! The node controller's taints: the NoSchedule taints that mirror node conditions and spec.unschedulable
//! (TaintNodesByCondition), the NoExecute not-ready/unreachable pair, and writing them (upstream's
//! SwapNodeControllerTaint) as a patch conditional on the node's resourceVersion.

use k8s_openapi::api::core::v1::{Node, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use crate::pod_status::is_conflict;

/// Taint key of a node whose Ready condition is False.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// Taint key of a node whose Ready condition is Unknown.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// Taint key of a cordoned node.
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
/// Upstream's UpdateTaintBackoff allows this many attempts.
const ATTEMPTS: usize = 5;

/// A taint with `key` and `effect`, no value.
pub fn taint(key: &str, effect: &str) -> Taint {
    Taint {
        key: key.into(),
        effect: effect.into(),
        ..Default::default()
    }
}

/// The NoExecute taint a Ready status calls for and its opposite, which it replaces (not-ready and
/// unreachable mirror Ready=False and Ready=Unknown and never coexist); `None` for Ready=True.
pub fn no_execute_for(ready_status: &str) -> Option<(&'static str, &'static str)> {
    match ready_status {
        "False" => Some((NOT_READY, UNREACHABLE)),
        "Unknown" => Some((UNREACHABLE, NOT_READY)),
        _ => None,
    }
}

/// Upstream's `nodeConditionToTaintKeyStatusMap`: the taint key a condition in a status implies.
fn condition_taint_key(type_: &str, status: &str) -> Option<&'static str> {
    match (type_, status) {
        ("Ready", "False") => Some(NOT_READY),
        ("Ready", "Unknown") => Some(UNREACHABLE),
        ("MemoryPressure", "True") => Some("node.kubernetes.io/memory-pressure"),
        ("DiskPressure", "True") => Some("node.kubernetes.io/disk-pressure"),
        ("NetworkUnavailable", "True") => Some("node.kubernetes.io/network-unavailable"),
        ("PIDPressure", "True") => Some("node.kubernetes.io/pid-pressure"),
        _ => None,
    }
}

/// Whether `key` is one the NoSchedule pass owns (upstream's `taintKeyToNodeConditionMap` plus
/// unschedulable).
fn is_condition_taint_key(key: &str) -> bool {
    matches!(
        key,
        NOT_READY
            | UNREACHABLE
            | UNSCHEDULABLE
            | "node.kubernetes.io/memory-pressure"
            | "node.kubernetes.io/disk-pressure"
            | "node.kubernetes.io/network-unavailable"
            | "node.kubernetes.io/pid-pressure"
    )
}

/// Upstream's `doNoScheduleTaintingPass` decision: the NoSchedule taints to add and to remove so that they
/// match the node's conditions and spec.unschedulable.
pub fn no_schedule_diff(node: &Node) -> (Vec<Taint>, Vec<Taint>) {
    let conditions = node.status.as_ref().and_then(|s| s.conditions.as_deref());
    let mut wanted: Vec<Taint> = conditions
        .unwrap_or_default()
        .iter()
        .filter_map(|c| condition_taint_key(&c.type_, &c.status))
        .map(|key| taint(key, "NoSchedule"))
        .collect();
    let spec = node.spec.as_ref();
    if spec.and_then(|s| s.unschedulable).unwrap_or(false) {
        wanted.push(taint(UNSCHEDULABLE, "NoSchedule"));
    }
    let existing: Vec<&Taint> = spec
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
        .iter()
        .filter(|t| t.effect == "NoSchedule" && is_condition_taint_key(&t.key))
        .collect();
    let to_add = wanted
        .iter()
        .filter(|w| !existing.iter().any(|e| matches(e, w)))
        .cloned()
        .collect();
    let to_remove = existing
        .into_iter()
        .filter(|e| !wanted.iter().any(|w| matches(e, w)))
        .cloned()
        .collect();
    (to_add, to_remove)
}

/// Upstream's `Taint.MatchTaint`: same key and effect.
pub fn matches(a: &Taint, b: &Taint) -> bool {
    a.key == b.key && a.effect == b.effect
}

/// Whether `taints` hold one matching `wanted`.
pub fn has(taints: &[Taint], wanted: &Taint) -> bool {
    taints.iter().any(|t| matches(t, wanted))
}

/// The node's taints.
pub fn node_taints(node: &Node) -> &[Taint] {
    let spec = node.spec.as_ref();
    spec.and_then(|s| s.taints.as_deref()).unwrap_or_default()
}

/// Upstream's AddOrUpdateTaint for each of `add`, then RemoveTaint for each of `remove`: the new taints,
/// or `None` when nothing changes.
pub fn apply(existing: &[Taint], add: &[Taint], remove: &[Taint]) -> Option<Vec<Taint>> {
    let mut taints = existing.to_vec();
    let mut changed = false;
    for wanted in add {
        match taints.iter_mut().find(|t| matches(t, wanted)) {
            Some(t) if t == wanted => {}
            Some(t) => {
                *t = wanted.clone();
                changed = true;
            }
            None => {
                taints.push(wanted.clone());
                changed = true;
            }
        }
    }
    let before = taints.len();
    taints.retain(|t| !remove.iter().any(|r| matches(t, r)));
    changed |= taints.len() != before;
    changed.then_some(taints)
}

/// Upstream's `SwapNodeControllerTaint` (and `RemoveTaintOffNode` when `add` is empty): adds `add`
/// (stamped timeAdded now) and removes `remove`, starting from the cached `node` and re-reading it on
/// conflict.
pub async fn swap(
    client: &Client,
    node: &Node,
    add: &[Taint],
    remove: &[Taint],
) -> Result<(), kube::Error> {
    let now = Time(Timestamp::now());
    let add: Vec<Taint> = add
        .iter()
        .map(|t| Taint {
            time_added: Some(now.clone()),
            ..t.clone()
        })
        .collect();
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let api = Api::<Node>::all(client.clone());
    let mut current = node.clone();
    for attempt in 1..=ATTEMPTS {
        let Some(taints) = apply(node_taints(&current), &add, remove) else {
            return Ok(());
        };
        let patch = json!({
            "metadata": { "resourceVersion": current.metadata.resource_version },
            "spec": { "taints": taints },
        });
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if is_conflict(&e) && attempt < ATTEMPTS => current = api.get(name).await?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus};

    fn node(conditions: &[(&str, &str)], taints: Vec<Taint>, unschedulable: bool) -> Node {
        Node {
            spec: Some(NodeSpec {
                taints: Some(taints),
                unschedulable: Some(unschedulable),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(t, s)| NodeCondition {
                            type_: t.to_string(),
                            status: s.to_string(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn keys(taints: &[Taint]) -> Vec<&str> {
        taints.iter().map(|t| t.key.as_str()).collect()
    }

    #[test]
    fn conditions_map_to_no_schedule_taints() {
        let n = node(
            &[
                ("Ready", "Unknown"),
                ("MemoryPressure", "True"),
                ("DiskPressure", "False"),
                ("PIDPressure", "True"),
                ("NetworkUnavailable", "True"),
            ],
            vec![],
            true,
        );
        let (add, remove) = no_schedule_diff(&n);
        assert_eq!(
            keys(&add),
            [
                UNREACHABLE,
                "node.kubernetes.io/memory-pressure",
                "node.kubernetes.io/pid-pressure",
                "node.kubernetes.io/network-unavailable",
                UNSCHEDULABLE
            ]
        );
        assert!(add.iter().all(|t| t.effect == "NoSchedule"));
        assert!(remove.is_empty());
    }

    #[test]
    fn stale_condition_taints_are_removed_and_others_kept() {
        let n = node(
            &[("Ready", "True")],
            vec![
                taint(NOT_READY, "NoSchedule"),
                taint(UNREACHABLE, "NoExecute"),
                taint("example.com/own", "NoSchedule"),
                taint(UNSCHEDULABLE, "NoSchedule"),
            ],
            false,
        );
        let (add, remove) = no_schedule_diff(&n);
        assert!(add.is_empty());
        assert_eq!(keys(&remove), [NOT_READY, UNSCHEDULABLE]);
    }

    #[test]
    fn not_ready_swaps_to_unreachable() {
        let n = node(
            &[("Ready", "Unknown")],
            vec![taint(NOT_READY, "NoSchedule")],
            false,
        );
        let (add, remove) = no_schedule_diff(&n);
        assert_eq!(keys(&add), [UNREACHABLE]);
        assert_eq!(keys(&remove), [NOT_READY]);
    }

    #[test]
    fn ready_status_picks_the_no_execute_taint() {
        assert_eq!(no_execute_for("False"), Some((NOT_READY, UNREACHABLE)));
        assert_eq!(no_execute_for("Unknown"), Some((UNREACHABLE, NOT_READY)));
        assert_eq!(no_execute_for("True"), None);
    }

    #[test]
    fn apply_adds_replaces_and_removes() {
        let existing = vec![taint("a", "NoSchedule"), taint(NOT_READY, "NoExecute")];
        let got = apply(
            &existing,
            &[taint(UNREACHABLE, "NoExecute")],
            &[taint(NOT_READY, "NoExecute")],
        )
        .unwrap();
        assert_eq!(keys(&got), ["a", UNREACHABLE]);
        assert!(
            apply(
                &existing,
                &[taint("a", "NoSchedule")],
                &[taint("x", "NoSchedule")]
            )
            .is_none()
        );
    }
}
