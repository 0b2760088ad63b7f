//! `ferrokube`: runs local clusters made of upstream etcd and kube-apiserver and ferrokube's components.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use component_base::version;

mod up;

#[derive(Parser)]
#[command(name = "ferrokube", version = version::long_version(), about = "Local Kubernetes clusters run by ferrokube's components")]
struct Cli {
    #[command(flatten)]
    logging: component_base::flags::LoggingFlags,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a local multi-node cluster and run it until Ctrl-C.
    Up(up::UpArgs),
    /// Stop a local cluster and remove everything it made, also after a crash.
    Down,
    /// Bring a cluster up, do what a user would do with kubectl, check each step, take it down.
    Demo(up::DemoArgs),
    /// Print a local cluster component's log.
    Logs(up::LogsArgs),
    /// Benchmark ferrokube's components side by side with upstream's; results as JSON and Markdown.
    Bench(ferrokube_cluster::bench::BenchArgs),
    /// Print ferrokube's version and the upstream versions it targets.
    Version,
}

/// `$FERROKUBE_HOME`, else `~/.ferrokube`: where `up` writes the kubeconfig.
fn ferrokube_home() -> PathBuf {
    std::env::var_os("FERROKUBE_HOME").map_or_else(
        || {
            std::env::var_os("HOME")
                .map_or_else(|| PathBuf::from("/root"), PathBuf::from)
                .join(".ferrokube")
        },
        PathBuf::from,
    )
}

fn block_on(work: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(work))
}

fn main() -> ExitCode {
    let cli: Cli = component_base::flags::parse();
    component_base::logging::init(cli.logging.verbosity);
    let result = match cli.command {
        Command::Version => {
            println!("ferrokube {}", version::FERROKUBE_VERSION);
            println!("kubernetes {}", version::KUBERNETES_VERSION);
            println!("etcd {}", version::ETCD_VERSION);
            Ok(())
        }
        Command::Up(args) => block_on(up::run(args, ferrokube_home())),
        Command::Down => block_on(up::down(ferrokube_home())),
        Command::Demo(args) => block_on(up::demo(args, ferrokube_home())),
        Command::Logs(args) => block_on(up::logs(args, ferrokube_home())),
        Command::Bench(args) => block_on(ferrokube_cluster::bench::run(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrokube: {}", component_base::error::one_line(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
