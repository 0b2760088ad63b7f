//! The pod garbage collector (upstream pkg/controller/podgc): every 20 s deletes terminated pods beyond
//! --terminated-pod-gc-threshold (oldest first), terminating pods on out-of-service nodes, pods bound to
//! nodes that no longer exist (confirmed by a live GET after a 40 s quarantine), and terminating pods never
//! bound to a node. Pods not yet terminal are first marked Failed, as upstream does.

mod metrics;
pub mod select;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use component_base::informer::SharedInformer;
use futures::future::{BoxFuture, join_all};
use k8s_openapi::api::core::v1::{Node, PodCondition};
use kube::api::DeleteParams;
use kube::{Api, Client};
use serde_json::json;
use tokio::time::Instant;

use crate::context::{ControllerContext, StartError};
use crate::pod::Pod;
use crate::pod_status;
use metrics::Reason;
use select::Quarantine;

/// The ServiceAccount upstream runs it as.
const SERVICE_ACCOUNT: &str = "pod-garbage-collector";
/// Upstream's gcCheckPeriod.
pub const GC_CHECK_PERIOD: Duration = Duration::from_secs(20);
/// Upstream's quarantineTime: how long a node may be missing from the cache before it is looked up.
pub const QUARANTINE_TIME: Duration = Duration::from_secs(40);

/// Starts the controller.
pub fn start(ctx: ControllerContext) -> BoxFuture<'static, Result<(), StartError>> {
    let pods = ctx.informers.informer::<Pod>();
    let nodes = ctx.informers.informer::<Node>();
    Box::pin(async move {
        let client = ctx.client(SERVICE_ACCOUNT).await?;
        let synced = {
            let (pods, nodes) = (pods.clone(), nodes.clone());
            async move {
                pods.wait_for_sync().await;
                nodes.wait_for_sync().await;
            }
        };
        tokio::select! {
            _ = ctx.stop.cancelled() => return Ok(()),
            _ = synced => {}
        }
        tracing::info!("Starting GC controller");
        let mut gc = PodGc {
            client,
            pods,
            nodes,
            threshold: ctx.flags.terminated_pod_gc_threshold,
            quarantine: Quarantine::default(),
        };
        let mut ticker = tokio::time::interval(GC_CHECK_PERIOD);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ctx.stop.cancelled() => break,
                _ = ticker.tick() => gc.gc().await,
            }
        }
        tracing::info!("Shutting down GC controller");
        Ok(())
    })
}

struct PodGc {
    client: Client,
    pods: SharedInformer<Pod>,
    nodes: SharedInformer<Node>,
    threshold: i64,
    quarantine: Quarantine,
}

impl PodGc {
    /// One pass, in upstream's order.
    async fn gc(&mut self) {
        let pods = self.pods.list();
        let nodes: HashMap<String, Arc<Node>> = self
            .nodes
            .list()
            .into_iter()
            .map(|n| (n.metadata.name.clone().unwrap_or_default(), n))
            .collect();
        let terminated = select::terminated_beyond_threshold(&pods, self.threshold);
        if !terminated.is_empty() {
            tracing::info!(num_pods = terminated.len(), "Garbage collecting pods");
        }
        self.delete_all(&terminated, None, Reason::Terminated).await;
        let terminating = select::terminating_out_of_service(&pods, &nodes);
        self.delete_all(&terminating, None, Reason::OutOfService)
            .await;
        self.gc_orphaned(&pods, &nodes).await;
        let unscheduled = select::unscheduled_terminating(&pods);
        self.delete_all(&unscheduled, None, Reason::Unscheduled)
            .await;
    }

    async fn gc_orphaned(&mut self, pods: &[Arc<Pod>], nodes: &HashMap<String, Arc<Node>>) {
        let now = Instant::now();
        self.quarantine
            .add(select::missing_nodes(pods, nodes), now, QUARANTINE_TIME);
        let mut deleted = HashSet::new();
        for name in self.quarantine.take_due(now) {
            if nodes.contains_key(&name) {
                continue;
            }
            // A missing node is looked up live: the cache may just be behind.
            match Api::<Node>::all(self.client.clone()).get_opt(&name).await {
                Ok(None) => {
                    deleted.insert(name);
                }
                Ok(Some(_)) => {}
                Err(e) => tracing::warn!(node = name, "Error while getting node: {e}"),
            }
        }
        let orphans = select::orphaned(pods, &deleted);
        for pod in &orphans {
            tracing::info!(pod = ?pod.metadata.name, node = select::node_name(pod),
                "Found orphaned Pod assigned to the Node, deleting");
        }
        let condition = |pod: &Pod| {
            pod_status::condition(
                pod,
                "DisruptionTarget",
                "True",
                "DeletionByPodGC",
                "PodGC: node no longer exists",
            )
        };
        self.delete_all(&orphans, Some(&condition), Reason::Orphaned)
            .await;
    }

    async fn delete_all(
        &self,
        pods: &[Arc<Pod>],
        condition: Option<&(dyn Fn(&Pod) -> PodCondition + Sync)>,
        reason: Reason,
    ) {
        let deletions = pods.iter().map(|pod| async move {
            let cond = condition.map(|c| c(pod));
            let result = self.mark_failed_and_delete(pod, cond).await;
            let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
            metrics::record(namespace, reason, result.is_err());
            if let Err(e) = result {
                tracing::warn!(pod = ?pod.metadata.name, ?reason, "Failed to force delete pod: {e}");
            }
        });
        join_all(deletions).await;
    }

    /// Upstream's `markFailedAndDeletePodWithCondition`: a pod not yet terminal is patched to Failed (with
    /// `condition`) so it never stays Running without a kubelet, then force-deleted.
    async fn mark_failed_and_delete(
        &self,
        pod: &Pod,
        condition: Option<PodCondition>,
    ) -> Result<(), kube::Error> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        tracing::info!(pod = %format!("{namespace}/{name}"), "PodGC is force deleting Pod");
        let api = Api::<Pod>::namespaced(self.client.clone(), namespace);
        if !has_finished(pod) {
            let mut status = json!({
                "phase": "Failed",
                "observedGeneration": pod.metadata.generation,
            });
            if let Some(condition) = condition.and_then(|c| pod_status::updated_condition(pod, c)) {
                status["conditions"] = json!([condition]);
            }
            pod_status::patch_status(&api, pod, status).await?;
        }
        api.delete(name, &DeleteParams::default().grace_period(0))
            .await
            .map(|_| ())
    }
}

/// Whether the pod is Succeeded or Failed (upstream patches every other pod to Failed before deleting it).
fn has_finished(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Succeeded") | Some("Failed"))
}
