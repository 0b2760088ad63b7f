//! A real framework with small test plugins (a Fit-like filter, a PreFilter-state filter that can fail
//! its extensions, a priority queue sort and a binder) around DefaultPreemption, mirroring upstream's
//! `default_preemption_test.go`.

mod dry_run;
mod eligibility;
mod post_filter;
mod select;

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Node, Pod, PodCondition, PodStatus};
use k8s_openapi::api::policy::v1::{
    PodDisruptionBudget, PodDisruptionBudgetSpec, PodDisruptionBudgetStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

use super::{DefaultPreemption, NAME};
use crate::config::{DefaultPreemptionArgs, Plugin as PluginRef, PluginSet, Plugins};
use crate::framework::{
    BindPlugin, Code, CycleState, ExtensionPoint, FilterPlugin, Framework, Handle, NodeInfo,
    Nominator, Plugin, PodInfo, PostFilterContext, PostFilterResult, PreFilterExtensions,
    PreFilterPlugin, PreFilterResult, QueueSortPlugin, QueuedPodInfo, Snapshot, StaticListers,
    Status,
};
use crate::testing::{MakePod, make_node, make_pod};

pub(super) const NEG: i32 = -100;
pub(super) const LOW: i32 = 0;
pub(super) const MID: i32 = 100;
pub(super) const HIGH: i32 = 1000;
pub(super) const VERY_HIGH: i32 = 10000;

pub(super) const SMALL: &[(&str, &str)] = &[("cpu", "100m"), ("memory", "100")];
pub(super) const MEDIUM: &[(&str, &str)] = &[("cpu", "200m"), ("memory", "200")];
pub(super) const LARGE: &[(&str, &str)] = &[("cpu", "300m"), ("memory", "300")];
pub(super) const VERY_LARGE: &[(&str, &str)] = &[("cpu", "500m"), ("memory", "500")];
/// Upstream's `st.MakeNode().Capacity(veryLargeRes)` (which adds room for 32 pods).
pub(super) const NODE_VERY_LARGE: &[(&str, &str)] =
    &[("cpu", "500m"), ("memory", "500"), ("pods", "32")];
pub(super) const NODE_ONE_POD: &[(&str, &str)] = &[("pods", "1")];
pub(super) const NODE_RES: &[(&str, &str)] = &[("cpu", "200m"), ("memory", "400"), ("pods", "32")];

/// A NodeResourcesFit look-alike: pod count, CPU and memory.
struct TestFit;

impl Plugin for TestFit {
    fn name(&self) -> &'static str {
        "TestFit"
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl FilterPlugin for TestFit {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let mut reasons = Vec::new();
        if node.pods.len() as i64 + 1 > node.allocatable.allowed_pod_number {
            reasons.push("Too many pods".to_string());
        }
        let free_cpu = node.allocatable.milli_cpu - node.requested.milli_cpu;
        if pod.requests.milli_cpu > 0 && pod.requests.milli_cpu > free_cpu {
            reasons.push("Insufficient cpu".to_string());
        }
        let free_memory = node.allocatable.memory - node.requested.memory;
        if pod.requests.memory > 0 && pod.requests.memory > free_memory {
            reasons.push("Insufficient memory".to_string());
        }
        if reasons.is_empty() {
            Status::success()
        } else {
            Status::new(Code::Unschedulable, reasons)
        }
    }
}

const BLOCKERS: &str = "TestBlocker";

/// Rejects nodes holding pods labelled `blocker`, counted in PreFilter and kept up to date only through
/// its PreFilter extensions (as inter-pod anti-affinity does); the extensions fail on nodes labelled
/// `error=true`, like upstream's TestPlugin.
struct TestBlocker;

#[derive(Clone, Default)]
struct BlockerCounts(HashMap<String, usize>);

fn is_blocker(pod: &PodInfo) -> bool {
    crate::framework::pod_info::labels(&pod.pod).contains_key("blocker")
}

impl Plugin for TestBlocker {
    fn name(&self) -> &'static str {
        BLOCKERS
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for TestBlocker {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        _: &PodInfo,
        snapshot: &Snapshot,
    ) -> (Option<PreFilterResult>, Status) {
        let counts = snapshot
            .nodes()
            .iter()
            .map(|n| {
                let count = n.pods.iter().filter(|p| is_blocker(p)).count();
                (n.name().to_string(), count)
            })
            .collect();
        state.write(BLOCKERS, BlockerCounts(counts));
        (None, Status::success())
    }
    fn pre_filter_extensions(&self) -> Option<&dyn PreFilterExtensions> {
        Some(self)
    }
}

impl TestBlocker {
    fn update(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        changed: &PodInfo,
        node: &NodeInfo,
        delta: isize,
        verb: &str,
    ) -> Status {
        if node.labels().get("error").map(String::as_str) == Some("true") {
            return Status::error(format!("failed to {verb} pod: {}", pod.name()));
        }
        if let Some(counts) = state.read_mut::<BlockerCounts>(BLOCKERS)
            && is_blocker(changed)
        {
            let count = counts.0.entry(node.name().to_string()).or_default();
            *count = count.saturating_add_signed(delta);
        }
        Status::success()
    }
}

impl PreFilterExtensions for TestBlocker {
    fn add_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        added: &PodInfo,
        node: &NodeInfo,
    ) -> Status {
        self.update(state, pod, added, node, 1, "add")
    }
    fn remove_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        removed: &PodInfo,
        node: &NodeInfo,
    ) -> Status {
        self.update(state, pod, removed, node, -1, "remove")
    }
}

impl FilterPlugin for TestBlocker {
    fn filter(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> Status {
        let blocked = state
            .read::<BlockerCounts>(BLOCKERS)
            .and_then(|c| c.0.get(node.name()))
            .is_some_and(|count| *count > 0);
        if blocked {
            Status::unschedulable("node(s) had a blocker pod")
        } else {
            Status::success()
        }
    }
}

/// PrioritySort look-alike.
struct TestQueueSort;

impl Plugin for TestQueueSort {
    fn name(&self) -> &'static str {
        "TestQueueSort"
    }
    fn as_queue_sort(&self) -> Option<&dyn QueueSortPlugin> {
        Some(self)
    }
}

impl QueueSortPlugin for TestQueueSort {
    fn less(&self, a: &QueuedPodInfo, b: &QueuedPodInfo) -> bool {
        a.pod_info.priority() > b.pod_info.priority()
    }
}

/// A binder that binds nothing.
struct TestBinder;

impl Plugin for TestBinder {
    fn name(&self) -> &'static str {
        "TestBinder"
    }
    fn as_bind(&self) -> Option<&dyn BindPlugin> {
        Some(self)
    }
}

impl BindPlugin for TestBinder {
    fn bind<'a>(&'a self, _: &'a CycleState, _: &'a Pod, _: &'a str) -> BoxFuture<'a, Status> {
        Box::pin(async { Status::success() })
    }
}

/// Fixed nominations.
#[derive(Default)]
pub(super) struct TestNominator(pub Vec<(String, Arc<PodInfo>)>);

impl Nominator for TestNominator {
    fn nominated_pods_for_node(&self, node: &str) -> Vec<Arc<PodInfo>> {
        self.0
            .iter()
            .filter(|(n, _)| n == node)
            .map(|(_, p)| p.clone())
            .collect()
    }
}

/// One preemption scenario: the cluster, the Filter verdicts and the plugin's configuration.
#[derive(Default)]
pub(super) struct Cluster {
    /// Nodes with their capacity and labels.
    pub nodes: Vec<Node>,
    /// Pods, placed by their nodeName.
    pub pods: Vec<Pod>,
    /// Budgets.
    pub pdbs: Vec<PodDisruptionBudget>,
    /// Filter verdict codes by node; nodes left out are absent, as upstream's NodeToStatus allows.
    pub statuses: Vec<(&'static str, Code)>,
    /// Nominated pods.
    pub nominator: TestNominator,
    /// The plugin's args.
    pub args: DefaultPreemptionArgs,
    /// Where the dry run starts.
    pub offset: usize,
}

/// Nodes named `names`, all with `capacity`, and every one of them Unschedulable in Filter.
pub(super) fn nodes(
    names: &[&'static str],
    capacity: &[(&str, &str)],
) -> (Vec<Node>, Vec<(&'static str, Code)>) {
    let nodes = names
        .iter()
        .map(|n| make_node(n).capacity(capacity).obj())
        .collect();
    let statuses = names.iter().map(|n| (*n, Code::Unschedulable)).collect();
    (nodes, statuses)
}

/// A pod `name` with priority `priority` on `node`.
pub(super) fn on(name: &str, node: &str, priority: i32) -> MakePod {
    make_pod(name).node(node).priority(priority)
}

/// The pod with its status started at `nanos` after the epoch.
pub(super) fn started(pod: MakePod, nanos: i128) -> Pod {
    let mut pod = pod.obj();
    let start = Timestamp::from_nanosecond(nanos).expect("valid timestamp");
    pod.status.get_or_insert_with(PodStatus::default).start_time = Some(Time(start));
    pod
}

/// The pod being deleted; `by_preemption` adds the DisruptionTarget condition the scheduler sets.
pub(super) fn terminating(pod: MakePod, by_preemption: bool) -> Pod {
    let mut pod = pod.obj();
    pod.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
    if by_preemption {
        pod.status.get_or_insert_with(PodStatus::default).conditions = Some(vec![PodCondition {
            type_: "DisruptionTarget".into(),
            status: "True".into(),
            reason: Some("PreemptionByScheduler".into()),
            ..Default::default()
        }]);
    }
    pod
}

/// The pod nominated to `node`.
pub(super) fn nominated(pod: MakePod, node: &str) -> Pod {
    let mut pod = pod.obj();
    pod.status
        .get_or_insert_with(PodStatus::default)
        .nominated_node_name = Some(node.into());
    pod
}

/// A budget in `default` over pods labelled `key=value`.
pub(super) fn pdb(key: &str, value: &str, allowed: i32, disrupted: &[&str]) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: ObjectMeta {
            name: Some(format!("{key}-{value}")),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(PodDisruptionBudgetSpec {
            selector: Some(LabelSelector {
                match_labels: Some([(key.to_string(), value.to_string())].into()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: Some(PodDisruptionBudgetStatus {
            disruptions_allowed: Some(allowed),
            disrupted_pods: Some(
                disrupted
                    .iter()
                    .map(|p| (p.to_string(), Time(Timestamp::UNIX_EPOCH)))
                    .collect(),
            ),
            ..Default::default()
        }),
    }
}

/// Everything a PostFilter call needs, built from a [`Cluster`].
pub(super) struct Setup {
    pub framework: Framework,
    pub snapshot: Snapshot,
    pub statuses: HashMap<String, Status>,
    pub nominator: TestNominator,
    pub plugin: Arc<DefaultPreemption>,
}

impl Setup {
    pub fn new(cluster: Cluster) -> Self {
        let listers = StaticListers {
            pod_disruption_budgets: cluster.pdbs.into_iter().map(Arc::new).collect(),
            ..Default::default()
        };
        let handle = Handle::for_tests(listers);
        let plugin = Arc::new(
            DefaultPreemption::new(&cluster.args, &handle)
                .expect("valid args")
                .with_fixed_offset(cluster.offset),
        );
        let for_factory = plugin.clone();
        let factory = move |name: &str| -> Option<Result<Arc<dyn Plugin>, String>> {
            let plugin: Arc<dyn Plugin> = match name {
                "TestQueueSort" => Arc::new(TestQueueSort),
                "TestFit" => Arc::new(TestFit),
                BLOCKERS => Arc::new(TestBlocker),
                "TestBinder" => Arc::new(TestBinder),
                NAME => for_factory.clone(),
                _ => return None,
            };
            Some(Ok(plugin))
        };
        let enabled = ["TestQueueSort", BLOCKERS, "TestFit", NAME, "TestBinder"]
            .into_iter()
            .map(|name| PluginRef::new(name, None))
            .collect();
        let config = Plugins {
            multi_point: PluginSet {
                enabled,
                disabled: Vec::new(),
            },
            ..Default::default()
        };
        let pool = Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .expect("pool"),
        );
        let framework =
            Framework::new("default-scheduler", &config, &factory, None, pool).expect("framework");
        assert_eq!(framework.names_at(ExtensionPoint::PostFilter), [NAME]);
        let node_infos = cluster
            .nodes
            .into_iter()
            .map(|node| {
                let name = node.metadata.name.clone().unwrap_or_default();
                let mut info = NodeInfo::new(Arc::new(node));
                for pod in &cluster.pods {
                    if pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&name) {
                        info.add_pod(Arc::new(PodInfo::new(Arc::new(pod.clone()))));
                    }
                }
                Arc::new(info)
            })
            .collect();
        let statuses = cluster
            .statuses
            .into_iter()
            .map(|(node, code)| (node.to_string(), Status::new(code, Vec::new())))
            .collect();
        Self {
            framework,
            snapshot: Snapshot::new(node_infos),
            statuses,
            nominator: cluster.nominator,
            plugin,
        }
    }

    /// Runs PreFilter, then the state after it and the pod.
    pub fn pre_filter(&self, pod: Pod) -> (CycleState, PodInfo) {
        let pod = PodInfo::new(Arc::new(pod));
        let mut state = CycleState::default();
        let (_, status) = self
            .framework
            .run_pre_filter(&mut state, &pod, &self.snapshot);
        assert!(status.is_success(), "PreFilter: {status}");
        (state, pod)
    }

    /// Runs PreFilter and the plugin's PostFilter for `pod`.
    pub fn post_filter(&self, pod: Pod) -> (Option<PostFilterResult>, Status) {
        let (state, pod) = self.pre_filter(pod);
        let context = PostFilterContext {
            framework: &self.framework,
            state: &state,
            pod: &pod,
            snapshot: &self.snapshot,
            statuses: &self.statuses,
            nominator: &self.nominator,
        };
        use crate::framework::PostFilterPlugin;
        self.plugin.post_filter(&context)
    }
}

/// Victim names, in the order the plugin gave them.
pub(super) fn victim_names(result: &PostFilterResult) -> Vec<&str> {
    result
        .victims
        .iter()
        .map(|v| v.metadata.name.as_deref().unwrap_or_default())
        .collect()
}
