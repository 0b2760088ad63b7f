//! The garbage collector (upstream pkg/controller/garbagecollector): monitors of every deletable resource
//! feed a graph of owners and dependents; attemptToDelete workers delete objects whose owners are all gone
//! (or drop their dead references), drive foreground deletion, and attemptToOrphan workers strip an
//! orphaning owner's references from its dependents. Resources are re-discovered every 30 s.

pub mod decision;
pub mod graph;
mod monitors;
mod operations;
mod typed;

pub use operations::discover;

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use component_base::events::EventRecorder;
use component_base::workqueue::RateLimitingQueue;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;
use tokio_util::sync::CancellationToken;

use crate::context::{ControllerContext, StartError};
use crate::worker::run_workers;
use decision::{Decision, OwnerState};
use graph::{Action, Change, FOREGROUND_DELETION, Graph, Identity, ORPHAN};
use monitors::{GraphChanges, Monitors};
use operations::{OperationError, Operations, RestMapper};

/// Upstream's controller name, also the event source.
const NAME: &str = "garbage-collector-controller";
/// The ServiceAccount the collector's clients authenticate as.
const ACCOUNT: &str = "generic-garbage-collector";
/// How often resources are re-discovered (upstream's syncPeriod).
const RESYNC_PERIOD: Duration = Duration::from_secs(30);
/// How many verified-absent owners are remembered (upstream's absentOwnerCache size).
const ABSENT_OWNER_CACHE_SIZE: usize = 500;

/// Why one item could not be processed; it is retried rate-limited.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Operation(#[from] OperationError),
    #[error("item {0} has not been observed by the monitors yet")]
    NotObserved(String),
}

/// Owners verified absent (upstream's absentOwnerCache): dependents of a known-absent owner need no GET.
#[derive(Default)]
struct AbsentOwners {
    set: HashSet<Identity>,
    order: VecDeque<Identity>,
}

impl AbsentOwners {
    fn add(&mut self, identity: Identity) {
        if self.set.insert(identity.clone()) {
            self.order.push_back(identity);
            if self.order.len() > ABSENT_OWNER_CACHE_SIZE
                && let Some(oldest) = self.order.pop_front()
            {
                self.set.remove(&oldest);
            }
        }
    }

    fn has(&self, identity: &Identity) -> bool {
        self.set.contains(identity)
    }
}

/// The collector's shared state.
struct GarbageCollector {
    graph: Mutex<Graph>,
    absent: Mutex<AbsentOwners>,
    operations: Operations,
    changes: GraphChanges,
    attempt_to_delete: RateLimitingQueue<String>,
    attempt_to_orphan: RateLimitingQueue<String>,
    recorder: EventRecorder,
}

/// Starts the garbage collector unless --enable-garbage-collector=false.
pub fn start(ctx: ControllerContext) -> BoxFuture<'static, Result<(), StartError>> {
    Box::pin(async move {
        if !ctx.flags.enable_garbage_collector {
            tracing::info!("garbage collector disabled by --enable-garbage-collector=false");
            return Ok(());
        }
        // Upstream doubles the qps of the collector's metadata client, which makes all of its gets, deletes
        // and patches.
        let client = ctx.clients.client_scaled(ACCOUNT, 2.0, 1).await?;
        // Discovery and events go through another client, as upstream's discovery and typed clients: on
        // the metadata client's limit each rediscovery would hold back the next deletions.
        let discovery_client = ctx.clients.client(ACCOUNT).await?;
        let collector = Arc::new(GarbageCollector {
            graph: Mutex::default(),
            absent: Mutex::default(),
            operations: Operations {
                client: client.clone(),
                mapper: Arc::new(RwLock::new(RestMapper::default())),
            },
            changes: GraphChanges::new(),
            attempt_to_delete: RateLimitingQueue::with_default_rate_limiter(
                "garbage_collector_attempt_to_delete",
            ),
            attempt_to_orphan: RateLimitingQueue::with_default_rate_limiter(
                "garbage_collector_attempt_to_orphan",
            ),
            recorder: ctx.recorder(discovery_client.clone(), NAME),
        });
        let stop = ctx.stop.clone();
        let clients = ctx.clients.clone();
        let more_clients: monitors::ClientFactory = Box::new(move || {
            clients
                .root_connection()
                .inspect_err(|e| {
                    tracing::warn!("garbage collector: another client for monitors: {e}")
                })
                .ok()
        });
        // The monitors' lists and watches have a client and rate limit of their own, as upstream's
        // metadata informers have ("metadata-informers"): at start-up there are dozens of them, and in the
        // shared informers' queue they held back for seconds the watches the other controllers wait on.
        let mut monitors = Monitors::new(
            &ctx.informers,
            ctx.clients.root_connection()?,
            more_clients,
            collector.changes.clone(),
            stop.clone(),
        );
        // The first discovery must succeed before anything can be watched.
        loop {
            if collector.resync(&discovery_client, &mut monitors).await {
                break;
            }
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        tokio::spawn(collector.clone().process_graph_changes(stop.clone()));
        // Rediscovery runs while the monitors sync, as upstream's Sync runs beside its wait: a resource
        // that went away just after discovery (a CRD being deleted) never lists, and only rediscovery
        // stops its monitor.
        let synced = monitors.synced();
        let rediscover = {
            let collector = collector.clone();
            let stop = stop.clone();
            async move {
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(RESYNC_PERIOD) => {}
                    }
                    collector.resync(&discovery_client, &mut monitors).await;
                }
            }
        };
        let collect = {
            let collector = collector.clone();
            let workers = ctx.flags.concurrent_gc_syncs;
            async move {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = synced => {}
                }
                tracing::info!(
                    "garbage collector: all resource monitors have synced, proceeding to collect garbage"
                );
                collector.collect(workers, stop).await;
            }
        };
        tokio::join!(rediscover, collect);
        collector.changes.queue.shut_down();
        Ok(())
    })
}

impl GarbageCollector {
    /// Runs `workers` attemptToDelete and as many attemptToOrphan workers until `stop`.
    async fn collect(self: Arc<Self>, workers: usize, stop: CancellationToken) {
        let deleters = run_workers(
            NAME,
            self.attempt_to_delete.clone(),
            workers,
            stop.clone(),
            {
                let collector = self.clone();
                move |uid: String| {
                    let collector = collector.clone();
                    async move { collector.attempt_to_delete_worker(&uid).await }
                }
            },
        );
        let orphaners = run_workers(NAME, self.attempt_to_orphan.clone(), workers, stop, {
            let collector = self.clone();
            move |uid: String| {
                let collector = collector.clone();
                async move { collector.attempt_to_orphan_worker(&uid).await }
            }
        });
        tokio::join!(deleters, orphaners);
    }

    /// Re-discovers resources: refreshes the REST mapper and the set of monitors. Whether discovery
    /// succeeded.
    async fn resync(&self, client: &Client, monitors: &mut Monitors) -> bool {
        let discovery = match operations::discover(client).await {
            Ok(discovery) => discovery,
            Err(e) => {
                tracing::warn!("garbage collector: discovery failed: {e}");
                return false;
            }
        };
        let resources = operations::deletable_resources(&discovery);
        if resources.is_empty() {
            tracing::warn!("garbage collector: no resources reported by discovery, skipping sync");
            return false;
        }
        *self
            .operations
            .mapper
            .write()
            .unwrap_or_else(|e| e.into_inner()) = RestMapper::from_discovery(&discovery);
        if monitors.sync(&resources) {
            tracing::info!(
                resources = resources.len(),
                "garbage collector: synced monitors with discovered resources"
            );
        }
        true
    }

    /// The single graph builder loop (upstream runProcessGraphChanges).
    async fn process_graph_changes(self: Arc<Self>, stop: CancellationToken) {
        let queue = self.changes.queue.clone();
        let shut_down = {
            let queue = queue.clone();
            async move {
                stop.cancelled().await;
                queue.shut_down();
            }
        };
        let process = async {
            while let Some(item) = queue.get().await {
                let actions = {
                    let mut graph = self.graph.lock().unwrap_or_else(|e| e.into_inner());
                    graph.process(&item.change)
                };
                self.apply(actions).await;
                queue.forget(&item);
                queue.done(&item);
            }
        };
        tokio::join!(shut_down, process);
    }

    async fn apply(&self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::AttemptToDelete(uid) => self.attempt_to_delete.add(uid),
                Action::AttemptToDeleteRateLimited(uid) => {
                    self.attempt_to_delete.add_rate_limited(uid);
                }
                Action::AttemptToOrphan(uid) => self.attempt_to_orphan.add(uid),
                Action::Absent(identity) => self.absent().add(identity),
                Action::InvalidNamespaceOwnerRef { dependent, owner } => {
                    let regarding = ObjectReference {
                        api_version: Some(dependent.api_version.clone()),
                        kind: Some(dependent.kind.clone()),
                        namespace: Some(dependent.namespace.clone()),
                        name: Some(dependent.name.clone()),
                        uid: Some(dependent.uid.clone()),
                        ..ObjectReference::default()
                    };
                    let note = format!(
                        "ownerRef {owner} does not exist in namespace {:?}",
                        dependent.namespace
                    );
                    self.recorder.warning(
                        &regarding,
                        "OwnerRefInvalidNamespace",
                        "GarbageCollect",
                        note,
                    );
                }
            }
        }
    }

    fn absent(&self) -> std::sync::MutexGuard<'_, AbsentOwners> {
        self.absent.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn node(&self, uid: &str) -> Option<graph::Node> {
        self.graph
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(uid)
            .cloned()
    }

    /// upstream attemptToDeleteWorker: skips stale virtual items, requeues items not observed yet.
    async fn attempt_to_delete_worker(&self, uid: &str) -> Result<(), SyncError> {
        let Some(node) = self.node(uid) else {
            return Ok(());
        };
        match self.attempt_to_delete_item(&node).await {
            Ok(AttemptOutcome::VirtualDeleteQueued) => Ok(()),
            Ok(AttemptOutcome::Done) if !node.observed => {
                // Requeued until a monitor sees it, so a virtual node for an object created and removed
                // while a watch was down cannot linger (upstream issue 56121).
                Err(SyncError::NotObserved(node.identity().to_string()))
            }
            Ok(AttemptOutcome::Done) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn attempt_to_delete_item(
        &self,
        item: &graph::Node,
    ) -> Result<AttemptOutcome, SyncError> {
        // Being deleted is a one-way trip: the deletion will be observed and the dependents handled then.
        if item.being_deleted && !item.deleting_dependents {
            return Ok(AttemptOutcome::Done);
        }
        // Upstream reads the item and each owner live first, with a TODO that only virtual nodes need it.
        // Here an observed item is decided from the graph when each owner is observed there or known
        // absent; a delete so decided carries the observed resourceVersion, so the apiserver refuses it if
        // the item changed since, and `Operations::delete` then re-reads it.
        if item.observed {
            if item.deleting_dependents {
                self.process_deleting_dependents(item).await?;
                return Ok(AttemptOutcome::Done);
            }
            if self.delete_as_graph_decides(item).await? {
                return Ok(AttemptOutcome::Done);
            }
        }
        let ops = &self.operations;
        let latest = match ops.get(item.identity()).await? {
            Some(latest)
                if latest.metadata.uid.as_deref() == Some(item.identity().uid.as_str()) =>
            {
                latest
            }
            _ => {
                // Absent (or another object by that name): let the graph builder drop the node.
                self.changes.push(Change::Delete {
                    identity: item.identity().clone(),
                    virtual_: true,
                });
                return Ok(AttemptOutcome::VirtualDeleteQueued);
            }
        };
        if item.deleting_dependents {
            self.process_deleting_dependents(item).await?;
            return Ok(AttemptOutcome::Done);
        }
        let owners = latest.metadata.owner_references.clone().unwrap_or_default();
        if owners.is_empty() {
            return Ok(AttemptOutcome::Done);
        }
        let mut classified = Vec::with_capacity(owners.len());
        for reference in &owners {
            match self.owner_state(reference, item).await {
                Ok(state) => classified.push((reference.clone(), state)),
                // A cluster-scoped object naming a namespaced owner: retrying cannot help.
                Err(OwnerLookup::NamespacedOwnerOfClusterScoped) => {
                    tracing::info!(item = %item.identity(), owner = %reference.uid,
                        "cluster-scoped item refers to a namespaced owner");
                    return Ok(AttemptOutcome::Done);
                }
                Err(OwnerLookup::Operation(e)) => return Err(e.into()),
            }
        }
        let (has_dependents, dependent_deleting_dependents) = {
            let graph = self.graph.lock().unwrap_or_else(|e| e.into_inner());
            let dependents = graph.dependents(&item.identity().uid);
            (
                !dependents.is_empty(),
                dependents.iter().any(|d| d.deleting_dependents),
            )
        };
        let finalizers = latest.metadata.finalizers.clone().unwrap_or_default();
        let decision = decision::decide(
            &classified,
            &finalizers,
            has_dependents,
            dependent_deleting_dependents,
        );
        tracing::debug!(item = %item.identity(), ?decision, "garbage collector: attemptToDelete");
        match decision {
            Decision::Keep => {}
            Decision::RemoveReferences(uids) => {
                ops.remove_owner_references(item.identity(), &uids).await?;
            }
            Decision::Delete {
                propagation,
                unblock_first,
            } => {
                let mut resource_version = latest.metadata.resource_version.clone();
                if unblock_first {
                    ops.unblock_owner_references(item.identity()).await?;
                    // The patch changed the version: delete whatever the object is now.
                    resource_version = None;
                }
                tracing::info!(item = %item.identity(), propagation = propagation.as_str(),
                    "garbage collector: deleting object");
                ops.delete(item.identity(), resource_version, &owners, propagation)
                    .await?;
            }
        }
        Ok(AttemptOutcome::Done)
    }

    /// Deletes `item` if the graph and the absent owners decide so; false when the live path must decide
    /// (an owner neither observed nor known absent, or any decision but a plain delete).
    async fn delete_as_graph_decides(&self, item: &graph::Node) -> Result<bool, SyncError> {
        if item.owners().is_empty() {
            return Ok(false);
        }
        let decision = {
            let graph = self.graph.lock().unwrap_or_else(|e| e.into_inner());
            let owners: Option<Vec<_>> = item
                .owners()
                .iter()
                .map(|reference| {
                    graph
                        .observed_owner_state(reference, &item.state)
                        .or_else(|| {
                            self.known_absent(reference, item)
                                .then_some(OwnerState::Dangling)
                        })
                        .map(|state| (reference.clone(), state))
                })
                .collect();
            let Some(owners) = owners else {
                return Ok(false);
            };
            let dependents = graph.dependents(&item.identity().uid);
            decision::decide(
                &owners,
                &item.state.finalizers,
                !dependents.is_empty(),
                dependents.iter().any(|d| d.deleting_dependents),
            )
        };
        let Decision::Delete {
            propagation,
            unblock_first: false,
        } = decision
        else {
            return Ok(false);
        };
        tracing::info!(item = %item.identity(), propagation = propagation.as_str(),
            "garbage collector: deleting object");
        let resource_version = Some(item.state.resource_version.clone());
        self.operations
            .delete(
                item.identity(),
                resource_version,
                item.owners(),
                propagation,
            )
            .await?;
        Ok(true)
    }

    /// The state of the owner `reference` of `item`, verified with a live GET (upstream isDangling and
    /// classifyReferences): the graph may lag.
    async fn owner_state(
        &self,
        reference: &OwnerReference,
        item: &graph::Node,
    ) -> Result<OwnerState, OwnerLookup> {
        if self.known_absent(reference, item) {
            return Ok(OwnerState::Dangling);
        }
        let mut owner = Identity::of_reference(reference, &item.identity().namespace);
        let namespaced = self
            .operations
            .namespaced(&reference.api_version, &reference.kind)?;
        if !namespaced {
            owner.namespace.clear();
        }
        if item.identity().namespace.is_empty() && namespaced {
            return Err(OwnerLookup::NamespacedOwnerOfClusterScoped);
        }
        match self.operations.get(&owner).await? {
            Some(live) if live.metadata.uid.as_deref() == Some(reference.uid.as_str()) => {
                Ok(decision::classify(
                    false,
                    live.metadata.deletion_timestamp.is_some(),
                    live.metadata.finalizers.as_deref().unwrap_or_default(),
                ))
            }
            _ => {
                self.absent().add(owner);
                Ok(OwnerState::Dangling)
            }
        }
    }

    /// Whether the owner `reference` of `item` was verified absent, as a cluster-scoped or a namespaced
    /// object.
    fn known_absent(&self, reference: &OwnerReference, item: &graph::Node) -> bool {
        let absent = self.absent();
        absent.has(&Identity::of_reference(reference, ""))
            || absent.has(&Identity::of_reference(
                reference,
                &item.identity().namespace,
            ))
    }

    /// An owner deleting in the foreground: finish once no dependent blocks it, else push the blocking
    /// dependents along (upstream processDeletingDependentsItem).
    async fn process_deleting_dependents(&self, item: &graph::Node) -> Result<(), SyncError> {
        let blocking: Vec<(String, bool)> = {
            let graph = self.graph.lock().unwrap_or_else(|e| e.into_inner());
            graph
                .blocking_dependents(&item.identity().uid)
                .into_iter()
                .map(|d| (d.identity().uid.clone(), d.deleting_dependents))
                .collect()
        };
        if blocking.is_empty() {
            tracing::info!(item = %item.identity(), "garbage collector: removing foregroundDeletion finalizer");
            self.operations
                .remove_finalizer(item.identity(), FOREGROUND_DELETION)
                .await?;
            return Ok(());
        }
        for (uid, deleting_dependents) in blocking {
            if !deleting_dependents {
                self.attempt_to_delete.add(uid);
            }
        }
        Ok(())
    }

    /// Removes the owner's references from all its dependents, then its orphan finalizer (upstream
    /// attemptToOrphanWorker).
    async fn attempt_to_orphan_worker(&self, uid: &str) -> Result<(), SyncError> {
        let Some(owner) = self.node(uid) else {
            return Ok(());
        };
        let dependents: Vec<Identity> = {
            let graph = self.graph.lock().unwrap_or_else(|e| e.into_inner());
            graph
                .dependents(uid)
                .into_iter()
                .map(|d| d.identity().clone())
                .collect()
        };
        let owner_uid = vec![uid.to_string()];
        let results = futures::future::join_all(
            dependents
                .iter()
                .map(|d| self.operations.remove_owner_references(d, &owner_uid)),
        )
        .await;
        if let Some(error) = results.into_iter().find_map(Result::err) {
            return Err(error.into());
        }
        self.operations
            .remove_finalizer(owner.identity(), ORPHAN)
            .await?;
        Ok(())
    }
}

/// How attemptToDeleteItem ended without error.
enum AttemptOutcome {
    Done,
    /// The item is absent: a virtual delete event was queued, no retry needed.
    VirtualDeleteQueued,
}

/// Why an owner could not be classified.
enum OwnerLookup {
    NamespacedOwnerOfClusterScoped,
    Operation(OperationError),
}

impl From<OperationError> for OwnerLookup {
    fn from(e: OperationError) -> Self {
        Self::Operation(e)
    }
}
