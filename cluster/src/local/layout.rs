//! Where a local cluster keeps its files under `$FERROKUBE_HOME`: the kubeconfig, the run record, one log
//! per component, and each node's containerd, kubelet and CNI state. Fixed names, so `ferrokube down` and
//! `ferrokube logs` find them without the cluster running.

use std::path::{Path, PathBuf};

/// The files of the cluster whose home is `home`.
#[derive(Clone, Debug)]
pub struct Layout {
    home: PathBuf,
}

impl Layout {
    /// The layout under `home`.
    pub fn new(home: &Path) -> Self {
        Self {
            home: home.to_path_buf(),
        }
    }

    /// `$FERROKUBE_HOME` itself.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The admin kubeconfig users point KUBECONFIG at.
    pub fn kubeconfig(&self) -> PathBuf {
        self.home.join("kubeconfig")
    }

    /// The run record (see `record`); present while a cluster runs or after one crashed.
    pub fn record(&self) -> PathBuf {
        self.home.join("up.json")
    }

    /// The components' logs; kept after the cluster stops, for a look at what happened.
    pub fn logs(&self) -> PathBuf {
        self.home.join("logs")
    }

    /// A component's log file.
    pub fn log(&self, component: &str) -> PathBuf {
        self.logs().join(format!("{component}.log"))
    }

    /// What the nodes keep; removed by `down`.
    pub fn nodes(&self) -> PathBuf {
        self.home.join("nodes")
    }

    /// Node `name`'s files.
    pub fn node(&self, name: &str) -> NodeLayout {
        NodeLayout {
            dir: self.nodes().join(name),
        }
    }
}

/// One node's files.
#[derive(Clone, Debug)]
pub struct NodeLayout {
    dir: PathBuf,
}

impl NodeLayout {
    /// Everything of the node.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its containerd's root, state and socket.
    pub fn containerd(&self) -> PathBuf {
        self.dir.join("containerd")
    }

    /// The kubelet's --root-dir.
    pub fn kubelet_root(&self) -> PathBuf {
        self.dir.join("kubelet")
    }

    /// Where the kubelet keeps its pod sandboxes' state (what CNI DEL needs).
    pub fn sandboxes(&self) -> PathBuf {
        self.kubelet_root().join("sandboxes")
    }

    /// The CNI configuration directory (host-local's allocations are below it).
    pub fn cni(&self) -> PathBuf {
        self.dir.join("cni")
    }

    /// The kubelet's --pod-logs-dir.
    pub fn pod_logs(&self) -> PathBuf {
        self.dir.join("pod-logs")
    }
}
