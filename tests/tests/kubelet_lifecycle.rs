//! ferrokube-kubelet's pod lifecycle on a real node (containerd, busybox, CNI bridge): a container killed
//! for memory is OOMKilled; two pods reach each other over the pod network; a restarted kubelet adopts the
//! running pods without restarting them and cleans up after pods deleted while it was down; a crash-looping
//! container's old attempts are collected; and 100 pods created and deleted leave nothing behind.

use std::collections::BTreeMap;
use std::time::Duration;

use ferrokube_cluster::Identity;
use ferrokube_cluster::testing::{TestNamespace, shared_control_plane};
use ferrokube_tests::kubelet::{TestNode, main_status};
use ferrokube_tests::scheduling::{default_service_account, eventually};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, ContainerStatus, Pod};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::{Value, json};

const NODE: &str = "node-1";
const BRIDGE: &str = "fk-life0";
const POD_CIDR: &str = "10.254.0.0/24";
/// Pods of the leak check, and how many are in flight at once.
const CYCLES: usize = 100;
const PARALLEL: usize = 10;

/// A busybox pod on the node running `script`.
fn pod(name: &str, policy: &str, script: &str) -> Pod {
    pod_with(name, policy, script, json!({}))
}

/// Like [`pod`], `extra` merged into the pod's spec (`container` into its container).
fn pod_with(name: &str, policy: &str, script: &str, extra: Value) -> Pod {
    let mut container = json!({
        "name": "main",
        "image": "busybox",
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", script],
    });
    let mut spec = json!({
        "nodeName": NODE,
        "restartPolicy": policy,
        "automountServiceAccountToken": false,
        "terminationGracePeriodSeconds": 5,
    });
    if let Value::Object(extra) = extra {
        for (key, value) in extra {
            if key == "container" {
                for (k, v) in value.as_object().cloned().unwrap_or_default() {
                    container[k] = v;
                }
            } else {
                spec[key] = value;
            }
        }
    }
    spec["containers"] = json!([container]);
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

/// A pod whose shell exits on SIGTERM at once (a plain `sleep` as PID 1 would wait out the grace period).
const STAYS_UP: &str = "trap 'exit 0' TERM; sleep 3600 & wait";

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap()
}

/// Waits until pod `name` is Running and Ready; returns it.
async fn running(pods: &Api<Pod>, name: &str) -> Pod {
    eventually(
        Duration::from_secs(60),
        &format!("pod {name} to be Running and Ready"),
        || async {
            let pod = pods.get(name).await.ok()?;
            let status = pod.status.as_ref()?;
            let ready = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            (status.phase.as_deref() == Some("Running") && ready).then_some(pod)
        },
    )
    .await
}

/// Waits until pod `name` is in phase `phase`; returns it.
async fn in_phase(pods: &Api<Pod>, name: &str, phase: &str) -> Pod {
    eventually(
        Duration::from_secs(60),
        &format!("pod {name} to be {phase}"),
        || async {
            let pod = pods.get(name).await.ok()?;
            (pod.status.as_ref()?.phase.as_deref() == Some(phase)).then_some(pod)
        },
    )
    .await
}

/// Deletes pod `name` (with its own grace period) and waits until the object is gone.
async fn delete_and_wait(pods: &Api<Pod>, name: &str) {
    pods.delete(name, &DeleteParams::default()).await.unwrap();
    gone(pods, name).await;
}

async fn gone(pods: &Api<Pod>, name: &str) {
    eventually(
        Duration::from_secs(60),
        &format!("pod {name} to be gone"),
        || async { pods.get_opt(name).await.ok()?.is_none().then_some(()) },
    )
    .await;
}

/// Waits until the node holds nothing of pod `uid` (`what` names it in the failure).
async fn cleaned_up(node: &TestNode, uid: &str, what: &str) {
    let mut left = Vec::new();
    for _ in 0..300 {
        left = node.leftovers_of(uid).await;
        if left.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} ({uid}) left {left:#?}");
}

fn file_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[tokio::test]
async fn pods_are_oom_killed_talk_survive_a_kubelet_restart_and_leave_nothing_behind() {
    let mut node = TestNode::start(NODE, BRIDGE, POD_CIDR, &[]).await;
    let admin = shared_control_plane()
        .client(&Identity::admin())
        .await
        .unwrap();
    let namespace = TestNamespace::new("kubelet-lifecycle").await;
    let ns = namespace.name().to_string();
    default_service_account(&admin, &ns).await;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    let create = |pod: Pod| {
        let pods = pods.clone();
        async move { pods.create(&PostParams::default(), &pod).await.unwrap() }
    };

    // A container that needs more memory than its limit is killed by the kernel: OOMKilled, 137.
    let hog = create(pod_with(
        "hog",
        "Never",
        "x=$(head -c 64m /dev/zero | tr '\\0' a); echo survived ${#x}",
        json!({"container": {"resources": {"limits": {"memory": "16Mi"}}}}),
    ))
    .await;
    let failed = in_phase(&pods, "hog", "Failed").await;
    let terminated = main_status(&failed)
        .and_then(|s| s.state?.terminated)
        .expect("terminated");
    assert_eq!(
        (terminated.exit_code, terminated.reason.as_deref()),
        (137, Some("OOMKilled")),
        "{terminated:?}"
    );
    let log = std::fs::read_to_string(node.log_file(&hog, "main")).unwrap_or_default();
    assert!(!log.contains("survived"), "{log}");

    // Two pods reach each other over the pod network.
    let server = create(pod(
        "server",
        "Always",
        "mkdir -p /www && echo hello-over-the-pod-network > /www/index.html && \
         exec httpd -f -p 8080 -h /www",
    ))
    .await;
    let server_ip = running(&pods, "server")
        .await
        .status
        .and_then(|s| s.pod_ip)
        .expect("a pod IP");
    assert!(server_ip.starts_with("10.254.0."), "{server_ip}");
    let client = create(pod(
        "client",
        "Never",
        &format!(
            "for i in 1 2 3 4 5 6 7 8 9 10; do \
               wget -qO- http://{server_ip}:8080/index.html && exit 0; sleep 0.5; \
             done; exit 1"
        ),
    ))
    .await;
    let done = in_phase(&pods, "client", "Succeeded").await;
    let client_ip = done.status.and_then(|s| s.pod_ip).unwrap_or_default();
    assert_ne!(client_ip, server_ip);
    let log = std::fs::read_to_string(node.log_file(&client, "main")).unwrap();
    assert!(
        log.contains(" stdout F hello-over-the-pod-network\n"),
        "{log}"
    );

    // A kubelet killed and started again adopts the running pods as they are, and cleans up after pods
    // deleted while it was down: one force-deleted (its object gone at once: only housekeeping finds what
    // is left of it) and one deleted gracefully (the new kubelet terminates it and deletes the object).
    let sleeper = create(pod("sleeper", "Always", "sleep 3600")).await;
    let talker = create(pod(
        "talker",
        "Always",
        "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.1; done",
    ))
    .await;
    let scratch = json!({
        "volumes": [{"name": "scratch", "emptyDir": {}}],
        "container": {"volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]},
    });
    let doomed = create(pod_with("doomed", "Always", STAYS_UP, scratch)).await;
    let leaving = create(pod("leaving", "Always", STAYS_UP)).await;
    let mut before = BTreeMap::new();
    for name in ["sleeper", "talker", "doomed", "leaving"] {
        let pod = running(&pods, name).await;
        before.insert(name, pod);
    }
    // What the leak checks look for is there while a pod runs.
    let held = node.leftovers_of(&uid(&doomed)).await;
    for thing in [
        "container ",
        "/run/netns/fk-",
        "/pods/",
        "/sandboxes/",
        "mount ",
        "cgroup ",
        "logs ",
    ] {
        assert!(
            held.iter().any(|h| h.contains(thing)),
            "{thing} in {held:#?}"
        );
    }
    let held = node.leftovers();
    for thing in [
        "task ",
        "container ",
        "snapshot ",
        "IP allocation ",
        "mount ",
    ] {
        assert!(
            held.iter().any(|h| h.starts_with(thing)),
            "{thing} in {held:#?}"
        );
    }
    node.kill_kubelet();
    pods.delete("doomed", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    gone(&pods, "doomed").await;
    pods.delete("leaving", &DeleteParams::default())
        .await
        .unwrap();
    let talker_log = node.log_file(&talker, "main");
    let size_while_down = file_len(&talker_log);
    // The talker writes into its pipe meanwhile, with nobody reading it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!node.containers_of(&uid(&doomed)).await.is_empty());
    node.start_kubelet_again();

    cleaned_up(
        &node,
        &uid(&doomed),
        "the pod force-deleted while the kubelet was down",
    )
    .await;
    gone(&pods, "leaving").await;
    cleaned_up(
        &node,
        &uid(&leaving),
        "the pod deleted while the kubelet was down",
    )
    .await;
    // The output written while no kubelet read it arrives, and later output keeps coming.
    let grown = eventually(
        Duration::from_secs(10),
        "the talker's log to grow",
        || async { (file_len(&talker_log) > size_while_down).then(|| file_len(&talker_log)) },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(file_len(&talker_log) > grown, "the talker's log stopped");
    // By now the new kubelet's workers have synced (and patched whatever status they saw differently).
    for name in ["sleeper", "talker"] {
        let after = running(&pods, name).await;
        let old = main_status(&before[name]).unwrap();
        let new = main_status(&after).unwrap();
        assert_eq!(new.container_id, old.container_id, "{name}");
        assert_eq!(new.restart_count, 0, "{name}");
        let started = |s: &ContainerStatus| s.state.clone()?.running?.started_at;
        assert!(started(&new).is_some(), "{name}: {new:?}");
        assert_eq!(started(&new), started(&old), "{name}: startedAt");
        let ip = |p: &Pod| p.status.clone()?.pod_ip;
        assert_eq!(ip(&after), ip(&before[name]), "{name}: pod IP");
        assert_eq!(node.containers_of(&uid(&after)).await.len(), 1, "{name}");
    }
    // The OOM kill, and when the container started, are still known to the new kubelet.
    let terminated = main_status(&pods.get("hog").await.unwrap())
        .and_then(|s| s.state?.terminated)
        .expect("terminated");
    assert_eq!(terminated.reason.as_deref(), Some("OOMKilled"));
    assert!(terminated.started_at.is_some(), "{terminated:?}");
    for (name, pod) in [
        ("hog", &hog),
        ("server", &server),
        ("client", &client),
        ("sleeper", &sleeper),
        ("talker", &talker),
    ] {
        delete_and_wait(&pods, name).await;
        cleaned_up(&node, &uid(pod), name).await;
    }
    assert_eq!(node.leftovers(), Vec::<String>::new());

    // A crash-looping container's old attempts are collected meanwhile (checked after the cycles below).
    let crasher = create(pod("crasher", "Always", "echo crashing; exit 1")).await;

    // Pods with volumes created and deleted many times leave nothing behind.
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), &ns);
    config_maps
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "conf"}, "data": {"k": "v"}}))
                .unwrap(),
        )
        .await
        .unwrap();
    let cycle = |i: usize| {
        let pods = pods.clone();
        async move {
            let name = format!("leak-{i}");
            let pod = pod_with(
                &name,
                "Always",
                STAYS_UP,
                json!({
                    "volumes": [
                        {"name": "scratch", "emptyDir": {}},
                        {"name": "conf", "configMap": {"name": "conf"}},
                    ],
                    "container": {"volumeMounts": [
                        {"name": "scratch", "mountPath": "/scratch"},
                        {"name": "conf", "mountPath": "/conf"},
                    ]},
                }),
            );
            let created = pods.create(&PostParams::default(), &pod).await.unwrap();
            running(&pods, &name).await;
            delete_and_wait(&pods, &name).await;
            uid(&created)
        }
    };
    let uids: Vec<String> = futures::stream::iter(0..CYCLES)
        .map(cycle)
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    for uid in &uids {
        cleaned_up(&node, uid, "a pod of the leak check").await;
    }
    eventually(
        Duration::from_secs(90),
        "the crasher to restart 3 times",
        || async {
            let status = main_status(&pods.get("crasher").await.ok()?)?;
            (status.restart_count >= 3).then_some(())
        },
    )
    .await;
    let log_dir = node.log_file(&crasher, "main");
    let log_dir = log_dir.parent().unwrap();
    eventually(
        Duration::from_secs(10),
        "only the crasher's newest two attempts to be kept",
        || async {
            let kept = node.containers_of(&uid(&crasher)).await.len();
            let logs = std::fs::read_dir(log_dir).unwrap().count();
            (kept <= 2 && logs <= 2).then_some(())
        },
    )
    .await;
    delete_and_wait(&pods, "crasher").await;
    cleaned_up(&node, &uid(&crasher), "crasher").await;
    assert_eq!(node.leftovers(), Vec::<String>::new());
    namespace.delete().await;
}
