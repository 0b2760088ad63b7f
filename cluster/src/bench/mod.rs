//! `ferrokube bench`: ferrokube's components side by side with upstream's, each on a fresh control plane in
//! one invocation, with the results written as JSON and Markdown.

use std::fmt;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

pub mod controllers;
pub mod controllers_report;
pub mod kubelet;
pub mod kubelet_node;
pub mod kubelet_report;
pub mod measure;
pub mod report;
pub mod scheduler;
pub mod workload;

use controllers_report::{ControllersReport, ControllersResult, ControllersWorkload};
use kubelet_report::{KubeletReport, KubeletResult, KubeletWorkload};
use measure::{Machine, ProcessUsage};
use report::{ImplementationResult, Report, Workload, round};

use crate::{ControlPlane, ControlPlaneConfig, Identity};

/// Flags of `ferrokube bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// What to benchmark.
#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Schedule pods onto fake nodes with ferrokube-scheduler and with upstream kube-scheduler.
    Scheduler(SchedulerArgs),
    /// Scale, roll and delete a Deployment with ferrokube-controller-manager and with upstream
    /// kube-controller-manager.
    Controllers(ControllersArgs),
    /// Run 30 pods one per second, then 100 at once, on one node with ferrokube-kubelet and with upstream's
    /// kubelet on the same containerd.
    Kubelet(KubeletArgs),
}

/// Flags of `ferrokube bench kubelet`.
#[derive(clap::Args, Clone, Debug)]
pub struct KubeletArgs {
    /// Directory for kubelet.json, kubelet.md and the kubelets' and containerds' logs.
    #[arg(long, default_value = "bench-out")]
    pub out: PathBuf,
    /// Which kubelets to run, in order.
    #[arg(long, value_delimiter = ',', default_value = "ferrokube,upstream")]
    pub implementations: Vec<Implementation>,
    /// Seconds each phase (steady, burst) may take to get its pods Running.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
}

/// Flags of `ferrokube bench controllers`.
#[derive(clap::Args, Clone, Debug)]
pub struct ControllersArgs {
    /// Replicas of the measured Deployment.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub replicas: u32,
    /// The controller-manager's --kube-api-qps.
    #[arg(long, default_value_t = 20.0)]
    pub qps: f64,
    /// The controller-manager's --kube-api-burst.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..))]
    pub burst: u32,
    /// Directory for controllers.json, controllers.md and the controller-managers' logs.
    #[arg(long, default_value = "bench-out")]
    pub out: PathBuf,
    /// Which controller-managers to run, in order.
    #[arg(long, value_delimiter = ',', default_value = "ferrokube,upstream")]
    pub implementations: Vec<Implementation>,
    /// Seconds each phase may take.
    #[arg(long, default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
}

/// Flags of `ferrokube bench scheduler`.
#[derive(clap::Args, Clone, Debug)]
pub struct SchedulerArgs {
    /// Nodes to create (4 CPU, 32Gi, 110 pods each).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub nodes: u32,
    /// Pods to schedule (100m CPU, 500Mi each).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..))]
    pub pods: u32,
    /// The scheduler's client QPS (clientConnection.qps).
    #[arg(long, default_value_t = 5000.0)]
    pub qps: f64,
    /// The scheduler's client burst (clientConnection.burst).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..))]
    pub burst: u32,
    /// Directory for scheduler.json, scheduler.md and the schedulers' logs and configurations.
    #[arg(long, default_value = "bench-out")]
    pub out: PathBuf,
    /// Which schedulers to run, in order.
    #[arg(long, value_delimiter = ',', default_value = "ferrokube,upstream")]
    pub implementations: Vec<Implementation>,
    /// Seconds to wait for all pods to be bound, from the first pod created.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
}

/// A component under test.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Implementation {
    /// ferrokube's, beside the running `ferrokube`.
    Ferrokube,
    /// Upstream's, built by hack/upstream.
    Upstream,
}

impl Implementation {
    /// The name in the output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ferrokube => "ferrokube",
            Self::Upstream => "upstream",
        }
    }
}

impl fmt::Display for Implementation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Runs `ferrokube bench ...` until it is done or interrupted; an interruption stops what it started.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let shutdown = component_base::shutdown::on_signal().context("installing signal handlers")?;
    tokio::select! {
        result = async {
            match args.command {
                BenchCommand::Scheduler(args) => bench_scheduler(args).await,
                BenchCommand::Controllers(args) => bench_controllers(args).await,
                BenchCommand::Kubelet(args) => bench_kubelet(args).await,
            }
        } => result,
        () = shutdown.cancelled() => bail!("interrupted; stopped everything the benchmark started"),
    }
}

async fn bench_scheduler(args: SchedulerArgs) -> anyhow::Result<()> {
    let binaries = prepare(
        args.qps,
        &args.implementations,
        &args.out,
        ("ferrokube-scheduler", "kube-scheduler"),
    )
    .await?;

    let settings = scheduler::Settings {
        nodes: args.nodes as usize,
        pods: args.pods as usize,
        qps: args.qps,
        burst: args.burst,
        timeout: Duration::from_secs(args.timeout),
        out: args.out.clone(),
    };
    let mut results = Vec::new();
    let mut notes = Vec::new();
    for (implementation, binary) in &binaries {
        let name = implementation.name();
        eprintln!("{name}: benchmarking {}", binary.display());
        let outcome = scheduler::run(name, binary, &settings)
            .await
            .with_context(|| format!("benchmarking the {name} scheduler"))?;
        let t = &outcome.timings;
        eprintln!(
            "{name}: {} of {} bound in {:.1} s: {:.1} pods/s, p50 {} ms, p99 {} ms; run took {:.1} s",
            t.bound,
            settings.pods,
            t.window.as_secs_f64(),
            t.pods_per_second,
            t.p50_ms.map_or("-".into(), |v| format!("{v:.1}")),
            t.p99_ms.map_or("-".into(), |v| format!("{v:.1}")),
            outcome.wall.as_secs_f64()
        );
        if let Some(note) = &outcome.note {
            notes.push(format!("{name}: {note}"));
        }
        results.push(ImplementationResult {
            implementation: name.to_string(),
            bound: t.bound,
            pods_per_second: round(t.pods_per_second, 1),
            p50_ms: t.p50_ms.map(|v| round(v, 1)),
            p99_ms: t.p99_ms.map(|v| round(v, 1)),
            peak_rss_mib: outcome.usage.peak_rss_mib.map(|v| round(v, 1)),
            cpu_seconds: outcome.usage.cpu_seconds.map(|v| round(v, 2)),
        });
    }

    let report = Report {
        workload: Workload {
            nodes: settings.nodes,
            pods: settings.pods,
            qps: args.qps,
            burst: args.burst,
        },
        results,
    };
    write_reports(
        &args.out,
        "scheduler",
        &report.to_json().context("rendering scheduler.json")?,
        &report.to_markdown(&Machine::current(), &command_line(), &notes),
    )
}

/// Checks the common flags, finds every binary (so a missing one fails in seconds, not after a run) and
/// makes the output directory. `names` are ferrokube's and upstream's binary names.
async fn prepare(
    qps: f64,
    requested: &[Implementation],
    out: &Path,
    names: (&str, &str),
) -> anyhow::Result<Vec<(Implementation, PathBuf)>> {
    if !(qps.is_finite() && qps > 0.0) {
        bail!("--qps must be a positive number, not {qps}");
    }
    let mut implementations = Vec::new();
    for implementation in requested {
        if !implementations.contains(implementation) {
            implementations.push(*implementation);
        }
    }
    if implementations.is_empty() {
        bail!("--implementations names nothing to run (choose from ferrokube,upstream)");
    }
    let mut binaries = Vec::new();
    for implementation in implementations {
        let binary = match implementation {
            Implementation::Ferrokube => ferrokube_binary(names.0)?,
            Implementation::Upstream => upstream_binary(names.1).await?,
        };
        binaries.push((implementation, binary));
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    Ok(binaries)
}

/// ferrokube's binary `name` beside this executable, so a release `ferrokube` runs a release component.
fn ferrokube_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("finding the ferrokube executable")?;
    let path = exe.parent().unwrap_or_else(|| Path::new(".")).join(name);
    if !path.is_file() {
        bail!(
            "{name} not found at {} (beside this ferrokube): build it with \
             `cargo build --release --workspace` and run target/release/ferrokube",
            path.display()
        );
    }
    Ok(path)
}

/// Upstream's binary `name`, built by hack/upstream if it is missing.
async fn upstream_binary(name: &str) -> anyhow::Result<PathBuf> {
    if let Ok(path) = crate::upstream::binary(name) {
        return Ok(path);
    }
    build_upstream(name).await?;
    Ok(crate::upstream::binary(name)?)
}

/// Runs `hack/upstream/build.sh NAME` from the source tree this binary was built from.
async fn build_upstream(name: &str) -> anyhow::Result<()> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hack/upstream/build.sh");
    if !script.is_file() {
        bail!(
            "upstream {name} is not in {} and the build script {} is not there: run \
             `hack/upstream/build.sh {name}` in a ferrokube checkout",
            crate::upstream::bin_dir().display(),
            script.display()
        );
    }
    eprintln!(
        "upstream: {name} is missing; building it with {} {name}",
        script.display()
    );
    // The script's progress goes to stderr with ours; stdout stays for the report.
    let stderr = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .context("duplicating stderr")?;
    let status = tokio::process::Command::new(&script)
        .arg(name)
        .stdout(std::process::Stdio::from(stderr))
        .status()
        .await
        .with_context(|| format!("running {}", script.display()))?;
    if !status.success() {
        bail!("{} {name} failed ({status})", script.display());
    }
    Ok(())
}

async fn bench_controllers(args: ControllersArgs) -> anyhow::Result<()> {
    let binaries = prepare(
        args.qps,
        &args.implementations,
        &args.out,
        ("ferrokube-controller-manager", "kube-controller-manager"),
    )
    .await?;
    let settings = controllers::Settings {
        replicas: args.replicas as usize,
        qps: args.qps,
        burst: args.burst,
        timeout: Duration::from_secs(args.timeout),
        out: args.out.clone(),
    };
    let mut results = Vec::new();
    let mut notes = Vec::new();
    for (implementation, binary) in &binaries {
        let name = implementation.name();
        eprintln!("{name}: benchmarking {}", binary.display());
        let outcome = controllers::run(name, binary, &settings)
            .await
            .with_context(|| format!("benchmarking the {name} controller-manager"))?;
        if let Some(note) = &outcome.note {
            notes.push(format!("{name}: {note}"));
        }
        let seconds = |phase: Option<Duration>| phase.map(|d| round(d.as_secs_f64(), 2));
        let ProcessUsage {
            peak_rss_mib,
            cpu_seconds,
        } = outcome.usage;
        results.push(ControllersResult {
            implementation: name.to_string(),
            scale_up_s: seconds(outcome.scale_up),
            rollout_s: seconds(outcome.rollout),
            delete_s: seconds(outcome.delete),
            peak_rss_mib: peak_rss_mib.map(|v| round(v, 1)),
            cpu_seconds: cpu_seconds.map(|v| round(v, 2)),
            apiserver_cpu_seconds: outcome
                .control_plane
                .apiserver_cpu_seconds
                .map(|v| round(v, 2)),
            etcd_cpu_seconds: outcome.control_plane.etcd_cpu_seconds.map(|v| round(v, 2)),
            apiserver_writes: outcome.control_plane.apiserver_writes,
            terminated_watches: outcome.control_plane.terminated_watches,
        });
    }
    let report = ControllersReport {
        workload: ControllersWorkload {
            replicas: settings.replicas,
            qps: args.qps,
            burst: args.burst,
        },
        results,
    };
    write_reports(
        &args.out,
        "controllers",
        &report.to_json().context("rendering controllers.json")?,
        &report.to_markdown(&Machine::current(), &command_line(), &notes),
    )
}

async fn bench_kubelet(args: KubeletArgs) -> anyhow::Result<()> {
    // The kubelets keep their default client limits, so there is no --qps to check: 1.0 passes.
    let binaries = prepare(
        1.0,
        &args.implementations,
        &args.out,
        ("ferrokube-kubelet", "kubelet"),
    )
    .await?;
    eprintln!("starting etcd and kube-apiserver");
    let config = ControlPlaneConfig {
        apiserver_port: 0,
        node_names: binaries
            .iter()
            .map(|(implementation, _)| kubelet::node_name(*implementation))
            .collect(),
        ..Default::default()
    };
    let control_plane = ControlPlane::start(config)
        .await
        .context("starting the control plane")?;
    let admin = control_plane
        .client(&Identity::admin())
        .await
        .context("making the admin client")?;
    scheduler::create_namespace(&admin).await?;
    let settings = kubelet::Settings {
        timeout: Duration::from_secs(args.timeout),
        out: args.out.clone(),
    };
    let mut results = Vec::new();
    let mut notes = Vec::new();
    for (implementation, binary) in &binaries {
        let name = implementation.name();
        eprintln!("{name}: benchmarking {}", binary.display());
        let node = kubelet::node_name(*implementation);
        let kubeconfig = control_plane
            .kubeconfig(&Identity::node(&node))
            .ok_or_else(|| anyhow::anyhow!("the control plane made no kubeconfig for {node}"))?;
        let outcome = kubelet::run(*implementation, binary, &admin, kubeconfig, &settings)
            .await
            .with_context(|| format!("benchmarking the {name} kubelet"))?;
        if let Some(note) = &outcome.note {
            eprintln!("{name}: {note}");
            notes.push(format!("{name}: {note}"));
        }
        let ms = |v: Option<f64>| v.map(|v| round(v, 1));
        let mib = |u: &ProcessUsage| u.peak_rss_mib.map(|v| round(v, 1));
        let cpu = |u: &ProcessUsage| u.cpu_seconds.map(|v| round(v, 2));
        results.push(KubeletResult {
            implementation: name.to_string(),
            running: outcome.steady.bound,
            p50_ms: ms(outcome.steady.p50_ms),
            p99_ms: ms(outcome.steady.p99_ms),
            burst_running: outcome.burst.bound,
            burst_p50_ms: ms(outcome.burst.p50_ms),
            burst_p99_ms: ms(outcome.burst.p99_ms),
            peak_rss_mib: mib(&outcome.usage),
            cpu_seconds: cpu(&outcome.usage),
            containerd_peak_rss_mib: mib(&outcome.containerd),
            containerd_cpu_seconds: cpu(&outcome.containerd),
        });
    }
    drop(admin);
    drop(control_plane);
    let report = KubeletReport {
        workload: KubeletWorkload {
            steady_pods: kubelet::STEADY_PODS,
            steady_interval_ms: kubelet::STEADY_INTERVAL.as_millis() as u64,
            burst_pods: kubelet::BURST_PODS,
            image: crate::images::BUSYBOX_IMAGE.to_string(),
            max_pods: kubelet_node::MAX_PODS,
        },
        results,
    };
    write_reports(
        &args.out,
        "kubelet",
        &report.to_json().context("rendering kubelet.json")?,
        &report.to_markdown(&Machine::current(), &command_line(), &notes),
    )
}

/// Writes `DIR/NAME.json` and `DIR/NAME.md` and prints the Markdown.
fn write_reports(out: &Path, name: &str, json: &str, markdown: &str) -> anyhow::Result<()> {
    let json_path = out.join(format!("{name}.json"));
    std::fs::write(&json_path, json).with_context(|| format!("writing {}", json_path.display()))?;
    let md_path = out.join(format!("{name}.md"));
    std::fs::write(&md_path, markdown).with_context(|| format!("writing {}", md_path.display()))?;
    print!("{markdown}");
    eprintln!("wrote {} and {}", json_path.display(), md_path.display());
    Ok(())
}

/// This process's command line, quoted for a POSIX shell where needed.
fn command_line() -> String {
    std::env::args()
        .enumerate()
        .map(|(i, arg)| {
            let arg = if i == 0 {
                Path::new(&arg)
                    .file_name()
                    .map_or(arg.clone(), |n| n.to_string_lossy().into_owned())
            } else {
                arg
            };
            shell_quote(&arg)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=,:@%+".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: BenchCommand,
    }

    fn parse(args: &[&str]) -> Result<SchedulerArgs, clap::Error> {
        let cli = Cli::try_parse_from(std::iter::once("bench").chain(args.iter().copied()))?;
        match cli.command {
            BenchCommand::Scheduler(args) => Ok(args),
            _ => panic!("not the scheduler's flags"),
        }
    }

    #[test]
    fn defaults_are_the_documented_workload() {
        let args = parse(&["scheduler"]).unwrap();
        assert_eq!((args.nodes, args.pods, args.burst), (1000, 5000, 5000));
        assert_eq!(args.qps, 5000.0);
        assert_eq!(args.out, PathBuf::from("bench-out"));
        assert_eq!(
            args.implementations,
            [Implementation::Ferrokube, Implementation::Upstream]
        );
        assert_eq!(args.timeout, 600);
    }

    #[test]
    fn flags_parse() {
        let args = parse(&[
            "scheduler",
            "--implementations",
            "upstream",
            "--nodes",
            "100",
            "--pods=500",
            "--qps",
            "50",
            "--burst",
            "100",
            "--timeout",
            "30",
            "--out",
            "/tmp/x",
        ])
        .unwrap();
        assert_eq!(args.implementations, [Implementation::Upstream]);
        assert_eq!(
            (args.nodes, args.pods, args.burst, args.timeout),
            (100, 500, 100, 30)
        );
        assert_eq!(args.qps, 50.0);
        assert!(parse(&["scheduler", "--implementations", "kube"]).is_err());
        assert!(parse(&["scheduler", "--nodes", "0"]).is_err());
    }

    #[test]
    fn kubelet_flags_parse() {
        let cli = Cli::try_parse_from([
            "bench",
            "kubelet",
            "--implementations=ferrokube",
            "--timeout=60",
        ])
        .unwrap();
        let BenchCommand::Kubelet(args) = cli.command else {
            panic!("not the kubelet's flags");
        };
        assert_eq!(args.implementations, [Implementation::Ferrokube]);
        assert_eq!(args.timeout, 60);
        assert_eq!(args.out, PathBuf::from("bench-out"));
        assert!(Cli::try_parse_from(["bench", "kubelet", "--timeout=0"]).is_err());
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("--pods=500"), "--pods=500");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
