//! The node health monitor (upstream's `monitorNodeHealth`): every --node-monitor-period checks each node's
//! health, writes Unknown conditions for silent nodes, queues NoExecute tainting, marks pods not Ready,
//! and updates the zones' disruption states.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use component_base::informer::{ObjectKey, index};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::time::Instant;

use super::tainter::RateLimitedTimedQueue;
use super::zone::{self, ZoneState};
use super::{
    HEALTH_UPDATE_RETRIES, LABEL_EXCLUDE_DISRUPTION, NODE_LEASE_NAMESPACE, NODE_UPDATE_WORKERS,
    RETRY_SLEEP, Shared, health, lock, name_of, node_reference, pods,
};

/// The monitoring loop's own state.
pub(super) struct Monitor {
    shared: Arc<Shared>,
    /// Upstream's knownNodeSet.
    known: HashMap<String, Arc<Node>>,
    zone_states: HashMap<String, ZoneState>,
}

impl Monitor {
    /// A monitor that knows no node yet.
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            known: HashMap::new(),
            zone_states: HashMap::new(),
        }
    }

    /// Upstream's `addPodEvictorForNewZone`.
    fn add_evictor_for_new_zone(&mut self, node: &Node) {
        let zone = zone::zone_key(node);
        if self.zone_states.contains_key(&zone) {
            return;
        }
        self.zone_states.insert(zone.clone(), ZoneState::Initial);
        let queue = RateLimitedTimedQueue::new(self.shared.rates.healthy_qps, Instant::now());
        lock(&self.shared.tainters).insert(zone, queue);
    }

    /// Upstream's `monitorNodeHealth`.
    pub(super) async fn monitor_node_health(&mut self) {
        let shared = self.shared.clone();
        let nodes = shared.nodes.list();
        let current: HashSet<&str> = nodes.iter().map(|n| name_of(n)).collect();
        for node in &nodes {
            if self.known.contains_key(name_of(node)) {
                if !self.zone_states.contains_key(&zone::zone_key(node)) {
                    self.add_evictor_for_new_zone(node);
                }
                continue;
            }
            let name = name_of(node).to_string();
            tracing::info!(node = name, "Controller observed a new Node");
            shared
                .record_node_event(
                    node,
                    "RegisteredNode",
                    format!("Registered Node {name} in Controller"),
                )
                .await;
            self.known.insert(name, node.clone());
            self.add_evictor_for_new_zone(node);
            if let Err(e) = shared.mark_node_as_reachable(node).await {
                tracing::error!(
                    node = name_of(node),
                    "Failed to remove taints from node: {e}"
                );
            }
        }
        let deleted: Vec<Arc<Node>> = self
            .known
            .values()
            .filter(|n| !current.contains(name_of(n)))
            .cloned()
            .collect();
        for node in deleted {
            let name = name_of(&node).to_string();
            tracing::info!(node = name, "Controller observed a Node deletion");
            shared
                .record_node_event(
                    &node,
                    "RemovingNode",
                    format!("Removing Node {name} from Controller"),
                )
                .await;
            self.known.remove(&name);
        }
        let readiness: Vec<Option<(String, Option<String>)>> = futures::stream::iter(nodes.clone())
            .map(|node| {
                let shared = shared.clone();
                async move { shared.update_node(&node).await }
            })
            .buffer_unordered(NODE_UPDATE_WORKERS)
            .collect()
            .await;
        let mut zone_ready: HashMap<String, Vec<Option<&str>>> = HashMap::new();
        for (zone, ready) in readiness.iter().flatten() {
            zone_ready
                .entry(zone.clone())
                .or_default()
                .push(ready.as_deref());
        }
        let actions = zone::handle_disruption(
            &mut self.zone_states,
            &zone_ready,
            shared.unhealthy_zone_threshold,
            &shared.rates,
        );
        if actions.mark_all_reachable {
            for node in &nodes {
                if let Err(e) = shared.mark_node_as_reachable(node).await {
                    tracing::error!(
                        node = name_of(node),
                        "Failed to remove taints from Node: {e}"
                    );
                }
            }
        }
        if actions.reset_probe_timestamps {
            let now = Timestamp::now();
            for health in lock(&shared.health).values_mut() {
                health.probe_timestamp = now;
                health.ready_transition_timestamp = now;
            }
        }
        let now = Instant::now();
        let mut tainters = lock(&shared.tainters);
        for (zone, qps) in actions.limiters {
            if let Some(queue) = tainters.get_mut(&zone) {
                queue.swap_limiter(qps, now);
            }
        }
    }
}

impl Shared {
    /// One node's part of `monitorNodeHealth`: checks and writes its health, handles NoExecute tainting and
    /// pods. Returns its zone and Ready status for the disruption count, `None` if it is excluded or its
    /// health could not be written.
    async fn update_node(&self, cached: &Arc<Node>) -> Option<(String, Option<String>)> {
        let mut node = (**cached).clone();
        let name = name_of(cached).to_string();
        let mut attempt = 0;
        let (observed_ready, current_ready) = loop {
            attempt += 1;
            match self.try_update_node_health(&mut node).await {
                Ok(result) => break result,
                Err(e) if attempt < HEALTH_UPDATE_RETRIES => {
                    tracing::debug!(node = name, "retrying node health update: {e}");
                    tokio::time::sleep(RETRY_SLEEP).await;
                    match Api::<Node>::all(self.client.clone()).get(&name).await {
                        Ok(fresh) => node = fresh,
                        Err(e) => {
                            tracing::error!(
                                node = name,
                                "Failed while getting a Node to retry updating node health: {e}"
                            );
                            return None;
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(
                        node = name,
                        "Update health of Node from Controller error, Skipping - no pods will be evicted: {e}"
                    );
                    return None;
                }
            }
        };
        let excluded = node
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(LABEL_EXCLUDE_DISRUPTION));
        let zone_entry = (!excluded).then(|| {
            (
                zone::zone_key(&node),
                current_ready.as_ref().map(|c| c.status.clone()),
            )
        });
        let Some(current) = current_ready else {
            return zone_entry;
        };
        let pods = self.pods.by_index(index::NODE_NAME, &name);
        self.process_taint_based_eviction(&node, &current).await;
        let needs_retry = lock(&self.nodes_to_retry).contains(&name);
        let became_not_ready = current.status != "True" && observed_ready.status == "True";
        if became_not_ready {
            let note = format!("Node {name} status is now: NodeNotReady");
            self.recorder
                .normal(&node_reference(&node), "NodeNotReady", "NodeNotReady", note);
        }
        if (became_not_ready || (needs_retry && observed_ready.status != "True"))
            && let Err(e) =
                pods::mark_pods_not_ready(&self.client, &self.recorder, &pods, &name).await
        {
            tracing::warn!(
                node = name,
                "Unable to mark all pods NotReady on node; queuing for retry: {e}"
            );
            lock(&self.nodes_to_retry).insert(name);
            return zone_entry;
        }
        lock(&self.nodes_to_retry).remove(&name);
        zone_entry
    }

    /// Upstream's `tryUpdateNodeHealth`: the observed and current Ready conditions, writing the node's
    /// status when it went stale. `node` gets the written status.
    async fn try_update_node_health(
        &self,
        node: &mut Node,
    ) -> Result<(NodeCondition, Option<NodeCondition>), kube::Error> {
        let name = name_of(node).to_string();
        let saved = lock(&self.health).get(&name).cloned();
        let lease = self.leases.get(&ObjectKey {
            namespace: Some(NODE_LEASE_NAMESPACE.into()),
            name: name.clone(),
        });
        let check = health::check(
            node,
            saved.as_ref(),
            lease.as_deref(),
            Timestamp::now(),
            self.startup_grace,
            self.monitor_grace,
        );
        let mut remembered = check.health;
        if let Some((status, written)) = check.status_update {
            let mut updated = node.clone();
            updated.status = Some(status);
            // UpdateStatus: a PUT carrying the resourceVersion, so a newer heartbeat wins.
            let api = Api::<Node>::all(self.client.clone());
            match api
                .replace_status(&name, &PostParams::default(), &updated)
                .await
            {
                Ok(stored) => *node = stored,
                Err(e) => {
                    lock(&self.health).insert(name, remembered);
                    return Err(e);
                }
            }
            remembered = written;
        }
        lock(&self.health).insert(name, remembered);
        Ok((check.observed_ready, check.current_ready))
    }
}
