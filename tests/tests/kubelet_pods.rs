//! ferrokube-kubelet running real pods: containerd (started by the harness) with the locally built busybox
//! image, pod networking through the distribution's CNI bridge plugin. A pod runs to completion with its
//! output in a CRI log file; a failing one restarts into CrashLoopBackOff; a deleted one is stopped and its
//! object removed by the kubelet.

use std::time::Duration;

use ferrokube_cluster::Identity;
use ferrokube_cluster::testing::{TestNamespace, shared_control_plane};
use ferrokube_tests::kubelet::{
    TestNode, events_about, every_pod_gone, main_status, wait_event_reasons,
};
use ferrokube_tests::scheduling::{default_service_account, eventually};
use k8s_openapi::api::core::v1::{ConfigMap, ContainerStateTerminated, Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;

const NODE: &str = "node-1";
const BRIDGE: &str = "fk-pods0";
const POD_CIDR: &str = "10.251.0.0/24";

fn pod(name: &str, policy: &str, script: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "nodeName": NODE,
            "restartPolicy": policy,
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 2,
            "containers": [{
                "name": "main",
                "image": "busybox",
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", script],
                "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            }],
        },
    }))
    .unwrap()
}

#[tokio::test]
async fn a_kubelet_runs_pods_on_containerd_restarts_them_and_stops_them() {
    // Ready once containerd answers and the network is configured.
    let node = TestNode::start(NODE, BRIDGE, POD_CIDR, &[]).await;
    let admin = shared_control_plane()
        .client(&Identity::admin())
        .await
        .unwrap();
    let node_object = Api::<Node>::all(admin.clone()).get(NODE).await.unwrap();
    let status = node_object.status.unwrap();
    let info = status.node_info.unwrap();
    assert!(
        info.container_runtime_version
            .starts_with("containerd://1."),
        "{info:?}"
    );
    let images = status.images.unwrap_or_default();
    assert!(
        images.iter().any(|i| i
            .names
            .iter()
            .flatten()
            .any(|n| n == "docker.io/library/busybox:latest")),
        "{images:?}"
    );

    let namespace = TestNamespace::new("kubelet-pods").await;
    let ns = namespace.name().to_string();
    default_service_account(&admin, &ns).await;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);

    // A pod that runs to completion.
    // Its greeting comes from a ConfigMap through the environment.
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), &ns);
    config_maps
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "words"}, "data": {"greeting": "hello"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let mut hello = pod(
        "hello",
        "Never",
        "echo $GREETING from $(POD_NAME); hostname; echo limit $MEMORY_LIMIT",
    );
    hello.spec.as_mut().unwrap().containers[0].resources =
        Some(serde_json::from_value(json!({"limits": {"memory": "64Mi"}})).unwrap());
    hello.spec.as_mut().unwrap().containers[0]
        .env
        .get_or_insert_with(Vec::new)
        .push(
            serde_json::from_value(json!({"name": "GREETING",
                "valueFrom": {"configMapKeyRef": {"name": "words", "key": "greeting"}}}))
            .unwrap(),
        );
    hello.spec.as_mut().unwrap().containers[0]
        .env
        .get_or_insert_with(Vec::new)
        .push(
            serde_json::from_value(
                json!({"name": "MEMORY_LIMIT", "valueFrom": {"resourceFieldRef":
                {"resource": "limits.memory", "divisor": "1Mi"}}}),
            )
            .unwrap(),
        );
    let created = pods.create(&PostParams::default(), &hello).await.unwrap();
    let done = eventually(Duration::from_secs(60), "pod hello to succeed", || async {
        let pod = pods.get("hello").await.ok()?;
        (pod.status.as_ref()?.phase.as_deref() == Some("Succeeded")).then_some(pod)
    })
    .await;
    let status = done.status.clone().unwrap();
    let terminated = main_status(&done)
        .and_then(|s| s.state)
        .and_then(|s| s.terminated)
        .expect("terminated");
    assert_eq!(
        (terminated.exit_code, terminated.reason.as_deref()),
        (0, Some("Completed"))
    );
    let pod_ip = status.pod_ip.clone().expect("a pod IP");
    assert!(pod_ip.starts_with("10.251.0."), "{pod_ip}");
    assert!(status.host_ip.is_some());
    let ready = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_deref()),
        ("False", Some("PodCompleted"))
    );
    let log = std::fs::read_to_string(node.log_file(&created, "main")).unwrap();
    assert!(log.contains(" stdout F hello from hello\n"), "{log}");
    assert!(
        log.contains(" stdout F hello\n"),
        "the pod's hostname: {log}"
    );
    assert!(
        log.contains(" stdout F limit 64\n"),
        "resourceFieldRef: {log}"
    );
    wait_event_reasons(&admin, &ns, "hello", &["Pulled", "Created", "Started"]).await;

    // A pod whose container keeps failing: restarted at once, then backed off.
    pods.create(&PostParams::default(), &pod("crash", "OnFailure", "exit 3"))
        .await
        .unwrap();
    let crashing = eventually(Duration::from_secs(60), "pod crash to back off", || async {
        let pod = pods.get("crash").await.ok()?;
        let status = main_status(&pod)?;
        let waiting = status.state.as_ref()?.waiting.as_ref()?;
        (waiting.reason.as_deref() == Some("CrashLoopBackOff")).then_some(status)
    })
    .await;
    assert!(crashing.restart_count >= 1, "{crashing:?}");
    let last = crashing
        .last_state
        .and_then(|s| s.terminated)
        .expect("the last exit");
    assert_eq!((last.exit_code, last.reason.as_deref()), (3, Some("Error")));
    assert!(
        crashing
            .state
            .unwrap()
            .waiting
            .unwrap()
            .message
            .unwrap()
            .starts_with("back-off 10s restarting failed container=main pod=crash_"),
    );

    // A command that is not in the image: the start fails (RunContainerError) and the container restarts
    // with the same back-off as one that exits (CrashLoopBackOff), not again and again at once.
    let mut missing = pod("missing", "Always", "unused");
    missing.spec.as_mut().unwrap().containers[0].command = Some(vec!["/does-not-exist".into()]);
    pods.create(&PostParams::default(), &missing).await.unwrap();
    let (reasons, restarts, first_back_off, last) =
        watch_start_failures(&pods, "missing", Duration::from_secs(30)).await;
    assert!(
        (2..=3).contains(&restarts),
        "restarted at once, then after 10 s, then after 20 s more: {restarts} restarts in 30 s ({reasons:?})"
    );
    let run_error = reasons.iter().position(|r| r == "RunContainerError");
    let back_off = reasons.iter().position(|r| r == "CrashLoopBackOff");
    assert!(
        matches!((run_error, back_off), (Some(e), Some(b)) if e < b),
        "RunContainerError, then CrashLoopBackOff: {reasons:?}"
    );
    let first_back_off = first_back_off.expect("a CrashLoopBackOff message");
    assert!(
        first_back_off.starts_with("back-off 10s restarting failed container=main pod=missing_"),
        "{first_back_off}"
    );
    let last = last.expect("the failed start as the last state");
    assert_eq!(
        (last.exit_code, last.reason.as_deref()),
        (128, Some("StartError"))
    );
    assert_eq!(
        last.started_at.as_ref().map(|t| t.0),
        Some(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        "never started, as containerd's CRI reports it"
    );
    assert!(
        last.message
            .as_deref()
            .unwrap_or_default()
            .contains("/does-not-exist"),
        "{last:?}"
    );
    wait_event_reasons(&admin, &ns, "missing", &["Failed", "BackOff"]).await;
    pods.delete("missing", &DeleteParams::default())
        .await
        .unwrap();

    // Images that are not on the node: no registry is reachable here, so a pull fails and backs off; under
    // pull policy Never the kubelet does not try.
    let mut absent = pod("absent", "Never", "true");
    absent.spec.as_mut().unwrap().containers[0].image = Some("nginx:1.27".into());
    pods.create(&PostParams::default(), &absent).await.unwrap();
    let mut never = absent.clone();
    never.metadata.name = Some("never".into());
    never.spec.as_mut().unwrap().containers[0].image_pull_policy = Some("Never".into());
    pods.create(&PostParams::default(), &never).await.unwrap();
    let waiting = |name: &'static str, reason: &'static str| {
        let pods = pods.clone();
        async move {
            eventually(
                Duration::from_secs(60),
                &format!("{name} waiting with {reason}"),
                || async {
                    let status = main_status(&pods.get(name).await.ok()?)?;
                    let waiting = status.state?.waiting?;
                    (waiting.reason.as_deref() == Some(reason))
                        .then(|| waiting.message.unwrap_or_default())
                },
            )
            .await
        }
    };
    // ErrImagePull is the state only until the next sync (the status update itself brings one), so it is
    // checked in the events, which last.
    let failed = eventually(Duration::from_secs(30), "a Failed pull event", || async {
        let events = events_about(&admin, &ns, "absent").await;
        events
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("Failed"))
            .and_then(|e| e.note)
    })
    .await;
    assert!(
        failed.starts_with("Failed to pull image \"nginx:1.27\": "),
        "{failed}"
    );
    let message = waiting("absent", "ImagePullBackOff").await;
    assert!(
        message.starts_with("Back-off pulling image \"nginx:1.27\""),
        "{message}"
    );
    let message = waiting("never", "ErrImageNeverPull").await;
    assert_eq!(
        message,
        "Container image \"nginx:1.27\" is not present with pull policy of Never"
    );
    assert_eq!(
        pods.get("absent")
            .await
            .unwrap()
            .status
            .unwrap()
            .phase
            .as_deref(),
        Some("Pending")
    );

    // A pod asking for more CPU than the node has is rejected by the kubelet's admission, as upstream's.
    let mut greedy = pod("greedy", "Never", "true");
    greedy.spec.as_mut().unwrap().containers[0].resources =
        Some(serde_json::from_value(json!({"requests": {"cpu": "64"}})).unwrap());
    pods.create(&PostParams::default(), &greedy).await.unwrap();
    let rejected = eventually(
        Duration::from_secs(30),
        "pod greedy to be rejected",
        || async {
            let status = pods.get("greedy").await.ok()?.status?;
            (status.phase.as_deref() == Some("Failed")).then_some(status)
        },
    )
    .await;
    assert_eq!(rejected.reason.as_deref(), Some("OutOfcpu"));
    let message = rejected.message.unwrap_or_default();
    assert!(
        message.starts_with("Pod was rejected: Node didn't have enough resource: cpu, requested: 64000, used: 0, capacity: "),
        "{message}"
    );
    wait_event_reasons(&admin, &ns, "greedy", &["OutOfcpu"]).await;

    // A running pod deleted with a grace period: stopped (busybox sleep ignores SIGTERM as PID 1, so it
    // is killed when the grace period ends) and its object removed by the kubelet.
    pods.create(
        &PostParams::default(),
        &pod("sleeper", "Always", "sleep 3600"),
    )
    .await
    .unwrap();
    eventually(
        Duration::from_secs(60),
        "pod sleeper to be Running and Ready",
        || async {
            let pod = pods.get("sleeper").await.ok()?;
            let status = pod.status?;
            let ready = status
                .conditions?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            (status.phase.as_deref() == Some("Running") && ready).then_some(())
        },
    )
    .await;
    pods.delete("sleeper", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        Duration::from_secs(30),
        "pod sleeper to be gone",
        || async { pods.get_opt("sleeper").await.ok()?.is_none().then_some(()) },
    )
    .await;
    wait_event_reasons(&admin, &ns, "sleeper", &["Killing"]).await;

    // Deleting the finished pods removes their containers too.
    pods.delete("hello", &DeleteParams::default())
        .await
        .unwrap();
    pods.delete("crash", &DeleteParams::default())
        .await
        .unwrap();
    pods.delete("greedy", &DeleteParams::default())
        .await
        .unwrap();
    for name in ["absent", "never"] {
        pods.delete(name, &DeleteParams::default()).await.unwrap();
    }
    every_pod_gone(&pods, Duration::from_secs(30)).await;
    let left = std::process::Command::new("ctr")
        .args([
            "--address",
            &node.containerd.socket().display().to_string(),
            "-n",
            "k8s.io",
            "containers",
            "list",
            "-q",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&left.stdout).trim(),
        "",
        "containers left in containerd"
    );
    namespace.delete().await;
}

/// Watches pod `name` for `limit`: the waiting reasons its container showed, in order (repeats folded), its
/// highest restart count, the first CrashLoopBackOff message and the newest last state's termination.
async fn watch_start_failures(
    pods: &Api<Pod>,
    name: &str,
    limit: Duration,
) -> (
    Vec<String>,
    i32,
    Option<String>,
    Option<ContainerStateTerminated>,
) {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = std::pin::pin!(watcher(pods.clone(), config).applied_objects());
    let mut reasons: Vec<String> = Vec::new();
    let mut restarts = 0;
    let mut first_back_off = None;
    let mut last = None;
    let deadline = tokio::time::Instant::now() + limit;
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, stream.next()).await {
        let Some(status) = event.ok().as_ref().and_then(main_status) else {
            continue;
        };
        restarts = restarts.max(status.restart_count);
        if let Some(terminated) = status.last_state.and_then(|s| s.terminated) {
            last = Some(terminated);
        }
        let Some(waiting) = status.state.and_then(|s| s.waiting) else {
            continue;
        };
        let reason = waiting.reason.unwrap_or_default();
        if reason == "CrashLoopBackOff" && first_back_off.is_none() {
            first_back_off = waiting.message;
        }
        if reasons.last() != Some(&reason) {
            reasons.push(reason);
        }
    }
    (reasons, restarts, first_back_off, last)
}
