//! ferrokube-scheduler: a drop-in replacement for kube-scheduler 1.36 — upstream's flags and
//! KubeSchedulerConfiguration, scheduling framework, default plugins, queue, events and metrics.

pub mod cache;
pub mod config;
pub mod framework;
pub mod metrics;
pub mod options;
pub mod plugins;
pub mod profile;
pub mod queue;
pub mod schedule_one;
pub mod scheduler;
#[cfg(test)]
pub mod testing;

use std::collections::HashMap;
use std::sync::Arc;

use component_base::app::{self, ComponentContext, ComponentDefaults};
use component_base::events::EventRecorder;
use component_base::informer::SharedInformerFactory;

use crate::config::{Config, FlagOverrides};
use crate::framework::{Handle, StaticListers};
use crate::scheduler::listers::InformerListers;
use crate::scheduler::{Profile, Scheduler};

pub use options::{Flags, parse};

/// Upstream's name, and defaults from KubeSchedulerConfiguration v1.
pub const DEFAULTS: ComponentDefaults = ComponentDefaults {
    name: "kube-scheduler",
    qps: 50.0,
    burst: 100,
    port: 10259,
    tolerate_lookup_failure: true,
};

/// Loads and checks the configuration, then runs the scheduler until SIGTERM/SIGINT.
pub async fn run(flags: Flags, overrides: FlagOverrides) -> anyhow::Result<()> {
    let mut config = match &flags.config {
        Some(path) => config::load(path)?,
        None => config::default_config(),
    };
    config::apply_flag_overrides(&mut config, &overrides);
    config::validate(&config)?;
    // Build every profile once without a cluster, so bad plugin settings stop start-up with one line.
    profile::build_frameworks(&config, &Handle::for_tests(StaticListers::default()))?;
    let common = options::control_plane_flags(&flags.common, &config);
    app::run(DEFAULTS, &common, move |context| schedule(context, config)).await?;
    Ok(())
}

async fn schedule(context: ComponentContext, config: Config) {
    let factory = SharedInformerFactory::new(context.client.clone());
    let listers = InformerListers::new(&factory);
    let handle = Handle {
        listers: Arc::new(listers.clone()),
        client: Some(context.client.clone()),
    };
    let frameworks = match profile::build_frameworks(&config, &handle) {
        Ok(frameworks) => frameworks,
        Err(e) => {
            tracing::error!("{e}");
            return;
        }
    };
    let queue = Arc::new(profile::build_queue(&config, &frameworks));
    let instance = component_base::leaderelection::default_identity();
    let profiles: HashMap<String, Profile> = frameworks
        .into_iter()
        .map(|(name, framework)| {
            let recorder =
                EventRecorder::new(context.client.clone(), &name, &format!("{name}-{instance}"));
            (
                name,
                Profile {
                    framework,
                    recorder,
                },
            )
        })
        .collect();
    let scheduler = Scheduler::new(
        context.client.clone(),
        &factory,
        profiles,
        queue,
        config.percentage_of_nodes_to_score,
    );
    factory.start(context.stop.clone());
    scheduler.run(listers, context.stop).await;
}
