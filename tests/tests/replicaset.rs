//! ferrokube-controller-manager's ReplicaSet and ReplicationController controllers against the real
//! apiserver: scaling without overshooting, adoption and release, ready/available counts, the
//! ReplicaFailure condition under a ResourceQuota, and the events a user sees. No kubelet runs: pods stay
//! Pending unless a test sets their status.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ferrokube_cluster::testing::TestNamespace;
use ferrokube_tests::ComponentProcess;
use ferrokube_tests::controllers::ControllerManagerProcess;
use ferrokube_tests::scheduling::{admin, default_service_account, event_notes, eventually};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, ReplicationController, ResourceQuota};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, Resource};
use serde_json::{Value, json};
use tokio::sync::{Mutex, MutexGuard};

const LIMIT: Duration = Duration::from_secs(30);

/// Each test runs its own controller-manager, which manages every namespace: tests take turns.
async fn turn() -> MutexGuard<'static, ()> {
    static LOCK: OnceLock<Mutex<()>> = OnceLock::new();
    LOCK.get_or_init(|| Mutex::new(())).lock().await
}

async fn setup(test: &str) -> (TestNamespace, Client, ComponentProcess) {
    let namespace = TestNamespace::new(test).await;
    let client = admin().await;
    default_service_account(&client, &namespace.name).await;
    let process = ControllerManagerProcess::start(test, "replicaset,replicationcontroller", &[]);
    (namespace, client, process)
}

fn replica_set(name: &str, replicas: i32, labels: Value, min_ready: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "minReadySeconds": min_ready,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]},
            },
        },
    }))
    .unwrap()
}

async fn create_rs(client: &Client, ns: &str, rs: ReplicaSet) -> ReplicaSet {
    Api::<ReplicaSet>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &rs)
        .await
        .unwrap()
}

async fn scale_rs(client: &Client, ns: &str, name: &str, replicas: i32) {
    Api::<ReplicaSet>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await
        .unwrap();
}

/// Active (not terminal, not being deleted) pods of the namespace controlled by `owner_uid`.
async fn owned_pods(client: &Client, ns: &str, owner_uid: &str) -> Vec<Pod> {
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap();
    pods.items
        .into_iter()
        .filter(|p| active(p) && controller_uid(p).as_deref() == Some(owner_uid))
        .collect()
}

fn controller_uid(pod: &Pod) -> Option<String> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.clone())
}

fn active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

async fn wait_for_owned(client: &Client, ns: &str, owner_uid: &str, count: usize) -> Vec<Pod> {
    eventually(
        LIMIT,
        &format!("{count} pods owned by {owner_uid}"),
        || async {
            let pods = owned_pods(client, ns, owner_uid).await;
            (pods.len() == count).then_some(pods)
        },
    )
    .await
}

async fn rs_status(client: &Client, ns: &str, name: &str) -> ReplicaSet {
    Api::<ReplicaSet>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap()
}

/// Watches the namespace's pods and records the most active pods ever seen at once.
fn watch_max_active(client: &Client, ns: &str) -> (Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let max = Arc::new(AtomicUsize::new(0));
    let seen = max.clone();
    let api = Api::<Pod>::namespaced(client.clone(), ns);
    let task = tokio::spawn(async move {
        let mut active_pods: HashMap<String, bool> = HashMap::new();
        let mut stream = std::pin::pin!(watcher(api, watcher::Config::default()));
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                    active_pods.insert(pod.metadata.name.clone().unwrap(), active(&pod));
                }
                Ok(watcher::Event::Delete(pod)) => {
                    active_pods.remove(pod.metadata.name.as_deref().unwrap());
                }
                _ => {}
            }
            let count = active_pods.values().filter(|a| **a).count();
            seen.fetch_max(count, Ordering::SeqCst);
        }
    });
    (max, task)
}

#[tokio::test(flavor = "multi_thread")]
async fn scales_up_and_down_under_bursts_of_updates_without_overshooting() {
    let _turn = turn().await;
    let (ns, client, cm) = setup("rs-scale").await;
    let (max_active, watch) = watch_max_active(&client, &ns.name);
    let rs = create_rs(
        &client,
        &ns.name,
        replica_set("web", 1, json!({"app": "web"}), 0),
    )
    .await;
    let uid = rs.meta().uid.clone().unwrap();
    // A burst of spec updates while pods are being created.
    for replicas in [5, 12, 3, 20] {
        scale_rs(&client, &ns.name, "web", replicas).await;
    }
    wait_for_owned(&client, &ns.name, &uid, 20).await;
    let status = eventually(LIMIT, "status.replicas 20", || async {
        let rs = rs_status(&client, &ns.name, "web").await;
        let status = rs.status.clone()?;
        (status.replicas == 20).then_some(rs)
    })
    .await;
    assert_eq!(
        status.status.as_ref().unwrap().observed_generation,
        status.metadata.generation,
        "{}",
        cm.log_tail()
    );
    for replicas in [10, 15, 4] {
        scale_rs(&client, &ns.name, "web", replicas).await;
    }
    let pods = wait_for_owned(&client, &ns.name, &uid, 4).await;
    eventually(LIMIT, "status.replicas 4", || async {
        let status = rs_status(&client, &ns.name, "web").await.status?;
        (status.replicas == 4 && status.terminating_replicas == Some(0)).then_some(())
    })
    .await;
    // Stays at 4: no late duplicate creations from a stale cache.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(owned_pods(&client, &ns.name, &uid).await.len(), 4);
    assert!(
        max_active.load(Ordering::SeqCst) <= 20,
        "saw {} active pods at once for at most 20 replicas",
        max_active.load(Ordering::SeqCst)
    );
    watch.abort();

    // Every pod is made from the template and controlled by the ReplicaSet.
    let pod = &pods[0];
    let name = pod.metadata.name.clone().unwrap();
    assert!(name.starts_with("web-"), "{name}");
    assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-"));
    let reference = &pod.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (
            reference.api_version.as_str(),
            reference.kind.as_str(),
            reference.name.as_str()
        ),
        ("apps/v1", "ReplicaSet", "web")
    );
    assert_eq!(reference.block_owner_deletion, Some(true));
    // Events are written in the background and, as client-go's spam filter does, at most 25 about one
    // object in a burst: this ReplicaSet created and deleted more pods than that.
    let created = eventually(LIMIT, "SuccessfulCreate events", || async {
        let created = event_notes(&client, &ns.name, "web", "SuccessfulCreate").await;
        (!created.is_empty()).then_some(created)
    })
    .await;
    assert!(
        created.iter().all(|n| n.starts_with("Created pod: web-")),
        "{created:?}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let created = event_notes(&client, &ns.name, "web", "SuccessfulCreate").await;
    let deleted = event_notes(&client, &ns.name, "web", "SuccessfulDelete").await;
    assert!(
        created.len() + deleted.len() <= 25,
        "{} events about one ReplicaSet",
        created.len() + deleted.len()
    );
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn adopts_a_matching_orphan_and_releases_it_when_its_labels_change() {
    let _turn = turn().await;
    let (ns, client, cm) = setup("rs-adopt").await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name);
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": "orphan", "labels": {"app": "adopt"}},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &orphan).await.unwrap();
    // Matching labels but controlled by another (missing) ReplicaSet: never claimed, never a crash.
    let foreign: Pod = serde_json::from_value(json!({
        "metadata": {"name": "foreign", "labels": {"app": "adopt"}, "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "ghost",
            "uid": "00000000-0000-0000-0000-000000000000", "controller": true,
        }]},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &foreign).await.unwrap();
    let rs = create_rs(
        &client,
        &ns.name,
        replica_set("adopter", 2, json!({"app": "adopt"}), 0),
    )
    .await;
    let uid = rs.meta().uid.clone().unwrap();

    let owned = wait_for_owned(&client, &ns.name, &uid, 2).await;
    assert!(
        owned
            .iter()
            .any(|p| p.metadata.name.as_deref() == Some("orphan")),
        "the orphan was adopted: {}",
        cm.log_tail()
    );
    let adopted = pods.get("orphan").await.unwrap();
    let reference = &adopted.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (reference.controller, reference.block_owner_deletion),
        (Some(true), Some(true))
    );
    assert_eq!(reference.kind, "ReplicaSet");

    // Labels no longer match: released, and replaced.
    pods.patch(
        "orphan",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "other"}}})),
    )
    .await
    .unwrap();
    eventually(LIMIT, "the pod to be released", || async {
        let pod = pods.get("orphan").await.ok()?;
        let refs = pod.metadata.owner_references.unwrap_or_default();
        refs.iter().all(|r| r.uid != uid).then_some(())
    })
    .await;
    let owned = wait_for_owned(&client, &ns.name, &uid, 2).await;
    assert!(
        owned
            .iter()
            .all(|p| p.metadata.name.as_deref() != Some("orphan"))
    );
    let foreign = pods.get("foreign").await.unwrap();
    let refs = foreign.metadata.owner_references.unwrap();
    assert_eq!((refs.len(), refs[0].name.as_str()), (1, "ghost"));
    ns.delete().await;
}

async fn mark_ready(pods: &Api<Pod>, name: &str) {
    let now = Timestamp::now().to_string();
    let status = json!({"status": {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
    }});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_and_available_replicas_honour_min_ready_seconds_and_not_ready_pods_go_first() {
    let _turn = turn().await;
    let (ns, client, cm) = setup("rs-ready").await;
    let rs = create_rs(
        &client,
        &ns.name,
        replica_set("ready", 3, json!({"app": "ready"}), 3),
    )
    .await;
    let uid = rs.meta().uid.clone().unwrap();
    let owned = wait_for_owned(&client, &ns.name, &uid, 3).await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name);
    let names: Vec<String> = owned
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    mark_ready(&pods, &names[0]).await;
    mark_ready(&pods, &names[1]).await;

    eventually(LIMIT, "2 ready, 0 available", || async {
        let s = rs_status(&client, &ns.name, "ready").await.status?;
        let counts = (
            s.replicas,
            s.ready_replicas?,
            s.available_replicas.unwrap_or(0),
        );
        (counts == (3, 2, 0)).then_some(())
    })
    .await;
    // No further pod event comes: only the controller's own requeue after minReadySeconds makes them
    // available.
    eventually(LIMIT, "2 available after minReadySeconds", || async {
        let s = rs_status(&client, &ns.name, "ready").await.status?;
        (s.available_replicas == Some(2) && s.fully_labeled_replicas == Some(3)).then_some(())
    })
    .await;

    // Scaling down deletes the pod that is not ready.
    scale_rs(&client, &ns.name, "ready", 2).await;
    let left = wait_for_owned(&client, &ns.name, &uid, 2).await;
    let mut left: Vec<String> = left
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    left.sort();
    let mut expected = names[..2].to_vec();
    expected.sort();
    assert_eq!(left, expected, "{}", cm.log_tail());
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quota_failure_sets_replica_failure_while_other_namespaces_still_scale() {
    let _turn = turn().await;
    let (ns, client, cm) = setup("rs-quota").await;
    let other = TestNamespace::new("rs-quota-other").await;
    default_service_account(&client, &other.name).await;

    // No quota controller runs: the test sets the quota's status, which admission then keeps current.
    let quotas = Api::<ResourceQuota>::namespaced(client.clone(), &ns.name);
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "pods"}, "spec": {"hard": {"pods": "1"}},
    }))
    .unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    let status = json!({"status": {"hard": {"pods": "1"}, "used": {"pods": "0"}}});
    quotas
        .patch_status("pods", &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();

    let rs = create_rs(
        &client,
        &ns.name,
        replica_set("limited", 3, json!({"app": "limited"}), 0),
    )
    .await;
    let fine = create_rs(
        &client,
        &other.name,
        replica_set("fine", 2, json!({"app": "fine"}), 0),
    )
    .await;

    let (reason, message) = eventually(LIMIT, "the ReplicaFailure condition", || async {
        let s = rs_status(&client, &ns.name, "limited").await.status?;
        let c = s
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "ReplicaFailure")?;
        (c.status == "True").then(|| (c.reason.unwrap_or_default(), c.message.unwrap_or_default()))
    })
    .await;
    assert_eq!(reason, "FailedCreate");
    assert!(message.contains("exceeded quota: pods"), "{message}");
    assert!(
        message.contains("is forbidden"),
        "the apiserver's own message: {message}"
    );
    let notes = eventually(LIMIT, "the FailedCreate event", || async {
        let notes = event_notes(&client, &ns.name, "limited", "FailedCreate").await;
        (!notes.is_empty()).then_some(notes)
    })
    .await;
    assert!(
        notes
            .iter()
            .all(|n| n.starts_with("Error creating: ") && n.contains("exceeded quota: pods")),
        "{notes:?}"
    );
    let rs_uid = rs.meta().uid.clone().unwrap();
    assert_eq!(owned_pods(&client, &ns.name, &rs_uid).await.len(), 1);
    // The other namespace is not held up.
    wait_for_owned(&client, &other.name, fine.meta().uid.as_ref().unwrap(), 2).await;

    // Room again: the ReplicaSet fills up and the condition goes away.
    quotas
        .patch(
            "pods",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"hard": {"pods": "5"}}})),
        )
        .await
        .unwrap();
    quotas
        .patch_status(
            "pods",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"hard": {"pods": "5"}}})),
        )
        .await
        .unwrap();
    wait_for_owned(&client, &ns.name, &rs_uid, 3).await;
    eventually(LIMIT, "the condition to be removed", || async {
        let s = rs_status(&client, &ns.name, "limited").await.status?;
        let gone = s
            .conditions
            .unwrap_or_default()
            .iter()
            .all(|c| c.type_ != "ReplicaFailure");
        (gone && s.replicas == 3).then_some(())
    })
    .await;
    drop(cm);
    other.delete().await;
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replication_controller_scales() {
    let _turn = turn().await;
    let (ns, client, cm) = setup("rc-scale").await;
    let rcs = Api::<ReplicationController>::namespaced(client.clone(), &ns.name);
    let rc: ReplicationController = serde_json::from_value(json!({
        "metadata": {"name": "legacy"},
        "spec": {
            "replicas": 3,
            "selector": {"app": "legacy"},
            "template": {
                "metadata": {"labels": {"app": "legacy"}},
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]},
            },
        },
    }))
    .unwrap();
    let rc = rcs.create(&PostParams::default(), &rc).await.unwrap();
    let uid = rc.meta().uid.clone().unwrap();
    let pods = wait_for_owned(&client, &ns.name, &uid, 3).await;
    let reference = &pods[0].metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (reference.api_version.as_str(), reference.kind.as_str()),
        ("v1", "ReplicationController")
    );
    eventually(LIMIT, "RC status.replicas 3", || async {
        let s = rcs.get("legacy").await.ok()?.status?;
        (s.replicas == 3 && s.observed_generation == Some(1)).then_some(())
    })
    .await;
    rcs.patch(
        "legacy",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    wait_for_owned(&client, &ns.name, &uid, 1).await;
    eventually(LIMIT, "RC status.replicas 1", || async {
        let s = rcs.get("legacy").await.ok()?.status?;
        (s.replicas == 1).then_some(())
    })
    .await;
    let created = eventually(LIMIT, "3 SuccessfulCreate events", || async {
        let created = event_notes(&client, &ns.name, "legacy", "SuccessfulCreate").await;
        (created.len() == 3).then_some(created)
    })
    .await;
    assert!(
        created
            .iter()
            .all(|n| n.starts_with("Created pod: legacy-")),
        "{created:?} {}",
        cm.log_tail()
    );
    let deleted = eventually(LIMIT, "2 SuccessfulDelete events", || async {
        let deleted = event_notes(&client, &ns.name, "legacy", "SuccessfulDelete").await;
        (deleted.len() == 2).then_some(deleted)
    })
    .await;
    assert!(
        deleted
            .iter()
            .all(|n| n.starts_with("Deleted pod: legacy-")),
        "{deleted:?}"
    );
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn terminating_pods_are_counted_apart_until_they_are_gone() {
    let _turn = turn().await;
    let (ns, client, cm) = setup("rs-terminating").await;
    let mut rs = replica_set("held", 2, json!({"app": "held"}), 0);
    let template = rs.spec.as_mut().unwrap().template.as_mut().unwrap();
    template.metadata.as_mut().unwrap().finalizers = Some(vec!["example.com/hold".into()]);
    let rs = create_rs(&client, &ns.name, rs).await;
    let uid = rs.meta().uid.clone().unwrap();
    let owned = wait_for_owned(&client, &ns.name, &uid, 2).await;
    assert_eq!(
        owned[0].metadata.finalizers.as_deref(),
        Some(&["example.com/hold".to_string()][..]),
        "finalizers come from the template"
    );

    scale_rs(&client, &ns.name, "held", 1).await;
    wait_for_owned(&client, &ns.name, &uid, 1).await;
    eventually(LIMIT, "1 replica and 1 terminating", || async {
        let s = rs_status(&client, &ns.name, "held").await.status?;
        (s.replicas == 1 && s.terminating_replicas == Some(1)).then_some(())
    })
    .await;

    // The finalizer goes: the pod is gone and so is the count.
    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name);
    let all = pods.list(&ListParams::default()).await.unwrap();
    let held = all
        .items
        .iter()
        .find(|p| p.metadata.deletion_timestamp.is_some())
        .expect("a terminating pod");
    pods.patch(
        held.metadata.name.as_deref().unwrap(),
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually(LIMIT, "0 terminating", || async {
        let s = rs_status(&client, &ns.name, "held").await.status?;
        (s.replicas == 1 && s.terminating_replicas == Some(0)).then_some(())
    })
    .await;
    assert_eq!(
        owned_pods(&client, &ns.name, &uid).await.len(),
        1,
        "{}",
        cm.log_tail()
    );

    // Leave nothing blocking the namespace's deletion.
    for pod in pods.list(&ListParams::default()).await.unwrap().items {
        let _ = pods
            .patch(
                pod.metadata.name.as_deref().unwrap(),
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": null}})),
            )
            .await;
    }
    ns.delete().await;
}
