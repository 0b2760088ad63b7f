//! Upstream kube-proxy (iptables mode) on a ferrokube node, configured by the cluster crate: a Service's
//! cluster IP reaches its pod from the host while both exist, and no longer once they are gone; after
//! kube-proxy stops, `kube-proxy --cleanup` leaves none of its chains behind.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use ferrokube_cluster::Identity;
use ferrokube_cluster::kube_proxy::{self, Config};
use ferrokube_cluster::process::ManagedProcess;
use ferrokube_cluster::testing::{TestNamespace, shared_control_plane};
use ferrokube_cluster::upstream;
use ferrokube_tests::controllers::ControllerManagerProcess;
use ferrokube_tests::kubelet::{TestNode, every_pod_gone};
use ferrokube_tests::scheduling::eventually;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;

const NODE: &str = "node-1";
const BRIDGE: &str = "fk-kpx0";
const POD_CIDR: &str = "10.240.0.0/24";
/// The namespace's default ServiceAccount, which admission wants for a pod, and the Service's
/// EndpointSlice, which kube-proxy programs its rules from.
const CONTROLLERS: &str = "serviceaccount,endpointslice";
/// What the pod serves, so an answer can only come from it.
const BODY: &str = "served-through-kube-proxy";
/// kube-proxy's first sync and each later one, on a loaded machine.
const SYNC_LIMIT: Duration = Duration::from_secs(60);

/// A port nothing on the host listens on now.
fn free_host_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

/// The body of `GET /` at `address`, or why there is none (no connection, no answer).
fn http_get(address: SocketAddr) -> Result<String, String> {
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&address, timeout).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(timeout)).unwrap();
    stream.set_write_timeout(Some(timeout)).unwrap();
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    Ok(response)
}

/// The host's IPv4 iptables rules, as `iptables-save` prints them.
fn iptables_rules() -> String {
    let output = std::process::Command::new("iptables-save")
        .output()
        .unwrap();
    assert!(output.status.success(), "iptables-save: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The chains kube-proxy makes as duplicates of the kubelet's and by design leaves behind on `--cleanup`
/// (upstream pkg/proxy/iptables `iptablesKubeletJumpChains`: "we create these on startup but do not delete
/// them in CleanupLeftovers"). A host that never ran either has none before the test and keeps them after.
const KUBELET_CHAINS: [&str; 1] = ["KUBE-FIREWALL"];

/// The names of the KUBE-* chains in the host's iptables (every table; IPv4 and IPv6).
fn kube_chains() -> BTreeSet<String> {
    let mut chains = BTreeSet::new();
    for save in ["iptables-save", "ip6tables-save"] {
        let output = std::process::Command::new(save).output().unwrap();
        assert!(output.status.success(), "{save}: {output:?}");
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            if let Some(chain) = line.strip_prefix(":KUBE-") {
                let name = chain.split_whitespace().next().unwrap_or_default();
                chains.insert(format!("{save}: KUBE-{name}"));
            }
        }
    }
    chains
}

fn httpd_pod(name: &str) -> Pod {
    let script =
        format!("mkdir -p /www && echo {BODY} > /www/index.html && httpd -f -p 8080 -h /www");
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "nodeName": NODE,
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "httpd",
                "image": "busybox",
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", script],
            }],
        },
    }))
    .unwrap()
}

fn service(name: &str) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
        },
    }))
    .unwrap()
}

/// A running kube-proxy; dropped (the test failed), it stops and its rules go, as `ferrokube down` does.
struct KubeProxy(ManagedProcess);

impl Drop for KubeProxy {
    fn drop(&mut self) {
        self.0.stop(Duration::from_secs(10));
        if let Err(e) = kube_proxy::cleanup() {
            eprintln!("kube-proxy --cleanup: {e}");
        }
    }
}

/// Starts kube-proxy for `NODE` as `system:kube-proxy`, its health and metrics on free loopback ports.
fn start_kube_proxy() -> KubeProxy {
    let control_plane = shared_control_plane();
    let kubeconfig = control_plane
        .kubeconfig(&Identity::kube_proxy())
        .expect("the control plane makes kube-proxy's kubeconfig")
        .to_path_buf();
    let mut config = Config::new(kubeconfig, NODE, POD_CIDR);
    config.metrics_bind_address = (Ipv4Addr::LOCALHOST, free_host_port()).into();
    config.healthz_bind_address = (Ipv4Addr::LOCALHOST, free_host_port()).into();
    let path = control_plane.dir().join("kube-proxy.yaml");
    std::fs::write(&path, kube_proxy::config_file(&config)).unwrap();
    let bin = upstream::binary(kube_proxy::NAME).unwrap();
    let process = ManagedProcess::spawn(
        "kube-proxy",
        kube_proxy::command(&bin, &path),
        &control_plane.dir().join("kube-proxy.log"),
    )
    .unwrap();
    KubeProxy(process)
}

#[tokio::test]
async fn a_cluster_ip_reaches_its_pod_until_the_service_goes_and_cleanup_removes_the_rules() {
    let before = kube_chains();
    let node = TestNode::start(NODE, BRIDGE, POD_CIDR, &[]).await;
    let _manager = ControllerManagerProcess::start("kube-proxy-slices", CONTROLLERS, &[]);
    let mut proxy = start_kube_proxy();
    let ns = TestNamespace::new("kube-proxy").await;
    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), ns.name());
    let services: Api<Service> = Api::namespaced(ns.client.clone(), ns.name());

    let pod = httpd_pod("web");
    eventually(Duration::from_secs(30), "pod web to be created", || async {
        pods.create(&PostParams::default(), &pod).await.ok()
    })
    .await;
    let created = services
        .create(&PostParams::default(), &service("web"))
        .await
        .unwrap();
    let cluster_ip: IpAddr = created
        .spec
        .and_then(|s| s.cluster_ip)
        .unwrap()
        .parse()
        .unwrap();
    let address = SocketAddr::new(cluster_ip, 80);

    let answered = eventually(
        SYNC_LIMIT,
        &format!("{address} to serve the pod's page"),
        || async {
            tokio::task::spawn_blocking(move || http_get(address))
                .await
                .unwrap()
                .ok()
                .filter(|r| r.contains(BODY))
        },
    )
    .await;
    assert!(answered.starts_with("HTTP/1."), "{answered}");
    let programmed = kube_chains();
    assert!(
        programmed.contains("iptables-save: KUBE-SERVICES"),
        "kube-proxy's chains: {programmed:?}"
    );

    let pod_ip: IpAddr = pods
        .get("web")
        .await
        .unwrap()
        .status
        .and_then(|s| s.pod_ip)
        .unwrap()
        .parse()
        .unwrap();
    let pod_address = SocketAddr::new(pod_ip, 8080);
    let service_rules = format!("{}/web:http", ns.name());
    assert!(
        iptables_rules().contains(&service_rules),
        "no rule for {service_rules}"
    );
    let running = kube_chains();
    assert!(
        running.iter().any(|c| c.ends_with(": KUBE-SERVICES")),
        "kube-proxy made no KUBE-SERVICES chain: {running:?}"
    );

    // The pod keeps serving: only kube-proxy removing the Service's rules stops the cluster IP serving
    // it. (This host's network answers any TCP connection it cannot route, so refusal proves nothing.)
    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    let answer = eventually(
        SYNC_LIMIT,
        &format!("{address} to stop serving the pod's page"),
        || async {
            let answer = tokio::task::spawn_blocking(move || http_get(address))
                .await
                .unwrap();
            let served = answer.as_ref().is_ok_and(|r| r.contains(BODY));
            (!served && !iptables_rules().contains(&service_rules)).then_some(answer)
        },
    )
    .await;
    println!("{address} after the Service went: {answer:?}");
    let direct = tokio::task::spawn_blocking(move || http_get(pod_address))
        .await
        .unwrap()
        .unwrap();
    assert!(direct.contains(BODY), "the pod at {pod_address}: {direct}");
    pods.delete("web", &DeleteParams::default()).await.unwrap();
    every_pod_gone(&pods, Duration::from_secs(60)).await;

    proxy.0.check_running().unwrap();
    proxy.0.stop(Duration::from_secs(10));
    kube_proxy::cleanup().unwrap();
    let after = kube_chains();
    let left: Vec<&String> = after
        .difference(&before)
        .filter(|chain| {
            !KUBELET_CHAINS
                .iter()
                .any(|k| chain.ends_with(&format!(": {k}")))
        })
        .collect();
    assert!(
        left.is_empty(),
        "kube-proxy's chains left after --cleanup: {left:?}"
    );

    ns.delete().await;
    drop(node);
}
