//! A containerd of the harness's own: its own root, state and socket under one directory, the CRI plugin
//! off (the kubelet uses containerd's native API) or, for upstream's kubelet, on ([`cri_config`]), overlayfs
//! snapshots. Dropping it stops the shims it
//! started and their containers, containerd itself, and detaches mounts left under the directory, so the
//! directory can be removed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::cleanup::{self, Registration};
use crate::process::ManagedProcess;
use crate::{Error, sys};

/// How long containerd gets to answer on its socket.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The snapshotter that works on these hosts (ext4 root; overlay mounts are allowed as root).
pub const SNAPSHOTTER: &str = "overlayfs";

/// A running containerd.
#[derive(Debug)]
pub struct Containerd {
    process: ManagedProcess,
    dir: PathBuf,
    socket: PathBuf,
    _registration: Registration,
}

/// containerd's configuration for `dir`.
pub fn config(dir: &Path) -> String {
    common_config(
        dir,
        "# The kubelet talks to containerd's native API; no CRI.\n\
         disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n",
    )
}

/// What the CRI plugin needs to run pods for upstream's kubelet.
#[derive(Clone, Debug)]
pub struct CriSettings {
    /// The pod sandbox (pause) image; it must be in the store already, as no registry is reachable.
    pub sandbox_image: String,
    /// Where the CNI plugin binaries are.
    pub cni_bin_dir: PathBuf,
    /// The directory holding the CNI network configuration.
    pub cni_conf_dir: PathBuf,
}

/// containerd's configuration for `dir` with the CRI plugin on, for upstream's kubelet: runc through the
/// v2 shim with cgroupfs (not systemd) cgroups, the pods' network from `cri.cni_conf_dir`.
pub fn cri_config(dir: &Path, cri: &CriSettings) -> String {
    let mut text = common_config(dir, "# The CRI plugin serves upstream's kubelet.\n");
    let _ = write!(
        text,
        r#"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox}"
  # A random port on loopback: a fixed one would collide with any other CRI containerd on the host.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # Without CAP_SYS_RESOURCE (these VMs' root lacks it) runc cannot lower a container's oom_score_adj to the
  # kubelet's -998 for sandboxes ("failed to update /proc/self/oom_score_adj: Permission denied"); this clamps
  # it to containerd's own instead.
  restrict_oom_score_adj = true

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "{SNAPSHOTTER}"
  default_runtime_name = "runc"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  # cgroupfs, as the kubelet's cgroupDriver: this host has no systemd managing cgroups.
  SystemdCgroup = false

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "{bin}"
  conf_dir = "{conf}"
  max_conf_num = 1
"#,
        sandbox = cri.sandbox_image,
        bin = cri.cni_bin_dir.display(),
        conf = cri.cni_conf_dir.display(),
    );
    text
}

/// The part of every configuration that keeps containerd's state, sockets and plugins' data under `dir`;
/// `top` holds top-level keys, which TOML wants before the first table.
fn common_config(dir: &Path, top: &str) -> String {
    let d = dir.display();
    format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
{top}
[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd.sock.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"

"#
    )
}

impl Containerd {
    /// Starts containerd with its state under `dir` (which must exist) and waits until it answers.
    pub fn start(dir: &Path) -> Result<Self, Error> {
        Self::start_with_config(dir, &config(dir))
    }

    /// Starts containerd with its CRI plugin on, configured by `cri`, with its state under `dir`.
    pub fn start_cri(dir: &Path, cri: &CriSettings) -> Result<Self, Error> {
        Self::start_with_config(dir, &cri_config(dir, cri))
    }

    /// Starts containerd with configuration `text` (one of [`config`] or [`cri_config`] for `dir`).
    fn start_with_config(dir: &Path, text: &str) -> Result<Self, Error> {
        let config_path = dir.join("config.toml");
        std::fs::write(&config_path, text).map_err(|e| Error::io(&config_path, e))?;
        let socket = socket_path(dir);
        let mut command = Command::new("containerd");
        command.arg("--config").arg(&config_path);
        let mut process =
            ManagedProcess::spawn("containerd", command, &dir.join("containerd.log"))?;
        let registration = cleanup::register(vec![process.pid()], None);
        let started = Instant::now();
        loop {
            process.check_running()?;
            if socket.exists() && version(&socket).is_some() {
                break;
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(Error::NotReady {
                    name: "containerd".into(),
                    seconds: READY_TIMEOUT.as_secs(),
                    log: process.log().to_path_buf(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Self {
            process,
            dir: dir.to_path_buf(),
            socket,
            _registration: registration,
        })
    }

    /// The gRPC socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The directory holding its state.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}

/// The server version `ctr version` reports, once containerd answers.
fn version(socket: &Path) -> Option<String> {
    let output = Command::new("ctr")
        .arg("--address")
        .arg(socket)
        .arg("version")
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let server = text.split("Server:").nth(1)?;
    server
        .lines()
        .find_map(|l| l.trim().strip_prefix("Version:"))
        .map(|v| v.trim().to_string())
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/status"))
                .ok()
                .and_then(|status| {
                    status
                        .lines()
                        .find_map(|l| l.strip_prefix("PPid:"))
                        .and_then(|p| p.trim().parse::<u32>().ok())
                })
                == Some(pid)
        })
        .collect()
}

/// The shims started by the containerd at `socket` (they outlive containerd by design).
fn shims(socket: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let socket = socket.to_string_lossy().into_owned();
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            args.first().is_some_and(|a| a.contains("containerd-shim"))
                && args
                    .windows(2)
                    .any(|w| w[0] == "-address" && w[1] == socket)
        })
        .collect()
}

/// The gRPC socket of a containerd whose state is under `dir`.
pub fn socket_path(dir: &Path) -> PathBuf {
    dir.join("containerd.sock")
}

/// Kills the shims of the containerd at `socket` and their containers: container init processes are the
/// shims' children, and killing them ends each container's PID namespace. Also after containerd is gone.
pub fn kill_shims(socket: &Path) {
    for shim in shims(socket) {
        for child in children(shim) {
            sys::kill(child, libc::SIGKILL);
        }
        sys::kill(shim, libc::SIGKILL);
    }
}

/// `ctr` against the containerd at `socket`, in the kubelet's namespace; its output if it succeeded.
fn ctr(socket: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("ctr")
        .arg("--address")
        .arg(socket)
        .args(["-n", crate::images::NAMESPACE])
        .args(args)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Containers left behind (a test that failed half-way) are removed through containerd, so runc
        // deletes their cgroups and the shim unmounts their root filesystems.
        if self.process.check_running().is_ok() {
            let ids = ctr(&self.socket, &["containers", "ls", "-q"]).unwrap_or_default();
            for id in ids.lines().map(str::trim).filter(|id| !id.is_empty()) {
                let _ = ctr(&self.socket, &["tasks", "delete", "--force", id]);
                let _ = ctr(&self.socket, &["containers", "delete", id]);
            }
        }
        kill_shims(&self.socket);
        self.process.stop(Duration::from_secs(5));
        sys::detach_mounts_under(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_native_config_turns_cri_off() {
        let text = config(Path::new("/x"));
        assert!(text.starts_with("version = 2\nroot = \"/x/root\"\nstate = \"/x/state\"\n"));
        assert!(text.contains("disabled_plugins = [\"io.containerd.grpc.v1.cri\"]"));
        assert!(text.contains("address = \"/x/containerd.sock\""));
    }

    #[test]
    fn the_cri_config_runs_runc_with_cgroupfs_and_the_given_cni_and_pause() {
        let cri = CriSettings {
            sandbox_image: "registry.k8s.io/pause:3.10".into(),
            cni_bin_dir: "/usr/lib/cni".into(),
            cni_conf_dir: "/x/cni".into(),
        };
        let text = cri_config(Path::new("/x"), &cri);
        assert!(!text.contains("disabled_plugins"), "{text}");
        assert!(text.contains("root = \"/x/root\""));
        let after = |header: &str| {
            let start = text
                .find(header)
                .unwrap_or_else(|| panic!("no {header}: {text}"));
            text[start + header.len()..]
                .split("\n[")
                .next()
                .unwrap()
                .to_string()
        };
        let plugin = after("[plugins.\"io.containerd.grpc.v1.cri\"]\n");
        assert!(plugin.contains("sandbox_image = \"registry.k8s.io/pause:3.10\""));
        assert!(plugin.contains("stream_server_port = \"0\""));
        assert!(plugin.contains("restrict_oom_score_adj = true"));
        let runc = after("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n");
        assert!(runc.contains("runtime_type = \"io.containerd.runc.v2\""));
        let options =
            after("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n");
        assert!(options.contains("SystemdCgroup = false"));
        let cni = after("[plugins.\"io.containerd.grpc.v1.cri\".cni]\n");
        assert!(cni.contains("bin_dir = \"/usr/lib/cni\""));
        assert!(cni.contains("conf_dir = \"/x/cni\""));
    }
}
