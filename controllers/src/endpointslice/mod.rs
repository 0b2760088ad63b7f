//! The EndpointSlice controller (upstream pkg/controller/endpointslice): every Service with a selector gets
//! discovery.k8s.io/v1 EndpointSlices listing the pods it selects, with their readiness, node and zone.

pub mod endpoints;
pub mod reconciler;
pub mod tracker;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use component_base::client::error_message;
use component_base::events::EventRecorder;
use component_base::informer::{InformerEvent, ObjectKey, SharedInformer, index};
use component_base::workqueue::{
    BucketRateLimiter, ItemExponentialFailureRateLimiter, MaxOfRateLimiter, RateLimitingQueue,
};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};

use crate::context::{ControllerContext, StartError};
use crate::pod::Pod;
use crate::serviceaccount::is_namespace_terminating;
use crate::worker::run_workers;
use endpoints::{CONTROLLER_NAME, LABEL_MANAGED_BY};
use reconciler::{Changes, Input, managed_slices, reconcile};
use tracker::{ServiceKey, SliceTracker, TriggerTimeTracker, service_of, services_to_update};

/// Upstream's canonical name.
pub const NAME: &str = "endpointslice-controller";
/// The ServiceAccount the controller runs as.
const ACCOUNT: &str = "endpointslice-controller";
/// Upstream's queue name.
const QUEUE: &str = "endpoint_slice";
/// The event source.
const COMPONENT: &str = "endpoint-slice-controller";
/// The least delay before a Service is synced for a change to one of its slices, so bursts of our own
/// writes coalesce.
const SLICE_CHANGE_MIN_SYNC_DELAY: Duration = Duration::from_secs(1);
/// Failed syncs of one Service retried before it is dropped until its next change.
const MAX_RETRIES: u32 = 15;

/// Why a Service could not be synced.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("EndpointSlice informer cache is out of date")]
    StaleCache,
    #[error("failed to create EndpointSlice for Service {service}: {}", error_message(.source))]
    Create {
        service: String,
        source: kube::Error,
    },
    #[error("failed to update {slice} EndpointSlice for Service {service}: {}", error_message(.source))]
    Update {
        slice: String,
        service: String,
        source: kube::Error,
    },
    #[error("failed to delete {slice} EndpointSlice for Service {service}: {}", error_message(.source))]
    Delete {
        slice: String,
        service: String,
        source: kube::Error,
    },
    #[error("{0}")]
    Pods(String),
}

/// What every sync reads and writes.
#[derive(Clone)]
struct Controller {
    client: Client,
    recorder: EventRecorder,
    services: SharedInformer<Service>,
    pods: SharedInformer<Pod>,
    nodes: SharedInformer<Node>,
    slices: SharedInformer<EndpointSlice>,
    tracker: Arc<SliceTracker>,
    trigger_times: Arc<TriggerTimeTracker>,
    max_endpoints_per_slice: usize,
}

/// The queue of upstream's service queue: per-Service backoff from 1 s (a sync can mean many writes) to
/// 1000 s, and 10 retries per second overall.
fn service_queue() -> RateLimitingQueue<String> {
    let limiter = MaxOfRateLimiter::new(vec![
        Box::new(ItemExponentialFailureRateLimiter::new(
            Duration::from_secs(1),
            Duration::from_secs(1000),
        )),
        Box::new(BucketRateLimiter::new(10.0, 100)),
    ]);
    RateLimitingQueue::new(QUEUE, limiter)
}

/// Runs the controller until `ctx.stop` with `--concurrent-service-endpoint-syncs` workers.
pub fn start(ctx: ControllerContext) -> BoxFuture<'static, Result<(), StartError>> {
    Box::pin(async move {
        let client = ctx.client(ACCOUNT).await?;
        let controller = Controller {
            recorder: ctx.recorder(client.clone(), COMPONENT),
            client,
            services: ctx.informers.informer::<Service>(),
            pods: ctx.informers.informer::<Pod>(),
            nodes: ctx.informers.informer::<Node>(),
            slices: ctx.informers.informer::<EndpointSlice>(),
            tracker: Arc::default(),
            trigger_times: Arc::default(),
            max_endpoints_per_slice: ctx.flags.max_endpoints_per_slice,
        };
        controller
            .services
            .add_index(index::NAMESPACE, index::by_namespace());
        controller
            .pods
            .add_index(index::NAMESPACE, index::by_namespace());
        controller
            .slices
            .add_index(index::NAMESPACE, index::by_namespace());
        let queue = service_queue();
        let batch = ctx.flags.endpointslice_updates_batch_period;
        spawn_handlers(&controller, &queue, batch);

        let c = &controller;
        tokio::select! {
            () = ctx.stop.cancelled() => return Ok(()),
            () = async {
                tokio::join!(
                    c.pods.wait_for_sync(),
                    c.services.wait_for_sync(),
                    c.slices.wait_for_sync(),
                    c.nodes.wait_for_sync()
                );
            } => {}
        }
        tracing::info!("Starting endpoint slice controller");
        let workers = ctx.flags.concurrent_service_endpoint_syncs;
        let retries = queue.clone();
        let sync = move |key: String| {
            let controller = controller.clone();
            let retries = retries.clone();
            async move {
                let result = controller.sync_service(&key).await;
                match result {
                    // As upstream: past the retry budget the Service waits for its next change.
                    Err(e) if retries.num_requeues(&key) >= MAX_RETRIES => {
                        tracing::info!(%key, "Retry budget exceeded, dropping service out of the queue: {e}");
                        Ok(())
                    }
                    result => result,
                }
            }
        };
        run_workers(NAME, queue, workers, ctx.stop.clone(), sync).await;
        tracing::info!("Shutting down endpoint slice controller");
        Ok(())
    })
}

/// Queues `key` after `delay` (at once when zero).
fn add_after(queue: &RateLimitingQueue<String>, key: String, delay: Duration) {
    if delay.is_zero() {
        queue.add(key);
    } else {
        queue.add_after(key, delay);
    }
}

/// Maps informer events to Service keys.
fn spawn_handlers(controller: &Controller, queue: &RateLimitingQueue<String>, batch: Duration) {
    let mut service_events = controller.services.subscribe();
    let enqueue = queue.clone();
    tokio::spawn(async move {
        while let Some(event) = service_events.recv().await {
            let service = match event {
                InformerEvent::Added(s) | InformerEvent::Updated { new: s, .. } => s,
                InformerEvent::Deleted(s) => s,
            };
            enqueue.add(ObjectKey::of(service.as_ref()).to_string());
        }
    });

    let mut pod_events = controller.pods.subscribe();
    let enqueue = queue.clone();
    let services = controller.services.clone();
    tokio::spawn(async move {
        while let Some(event) = pod_events.recv().await {
            let (old, new) = match &event {
                InformerEvent::Added(pod) => (None, Some(pod.as_ref())),
                InformerEvent::Updated { old, new } => (Some(old.as_ref()), Some(new.as_ref())),
                InformerEvent::Deleted(pod) => (Some(pod.as_ref()), None),
            };
            let Some(namespace) = new.or(old).and_then(|p| p.metadata.namespace.clone()) else {
                continue;
            };
            let candidates = services.by_index(index::NAMESPACE, &namespace);
            for name in services_to_update(&candidates, old, new) {
                add_after(&enqueue, format!("{namespace}/{name}"), batch);
            }
        }
    });

    let mut slice_events = controller.slices.subscribe();
    let enqueue = queue.clone();
    let tracker = controller.tracker.clone();
    let delay = batch.max(SLICE_CHANGE_MIN_SYNC_DELAY);
    tokio::spawn(async move {
        let managed = |slice: &EndpointSlice| {
            let labels = slice.metadata.labels.as_ref();
            labels
                .and_then(|l| l.get(LABEL_MANAGED_BY))
                .map(String::as_str)
                == Some(CONTROLLER_NAME)
        };
        let queue_service = |slice: &EndpointSlice| {
            if let Some((namespace, name)) = service_of(slice) {
                add_after(&enqueue, format!("{namespace}/{name}"), delay);
            }
        };
        while let Some(event) = slice_events.recv().await {
            match event {
                InformerEvent::Added(slice) => {
                    if managed(&slice) && tracker.should_sync(&slice) {
                        queue_service(&slice);
                    }
                }
                InformerEvent::Updated { old, new } => {
                    if service_of(&old) != service_of(&new) {
                        queue_service(&new);
                        queue_service(&old);
                    } else if managed(&old) != managed(&new)
                        || (managed(&new) && tracker.should_sync(&new))
                    {
                        queue_service(&new);
                    }
                }
                InformerEvent::Deleted(slice) => {
                    // A deletion we did not make (a user's, the garbage collector's) must be repaired.
                    if managed(&slice) && tracker.has(&slice) && !tracker.handle_deletion(&slice) {
                        queue_service(&slice);
                    }
                }
            }
        }
    });
}

impl Controller {
    /// Brings the slices of Service `key` (`namespace/name`) to what its pods want.
    async fn sync_service(&self, key: &str) -> Result<(), SyncError> {
        let object_key = ObjectKey::parse(key);
        let service_key: ServiceKey = (
            object_key.namespace.clone().unwrap_or_default(),
            object_key.name.clone(),
        );
        let Some(service) = self.services.get(&object_key) else {
            // Deleted: the garbage collector removes its slices through their owner reference.
            self.trigger_times.delete_service(&service_key);
            self.tracker.delete_service(&service_key);
            return Ok(());
        };
        let spec = service.spec.as_ref();
        if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
            return Ok(());
        }
        // Services without a selector get their slices from someone else.
        let Some(selector) = tracker::selector(&service) else {
            return Ok(());
        };
        let namespace = &service_key.0;
        let pods: Vec<Arc<Pod>> = self
            .pods
            .by_index(index::NAMESPACE, namespace)
            .into_iter()
            .filter(|pod| tracker::selector_matches(selector, pod.metadata.labels.as_ref()))
            .collect();
        let slices = managed_slices(&service, &self.slices.by_index(index::NAMESPACE, namespace));
        if self.tracker.stale(&service_key, &slices) {
            return Err(SyncError::StaleCache);
        }
        let trigger_time = self.trigger_times.compute(&service, &pods);
        let nodes = self.nodes.clone();
        let changes = reconcile(&Input {
            service: &service,
            pods: &pods,
            node: |name: &str| {
                nodes.get(&ObjectKey {
                    namespace: None,
                    name: name.to_string(),
                })
            },
            existing: &slices,
            max_endpoints_per_slice: self.max_endpoints_per_slice,
            trigger_time,
        });
        let errors = changes.errors.join(", ");
        let result = self.apply(key, changes).await;
        if let Err(e) = &result {
            let reference = ObjectReference {
                api_version: Some("v1".to_string()),
                kind: Some("Service".to_string()),
                namespace: service.metadata.namespace.clone(),
                name: service.metadata.name.clone(),
                uid: service.metadata.uid.clone(),
                resource_version: service.metadata.resource_version.clone(),
                ..ObjectReference::default()
            };
            let note = format!("Error updating Endpoint Slices for Service {key}: {e}");
            self.recorder
                .warning(&reference, "FailedToUpdateEndpointSlices", "Update", note);
        }
        result?;
        if errors.is_empty() {
            Ok(())
        } else {
            Err(SyncError::Pods(errors))
        }
    }

    /// Writes the reconciler's changes: creates, then updates, then deletes, as upstream.
    async fn apply(&self, service: &str, changes: Changes) -> Result<(), SyncError> {
        let namespace = service.split_once('/').map_or("", |(ns, _)| ns);
        let api = Api::<EndpointSlice>::namespaced(self.client.clone(), namespace);
        for slice in changes.create {
            match api.create(&PostParams::default(), &slice).await {
                Ok(created) => self.tracker.update(&created),
                // Creates keep failing in a terminating namespace: drop the work.
                Err(e) if is_namespace_terminating(&e) => return Ok(()),
                Err(source) => {
                    return Err(SyncError::Create {
                        service: service.to_string(),
                        source,
                    });
                }
            }
        }
        for slice in changes.update {
            let name = slice.metadata.name.clone().unwrap_or_default();
            match api.replace(&name, &PostParams::default(), &slice).await {
                Ok(updated) => self.tracker.update(&updated),
                Err(source) => {
                    return Err(SyncError::Update {
                        slice: name,
                        service: service.to_string(),
                        source,
                    });
                }
            }
        }
        for slice in changes.delete {
            let name = slice.metadata.name.clone().unwrap_or_default();
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => self.tracker.expect_deletion(&slice),
                Err(kube::Error::Api(status)) if status.is_not_found() => {
                    self.tracker.expect_deletion(&slice);
                }
                Err(source) => {
                    return Err(SyncError::Delete {
                        slice: name,
                        service: service.to_string(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }
}
