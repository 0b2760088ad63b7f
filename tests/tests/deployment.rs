//! The Deployment controller against the real apiserver, with ferrokube's ReplicaSet controller making the
//! pods (`--controllers=deployment,replicaset`). No kubelet runs: a helper task marks pods Running and
//! Ready, as a kubelet would. What a user sees is checked: ReplicaSets (names, hash label, annotations),
//! the Deployment's status and conditions, events, and `kubectl rollout undo`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrokube_cluster::Identity;
use ferrokube_cluster::testing::{TestNamespace, shared_control_plane};
use ferrokube_tests::ComponentProcess;
use ferrokube_tests::controllers::{
    ControllerManagerProcess, is_ready, mark_pods_ready, mark_pods_ready_if, watch_all,
};
use ferrokube_tests::scheduling::{
    admin, default_service_account, event_notes, eventually, exclusive,
};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(40);

struct Setup {
    // Every controller-manager acts on every namespace: the tests take turns so one runs at a time.
    _turn: tokio::sync::MutexGuard<'static, ()>,
    ns: TestNamespace,
    client: Client,
    manager: ComponentProcess,
}

async fn setup(test: &str) -> Setup {
    let turn = exclusive().await;
    let ns = TestNamespace::new(test).await;
    let client = admin().await;
    default_service_account(&client, &ns.name).await;
    let manager = ControllerManagerProcess::start(test, "deployment,replicaset", &[]);
    Setup {
        _turn: turn,
        ns,
        client,
        manager,
    }
}

fn deployment(name: &str, replicas: i32, image: &str, strategy: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": strategy,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]}
            }
        }
    })
}

fn rolling(surge: Value, unavailable: Value) -> Value {
    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
}

async fn create(client: &Client, ns: &str, d: Value) -> Deployment {
    let d: Deployment = serde_json::from_value(d).unwrap();
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &d)
        .await
        .unwrap()
}

async fn patch(client: &Client, ns: &str, name: &str, patch: Value) {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
}

fn set_image(image: &str) -> Value {
    json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}})
}

fn condition(d: &Deployment, type_: &str) -> Option<DeploymentCondition> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
}

fn reason_and_message(c: &DeploymentCondition) -> (String, String, String) {
    (
        c.status.clone(),
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    )
}

async fn get(client: &Client, ns: &str, name: &str) -> Deployment {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap()
}

/// Waits until the Deployment's latest spec is rolled out completely and available.
async fn wait_complete(s: &Setup, name: &str, replicas: i32) -> Deployment {
    let what = format!("deployment {name} to complete with {replicas} replicas");
    eventually(LIMIT, &what, || async {
        let d = get(&s.client, &s.ns.name, name).await;
        let status = d.status.clone()?;
        let done = status.observed_generation == d.metadata.generation
            && status.replicas == Some(replicas)
            && status.updated_replicas == Some(replicas)
            && status.available_replicas == Some(replicas)
            && status.ready_replicas == Some(replicas)
            && condition(&d, "Progressing")?.reason.as_deref() == Some("NewReplicaSetAvailable");
        done.then_some(d)
    })
    .await
}

async fn replica_sets(client: &Client, ns: &str) -> Vec<ReplicaSet> {
    Api::<ReplicaSet>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
}

fn annotation(rs: &ReplicaSet, key: &str) -> Option<String> {
    rs.metadata.annotations.as_ref()?.get(key).cloned()
}

fn image(rs: &ReplicaSet) -> String {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref())
        .map(|s| s.containers[0].image.clone().unwrap_or_default())
        .unwrap_or_default()
}

fn hash_label(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<String> {
    meta.labels.as_ref()?.get("pod-template-hash").cloned()
}

fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

async fn scaling_events(s: &Setup, name: &str) -> Vec<String> {
    event_notes(&s.client, &s.ns.name, name, "ScalingReplicaSet").await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_deployment_becomes_available() {
    let s = setup("deploy-available").await;
    let ready = mark_pods_ready(&s.client, &s.ns.name);
    create(
        &s.client,
        &s.ns.name,
        deployment("web", 3, "nginx:1", rolling(json!("25%"), json!("25%"))),
    )
    .await;
    let d = wait_complete(&s, "web", 3).await;
    let status = d.status.clone().unwrap();
    assert_eq!(
        (status.unavailable_replicas, status.terminating_replicas),
        (None, Some(0)),
        "unavailableReplicas 0 is omitted, terminatingReplicas 0 is not"
    );

    let rss = replica_sets(&s.client, &s.ns.name).await;
    assert_eq!(rss.len(), 1, "one ReplicaSet");
    let rs = &rss[0];
    let name = rs.metadata.name.clone().unwrap();
    let hash = hash_label(&rs.metadata).expect("pod-template-hash label");
    assert_eq!(name, format!("web-{hash}"));
    let spec = rs.spec.clone().unwrap();
    assert_eq!(
        spec.selector.match_labels.unwrap().get("pod-template-hash"),
        Some(&hash)
    );
    assert_eq!(
        hash_label(spec.template.as_ref().unwrap().metadata.as_ref().unwrap()),
        Some(hash.clone())
    );
    assert_eq!(
        annotation(rs, "deployment.kubernetes.io/revision").as_deref(),
        Some("1")
    );
    assert_eq!(
        annotation(rs, "deployment.kubernetes.io/desired-replicas").as_deref(),
        Some("3")
    );
    // 25% of 3 rounds up to 1.
    assert_eq!(
        annotation(rs, "deployment.kubernetes.io/max-replicas").as_deref(),
        Some("4")
    );
    let owner = &rs.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("Deployment", Some(true))
    );
    assert_eq!(
        d.metadata
            .annotations
            .as_ref()
            .unwrap()
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("1")
    );

    assert_eq!(
        reason_and_message(&condition(&d, "Available").unwrap()),
        (
            "True".into(),
            "MinimumReplicasAvailable".into(),
            "Deployment has minimum availability.".into()
        )
    );
    assert_eq!(
        reason_and_message(&condition(&d, "Progressing").unwrap()),
        (
            "True".into(),
            "NewReplicaSetAvailable".into(),
            format!("ReplicaSet \"{name}\" has successfully progressed.")
        )
    );
    let events = eventually(
        Duration::from_secs(10),
        "the ScalingReplicaSet event",
        || async {
            let notes = scaling_events(&s, "web").await;
            (!notes.is_empty()).then_some(notes)
        },
    )
    .await;
    assert_eq!(
        events,
        [format!("Scaled up replica set {name} from 0 to 3")],
        "{}",
        s.manager.log_tail()
    );
    ready.abort();
    s.ns.delete().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rolling_update_keeps_within_surge_and_availability() {
    let s = setup("deploy-rolling").await;
    let ready = mark_pods_ready(&s.client, &s.ns.name);
    let (replicas, surge, unavailable) = (4, 1, 1);
    create(
        &s.client,
        &s.ns.name,
        deployment(
            "web",
            replicas,
            "nginx:1",
            rolling(json!(surge), json!(unavailable)),
        ),
    )
    .await;
    wait_complete(&s, "web", replicas).await;
    let first = replica_sets(&s.client, &s.ns.name).await.remove(0);

    let (rs_watch, rs_violations) = watch_all::<ReplicaSet>(&s.client, &s.ns.name, move |rss| {
        let total: i32 = rss.values().map(rs_replicas).sum();
        (total > replicas + surge).then(|| {
            let sizes: Vec<(String, i32)> = rss
                .iter()
                .map(|(n, rs)| (n.clone(), rs_replicas(rs)))
                .collect();
            format!("ReplicaSets ask for {total} pods: {sizes:?}")
        })
    });
    let seen_steps = Arc::new(Mutex::new(0usize));
    let steps = seen_steps.clone();
    let (pod_watch, pod_violations) = watch_all::<Pod>(&s.client, &s.ns.name, move |pods| {
        *steps.lock().unwrap() += 1;
        let ready = pods
            .values()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p))
            .count();
        let ready = i32::try_from(ready).unwrap();
        (ready < replicas - unavailable).then(|| format!("only {ready} pods ready"))
    });
    // Let the watches list first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    patch(&s.client, &s.ns.name, "web", set_image("nginx:2")).await;
    let d = wait_complete(&s, "web", replicas).await;
    let rss = replica_sets(&s.client, &s.ns.name).await;
    rs_watch.abort();
    pod_watch.abort();
    let events = scaling_events(&s, "web").await;
    if !rs_violations.lock().unwrap().is_empty() {
        let log = std::fs::read_to_string(s.manager.process.log()).unwrap_or_default();
        for line in log.lines().filter(|l| l.contains("deployment::sync")) {
            eprintln!("{line}");
        }
    }
    assert_eq!(
        rs_violations.lock().unwrap().clone(),
        Vec::<String>::new(),
        "maxSurge exceeded; events {events:?}"
    );
    assert_eq!(
        pod_violations.lock().unwrap().clone(),
        Vec::<String>::new(),
        "maxUnavailable exceeded"
    );
    assert!(*seen_steps.lock().unwrap() > 4, "the rollout was watched");

    assert_eq!(rss.len(), 2);
    let old = rss
        .iter()
        .find(|rs| rs.metadata.uid == first.metadata.uid)
        .unwrap();
    let new = rss
        .iter()
        .find(|rs| rs.metadata.uid != first.metadata.uid)
        .unwrap();
    assert_eq!((rs_replicas(old), rs_replicas(new)), (0, replicas));
    assert_eq!(image(new), "nginx:2");
    assert_eq!(
        annotation(new, "deployment.kubernetes.io/revision").as_deref(),
        Some("2")
    );
    assert_eq!(
        annotation(old, "deployment.kubernetes.io/revision").as_deref(),
        Some("1")
    );
    assert_eq!(
        d.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"],
        "2"
    );
    let new_name = new.metadata.name.clone().unwrap();
    let old_name = old.metadata.name.clone().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.starts_with(&format!("Scaled up replica set {new_name} from 0 to "))),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.starts_with(&format!("Scaled down replica set {old_name} from "))),
        "{events:?}"
    );
    ready.abort();
    s.ns.delete().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn recreate_removes_old_pods_before_making_new_ones() {
    let s = setup("deploy-recreate").await;
    let ready = mark_pods_ready(&s.client, &s.ns.name);
    create(
        &s.client,
        &s.ns.name,
        deployment("web", 3, "nginx:1", json!({"type": "Recreate"})),
    )
    .await;
    wait_complete(&s, "web", 3).await;
    let (pod_watch, violations) = watch_all::<Pod>(&s.client, &s.ns.name, |pods| {
        let hashes: std::collections::BTreeSet<String> = pods
            .values()
            .filter_map(|p| hash_label(&p.metadata))
            .collect();
        (hashes.len() > 1).then(|| format!("old and new pods at once: {hashes:?}"))
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    patch(&s.client, &s.ns.name, "web", set_image("nginx:2")).await;
    let d = wait_complete(&s, "web", 3).await;
    pod_watch.abort();
    assert_eq!(violations.lock().unwrap().clone(), Vec::<String>::new());
    let rss = replica_sets(&s.client, &s.ns.name).await;
    let new = rss.iter().find(|rs| image(rs) == "nginx:2").unwrap();
    assert_eq!(rs_replicas(new), 3);
    assert!(d.status.unwrap().replicas == Some(3));
    let events = scaling_events(&s, "web").await;
    let name = |rs: &ReplicaSet| rs.metadata.name.clone().unwrap();
    let old = rss.iter().find(|rs| image(rs) == "nginx:1").unwrap();
    assert!(
        events.contains(&format!(
            "Scaled down replica set {} from 3 to 0",
            name(old)
        )),
        "{events:?}"
    );
    assert!(
        events.contains(&format!("Scaled up replica set {} from 0 to 3", name(new))),
        "{events:?}"
    );
    ready.abort();
    s.ns.delete().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_rollout_undo_returns_to_the_old_replica_set() {
    let s = setup("deploy-undo").await;
    let ready = mark_pods_ready(&s.client, &s.ns.name);
    create(
        &s.client,
        &s.ns.name,
        deployment("web", 2, "nginx:1", rolling(json!(1), json!(0))),
    )
    .await;
    wait_complete(&s, "web", 2).await;
    let first = replica_sets(&s.client, &s.ns.name).await.remove(0);
    patch(&s.client, &s.ns.name, "web", set_image("nginx:2")).await;
    wait_complete(&s, "web", 2).await;

    let kubectl = ferrokube_cluster::upstream::binary("kubectl").unwrap();
    let kubeconfig = shared_control_plane()
        .kubeconfig(&Identity::admin())
        .unwrap()
        .to_path_buf();
    let ns = s.ns.name.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(kubectl)
            .args([
                "rollout",
                "undo",
                "deployment/web",
                "-n",
                &ns,
                "--kubeconfig",
            ])
            .arg(kubeconfig)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "kubectl: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "deployment.apps/web rolled back"
    );

    let d = eventually(LIMIT, "the rollback to complete", || async {
        let d = get(&s.client, &s.ns.name, "web").await;
        let rs = replica_sets(&s.client, &s.ns.name)
            .await
            .into_iter()
            .find(|rs| rs.metadata.uid == first.metadata.uid)?;
        let done = rs_replicas(&rs) == 2
            && annotation(&rs, "deployment.kubernetes.io/revision").as_deref() == Some("3")
            && d.status.as_ref()?.updated_replicas == Some(2)
            && d.status.as_ref()?.available_replicas == Some(2)
            && d.status.as_ref()?.replicas == Some(2);
        done.then_some(d)
    })
    .await;
    let rss = replica_sets(&s.client, &s.ns.name).await;
    assert_eq!(rss.len(), 2, "no third ReplicaSet");
    let back = rss
        .iter()
        .find(|rs| rs.metadata.uid == first.metadata.uid)
        .unwrap();
    assert_eq!(back.metadata.name, first.metadata.name);
    assert_eq!(
        annotation(back, "deployment.kubernetes.io/revision-history").as_deref(),
        Some("1")
    );
    assert_eq!(
        d.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"],
        "3"
    );
    let other = rss
        .iter()
        .find(|rs| rs.metadata.uid != first.metadata.uid)
        .unwrap();
    eventually(LIMIT, "the nginx:2 ReplicaSet to scale down", || async {
        let rs = Api::<ReplicaSet>::namespaced(s.client.clone(), &s.ns.name)
            .get(other.metadata.name.as_deref().unwrap())
            .await
            .ok()?;
        (rs_replicas(&rs) == 0).then_some(())
    })
    .await;
    ready.abort();
    s.ns.delete().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_deployment_scales_but_does_not_roll_out() {
    let s = setup("deploy-pause").await;
    let ready = mark_pods_ready(&s.client, &s.ns.name);
    create(
        &s.client,
        &s.ns.name,
        deployment("web", 2, "nginx:1", rolling(json!(1), json!(0))),
    )
    .await;
    wait_complete(&s, "web", 2).await;
    patch(
        &s.client,
        &s.ns.name,
        "web",
        json!({"spec": {"paused": true}}),
    )
    .await;
    eventually(LIMIT, "the DeploymentPaused condition", || async {
        let d = get(&s.client, &s.ns.name, "web").await;
        let c = reason_and_message(&condition(&d, "Progressing")?);
        (c == (
            "Unknown".into(),
            "DeploymentPaused".into(),
            "Deployment is paused".into(),
        ))
            .then_some(())
    })
    .await;
    // A new template while paused: nothing rolls out; scaling still happens.
    patch(&s.client, &s.ns.name, "web", set_image("nginx:2")).await;
    patch(
        &s.client,
        &s.ns.name,
        "web",
        json!({"spec": {"replicas": 4}}),
    )
    .await;
    eventually(LIMIT, "the paused deployment to scale to 4", || async {
        let rss = replica_sets(&s.client, &s.ns.name).await;
        (rss.len() == 1 && rs_replicas(&rss[0]) == 4).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = replica_sets(&s.client, &s.ns.name).await;
    assert_eq!(rss.len(), 1, "no rollout while paused");
    assert_eq!(image(&rss[0]), "nginx:1");

    patch(
        &s.client,
        &s.ns.name,
        "web",
        json!({"spec": {"paused": false}}),
    )
    .await;
    let d = wait_complete(&s, "web", 4).await;
    let rss = replica_sets(&s.client, &s.ns.name).await;
    assert_eq!(rss.len(), 2);
    assert!(
        rss.iter()
            .any(|rs| image(rs) == "nginx:2" && rs_replicas(rs) == 4)
    );
    assert_eq!(
        d.metadata.annotations.unwrap()["deployment.kubernetes.io/revision"],
        "2"
    );
    ready.abort();
    s.ns.delete().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stuck_rollout_exceeds_its_progress_deadline() {
    // No pod ever becomes ready.
    let s = setup("deploy-deadline").await;
    let mut d = deployment("web", 2, "nginx:1", rolling(json!(1), json!(0)));
    d["spec"]["progressDeadlineSeconds"] = json!(3);
    create(&s.client, &s.ns.name, d).await;
    let rs_name = eventually(LIMIT, "the ReplicaSet", || async {
        replica_sets(&s.client, &s.ns.name)
            .await
            .first()?
            .metadata
            .name
            .clone()
    })
    .await;
    let d = eventually(LIMIT, "ProgressDeadlineExceeded", || async {
        let d = get(&s.client, &s.ns.name, "web").await;
        (condition(&d, "Progressing")?.reason.as_deref() == Some("ProgressDeadlineExceeded"))
            .then_some(d)
    })
    .await;
    assert_eq!(
        reason_and_message(&condition(&d, "Progressing").unwrap()),
        (
            "False".into(),
            "ProgressDeadlineExceeded".into(),
            format!("ReplicaSet \"{rs_name}\" has timed out progressing.")
        )
    );
    assert_eq!(
        reason_and_message(&condition(&d, "Available").unwrap()),
        (
            "False".into(),
            "MinimumReplicasUnavailable".into(),
            "Deployment does not have minimum availability.".into()
        ),
        "{}",
        s.manager.log_tail()
    );
    s.ns.delete().await;
}

fn pod_image(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref()?.containers.first()?.image.as_deref()
}

#[tokio::test(flavor = "multi_thread")]
async fn scaling_during_a_stuck_rollout_is_proportional() {
    let s = setup("deploy-proportional").await;
    // Pods of the new template never become ready: the rollout stops half-way.
    let ready = mark_pods_ready_if(&s.client, &s.ns.name, |pod| {
        pod_image(pod) == Some("nginx:1")
    });
    let d = deployment("web", 10, "nginx:1", rolling(json!("25%"), json!("25%")));
    create(&s.client, &s.ns.name, d).await;
    wait_complete(&s, "web", 10).await;
    let first = replica_sets(&s.client, &s.ns.name).await.remove(0);
    patch(&s.client, &s.ns.name, "web", set_image("nginx:2")).await;
    // maxSurge 3 (25% of 10 rounded up), maxUnavailable 2 (rounded down): old 8, new 5, then stuck.
    let sizes = |rss: &[ReplicaSet]| {
        let old = rss
            .iter()
            .find(|rs| rs.metadata.uid == first.metadata.uid)
            .map(rs_replicas);
        let new = rss
            .iter()
            .find(|rs| rs.metadata.uid != first.metadata.uid)
            .map(rs_replicas);
        (old, new)
    };
    eventually(LIMIT, "the rollout to stop at old 8, new 5", || async {
        let rss = replica_sets(&s.client, &s.ns.name).await;
        (sizes(&rss) == (Some(8), Some(5))).then_some(())
    })
    .await;
    patch(
        &s.client,
        &s.ns.name,
        "web",
        json!({"spec": {"replicas": 20}}),
    )
    .await;
    // 20 + 5 surge = 25 shared as 8:5 of the earlier 13: old 15, new 10.
    let rss = eventually(LIMIT, "proportional scaling to old 15, new 10", || async {
        let rss = replica_sets(&s.client, &s.ns.name).await;
        (sizes(&rss) == (Some(15), Some(10))).then_some(rss)
    })
    .await;
    for rs in &rss {
        assert_eq!(
            annotation(rs, "deployment.kubernetes.io/desired-replicas").as_deref(),
            Some("20")
        );
        assert_eq!(
            annotation(rs, "deployment.kubernetes.io/max-replicas").as_deref(),
            Some("25")
        );
    }
    ready.abort();
    s.ns.delete().await;
}
