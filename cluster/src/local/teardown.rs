//! Removing everything a local cluster made, whether it stopped cleanly or was killed: its processes, the
//! containers its containerds ran, the pods' network namespaces and CNI attachments (so the portmap and
//! masquerade rules go too), kube-proxy's iptables rules, the pods' cgroups, its links, mounts and state.
//! Every step is idempotent, so `ferrokube down` may run any number of times.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferrokube_kubelet::sandbox::Sandbox;

use super::layout::Layout;
use super::lock::HostLock;
use super::network;
use super::record::RunRecord;
use crate::cleanup::stop_pid;
use crate::process::is_alive;
use crate::{containerd, sys};

/// Where CNI plugin binaries are looked for, as the kubelet's default.
pub const CNI_BIN_DIRS: [&str; 2] = ["/opt/cni/bin", "/usr/lib/cni"];

/// How long `ferrokube up` gets to stop by itself before it is killed.
const UP_GRACE: Duration = Duration::from_secs(60);

/// What a teardown removed, for the user.
#[derive(Debug, Default)]
pub struct Removed {
    /// Processes stopped.
    pub processes: usize,
    /// Pod sandboxes released.
    pub sandboxes: usize,
    /// Network links deleted.
    pub links: Vec<String>,
    /// Problems met on the way; teardown goes on past each.
    pub problems: Vec<String>,
}

/// Stops a running `ferrokube up` of `layout` (it cleans up after itself), then removes whatever is left.
pub async fn down(layout: &Layout) -> Removed {
    let mut removed = Removed::default();
    if let Ok(Some(record)) = RunRecord::load(&layout.record()) {
        if record.is_running() {
            stop_pid(record.pid, UP_GRACE);
            removed.processes += 1;
        }
        for pid in record.components.iter().filter_map(|c| c.pid) {
            if is_alive(pid) && stop_pid(pid, Duration::from_secs(10)) {
                removed.processes += 1;
            }
        }
    }
    // The control plane's directory of a killed `up` (the next control plane would sweep it too).
    crate::cleanup::sweep_stale_dirs(&std::env::temp_dir());
    match HostLock::acquire(layout.home()) {
        Ok(_lock) => clean_up(layout, &mut removed).await,
        Err(e) => removed.problems.push(format!(
            "{e}; left the host's network and that cluster alone"
        )),
    }
    removed
}

/// Removes what the cluster's nodes and network left, once its processes are gone.
pub async fn clean_up(layout: &Layout, removed: &mut Removed) {
    for node in node_dirs(&layout.nodes()) {
        let node = layout.node(&node);
        containerd::kill_shims(&containerd::socket_path(&node.containerd()));
        let bin_dirs = CNI_BIN_DIRS.iter().map(PathBuf::from).collect();
        let sandbox = Sandbox::new(node.cni(), bin_dirs, node.sandboxes());
        for uid in sandbox.list() {
            match sandbox.remove(&uid).await {
                Ok(()) => removed.sandboxes += 1,
                Err(e) => removed.problems.push(format!("pod {uid}: {e}")),
            }
            if let Err(e) = ferrokube_kubelet::cgroups::remove_pod(&uid) {
                removed.problems.push(e.to_string());
            }
        }
    }
    if let Err(e) = crate::kube_proxy::cleanup() {
        removed.problems.push(e.to_string());
    }
    removed.links = network::remove_links();
    let nodes = layout.nodes();
    sys::detach_mounts_under(&nodes);
    match std::fs::remove_dir_all(&nodes) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => removed.problems.push(format!("{}: {e}", nodes.display())),
    }
    let _ = std::fs::remove_file(layout.record());
    let _ = std::fs::remove_file(layout.kubeconfig());
}

/// The node names that have a directory under `nodes`.
fn node_dirs(nodes: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(nodes) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect()
}
