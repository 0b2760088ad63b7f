//! What ferrokube-kubelet gives real containers around their own process: the hosts, resolv.conf and
//! hostname files (cluster DNS, subdomain, hostAliases), lifecycle hooks (postStart after the start,
//! preStop before the stop signal, a failing postStart kills and restarts the container), and graceful
//! termination (a container that ignores SIGTERM is killed when its grace period ends).

use std::time::{Duration, Instant};

use ferrokube_cluster::Identity;
use ferrokube_cluster::testing::{TestNamespace, shared_control_plane};
use ferrokube_tests::kubelet::{
    TESTSERVER_IMAGE, TestNode, event_reasons, events_about, wait_event_reasons,
};
use ferrokube_tests::scheduling::{default_service_account, eventually};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
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

#[tokio::test]
async fn hooks_run_around_the_container_and_grace_periods_are_kept() {
    let node = TestNode::start(
        NODE,
        BRIDGE,
        POD_CIDR,
        &["--cluster-dns=10.96.0.10", "--cluster-domain=cluster.local"],
    )
    .await;
    let admin = shared_control_plane()
        .client(&Identity::admin())
        .await
        .unwrap();
    let namespace = TestNamespace::new("kubelet-hooks").await;
    let ns = namespace.name().to_string();
    default_service_account(&admin, &ns).await;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);

    // The pod's names and DNS: /etc/hosts with its FQDN and aliases, the cluster's resolver.
    let mut names = pod(
        "names",
        "cat /etc/hosts /etc/resolv.conf /etc/hostname; hostname",
        2,
        json!({}),
    );
    let spec = names.spec.as_mut().unwrap();
    spec.restart_policy = Some("Never".into());
    spec.hostname = Some("db-0".into());
    spec.subdomain = Some("db".into());
    spec.host_aliases = Some(vec![
        serde_json::from_value(json!({"ip": "10.1.2.3", "hostnames": ["foo.local", "bar.local"]}))
            .unwrap(),
    ]);
    let created = pods.create(&PostParams::default(), &names).await.unwrap();
    let done = eventually(Duration::from_secs(60), "pod names to succeed", || async {
        let pod = pods.get("names").await.ok()?;
        (pod.status.as_ref()?.phase.as_deref() == Some("Succeeded")).then_some(pod)
    })
    .await;
    let ip = done.status.unwrap().pod_ip.unwrap();
    let log = std::fs::read_to_string(node.log_file(&created, "main")).unwrap();
    let lines: Vec<&str> = log
        .lines()
        .filter_map(|l| l.splitn(4, ' ').nth(3))
        .collect();
    for expected in [
        "# Kubernetes-managed hosts file.".to_string(),
        "127.0.0.1\tlocalhost".to_string(),
        format!("{ip}\tdb-0.db.{ns}.svc.cluster.local\tdb-0"),
        "10.1.2.3\tfoo.local\tbar.local".to_string(),
        format!("search {ns}.svc.cluster.local svc.cluster.local cluster.local"),
        "nameserver 10.96.0.10".to_string(),
        "options ndots:5".to_string(),
        "db-0".to_string(),
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(&expected)),
            "{expected:?} in {lines:#?}"
        );
    }
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("nameserver")).count(),
        1,
        "only the cluster's nameserver: {lines:#?}"
    );

    // Init containers run in order, then a sidecar (an init container with restartPolicy Always) that keeps
    // running beside the app container.
    let ordered: Pod = serde_json::from_value(json!({
        "metadata": {"name": "ordered"},
        "spec": {
            "nodeName": NODE,
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 2,
            "volumes": [{"name": "work", "emptyDir": {}}],
            "initContainers": [
                {"name": "first", "image": "busybox", "command": ["sh", "-c", "echo first > /work/order"],
                 "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
                {"name": "sidecar", "image": "busybox", "restartPolicy": "Always",
                 "command": ["sh", "-c", "echo sidecar >> /work/order; exec sleep 3600"],
                 "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
            ],
            "containers": [
                {"name": "main", "image": "busybox",
                 "command": ["sh", "-c", "until grep -q sidecar /work/order; do sleep 0.1; done; \
                     cat /work/order; exec sleep 3600"],
                 "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
            ],
        },
    }))
    .unwrap();
    let created = pods.create(&PostParams::default(), &ordered).await.unwrap();
    let running = eventually(
        Duration::from_secs(60),
        "pod ordered to run with its sidecar",
        || async {
            let pod = pods.get("ordered").await.ok()?;
            let status = pod.status.clone()?;
            let inits = status.init_container_statuses.clone()?;
            let sidecar = inits.iter().find(|s| s.name == "sidecar")?;
            (status.phase.as_deref() == Some("Running")
                && sidecar.state.as_ref()?.running.is_some()
                && sidecar.started == Some(true))
            .then_some(status)
        },
    )
    .await;
    let inits = running.init_container_statuses.unwrap();
    let first = inits.iter().find(|s| s.name == "first").unwrap();
    let done = first.state.clone().unwrap().terminated.unwrap();
    assert_eq!(
        (done.exit_code, done.reason.as_deref()),
        (0, Some("Completed"))
    );
    let initialized = running
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Initialized")
        .unwrap();
    assert_eq!(initialized.status, "True");
    let main_log = node.log_file(&created, "main");
    eventually(Duration::from_secs(30), "main to see both", || async {
        let log = std::fs::read_to_string(&main_log).ok()?;
        (log.contains(" stdout F first\n") && log.contains(" stdout F sidecar\n")).then_some(())
    })
    .await;
    pods.delete("ordered", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&pods, "ordered", Duration::from_secs(30)).await;

    // The environment from a Secret; a missing ConfigMap key source is CreateContainerConfigError until the
    // ConfigMap exists.
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), &ns);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "creds"}, "stringData": {"password": "s3cret"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let mut envs = pod(
        "envs",
        "echo password=$PASSWORD mode=$MODE; sleep 3600",
        2,
        json!({
            "env": [
                {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "later", "key": "mode"}}},
            ],
        }),
    );
    envs.spec.as_mut().unwrap().restart_policy = Some("Always".into());
    let created = pods.create(&PostParams::default(), &envs).await.unwrap();
    let waiting = eventually(
        Duration::from_secs(60),
        "pod envs to wait for its ConfigMap",
        || async {
            let pod = pods.get("envs").await.ok()?;
            let waiting = pod
                .status?
                .container_statuses?
                .first()?
                .state
                .clone()?
                .waiting?;
            (waiting.reason.as_deref() == Some("CreateContainerConfigError")).then_some(waiting)
        },
    )
    .await;
    assert_eq!(
        waiting.message.as_deref(),
        Some("configmap \"later\" not found")
    );
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), &ns);
    config_maps
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "later"}, "data": {"mode": "fast"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    wait_running(&pods, "envs").await;
    let envs_log = node.log_file(&created, "main");
    eventually(Duration::from_secs(30), "envs to print", || async {
        let log = std::fs::read_to_string(&envs_log).ok()?;
        log.contains(" stdout F password=s3cret mode=fast\n")
            .then_some(())
    })
    .await;
    pods.delete("envs", &DeleteParams::default()).await.unwrap();
    wait_gone(&pods, "envs", Duration::from_secs(30)).await;

    // Termination messages: the file the container wrote, or its log's end on failure.
    let mut written = pod(
        "written",
        "echo bye > /dev/termination-log; exit 3",
        2,
        json!({}),
    );
    let mut fallback = pod(
        "fallback",
        "echo oops; exit 2",
        2,
        json!({"terminationMessagePolicy": "FallbackToLogsOnError"}),
    );
    for p in [&mut written, &mut fallback] {
        p.spec.as_mut().unwrap().restart_policy = Some("Never".into());
        pods.create(&PostParams::default(), p).await.unwrap();
    }
    for (name, message) in [("written", "bye\n"), ("fallback", "oops\n")] {
        let terminated = eventually(
            Duration::from_secs(60),
            &format!("pod {name} to fail"),
            || async {
                let pod = pods.get(name).await.ok()?;
                let status = pod.status?.container_statuses?.first()?.clone();
                status.state?.terminated
            },
        )
        .await;
        assert_eq!(terminated.message.as_deref(), Some(message), "{name}");
    }

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

    // httpGet hooks: the test server in another pod sees the postStart and preStop requests.
    node.import_testserver();
    let mut observer = pod("observer", "unused", 2, json!({}));
    let container = &mut observer.spec.as_mut().unwrap().containers[0];
    container.image = Some(TESTSERVER_IMAGE.to_string());
    container.command = Some(vec![
        "/testserver".to_string(),
        "--http-port=8080".to_string(),
    ]);
    let observer_log = node.log_file(
        &pods
            .create(&PostParams::default(), &observer)
            .await
            .unwrap(),
        "main",
    );
    wait_running(&pods, "observer").await;
    let observer_ip = pods
        .get("observer")
        .await
        .unwrap()
        .status
        .unwrap()
        .pod_ip
        .unwrap();
    let http_get =
        |path: &str| json!({"httpGet": {"host": observer_ip, "port": 8080, "path": path}});
    pods.create(
        &PostParams::default(),
        &pod(
            "httphooks",
            "sleep 3600",
            5,
            json!({"lifecycle": {"postStart": http_get("/poststart"), "preStop": http_get("/prestop")}}),
        ),
    )
    .await
    .unwrap();
    wait_running(&pods, "httphooks").await;
    pods.delete("httphooks", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&pods, "httphooks", Duration::from_secs(30)).await;
    let seen = std::fs::read_to_string(&observer_log).unwrap();
    for line in [
        "HTTP GET /poststart kube-lifecycle/1.36",
        "HTTP GET /prestop kube-lifecycle/1.36",
    ] {
        assert!(seen.contains(line), "{line:?} in {seen}");
    }
    let first = seen.find("/poststart").unwrap();
    assert!(first < seen.find("/prestop").unwrap());
    pods.delete("observer", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&pods, "observer", Duration::from_secs(30)).await;

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

    // Bad input: a command that does not exist, a volume kind the kubelet does not have. Each pod shows
    // upstream's reason and events; the kubelet runs on (the pods after these still work).
    let mut missing_volume = pod("novolume", "sleep 3600", 2, json!({}));
    missing_volume.spec.as_mut().unwrap().volumes = Some(vec![
        serde_json::from_value(json!({"name": "data",
            "nfs": {"server": "192.0.2.1", "path": "/exports"}}))
        .unwrap(),
    ]);
    pods.create(&PostParams::default(), &missing_volume)
        .await
        .unwrap();
    let mut no_command = pod(
        "nocommand",
        "unused",
        2,
        json!({"command": ["/no/such/binary"]}),
    );
    no_command.spec.as_mut().unwrap().restart_policy = Some("Always".into());
    pods.create(&PostParams::default(), &no_command)
        .await
        .unwrap();
    // The start error is the waiting message right after a start, and the last state's (StartError) while
    // the restart backs off.
    let message = eventually(
        Duration::from_secs(60),
        "pod nocommand to wait with a start error",
        || async {
            let pod = pods.get("nocommand").await.ok()?;
            let status = pod.status?.container_statuses?.first()?.clone();
            let waiting = status.state?.waiting?;
            match waiting.reason.as_deref() {
                Some("RunContainerError") => waiting.message,
                Some("CrashLoopBackOff") => {
                    let last = status.last_state?.terminated?;
                    (last.reason.as_deref() == Some("StartError")).then_some(last.message?)
                }
                _ => None,
            }
        },
    )
    .await;
    assert!(
        message.contains("/no/such/binary"),
        "the message names the command: {message}"
    );
    let failed = eventually(Duration::from_secs(30), "a Failed event", || async {
        let seen = event_reasons(&admin, &ns, "nocommand").await;
        seen.iter().any(|r| r == "Failed").then_some(seen)
    })
    .await;
    assert!(failed.iter().any(|r| r == "Failed"));
    eventually(Duration::from_secs(30), "a FailedMount event", || async {
        let events = events_about(&admin, &ns, "novolume").await;
        events
            .iter()
            .any(|e| e.reason.as_deref() == Some("FailedMount"))
            .then_some(())
    })
    .await;
    let pending = pods.get("novolume").await.unwrap();
    assert_eq!(
        pending.status.and_then(|s| s.phase).as_deref(),
        Some("Pending")
    );
    for name in ["novolume", "nocommand"] {
        pods.delete(name, &DeleteParams::default()).await.unwrap();
        wait_gone(&pods, name, Duration::from_secs(30)).await;
    }

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
    wait_event_reasons(&admin, &ns, "badhook", &["FailedPostStartHook", "Killing"]).await;
    pods.delete("badhook", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&pods, "badhook", Duration::from_secs(30)).await;
}
