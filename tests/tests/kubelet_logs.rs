//! `kubectl logs` (upstream's kubectl, through the apiserver) against ferrokube-kubelet's /containerLogs:
//! the whole log, --tail, --timestamps, --since, --since-time, --limit-bytes, -c, -f (until killed, and
//! ending by itself when the container exits), --previous after a restart, upstream's error texts, a
//! 1 MiB line; the kubelet's own 400/422/404 answers through the node proxy.

use std::time::{Duration, Instant};

use ferrokube_cluster::Identity;
use ferrokube_cluster::testing::{TestNamespace, shared_control_plane};
use ferrokube_tests::kubectl::{kubectl, kubectl_command, kubectl_ok};
use ferrokube_tests::kubelet::{TestNode, main_status};
use ferrokube_tests::scheduling::{default_service_account, eventually};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

const NODE: &str = "node-1";
const BRIDGE: &str = "fk-log0";
const POD_CIDR: &str = "10.246.0.0/24";

/// kubectl's stderr; fails the test unless it failed.
async fn kubectl_err(args: &[&str]) -> String {
    let out = kubectl(args).await;
    assert!(
        !out.status.success(),
        "kubectl {args:?} succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).unwrap()
}

/// A busybox pod with `containers` (name, script) and `extra` merged into its spec.
fn pod(name: &str, containers: &[(&str, &str)], extra: Value) -> Pod {
    let containers: Vec<Value> = containers
        .iter()
        .map(|(name, script)| {
            json!({
                "name": name,
                "image": "busybox",
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", script],
            })
        })
        .collect();
    let mut spec = json!({
        "nodeName": NODE,
        "automountServiceAccountToken": false,
        "terminationGracePeriodSeconds": 1,
        "containers": containers,
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

/// Waits until `kubectl logs ARGS` prints `want`.
async fn wait_logs(ns: &str, args: &[&str], want: &str) {
    let mut all = vec!["logs", "-n", ns];
    all.extend_from_slice(args);
    let mut last = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let out = kubectl(&all).await;
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() && out.stdout == want.as_bytes() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("kubectl {all:?} never printed {want:?}; last: {last:?}");
}

/// Waits until pod `name`'s first container satisfies `check`.
async fn wait_status(pods: &Api<Pod>, name: &str, what: &str, check: impl Fn(&Pod) -> bool) -> Pod {
    eventually(
        Duration::from_secs(90),
        &format!("{name}: {what}"),
        || async {
            let pod = pods.get(name).await.ok()?;
            check(&pod).then_some(pod)
        },
    )
    .await
}

fn running(pod: &Pod) -> bool {
    main_status(pod)
        .and_then(|s| s.state)
        .is_some_and(|s| s.running.is_some())
}

/// Reads lines from a following kubectl until `n` lines arrived or its output ended.
async fn read_lines(reader: &mut (impl AsyncBufReadExt + Unpin), n: usize) -> Vec<String> {
    let mut lines = Vec::new();
    while lines.len() < n {
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap() == 0 {
            break;
        }
        lines.push(line);
    }
    lines
}

#[tokio::test]
async fn kubectl_logs_reads_container_logs_as_upstream() {
    let node = TestNode::start(NODE, BRIDGE, POD_CIDR, &[]).await;
    let admin = shared_control_plane()
        .client(&Identity::admin())
        .await
        .unwrap();
    let namespace = TestNamespace::new("kubelet-logs").await;
    let ns = namespace.name().to_string();
    default_service_account(&admin, &ns).await;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    let specs = [
        pod(
            "counter",
            &[(
                "main",
                "for i in 1 2 3 4 5; do echo line $i; done; sleep 3600",
            )],
            json!({}),
        ),
        pod(
            "two",
            &[
                ("a", "echo from a; sleep 3600"),
                ("b", "echo from b >&2; sleep 3600"),
            ],
            json!({}),
        ),
        pod(
            "ticker",
            &[(
                "main",
                "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.3; done",
            )],
            json!({}),
        ),
        // The first attempt exits; the second (it finds the marker in the emptyDir) stays.
        pod(
            "restarter",
            &[(
                "main",
                "if [ -f /data/ran ]; then echo second attempt; exec sleep 3600; fi; \
                 touch /data/ran; echo first attempt; exit 1",
            )],
            json!({"restartPolicy": "Always", "volumes": [{"name": "data", "emptyDir": {}}]}),
        ),
        pod(
            "bigline",
            &[(
                "main",
                "head -c 1048576 /dev/zero | tr '\\0' x; echo; echo after; sleep 3600",
            )],
            json!({}),
        ),
    ];
    let mut specs = specs;
    // The restarter's volume mount.
    specs[3].spec.as_mut().unwrap().containers[0].volume_mounts = Some(vec![
        serde_json::from_value(json!({"name": "data", "mountPath": "/data"})).unwrap(),
    ]);
    // An image that is never pulled: the container waits.
    let mut never = pod("never", &[("main", "true")], json!({}));
    let container = &mut never.spec.as_mut().unwrap().containers[0];
    container.image = Some("example.invalid/none:1".into());
    container.image_pull_policy = Some("Never".into());
    for spec in specs.iter().chain([&never]) {
        pods.create(&PostParams::default(), spec).await.unwrap();
    }

    // The whole log, then the options that select part of it.
    let five = "line 1\nline 2\nline 3\nline 4\nline 5\n";
    wait_logs(&ns, &["counter"], five).await;
    let logs = async |args: &[&str]| {
        let mut all = vec!["logs", "-n", ns.as_str()];
        all.extend_from_slice(args);
        kubectl_ok(&all).await
    };
    assert_eq!(logs(&["counter", "--tail=2"]).await, "line 4\nline 5\n");
    assert_eq!(logs(&["counter", "--tail=0"]).await, "");
    assert_eq!(logs(&["counter", "--tail=100"]).await, five);
    assert_eq!(logs(&["counter", "--limit-bytes=5"]).await, "line ");
    assert_eq!(logs(&["counter", "--limit-bytes=9"]).await, "line 1\nli");
    assert_eq!(logs(&["counter", "--since=1h"]).await, five);
    let stamped = logs(&["counter", "--timestamps"]).await;
    let stamped: Vec<&str> = stamped.lines().collect();
    assert_eq!(stamped.len(), 5, "{stamped:?}");
    for (i, line) in stamped.iter().enumerate() {
        let (stamp, text) = line.split_once(' ').unwrap();
        assert_eq!(text, format!("line {}", i + 1));
        // 2006-01-02T15:04:05.000000000Z: fixed width, nine digits.
        assert_eq!(stamp.len(), 30, "{line}");
        assert!(
            stamp.ends_with('Z') && stamp.as_bytes()[19] == b'.',
            "{line}"
        );
        assert!(
            chrono::DateTime::parse_from_rfc3339(stamp).is_ok(),
            "{line}"
        );
    }
    // Since a time after the lines (the counter writes nothing more): nothing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(logs(&["counter", "--since=1s"]).await, "");
    let future = (chrono::Utc::now() + chrono::TimeDelta::hours(1)).format("%Y-%m-%dT%H:%M:%SZ");
    assert_eq!(
        logs(&["counter", &format!("--since-time={future}")]).await,
        ""
    );
    let past = (chrono::Utc::now() - chrono::TimeDelta::hours(1)).format("%Y-%m-%dT%H:%M:%SZ");
    assert_eq!(
        logs(&["counter", &format!("--since-time={past}")]).await,
        five
    );

    // -c picks the container of a pod with two; stderr is in the log too.
    wait_logs(&ns, &["two", "-c", "a"], "from a\n").await;
    wait_logs(&ns, &["two", "-c", "b"], "from b\n").await;

    // Unknown container: the apiserver's answer (it checks the spec before asking the kubelet).
    let error = kubectl_err(&["logs", "-n", &ns, "counter", "-c", "nope"]).await;
    assert!(
        error.contains("container nope is not valid for pod counter"),
        "{error}"
    );
    // --previous without a restart: the kubelet's text.
    let error = kubectl_err(&["logs", "-n", &ns, "counter", "--previous"]).await;
    assert_eq!(
        error.trim_end(),
        r#"Error from server (BadRequest): previous terminated container "main" in pod "counter" not found"#
    );
    // A container that never started.
    wait_status(&pods, "never", "waiting with ErrImageNeverPull", |p| {
        main_status(p)
            .and_then(|s| s.state?.waiting?.reason)
            .is_some_and(|r| r == "ErrImageNeverPull")
    })
    .await;
    let error = kubectl_err(&["logs", "-n", &ns, "never"]).await;
    assert_eq!(
        error.trim_end(),
        r#"Error from server (BadRequest): container "main" in pod "never" is waiting to start: ErrImageNeverPull"#
    );

    // -f prints new lines as they come; killed, it leaves the kubelet serving.
    wait_status(&pods, "ticker", "running", running).await;
    let mut follower = kubectl_command(&["logs", "-n", &ns, "ticker", "-f", "--tail=1"])
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(follower.stdout.take().unwrap());
    let lines = tokio::time::timeout(Duration::from_secs(30), read_lines(&mut reader, 4))
        .await
        .expect("-f prints new lines");
    let ticks: Vec<u32> = lines
        .iter()
        .map(|l| l.trim_end().strip_prefix("tick ").unwrap().parse().unwrap())
        .collect();
    assert_eq!(ticks.len(), 4, "{lines:?}");
    assert!(
        ticks.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive ticks: {ticks:?}"
    );
    follower.kill().await.unwrap();

    // -f on a container that exits: kubectl ends by itself once the container has stopped.
    let finite = pod(
        "finite",
        &[(
            "main",
            "sleep 4; for i in 1 2 3 4; do echo step $i; sleep 1; done",
        )],
        json!({"restartPolicy": "Never"}),
    );
    pods.create(&PostParams::default(), &finite).await.unwrap();
    wait_status(&pods, "finite", "running", running).await;
    let steps = "step 1\nstep 2\nstep 3\nstep 4\n";
    let follow = kubectl_command(&["logs", "-n", &ns, "finite", "-f"])
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(60), follow.wait_with_output())
        .await
        .expect("kubectl logs -f ends by itself when the container exits")
        .unwrap();
    assert!(
        out.status.success(),
        "kubectl logs -f ended by itself: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), steps);
    wait_status(&pods, "finite", "completed", |p| {
        main_status(p).and_then(|s| s.state?.terminated).is_some()
    })
    .await;
    assert_eq!(
        logs(&["finite", "-f"]).await,
        steps,
        "-f on an exited container reads to the end and stops"
    );

    // --previous after a restart: the first attempt's log; the current attempt's without it.
    wait_status(&pods, "restarter", "restarted and running", |p| {
        main_status(p).is_some_and(|s| {
            s.restart_count >= 1
                && s.state.as_ref().is_some_and(|s| s.running.is_some())
                && s.last_state
                    .as_ref()
                    .and_then(|l| l.terminated.as_ref())
                    .is_some_and(|t| t.container_id.is_some())
        })
    })
    .await;
    wait_logs(&ns, &["restarter"], "second attempt\n").await;
    assert_eq!(logs(&["restarter", "--previous"]).await, "first attempt\n");
    assert_eq!(
        logs(&["restarter", "-p", "--timestamps"]).await.len(),
        31 + 14
    );

    // A 1 MiB line (written as 16 KiB pieces) reads back whole; the kubelet serves on.
    let mut big = "x".repeat(1024 * 1024);
    big.push_str("\nafter\n");
    wait_logs(&ns, &["bigline"], &big).await;
    assert_eq!(logs(&["bigline", "--tail=1"]).await, "after\n");
    assert_eq!(logs(&["counter"]).await, five);

    // The kubelet's own answers (status and body), through the apiserver's node proxy.
    let proxy = |query: &str| {
        let path = format!("/api/v1/nodes/{NODE}/proxy/containerLogs/{ns}/{query}");
        let admin = admin.clone();
        async move {
            let request = axum::http::Request::get(&path)
                .body(kube::client::Body::empty())
                .unwrap();
            let response = admin.send(request).await.unwrap();
            let status = response.status().as_u16();
            let body = response.into_body().collect_bytes().await.unwrap();
            (status, String::from_utf8_lossy(&body).into_owned())
        }
    };
    assert_eq!(
        proxy("counter/main?tail=2").await,
        (200, "line 4\nline 5\n".into())
    );
    assert_eq!(
        proxy("counter/main?tail=all&tailLines=1").await,
        (200, five.into())
    );
    assert_eq!(
        proxy("counter/main?tailLines=1&timestamps=0").await,
        (200, "line 5\n".into())
    );
    let decode = r#"{"message": "Unable to decode query."}"#;
    let invalid = r#"{"message": "Invalid request."}"#;
    for (query, status, body) in [
        ("counter/main?tailLines=x", 400, decode),
        ("counter/main?sinceTime=yesterday", 400, decode),
        ("counter/main?tailLines=-1", 422, invalid),
        ("counter/main?limitBytes=0", 422, invalid),
        (
            "counter/main?sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z",
            422,
            invalid,
        ),
        ("nope/main", 404, r#"pod "nope" does not exist"#),
        (
            "counter/nope",
            404,
            r#"container "nope" not found in pod "counter""#,
        ),
        (
            "counter/main?stream=Stdout",
            400,
            r#"unable to return the given log stream: "Stdout". Please enable PodLogsQuerySplitStreams feature gate in kubelet"#,
        ),
        (
            "never/main",
            400,
            r#"container "main" in pod "never" is waiting to start: ErrImageNeverPull"#,
        ),
    ] {
        assert_eq!(proxy(query).await, (status, body.to_string()), "{query}");
    }
    drop(node);
}
