//! The node lifecycle controller (upstream pkg/controller/nodelifecycle): watches node heartbeats (the
//! Ready condition and the node's Lease), marks nodes that stop reporting Unknown, keeps the
//! TaintNodesByCondition NoSchedule taints in sync, adds the NoExecute not-ready/unreachable taints at a
//! per-zone rate (the taint eviction controller then evicts), and marks pods on unhealthy nodes not Ready.

pub mod health;
mod labels;
mod monitor;
pub mod pods;
pub mod tainter;
pub mod taints;
pub mod zone;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use component_base::client::error_message;
use component_base::events::EventRecorder;
use component_base::informer::{InformerEvent, ObjectKey, SharedInformer, index};
use component_base::workqueue::RateLimitingQueue;
use futures::future::BoxFuture;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, ObjectReference};
use kube::Client;
use tokio::time::Instant;

use crate::context::{ControllerContext, StartError};
use crate::pod::Pod;
use crate::worker::run_workers;
use health::NodeHealth;
use tainter::RateLimitedTimedQueue;
use taints::{NOT_READY, UNREACHABLE, taint};
use zone::Rates;

/// The ServiceAccount upstream runs it as.
const SERVICE_ACCOUNT: &str = "node-controller";
/// Upstream's event source component.
const EVENT_SOURCE: &str = "node-controller";
/// Namespace of the nodes' heartbeat Leases.
const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// Upstream's NodeEvictionPeriod: how often the NoExecute tainting queues are drained.
const NODE_EVICTION_PERIOD: Duration = Duration::from_millis(100);
/// Upstream's NodeHealthUpdateRetry and retrySleepTime.
const HEALTH_UPDATE_RETRIES: usize = 5;
const RETRY_SLEEP: Duration = Duration::from_millis(20);
/// Upstream's worker counts.
const NODE_UPDATE_WORKERS: usize = 8;
const POD_UPDATE_WORKERS: usize = 4;
/// Nodes with this label do not count towards their zone's disruption.
const LABEL_EXCLUDE_DISRUPTION: &str = "node.kubernetes.io/exclude-disruption";

/// Starts the controller.
pub fn start(ctx: ControllerContext) -> BoxFuture<'static, Result<(), StartError>> {
    let pods = ctx.informers.informer::<Pod>();
    pods.add_index(index::NODE_NAME, crate::pod::by_node_name());
    let nodes = ctx.informers.informer::<Node>();
    let leases = ctx.informers.informer::<Lease>();
    Box::pin(async move {
        let client = ctx.client(SERVICE_ACCOUNT).await?;
        let flags = &ctx.flags;
        let shared = Arc::new(Shared {
            recorder: ctx.recorder(client.clone(), EVENT_SOURCE),
            client,
            nodes: nodes.clone(),
            pods: pods.clone(),
            leases: leases.clone(),
            health: Mutex::default(),
            tainters: Mutex::default(),
            nodes_to_retry: Mutex::default(),
            startup_grace: flags.node_startup_grace_period,
            monitor_grace: flags.node_monitor_grace_period,
            unhealthy_zone_threshold: flags.unhealthy_zone_threshold,
            rates: Rates {
                healthy_qps: flags.node_eviction_rate,
                secondary_qps: flags.secondary_node_eviction_rate,
                large_cluster_threshold: flags.large_cluster_size_threshold,
            },
        });
        let node_queue =
            RateLimitingQueue::<String>::with_default_rate_limiter("node_lifecycle_controller");
        let pod_queue = RateLimitingQueue::<ObjectKey>::with_default_rate_limiter(
            "node_lifecycle_controller_pods",
        );
        // The event handlers end with the controller.
        let handlers = futures::future::join(
            enqueue_nodes(shared.clone(), node_queue.clone()),
            enqueue_pods(pods.subscribe(), pod_queue.clone()),
        );
        let handlers_stop = ctx.stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = handlers_stop.cancelled() => {}
                _ = handlers => {}
            }
        });
        let synced = wait_for_sync(leases, nodes, pods.clone());
        tokio::select! {
            _ = ctx.stop.cancelled() => return Ok(()),
            _ = synced => {}
        }
        tracing::info!("Starting node controller");
        let stop = ctx.stop.clone();
        let node_workers = {
            let shared = shared.clone();
            run_workers(
                "nodelifecycle",
                node_queue,
                NODE_UPDATE_WORKERS,
                stop.clone(),
                move |name| {
                    let shared = shared.clone();
                    async move { shared.process_node(&name).await }
                },
            )
        };
        let pod_workers = {
            let shared = shared.clone();
            run_workers(
                "nodelifecycle",
                pod_queue,
                POD_UPDATE_WORKERS,
                stop.clone(),
                move |key| {
                    let shared = shared.clone();
                    async move { shared.process_pod(&key).await }
                },
            )
        };
        let tainting = {
            let shared = shared.clone();
            let stop = stop.clone();
            async move {
                let mut ticker = tokio::time::interval(NODE_EVICTION_PERIOD);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = ticker.tick() => shared.no_execute_tainting_pass().await,
                    }
                }
            }
        };
        let monitor_period = ctx.flags.node_monitor_period;
        let monitoring = {
            let shared = shared.clone();
            let stop = stop.clone();
            async move {
                let mut monitor = monitor::Monitor::new(shared);
                let mut ticker = tokio::time::interval(monitor_period);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = ticker.tick() => monitor.monitor_node_health().await,
                    }
                }
            }
        };
        tokio::join!(node_workers, pod_workers, tainting, monitoring);
        tracing::info!("Shutting down node controller");
        Ok(())
    })
}

/// Waits until the informers hold their first full lists.
async fn wait_for_sync(
    leases: SharedInformer<Lease>,
    nodes: SharedInformer<Node>,
    pods: SharedInformer<Pod>,
) {
    leases.wait_for_sync().await;
    nodes.wait_for_sync().await;
    pods.wait_for_sync().await;
}

/// Queues every added or updated node for the NoSchedule pass; a deleted node needs no retry.
async fn enqueue_nodes(shared: Arc<Shared>, queue: RateLimitingQueue<String>) {
    let mut events = shared.nodes.subscribe();
    while let Some(event) = events.recv().await {
        match event {
            InformerEvent::Added(node) | InformerEvent::Updated { new: node, .. } => {
                queue.add(node.metadata.name.clone().unwrap_or_default());
            }
            InformerEvent::Deleted(node) => {
                let name = node.metadata.name.as_deref().unwrap_or_default();
                lock(&shared.nodes_to_retry).remove(name);
            }
        }
    }
}

/// Queues pods newly bound to a node (upstream's `podUpdated`).
async fn enqueue_pods(
    mut events: tokio::sync::mpsc::UnboundedReceiver<InformerEvent<Pod>>,
    queue: RateLimitingQueue<ObjectKey>,
) {
    let node_of = |pod: &Pod| pod.spec.as_ref().and_then(|s| s.node_name.clone());
    while let Some(event) = events.recv().await {
        let (old, new) = match &event {
            InformerEvent::Added(new) => (None, new),
            InformerEvent::Updated { old, new } => (Some(old), new),
            InformerEvent::Deleted(_) => continue,
        };
        let node = node_of(new).filter(|n| !n.is_empty());
        if node.is_some() && old.is_none_or(|old| node_of(old) != node) {
            queue.add(ObjectKey::of(new.as_ref()));
        }
    }
}

/// Why a pod could not be processed; the pod is retried.
#[derive(Debug, thiserror::Error)]
enum PodError {
    #[error("node {0} is not in the cache yet")]
    NodeNotCached(String),
    #[error("marking the pod not ready: {}", error_message(.0))]
    Api(#[from] kube::Error),
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the controller's loops share.
struct Shared {
    client: Client,
    recorder: EventRecorder,
    nodes: SharedInformer<Node>,
    pods: SharedInformer<Pod>,
    leases: SharedInformer<Lease>,
    /// Upstream's nodeHealthMap.
    health: Mutex<HashMap<String, NodeHealth>>,
    /// Upstream's zoneNoExecuteTainter.
    tainters: Mutex<HashMap<String, RateLimitedTimedQueue>>,
    /// Nodes whose pods must be marked not Ready again on the next pass.
    nodes_to_retry: Mutex<HashSet<String>>,
    startup_grace: Duration,
    monitor_grace: Duration,
    unhealthy_zone_threshold: f32,
    rates: Rates,
}

fn node_key(name: &str) -> ObjectKey {
    ObjectKey {
        namespace: None,
        name: name.to_string(),
    }
}

fn name_of(node: &Node) -> &str {
    node.metadata.name.as_deref().unwrap_or_default()
}

fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    health::condition(node.status.as_ref(), "Ready")
}

fn node_reference(node: &Node) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: node.metadata.name.clone(),
        uid: node.metadata.uid.clone(),
        ..Default::default()
    }
}

impl Shared {
    /// Upstream's node worker: the NoSchedule tainting pass and label reconciliation.
    async fn process_node(&self, name: &str) -> Result<(), kube::Error> {
        let Some(node) = self.nodes.get(&node_key(name)) else {
            return Ok(());
        };
        let (add, remove) = taints::no_schedule_diff(&node);
        if !add.is_empty() || !remove.is_empty() {
            taints::swap(&self.client, &node, &add, &remove).await?;
        }
        labels::reconcile(&self.client, &node).await
    }

    /// Upstream's `processPod`: a pod newly bound to a node that is not Ready is marked not Ready.
    async fn process_pod(&self, key: &ObjectKey) -> Result<(), PodError> {
        let Some(pod) = self.pods.get(key) else {
            return Ok(());
        };
        let node_name = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let Some(status) = lock(&self.health).get(&node_name).map(|h| h.status.clone()) else {
            return Ok(());
        };
        if self.nodes.get(&node_key(&node_name)).is_none() {
            return Err(PodError::NodeNotCached(node_name));
        }
        match health::condition(Some(&status), "Ready") {
            Some(ready) if ready.status != "True" => {
                pods::mark_pods_not_ready(&self.client, &self.recorder, &[pod], &node_name).await?;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Upstream's `doNoExecuteTaintingPass`: drains each zone's queue at its rate, giving each node the
    /// NoExecute taint matching its Ready condition.
    async fn no_execute_tainting_pass(&self) {
        let zones: Vec<String> = lock(&self.tainters).keys().cloned().collect();
        for zone in zones {
            loop {
                let now = Instant::now();
                let Some(name) = lock(&self.tainters)
                    .get_mut(&zone)
                    .and_then(|q| q.next_due(now))
                else {
                    break;
                };
                let outcome = self.taint_no_execute(&name).await;
                if let Some(queue) = lock(&self.tainters).get_mut(&zone) {
                    queue.finish(&name, outcome, now);
                }
            }
        }
    }

    async fn taint_no_execute(&self, name: &str) -> Result<(), Duration> {
        let Some(node) = self.nodes.get(&node_key(name)) else {
            tracing::info!(node = name, "Node no longer present in nodeLister");
            return Ok(());
        };
        let Some(ready) = ready_condition(&node) else {
            return Err(Duration::from_millis(50));
        };
        // Ready again: nothing to taint.
        let Some((add, opposite)) = taints::no_execute_for(&ready.status) else {
            return Ok(());
        };
        let result = taints::swap(
            &self.client,
            &node,
            &[taint(add, "NoExecute")],
            &[taint(opposite, "NoExecute")],
        )
        .await;
        result.map_err(|e| {
            tracing::warn!(node = name, "unable to taint unresponsive node: {e}");
            Duration::ZERO
        })
    }

    /// Upstream's `markNodeForTainting`: queues the node in its zone, requeueing it if it lacks the taint.
    fn mark_node_for_tainting(&self, node: &Node, status: &str) -> bool {
        let zone = zone::zone_key(node);
        let mut tainters = lock(&self.tainters);
        let queue = tainters
            .entry(zone)
            .or_insert_with(|| RateLimitedTimedQueue::new(self.rates.healthy_qps, Instant::now()));
        let wanted = if status == "False" {
            NOT_READY
        } else {
            UNREACHABLE
        };
        if !taints::has(taints::node_taints(node), &taint(wanted, "NoExecute")) {
            queue.remove(name_of(node));
        }
        queue.add(name_of(node), Instant::now())
    }

    /// Upstream's `markNodeAsReachable`: removes both NoExecute taints and forgets the node's queueing.
    async fn mark_node_as_reachable(&self, node: &Node) -> Result<bool, kube::Error> {
        let remove = [
            taint(UNREACHABLE, "NoExecute"),
            taint(NOT_READY, "NoExecute"),
        ];
        taints::swap(&self.client, node, &[], &remove).await?;
        let zone = zone::zone_key(node);
        Ok(lock(&self.tainters)
            .get_mut(&zone)
            .is_some_and(|q| q.remove(name_of(node))))
    }

    /// Upstream's `processTaintBaseEviction`.
    async fn process_taint_based_eviction(&self, node: &Node, ready: &NodeCondition) {
        let name = name_of(node);
        let node_taints = taints::node_taints(node);
        match (ready.status.as_str(), taints::no_execute_for(&ready.status)) {
            (status, Some((wanted, opposite))) => {
                // Already tainted with the opposite one: swap at once, without waiting for the rate.
                if taints::has(node_taints, &taint(opposite, "NoExecute")) {
                    let add = [taint(wanted, "NoExecute")];
                    let remove = [taint(opposite, "NoExecute")];
                    if let Err(e) = taints::swap(&self.client, node, &add, &remove).await {
                        tracing::error!(
                            node = name,
                            "Failed to instantly swap NoExecute taints: {e}"
                        );
                    }
                } else if self.mark_node_for_tainting(node, status) {
                    tracing::info!(
                        node = name,
                        status,
                        "Node is not Ready. Adding it to the Taint queue"
                    );
                }
            }
            ("True", None) => match self.mark_node_as_reachable(node).await {
                Ok(true) => {
                    tracing::info!(node = name, "Node is healthy again, removed all taints")
                }
                Ok(false) => {}
                Err(e) => tracing::error!(node = name, "Failed to remove taints from node: {e}"),
            },
            _ => {}
        }
    }

    async fn record_node_event(&self, node: &Node, reason: &str, event: String) {
        let note = format!("Node {} event: {event}", name_of(node));
        self.recorder
            .normal(&node_reference(node), reason, reason, note);
    }
}
