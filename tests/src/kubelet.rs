//! Starting ferrokube-kubelet against the shared control plane.

use std::path::PathBuf;
use std::time::Duration;

use ferrokube_cluster::Identity;
pub use ferrokube_cluster::binary_image::TESTSERVER_IMAGE;
use ferrokube_cluster::binary_image::import_binary_image;
use ferrokube_cluster::cni::write_bridge_conflist;
use ferrokube_cluster::containerd::Containerd;
use ferrokube_cluster::images::import_busybox;
use ferrokube_cluster::testing::shared_control_plane;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::events::v1::Event;
use kube::api::ListParams;
use kube::{Api, Client};

use crate::ComponentProcess;
use crate::scheduling::eventually;

/// Starts ferrokube-kubelet as `node` (its credentials are made by the harness for the test nodes), with
/// its own root directory, the healthz server off, and `args` added.
pub fn start_kubelet(node: &str, args: &[&str]) -> ComponentProcess {
    let root = shared_control_plane().dir().join(format!("kubelet-{node}"));
    std::fs::create_dir_all(&root).unwrap();
    let mut all = vec![
        format!("--hostname-override={node}"),
        format!("--root-dir={}", root.display()),
        "--healthz-port=0".to_string(),
    ];
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
