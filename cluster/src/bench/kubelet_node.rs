//! The node a kubelet benchmark runs its pods on: a containerd of its own holding the busybox image (with the
//! CRI plugin and a locally built pause image for upstream's kubelet), a CNI bridge network, and the kubelet
//! under test as a process. Dropping it stops the kubelet, then containerd and its containers, then removes
//! the bridge, upstream's cgroup root and mounts, and puts back the kernel settings upstream's kubelet changed.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use super::Implementation;
use crate::cni::write_bridge_conflist;
use crate::containerd::{Containerd, CriSettings};
use crate::images::{PAUSE_IMAGE, import_busybox, import_pause};
use crate::process::ManagedProcess;

/// The bridge the benchmark's pods are attached to (the kubelet e2e tests use fk-pods0, fk-vol0, fk-sbx0).
pub const BRIDGE: &str = "fk-bench0";
/// The benchmark's pod network (the e2e tests use 10.251.0.0/24 and 10.252.0.0/24).
pub const POD_CIDR: &str = "10.253.0.0/24";
/// Both kubelets' max-pods: above the 130 pods the benchmark runs at once (upstream's default is 110).
pub const MAX_PODS: u32 = 250;
/// The cgroup upstream's kubelet puts its QoS hierarchy under. Not `/`: ferrokube-kubelet's pods (of other
/// tests on this host) live in `/kubepods`, and upstream's kubelet kills the processes of pod cgroups there
/// that it does not know.
pub const UPSTREAM_CGROUP_ROOT: &str = "fk-bench-upstream";
/// Where the distribution's CNI plugins are (Debian's containernetworking-plugins).
pub const CNI_BIN_DIR: &str = "/usr/lib/cni";

/// The sysctls upstream's kubelet sets when `protectKernelDefaults` is false (the default), as its
/// `setupKernelTunables`; the benchmark puts the host's values back afterwards.
pub const KERNEL_TUNABLES: [&str; 6] = [
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
];

/// What a node is started with.
#[derive(Clone, Debug)]
pub struct NodeSpec<'a> {
    pub implementation: Implementation,
    /// The kubelet binary.
    pub binary: &'a Path,
    /// The node's name; the control plane made credentials for it.
    pub name: &'a str,
    /// The node identity's kubeconfig.
    pub kubeconfig: &'a Path,
    /// A fresh directory for containerd, CNI, the kubelet's root and pod logs.
    pub dir: &'a Path,
    /// Where the kubelet's output and (for upstream) its configuration go.
    pub out: &'a Path,
}

/// A running node: fields drop in order, the kubelet first.
pub struct BenchNode {
    kubelet: ManagedProcess,
    containerd: Containerd,
    _cleanup: HostCleanup,
}

impl BenchNode {
    /// Prepares containerd, images and network for `spec.implementation` and starts its kubelet.
    pub fn start(spec: &NodeSpec<'_>) -> anyhow::Result<Self> {
        let name = spec.implementation.name();
        let mut cleanup = HostCleanup {
            bridge: BRIDGE.to_string(),
            dir: spec.dir.to_path_buf(),
            cgroups: Vec::new(),
            tunables: Vec::new(),
        };
        let cni_dir = spec.dir.join("cni");
        write_bridge_conflist(&cni_dir, BRIDGE, POD_CIDR).context("writing the CNI conflist")?;
        let containerd_dir = spec.dir.join("containerd");
        std::fs::create_dir_all(&containerd_dir)
            .with_context(|| format!("creating {}", containerd_dir.display()))?;
        let root = spec.dir.join("kubelet");
        let logs = spec.dir.join("pod-logs");
        for dir in [&root, &logs] {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let log = spec.out.join(format!("{name}-kubelet.log"));
        let (containerd, command) = match spec.implementation {
            Implementation::Ferrokube => {
                let containerd =
                    Containerd::start(&containerd_dir).context("starting containerd")?;
                import_busybox(containerd.socket()).context("importing the busybox image")?;
                let mut command = Command::new(spec.binary);
                command.args(ferrokube_args(
                    spec.name,
                    spec.kubeconfig,
                    containerd.socket(),
                    &cni_dir,
                    &root,
                    &logs,
                    free_port()?,
                ));
                (containerd, command)
            }
            Implementation::Upstream => {
                let cri = CriSettings {
                    sandbox_image: PAUSE_IMAGE.to_string(),
                    cni_bin_dir: CNI_BIN_DIR.into(),
                    cni_conf_dir: cni_dir.clone(),
                };
                let containerd = Containerd::start_cri(&containerd_dir, &cri)
                    .context("starting containerd with its CRI plugin")?;
                import_busybox(containerd.socket()).context("importing the busybox image")?;
                import_pause(containerd.socket())
                    .context("building and importing the pause image")?;
                cleanup.cgroups = make_cgroup_root(UPSTREAM_CGROUP_ROOT)?;
                cleanup.tunables = read_tunables();
                let config_path = spec.out.join("upstream-kubelet-config.yaml");
                let config = upstream_config(&UpstreamConfig {
                    endpoint: containerd.socket(),
                    port: free_port()?,
                    pod_logs: &logs,
                });
                std::fs::write(&config_path, config)
                    .with_context(|| format!("writing {}", config_path.display()))?;
                let mut command = Command::new(spec.binary);
                command.args(upstream_args(
                    spec.name,
                    spec.kubeconfig,
                    &config_path,
                    &root,
                ));
                (containerd, command)
            }
        };
        let kubelet = ManagedProcess::spawn(&format!("{name} kubelet"), command, &log)
            .with_context(|| format!("starting {}", spec.binary.display()))?;
        Ok(Self {
            kubelet,
            containerd,
            _cleanup: cleanup,
        })
    }

    /// The kubelet's process.
    pub fn kubelet(&self) -> &ManagedProcess {
        &self.kubelet
    }

    /// containerd's process id.
    pub fn containerd_pid(&self) -> u32 {
        self.containerd.pid()
    }

    /// containerd's log file.
    pub fn containerd_log(&self) -> PathBuf {
        self.containerd.dir().join("containerd.log")
    }
}

/// ferrokube-kubelet's flags, as the e2e tests' `TestNode` gives them, with its healthz server off and its
/// server on `port`.
pub fn ferrokube_args(
    node: &str,
    kubeconfig: &Path,
    socket: &Path,
    cni_dir: &Path,
    root: &Path,
    logs: &Path,
    port: u16,
) -> Vec<String> {
    vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--hostname-override={node}"),
        format!("--root-dir={}", root.display()),
        "--healthz-port=0".into(),
        // Its server on loopback, as upstream's here, with a self-signed certificate of its own.
        "--address=127.0.0.1".into(),
        format!("--port={port}"),
        format!("--cert-dir={}", root.join("pki").display()),
        format!("--container-runtime-endpoint=unix://{}", socket.display()),
        format!("--cni-conf-dir={}", cni_dir.display()),
        format!("--cni-bin-dir={CNI_BIN_DIR}"),
        format!("--pod-logs-dir={}", logs.display()),
        format!("--max-pods={MAX_PODS}"),
        format!("--pod-cidr={POD_CIDR}"),
    ]
}

/// Upstream kubelet's flags; the rest is in its configuration file.
pub fn upstream_args(node: &str, kubeconfig: &Path, config: &Path, root: &Path) -> Vec<String> {
    vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--config={}", config.display()),
        format!("--hostname-override={node}"),
        format!("--root-dir={}", root.display()),
    ]
}

/// What upstream's KubeletConfiguration varies by.
pub struct UpstreamConfig<'a> {
    /// containerd's socket.
    pub endpoint: &'a Path,
    /// The kubelet's HTTPS port on loopback.
    pub port: u16,
    /// podLogsDir.
    pub pod_logs: &'a Path,
}

/// Upstream's KubeletConfiguration for this host: cgroupfs on cgroup v1, its pods under their own cgroup
/// root, its server on loopback and answering no one (nothing here calls it), no swap check.
pub fn upstream_config(config: &UpstreamConfig<'_>) -> String {
    format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://{endpoint}
cgroupDriver: cgroupfs
# This host is cgroup v1, which upstream refuses by default since 1.35.
failCgroupV1: false
cgroupsPerQOS: true
cgroupRoot: /{cgroup_root}
failSwapOn: false
maxPods: {max_pods}
podCIDR: {pod_cidr}
podLogsDir: {pod_logs}
address: 127.0.0.1
port: {port}
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
# Upstream's default disk thresholds (imagefs.available<15%, nodefs.available<10%) put a shared build host
# under DiskPressure, which evicts and rejects the benchmark's pods; memory keeps its default.
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
"#,
        endpoint = config.endpoint.display(),
        cgroup_root = UPSTREAM_CGROUP_ROOT,
        max_pods = MAX_PODS,
        pod_cidr = POD_CIDR,
        pod_logs = config.pod_logs.display(),
        port = config.port,
    )
}

/// A port on 127.0.0.1 nothing listens on now.
fn free_port() -> anyhow::Result<u16> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port on loopback")?;
    Ok(listener
        .local_addr()
        .context("reading the free port")?
        .port())
}

/// The mount points of this host's cgroup hierarchies (v1, and the v2 one runc also writes to).
fn cgroup_mounts() -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let mount = fields.get(1)?;
            let kind = fields.get(2)?;
            (*kind == "cgroup" || *kind == "cgroup2").then(|| PathBuf::from(mount))
        })
        .collect()
}

/// Creates cgroup `name` in every hierarchy (upstream's kubelet refuses a cgroupRoot that does not
/// exist), with the cpuset hierarchy's CPUs and memory nodes copied from its parent, as a v1 cpuset starts
/// empty and takes no tasks. Returns the directories made.
fn make_cgroup_root(name: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut made = Vec::new();
    for mount in cgroup_mounts() {
        let dir = mount.join(name);
        if !dir.is_dir() {
            std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let parent = mount.join(file);
            if let Ok(value) = std::fs::read_to_string(&parent) {
                std::fs::write(dir.join(file), value.trim()).with_context(|| {
                    format!("copying {} into {}", parent.display(), dir.display())
                })?;
            }
        }
        made.push(dir);
    }
    Ok(made)
}

/// Removes cgroup `dir` and what the kubelet made under it, deepest first; a cgroup still holding
/// processes stays (and is logged).
fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&entry.path());
            }
        }
    }
    if let Err(e) = std::fs::remove_dir(dir) {
        tracing::warn!("removing cgroup {}: {e}", dir.display());
    }
}

/// The current values of [`KERNEL_TUNABLES`].
fn read_tunables() -> Vec<(PathBuf, String)> {
    KERNEL_TUNABLES
        .iter()
        .filter_map(|name| {
            let path = Path::new("/proc/sys").join(name);
            let value = std::fs::read_to_string(&path).ok()?;
            Some((path, value.trim().to_string()))
        })
        .collect()
}

/// What a node changed on the host, undone on drop.
struct HostCleanup {
    bridge: String,
    dir: PathBuf,
    cgroups: Vec<PathBuf>,
    tunables: Vec<(PathBuf, String)>,
}

impl Drop for HostCleanup {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
        for cgroup in &self.cgroups {
            remove_cgroup_tree(cgroup);
        }
        for (path, value) in &self.tunables {
            if let Err(e) = std::fs::write(path, value) {
                tracing::warn!("restoring {} to {value}: {e}", path.display());
            }
        }
        crate::sys::detach_mounts_under(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_config_runs_cgroupfs_on_v1_under_its_own_root() {
        let text = upstream_config(&UpstreamConfig {
            endpoint: Path::new("/d/containerd.sock"),
            port: 12345,
            pod_logs: Path::new("/d/logs"),
        });
        let value: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(value["kind"], "KubeletConfiguration");
        assert_eq!(value["apiVersion"], "kubelet.config.k8s.io/v1beta1");
        assert_eq!(
            value["containerRuntimeEndpoint"],
            "unix:///d/containerd.sock"
        );
        assert_eq!(value["cgroupDriver"], "cgroupfs");
        assert_eq!(value["failCgroupV1"], false);
        assert_eq!(value["cgroupRoot"], "/fk-bench-upstream");
        assert_eq!(value["maxPods"], 250);
        assert_eq!(value["podCIDR"], POD_CIDR);
        assert_eq!(value["podLogsDir"], "/d/logs");
        assert_eq!(value["port"], 12345);
        assert_eq!(value["readOnlyPort"], 0);
        assert_eq!(value["authentication"]["anonymous"]["enabled"], false);
        assert_eq!(value["evictionHard"]["imagefs.available"], "1%");
    }

    #[test]
    fn both_kubelets_get_their_node_name_root_and_credentials() {
        let ours = ferrokube_args(
            "n",
            Path::new("/k"),
            Path::new("/c.sock"),
            Path::new("/cni"),
            Path::new("/root"),
            Path::new("/logs"),
            10250,
        );
        for flag in [
            "--kubeconfig=/k",
            "--hostname-override=n",
            "--root-dir=/root",
            "--container-runtime-endpoint=unix:///c.sock",
            "--cni-conf-dir=/cni",
            "--max-pods=250",
        ] {
            assert!(ours.contains(&flag.to_string()), "{flag} in {ours:?}");
        }
        let theirs = upstream_args("n", Path::new("/k"), Path::new("/cfg"), Path::new("/root"));
        assert_eq!(
            theirs,
            [
                "--kubeconfig=/k",
                "--config=/cfg",
                "--hostname-override=n",
                "--root-dir=/root"
            ]
        );
    }
}
