//! Starting ferrokube-kubelet against the shared control plane.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferrokube_cluster::Identity;
pub use ferrokube_cluster::binary_image::TESTSERVER_IMAGE;
use ferrokube_cluster::binary_image::import_binary_image;
use ferrokube_cluster::cni::write_bridge_conflist;
use ferrokube_cluster::containerd::Containerd;
use ferrokube_cluster::control_plane::free_port;
use ferrokube_cluster::images::import_busybox;
use ferrokube_cluster::testing::shared_control_plane;
use ferrokube_kubelet::kuberuntime::record::LABEL_POD_UID;
use ferrokube_kubelet::runtime::Runtime;
use k8s_openapi::api::core::v1::{ContainerStatus, Node, Pod};
use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use kube::{Api, Client};

use crate::ComponentProcess;
use crate::scheduling::eventually;

/// Starts ferrokube-kubelet as `node` (its credentials are made by the harness for the test nodes), with
/// its own root directory, the healthz server off, and `args` added. Its server listens on a free port
/// (unless `args` has `--port=`) with the serving certificate the cluster CA signed for `node` (self-signed for other names), and
/// authenticates and authorizes as a kubeadm node's kubelet: client certificates from the cluster CA,
/// tokens by TokenReview, SubjectAccessReview, no anonymous requests.
pub fn start_kubelet(node: &str, args: &[&str]) -> ComponentProcess {
    let control_plane = shared_control_plane();
    let root = control_plane.dir().join(format!("kubelet-{node}"));
    std::fs::create_dir_all(&root).unwrap();
    let mut all = vec![
        format!("--hostname-override={node}"),
        format!("--root-dir={}", root.display()),
        "--healthz-port=0".to_string(),
        format!("--cert-dir={}", root.join("pki").display()),
        format!("--client-ca-file={}", control_plane.pki().ca_cert.display()),
        "--anonymous-auth=false".to_string(),
        "--authentication-token-webhook=true".to_string(),
        "--authorization-mode=Webhook".to_string(),
    ];
    if !args.iter().any(|a| a.starts_with("--port=")) {
        all.push(format!("--port={}", free_port().unwrap()));
    }
    if let Some((cert, key)) = control_plane.kubelet_serving(node) {
        all.push(format!("--tls-cert-file={}", cert.display()));
        all.push(format!("--tls-private-key-file={}", key.display()));
    }
    all.extend(args.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    ComponentProcess::spawn(
        "ferrokube-kubelet",
        &Identity::node(node),
        &format!("kubelet-{node}"),
        &all,
    )
}

/// A node with real pods: a containerd of its own holding the busybox image, a CNI bridge network, and a
/// ferrokube-kubelet that is Ready. Dropping it stops the kubelet and containerd and removes the bridge.
pub struct TestNode {
    /// The kubelet.
    pub kubelet: ComponentProcess,
    /// Its containerd.
    pub containerd: Containerd,
    /// The kubelet's podLogsDir.
    pub logs: PathBuf,
    /// The kubelet's root directory.
    pub root: PathBuf,
    /// The CNI configuration directory (host-local keeps its allocations below it).
    pub cni_dir: PathBuf,
    name: String,
    args: Vec<String>,
    _bridge: BridgeGuard,
}

/// Deletes the bridge the CNI plugin made, whatever the test's outcome.
struct BridgeGuard(String);

impl Drop for BridgeGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.0])
            .status();
    }
}

impl TestNode {
    /// Starts node `name` with pods on bridge `bridge` in `pod_cidr` (distinct per test binary, as the
    /// binaries' bridges live on the same host), `args` added to the kubelet's, and waits until it is Ready.
    pub async fn start(name: &str, bridge: &str, pod_cidr: &str, args: &[&str]) -> Self {
        let bridge_guard = BridgeGuard(bridge.to_string());
        let dir = shared_control_plane().dir().join(format!("node-{name}"));
        std::fs::create_dir_all(dir.join("containerd")).unwrap();
        let containerd = Containerd::start(&dir.join("containerd")).unwrap();
        import_busybox(containerd.socket()).unwrap();
        let cni_dir = dir.join("cni");
        write_bridge_conflist(&cni_dir, bridge, pod_cidr).unwrap();
        let logs = dir.join("logs");
        let mut all = vec![
            format!(
                "--container-runtime-endpoint=unix://{}",
                containerd.socket().display()
            ),
            format!("--cni-conf-dir={}", cni_dir.display()),
            format!("--pod-logs-dir={}", logs.display()),
            "--node-status-update-frequency=1s".to_string(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        let kubelet_args = all.clone();
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let kubelet = start_kubelet(name, &all);
        let admin = shared_control_plane()
            .client(&Identity::admin())
            .await
            .unwrap();
        let nodes: Api<Node> = Api::all(admin);
        eventually(
            Duration::from_secs(60),
            &format!("{name} to be Ready"),
            || async {
                let node = nodes.get_opt(name).await.ok().flatten()?;
                let conditions = node.status?.conditions?;
                conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
                    .then_some(())
            },
        )
        .await;
        Self {
            kubelet,
            containerd,
            logs,
            root: shared_control_plane().dir().join(format!("kubelet-{name}")),
            cni_dir,
            name: name.to_string(),
            args: kubelet_args,
            _bridge: bridge_guard,
        }
    }

    /// Imports the test server image ([`TESTSERVER_IMAGE`]: HTTP, TCP and gRPC health endpoints) into the
    /// node's containerd, from the workspace's `testserver` binary.
    pub fn import_testserver(&self) {
        import_binary_image(
            self.containerd.socket(),
            TESTSERVER_IMAGE,
            &crate::binary("testserver"),
        )
        .unwrap();
    }

    /// The CRI log file of attempt 0 of `container` of `pod`.
    pub fn log_file(&self, pod: &Pod, container: &str) -> PathBuf {
        self.logs
            .join(format!(
                "{}_{}_{}",
                pod.metadata.namespace.as_deref().unwrap(),
                pod.metadata.name.as_deref().unwrap(),
                pod.metadata.uid.as_deref().unwrap()
            ))
            .join(container)
            .join("0.log")
    }

    /// Kills the kubelet with SIGKILL, as a crash: it cleans nothing up.
    pub fn kill_kubelet(&mut self) {
        let pid = self.kubelet.process.pid().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap();
        assert!(killed.success(), "kill -KILL {pid}");
        // Reaps it (it is gone already).
        self.kubelet.process.stop(Duration::from_secs(5));
    }

    /// Starts a new kubelet with the same arguments (after [`TestNode::kill_kubelet`]).
    pub fn start_kubelet_again(&mut self) {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        self.kubelet = start_kubelet(&self.name, &args);
    }

    /// `ctr -n k8s.io ARGS` against the node's containerd; its stdout.
    pub fn ctr(&self, args: &[&str]) -> String {
        let output = std::process::Command::new("ctr")
            .arg("--address")
            .arg(self.containerd.socket())
            .args(["-n", "k8s.io"])
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "ctr {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The containers containerd holds for pod `uid`.
    pub async fn containers_of(&self, uid: &str) -> Vec<String> {
        let runtime = Runtime::connect(self.containerd.socket()).await.unwrap();
        runtime
            .list_containers()
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.labels.get(LABEL_POD_UID).map(String::as_str) == Some(uid))
            .map(|c| c.id)
            .collect()
    }

    /// What the node still holds for pod `uid`: containers, netns, sandbox state, pod directory, mounts,
    /// cgroups and logs; each as a line saying what it is. Empty once the pod is cleaned up.
    pub async fn leftovers_of(&self, uid: &str) -> Vec<String> {
        let mut left: Vec<String> = self
            .containers_of(uid)
            .await
            .into_iter()
            .map(|id| format!("container {id}"))
            .collect();
        let paths = [
            PathBuf::from(format!("/run/netns/fk-{uid}")),
            self.root.join("pods").join(uid),
            self.root.join("sandboxes").join(uid),
        ];
        left.extend(
            paths
                .iter()
                .filter(|p| p.exists())
                .map(|p| p.display().to_string()),
        );
        left.extend(
            mount_points()
                .into_iter()
                .filter(|m| m.contains(uid))
                .map(|m| format!("mount {m}")),
        );
        left.extend(pod_cgroups(uid));
        let suffix = format!("_{uid}");
        for entry in std::fs::read_dir(&self.logs)
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry.file_name().to_string_lossy().ends_with(&suffix) {
                left.push(format!("logs {}", entry.path().display()));
            }
        }
        left
    }

    /// What the node holds for any pod: tasks, containers, containers' snapshots, host-local IP
    /// allocations and mounts under the kubelet's root. Empty when no pod is left on the node.
    pub fn leftovers(&self) -> Vec<String> {
        let mut left: Vec<String> = Vec::new();
        for id in self.ctr(&["tasks", "list", "-q"]).lines() {
            left.push(format!("task {id}"));
        }
        for id in self.ctr(&["containers", "list", "-q"]).lines() {
            left.push(format!("container {id}"));
        }
        // Image layers are committed snapshots; a container's is the active one on top.
        for line in self.ctr(&["snapshots", "list"]).lines().skip(1) {
            if line.split_whitespace().last() == Some("Active") {
                left.push(format!("snapshot {line}"));
            }
        }
        let ipam = ferrokube_cluster::cni::ipam_data_dir(&self.cni_dir)
            .join(ferrokube_cluster::cni::NETWORK);
        for entry in std::fs::read_dir(&ipam).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.parse::<std::net::IpAddr>().is_ok() {
                left.push(format!("IP allocation {name}"));
            }
        }
        let root = self
            .root
            .canonicalize()
            .unwrap_or_else(|_| self.root.clone());
        for mount in mount_points() {
            if Path::new(&mount).starts_with(&root) {
                left.push(format!("mount {mount}"));
            }
        }
        left
    }
}

/// The mount points of /proc/self/mountinfo (as written there, octal escapes kept).
fn mount_points() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|line| line.split(' ').nth(4).map(str::to_string))
        .collect()
}

/// Pod `uid`'s cgroups in any hierarchy and QoS level.
fn pod_cgroups(uid: &str) -> Vec<String> {
    let mut found = Vec::new();
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let kubepods = hierarchy.path().join("kubepods");
        for qos in std::fs::read_dir(&kubepods).into_iter().flatten().flatten() {
            let pod = qos.path().join(format!("pod{uid}"));
            if pod.exists() {
                found.push(format!("cgroup {}", pod.display()));
            }
        }
    }
    found
}

/// Waits up to `limit` until `pods` lists none (the kubelet has stopped them and deleted their objects).
pub async fn every_pod_gone(pods: &Api<Pod>, limit: Duration) {
    eventually(limit, "every pod to be gone", || async {
        pods.list(&ListParams::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await;
}

/// The status of the pod's first container.
pub fn main_status(pod: &Pod) -> Option<ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .first()
        .cloned()
}

/// The reasons of the events about object `name` in `namespace`.
pub async fn event_reasons(client: &Client, namespace: &str, name: &str) -> Vec<String> {
    events_about(client, namespace, name)
        .await
        .into_iter()
        .filter_map(|e| e.reason)
        .collect()
}

/// Waits up to 15 s until the events about `name` include every reason in `wanted`, and returns all their
/// reasons: events are written asynchronously (as upstream's broadcaster does), so one may land after the
/// state it describes is already visible.
pub async fn wait_event_reasons(
    client: &Client,
    namespace: &str,
    name: &str,
    wanted: &[&str],
) -> Vec<String> {
    let what = format!("events {wanted:?} about {namespace}/{name}");
    eventually(Duration::from_secs(15), &what, || async {
        let reasons = event_reasons(client, namespace, name).await;
        wanted
            .iter()
            .all(|w| reasons.iter().any(|r| r == w))
            .then_some(reasons)
    })
    .await
}

/// The events (events.k8s.io) about object `name` in `namespace`.
pub async fn events_about(client: &Client, namespace: &str, name: &str) -> Vec<Event> {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    let list = events.list(&ListParams::default()).await.unwrap();
    list.items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .collect()
}

/// A client that talks to `node`'s kubelet server directly (its InternalIP and daemon endpoint port),
/// trusting the cluster CA, with the admin kubeconfig's credentials replaced by `auth`.
pub async fn direct_kubelet_client(node: &Node, auth: kube::config::AuthInfo) -> Client {
    let status = node.status.as_ref().expect("node status");
    let ip = status
        .addresses
        .iter()
        .flatten()
        .find(|a| a.type_ == "InternalIP")
        .expect("an InternalIP")
        .address
        .clone();
    let port = status
        .daemon_endpoints
        .as_ref()
        .and_then(|d| d.kubelet_endpoint.as_ref())
        .expect("the kubelet endpoint")
        .port;
    let kubeconfig =
        kube::config::Kubeconfig::read_from(shared_control_plane().admin_kubeconfig()).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    config.cluster_url = format!("https://{ip}:{port}").parse().unwrap();
    config.auth_info = auth;
    Client::try_from(config).unwrap()
}

/// The admin's client certificate, as a kubeconfig user.
pub fn admin_auth_info() -> kube::config::AuthInfo {
    let kubeconfig =
        kube::config::Kubeconfig::read_from(shared_control_plane().admin_kubeconfig()).unwrap();
    kubeconfig.auth_infos[0].auth_info.clone().unwrap()
}
