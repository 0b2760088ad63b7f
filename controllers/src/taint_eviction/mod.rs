//! The taint eviction controller (upstream pkg/controller/tainteviction): deletes pods from nodes with
//! NoExecute taints they do not tolerate, at once or after the least tolerationSeconds of the tolerations
//! used, counted from when the controller first saw the taint. Scheduled evictions are cancelled when the
//! taints go away, the pod comes to tolerate them forever, or the pod is gone.

pub mod decision;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use component_base::events::EventRecorder;
use component_base::informer::{InformerEvent, ObjectKey, SharedInformer, index};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Taint, Toleration};
use kube::Api;
use kube::api::DeleteParams;
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::context::{ControllerContext, StartError};
use crate::pod::Pod;
use crate::pod_status;
use decision::{Plan, no_execute_taints, plan};

/// Upstream's controller name, also the event source.
pub const NAME: &str = "taint-eviction-controller";
/// The ServiceAccount upstream runs it as.
const SERVICE_ACCOUNT: &str = "node-controller";
/// Upstream retries a failed eviction this many times, 10 ms apart.
const RETRIES: usize = 5;

/// Starts the controller.
pub fn start(ctx: ControllerContext) -> BoxFuture<'static, Result<(), StartError>> {
    let pods = ctx.informers.informer::<Pod>();
    pods.add_index(index::NODE_NAME, crate::pod::by_node_name());
    let nodes = ctx.informers.informer::<Node>();
    Box::pin(async move {
        let client = ctx.client(SERVICE_ACCOUNT).await?;
        let controller = TaintEviction {
            pods: pods.clone(),
            nodes: nodes.clone(),
            client: client.clone(),
            recorder: ctx.recorder(client, NAME),
            state: Arc::default(),
            stop: ctx.stop.clone(),
        };
        controller.run(pods, nodes).await;
        Ok(())
    })
}

/// A pod's eviction: when it was first scheduled, and the token that cancels it (`None` once it ran, so
/// it is not scheduled again until the pod is gone, as upstream's TimedWorkerQueue keeps done keys).
struct Work {
    created_at: Instant,
    cancel: Option<CancellationToken>,
    generation: u64,
}

#[derive(Default)]
struct State {
    /// NoExecute taints of the nodes that have some.
    tainted_nodes: HashMap<String, Vec<Taint>>,
    /// Evictions by pod.
    work: HashMap<ObjectKey, Work>,
    next_generation: u64,
}

#[derive(Clone)]
struct TaintEviction {
    pods: SharedInformer<Pod>,
    nodes: SharedInformer<Node>,
    client: kube::Client,
    recorder: EventRecorder,
    state: Arc<Mutex<State>>,
    stop: CancellationToken,
}

impl TaintEviction {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn run(&self, pods: SharedInformer<Pod>, nodes: SharedInformer<Node>) {
        let mut pod_events = pods.subscribe();
        let mut node_events = nodes.subscribe();
        let synced = async move {
            pods.wait_for_sync().await;
            nodes.wait_for_sync().await;
        };
        tokio::select! {
            _ = self.stop.cancelled() => return,
            _ = synced => {}
        }
        tracing::info!(controller = NAME, "Starting");
        loop {
            // Node updates first, as upstream's workers prefer them over pod updates.
            tokio::select! {
                biased;
                _ = self.stop.cancelled() => break,
                Some(event) = node_events.recv() => {
                    if let Some(name) = node_update(&event) {
                        self.handle_node_update(&name).await;
                    }
                }
                Some(event) = pod_events.recv() => {
                    if let Some(update) = pod_update(&event) {
                        self.handle_pod_update(update).await;
                    }
                }
                else => break,
            }
        }
        let mut state = self.lock();
        for work in state.work.values_mut() {
            if let Some(cancel) = work.cancel.take() {
                cancel.cancel();
            }
        }
    }

    async fn handle_pod_update(&self, update: PodUpdate) {
        let Some(pod) = self.pods.get(&update.key) else {
            self.cancel_with_event(&update.key).await;
            return;
        };
        let node_name = node_name(&pod);
        if node_name != update.node_name || node_name.is_empty() {
            return;
        }
        let taints = self.lock().tainted_nodes.get(&node_name).cloned();
        if let Some(taints) = taints {
            self.process_pod(&update.key, tolerations(&pod), &taints, Instant::now())
                .await;
        }
    }

    async fn handle_node_update(&self, node_name: &str) {
        let key = ObjectKey {
            namespace: None,
            name: node_name.to_string(),
        };
        let Some(node) = self.nodes.get(&key) else {
            self.lock().tainted_nodes.remove(node_name);
            return;
        };
        let taints = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_deref())
            .map(no_execute_taints)
            .unwrap_or_default();
        {
            let mut state = self.lock();
            if taints.is_empty() {
                state.tainted_nodes.remove(node_name);
            } else {
                state
                    .tainted_nodes
                    .insert(node_name.to_string(), taints.clone());
            }
        }
        let pods = self.pods.by_index(index::NODE_NAME, node_name);
        let now = Instant::now();
        for pod in pods {
            let pod_key = ObjectKey::of(pod.as_ref());
            if taints.is_empty() {
                self.cancel_with_event(&pod_key).await;
            } else {
                self.process_pod(&pod_key, tolerations(&pod), &taints, now)
                    .await;
            }
        }
    }

    async fn process_pod(
        &self,
        key: &ObjectKey,
        tolerations: &[Toleration],
        taints: &[Taint],
        now: Instant,
    ) {
        let held = self
            .lock()
            .work
            .get(key)
            .map(|w| (w.created_at, w.cancel.is_some()));
        let scheduled = match held {
            // Already evicted: upstream's AddWork refuses a key it still holds, except that an untolerated
            // taint cancels first (dropping the key) and evicts again.
            Some((_, false)) => {
                match plan(taints, tolerations, None, now) {
                    Plan::Cancel => self.cancel_with_event(key).await,
                    Plan::Schedule {
                        created_at,
                        fire_at,
                    } if decision::matching_tolerations(taints, tolerations).is_none() => {
                        self.cancel_with_event(key).await;
                        self.add_work(key.clone(), created_at, fire_at);
                    }
                    _ => {}
                }
                return;
            }
            Some((created_at, true)) => Some(created_at),
            None => None,
        };
        match plan(taints, tolerations, scheduled, now) {
            Plan::Keep => {}
            Plan::Cancel => self.cancel_with_event(key).await,
            Plan::Schedule {
                created_at,
                fire_at,
            } => {
                self.cancel_with_event(key).await;
                self.add_work(key.clone(), created_at, fire_at);
            }
        }
    }

    /// Cancels the pod's eviction, recording an event if one was held.
    async fn cancel_with_event(&self, key: &ObjectKey) {
        let removed = self.lock().work.remove(key);
        let Some(work) = removed else { return };
        if let Some(cancel) = work.cancel {
            cancel.cancel();
        }
        self.recorder.normal(
            &pod_reference(key),
            "TaintManagerEviction",
            "Cancelling",
            format!("Cancelling deletion of Pod {key}"),
        );
    }

    fn add_work(&self, key: ObjectKey, created_at: Instant, fire_at: Instant) {
        let cancel = self.stop.child_token();
        let generation = {
            let mut state = self.lock();
            state.next_generation += 1;
            let generation = state.next_generation;
            state.work.insert(
                key.clone(),
                Work {
                    created_at,
                    cancel: Some(cancel.clone()),
                    generation,
                },
            );
            generation
        };
        tracing::debug!(pod = %key, "scheduling eviction");
        let this = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep_until(fire_at) => {}
            }
            let ok = this.evict(&key).await;
            let mut state = this.lock();
            let current = state.work.get(&key).map(|w| w.generation);
            if current == Some(generation) {
                if ok {
                    if let Some(work) = state.work.get_mut(&key) {
                        work.cancel = None;
                    }
                } else {
                    state.work.remove(&key);
                }
            }
        });
    }

    /// Upstream's `deletePodHandler`: event, then DisruptionTarget condition and delete, retried.
    async fn evict(&self, key: &ObjectKey) -> bool {
        tracing::info!(controller = NAME, pod = %key, "Deleting pod");
        self.recorder.normal(
            &pod_reference(key),
            "TaintManagerEviction",
            "Deleting",
            format!("Marking for deletion Pod {key}"),
        );
        let namespace = key.namespace.as_deref().unwrap_or_default();
        let api = Api::<Pod>::namespaced(self.client.clone(), namespace);
        for attempt in 0..RETRIES {
            match add_condition_and_delete(&api, &key.name).await {
                Ok(()) => return true,
                Err(e) if attempt + 1 == RETRIES => {
                    tracing::warn!(pod = %key, "evicting pod: {e}");
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
        false
    }
}

/// Upstream's `addConditionAndDeletePod`: reads the pod live, marks it DisruptionTarget and deletes it.
async fn add_condition_and_delete(api: &Api<Pod>, name: &str) -> Result<(), kube::Error> {
    let pod = api.get(name).await?;
    let wanted = pod_status::condition(
        &pod,
        "DisruptionTarget",
        "True",
        "DeletionByTaintManager",
        "Taint manager: deleting due to NoExecute taint",
    );
    if let Some(condition) = pod_status::updated_condition(&pod, wanted) {
        pod_status::patch_status(api, &pod, json!({ "conditions": [condition] })).await?;
    }
    api.delete(name, &DeleteParams::default()).await.map(|_| ())
}

struct PodUpdate {
    key: ObjectKey,
    node_name: String,
}

/// Upstream's `PodUpdated` filter: additions, deletions, and changes of tolerations or node.
fn pod_update(event: &InformerEvent<Pod>) -> Option<PodUpdate> {
    let (pod, changed) = match event {
        InformerEvent::Added(pod) | InformerEvent::Deleted(pod) => (pod, true),
        InformerEvent::Updated { old, new } => (
            new,
            tolerations(old) != tolerations(new) || node_name(old) != node_name(new),
        ),
    };
    changed.then(|| PodUpdate {
        key: ObjectKey::of(pod.as_ref()),
        node_name: node_name(pod),
    })
}

/// Upstream's `NodeUpdated` filter: additions, deletions, and changes of NoExecute taints.
fn node_update(event: &InformerEvent<Node>) -> Option<String> {
    let taints = |node: &Node| {
        let all = node.spec.as_ref().and_then(|s| s.taints.as_deref());
        no_execute_taints(all.unwrap_or_default())
    };
    let (node, changed) = match event {
        InformerEvent::Added(node) | InformerEvent::Deleted(node) => (node, true),
        InformerEvent::Updated { old, new } => (new, taints(old) != taints(new)),
    };
    changed.then(|| node.metadata.name.clone().unwrap_or_default())
}

fn node_name(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

fn tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default()
}

fn pod_reference(key: &ObjectKey) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: Some(key.name.clone()),
        namespace: key.namespace.clone(),
        ..Default::default()
    }
}
