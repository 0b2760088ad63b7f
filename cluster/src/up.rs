//! `ferrokube up`: a multi-node cluster on this host, until Ctrl-C; `ferrokube down` and `ferrokube logs`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use ferrokube_cluster::Error;
use ferrokube_cluster::local::layout::Layout;
use ferrokube_cluster::local::plan::{CLUSTER_DNS, ClusterPlan};
use ferrokube_cluster::local::record::RunRecord;
use ferrokube_cluster::local::{LocalCluster, teardown};

/// Flags of `ferrokube up`.
#[derive(clap::Args)]
pub struct UpArgs {
    /// How many nodes (each a ferrokube-kubelet with a containerd of its own).
    #[arg(long, default_value_t = 2)]
    nodes: usize,
    /// The apiserver's port.
    #[arg(long, default_value_t = 6443)]
    apiserver_port: u16,
}

/// Flags of `ferrokube logs`.
#[derive(clap::Args)]
pub struct LogsArgs {
    /// The component: kube-apiserver, etcd, ferrokube-scheduler, ferrokube-controller-manager,
    /// kube-proxy, kubelet-node-N or containerd-node-N.
    component: String,
    /// Keep printing what it logs.
    #[arg(short, long)]
    follow: bool,
}

/// Flags of `ferrokube demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Run the demo on this cluster instead of bringing one up (and down) for it.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// How many nodes the demo's cluster has.
    #[arg(long, default_value_t = 2)]
    nodes: usize,
    /// The apiserver's port of the demo's cluster.
    #[arg(long, default_value_t = 6443)]
    apiserver_port: u16,
}

/// Starts the cluster and runs it until SIGINT or SIGTERM.
pub async fn run(args: UpArgs, home: PathBuf) -> anyhow::Result<()> {
    require_root()?;
    let plan = ClusterPlan::new(args.nodes)?;
    std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
    let layout = Layout::new(&home);
    refuse_if_running(&layout)?;
    // Signals are handled from here on, so an interrupted start-up still stops what it started.
    let shutdown = component_base::shutdown::on_signal().context("installing signal handlers")?;
    println!(
        "Starting a {}-node cluster; state and logs in {}",
        plan.nodes.len(),
        home.display()
    );
    if ferrokube_cluster::upstream::binary("kube-proxy").is_err() {
        println!("(upstream binaries are built on a first run: that takes several minutes)");
    }
    let progress = |step: &str| println!("  {step}...");
    let started = tokio::select! {
        started = LocalCluster::start(layout.clone(), plan, args.apiserver_port, &progress) => started,
        () = shutdown.cancelled() => {
            println!("Interrupted; removing what was started...");
            report(teardown::down(&layout).await.problems);
            return Ok(());
        }
    };
    let mut cluster = match started {
        Ok(cluster) => cluster,
        Err(error) => {
            report(teardown::down(&layout).await.problems);
            return Err(error.into());
        }
    };
    let admin = std::fs::read_to_string(cluster.control_plane().admin_kubeconfig())
        .context("reading the admin kubeconfig")?;
    ferrokube_cluster::kubeconfig::write(&layout.kubeconfig(), &admin)?;
    print_summary(&cluster, &layout);

    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                for line in cluster.supervise() {
                    println!("{line}");
                }
            }
            () = shutdown.cancelled() => break,
        }
    }
    println!("Stopping the cluster and removing everything it made...");
    report(cluster.stop().await);
    println!("Stopped.");
    Ok(())
}

/// Brings a cluster up (unless given one), runs the demo's steps on it, and takes the cluster down.
pub async fn demo(args: DemoArgs, home: PathBuf) -> anyhow::Result<()> {
    if let Some(kubeconfig) = &args.kubeconfig {
        return Ok(ferrokube_cluster::demo::run(kubeconfig).await?);
    }
    require_root()?;
    let plan = ClusterPlan::new(args.nodes)?;
    std::fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
    let layout = Layout::new(&home);
    refuse_if_running(&layout)?;
    println!(
        "Bringing up a {}-node cluster for the demo...",
        plan.nodes.len()
    );
    let progress = |step: &str| println!("  {step}...");
    let cluster =
        match LocalCluster::start(layout.clone(), plan, args.apiserver_port, &progress).await {
            Ok(cluster) => cluster,
            Err(error) => {
                report(teardown::down(&layout).await.problems);
                return Err(error.into());
            }
        };
    let admin = cluster.control_plane().admin_kubeconfig().to_path_buf();
    let result = ferrokube_cluster::demo::run(&admin).await;
    println!();
    println!("Taking the demo's cluster down...");
    report(cluster.stop().await);
    Ok(result?)
}

/// Stops a running cluster and removes what it made, also after a crash.
pub async fn down(home: PathBuf) -> anyhow::Result<()> {
    require_root()?;
    let removed = teardown::down(&Layout::new(&home)).await;
    println!(
        "Removed: {} processes, {} pod sandboxes, links [{}]",
        removed.processes,
        removed.sandboxes,
        removed.links.join(", ")
    );
    report(removed.problems);
    Ok(())
}

/// Prints a component's log; with `--follow`, keeps printing until interrupted.
pub async fn logs(args: LogsArgs, home: PathBuf) -> anyhow::Result<()> {
    let layout = Layout::new(&home);
    let record = RunRecord::load(&layout.record())?;
    let path = match record.as_ref().and_then(|r| r.component(&args.component)) {
        Some(component) => component.log.clone(),
        None => layout.log(&args.component),
    };
    if !path.is_file() {
        let known: Vec<&str> = record
            .iter()
            .flat_map(|r| r.components.iter().map(|c| c.name.as_str()))
            .collect();
        anyhow::bail!(
            "no log for {:?} (at {}); components: {}",
            args.component,
            path.display(),
            if known.is_empty() {
                "none running".to_string()
            } else {
                known.join(", ")
            }
        );
    }
    let mut command = std::process::Command::new("tail");
    command.arg(if args.follow { "-F" } else { "-n+1" });
    if args.follow {
        command.args(["-n", "+1"]);
    }
    let status = command
        .arg(&path)
        .status()
        .with_context(|| format!("running tail on {}", path.display()))?;
    anyhow::ensure!(
        status.success() || args.follow,
        "tail {} failed: {status}",
        path.display()
    );
    Ok(())
}

fn refuse_if_running(layout: &Layout) -> anyhow::Result<()> {
    match RunRecord::load(&layout.record())?.filter(RunRecord::is_running) {
        Some(record) => Err(Error::AlreadyRunning {
            pid: record.pid,
            dir: layout.home().to_path_buf(),
        }
        .into()),
        None => Ok(()),
    }
}

fn require_root() -> anyhow::Result<()> {
    anyhow::ensure!(
        ferrokube_cluster::sys::is_root(),
        "ferrokube runs containers, network namespaces and iptables rules: run it as root"
    );
    Ok(())
}

fn report(problems: Vec<String>) {
    for problem in problems {
        eprintln!("warning: {problem}");
    }
}

fn print_summary(cluster: &LocalCluster, layout: &Layout) {
    println!();
    println!("{:<30} {:<8} LOG", "COMPONENT", "PID");
    for component in &cluster.record().components {
        let pid = component.pid.map_or("-".to_string(), |p| p.to_string());
        println!(
            "{:<30} {:<8} {}",
            component.name,
            pid,
            component.log.display()
        );
    }
    println!();
    println!("{:<10} {:<14} POD CIDR", "NODE", "INTERNAL-IP");
    for node in &cluster.plan().nodes {
        println!("{:<10} {:<14} {}", node.name, node.ip, node.pod_cidr);
    }
    println!();
    println!(
        "The cluster is ready: apiserver {}, cluster DNS {CLUSTER_DNS}. In another shell:",
        cluster.control_plane().url()
    );
    println!();
    println!("  export KUBECONFIG={}", layout.kubeconfig().display());
    println!(
        "  export PATH={}:$PATH   # the pinned kubectl",
        ferrokube_cluster::upstream::bin_dir().display()
    );
    println!("  kubectl get nodes");
    println!();
    println!("Components that exit are restarted; each change is a line here.");
    println!("Press Ctrl-C to stop it and remove everything it made (`ferrokube down` does too).");
}
