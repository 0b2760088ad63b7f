//! CoreDNS as the cluster crate deploys it, checked without a pod network: its objects are applied to the
//! shared control plane, then the upstream binary runs on the host with kubeadm's Corefile (moved to
//! loopback ports, and given a kubeconfig with the `coredns` ServiceAccount's token in place of the
//! in-cluster config) and answers for Services, so the Corefile parses and the ClusterRole suffices.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::time::Duration;

use ferrokube_cluster::binary_image::parse_ldd;
use ferrokube_cluster::containerd::Containerd;
use ferrokube_cluster::coredns::{self, Config, NAME, NAMESPACE, SERVICE};
use ferrokube_cluster::process::ManagedProcess;
use ferrokube_cluster::testing::{TestNamespace, shared_control_plane};
use ferrokube_cluster::upstream;
use ferrokube_tests::scheduling::eventually;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

/// A query's type A and class IN.
const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;
/// The response code of a name that does not exist.
const NXDOMAIN: u8 = 3;

/// A port nothing on the host's loopback uses now.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

/// A DNS query (RFC 1035) for the A records of `name`, with id `id` and recursion desired.
fn a_query(id: u16, name: &str) -> Vec<u8> {
    let mut query = Vec::new();
    query.extend_from_slice(&id.to_be_bytes());
    query.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.push(0);
    query.extend_from_slice(&TYPE_A.to_be_bytes());
    query.extend_from_slice(&CLASS_IN.to_be_bytes());
    query
}

/// Skips the (possibly compressed) name at `at`; the offset after it.
fn skip_name(message: &[u8], mut at: usize) -> usize {
    loop {
        let length = message[at];
        if length & 0xc0 == 0xc0 {
            return at + 2;
        }
        if length == 0 {
            return at + 1;
        }
        at += 1 + usize::from(length);
    }
}

/// The response code and the A records' addresses of a response to one question.
fn parse_response(message: &[u8]) -> (u8, Vec<Ipv4Addr>) {
    let u16_at = |at: usize| u16::from_be_bytes([message[at], message[at + 1]]);
    let rcode = message[3] & 0x0f;
    let answers = u16_at(6);
    let mut at = skip_name(message, 12) + 4;
    let mut addresses = Vec::new();
    for _ in 0..answers {
        at = skip_name(message, at);
        let (kind, length) = (u16_at(at), usize::from(u16_at(at + 8)));
        at += 10;
        if kind == TYPE_A && length == 4 {
            addresses.push(Ipv4Addr::new(
                message[at],
                message[at + 1],
                message[at + 2],
                message[at + 3],
            ));
        }
        at += length;
    }
    (rcode, addresses)
}

/// Asks the DNS server at `server` for the A records of `name` over UDP: (rcode, addresses), or why no
/// answer came.
fn resolve(server: SocketAddr, name: &str) -> Result<(u8, Vec<Ipv4Addr>), String> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    // Any id will do: only one query is in flight on this socket.
    let id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.subsec_nanos() as u16);
    socket
        .send_to(&a_query(id, name), server)
        .map_err(|e| e.to_string())?;
    let mut buffer = [0u8; 512];
    let (length, _) = socket.recv_from(&mut buffer).map_err(|e| e.to_string())?;
    let response = &buffer[..length];
    if response.len() < 12 || response[..2] != id.to_be_bytes() {
        return Err(format!("not a response to our query: {response:?}"));
    }
    Ok(parse_response(response))
}

/// kubeadm's Corefile as the cluster crate makes it, on loopback ports, reaching the apiserver through
/// `kubeconfig` (context `coredns`) since it runs outside a pod.
fn host_corefile(ports: &[u16; 4], kubeconfig: &str) -> String {
    let [dns, health, ready, metrics] = *ports;
    let corefile = coredns::corefile("cluster.local");
    let replacements = [
        (".:53 {\n", format!(".:{dns} {{\n    bind 127.0.0.1\n")),
        (
            "    health {\n",
            format!("    health 127.0.0.1:{health} {{\n"),
        ),
        ("    ready\n", format!("    ready 127.0.0.1:{ready}\n")),
        (
            "    prometheus :9153\n",
            format!("    prometheus 127.0.0.1:{metrics}\n"),
        ),
        (
            "ip6.arpa {\n       pods insecure\n",
            format!("ip6.arpa {{\n       kubeconfig {kubeconfig} coredns\n       pods insecure\n"),
        ),
    ];
    let mut text = corefile.clone();
    for (from, to) in replacements {
        assert!(
            text.contains(from),
            "{from:?} not in the Corefile:\n{corefile}"
        );
        text = text.replace(from, &to);
    }
    text
}

/// A kubeconfig for the `coredns` ServiceAccount's token.
async fn coredns_kubeconfig(client: &kube::Client) -> String {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), NAMESPACE);
    let request: TokenRequest = serde_json::from_value(json!({
        "spec": {"audiences": [], "expirationSeconds": 3600},
    }))
    .unwrap();
    let response: TokenRequest = accounts
        .create_subresource("token", NAME, &PostParams::default(), &request)
        .await
        .unwrap();
    let token = response.status.unwrap().token.unwrap();
    let control_plane = shared_control_plane();
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: ferrokube
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: coredns
  user:
    token: {token}
contexts:
- name: coredns
  context:
    cluster: ferrokube
    user: coredns
current-context: coredns
",
        server = control_plane.url(),
        ca = control_plane.pki().ca_cert.display(),
    )
}

#[tokio::test]
async fn coredns_answers_for_services_with_kubeadms_corefile_and_objects() {
    let ns = TestNamespace::new("coredns").await;
    let client = ns.client.clone();
    let config = Config::default();
    coredns::deploy(&client, &config).await.unwrap();
    // Applying again converges instead of failing.
    coredns::deploy(&client, &config).await.unwrap();

    let service: Service = Api::namespaced(client.clone(), NAMESPACE)
        .get(SERVICE)
        .await
        .unwrap();
    assert_eq!(
        service.spec.unwrap().cluster_ip.as_deref(),
        Some("10.96.0.10")
    );
    let config_map: ConfigMap = Api::namespaced(client.clone(), NAMESPACE)
        .get(NAME)
        .await
        .unwrap();
    assert_eq!(
        config_map.data.unwrap()["Corefile"],
        coredns::corefile("cluster.local")
    );
    let deployment: Deployment = Api::namespaced(client.clone(), NAMESPACE)
        .get(NAME)
        .await
        .unwrap();
    assert_eq!(deployment.spec.unwrap().replicas, Some(2));
    let managers: Vec<String> = deployment
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|f| f.manager)
        .collect();
    assert!(managers.contains(&"ferrokube".to_string()), "{managers:?}");
    // Nothing runs its pods here (no kubelet), so it never becomes available.
    let unavailable = coredns::wait_available(&client, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert!(
        unavailable
            .to_string()
            .contains("Deployment kube-system/coredns"),
        "{unavailable}"
    );

    let web: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"ports": [{"port": 80}]},
    }))
    .unwrap();
    let web = Api::<Service>::namespaced(client.clone(), ns.name())
        .create(&PostParams::default(), &web)
        .await
        .unwrap();
    let web_ip: Ipv4Addr = web.spec.unwrap().cluster_ip.unwrap().parse().unwrap();

    let dir = shared_control_plane().dir().join("coredns");
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, coredns_kubeconfig(&client).await).unwrap();
    let ports = [free_port(), free_port(), free_port(), free_port()];
    let corefile = dir.join("Corefile");
    std::fs::write(
        &corefile,
        host_corefile(&ports, &kubeconfig.display().to_string()),
    )
    .unwrap();
    let mut command = std::process::Command::new(upstream::binary(NAME).unwrap());
    command.arg("-conf").arg(&corefile);
    let mut process = ManagedProcess::spawn("coredns", command, &dir.join("coredns.log")).unwrap();

    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, ports[0]));
    let web_name = format!("web.{}.svc.cluster.local", ns.name());
    let (rcode, addresses) = eventually(
        Duration::from_secs(60),
        &format!("CoreDNS to answer for {web_name}"),
        || {
            let name = web_name.clone();
            async move {
                tokio::task::spawn_blocking(move || resolve(server, &name))
                    .await
                    .unwrap()
                    .ok()
                    .filter(|(rcode, _)| *rcode == 0)
            }
        },
    )
    .await;
    assert_eq!((rcode, addresses), (0, vec![web_ip]));
    let dns = tokio::task::spawn_blocking(move || {
        resolve(server, "kube-dns.kube-system.svc.cluster.local")
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(dns, (0, vec![Ipv4Addr::new(10, 96, 0, 10)]));
    let missing = format!("absent.{}.svc.cluster.local", ns.name());
    let absent = tokio::task::spawn_blocking(move || resolve(server, &missing))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(absent, (NXDOMAIN, vec![]));

    process.check_running().unwrap();
    process.stop(Duration::from_secs(10));
    ns.delete().await;
}

#[tokio::test]
async fn the_image_of_the_static_binary_imports_into_containerd() {
    let binary = upstream::binary(NAME).unwrap();
    let ldd = std::process::Command::new("ldd")
        .arg(&binary)
        .output()
        .unwrap();
    assert!(
        parse_ldd(&String::from_utf8_lossy(&ldd.stdout)).is_empty(),
        "CoreDNS is built static (CGO_ENABLED=0): {ldd:?}"
    );
    let dir = shared_control_plane().dir().join("coredns-containerd");
    std::fs::create_dir_all(&dir).unwrap();
    let containerd = Containerd::start(&dir).unwrap();
    coredns::import_image(containerd.socket()).unwrap();
    let output = std::process::Command::new("ctr")
        .arg("--address")
        .arg(containerd.socket())
        .args(["-n", "k8s.io", "images", "ls", "-q"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let images = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        images.lines().any(|line| line == coredns::image()),
        "{} not among {images}",
        coredns::image()
    );
}
