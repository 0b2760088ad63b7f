//! ferrokube-controller-manager: a drop-in replacement for kube-controller-manager. This is its skeleton: it
//! starts, connects, serves /metrics and the health endpoints, and takes part in leader election with
//! upstream's flags. The controllers come with their own issue.

use clap::Parser;
use component_base::app::{self, ComponentContext, ComponentDefaults, ControlPlaneFlags};
use component_base::version;

/// Upstream's name, and defaults from KubeControllerManagerConfiguration.
pub const DEFAULTS: ComponentDefaults = ComponentDefaults {
    name: "kube-controller-manager",
    qps: 20.0,
    burst: 30,
    port: 10257,
};

/// ferrokube-controller-manager's command line, upstream's flags.
#[derive(Parser, Debug)]
#[command(name = "ferrokube-controller-manager", version = version::long_version(),
          about = "ferrokube-controller-manager: a drop-in replacement for kube-controller-manager")]
pub struct Flags {
    #[command(flatten)]
    pub common: ControlPlaneFlags,
}

/// Runs the controller-manager until SIGTERM/SIGINT.
pub async fn run(flags: Flags) -> anyhow::Result<()> {
    app::run(DEFAULTS, &flags.common, run_controllers).await?;
    Ok(())
}

async fn run_controllers(context: ComponentContext) {
    tracing::warn!("no controllers are implemented yet; holding the lease until stopped");
    context.stop.cancelled().await;
}
