//! Helpers for ferrokube's end-to-end tests: finding the workspace's binaries and running them.

pub mod controllers;
pub mod kubectl;
pub mod kubelet;
pub mod runtime;
pub mod scheduling;
pub mod secure_serving;
pub mod up;

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use ferrokube_cluster::Identity;
use ferrokube_cluster::process::ManagedProcess;
use ferrokube_cluster::testing::shared_control_plane;

/// The path of workspace binary `name`, built beside the test binary by `cargo test --workspace`.
pub fn binary(name: &str) -> PathBuf {
    // Test binaries live in target/<profile>/deps; the workspace's binaries one level up.
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join(name);
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build --workspace` first",
        path.display()
    );
    path
}

/// Waits up to `limit` for `child` to exit; kills it and panics if it does not.
pub fn wait_with_limit(child: &mut Child, limit: Duration) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("process {} did not exit within {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A ferrokube component running against the shared control plane.
pub struct ComponentProcess {
    /// The process.
    pub process: ManagedProcess,
    binary: &'static str,
}

impl ComponentProcess {
    /// Starts workspace binary `binary` as `identity`, logging to `<name>.log`, with `args` added to the
    /// kubeconfig, serving off and `-v=2`.
    pub fn start(binary: &'static str, identity: &Identity, name: &str, args: &[&str]) -> Self {
        let mut all = vec!["--secure-port=0"];
        all.extend_from_slice(args);
        Self::spawn(binary, identity, name, &all)
    }

    /// Like [`ComponentProcess::start`] with no serving flag (the kubelet has none by that name).
    pub fn spawn(binary: &'static str, identity: &Identity, name: &str, args: &[&str]) -> Self {
        let control_plane = shared_control_plane();
        let kubeconfig = control_plane.kubeconfig(identity).unwrap().to_path_buf();
        let mut command = Command::new(crate::binary(binary));
        command
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg("-v=2")
            .args(args);
        let log = control_plane.dir().join(format!("{name}.log"));
        let process = ManagedProcess::spawn(name, command, &log).unwrap();
        Self { process, binary }
    }

    pub fn log_tail(&self) -> String {
        ferrokube_cluster::process::tail(self.process.log(), 30)
    }
}

impl Drop for ComponentProcess {
    /// A failing test shows what the component was doing: its log lives in a directory removed at exit.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- {} log (tail) ---\n{}", self.binary, self.log_tail());
        }
    }
}
