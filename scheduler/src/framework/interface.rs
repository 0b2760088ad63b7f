//! The extension points plugins implement (upstream `framework/interface.go`). A plugin is one type that
//! implements [`Plugin`] and returns itself from the `as_*` methods of the extension points it serves.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;

use super::cycle_state::CycleState;
use super::events::ClusterEvent;
use super::node_info::NodeInfo;
use super::pod_info::PodInfo;
use super::runtime::Framework;
use super::snapshot::Snapshot;
use super::status::Status;

/// Scores plugins return lie in [0, MAX_NODE_SCORE] after normalisation.
pub const MAX_NODE_SCORE: i64 = 100;
/// The lowest score.
pub const MIN_NODE_SCORE: i64 = 0;

/// A plugin: its upstream name, the cluster events that may change its verdicts, and the extension points
/// it implements.
pub trait Plugin: Send + Sync + 'static {
    /// The upstream plugin name (`NodeResourcesFit`, ...).
    fn name(&self) -> &'static str;
    /// Events after which a pod this plugin rejected may fit.
    fn events_to_register(&self) -> Vec<ClusterEvent> {
        Vec::new()
    }
    /// PreEnqueue, if implemented.
    fn as_pre_enqueue(&self) -> Option<&dyn PreEnqueuePlugin> {
        None
    }
    /// QueueSort, if implemented.
    fn as_queue_sort(&self) -> Option<&dyn QueueSortPlugin> {
        None
    }
    /// PreFilter, if implemented.
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        None
    }
    /// Filter, if implemented.
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        None
    }
    /// PostFilter, if implemented.
    fn as_post_filter(&self) -> Option<&dyn PostFilterPlugin> {
        None
    }
    /// PreScore, if implemented.
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        None
    }
    /// Score, if implemented.
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        None
    }
    /// Reserve, if implemented.
    fn as_reserve(&self) -> Option<&dyn ReservePlugin> {
        None
    }
    /// Permit, if implemented.
    fn as_permit(&self) -> Option<&dyn PermitPlugin> {
        None
    }
    /// PreBind, if implemented.
    fn as_pre_bind(&self) -> Option<&dyn PreBindPlugin> {
        None
    }
    /// Bind, if implemented.
    fn as_bind(&self) -> Option<&dyn BindPlugin> {
        None
    }
    /// PostBind, if implemented.
    fn as_post_bind(&self) -> Option<&dyn PostBindPlugin> {
        None
    }
}

/// A pod waiting in the scheduling queue.
#[derive(Clone, Debug)]
pub struct QueuedPodInfo {
    /// The pod.
    pub pod_info: Arc<PodInfo>,
    /// When it was last added to the queue.
    pub timestamp: Instant,
    /// How many scheduling attempts it has had.
    pub attempts: u32,
    /// When it was first popped, for the scheduling SLI.
    pub initial_attempt_timestamp: Option<Instant>,
    /// Plugins that rejected it in its last attempt.
    pub unschedulable_plugins: BTreeSet<&'static str>,
    /// Plugins that returned Pending in its last attempt.
    pub pending_plugins: BTreeSet<&'static str>,
    /// The PreEnqueue plugin that keeps it out of the active queue, if any.
    pub gating_plugin: Option<&'static str>,
}

impl QueuedPodInfo {
    /// A freshly queued pod.
    pub fn new(pod_info: Arc<PodInfo>, now: Instant) -> Self {
        Self {
            pod_info,
            timestamp: now,
            attempts: 0,
            initial_attempt_timestamp: None,
            unschedulable_plugins: BTreeSet::new(),
            pending_plugins: BTreeSet::new(),
            gating_plugin: None,
        }
    }
}

/// Decides whether a pod may enter the active queue (scheduling gates).
pub trait PreEnqueuePlugin: Send + Sync {
    /// Success admits the pod; anything else keeps it gated.
    fn pre_enqueue(&self, pod: &Pod) -> Status;
}

/// Orders the active queue.
pub trait QueueSortPlugin: Send + Sync {
    /// Whether `a` should be scheduled before `b`.
    fn less(&self, a: &QueuedPodInfo, b: &QueuedPodInfo) -> bool;
}

/// Narrows the nodes PreFilter allows: `None` means all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PreFilterResult {
    /// The only nodes worth filtering, if the plugin knows them.
    pub node_names: Option<BTreeSet<String>>,
}

impl PreFilterResult {
    /// Intersects two results (`None` is everything).
    pub fn merge(self, other: Option<PreFilterResult>) -> PreFilterResult {
        match (self.node_names, other.and_then(|o| o.node_names)) {
            (Some(a), Some(b)) => PreFilterResult {
                node_names: Some(a.intersection(&b).cloned().collect()),
            },
            (a, b) => PreFilterResult {
                node_names: a.or(b),
            },
        }
    }
}

/// Computes per-pod state before Filter runs on each node.
pub trait PreFilterPlugin: Send + Sync {
    /// Writes the plugin's state; Skip means its Filter need not run.
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> (Option<PreFilterResult>, Status);
    /// Incremental updates for preemption's what-if evaluation, if the plugin keeps per-pod state.
    fn pre_filter_extensions(&self) -> Option<&dyn PreFilterExtensions> {
        None
    }
}

/// Updates PreFilter state as if a pod were added to or removed from a node.
pub trait PreFilterExtensions: Send + Sync {
    /// `added` is now on `node`.
    fn add_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        added: &PodInfo,
        node: &NodeInfo,
    ) -> Status;
    /// `removed` is no longer on `node`.
    fn remove_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        removed: &PodInfo,
        node: &NodeInfo,
    ) -> Status;
}

/// Decides whether the pod fits one node. Runs on many nodes at once.
pub trait FilterPlugin: Send + Sync {
    /// Success, or why the pod does not fit `node`.
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status;
}

/// Each node's verdict from Filter, by node name.
pub type NodeToStatus = HashMap<String, Status>;

/// What PostFilter (preemption) decided: the node to nominate and the pods to evict for it.
#[derive(Clone, Debug, Default)]
pub struct PostFilterResult {
    /// The node the pod is nominated to.
    pub nominated_node_name: String,
    /// Pods to delete so the pod fits there.
    pub victims: Vec<Arc<Pod>>,
}

/// What PostFilter plugins get: the framework (to re-run filters), and the cycle's inputs.
pub struct PostFilterContext<'a> {
    /// The profile's framework.
    pub framework: &'a Framework,
    /// The cycle state after PreFilter.
    pub state: &'a CycleState,
    /// The pod that did not fit.
    pub pod: &'a PodInfo,
    /// The cycle's snapshot.
    pub snapshot: &'a Snapshot,
    /// Why each node was rejected.
    pub statuses: &'a NodeToStatus,
    /// Pods nominated to nodes, which the what-if filters take into account.
    pub nominator: &'a dyn Nominator,
}

/// Runs when no node fits (preemption).
pub trait PostFilterPlugin: Send + Sync {
    /// A nomination and victims, or why none helps (the message ends up in the pod's condition).
    fn post_filter(&self, context: &PostFilterContext<'_>) -> (Option<PostFilterResult>, Status);
}

/// Pods nominated to nodes by preemption, which later pods must leave room for.
pub trait Nominator: Send + Sync {
    /// Pods nominated to `node`.
    fn nominated_pods_for_node(&self, node: &str) -> Vec<Arc<PodInfo>>;
}

/// A nominator without nominations.
pub struct NoNominations;

impl Nominator for NoNominations {
    fn nominated_pods_for_node(&self, _node: &str) -> Vec<Arc<PodInfo>> {
        Vec::new()
    }
}

/// Computes per-pod state before Score runs on each feasible node.
pub trait PreScorePlugin: Send + Sync {
    /// Writes the plugin's state; Skip means its Score need not run.
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[Arc<NodeInfo>],
        snapshot: &Snapshot,
    ) -> Status;
}

/// A node and its score.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeScore {
    /// The node.
    pub name: String,
    /// Its score.
    pub score: i64,
}

/// Ranks feasible nodes.
pub trait ScorePlugin: Send + Sync {
    /// The node's raw score.
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status>;
    /// Rescales raw scores into [MIN_NODE_SCORE, MAX_NODE_SCORE]; scores already in range need nothing.
    fn normalize_score(
        &self,
        _state: &CycleState,
        _pod: &PodInfo,
        _scores: &mut [NodeScore],
    ) -> Status {
        Status::success()
    }
}

/// Reserves resources outside the scheduler's cache for the chosen node, and releases them on failure.
pub trait ReservePlugin: Send + Sync {
    /// Reserves for `pod` on `node`.
    fn reserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> Status;
    /// Undoes `reserve` (must be idempotent).
    fn unreserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str);
}

/// Approves, rejects or delays a binding.
pub trait PermitPlugin: Send + Sync {
    /// Success, rejection, or Wait with a timeout.
    fn permit(&self, state: &CycleState, pod: &PodInfo, node: &str) -> (Status, Duration);
}

/// Work before binding, such as binding volumes. Runs in the binding task.
pub trait PreBindPlugin: Send + Sync {
    /// Prepares `pod`'s binding to `node`.
    fn pre_bind<'a>(
        &'a self,
        state: &'a CycleState,
        pod: &'a Pod,
        node: &'a str,
    ) -> BoxFuture<'a, Status>;
}

/// Binds a pod to a node. The first binder that does not return Skip wins.
pub trait BindPlugin: Send + Sync {
    /// Binds `pod` to `node`.
    fn bind<'a>(
        &'a self,
        state: &'a CycleState,
        pod: &'a Pod,
        node: &'a str,
    ) -> BoxFuture<'a, Status>;
}

/// Informational hook after a successful binding.
pub trait PostBindPlugin: Send + Sync {
    /// Called once `pod` is bound to `node`.
    fn post_bind(&self, state: &CycleState, pod: &Pod, node: &str);
}
