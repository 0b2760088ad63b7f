//! A containerd of the harness's own: its own root, state and socket under one directory, the CRI plugin
//! off (the kubelet uses containerd's native API), overlayfs snapshots. Dropping it stops the shims it
//! started and their containers, containerd itself, and detaches mounts left under the directory, so the
//! directory can be removed.

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
    let d = dir.display();
    format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
# The kubelet talks to containerd's native API; no CRI.
disabled_plugins = ["io.containerd.grpc.v1.cri"]

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
        let config_path = dir.join("config.toml");
        std::fs::write(&config_path, config(dir)).map_err(|e| Error::io(&config_path, e))?;
        let socket = dir.join("containerd.sock");
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
        // What is still there: container init processes are the shims' children; killing them ends each
        // container's PID namespace, then the shims go.
        for shim in shims(&self.socket) {
            for child in children(shim) {
                sys::kill(child, libc::SIGKILL);
            }
            sys::kill(shim, libc::SIGKILL);
        }
        self.process.stop(Duration::from_secs(5));
        sys::detach_mounts_under(&self.dir);
    }
}
