//! ferrokube-kubelet: a drop-in replacement for the kubelet. It registers its Node, keeps the node's status
//! and Lease current and serves the health endpoints on upstream's healthz port.

pub mod config;
pub mod node;
pub mod options;
pub mod sandbox;
mod sys;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::Context;
use component_base::client::{self, ClientOptions};
use component_base::events::EventRecorder;
use component_base::serving::{Readiness, Server};
use component_base::{logging, shutdown};
use tokio::sync::watch;

use node::machine::MachineInfo;
use node::runtime_state::RuntimeState;
use node::{NodeIdentity, NodeStatusManager};
pub use options::Flags;

/// Runs the kubelet until SIGTERM/SIGINT.
pub async fn run(flags: Flags) -> anyhow::Result<()> {
    logging::init(flags.logging.verbosity);
    let config = Arc::new(config::resolve(&flags)?);
    let identity = node_identity(&flags).await?;
    let shutdown = shutdown::on_signal()?;
    let server = match config.healthz_port.unwrap_or(0) {
        0 => None,
        port => {
            let address: IpAddr = config.healthz_bind_address.parse().with_context(|| {
                format!(
                    "invalid healthzBindAddress {:?}",
                    config.healthz_bind_address
                )
            })?;
            let port = u16::try_from(port).context("healthzPort out of range")?;
            Some(Server::bind(SocketAddr::new(address, port)).await?)
        }
    };
    let options = ClientOptions {
        kubeconfig: flags.kubeconfig.clone(),
        qps: config.kube_api_qps.unwrap_or(50.0),
        burst: u32::try_from(config.kube_api_burst).unwrap_or(100),
    };
    let client = client::connect(&options).await?;
    let recorder = EventRecorder::new(client.clone(), "kubelet", &identity.name);
    let machine = MachineInfo::read(&flags.root_dir);
    // Fed by the runtime health loop; until it answers the node is NotReady, as upstream's.
    let (_runtime_state, runtime) = watch::channel(RuntimeState::default());
    let node_status = NodeStatusManager::new(client, identity, config, machine, runtime, recorder);
    let serving =
        server.map(|server| tokio::spawn(server.serve(Readiness::default(), shutdown.clone())));
    node_status.run(shutdown.clone()).await;
    shutdown.cancelled().await;
    if let Some(serving) = serving {
        serving.await??;
    }
    Ok(())
}

/// The node's name (`--hostname-override` or the host name, lower-cased as upstream), addresses and labels.
async fn node_identity(flags: &Flags) -> anyhow::Result<NodeIdentity> {
    let hostname = match &flags.hostname_override {
        Some(name) => name.trim().to_lowercase(),
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .context("cannot read the host name")?
            .trim()
            .to_lowercase(),
    };
    anyhow::ensure!(!hostname.is_empty(), "empty hostname is invalid");
    let labels: std::collections::BTreeMap<String, String> =
        flags.node_labels.iter().cloned().collect();
    let forbidden = node::registration::forbidden_node_labels(&labels);
    anyhow::ensure!(
        forbidden.is_empty(),
        "unknown 'kubernetes.io' or 'k8s.io' labels specified with --node-labels: {forbidden:?}; \
         --node-labels in the 'kubernetes.io' namespace must begin with an allowed prefix \
         (kubelet.kubernetes.io, node.kubernetes.io) or be in the specifically allowed set"
    );
    Ok(NodeIdentity {
        ips: node::address::node_ips(&flags.node_ip, &hostname).await,
        name: hostname.clone(),
        hostname,
        labels,
    })
}
