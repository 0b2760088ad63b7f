//! ferrokube-scheduler: a drop-in replacement for kube-scheduler. This is its skeleton: it starts, connects,
//! serves /metrics and the health endpoints, and takes part in leader election with upstream's flags. The
//! scheduling itself comes with its own issue.

pub mod cache;
pub mod framework;
pub mod metrics;
pub mod plugins;
pub mod queue;
pub mod schedule_one;
#[cfg(test)]
pub mod testing;

use clap::Parser;
use component_base::app::{self, ComponentContext, ComponentDefaults, ControlPlaneFlags};
use component_base::version;

/// Upstream's name, and defaults from KubeSchedulerConfiguration v1.
pub const DEFAULTS: ComponentDefaults = ComponentDefaults {
    name: "kube-scheduler",
    qps: 50.0,
    burst: 100,
    port: 10259,
};

/// ferrokube-scheduler's command line, upstream's flags.
#[derive(Parser, Debug)]
#[command(name = "ferrokube-scheduler", version = version::long_version(),
          about = "ferrokube-scheduler: a drop-in replacement for kube-scheduler")]
pub struct Flags {
    #[command(flatten)]
    pub common: ControlPlaneFlags,
}

/// Runs the scheduler until SIGTERM/SIGINT.
pub async fn run(flags: Flags) -> anyhow::Result<()> {
    app::run(DEFAULTS, &flags.common, schedule).await?;
    Ok(())
}

async fn schedule(context: ComponentContext) {
    tracing::warn!("scheduling is not implemented yet; holding the lease until stopped");
    context.stop.cancelled().await;
}
