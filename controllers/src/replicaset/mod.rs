//! The ReplicaSet controller (upstream pkg/controller/replicaset), which also runs as the
//! ReplicationController manager (upstream pkg/controller/replication): keeps spec.replicas active pods
//! matching the selector, adopting orphans and releasing pods that stop matching, and reports their counts
//! in status.

mod controller;
mod handlers;
pub mod kind;
pub mod manage;
pub mod status;

use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::ReplicationController;

use component_base::informer::index;
use component_base::workqueue::RateLimitingQueue;

use crate::context::{ControllerContext, StartError};
use crate::expectations::UidTrackingExpectations;
use crate::pod::Pod;
use crate::pod_control::PodControl;
use crate::pod_util::{POD_CONTROLLER_INDEX, pod_controller_index};
use crate::worker::run_workers;

pub use controller::ReplicaSetController;
use kind::ReplicaKind;
use manage::BURST_REPLICAS;

/// Index of sets by the UID of their own controller (a Deployment), upstream `controllerUIDIndex`.
pub const CONTROLLER_UID_INDEX: &str = "controllerUID";

/// How one instance of the controller is named and identified.
struct Identity {
    /// Upstream's controller name, for logs.
    controller: &'static str,
    /// ServiceAccount it writes as.
    service_account: &'static str,
    /// Event source component.
    event_source: &'static str,
    /// Work queue name (the `workqueue_*` metrics' `name`).
    queue: &'static str,
}

/// Runs the ReplicaSet controller (`replicaset-controller`) until `ctx.stop`.
pub fn start(ctx: ControllerContext) -> BoxFuture<'static, Result<(), StartError>> {
    let workers = ctx.flags.concurrent_replicaset_syncs;
    let identity = Identity {
        controller: "replicaset-controller",
        service_account: "replicaset-controller",
        event_source: "replicaset-controller",
        queue: "replicaset",
    };
    Box::pin(run::<ReplicaSet>(ctx, identity, workers))
}

/// Runs the ReplicationController manager (`replicationcontroller-controller`) until `ctx.stop`.
pub fn start_replication_controller(
    ctx: ControllerContext,
) -> BoxFuture<'static, Result<(), StartError>> {
    let workers = ctx.flags.concurrent_rc_syncs;
    let identity = Identity {
        controller: "replicationcontroller-controller",
        service_account: "replication-controller",
        event_source: "replication-controller",
        queue: "replicationmanager",
    };
    Box::pin(run::<ReplicationController>(ctx, identity, workers))
}

async fn run<K: ReplicaKind>(
    ctx: ControllerContext,
    identity: Identity,
    workers: usize,
) -> Result<(), StartError> {
    let client = ctx.client(identity.service_account).await?;
    let recorder = ctx.recorder(client.clone(), identity.event_source);

    let sets = ctx.informers.informer::<K>();
    sets.add_index(
        CONTROLLER_UID_INDEX,
        controller::controller_uid_index::<K>(),
    );
    sets.add_index(index::NAMESPACE, index::by_namespace());
    let pods = ctx.informers.informer::<Pod>();
    pods.add_index(POD_CONTROLLER_INDEX, pod_controller_index());
    pods.add_index(index::NAMESPACE, index::by_namespace());

    let controller = Arc::new(ReplicaSetController::<K> {
        sets: sets.clone(),
        pods: pods.clone(),
        client: client.clone(),
        pod_control: PodControl::new(client, recorder),
        expectations: UidTrackingExpectations::new(),
        queue: RateLimitingQueue::with_default_rate_limiter(identity.queue),
        burst_replicas: BURST_REPLICAS,
    });
    handlers::spawn(controller.clone(), ctx.stop.clone());

    tokio::select! {
        () = ctx.stop.cancelled() => return Ok(()),
        _ = futures::future::join(sets.wait_for_sync(), pods.wait_for_sync()) => {}
    }
    tracing::info!(controller = identity.controller, "Starting controller");
    let queue = controller.queue.clone();
    run_workers(
        identity.controller,
        queue,
        workers,
        ctx.stop.clone(),
        move |key| {
            let controller = controller.clone();
            async move { controller.sync(key).await }
        },
    )
    .await;
    tracing::info!(controller = identity.controller, "Shutting down controller");
    Ok(())
}
