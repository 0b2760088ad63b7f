//! `kubectl top` on a cluster whose kubelet is ferrokube-kubelet: upstream metrics-server, deployed by the
//! cluster crate (its upstream manifest, a local image of the binary hack/upstream builds), scrapes the
//! kubelet's `/metrics/resource` and serves `metrics.k8s.io` through the apiserver's aggregator; upstream
//! kubectl then shows the node's and a busy pod's CPU and memory.

use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

use ferrokube_cluster::metrics_server::{self, API_SERVICE, Config};
use ferrokube_cluster::testing::{TestNamespace, shared_control_plane};
use ferrokube_tests::controllers::ControllerManagerProcess;
use ferrokube_tests::kubectl::kubectl;
use ferrokube_tests::kubelet::{TestNode, every_pod_gone};
use ferrokube_tests::scheduling::SchedulerProcess;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

const NODE: &str = "node-1";
const BRIDGE: &str = "fk-top0";
const POD_CIDR: &str = "10.248.0.0/24";
/// What metrics-server needs running besides the kubelet: the node's registration taint lifted once it
/// is Ready, its Deployment's pod, the Service's EndpointSlice the aggregator dials, the namespaces'
/// ServiceAccounts and the CA its client trusts.
const CONTROLLERS: &str =
    "nodelifecycle,deployment,replicaset,endpointslice,serviceaccount,root-ca-cert-publisher";
/// Two scrapes at `--metric-resolution=15s` after the pod starts, with room for a loaded machine.
const METRICS_LIMIT: Duration = Duration::from_secs(120);

/// A port nothing on the host listens on now (metrics-server shares the node's network).
fn free_host_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

/// The port of the shared control plane's apiserver (on the host's loopback).
fn apiserver_port() -> u16 {
    let url = shared_control_plane().url();
    url.rsplit(':').next().unwrap().parse().unwrap()
}

/// A pod that keeps a CPU busy (within a small limit) and holds about 8 MB of memory.
fn busy_pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main",
                "image": "busybox",
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "x=$(head -c 8000000 /dev/zero | tr '\\0' a); while :; do :; done"],
                "resources": {"limits": {"cpu": "200m", "memory": "64Mi"}},
            }],
        },
    }))
    .unwrap()
}

/// Millicores from kubectl's CPU column (`123m`, or whole cores `2`).
fn millicores(text: &str) -> Option<u64> {
    match text.strip_suffix('m') {
        Some(milli) => milli.parse().ok(),
        None => text.parse::<u64>().ok().map(|cores| cores * 1000),
    }
}

/// Mebibytes from kubectl's memory column (`456Mi`).
fn mebibytes(text: &str) -> Option<u64> {
    text.strip_suffix("Mi")?.parse().ok()
}

/// The CPU and memory columns of the `kubectl top` line for `name`, once both are non-zero.
fn usage_of(output: &str, name: &str, memory_column: usize) -> Option<(u64, u64)> {
    let line = output
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))?;
    let columns: Vec<&str> = line.split_whitespace().collect();
    let cpu = millicores(columns.get(1)?)?;
    let memory = mebibytes(columns.get(memory_column)?)?;
    (cpu > 0 && memory > 0).then_some((cpu, memory))
}

/// Runs `kubectl args` every two seconds until `parse` accepts its output, for at most `limit`; the last
/// output is in the panic message.
async fn kubectl_until<T>(args: &[&str], limit: Duration, parse: impl Fn(&str) -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        let output = kubectl(args).await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if output.status.success()
            && let Some(value) = parse(&stdout)
        {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "kubectl {args:?} did not show what was wanted within {limit:?}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// What a failing test shows: the APIService, metrics-server's pod and EndpointSlice, and its log.
async fn diagnostics(node: &TestNode) -> String {
    let mut text = String::new();
    for args in [
        &["get", "apiservice", API_SERVICE, "-o", "yaml"][..],
        &[
            "-n",
            "kube-system",
            "get",
            "pods,endpointslices",
            "-o",
            "wide",
        ],
        &["-n", "kube-system", "describe", "pods"],
    ] {
        let output = kubectl(args).await;
        text.push_str(&format!(
            "$ kubectl {}\n{}{}\n",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    for entry in std::fs::read_dir(&node.logs)
        .into_iter()
        .flatten()
        .flatten()
    {
        if entry
            .file_name()
            .to_string_lossy()
            .contains("metrics-server")
        {
            let log = entry.path().join("metrics-server/0.log");
            let content = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = content.lines().rev().take(40).collect();
            text.push_str(&format!("\n--- {} (tail) ---\n", log.display()));
            for line in tail.into_iter().rev() {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    text
}

/// Scales metrics-server to nothing and deletes the test's pods, and waits until the kubelet has stopped
/// them all.
async fn clean_up(client: &Client, namespace: &TestNamespace) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), metrics_server::NAMESPACE);
    deployments
        .patch(
            metrics_server::NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace.name());
    pods.delete_collection(&DeleteParams::default(), &Default::default())
        .await
        .unwrap();
    every_pod_gone(&pods, Duration::from_secs(60)).await;
    let system_pods: Api<Pod> = Api::namespaced(client.clone(), metrics_server::NAMESPACE);
    every_pod_gone(&system_pods, Duration::from_secs(60)).await;
}

#[tokio::test]
async fn kubectl_top_shows_the_usage_of_nodes_and_pods() {
    let node = TestNode::start(NODE, BRIDGE, POD_CIDR, &[]).await;
    metrics_server::import_image(node.containerd.socket()).unwrap();
    let _controllers = ControllerManagerProcess::start("kcm-top", CONTROLLERS, &[]);
    let _scheduler = SchedulerProcess::start("scheduler-top", &[]);
    let namespace = TestNamespace::new("kubectl-top").await;
    let client = namespace.client.clone();

    // No kube-proxy: metrics-server shares the node's network, where the apiserver listens on loopback and
    // the apiserver dials it at the node's address.
    let config = Config {
        secure_port: free_host_port(),
        host_network: true,
        apiserver: Some((Ipv4Addr::LOCALHOST.to_string(), apiserver_port())),
    };
    metrics_server::deploy(&client, &config).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace.name());
    // The namespace's `default` ServiceAccount comes from the controller-manager.
    kubectl_until(
        &["-n", namespace.name(), "get", "serviceaccount", "default"],
        Duration::from_secs(30),
        |_| Some(()),
    )
    .await;
    pods.create(&PostParams::default(), &busy_pod("busy"))
        .await
        .unwrap();

    if let Err(e) = metrics_server::wait_available(&client, METRICS_LIMIT).await {
        panic!("{e}\n{}", diagnostics(&node).await);
    }
    let available = kubectl(&["get", "apiservice", API_SERVICE]).await;
    let listed = String::from_utf8_lossy(&available.stdout);
    assert!(
        listed.contains("kube-system/metrics-server") && listed.contains("True"),
        "{listed}"
    );

    // NAME CPU(cores) CPU(%) MEMORY(bytes) MEMORY(%)
    let (cpu, memory) = kubectl_until(&["top", "node", NODE], METRICS_LIMIT, |out| {
        usage_of(out, NODE, 3)
    })
    .await;
    eprintln!("kubectl top node {NODE}: {cpu}m, {memory}Mi");
    // NAME CPU(cores) MEMORY(bytes): the busy loop runs at its 200m limit, the shell holds its 8 MB (7.6 MiB)
    // string; kubectl rounds MiB down.
    let (cpu, memory) = kubectl_until(
        &["top", "pod", "busy", "-n", namespace.name()],
        METRICS_LIMIT,
        |out| usage_of(out, "busy", 2).filter(|(cpu, memory)| *cpu >= 50 && *memory >= 6),
    )
    .await;
    eprintln!("kubectl top pod busy: {cpu}m, {memory}Mi");
    assert!(cpu <= 300, "the busy pod used {cpu}m over its 200m limit");
    let system = kubectl(&["top", "pods", "-n", "kube-system"]).await;
    let system = String::from_utf8_lossy(&system.stdout);
    assert!(system.contains("metrics-server-"), "{system}");

    clean_up(&client, &namespace).await;
    namespace.delete().await;
}

#[test]
fn kubectl_top_columns_are_read_as_upstream_prints_them() {
    let nodes = "NAME     CPU(cores)   CPU(%)   MEMORY(bytes)   MEMORY(%)\n\
                 node-1   250m         12%      1024Mi          4%\n";
    assert_eq!(usage_of(nodes, "node-1", 3), Some((250, 1024)));
    assert_eq!(usage_of(nodes, "node-2", 3), None);
    let pods = "NAME   CPU(cores)   MEMORY(bytes)\nbusy   2            0Mi\n";
    assert_eq!(millicores("2"), Some(2000));
    assert_eq!(usage_of(pods, "busy", 2), None, "zero memory is no usage");
}
