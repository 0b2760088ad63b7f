use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::ReplicationController;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::json;

use super::*;
use crate::pod::Pod;

/// Sets in a plain list, looked up as the controller looks them up in its cache.
struct Sets(Vec<Arc<ReplicaSet>>);

impl SetLookup<ReplicaSet> for Sets {
    fn resolve(&self, namespace: Option<&String>, r: &OwnerReference) -> Option<Arc<ReplicaSet>> {
        self.0
            .iter()
            .find(|s| {
                r.kind == "ReplicaSet"
                    && s.metadata.namespace.as_ref() == namespace
                    && s.metadata.name.as_deref() == Some(r.name.as_str())
                    && s.metadata.uid.as_deref() == Some(r.uid.as_str())
            })
            .cloned()
    }

    fn matching(&self, pod: &Pod) -> Vec<Arc<ReplicaSet>> {
        let same_namespace = self
            .0
            .iter()
            .filter(|s| s.metadata.namespace == pod.metadata.namespace)
            .cloned()
            .collect();
        matching_sets(same_namespace, pod)
    }
}

fn rs(name: &str, uid: &str, selector: serde_json::Value, min_ready: i32) -> Arc<ReplicaSet> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "uid": uid},
            "spec": {"selector": selector, "minReadySeconds": min_ready},
        }))
        .expect("valid ReplicaSet"),
    )
}

fn pod(labels: serde_json::Value, owner: Option<(&str, &str, &str)>, rv: &str) -> Pod {
    let refs: Vec<serde_json::Value> = owner
        .map(|(kind, name, uid)| {
            json!({"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid, "controller": true})
        })
        .into_iter()
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "ns", "labels": labels, "ownerReferences": refs,
                     "resourceVersion": rv},
    }))
    .expect("valid pod")
}

fn key(name: &str) -> ObjectKey {
    ObjectKey {
        namespace: Some("ns".into()),
        name: name.into(),
    }
}

fn sets() -> Sets {
    Sets(vec![
        rs("web", "u-web", json!({"matchLabels": {"app": "web"}}), 5),
        rs("all", "u-all", json!({}), 0),
        rs(
            "bad",
            "u-bad",
            json!({"matchExpressions": [{"key": "app", "operator": "In"}]}),
            0,
        ),
    ])
}

fn ready(mut pod: Pod) -> Pod {
    pod.status =
        serde_json::from_value(json!({"conditions": [{"type": "Ready", "status": "True"}]}))
            .expect("valid status");
    pod
}

fn deleting(mut pod: Pod) -> Pod {
    pod.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
    ));
    pod
}

fn effects(event: InformerEvent<Pod>) -> Vec<Effect> {
    pod_event_effects(&event, &sets())
}

#[test]
fn an_owned_pod_added_is_an_observed_creation() {
    let p = Arc::new(pod(
        json!({"app": "web"}),
        Some(("ReplicaSet", "web", "u-web")),
        "1",
    ));
    assert_eq!(
        effects(InformerEvent::Added(p)),
        [
            Effect::CreationObserved(key("web")),
            Effect::Sync(key("web"))
        ]
    );
}

#[test]
fn a_pod_of_another_kind_or_uid_is_ignored() {
    let other_uid = Arc::new(pod(
        json!({"app": "web"}),
        Some(("ReplicaSet", "web", "old")),
        "1",
    ));
    assert!(effects(InformerEvent::Added(other_uid)).is_empty());
    let rc_pod = Arc::new(pod(
        json!({"app": "web"}),
        Some(("ReplicationController", "web", "u-web")),
        "1",
    ));
    assert!(effects(InformerEvent::Added(rc_pod)).is_empty());
}

#[test]
fn an_orphan_wakes_only_sets_with_a_valid_non_empty_matching_selector() {
    let orphan = Arc::new(pod(json!({"app": "web"}), None, "1"));
    assert_eq!(
        effects(InformerEvent::Added(orphan)),
        [Effect::Sync(key("web"))]
    );
    let unmatched = Arc::new(pod(json!({"app": "db"}), None, "1"));
    assert!(effects(InformerEvent::Added(unmatched)).is_empty());
}

#[test]
fn a_pod_added_while_deleting_counts_as_a_deletion() {
    let p = Arc::new(deleting(pod(
        json!({"app": "web"}),
        Some(("ReplicaSet", "web", "u-web")),
        "1",
    )));
    assert_eq!(
        effects(InformerEvent::Added(p)),
        [
            Effect::DeletionObserved(key("web"), "ns/p".into()),
            Effect::Sync(key("web"))
        ]
    );
}

#[test]
fn updates_without_a_new_resource_version_are_ignored() {
    let p = Arc::new(pod(
        json!({"app": "web"}),
        Some(("ReplicaSet", "web", "u-web")),
        "1",
    ));
    assert!(
        effects(InformerEvent::Updated {
            old: p.clone(),
            new: p
        })
        .is_empty()
    );
}

#[test]
fn becoming_ready_rechecks_availability_after_min_ready_seconds() {
    let old = pod(
        json!({"app": "web"}),
        Some(("ReplicaSet", "web", "u-web")),
        "1",
    );
    let new = ready(pod(
        json!({"app": "web"}),
        Some(("ReplicaSet", "web", "u-web")),
        "2",
    ));
    assert_eq!(
        effects(InformerEvent::Updated {
            old: Arc::new(old),
            new: Arc::new(new)
        }),
        [
            Effect::Sync(key("web")),
            Effect::SyncAfter(key("web"), Duration::from_secs(5))
        ]
    );
}

#[test]
fn a_released_pod_wakes_its_old_owner_and_new_matches() {
    let old = pod(
        json!({"app": "web"}),
        Some(("ReplicaSet", "web", "u-web")),
        "1",
    );
    let new = pod(json!({"app": "web"}), None, "2");
    assert_eq!(
        effects(InformerEvent::Updated {
            old: Arc::new(old),
            new: Arc::new(new)
        }),
        [Effect::Sync(key("web")), Effect::Sync(key("web"))]
    );
}

#[test]
fn graceful_deletion_with_a_label_change_observes_both_versions() {
    let old = pod(
        json!({"app": "web"}),
        Some(("ReplicaSet", "web", "u-web")),
        "1",
    );
    let new = deleting(pod(
        json!({"app": "x"}),
        Some(("ReplicaSet", "web", "u-web")),
        "2",
    ));
    let observed = effects(InformerEvent::Updated {
        old: Arc::new(old),
        new: Arc::new(new),
    });
    assert_eq!(observed.len(), 4);
    assert_eq!(
        observed[0],
        Effect::DeletionObserved(key("web"), "ns/p".into())
    );
}

#[test]
fn a_deleted_orphan_does_nothing() {
    assert!(
        effects(InformerEvent::Deleted(Arc::new(pod(
            json!({"app": "web"}),
            None,
            "1"
        ))))
        .is_empty()
    );
}

#[test]
fn set_events_sync_and_deletion_forgets_expectations() {
    let web = rs("web", "u-web", json!({"matchLabels": {"app": "web"}}), 0);
    assert_eq!(
        set_event_effects(&InformerEvent::Added(web.clone())),
        [Effect::Sync(key("web"))]
    );
    assert_eq!(
        set_event_effects(&InformerEvent::Deleted(web.clone())),
        [Effect::Forget(key("web")), Effect::Sync(key("web"))]
    );
    let recreated = rs("web", "u-new", json!({"matchLabels": {"app": "web"}}), 0);
    assert_eq!(
        set_event_effects(&InformerEvent::Updated {
            old: web,
            new: recreated
        }),
        [
            Effect::Forget(key("web")),
            Effect::Sync(key("web")),
            Effect::Sync(key("web"))
        ]
    );
}

#[test]
fn an_empty_replication_controller_selector_matches_no_orphan() {
    let rc: Arc<ReplicationController> = Arc::new(
        serde_json::from_value(json!({"metadata": {"name": "rc", "namespace": "ns"}, "spec": {}}))
            .expect("valid RC"),
    );
    assert!(matching_sets(vec![rc], &pod(json!({"app": "web"}), None, "1")).is_empty());
}
