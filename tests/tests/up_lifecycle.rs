//! `ferrokube up` leaves nothing behind: stopped with Ctrl-C, or killed with -9 and followed by
//! `ferrokube down`, no process, shim, network namespace, link, iptables rule, node directory or kubeconfig
//! of the cluster remains.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ferrokube_cluster::process::is_alive;
use ferrokube_cluster::sys;
use ferrokube_tests::scheduling::eventually;
use ferrokube_tests::up::{UpCluster, down};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use tokio::sync::Mutex;

/// One cluster per host at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// What a started cluster is made of, to check it is all gone.
struct Made {
    pids: Vec<u32>,
    pod_uid: String,
}

/// Starts a one-node cluster with a pod holding a hostPort (so CNI's portmap rules exist) and returns it.
async fn cluster_with_a_pod() -> (UpCluster, Made) {
    let cluster = UpCluster::start(1);
    let client = cluster.client().await;
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    eventually(
        Duration::from_secs(30),
        "the default ServiceAccount",
        || async { accounts.get_opt("default").await.ok().flatten() },
    )
    .await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let pod = json!({
        "metadata": {"name": "held"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"],
                                 "ports": [{"containerPort": 8080, "hostPort": 18081}]}]},
    });
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(pod).unwrap(),
    )
    .await
    .unwrap();
    let pod = eventually(Duration::from_secs(120), "the pod Running", || async {
        let pod = pods.get("held").await.ok()?;
        (pod.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(pod)
    })
    .await;
    let mut pids: Vec<u32> = cluster
        .record()
        .components
        .iter()
        .filter_map(|c| c.pid)
        .collect();
    pids.push(cluster.process.pid());
    assert!(pids.len() >= 7, "{pids:?}");
    let made = Made {
        pids,
        pod_uid: pod.metadata.uid.unwrap(),
    };
    assert!(Path::new(&format!("/run/netns/fk-{}", made.pod_uid)).exists());
    assert!(iptables().contains("KUBE-SERVICES"));
    (cluster, made)
}

fn iptables() -> String {
    let output = Command::new("iptables-save").output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn assert_all_gone(home: &Path, made: &Made) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while made.pids.iter().any(|p| is_alive(*p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let alive: Vec<&u32> = made.pids.iter().filter(|p| is_alive(**p)).collect();
    assert!(alive.is_empty(), "still running: {alive:?}");
    let shims = Command::new("pgrep")
        .args(["-f", &home.display().to_string()])
        .output()
        .unwrap();
    assert!(
        shims.stdout.is_empty(),
        "processes of the cluster left: {}",
        String::from_utf8_lossy(&shims.stdout)
    );
    let links = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(!links.contains("fk-up"), "links left:\n{links}");
    assert!(!Path::new(&format!("/run/netns/fk-{}", made.pod_uid)).exists());
    let rules = iptables();
    assert!(!rules.contains("KUBE-SERVICES"), "kube-proxy's rules left");
    assert!(!rules.contains("18081"), "the hostPort's rules left");
    for file in ["nodes", "kubeconfig", "up.json"] {
        assert!(
            !home.join(file).exists(),
            "{file} left in {}",
            home.display()
        );
    }
    assert!(home.join("logs").is_dir(), "the logs are kept");
}

#[tokio::test]
async fn ctrl_c_stops_the_cluster_and_removes_everything_it_made() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (mut cluster, made) = cluster_with_a_pod().await;
    assert!(sys::kill(cluster.process.pid(), libc::SIGINT));
    let deadline = Instant::now() + Duration::from_secs(120);
    while cluster.process.check_running().is_ok() {
        assert!(
            Instant::now() < deadline,
            "up did not stop:\n{}",
            cluster.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let output = cluster.output();
    assert!(output.contains("Stopped."), "{output}");
    assert!(!output.contains("warning:"), "{output}");
    assert_all_gone(&cluster.home, &made);
}

#[tokio::test]
async fn down_removes_everything_after_up_is_killed() {
    let _one = ONE_AT_A_TIME.lock().await;
    let (cluster, made) = cluster_with_a_pod().await;
    assert!(sys::kill(cluster.process.pid(), libc::SIGKILL));
    let output = down(&cluster.home);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    // Two CoreDNS replicas, metrics-server and the test's pod.
    assert!(stdout.contains("4 pod sandboxes"), "{stdout}");
    assert!(!stderr.contains("warning:"), "{stderr}");
    assert_all_gone(&cluster.home, &made);
}
