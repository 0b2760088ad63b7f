//! ferrokube-kubelet: a drop-in replacement for the kubelet. This is its skeleton: it starts, connects with
//! its node credentials, and serves /metrics and the health endpoints on upstream's healthz port. Node
//! registration and pods come with their own issue.

pub mod runtime;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use clap::Parser;
use component_base::client::{self, ClientOptions};
use component_base::flags::LoggingFlags;
use component_base::serving::{Readiness, Server};
use component_base::{logging, shutdown, version};

/// ferrokube-kubelet's command line, upstream's flags.
#[derive(Parser, Debug)]
#[command(name = "ferrokube-kubelet", version = version::long_version(),
          about = "ferrokube-kubelet: a drop-in replacement for the kubelet")]
pub struct Flags {
    /// Path to a kubeconfig file with the apiserver's address and this node's credentials.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The node name to use instead of the host name.
    #[arg(long)]
    pub hostname_override: Option<String>,
    /// The IP address of the healthz server.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub healthz_bind_address: IpAddr,
    /// The port of the healthz server; 0 disables it.
    #[arg(long, default_value_t = 10248)]
    pub healthz_port: u16,
    #[command(flatten)]
    pub logging: LoggingFlags,
}

/// Runs the kubelet until SIGTERM/SIGINT.
pub async fn run(flags: Flags) -> anyhow::Result<()> {
    logging::init(flags.logging.verbosity);
    let shutdown = shutdown::on_signal()?;
    let server = match flags.healthz_port {
        0 => None,
        port => Some(Server::bind(SocketAddr::new(flags.healthz_bind_address, port)).await?),
    };
    // KubeletConfiguration's defaults: kubeAPIQPS 50, kubeAPIBurst 100.
    let options = ClientOptions {
        kubeconfig: flags.kubeconfig.clone(),
        qps: 50.0,
        burst: 100,
    };
    let _client = client::connect(&options).await?;
    let serving =
        server.map(|server| tokio::spawn(server.serve(Readiness::default(), shutdown.clone())));
    tracing::warn!(node = ?flags.hostname_override, "running pods is not implemented yet; waiting until stopped");
    shutdown.cancelled().await;
    if let Some(serving) = serving {
        serving.await??;
    }
    Ok(())
}
