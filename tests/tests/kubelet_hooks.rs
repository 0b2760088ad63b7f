//! ferrokube-kubelet's lifecycle hooks and graceful termination on real containers: postStart runs after
//! the container starts, preStop before its stop signal, a failing postStart kills and restarts the
//! container, and a container that ignores SIGTERM is killed when its grace period ends.

use std::time::{Duration, Instant};

use ferrokube_cluster::Identity;
use ferrokube_cluster::testing::{TestNamespace, shared_control_plane};
use ferrokube_tests::kubelet::{TestNode, events_about};
use ferrokube_tests::scheduling::{default_service_account, eventually};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const NODE: &str = "node-1";
const BRIDGE: &str = "fk-hook0";
const POD_CIDR: &str = "10.249.0.0/24";

/// A busybox pod bound to the node running `script`, with `extra` merged into its container.
fn pod(name: &str, script: &str, grace: i64, extra: Value) -> Pod {
    let mut container = json!({
        "name": "main",
        "image": "busybox",
        "command": ["sh", "-c", script],
    });
    for (key, value) in extra.as_object().unwrap() {
        container[key] = value.clone();
    }
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "nodeName": NODE,
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": grace,
            "containers": [container],
        },
    }))
    .unwrap()
}

fn exec(script: &str) -> Value {
    json!({"exec": {"command": ["sh", "-c", script]}})
}

async fn wait_running(pods: &Api<Pod>, name: &str) {
    eventually(
        Duration::from_secs(60),
        &format!("pod {name} to be Running"),
        || async {
            let pod = pods.get(name).await.ok()?;
            (pod.status?.phase.as_deref() == Some("Running")).then_some(())
        },
    )
    .await;
}

async fn wait_gone(pods: &Api<Pod>, name: &str, limit: Duration) {
    eventually(limit, &format!("pod {name} to be gone"), || async {
        pods.get_opt(name).await.ok()?.is_none().then_some(())
    })
    .await;
}

async fn reasons(client: &Client, namespace: &str, name: &str) -> Vec<String> {
    events_about(client, namespace, name)
        .await
        .into_iter()
        .filter_map(|e| e.reason)
        .collect()
}

#[tokio::test]
async fn hooks_run_around_the_container_and_grace_periods_are_kept() {
    let node = TestNode::start(NODE, BRIDGE, POD_CIDR, &[]).await;
    let admin = shared_control_plane()
        .client(&Identity::admin())
        .await
        .unwrap();
    let namespace = TestNamespace::new("kubelet-hooks").await;
    let ns = namespace.name().to_string();
    default_service_account(&admin, &ns).await;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);

    // postStart, preStop and SIGTERM, in that order, recorded on a hostPath the test reads.
    let record_dir = node.root.join("hook-record");
    std::fs::create_dir_all(&record_dir).unwrap();
    let mut hooks = pod(
        "hooks",
        "trap 'echo TERM >> /record/events; exit 0' TERM; while true; do sleep 0.2; done",
        30,
        json!({
            "lifecycle": {
                "postStart": exec("echo postStart >> /record/events"),
                "preStop": exec("echo preStop >> /record/events; sleep 1"),
            },
            "volumeMounts": [{"name": "record", "mountPath": "/record"}],
        }),
    );
    hooks.spec.as_mut().unwrap().volumes = Some(vec![
        serde_json::from_value(json!({"name": "record",
            "hostPath": {"path": record_dir.to_str().unwrap(), "type": "Directory"}}))
        .unwrap(),
    ]);
    pods.create(&PostParams::default(), &hooks).await.unwrap();
    wait_running(&pods, "hooks").await;
    let events = record_dir.join("events");
    eventually(
        Duration::from_secs(30),
        "the postStart hook to run",
        || async {
            let text = std::fs::read_to_string(&events).ok()?;
            (text == "postStart\n").then_some(())
        },
    )
    .await;
    pods.delete("hooks", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&pods, "hooks", Duration::from_secs(30)).await;
    assert_eq!(
        std::fs::read_to_string(&events).unwrap(),
        "postStart\npreStop\nTERM\n",
        "the preStop hook runs before the stop signal"
    );

    // A container that ignores SIGTERM is killed when its grace period ends, not before.
    pods.create(
        &PostParams::default(),
        &pod(
            "stubborn",
            "trap '' TERM; while true; do sleep 0.2; done",
            4,
            json!({}),
        ),
    )
    .await
    .unwrap();
    wait_running(&pods, "stubborn").await;
    let deleted = Instant::now();
    pods.delete("stubborn", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&pods, "stubborn", Duration::from_secs(30)).await;
    let took = deleted.elapsed();
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(15),
        "killed after {took:?}, the grace period being 4 s"
    );

    // A failing postStart hook kills the container, which restarts by its restart policy.
    pods.create(
        &PostParams::default(),
        &pod(
            "badhook",
            "sleep 3600",
            2,
            json!({"lifecycle": {"postStart": exec("echo no; exit 3")}}),
        ),
    )
    .await
    .unwrap();
    let restarted = eventually(
        Duration::from_secs(60),
        "pod badhook's container to restart",
        || async {
            let pod = pods.get("badhook").await.ok()?;
            let status = pod.status?.container_statuses?.first()?.clone();
            (status.restart_count >= 1).then_some(status)
        },
    )
    .await;
    let waiting = restarted.state.and_then(|s| s.waiting);
    let last = restarted.last_state.and_then(|s| s.terminated);
    assert!(
        last.is_some(),
        "the killed container is lastState: {waiting:?}"
    );
    let seen = reasons(&admin, &ns, "badhook").await;
    for reason in ["FailedPostStartHook", "Killing"] {
        assert!(seen.iter().any(|r| r == reason), "{reason} in {seen:?}");
    }
    pods.delete("badhook", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&pods, "badhook", Duration::from_secs(30)).await;
}
