//! The Deployment controller (upstream `pkg/controller/deployment`): rolls Deployments out through
//! ReplicaSets, one per pod template, with the RollingUpdate or Recreate strategy, scales them in
//! proportion, rolls back, cleans up old revisions and reports progress in the Deployment's status.

pub mod claim;
pub mod hash;
mod new_replica_set;
pub mod plan;
pub mod revision;
mod rollout;
mod sync;
pub mod util;

use std::sync::Arc;

use component_base::events::EventRecorder;
use component_base::informer::{InformerEvent, ObjectKey, SharedInformer, index};
use component_base::workqueue::RateLimitingQueue;
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;

use crate::context::{ControllerContext, StartError};
use crate::pod::Pod;
use crate::pod_util::is_pod_active;
use crate::worker::run_workers;

pub use sync::SyncError;

/// The controller's ServiceAccount and event source.
pub const CONTROLLER_NAME: &str = "deployment-controller";
/// The work queue's name (the `workqueue_*` metrics' label).
const QUEUE_NAME: &str = "deployment";

/// The Deployment controller's caches, client and queue.
pub(crate) struct Controller {
    client: Client,
    recorder: EventRecorder,
    deployments: SharedInformer<Deployment>,
    replica_sets: SharedInformer<ReplicaSet>,
    pods: SharedInformer<Pod>,
    queue: RateLimitingQueue<ObjectKey>,
}

/// Starts the Deployment controller (upstream `startDeploymentController`).
pub fn start(ctx: ControllerContext) -> BoxFuture<'static, Result<(), StartError>> {
    Box::pin(async move {
        let client = ctx.client(CONTROLLER_NAME).await?;
        let recorder = ctx.recorder(client.clone(), CONTROLLER_NAME);
        let deployments = ctx.informers.informer::<Deployment>();
        let replica_sets = ctx.informers.informer::<ReplicaSet>();
        let pods = ctx.informers.informer::<Pod>();
        deployments.add_index(index::NAMESPACE, index::by_namespace());
        replica_sets.add_index(index::NAMESPACE, index::by_namespace());
        pods.add_index(index::OWNER_UID, index::by_owner_uid());
        let controller = Arc::new(Controller {
            client,
            recorder,
            deployments,
            replica_sets,
            pods,
            queue: RateLimitingQueue::with_default_rate_limiter(QUEUE_NAME),
        });
        let mut handlers = tokio::task::JoinSet::new();
        handlers.spawn(controller.clone().handle_deployments());
        handlers.spawn(controller.clone().handle_replica_sets());
        handlers.spawn(controller.clone().handle_pods());
        tokio::select! {
            () = ctx.stop.cancelled() => return Ok(()),
            () = async {
                controller.deployments.wait_for_sync().await;
                controller.replica_sets.wait_for_sync().await;
                controller.pods.wait_for_sync().await;
            } => {}
        }
        tracing::info!(controller = "deployment", "Starting controller");
        let workers = ctx.flags.concurrent_deployment_syncs;
        let sync = {
            let controller = controller.clone();
            move |key: ObjectKey| {
                let controller = controller.clone();
                async move { controller.sync_deployment(&key).await }
            }
        };
        run_workers(
            "deployment",
            controller.queue.clone(),
            workers,
            ctx.stop.clone(),
            sync,
        )
        .await;
        handlers.abort_all();
        tracing::info!(controller = "deployment", "Shutting down controller");
        Ok(())
    })
}

impl Controller {
    fn enqueue(&self, d: &Deployment) {
        self.queue.add(ObjectKey::of(d));
    }

    /// Deployment changes: every one is synced.
    async fn handle_deployments(self: Arc<Self>) {
        let mut events = self.deployments.subscribe();
        while let Some(event) = events.recv().await {
            match event {
                InformerEvent::Added(d) | InformerEvent::Deleted(d) => self.enqueue(&d),
                InformerEvent::Updated { new, .. } => self.enqueue(&new),
            }
        }
    }

    /// ReplicaSet changes wake the Deployment that controls them, or for orphans every Deployment whose
    /// selector matches (it may adopt them).
    async fn handle_replica_sets(self: Arc<Self>) {
        let mut events = self.replica_sets.subscribe();
        while let Some(event) = events.recv().await {
            match event {
                InformerEvent::Added(rs) if rs.metadata.deletion_timestamp.is_some() => {
                    self.replica_set_deleted(&rs);
                }
                InformerEvent::Added(rs) => {
                    match claim::controller_ref(rs.metadata.owner_references.as_ref()) {
                        Some(owner) => self.enqueue_owner(&rs, owner),
                        None => self.enqueue_matching(&rs),
                    }
                }
                InformerEvent::Updated { old, new } => self.replica_set_updated(&old, &new),
                InformerEvent::Deleted(rs) => self.replica_set_deleted(&rs),
            }
        }
    }

    fn replica_set_updated(&self, old: &ReplicaSet, new: &ReplicaSet) {
        if old.metadata.resource_version == new.metadata.resource_version {
            return;
        }
        let old_ref = claim::controller_ref(old.metadata.owner_references.as_ref());
        let new_ref = claim::controller_ref(new.metadata.owner_references.as_ref());
        let ref_changed = old_ref != new_ref;
        if ref_changed && let Some(old_ref) = old_ref {
            self.enqueue_owner(old, old_ref);
        }
        if let Some(new_ref) = new_ref {
            self.enqueue_owner(new, new_ref);
            return;
        }
        if ref_changed || old.metadata.labels != new.metadata.labels {
            self.enqueue_matching(new);
        }
    }

    fn replica_set_deleted(&self, rs: &ReplicaSet) {
        if let Some(owner) = claim::controller_ref(rs.metadata.owner_references.as_ref()) {
            self.enqueue_owner(rs, owner);
        }
    }

    /// The Deployment `owner` names, if it is still that object.
    fn resolve(
        &self,
        namespace: Option<&String>,
        owner: &OwnerReference,
    ) -> Option<Arc<Deployment>> {
        if owner.kind != "Deployment" {
            return None;
        }
        let key = ObjectKey {
            namespace: namespace.cloned(),
            name: owner.name.clone(),
        };
        self.deployments
            .get(&key)
            .filter(|d| d.metadata.uid.as_deref() == Some(owner.uid.as_str()))
    }

    fn enqueue_owner(&self, rs: &ReplicaSet, owner: &OwnerReference) {
        if let Some(d) = self.resolve(rs.metadata.namespace.as_ref(), owner) {
            self.enqueue(&d);
        }
    }

    /// Deployments whose (non-empty) selector matches an orphan ReplicaSet's labels.
    fn enqueue_matching(&self, rs: &ReplicaSet) {
        let Some(labels) = rs.metadata.labels.as_ref().filter(|l| !l.is_empty()) else {
            return;
        };
        let namespace = rs.metadata.namespace.clone().unwrap_or_default();
        for d in self.deployments.by_index(index::NAMESPACE, &namespace) {
            let Some(selector) = d.spec.as_ref().map(|s| &s.selector) else {
                continue;
            };
            if !claim::selects_everything(selector) && claim::selector_matches(selector, labels) {
                self.enqueue(&d);
            }
        }
    }

    /// Pods leaving wake the Deployment their ReplicaSet belongs to when the rollout waits for them.
    async fn handle_pods(self: Arc<Self>) {
        let mut events = self.pods.subscribe();
        while let Some(event) = events.recv().await {
            let pod = match event {
                InformerEvent::Deleted(pod) => pod,
                // Terminating (or finished) pods stop counting at once, before they are deleted.
                InformerEvent::Updated { old, new }
                    if is_pod_active(&old) && !is_pod_active(&new) =>
                {
                    new
                }
                _ => continue,
            };
            let Some((rs, d)) = self.owners_of_pod(&pod) else {
                continue;
            };
            if self.rollout_waits_for(&d, &rs) {
                self.enqueue(&d);
            }
        }
    }

    /// Whether the pod just gone from `rs` may be the one `d`'s rollout waits for. A Recreate Deployment
    /// waits for every old pod to be gone. A rolling update scales the new ReplicaSet up only once an old
    /// one's scale-down has landed (maxSurge counts active pods, [`plan::pods_to_count`]): looking again
    /// when its active pods reach its spec.replicas, rather than at the ReplicaSet controller's next
    /// status write, starts the next step a round trip earlier.
    fn rollout_waits_for(&self, d: &Deployment, rs: &ReplicaSet) -> bool {
        if util::strategy_type(d) == "Recreate" {
            let remaining: usize = self
                .owned_replica_sets(d)
                .iter()
                .map(|rs| self.pods_of(rs).len())
                .sum();
            return remaining == 0;
        }
        let active = self.pods_of(rs).iter().filter(|p| is_pod_active(p)).count();
        usize::try_from(util::rs_replicas(rs)).is_ok_and(|replicas| active == replicas)
    }

    /// The ReplicaSet controlling `pod` and the Deployment controlling that ReplicaSet.
    fn owners_of_pod(&self, pod: &Pod) -> Option<(Arc<ReplicaSet>, Arc<Deployment>)> {
        let owner = claim::controller_ref(pod.metadata.owner_references.as_ref())?;
        if owner.kind != "ReplicaSet" {
            return None;
        }
        let key = ObjectKey {
            namespace: pod.metadata.namespace.clone(),
            name: owner.name.clone(),
        };
        let rs = self
            .replica_sets
            .get(&key)
            .filter(|rs| rs.metadata.uid.as_deref() == Some(owner.uid.as_str()))?;
        let rs_owner = claim::controller_ref(rs.metadata.owner_references.as_ref())?;
        let d = self.resolve(rs.metadata.namespace.as_ref(), rs_owner)?;
        Some((rs, d))
    }

    /// The cached ReplicaSets the Deployment controls (no adoption: for event handlers).
    fn owned_replica_sets(&self, d: &Deployment) -> Vec<Arc<ReplicaSet>> {
        let namespace = d.metadata.namespace.clone().unwrap_or_default();
        self.replica_sets
            .by_index(index::NAMESPACE, &namespace)
            .into_iter()
            .filter(|rs| {
                claim::controller_ref(rs.metadata.owner_references.as_ref())
                    .is_some_and(|o| Some(o.uid.as_str()) == d.metadata.uid.as_deref())
            })
            .collect()
    }

    /// The active cached pods of each ReplicaSet, by its UID: what maxSurge counts besides spec.replicas.
    fn active_pods<'a>(&self, rss: impl IntoIterator<Item = &'a ReplicaSet>) -> plan::ActivePods {
        rss.into_iter()
            .map(|rs| {
                let active = self.pods_of(rs).iter().filter(|p| is_pod_active(p)).count();
                (
                    util::uid(rs).to_string(),
                    i32::try_from(active).unwrap_or(i32::MAX),
                )
            })
            .collect()
    }

    /// The cached pods the ReplicaSet controls (upstream `FilterPodsByOwner`).
    fn pods_of(&self, rs: &ReplicaSet) -> Vec<Arc<Pod>> {
        let Some(uid) = rs.metadata.uid.as_deref() else {
            return Vec::new();
        };
        self.pods
            .by_index(index::OWNER_UID, uid)
            .into_iter()
            .filter(|pod| {
                pod.metadata.namespace == rs.metadata.namespace
                    && claim::controller_ref(pod.metadata.owner_references.as_ref())
                        .is_some_and(|o| o.uid == uid)
            })
            .collect()
    }
}
