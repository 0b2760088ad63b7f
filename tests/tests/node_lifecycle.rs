//! ferrokube-controller-manager's node lifecycle, taint eviction and pod garbage collector controllers
//! against the real apiserver. No kubelets: the test plays them, renewing each node's Lease and Ready
//! heartbeat in a background task that it stops to make a node go silent.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrokube_cluster::testing::TestNamespace;
use ferrokube_tests::controllers::ControllerManagerProcess;
use ferrokube_tests::scheduling::*;
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const CONTROLLERS: &str = "nodelifecycle,taint-eviction-controller,podgc";
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

async fn setup(test: &str) -> (TestNamespace, Client) {
    let namespace = TestNamespace::new(test).await;
    let client = admin().await;
    delete_all_nodes(&client).await;
    default_service_account(&client, &namespace.name).await;
    (namespace, client)
}

/// Plays a kubelet's heartbeats for one node: every second renews its Lease in kube-node-lease and posts
/// Ready=True with a new heartbeat time, until dropped.
struct Heartbeat {
    stop: CancellationToken,
}

impl Heartbeat {
    async fn start(client: &Client, node: &str) -> Self {
        Self::reporting(client, node, "True").await
    }

    /// Heartbeats reporting Ready=`ready`.
    async fn reporting(client: &Client, node: &str, ready: &'static str) -> Self {
        let leases = Api::<Lease>::namespaced(client.clone(), "kube-node-lease");
        let lease: Lease = serde_json::from_value(json!({
            "metadata": {"name": node},
            "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": now_micro()},
        }))
        .unwrap();
        let _ = leases.create(&PostParams::default(), &lease).await;
        let stop = CancellationToken::new();
        let (client, node, token) = (client.clone(), node.to_string(), stop.clone());
        tokio::spawn(async move {
            let started = Timestamp::now().to_string();
            loop {
                beat(&client, &node, &started, ready).await;
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
        Self { stop }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn now_micro() -> String {
    Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string()
}

async fn beat(client: &Client, node: &str, started: &str, ready: &str) {
    let leases = Api::<Lease>::namespaced(client.clone(), "kube-node-lease");
    let renew = json!({"spec": {"renewTime": now_micro()}});
    let _ = leases
        .patch(node, &PatchParams::default(), &Patch::Merge(renew))
        .await;
    let now = Timestamp::now().to_string();
    let condition = |type_: &str, status: &str, reason: &str| {
        json!({"type": type_, "status": status, "reason": reason, "message": "test kubelet",
               "lastHeartbeatTime": now, "lastTransitionTime": started})
    };
    let status = json!({"status": {"conditions": [
        condition("Ready", ready, if ready == "True" { "KubeletReady" } else { "KubeletNotReady" }),
        condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
        condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
        condition("PIDPressure", "False", "KubeletHasSufficientPID"),
    ]}});
    let _ = Api::<Node>::all(client.clone())
        .patch_status(node, &PatchParams::default(), &Patch::Strategic(status))
        .await;
}

/// Creates a pod bound to `node` with `tolerations`, Running and Ready as a kubelet would report it.
async fn running_pod(client: &Client, ns: &str, name: &str, node: &str, tolerations: Value) {
    let spec = json!({"spec": {"nodeName": node, "tolerations": tolerations}});
    create_pod(client, ns, name, spec).await;
    let status = json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": Timestamp::now().to_string()},
    ]}});
    Api::<Pod>::namespaced(client.clone(), ns)
        .patch_status(name, &PatchParams::default(), &Patch::Strategic(status))
        .await
        .unwrap();
}

fn unreachable_for(seconds: Option<i64>) -> Value {
    let mut toleration = json!({"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"});
    if let Some(seconds) = seconds {
        toleration["tolerationSeconds"] = json!(seconds);
    }
    json!([toleration])
}

/// The node's taints as (key, effect).
async fn taints(client: &Client, node: &str) -> Vec<(String, String)> {
    let node = Api::<Node>::all(client.clone()).get(node).await.unwrap();
    let taints = node.spec.and_then(|s| s.taints).unwrap_or_default();
    taints.into_iter().map(|t| (t.key, t.effect)).collect()
}

fn has_taint(taints: &[(String, String)], key: &str, effect: &str) -> bool {
    taints.iter().any(|(k, e)| k == key && e == effect)
}

async fn condition(client: &Client, node: &str, type_: &str) -> (String, String, String) {
    let node = Api::<Node>::all(client.clone()).get(node).await.unwrap();
    let conditions = node.status.and_then(|s| s.conditions).unwrap_or_default();
    let c = conditions.into_iter().find(|c| c.type_ == type_).unwrap();
    (
        c.status,
        c.reason.unwrap_or_default(),
        c.message.unwrap_or_default(),
    )
}

/// Whether the pod is being deleted (or gone): without a kubelet a bound pod waits out its grace period.
async fn evicted(pods: &Api<Pod>, name: &str) -> bool {
    match pods.get_opt(name).await.unwrap() {
        None => true,
        Some(pod) => pod.metadata.deletion_timestamp.is_some(),
    }
}

fn pod_condition(pod: &Pod, type_: &str) -> Option<(String, String, String)> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    let c = conditions.iter().find(|c| c.type_ == type_)?;
    Some((
        c.status.clone(),
        c.reason.clone().unwrap_or_default(),
        c.message.clone().unwrap_or_default(),
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_node_goes_unknown_is_tainted_and_evicted_by_toleration_then_recovers() {
    let _turn = exclusive().await;
    let (ns, client) = setup("nodelifecycle").await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name);
    // A second, healthy node keeps the zone out of full disruption (which would stop all tainting).
    create_node(&client, "nl-healthy", "4", json!({}), json!([])).await;
    create_node(&client, "nl-victim", "4", json!({}), json!([])).await;
    let _healthy = Heartbeat::start(&client, "nl-healthy").await;
    let victim = Heartbeat::start(&client, "nl-victim").await;
    let cm = ControllerManagerProcess::start(
        "nodelifecycle",
        CONTROLLERS,
        &[
            "--node-monitor-grace-period=10s",
            "--node-monitor-period=1s",
        ],
    );
    // A reporting node loses the not-ready taint the TaintNodesByCondition admission gave it.
    eventually(
        Duration::from_secs(20),
        "admission taints lifted",
        || async {
            let t = taints(&client, "nl-victim").await;
            t.is_empty().then_some(())
        },
    )
    .await;
    running_pod(
        &client,
        &ns.name,
        "evict-now",
        "nl-victim",
        unreachable_for(Some(0)),
    )
    .await;
    running_pod(
        &client,
        &ns.name,
        "tolerates-5s",
        "nl-victim",
        unreachable_for(Some(5)),
    )
    .await;
    running_pod(
        &client,
        &ns.name,
        "tolerates-forever",
        "nl-victim",
        unreachable_for(None),
    )
    .await;
    // Still reporting after more than the grace period: nothing happens.
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(
        condition(&client, "nl-victim", "Ready").await.0,
        "True",
        "{}",
        cm.log_tail()
    );
    assert!(!evicted(&pods, "evict-now").await);

    drop(victim);
    let silent_at = Instant::now();
    let taint_seen = eventually(
        Duration::from_secs(25),
        "the unreachable NoExecute taint",
        || async {
            let t = taints(&client, "nl-victim").await;
            has_taint(&t, UNREACHABLE, "NoExecute").then(Instant::now)
        },
    )
    .await;
    assert!(
        taint_seen - silent_at >= Duration::from_secs(9),
        "tainted {:?} after the last heartbeat, before the 10 s grace period",
        taint_seen - silent_at
    );
    let (status, reason, message) = condition(&client, "nl-victim", "Ready").await;
    assert_eq!(
        (status.as_str(), reason.as_str(), message.as_str()),
        (
            "Unknown",
            "NodeStatusUnknown",
            "Kubelet stopped posting node status."
        )
    );
    for type_ in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
        assert_eq!(
            condition(&client, "nl-victim", type_).await.0,
            "Unknown",
            "{type_}"
        );
    }
    eventually(
        Duration::from_secs(5),
        "the unreachable NoSchedule taint",
        || async {
            let t = taints(&client, "nl-victim").await;
            has_taint(&t, UNREACHABLE, "NoSchedule").then_some(())
        },
    )
    .await;
    assert_eq!(condition(&client, "nl-healthy", "Ready").await.0, "True");
    assert!(taints(&client, "nl-healthy").await.is_empty());

    // tolerationSeconds 0: evicted at once, marked as the taint manager's disruption.
    eventually(Duration::from_secs(3), "evict-now evicted", || async {
        evicted(&pods, "evict-now").await.then_some(())
    })
    .await;
    assert!(
        !evicted(&pods, "tolerates-5s").await,
        "the 5 s toleration was not honoured"
    );
    let marked = pods.get("evict-now").await.unwrap();
    assert_eq!(
        pod_condition(&marked, "DisruptionTarget"),
        Some((
            "True".into(),
            "DeletionByTaintManager".into(),
            "Taint manager: deleting due to NoExecute taint".into()
        ))
    );
    let notes = event_notes(&client, &ns.name, "evict-now", "TaintManagerEviction").await;
    assert!(
        notes.contains(&format!("Marking for deletion Pod {}/evict-now", ns.name)),
        "{notes:?}"
    );
    // tolerationSeconds 5: evicted 5 s after the taint, not before.
    let gone = eventually(Duration::from_secs(10), "tolerates-5s evicted", || async {
        evicted(&pods, "tolerates-5s").await.then(Instant::now)
    })
    .await;
    let after = gone - taint_seen;
    assert!(
        after >= Duration::from_millis(4500),
        "evicted after {after:?}"
    );
    assert!(after <= Duration::from_secs(8), "evicted after {after:?}");
    // Tolerating forever: stays, but is no longer Ready.
    let forever = pods.get("tolerates-forever").await.unwrap();
    assert!(forever.metadata.deletion_timestamp.is_none());
    assert_eq!(pod_condition(&forever, "Ready").unwrap().0, "False");
    let warnings = event_notes(&client, &ns.name, "tolerates-forever", "NodeNotReady").await;
    assert_eq!(warnings, ["Node is not ready"]);
    // Events about the node go to the default namespace, as for every cluster-scoped object.
    let registered = event_notes(&client, "default", "nl-victim", "RegisteredNode").await;
    assert!(
        registered
            .contains(&"Node nl-victim event: Registered Node nl-victim in Controller".to_string()),
        "{registered:?}"
    );
    let not_ready = event_notes(&client, "default", "nl-victim", "NodeNotReady").await;
    assert!(
        not_ready.contains(&"Node nl-victim status is now: NodeNotReady".to_string()),
        "{not_ready:?}"
    );

    // Reporting again: Ready=True as reported, and every taint the controller added is gone.
    let _victim = Heartbeat::start(&client, "nl-victim").await;
    eventually(Duration::from_secs(15), "the node's recovery", || async {
        let ready = condition(&client, "nl-victim", "Ready").await;
        let clean = taints(&client, "nl-victim").await.is_empty();
        (ready.0 == "True" && ready.1 == "KubeletReady" && clean).then_some(())
    })
    .await;
    assert!(!evicted(&pods, "tolerates-forever").await);
    delete_all_nodes(&client).await;
    ns.delete().await;
    drop(cm);
}

#[tokio::test(flavor = "multi_thread")]
async fn untolerated_no_execute_taint_evicts_at_once_and_removal_cancels() {
    let _turn = exclusive().await;
    let (ns, client) = setup("tainteviction").await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name);
    create_node(&client, "te-node", "4", json!({}), json!([])).await;
    let _beat = Heartbeat::start(&client, "te-node").await;
    let _cm = ControllerManagerProcess::start("tainteviction", CONTROLLERS, &[]);
    let custom = json!({"key": "example.com/drain", "operator": "Exists", "effect": "NoExecute",
                        "tolerationSeconds": 4});
    running_pod(&client, &ns.name, "untolerating", "te-node", json!([])).await;
    running_pod(
        &client,
        &ns.name,
        "tolerating-4s",
        "te-node",
        json!([custom]),
    )
    .await;
    let taint = json!({"spec": {"taints": [{"key": "example.com/drain", "effect": "NoExecute"}]}});
    Api::<Node>::all(client.clone())
        .patch("te-node", &PatchParams::default(), &Patch::Merge(taint))
        .await
        .unwrap();
    eventually(Duration::from_secs(5), "untolerating evicted", || async {
        evicted(&pods, "untolerating").await.then_some(())
    })
    .await;
    // The taint goes away before the 4 s are up: the scheduled eviction is cancelled.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let untaint = json!({"spec": {"taints": []}});
    Api::<Node>::all(client.clone())
        .patch("te-node", &PatchParams::default(), &Patch::Merge(untaint))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(
        !evicted(&pods, "tolerating-4s").await,
        "cancelled eviction ran"
    );
    let notes = event_notes(&client, &ns.name, "tolerating-4s", "TaintManagerEviction").await;
    assert!(
        notes.contains(&format!(
            "Cancelling deletion of Pod {}/tolerating-4s",
            ns.name
        )),
        "{notes:?}"
    );
    delete_all_nodes(&client).await;
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_schedule_taints_follow_conditions_and_not_ready_gets_no_execute() {
    let _turn = exclusive().await;
    let (ns, client) = setup("conditiontaints").await;
    let nodes = Api::<Node>::all(client.clone());
    // The healthy node keeps the zone out of full disruption.
    create_node(&client, "ct-healthy", "4", json!({}), json!([])).await;
    create_node(&client, "ct-node", "4", json!({}), json!([])).await;
    let _healthy = Heartbeat::start(&client, "ct-healthy").await;
    let beat = Heartbeat::start(&client, "ct-node").await;
    let cm = ControllerManagerProcess::start("conditiontaints", CONTROLLERS, &[]);
    let cordon = |on: bool| json!({"spec": {"unschedulable": on}});
    nodes
        .patch(
            "ct-node",
            &PatchParams::default(),
            &Patch::Merge(cordon(true)),
        )
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the unschedulable taint",
        || async {
            let t = taints(&client, "ct-node").await;
            has_taint(&t, "node.kubernetes.io/unschedulable", "NoSchedule").then_some(())
        },
    )
    .await;
    nodes
        .patch(
            "ct-node",
            &PatchParams::default(),
            &Patch::Merge(cordon(false)),
        )
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "the unschedulable taint removed",
        || async { taints(&client, "ct-node").await.is_empty().then_some(()) },
    )
    .await;

    // The kubelet reports NotReady: not-ready taints, NoSchedule at once and NoExecute through the queue.
    drop(beat);
    let not_ready = Heartbeat::reporting(&client, "ct-node", "False").await;
    eventually(Duration::from_secs(10), "the not-ready taints", || async {
        let t = taints(&client, "ct-node").await;
        (has_taint(&t, "node.kubernetes.io/not-ready", "NoSchedule")
            && has_taint(&t, "node.kubernetes.io/not-ready", "NoExecute")
            && !has_taint(&t, UNREACHABLE, "NoExecute"))
        .then_some(())
    })
    .await;
    // The kubelet reported the change itself, so the controller records no NodeNotReady event (upstream
    // only does when it saw the node Ready).
    let notes = event_notes(&client, "default", "ct-node", "NodeNotReady").await;
    assert!(notes.is_empty(), "{notes:?}\n{}", cm.log_tail());
    assert!(taints(&client, "ct-healthy").await.is_empty());
    // Ready again: every controller taint goes.
    drop(not_ready);
    let _ready = Heartbeat::start(&client, "ct-node").await;
    eventually(
        Duration::from_secs(10),
        "the not-ready taints removed",
        || async { taints(&client, "ct-node").await.is_empty().then_some(()) },
    )
    .await;
    delete_all_nodes(&client).await;
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn podgc_deletes_orphans_after_quarantine_and_oldest_terminated_pods_beyond_threshold() {
    let _turn = exclusive().await;
    let (ns, client) = setup("podgc").await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name);
    // Every version of every pod in the namespace, to see what podgc wrote before deleting.
    let seen: Arc<Mutex<BTreeMap<String, Vec<Pod>>>> = Arc::default();
    let watch = {
        let (pods, seen) = (pods.clone(), seen.clone());
        tokio::spawn(async move {
            let mut stream = watcher(pods, watcher::Config::default()).boxed();
            while let Some(Ok(event)) = stream.next().await {
                if let watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) = event {
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    seen.lock().unwrap().entry(name).or_default().push(pod);
                }
            }
        })
    };
    for i in 1..=4 {
        let name = format!("done-{i}");
        create_pod(&client, &ns.name, &name, json!({})).await;
        let status = json!({"status": {"phase": "Succeeded"}});
        pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
            .await
            .unwrap();
    }
    running_pod(&client, &ns.name, "orphan", "no-such-node", json!([])).await;
    let started = Instant::now();
    let cm =
        ControllerManagerProcess::start("podgc", CONTROLLERS, &["--terminated-pod-gc-threshold=2"]);
    eventually(
        Duration::from_secs(20),
        "the two oldest terminated pods deleted",
        || async {
            let left: Vec<String> = pods
                .list(&Default::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .filter_map(|p| p.metadata.name)
                .filter(|n| n.starts_with("done-"))
                .collect();
            (left.len() == 2).then_some(left)
        },
    )
    .await
    .iter()
    .zip(["done-3", "done-4"])
    .for_each(|(left, want)| assert_eq!(left, want, "the newest must stay"));

    let gone = eventually(
        Duration::from_secs(85),
        "the orphaned pod deleted",
        || async {
            pods.get_opt("orphan")
                .await
                .unwrap()
                .is_none()
                .then(Instant::now)
        },
    )
    .await;
    assert!(
        gone - started >= Duration::from_secs(40),
        "deleted after {:?}, within the 40 s quarantine",
        gone - started
    );
    let versions = seen
        .lock()
        .unwrap()
        .get("orphan")
        .cloned()
        .unwrap_or_default();
    let marked = versions.iter().any(|pod| {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        phase == Some("Failed")
            && pod_condition(pod, "DisruptionTarget")
                == Some((
                    "True".into(),
                    "DeletionByPodGC".into(),
                    "PodGC: node no longer exists".into(),
                ))
    });
    assert!(
        marked,
        "orphan was not marked Failed before deletion: {}",
        cm.log_tail()
    );
    watch.abort();
    ns.delete().await;
}
