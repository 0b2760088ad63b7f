//! ferrokube-controller-manager: a drop-in replacement for kube-controller-manager. Shared informers feed
//! per-controller work queues; each controller reads from the caches, decides with pure functions, and
//! writes through its own client.

pub mod active_pods;
pub mod client_builder;
pub mod context;
pub mod controller_ref_manager;
pub mod deployment;
pub mod endpointslice;
pub mod expectations;
pub mod garbagecollector;
pub mod names;
pub mod namespace;
pub mod nodelifecycle;
pub mod options;
pub mod pod;
pub mod pod_control;
pub mod pod_status;
pub mod pod_util;
pub mod podgc;
pub mod replicaset;
pub mod root_ca_publisher;
pub mod serviceaccount;
pub mod taint_eviction;
pub mod worker;

use std::sync::Arc;

use clap::Parser;
use component_base::app::{self, ComponentContext, ComponentDefaults, ControlPlaneFlags};
use component_base::informer::SharedInformerFactory;
use component_base::version;
use futures::future::BoxFuture;
use tokio::task::JoinSet;

use crate::client_builder::ClientBuilder;
use crate::context::{ControllerContext, StartError};
use crate::names::ControllerSelection;
use crate::options::ControllerManagerFlags;

/// Upstream's name, and defaults from KubeControllerManagerConfiguration.
pub const DEFAULTS: ComponentDefaults = ComponentDefaults {
    name: "kube-controller-manager",
    qps: 20.0,
    burst: 30,
    port: 10257,
    tolerate_lookup_failure: false,
};

/// ferrokube-controller-manager's command line, upstream's flags.
#[derive(Parser, Debug)]
#[command(name = "ferrokube-controller-manager", version = version::long_version(),
          about = "ferrokube-controller-manager: a drop-in replacement for kube-controller-manager")]
pub struct Flags {
    #[command(flatten)]
    pub common: ControlPlaneFlags,
    #[command(flatten)]
    pub controller_manager: ControllerManagerFlags,
}

/// Runs a controller until its context's `stop`.
type StartFn = fn(ControllerContext) -> BoxFuture<'static, Result<(), StartError>>;

/// A controller ferrokube implements: its upstream name and how to run it.
pub struct ControllerDescriptor {
    /// Upstream's canonical name (`--controllers` also takes its alias).
    pub name: &'static str,
    /// Runs it.
    pub start: StartFn,
}

/// The controllers ferrokube implements.
pub const CONTROLLERS: &[ControllerDescriptor] = &[
    ControllerDescriptor {
        name: "deployment-controller",
        start: deployment::start,
    },
    ControllerDescriptor {
        name: "replicaset-controller",
        start: replicaset::start,
    },
    ControllerDescriptor {
        name: "replicationcontroller-controller",
        start: replicaset::start_replication_controller,
    },
    ControllerDescriptor {
        name: "garbage-collector-controller",
        start: garbagecollector::start,
    },
    ControllerDescriptor {
        name: "namespace-controller",
        start: namespace::start,
    },
    ControllerDescriptor {
        name: serviceaccount::NAME,
        start: serviceaccount::start,
    },
    ControllerDescriptor {
        name: root_ca_publisher::NAME,
        start: root_ca_publisher::start,
    },
    ControllerDescriptor {
        name: endpointslice::NAME,
        start: endpointslice::start,
    },
    ControllerDescriptor {
        name: "node-lifecycle-controller",
        start: nodelifecycle::start,
    },
    ControllerDescriptor {
        name: "taint-eviction-controller",
        start: taint_eviction::start,
    },
    ControllerDescriptor {
        name: "pod-garbage-collector-controller",
        start: podgc::start,
    },
];

/// Runs the controller-manager until SIGTERM/SIGINT.
pub async fn run(flags: Flags) -> anyhow::Result<()> {
    let selection = ControllerSelection::parse(&flags.controller_manager.controllers)
        .map_err(anyhow::Error::msg)?;
    let controller_manager = Arc::new(flags.controller_manager);
    let mut failure = None;
    app::run(DEFAULTS, &flags.common, |context| {
        run_controllers(context, controller_manager, selection, &mut failure)
    })
    .await?;
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// Starts every enabled controller and the informers they registered; a controller that fails to start
/// stops them all.
async fn run_controllers(
    component: ComponentContext,
    flags: Arc<ControllerManagerFlags>,
    selection: ControllerSelection,
    failure: &mut Option<StartError>,
) {
    // Logged here, not before: logging starts with the component.
    let implemented: Vec<&str> = CONTROLLERS.iter().map(|c| c.name).collect();
    let unimplemented = selection.unimplemented(&implemented);
    if !unimplemented.is_empty() {
        tracing::warn!(
            "not implemented by ferrokube, not started: {}",
            unimplemented.join(", ")
        );
    }
    for (flag, controller) in flags.not_run.given() {
        tracing::warn!(
            "{flag} is for the {controller} controller, which ferrokube does not run; ignored"
        );
    }
    let stop = component.stop.child_token();
    let clients = ClientBuilder::new(
        component.client.clone(),
        component.config,
        component.client_options,
        flags.use_service_account_credentials,
        stop.clone(),
    );
    let informers = SharedInformerFactory::new(component.client);
    let context = ControllerContext {
        informers,
        clients,
        flags,
        stop: stop.clone(),
        instance: component_base::leaderelection::default_identity(),
    };
    let mut running = JoinSet::new();
    for controller in CONTROLLERS.iter().filter(|c| selection.is_enabled(c.name)) {
        let name = controller.name;
        let future = (controller.start)(context.clone());
        running.spawn(async move { (name, future.await) });
        tracing::info!(controller = name, "Started controller");
    }
    context.informers.start(stop.clone());
    component.readiness.set("controllers", true);
    while let Some(joined) = running.join_next().await {
        match joined {
            Ok((_, Ok(()))) => {}
            Ok((name, Err(e))) => {
                tracing::error!(controller = name, "error starting controller: {e}");
                failure.get_or_insert(StartError::Invalid(format!("{name}: {e}")));
                stop.cancel();
            }
            Err(e) => {
                tracing::error!("a controller panicked: {e}");
                stop.cancel();
            }
        }
    }
    // With no controller left (or none selected that ferrokube implements) the component keeps serving
    // health and holding its lease until it is stopped, as upstream's does.
    stop.cancelled().await;
}
