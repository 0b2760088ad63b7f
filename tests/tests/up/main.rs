//! A cluster of `ferrokube up` (two nodes: ferrokube's scheduler, controller-manager and kubelets; upstream
//! etcd, kube-apiserver and kube-proxy; CoreDNS and metrics-server as Deployments), used as a user uses one:
//! pods run to completion, hostPorts answer on the node's address, Services and DNS work, the demo holds,
//! a node whose kubelet stops has its pods replaced elsewhere, restarting the scheduler and
//! controller-manager mid-rollout loses nothing, and ferrokube's own images run as pods (`images`).

mod images;
mod secure_ports;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use ferrokube_cluster::local::plan::ClusterPlan;
use ferrokube_cluster::sys;
use ferrokube_tests::binary;
use ferrokube_tests::kubectl::kubectl_ok_with;
use ferrokube_tests::scheduling::eventually;
use ferrokube_tests::up::shared_up_cluster;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::{Mutex, MutexGuard};

/// Tests that take a node or a component away, or cordon one (the demo), run one at a time.
async fn disruptive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::const_new(());
    LOCK.lock().await
}

/// A fresh namespace whose `default` ServiceAccount exists (the controller-manager makes it).
async fn namespace(client: &Client, prefix: &str) -> String {
    let name = format!("{prefix}-{}", rand_suffix());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
        )
        .await
        .unwrap();
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), &name);
    eventually(
        Duration::from_secs(30),
        "the default ServiceAccount",
        || async { accounts.get_opt("default").await.ok().flatten() },
    )
    .await;
    name
}

fn rand_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{:x}", nanos % 0xfffff)
}

async fn create(client: &Client, namespace: &str, pod: Value) -> Pod {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(pod).unwrap(),
    )
    .await
    .unwrap()
}

async fn phase(pods: &Api<Pod>, name: &str) -> Option<String> {
    pods.get(name).await.ok()?.status?.phase
}

async fn wait_running(pods: &Api<Pod>, name: &str) -> Pod {
    eventually(
        Duration::from_secs(120),
        &format!("{name} Running"),
        || async {
            let pod = pods.get(name).await.ok()?;
            (pod.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(pod)
        },
    )
    .await
}

const HTTPD: &str = "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www";

#[tokio::test]
async fn a_pod_runs_to_completion_and_its_log_is_read_through_the_kubelet() {
    let cluster = shared_up_cluster();
    let client = cluster.client().await;
    let ns = namespace(&client, "complete").await;
    create(
        &client,
        &ns,
        json!({
            "metadata": {"name": "once"},
            "spec": {"restartPolicy": "Never", "containers": [{
                "name": "main", "image": "busybox", "command": ["sh", "-c", "echo done"]}]},
        }),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    eventually(Duration::from_secs(120), "the pod Succeeded", || async {
        (phase(&pods, "once").await.as_deref() == Some("Succeeded")).then_some(())
    })
    .await;
    let log = kubectl_ok_with(&cluster.kubeconfig(), &["logs", "-n", &ns, "once"]).await;
    assert_eq!(log, "done\n");
}

#[tokio::test]
async fn a_host_port_answers_on_its_nodes_address_from_the_host() {
    let cluster = shared_up_cluster();
    let client = cluster.client().await;
    let ns = namespace(&client, "hostport").await;
    create(
        &client,
        &ns,
        json!({
            "metadata": {"name": "web"},
            "spec": {
                "nodeSelector": {"kubernetes.io/hostname": "node-2"},
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "web", "image": "busybox", "command": ["sh", "-c", HTTPD],
                                "ports": [{"containerPort": 8080, "hostPort": 18080}]}]},
        }),
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    wait_running(&pods, "web").await;
    let node_2 = ClusterPlan::new(2).unwrap().nodes[1].ip;
    let page = eventually(
        Duration::from_secs(30),
        "the hostPort to answer",
        || async { http_get(&format!("{node_2}:18080")).ok() },
    )
    .await;
    assert!(page.ends_with("\r\n\r\nweb\n"), "{page}");
}

/// A plain HTTP/1.0 GET of `/` at `address`; the whole response.
fn http_get(address: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&address.parse().unwrap(), Duration::from_secs(3))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

#[tokio::test]
async fn cluster_ip_services_and_dns_reach_pods_on_both_nodes() {
    let cluster = shared_up_cluster();
    let client = cluster.client().await;
    let kubeconfig = cluster.kubeconfig();
    let ns = namespace(&client, "dns").await;
    for (name, node) in [("web-1", "node-1"), ("web-2", "node-2")] {
        create(
            &client,
            &ns,
            json!({
                "metadata": {"name": name, "labels": {"app": "web"}},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": node},
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "web", "image": "busybox", "command": ["sh", "-c", HTTPD],
                                    "ports": [{"containerPort": 8080}]}]},
            }),
        )
        .await;
    }
    create(
        &client,
        &ns,
        json!({
            "metadata": {"name": "client"},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]},
        }),
    )
    .await;
    for (service, cluster_ip) in [("web", None), ("web-headless", Some("None"))] {
        let mut spec =
            json!({"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]});
        if let Some(ip) = cluster_ip {
            spec["clusterIP"] = json!(ip);
        }
        let services: Api<k8s_openapi::api::core::v1::Service> =
            Api::namespaced(client.clone(), &ns);
        services
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": service}, "spec": spec}))
                    .unwrap(),
            )
            .await
            .unwrap();
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut pod_ips = Vec::new();
    for name in ["web-1", "web-2"] {
        let pod = wait_running(&pods, name).await;
        pod_ips.push(pod.status.unwrap().pod_ip.unwrap());
    }
    wait_running(&pods, "client").await;
    let exec = |args: Vec<String>| {
        let kubeconfig = kubeconfig.clone();
        let ns = ns.clone();
        async move {
            let mut all = vec!["exec", "-n", &ns, "client", "--"];
            all.extend(args.iter().map(String::as_str));
            let output = ferrokube_tests::kubectl::kubectl_with(&kubeconfig, &all).await;
            output
                .status
                .success()
                .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
        }
    };
    // Each request lands on one of the two pods; both answer in time.
    let mut answered = std::collections::BTreeSet::new();
    let url = format!("http://web.{ns}.svc.cluster.local/");
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while answered.len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "both pods did not answer through {url}: {answered:?}"
        );
        // busybox's `wget -T` crashes (Debian's 1.35); `timeout` bounds it instead.
        let wget = vec![
            "timeout".into(),
            "5".into(),
            "wget".into(),
            "-qO-".into(),
            url.clone(),
        ];
        match exec(wget).await {
            Some(page) => {
                answered.insert(page.trim().to_string());
            }
            None => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    assert_eq!(answered.into_iter().collect::<Vec<_>>(), ["web-1", "web-2"]);
    // A headless Service's name resolves to every ready pod's address.
    let name = format!("web-headless.{ns}.svc.cluster.local");
    let lookup = eventually(
        Duration::from_secs(60),
        "the headless Service's records",
        || async {
            let out = exec(vec!["nslookup".into(), name.clone()]).await?;
            pod_ips
                .iter()
                .all(|ip| out.contains(ip.as_str()))
                .then_some(out)
        },
    )
    .await;
    assert!(
        lookup.contains("10.96.0.10"),
        "not answered by kube-dns: {lookup}"
    );
}

#[tokio::test]
async fn a_second_up_is_refused_while_one_runs() {
    let cluster = shared_up_cluster();
    let home = tempfile::tempdir().unwrap();
    let output = Command::new(binary("ferrokube"))
        .args(["up", "--apiserver-port=0"])
        .env("FERROKUBE_HOME", home.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "a ferrokube cluster is already running (pid {}",
            cluster.process.pid()
        )),
        "{stderr}"
    );
    assert!(cluster.process.pid() > 0 && sys::kill(cluster.process.pid(), 0));
}

#[tokio::test]
async fn the_demo_holds() {
    let cluster = shared_up_cluster();
    let _exclusive = disruptive().await;
    let output = tokio::process::Command::new(binary("ferrokube"))
        .args(["demo", "--kubeconfig"])
        .arg(cluster.kubeconfig())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    for step in [
        "ok: http://10.",
        "ok: http://web.default.svc.cluster.local/ answered from pod web-",
        "ok: 5 replicas ready",
        "ok: all 5 replicas run busybox:latest",
        "ok: all 5 replicas run busybox:1.35",
        "is not on cordoned node-",
        "ok: all gone",
        "Every step held.",
    ] {
        assert!(stdout.contains(step), "{step:?} missing from:\n{stdout}");
    }
}

#[tokio::test]
async fn a_node_whose_kubelet_stops_goes_not_ready_and_its_pods_are_replaced_elsewhere() {
    let cluster = shared_up_cluster();
    let _exclusive = disruptive().await;
    let client = cluster.client().await;
    let ns = namespace(&client, "not-ready").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let toleration = |key: &str| json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5});
    let deployment = json!({
        "metadata": {"name": "app"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "app"}},
            "template": {
                "metadata": {"labels": {"app": "app"}},
                "spec": {
                    "tolerations": [toleration("node.kubernetes.io/unreachable"),
                                    toleration("node.kubernetes.io/not-ready")],
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]}}}
    });
    // node-1 cordoned while the pod is placed, so it starts on node-2.
    let kubeconfig = cluster.kubeconfig();
    kubectl_ok_with(&kubeconfig, &["cordon", "node-1"]).await;
    deployments
        .create(
            &PostParams::default(),
            &serde_json::from_value(deployment).unwrap(),
        )
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let first = eventually(
        Duration::from_secs(120),
        "the pod Running on node-2",
        || async {
            let list = pods.list(&ListParams::default()).await.ok()?;
            list.items
                .into_iter()
                .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        },
    )
    .await;
    kubectl_ok_with(&kubeconfig, &["uncordon", "node-1"]).await;
    assert_eq!(
        first.spec.as_ref().unwrap().node_name.as_deref(),
        Some("node-2")
    );

    let kubelet = cluster.pid_of("kubelet-node-2");
    assert!(sys::kill(kubelet, libc::SIGSTOP));
    let resumed = scopeguard(kubelet);
    let nodes: Api<Node> = Api::all(client.clone());
    eventually(
        Duration::from_secs(120),
        "node-2 to be NotReady (Unknown)",
        || async {
            let node = nodes.get("node-2").await.ok()?;
            let ready = node
                .status?
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "Ready")?;
            (ready.status == "Unknown").then_some(())
        },
    )
    .await;
    let first_name = first.metadata.name.clone().unwrap();
    let replacement = eventually(
        Duration::from_secs(120),
        "a replacement Running on node-1",
        || async {
            let list = pods.list(&ListParams::default()).await.ok()?;
            list.items.into_iter().find(|p| {
                p.metadata.name.as_deref() != Some(first_name.as_str())
                    && p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some("node-1")
                    && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            })
        },
    )
    .await;
    assert!(replacement.metadata.name.is_some());
    drop(resumed);
    eventually(Duration::from_secs(60), "node-2 Ready again", || async {
        let node = nodes.get("node-2").await.ok()?;
        let ready = node
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        (ready.status == "True").then_some(())
    })
    .await;
    let _ = Api::<Namespace>::all(client)
        .delete(&ns, &DeleteParams::default())
        .await;
}

/// Sends SIGCONT to `pid` when dropped, so a failing test does not leave a node's kubelet stopped.
fn scopeguard(pid: u32) -> impl Drop {
    struct Resume(u32);
    impl Drop for Resume {
        fn drop(&mut self) {
            sys::kill(self.0, libc::SIGCONT);
        }
    }
    Resume(pid)
}

#[tokio::test]
async fn killing_the_scheduler_and_controller_manager_mid_rollout_loses_nothing() {
    let cluster = shared_up_cluster();
    let _exclusive = disruptive().await;
    let client = cluster.client().await;
    let ns = namespace(&client, "restart").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let deployment = json!({
        "metadata": {"name": "app"},
        "spec": {
            "replicas": 10,
            "selector": {"matchLabels": {"app": "app"}},
            "strategy": {"rollingUpdate": {"maxSurge": 2, "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": "app"}},
                "spec": {"terminationGracePeriodSeconds": 1,
                         "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"],
                                         "env": [{"name": "VERSION", "value": "1"}]}]}}}
    });
    deployments
        .create(
            &PostParams::default(),
            &serde_json::from_value(deployment).unwrap(),
        )
        .await
        .unwrap();
    let complete = |version: &'static str| {
        let deployments = deployments.clone();
        async move {
            eventually(
                Duration::from_secs(240),
                &format!("version {version} rolled out"),
                || async {
                    let d = deployments.get("app").await.ok()?;
                    let status = d.status?;
                    let generation = d.metadata.generation?;
                    (status.observed_generation == Some(generation)
                        && status.replicas == Some(10)
                        && status.updated_replicas == Some(10)
                        && status.available_replicas == Some(10))
                    .then_some(())
                },
            )
            .await;
        }
    };
    complete("1").await;

    // Every 100 ms, the pods that count (not terminating), to check the surge bound at every step.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let most = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (watching, seen) = (pods.clone(), most.clone());
    let watcher = tokio::spawn(async move {
        loop {
            if let Ok(list) = watching.list(&ListParams::default()).await {
                let live = list
                    .items
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .count();
                seen.fetch_max(live, std::sync::atomic::Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    let (scheduler, kcm) = (
        cluster.pid_of("ferrokube-scheduler"),
        cluster.pid_of("ferrokube-controller-manager"),
    );
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "c", "env": [{"name": "VERSION", "value": "2"}]}]}}}});
    deployments
        .patch(
            "app",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Strategic(&patch),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(sys::kill(scheduler, libc::SIGKILL));
    assert!(sys::kill(kcm, libc::SIGKILL));
    complete("2").await;
    assert_ne!(cluster.pid_of("ferrokube-scheduler"), scheduler);
    assert_ne!(cluster.pid_of("ferrokube-controller-manager"), kcm);
    watcher.abort();
    let most = most.load(std::sync::atomic::Ordering::Relaxed);
    assert!(most <= 12, "{most} pods at once, more than 10 + maxSurge 2");
    let pods = pods.list(&ListParams::default()).await.unwrap().items;
    let live: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    assert_eq!(live.len(), 10, "{:?}", names(&live));
    assert!(live.iter().all(|p| {
        let env = &p.spec.as_ref().unwrap().containers[0].env.as_ref().unwrap()[0];
        env.value.as_deref() == Some("2")
    }));
    let _ = Api::<Namespace>::all(client)
        .delete(&ns, &DeleteParams::default())
        .await;
}

fn names(pods: &[&Pod]) -> Vec<String> {
    pods.iter()
        .map(|p| p.metadata.name.clone().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn kubectl_top_shows_every_node_through_metrics_server() {
    let cluster = shared_up_cluster();
    let kubeconfig = cluster.kubeconfig();
    let top = eventually(Duration::from_secs(120), "kubectl top nodes", || async {
        let output =
            ferrokube_tests::kubectl::kubectl_with(&kubeconfig, &["top", "nodes", "--no-headers"])
                .await;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        (output.status.success() && text.lines().count() == 2).then_some(text)
    })
    .await;
    for node in ["node-1", "node-2"] {
        assert!(top.lines().any(|l| l.starts_with(node)), "{top}");
    }
}

#[tokio::test]
async fn ferrokube_logs_prints_a_components_log_and_names_the_components_it_knows() {
    let cluster = shared_up_cluster();
    let logs = |component: &str| {
        Command::new(binary("ferrokube"))
            .args(["logs", component])
            .env("FERROKUBE_HOME", &cluster.home)
            .output()
            .unwrap()
    };
    let output = logs("kubelet-node-1");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("node-1"), "{text}");
    let output = logs("no-such-component");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    for known in [
        "kube-apiserver",
        "ferrokube-scheduler",
        "kubelet-node-2",
        "kube-proxy",
    ] {
        assert!(stderr.contains(known), "{known} not offered: {stderr}");
    }
}
