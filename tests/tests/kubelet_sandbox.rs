//! ferrokube-kubelet's pod sandboxes with the distribution's CNI plugins (bridge, host-local, portmap), as
//! root: IPs from the CIDR, pod-to-pod traffic, hostname, hostPort, idempotent set-up and complete removal.
//! Everything made on the host (bridge, namespaces, iptables chains) is undone at the end; the bridge
//! plugin's net.ipv4.ip_forward=1 is left, as restoring it could cut off pods of a cluster running beside.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferrokube_cluster::cni::{NETWORK, ipam_data_dir, write_bridge_conflist};
use ferrokube_kubelet::sandbox::{
    NETWORK_NOT_READY, PortMapping, Protocol, Sandbox, SandboxRequest, SandboxStatus,
};

const BRIDGE: &str = "fk-sbx0";
const CIDR: &str = "10.250.0.0/24";
const HOST_PORT: u16 = 30781;
const CONTAINER_PORT: u16 = 8080;
const PAGE: &str = "hello from sandbox b\n";
const CNI_BIN_DIRS: [&str; 2] = ["/opt/cni/bin", "/usr/lib/cni"];

/// Runs `program args`; its stdout, or a panic with its stderr.
fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn iptables_chains(table: &str) -> BTreeSet<String> {
    let rules = Command::new("iptables")
        .args(["-t", table, "-S"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&rules.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix("-N "))
        .map(str::to_string)
        .collect()
}

/// Undoes on drop what the plugins and the test made on the host, also when the test fails half-way.
struct HostCleanup {
    chains_before: Vec<(&'static str, BTreeSet<String>)>,
    uids: Vec<String>,
    state_dir: PathBuf,
    servers: Vec<Child>,
}

impl HostCleanup {
    fn new(state_dir: &Path) -> Self {
        assert!(
            run("id", &["-u"]).trim() == "0",
            "the sandbox tests need root (namespaces, bridges, iptables)"
        );
        let bridge_exists = Command::new("ip")
            .args(["link", "show", BRIDGE])
            .output()
            .unwrap();
        assert!(
            !bridge_exists.status.success(),
            "bridge {BRIDGE} already exists: a previous run left it (ip link delete {BRIDGE})"
        );
        Self {
            chains_before: ["nat", "filter"]
                .into_iter()
                .map(|table| (table, iptables_chains(table)))
                .collect(),
            uids: Vec::new(),
            state_dir: state_dir.to_path_buf(),
            servers: Vec::new(),
        }
    }
}

/// Removes one pod's namespaces on drop.
struct PodNamespacesCleanup {
    uid: String,
    state_dir: PathBuf,
}

impl Drop for PodNamespacesCleanup {
    fn drop(&mut self) {
        let uid = &self.uid;
        let _ = Command::new("ip")
            .args(["netns", "delete", &format!("fk-{uid}")])
            .output();
        for ns in ["ipc", "uts"] {
            let _ = Command::new("umount")
                .arg(self.state_dir.join(uid).join(ns))
                .output();
        }
    }
}

impl Drop for HostCleanup {
    fn drop(&mut self) {
        for server in &mut self.servers {
            let _ = server.kill();
            let _ = server.wait();
        }
        for uid in &self.uids {
            drop(PodNamespacesCleanup {
                uid: uid.clone(),
                state_dir: self.state_dir.clone(),
            });
        }
        let _ = Command::new("ip").args(["link", "delete", BRIDGE]).output();
        for (table, before) in &self.chains_before {
            let created: Vec<String> = iptables_chains(table)
                .into_iter()
                .filter(|chain| chain.starts_with("CNI-") && !before.contains(chain))
                .collect();
            let rules = Command::new("iptables")
                .args(["-t", table, "-S"])
                .output()
                .unwrap();
            for rule in String::from_utf8_lossy(&rules.stdout).lines() {
                let jumps_to_created = created.iter().any(|c| rule.ends_with(&format!("-j {c}")));
                if let (Some(rest), true) = (rule.strip_prefix("-A "), jumps_to_created) {
                    // iptables -S quotes comments; the shell parses them back.
                    let _ = Command::new("sh")
                        .args(["-c", &format!("iptables -t {table} -D {rest}")])
                        .output();
                }
            }
            for chain in &created {
                let _ = Command::new("iptables")
                    .args(["-t", table, "-F", chain])
                    .output();
            }
            for chain in &created {
                let _ = Command::new("iptables")
                    .args(["-t", table, "-X", chain])
                    .output();
            }
        }
    }
}

fn request(uid: &str, name: &str, hostname: &str, ports: Vec<PortMapping>) -> SandboxRequest {
    SandboxRequest {
        uid: uid.to_string(),
        namespace: "sandbox-test".to_string(),
        name: name.to_string(),
        hostname: hostname.to_string(),
        host_network: false,
        port_mappings: ports,
    }
}

fn ipv4(status: &SandboxStatus) -> Ipv4Addr {
    assert_eq!(status.ips.len(), 1, "{status:?}");
    match status.ips[0] {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(ip) => panic!("expected an IPv4 pod IP, got {ip}"),
    }
}

fn nsenter(flag: &str, path: &Path, command: &[&str]) -> String {
    let mut args = vec![format!("--{flag}={}", path.display())];
    args.extend(command.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run("nsenter", &args)
}

/// host-local's allocations: one file per allocated IP, named by the IP.
fn allocated(ipam: &Path) -> BTreeSet<String> {
    match std::fs::read_dir(ipam.join(NETWORK)) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.parse::<IpAddr>().is_ok())
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

/// Retries `attempt` for up to 15 s (a server just started may not listen yet).
fn within<T>(what: &str, mut attempt: impl FnMut() -> Result<T, String>) -> T {
    let started = Instant::now();
    loop {
        match attempt() {
            Ok(value) => return value,
            Err(error) if started.elapsed() > Duration::from_secs(15) => {
                panic!("{what}: {error}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn http_get(address: &str) -> Result<String, String> {
    let mut stream = TcpStream::connect_timeout(&address.parse().unwrap(), Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    write!(stream, "GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n").map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    Ok(response)
}

#[tokio::test]
async fn sandboxes_get_pod_ips_reach_each_other_publish_host_ports_and_are_removed_completely() {
    let temp = tempfile::tempdir().unwrap();
    let (conf, state) = (temp.path().join("net.d"), temp.path().join("sandboxes"));
    std::fs::create_dir_all(&conf).unwrap();
    let mut cleanup = HostCleanup::new(&state);
    let bins = CNI_BIN_DIRS.map(PathBuf::from).to_vec();
    let sandbox = Sandbox::new(&conf, bins, &state);

    assert_eq!(sandbox.network_ready(), Err(NETWORK_NOT_READY.to_string()));
    write_bridge_conflist(&conf, BRIDGE, CIDR).unwrap();
    assert_eq!(sandbox.network_ready(), Ok(()));

    let pid = std::process::id();
    let (uid_a, uid_b) = (format!("sbx-a-{pid}"), format!("sbx-b-{pid}"));
    cleanup.uids = vec![uid_a.clone(), uid_b.clone()];
    let port = PortMapping {
        host_port: HOST_PORT,
        container_port: CONTAINER_PORT,
        protocol: Protocol::Tcp,
        host_ip: None,
    };
    let pod_a = request(&uid_a, "pod-a", "", vec![]);
    let pod_b = request(&uid_b, "pod-b", "web-b", vec![port]);
    let a = sandbox.ensure(&pod_a).await.unwrap();
    let b = sandbox.ensure(&pod_b).await.unwrap();

    // Distinct IPs in the CIDR (the bridge takes .1 as the gateway).
    let (ip_a, ip_b) = (ipv4(&a), ipv4(&b));
    assert_ne!(ip_a, ip_b);
    for ip in [ip_a, ip_b] {
        assert_eq!(ip.octets()[..3], [10, 250, 0], "{ip} is not in {CIDR}");
        assert_ne!(ip.octets()[3], 1, "{ip} is the gateway");
    }
    let netns_a = a.netns_path.clone().unwrap();
    assert_eq!(netns_a, PathBuf::from(format!("/run/netns/fk-{uid_a}")));

    // Inside A: eth0 holds A's IP, lo is up.
    let eth0 = nsenter("net", &netns_a, &["ip", "-4", "-o", "addr", "show", "eth0"]);
    assert!(eth0.contains(&format!("inet {ip_a}/24")), "{eth0}");
    let lo = nsenter("net", &netns_a, &["ip", "-o", "link", "show", "lo"]);
    assert!(lo.contains(",UP"), "lo is not up in the pod's netns: {lo}");

    // UTS: the pod name unless spec.hostname is set. IPC: a namespace of the pod's own.
    let uts_a = a.uts_path.clone().unwrap();
    assert_eq!(nsenter("uts", &uts_a, &["hostname"]).trim(), "pod-a");
    assert_eq!(
        nsenter("uts", b.uts_path.as_ref().unwrap(), &["hostname"]).trim(),
        "web-b"
    );
    let host_ipc = std::fs::read_link("/proc/self/ns/ipc").unwrap();
    let ipc_a = nsenter(
        "ipc",
        a.ipc_path.as_ref().unwrap(),
        &["readlink", "/proc/self/ns/ipc"],
    );
    let ipc_b = nsenter(
        "ipc",
        b.ipc_path.as_ref().unwrap(),
        &["readlink", "/proc/self/ns/ipc"],
    );
    assert_ne!(ipc_a.trim(), host_ipc.to_str().unwrap());
    assert_ne!(ipc_a, ipc_b);

    // A reaches an HTTP server in B over the bridge.
    let www = temp.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), PAGE).unwrap();
    let netns_b = b.netns_path.clone().unwrap();
    let server = Command::new("nsenter")
        .arg(format!("--net={}", netns_b.display()))
        .args([
            "busybox",
            "httpd",
            "-f",
            "-p",
            &CONTAINER_PORT.to_string(),
            "-h",
        ])
        .arg(&www)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    cleanup.servers.push(server);
    // busybox's wget crashes here after a successful fetch; its nc speaks HTTP/1.0 well enough.
    let page = within("A fetching B's page", || {
        let mut client = Command::new("nsenter")
            .arg(format!("--net={}", netns_a.display()))
            .args([
                "busybox",
                "nc",
                "-w",
                "2",
                &ip_b.to_string(),
                &CONTAINER_PORT.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        let mut stdin = client.stdin.take().unwrap();
        write!(stdin, "GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n").map_err(|e| e.to_string())?;
        drop(stdin);
        let output = client.wait_with_output().map_err(|e| e.to_string())?;
        let response = String::from_utf8_lossy(&output.stdout).into_owned();
        if response.starts_with("HTTP/1.1 200") {
            Ok(response)
        } else {
            Err(format!(
                "{response}{}",
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    });
    assert!(page.ends_with(PAGE), "{page}");

    // hostPort: portmap DNATs the node's port to B (127.0.0.1 works: snat with route_localnet on the bridge).
    let response = within("the hostPort on 127.0.0.1", || {
        http_get(&format!("127.0.0.1:{HOST_PORT}"))
    });
    assert!(response.ends_with(PAGE), "{response}");

    // A second ensure is answered from the record: same status, no new allocation.
    let ipam = ipam_data_dir(&conf);
    let before = allocated(&ipam);
    assert_eq!(before, BTreeSet::from([ip_a.to_string(), ip_b.to_string()]));
    assert_eq!(sandbox.ensure(&pod_a).await.unwrap(), a);
    assert_eq!(allocated(&ipam), before);
    // So is a restarted kubelet's, from the state on disk.
    let restarted = Sandbox::new(&conf, CNI_BIN_DIRS.map(PathBuf::from).to_vec(), &state);
    assert_eq!(restarted.ensure(&pod_b).await.unwrap(), b);
    assert_eq!(allocated(&ipam), before);
    assert_eq!(sandbox.list(), {
        let mut uids = vec![uid_a.clone(), uid_b.clone()];
        uids.sort();
        uids
    });

    // Removing A frees its IP and its namespaces; removing it again is fine.
    sandbox.remove(&uid_a).await.unwrap();
    assert_eq!(allocated(&ipam), BTreeSet::from([ip_b.to_string()]));
    assert!(!netns_a.exists(), "{} is left", netns_a.display());
    assert!(!uts_a.exists(), "{} is left", uts_a.display());
    assert!(!state.join(&uid_a).exists());
    assert_eq!(sandbox.list(), vec![uid_b.clone()]);
    sandbox.remove(&uid_a).await.unwrap();

    // Removing B also takes its hostPort rules away.
    for server in &mut cleanup.servers {
        let _ = server.kill();
        let _ = server.wait();
    }
    cleanup.servers.clear();
    sandbox.remove(&uid_b).await.unwrap();
    assert!(allocated(&ipam).is_empty());
    assert!(!netns_b.exists());
    let nat = run("iptables", &["-t", "nat", "-S"]);
    assert!(!nat.contains(&format!("--dport {HOST_PORT}")), "{nat}");
    assert!(sandbox.list().is_empty());
}

#[tokio::test]
async fn a_broken_or_missing_plugin_is_reported_with_the_pod_and_leaves_nothing() {
    let temp = tempfile::tempdir().unwrap();
    let (conf, state) = (temp.path().join("net.d"), temp.path().join("sandboxes"));
    std::fs::create_dir_all(&conf).unwrap();
    // No bridge is made: the list's only plugin does not exist.
    std::fs::write(
        conf.join("10-missing.conflist"),
        r#"{"cniVersion":"1.0.0","name":"missing","plugins":[{"type":"fk-no-such-plugin"}]}"#,
    )
    .unwrap();
    let uid = format!("sbx-missing-{}", std::process::id());
    // Only this pod's namespaces can be left here; the other test owns the bridge and iptables.
    let _cleanup = PodNamespacesCleanup {
        uid: uid.clone(),
        state_dir: state.clone(),
    };
    let sandbox = Sandbox::new(&conf, CNI_BIN_DIRS.map(PathBuf::from).to_vec(), &state);
    let error = sandbox
        .ensure(&request(&uid, "pod-m", "", vec![]))
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("failed to find plugin \"fk-no-such-plugin\""),
        "{error}"
    );
    // Retrying fails the same way: the incomplete sandbox's own DEL failing does not hide the cause.
    let again = sandbox
        .ensure(&request(&uid, "pod-m", "", vec![]))
        .await
        .unwrap_err();
    assert_eq!(again.to_string(), error.to_string());
    assert!(error.to_string().contains("sandbox-test/pod-m"), "{error}");
    sandbox.remove(&uid).await.unwrap();
    assert!(!Path::new(&format!("/run/netns/fk-{uid}")).exists());
    assert!(sandbox.list().is_empty());
}

#[test]
fn the_conflist_version_is_one_the_installed_plugins_support() {
    for plugin in ["bridge", "host-local", "portmap"] {
        let binary = CNI_BIN_DIRS
            .iter()
            .map(|dir| Path::new(dir).join(plugin))
            .find(|path| path.is_file())
            .unwrap_or_else(|| panic!("CNI plugin {plugin} is not installed (hack/deps.sh)"));
        let output = Command::new(&binary)
            .env("CNI_COMMAND", "VERSION")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let info: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let supported = info["supportedVersions"].as_array().unwrap();
        assert!(
            supported
                .iter()
                .any(|v| v == ferrokube_cluster::cni::CNI_VERSION),
            "{plugin} supports {supported:?}"
        );
    }
}
