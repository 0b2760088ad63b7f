//! ferrokube-kubelet's probes on real containers (containerd, busybox and the test server, CNI bridge):
//! httpGet, tcpSocket and grpc readiness passing and failing drive the Ready condition; a failing liveness
//! probe (httpGet, exec) restarts its container with upstream's events; a startup probe holds readiness
//! back until it passes.

use std::time::Duration;

use ferrokube_cluster::Identity;
use ferrokube_cluster::testing::{TestNamespace, shared_control_plane};
use ferrokube_tests::kubelet::{
    TESTSERVER_IMAGE, TestNode, events_about, every_pod_gone, main_status,
};
use ferrokube_tests::scheduling::{default_service_account, eventually};
use k8s_openapi::api::core::v1::{Pod, PodCondition};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const NODE: &str = "node-1";
const BRIDGE: &str = "fk-prb0";
const POD_CIDR: &str = "10.250.0.0/24";

/// Serves /www (with /www/healthz) on port 8080 after `delay` seconds.
const HTTPD: &str =
    "mkdir -p /www && echo ok > /www/healthz && sleep $DELAY && httpd -f -p 8080 -h /www";

/// A busybox pod running `script` with `probes` (livenessProbe, readinessProbe, startupProbe) on its one
/// container, which has port 8080 named `http`.
fn pod(name: &str, script: &str, delay: u32, probes: Value) -> Pod {
    let mut container = json!({
        "name": "main",
        "image": "busybox",
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", script],
        "env": [{"name": "DELAY", "value": delay.to_string()}],
        "ports": [{"name": "http", "containerPort": 8080}],
    });
    if let (Some(container), Some(probes)) = (container.as_object_mut(), probes.as_object()) {
        container.extend(probes.clone());
    }
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "nodeName": NODE,
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 2,
            "containers": [container],
        },
    }))
    .unwrap()
}

/// A test server pod serving gRPC health on 9090 (NOT_SERVING when `serving` is false) with a grpc
/// readiness probe.
fn grpc_pod(name: &str, serving: bool) -> Pod {
    let mut command = vec!["/testserver", "--http-port=0", "--grpc-port=9090"];
    if !serving {
        command.push("--grpc-not-serving");
    }
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "nodeName": NODE,
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 2,
            "containers": [{
                "name": "main",
                "image": TESTSERVER_IMAGE,
                "imagePullPolicy": "Never",
                "command": command,
                "readinessProbe": {"grpc": {"port": 9090}, "periodSeconds": 1, "timeoutSeconds": 5},
            }],
        },
    }))
    .unwrap()
}

fn condition(pod: &Pod, type_: &str) -> Option<PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
        .cloned()
}

/// Waits until pod `name` runs and its Ready condition is `ready`; returns the pod.
async fn wait_ready(pods: &Api<Pod>, name: &str, ready: &str) -> Pod {
    eventually(
        Duration::from_secs(60),
        &format!("pod {name} Running with Ready {ready}"),
        || async {
            let pod = pods.get(name).await.ok()?;
            let running = main_status(&pod)?.state?.running.is_some();
            (running && condition(&pod, "Ready")?.status == ready).then_some(pod)
        },
    )
    .await
}

/// Waits for an event about pod `name` with `reason` whose note starts with `prefix`; returns the note.
async fn wait_event(client: &Client, ns: &str, name: &str, reason: &str, prefix: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let events = events_about(client, ns, name).await;
        let found = events
            .iter()
            .filter(|e| e.reason.as_deref() == Some(reason))
            .filter_map(|e| e.note.clone())
            .find(|note| note.starts_with(prefix));
        if let Some(note) = found {
            return note;
        }
        let seen: Vec<_> = events
            .iter()
            .map(|e| (e.reason.clone(), e.note.clone()))
            .collect();
        if std::time::Instant::now() >= deadline {
            // What the kubelet said about events, to tell a lost event from a missing one.
            let log = shared_control_plane()
                .dir()
                .join(format!("kubelet-{NODE}.log"));
            let log = std::fs::read_to_string(log).unwrap_or_default();
            for line in log
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains(name))
                .take(200)
            {
                eprintln!("{line}");
            }
        }
        if std::time::Instant::now() >= deadline {
            let pod = Api::<Pod>::namespaced(client.clone(), ns).get(name).await;
            eprintln!("{:#?}", pod.map(|p| p.status));
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {reason} event about {name} starting {prefix:?} in {seen:#?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn probes_drive_readiness_and_restart_unhealthy_containers() {
    let node = TestNode::start(NODE, BRIDGE, POD_CIDR, &[]).await;
    node.import_testserver();
    let admin = shared_control_plane()
        .client(&Identity::admin())
        .await
        .unwrap();
    let namespace = TestNamespace::new("kubelet-probes").await;
    let ns = namespace.name().to_string();
    default_service_account(&admin, &ns).await;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    let http_get = |path: &str| json!({"httpGet": {"path": path, "port": "http"}, "periodSeconds": 1, "timeoutSeconds": 5});
    let tcp =
        |port: u16| json!({"tcpSocket": {"port": port}, "periodSeconds": 1, "timeoutSeconds": 5});
    let specs = [
        pod(
            "http-ready",
            HTTPD,
            0,
            json!({"readinessProbe": http_get("/healthz")}),
        ),
        pod(
            "http-unready",
            HTTPD,
            0,
            json!({"readinessProbe": http_get("/missing")}),
        ),
        pod("tcp-ready", HTTPD, 0, json!({"readinessProbe": tcp(8080)})),
        pod(
            "tcp-unready",
            HTTPD,
            0,
            json!({"readinessProbe": tcp(8081)}),
        ),
        // Healthy for a while, then /healthz goes away: liveness fails and the container is restarted.
        pod(
            "liveness",
            &format!("(sleep 4; rm /www/healthz) & {HTTPD}"),
            0,
            json!({"livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080},
                "periodSeconds": 1, "failureThreshold": 2}}),
        ),
        // exec: healthy while /tmp/healthy exists.
        pod(
            "liveness-exec",
            "touch /tmp/healthy; sleep 4; rm /tmp/healthy; sleep 3600",
            0,
            json!({"livenessProbe": {"exec": {"command": ["cat", "/tmp/healthy"]},
                "periodSeconds": 1, "failureThreshold": 1}}),
        ),
        // The server comes up after 6 s: until the startup probe passes the container is not started and
        // readiness is not probed.
        pod(
            "startup",
            HTTPD,
            6,
            json!({
                "startupProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1, "failureThreshold": 30},
                "readinessProbe": http_get("/healthz"),
            }),
        ),
    ];
    let specs: Vec<Pod> = specs
        .into_iter()
        .chain([
            grpc_pod("grpc-ready", true),
            grpc_pod("grpc-unready", false),
        ])
        .collect();
    for pod in &specs {
        pods.create(&PostParams::default(), pod).await.unwrap();
    }

    // Startup: running but not started (nor ready) while the startup probe fails.
    let gated = eventually(
        Duration::from_secs(60),
        "pod startup running, not started",
        || async {
            let status = main_status(&pods.get("startup").await.ok()?)?;
            (status.state.as_ref()?.running.is_some() && status.started == Some(false))
                .then_some(status)
        },
    )
    .await;
    assert!(!gated.ready, "{gated:?}");

    // httpGet, tcpSocket and grpc readiness passing.
    for name in ["http-ready", "tcp-ready", "grpc-ready"] {
        let pod = wait_ready(&pods, name, "True").await;
        let status = main_status(&pod).unwrap();
        assert!(status.ready && status.started == Some(true), "{status:?}");
        assert_eq!(condition(&pod, "ContainersReady").unwrap().status, "True");
    }

    // Failing readiness: not ready, with upstream's reason, message and events; never restarted.
    for (name, failure) in [
        (
            "http-unready",
            "Readiness probe failed: HTTP probe failed with statuscode: 404".to_string(),
        ),
        (
            "tcp-unready",
            "Readiness probe failed: dial tcp 10.250.0.".to_string(),
        ),
    ] {
        let note = wait_event(&admin, &ns, name, "Unhealthy", &failure).await;
        let pod = wait_ready(&pods, name, "False").await;
        for type_ in ["Ready", "ContainersReady"] {
            let c = condition(&pod, type_).unwrap();
            assert_eq!(c.reason.as_deref(), Some("ContainersNotReady"), "{c:?}");
            assert_eq!(
                c.message.as_deref(),
                Some("containers with unready status: [main]")
            );
        }
        let status = main_status(&pod).unwrap();
        assert!(!status.ready && status.started == Some(true), "{status:?}");
        assert_eq!(status.restart_count, 0, "{note}");
    }

    // Startup passes once the server is up; then readiness passes.
    let pod = wait_ready(&pods, "startup", "True").await;
    assert_eq!(main_status(&pod).unwrap().restart_count, 0);

    // Liveness: killed with upstream's events and restarted.
    let note = wait_event(
        &admin,
        &ns,
        "liveness",
        "Unhealthy",
        "Liveness probe failed: HTTP probe failed",
    )
    .await;
    assert_eq!(
        note,
        "Liveness probe failed: HTTP probe failed with statuscode: 404"
    );
    let killing = wait_event(&admin, &ns, "liveness", "Killing", "Container main failed").await;
    assert_eq!(
        killing,
        "Container main failed liveness probe, will be restarted"
    );
    let restarted = eventually(
        Duration::from_secs(60),
        "pod liveness restarted",
        || async {
            let status = main_status(&pods.get("liveness").await.ok()?)?;
            (status.restart_count >= 1 && status.state.as_ref()?.running.is_some())
                .then_some(status)
        },
    )
    .await;
    let last = restarted
        .last_state
        .and_then(|s| s.terminated)
        .expect("the killed attempt");
    assert_eq!(last.exit_code, 137, "{last:?}");

    let note = wait_event(
        &admin,
        &ns,
        "liveness-exec",
        "Unhealthy",
        "Liveness probe failed: ",
    )
    .await;
    assert!(note.contains("can't open '/tmp/healthy'"), "{note}");
    let killing = wait_event(
        &admin,
        &ns,
        "liveness-exec",
        "Killing",
        "Container main failed",
    )
    .await;
    assert_eq!(
        killing,
        "Container main failed liveness probe, will be restarted"
    );
    eventually(
        Duration::from_secs(60),
        "pod liveness-exec restarted",
        || async {
            let status = main_status(&pods.get("liveness-exec").await.ok()?)?;
            (status.restart_count >= 1 && status.state.as_ref()?.running.is_some()).then_some(())
        },
    )
    .await;

    for pod in &specs {
        let name = pod.metadata.name.as_deref().unwrap();
        pods.delete(name, &DeleteParams::default()).await.unwrap();
    }
    every_pod_gone(&pods, Duration::from_secs(60)).await;
    namespace.delete().await;
}
