//! Clusters of `ferrokube up`, started as a user starts them: the `ferrokube` binary as a process, with
//! its own `$FERROKUBE_HOME`. One host runs one such cluster at a time (they share the host's network).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ferrokube_cluster::cleanup::{self, Registration};
use ferrokube_cluster::control_plane::free_port;
use ferrokube_cluster::local::record::RunRecord;
use ferrokube_cluster::process::{ManagedProcess, tail};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::binary;

/// How long `ferrokube up` may take to say the cluster is ready (images are built on a first run).
const START_TIMEOUT: Duration = Duration::from_secs(420);
/// What `up` prints once everything is ready.
const READY_LINE: &str = "The cluster is ready";

/// A running `ferrokube up`.
pub struct UpCluster {
    /// Its `$FERROKUBE_HOME`.
    pub home: PathBuf,
    /// The process.
    pub process: ManagedProcess,
    _down_at_exit: Registration,
}

impl UpCluster {
    /// Starts `ferrokube up --nodes NODES` in a fresh home and waits until it says it is ready. At exit
    /// (or on a handled signal) the test binary runs `ferrokube down` for it.
    pub fn start(nodes: usize) -> Self {
        let home = tempfile::Builder::new()
            .prefix("ferrokube-up-home-")
            .tempdir()
            .unwrap()
            .keep();
        let output = home.join("up.out");
        let mut command = Command::new(binary("ferrokube"));
        command
            .args(["up", &format!("--nodes={nodes}")])
            .arg(format!("--apiserver-port={}", free_port().unwrap()))
            .env("FERROKUBE_HOME", &home);
        let mut process = ManagedProcess::spawn("ferrokube up", command, &output).unwrap();
        let down_home = home.clone();
        let down_at_exit = cleanup::register_hook(
            Box::new(move || {
                let _ = down(&down_home);
                let _ = std::fs::remove_dir_all(&down_home);
            }),
            vec![process.pid()],
        );
        let started = Instant::now();
        loop {
            let printed = std::fs::read_to_string(&output).unwrap_or_default();
            if printed.contains(READY_LINE) {
                break;
            }
            if let Err(e) = process.check_running() {
                panic!("ferrokube up failed: {e}\n{printed}");
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "ferrokube up was not ready within {START_TIMEOUT:?}:\n{printed}"
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        Self {
            home,
            process,
            _down_at_exit: down_at_exit,
        }
    }

    /// The admin kubeconfig `up` wrote.
    pub fn kubeconfig(&self) -> PathBuf {
        self.home.join("kubeconfig")
    }

    /// The run record: components, their pids and logs.
    pub fn record(&self) -> RunRecord {
        RunRecord::load(&self.home.join("up.json"))
            .unwrap()
            .expect("a running cluster has a run record")
    }

    /// The current pid of component `name`, waiting for a restart to finish.
    pub fn pid_of(&self, name: &str) -> u32 {
        let started = Instant::now();
        loop {
            if let Some(pid) = self.record().component(name).and_then(|c| c.pid) {
                return pid;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{name} is not running"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The last lines of component `name`'s log.
    pub fn log_tail(&self, name: &str) -> String {
        let record = self.record();
        record
            .component(name)
            .map(|c| tail(&c.log, 40))
            .unwrap_or_default()
    }

    /// What `up` printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.home.join("up.out")).unwrap_or_default()
    }

    /// An admin client.
    pub async fn client(&self) -> Client {
        let kubeconfig = Kubeconfig::read_from(self.kubeconfig()).unwrap();
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .unwrap();
        Client::try_from(config).unwrap()
    }
}

impl Drop for UpCluster {
    /// A cluster a test owns goes with it (the shared one lives in a static: its exit hook takes it down).
    fn drop(&mut self) {
        let _ = down(&self.home);
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// Runs `ferrokube down` for `home` and returns what it printed.
pub fn down(home: &Path) -> Output {
    Command::new(binary("ferrokube"))
        .arg("down")
        .env("FERROKUBE_HOME", home)
        .output()
        .unwrap()
}

/// The test binary's one cluster of `up` with two nodes, started on first use.
pub fn shared_up_cluster() -> &'static UpCluster {
    static SHARED: OnceLock<UpCluster> = OnceLock::new();
    SHARED.get_or_init(|| {
        cleanup::install_signal_handlers();
        UpCluster::start(2)
    })
}
