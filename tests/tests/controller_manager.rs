//! The controller-manager as a whole against the real apiserver: a replacement started in the middle of a
//! rollout finishes it without excess pods, and two replicas with leader election never make duplicates.
//! No kubelet runs: a helper task marks pods Ready.

use std::collections::BTreeMap;
use std::time::Duration;

use ferrokube_cluster::testing::TestNamespace;
use ferrokube_tests::ComponentProcess;
use ferrokube_tests::controllers::{
    ControllerManagerProcess, is_ready, mark_pods_ready, watch_all,
};
use ferrokube_tests::scheduling::{admin, default_service_account, eventually, exclusive};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

/// Fast enough that a 200-pod rollout takes seconds, not minutes, at the apiserver's pace.
const FAST_CLIENT: [&str; 2] = ["--kube-api-qps=300", "--kube-api-burst=500"];

async fn create_deployment(client: &Client, ns: &str, name: &str, replicas: i32) {
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]},
            },
        },
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
}

async fn patch_deployment(client: &Client, ns: &str, name: &str, patch: serde_json::Value) {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
}

/// Waits until the Deployment's current generation is rolled out: `replicas` pods, all updated and available.
async fn wait_rolled_out(client: &Client, ns: &str, name: &str, replicas: i32, limit: Duration) {
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
    eventually(
        limit,
        &format!("{name} rolled out to {replicas}"),
        || async {
            let d = deployments.get(name).await.ok()?;
            let status = d.status?;
            (status.observed_generation >= d.metadata.generation
                && status.replicas == Some(replicas)
                && status.updated_replicas == Some(replicas)
                && status.available_replicas == Some(replicas))
            .then_some(())
        },
    )
    .await;
}

/// Waits until `manager` logs that it acquired its Lease.
async fn wait_leading(manager: &ComponentProcess) {
    eventually(Duration::from_secs(30), "a leader", || async {
        let log = std::fs::read_to_string(manager.process.log()).ok()?;
        log.contains("successfully acquired lease").then_some(())
    })
    .await;
}

/// Pods not being deleted.
fn live(pods: &BTreeMap<String, Pod>) -> usize {
    pods.values()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replacement_finishes_a_rollout_without_excess_pods() {
    let _turn = exclusive().await;
    let ns = TestNamespace::new("kcm-restart").await;
    let client = admin().await;
    default_service_account(&client, &ns.name).await;
    let ready = mark_pods_ready(&client, &ns.name);
    let mut first =
        ControllerManagerProcess::start("kcm-restart-1", "deployment,replicaset", &FAST_CLIENT);
    create_deployment(&client, &ns.name, "big", 200).await;
    wait_rolled_out(&client, &ns.name, "big", 200, Duration::from_secs(90)).await;

    // The default strategy: maxSurge 25% (50 pods) over 200 replicas.
    let (watch, violations) = watch_all::<Pod>(&client, &ns.name, |pods| {
        let live = live(pods);
        (live > 250).then(|| format!("{live} live pods, more than 200 + maxSurge 50"))
    });
    let image = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "c", "image": "registry.k8s.io/pause:3.9"}]}}}});
    patch_deployment(&client, &ns.name, "big", image).await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns.name);
    eventually(
        Duration::from_secs(60),
        "the rollout to be under way",
        || async {
            let updated = deployments
                .get("big")
                .await
                .ok()?
                .status?
                .updated_replicas?;
            (40..200).contains(&updated).then_some(())
        },
    )
    .await;
    // Killed outright, as a crashed or preempted controller-manager is: nothing is flushed.
    first.process.stop(Duration::ZERO);
    // Creates the killed process had sent still land after its death. A real successor cannot start before
    // the leader Lease expires (15 s), long after they landed; leader election is off here for speed, so
    // wait until the pod count has been still for a second, as it would be by then.
    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name);
    let mut last = usize::MAX;
    loop {
        let count = pods.list(&Default::default()).await.unwrap().items.len();
        if count == last {
            break;
        }
        last = count;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let _second =
        ControllerManagerProcess::start("kcm-restart-2", "deployment,replicaset", &FAST_CLIENT);
    wait_rolled_out(&client, &ns.name, "big", 200, Duration::from_secs(120)).await;
    // Pods the controllers deleted count as gone once terminating, as they do for upstream's ReplicaSet
    // controller: finishing their termination is a kubelet's part, and none runs here.
    eventually(
        Duration::from_secs(30),
        "exactly 200 live pods, all ready",
        || async {
            let items = pods.list(&Default::default()).await.ok()?.items;
            let live: Vec<&Pod> = items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            (live.len() == 200 && live.iter().all(|p| is_ready(p))).then_some(())
        },
    )
    .await;
    watch.abort();
    ready.abort();
    assert_eq!(*violations.lock().unwrap(), Vec::<String>::new());
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_with_leader_election_never_duplicate_pods() {
    let _turn = exclusive().await;
    let ns = TestNamespace::new("kcm-ha").await;
    let client = admin().await;
    default_service_account(&client, &ns.name).await;
    let ready = mark_pods_ready(&client, &ns.name);
    // Our own Lease, so other tests' controller-managers never compete for it.
    let election = [
        "--leader-elect=true",
        "--leader-elect-resource-name=kcm-ha-test",
        "--leader-elect-lease-duration=4s",
        "--leader-elect-renew-deadline=3s",
        "--leader-elect-retry-period=1s",
        FAST_CLIENT[0],
        FAST_CLIENT[1],
    ];
    let mut first =
        ControllerManagerProcess::start_electing("kcm-ha-1", "deployment,replicaset", &election);
    wait_leading(&first).await;
    // A standby: it must do nothing while the first leads.
    let second =
        ControllerManagerProcess::start_electing("kcm-ha-2", "deployment,replicaset", &election);

    let (watch, violations) = watch_all::<Pod>(&client, &ns.name, |pods| {
        let live = live(pods);
        (live > 60).then(|| format!("{live} live pods for at most 60 replicas"))
    });
    create_deployment(&client, &ns.name, "ha", 60).await;
    wait_rolled_out(&client, &ns.name, "ha", 60, Duration::from_secs(60)).await;
    patch_deployment(&client, &ns.name, "ha", json!({"spec": {"replicas": 20}})).await;
    wait_rolled_out(&client, &ns.name, "ha", 20, Duration::from_secs(60)).await;

    first.process.stop(Duration::ZERO);
    wait_leading(&second).await;
    patch_deployment(&client, &ns.name, "ha", json!({"spec": {"replicas": 50}})).await;
    wait_rolled_out(&client, &ns.name, "ha", 50, Duration::from_secs(60)).await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name);
    assert_eq!(
        pods.list(&Default::default()).await.unwrap().items.len(),
        50
    );
    watch.abort();
    ready.abort();
    assert_eq!(*violations.lock().unwrap(), Vec::<String>::new());
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_no_controller_it_implements_selected_it_runs_until_stopped() {
    let mut manager = ControllerManagerProcess::start("kcm-none", "ttl", &[]);
    eventually(
        Duration::from_secs(30),
        "the unimplemented warning",
        || async {
            let log = std::fs::read_to_string(manager.process.log()).ok()?;
            log.contains("not implemented by ferrokube, not started: ttl")
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    manager
        .process
        .check_running()
        .expect("the controller-manager keeps running with nothing to do");
    manager.process.stop(Duration::from_secs(10));
}
