//! `ferrokube up`: a control plane for people, on a fixed port, with its kubeconfig in `$FERROKUBE_HOME`,
//! until Ctrl-C. Later issues add the scheduler, controller-manager, kubelets, kube-proxy and CoreDNS.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ferrokube_cluster::process::is_alive;
use ferrokube_cluster::{ControlPlane, ControlPlaneConfig, Error, kubeconfig};

/// Flags of `ferrokube up`.
#[derive(clap::Args)]
pub struct UpArgs {
    /// The apiserver's port on 127.0.0.1.
    #[arg(long, default_value_t = 6443)]
    apiserver_port: u16,
}

/// Removes the pid file and kubeconfig when `up` ends, however it ends.
struct RunFiles {
    pid_file: PathBuf,
    kubeconfig: PathBuf,
}

impl Drop for RunFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.pid_file);
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

/// Starts the control plane and runs it until SIGINT or SIGTERM.
pub async fn run(args: UpArgs, home: PathBuf) -> anyhow::Result<()> {
    std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
    let pid_file = home.join("up.pid");
    refuse_if_running(&pid_file, &home)?;
    // Signals are handled from here on, so an interrupted start-up still stops what it started.
    let shutdown = component_base::shutdown::on_signal().context("installing signal handlers")?;

    println!(
        "Starting etcd and kube-apiserver (Kubernetes {})...",
        component_base::version::KUBERNETES_VERSION
    );
    let config = ControlPlaneConfig {
        apiserver_port: args.apiserver_port,
        node_names: Vec::new(),
    };
    let control_plane = tokio::select! {
        started = ControlPlane::start(config) => started?,
        () = shutdown.cancelled() => return Ok(()),
    };
    std::fs::write(&pid_file, std::process::id().to_string())
        .with_context(|| format!("writing {}", pid_file.display()))?;
    let kubeconfig_path = home.join("kubeconfig");
    let admin = std::fs::read_to_string(control_plane.admin_kubeconfig())
        .with_context(|| format!("reading {}", control_plane.admin_kubeconfig().display()))?;
    kubeconfig::write(&kubeconfig_path, &admin)?;
    let _run_files = RunFiles {
        pid_file,
        kubeconfig: kubeconfig_path.clone(),
    };

    print_summary(&control_plane, &kubeconfig_path);
    shutdown.cancelled().await;
    println!("Stopping kube-apiserver and etcd...");
    drop(control_plane);
    println!("Stopped.");
    Ok(())
}

fn refuse_if_running(pid_file: &Path, home: &Path) -> Result<(), Error> {
    let running = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok())
        .filter(|pid| *pid != std::process::id() && is_alive(*pid));
    match running {
        Some(pid) => Err(Error::AlreadyRunning {
            pid,
            dir: home.to_path_buf(),
        }),
        None => Ok(()),
    }
}

fn print_summary(control_plane: &ControlPlane, kubeconfig: &Path) {
    let pids = control_plane.pids();
    println!();
    println!("{:<16} {:<8} ADDRESS", "COMPONENT", "PID");
    println!(
        "{:<16} {:<8} {}",
        "kube-apiserver",
        pids[0],
        control_plane.url()
    );
    println!("{:<16} {:<8} 127.0.0.1 (loopback only)", "etcd", pids[1]);
    println!();
    println!("State and logs: {}", control_plane.dir().display());
    println!("The control plane is ready. In another shell:");
    println!();
    println!("  export KUBECONFIG={}", kubeconfig.display());
    println!(
        "  export PATH={}:$PATH   # the pinned kubectl",
        ferrokube_cluster::upstream::bin_dir().display()
    );
    println!("  kubectl get --raw /readyz");
    println!("  kubectl get ns");
    println!();
    println!("Press Ctrl-C to stop it and remove everything it made.");
}
