//! A profile's plugins, expanded onto extension points and run in upstream's order
//! (upstream `framework/runtime/framework.go`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use rayon::prelude::*;

use super::cycle_state::CycleState;
use super::interface::{
    MAX_NODE_SCORE, MIN_NODE_SCORE, NodeScore, Nominator, Plugin, PostFilterContext,
    PostFilterResult, PreFilterResult, QueuedPodInfo,
};
use super::node_info::NodeInfo;
use super::pod_info::PodInfo;
use super::snapshot::Snapshot;
use super::status::{Code, Status};
use crate::config::{PluginSet, Plugins};

/// The extension points, in the order a pod meets them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExtensionPoint {
    /// PreEnqueue.
    PreEnqueue,
    /// QueueSort.
    QueueSort,
    /// PreFilter.
    PreFilter,
    /// Filter.
    Filter,
    /// PostFilter.
    PostFilter,
    /// PreScore.
    PreScore,
    /// Score.
    Score,
    /// Reserve.
    Reserve,
    /// Permit.
    Permit,
    /// PreBind.
    PreBind,
    /// Bind.
    Bind,
    /// PostBind.
    PostBind,
}

impl ExtensionPoint {
    /// Every extension point.
    pub const ALL: [ExtensionPoint; 12] = [
        Self::PreEnqueue,
        Self::QueueSort,
        Self::PreFilter,
        Self::Filter,
        Self::PostFilter,
        Self::PreScore,
        Self::Score,
        Self::Reserve,
        Self::Permit,
        Self::PreBind,
        Self::Bind,
        Self::PostBind,
    ];

    /// This point's settings in a profile's plugin configuration.
    pub fn settings(self, plugins: &Plugins) -> &PluginSet {
        match self {
            Self::PreEnqueue => &plugins.pre_enqueue,
            Self::QueueSort => &plugins.queue_sort,
            Self::PreFilter => &plugins.pre_filter,
            Self::Filter => &plugins.filter,
            Self::PostFilter => &plugins.post_filter,
            Self::PreScore => &plugins.pre_score,
            Self::Score => &plugins.score,
            Self::Reserve => &plugins.reserve,
            Self::Permit => &plugins.permit,
            Self::PreBind => &plugins.pre_bind,
            Self::Bind => &plugins.bind,
            Self::PostBind => &plugins.post_bind,
        }
    }

    fn implemented_by(self, plugin: &dyn Plugin) -> bool {
        match self {
            Self::PreEnqueue => plugin.as_pre_enqueue().is_some(),
            Self::QueueSort => plugin.as_queue_sort().is_some(),
            Self::PreFilter => plugin.as_pre_filter().is_some(),
            Self::Filter => plugin.as_filter().is_some(),
            Self::PostFilter => plugin.as_post_filter().is_some(),
            Self::PreScore => plugin.as_pre_score().is_some(),
            Self::Score => plugin.as_score().is_some(),
            Self::Reserve => plugin.as_reserve().is_some(),
            Self::Permit => plugin.as_permit().is_some(),
            Self::PreBind => plugin.as_pre_bind().is_some(),
            Self::Bind => plugin.as_bind().is_some(),
            Self::PostBind => plugin.as_post_bind().is_some(),
        }
    }
}

/// Why a profile's framework cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameworkError {
    /// A plugin is not known.
    #[error("plugin {0:?} is not registered")]
    UnknownPlugin(String),
    /// A plugin's constructor refused its arguments.
    #[error("initializing plugin {0:?}: {1}")]
    Init(String, String),
    /// A plugin was enabled at an extension point it does not implement.
    #[error("plugin {0:?} does not extend {1:?} plugin")]
    NotImplemented(String, ExtensionPoint),
    /// A plugin appears twice at one point.
    #[error("plugin {0:?} already registered as {1:?}")]
    Duplicate(String, ExtensionPoint),
    /// There must be exactly one queue-sort plugin.
    #[error("one queue sort plugin required for profile with scheduler name {0:?}")]
    QueueSort(String),
    /// There must be at least one binder.
    #[error("at least one bind plugin is needed for profile with scheduler name {0:?}")]
    NoBinder(String),
}

/// Creates a plugin by name; `None` when the name is unknown.
pub type PluginFactory<'a> = dyn Fn(&str) -> Option<Result<Arc<dyn Plugin>, String>> + 'a;

/// The instantiated plugins of one profile, and the runner of its extension points.
pub struct Framework {
    profile_name: String,
    plugins: Vec<Arc<dyn Plugin>>,
    points: HashMap<ExtensionPoint, Vec<Arc<dyn Plugin>>>,
    score_weights: HashMap<&'static str, i64>,
    percentage_of_nodes_to_score: Option<i32>,
    pool: Arc<rayon::ThreadPool>,
}

impl Framework {
    /// Builds the framework of profile `profile_name` from its plugin configuration.
    pub fn new(
        profile_name: &str,
        config: &Plugins,
        factory: &PluginFactory<'_>,
        percentage_of_nodes_to_score: Option<i32>,
        pool: Arc<rayon::ThreadPool>,
    ) -> Result<Self, FrameworkError> {
        let mut instances: BTreeMap<String, Arc<dyn Plugin>> = BTreeMap::new();
        let needed = config.multi_point.enabled.iter().chain(
            ExtensionPoint::ALL
                .iter()
                .flat_map(|point| point.settings(config).enabled.iter()),
        );
        for plugin in needed {
            if instances.contains_key(&plugin.name) {
                continue;
            }
            let instance = factory(&plugin.name)
                .ok_or_else(|| FrameworkError::UnknownPlugin(plugin.name.clone()))?
                .map_err(|e| FrameworkError::Init(plugin.name.clone(), e))?;
            instances.insert(plugin.name.clone(), instance);
        }
        let mut points = HashMap::new();
        let mut score_weights = HashMap::new();
        for point in ExtensionPoint::ALL {
            let expanded = expand(point, config, &instances)?;
            if point == ExtensionPoint::Score {
                for (plugin, weight) in &expanded {
                    score_weights.insert(plugin.name(), i64::from(weight.unwrap_or(1).max(1)));
                }
            }
            points.insert(point, expanded.into_iter().map(|(p, _)| p).collect());
        }
        let framework = Self {
            profile_name: profile_name.to_string(),
            plugins: instances.into_values().collect(),
            points,
            score_weights,
            percentage_of_nodes_to_score,
            pool,
        };
        if framework.at(ExtensionPoint::QueueSort).len() != 1 {
            return Err(FrameworkError::QueueSort(profile_name.to_string()));
        }
        if framework.at(ExtensionPoint::Bind).is_empty() {
            return Err(FrameworkError::NoBinder(profile_name.to_string()));
        }
        Ok(framework)
    }

    /// The profile's scheduler name.
    pub fn profile_name(&self) -> &str {
        &self.profile_name
    }

    /// The profile's percentageOfNodesToScore, if set.
    pub fn percentage_of_nodes_to_score(&self) -> Option<i32> {
        self.percentage_of_nodes_to_score
    }

    /// Every plugin instance.
    pub fn plugins(&self) -> &[Arc<dyn Plugin>] {
        &self.plugins
    }

    /// The plugins at `point`, in order.
    pub fn at(&self, point: ExtensionPoint) -> &[Arc<dyn Plugin>] {
        self.points
            .get(&point)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The names of the plugins at `point`, in order.
    pub fn names_at(&self, point: ExtensionPoint) -> Vec<&'static str> {
        self.at(point).iter().map(|p| p.name()).collect()
    }

    /// The weight of score plugin `name`.
    pub fn score_weight(&self, name: &str) -> i64 {
        self.score_weights.get(name).copied().unwrap_or(1)
    }

    /// The thread pool Filter and Score run on.
    pub fn pool(&self) -> &rayon::ThreadPool {
        &self.pool
    }

    /// Whether `a` goes before `b` in the active queue.
    pub fn queue_sort_less(&self, a: &QueuedPodInfo, b: &QueuedPodInfo) -> bool {
        self.at(ExtensionPoint::QueueSort)
            .iter()
            .filter_map(|p| p.as_queue_sort())
            .map(|p| p.less(a, b))
            .next()
            .unwrap_or(false)
    }

    /// Runs PreEnqueue: the first plugin that refuses gates the pod.
    pub fn run_pre_enqueue(&self, pod: &Pod) -> Status {
        for plugin in self.at(ExtensionPoint::PreEnqueue) {
            if let Some(p) = plugin.as_pre_enqueue() {
                let status = p.pre_enqueue(pod);
                if !status.is_success() {
                    return status.with_plugin(plugin.name());
                }
            }
        }
        Status::success()
    }

    /// Runs PreFilter; a rejection stops at once and names the plugin.
    pub fn run_pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> (PreFilterResult, Status) {
        let mut result = PreFilterResult::default();
        let mut narrowed_by = Vec::new();
        for plugin in self.at(ExtensionPoint::PreFilter) {
            let Some(p) = plugin.as_pre_filter() else {
                continue;
            };
            let (plugin_result, status) = p.pre_filter(state, pod, snapshot);
            if status.is_skip() {
                state.skip_filter_plugins.insert(plugin.name());
                continue;
            }
            if !status.is_success() {
                return (result, status.with_plugin(plugin.name()));
            }
            if plugin_result
                .as_ref()
                .is_some_and(|r| r.node_names.is_some())
            {
                narrowed_by.push(plugin.name());
            }
            result = result.merge(plugin_result);
            if result.node_names.as_ref().is_some_and(BTreeSet::is_empty) {
                let message = format!(
                    "node(s) didn't satisfy plugin(s) [{}] simultaneously",
                    narrowed_by.join(" ")
                );
                let reason = if narrowed_by.len() == 1 {
                    format!("node(s) didn't satisfy plugin {}", narrowed_by[0])
                } else {
                    message
                };
                return (
                    result,
                    Status::unresolvable(reason).with_plugin(plugin.name()),
                );
            }
        }
        (result, Status::success())
    }

    /// Runs Filter on one node; the first rejection wins.
    pub fn run_filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        for plugin in self.at(ExtensionPoint::Filter) {
            if state.skip_filter_plugins.contains(plugin.name()) {
                continue;
            }
            if let Some(p) = plugin.as_filter() {
                let status = p.filter(state, pod, node);
                if !status.is_success() {
                    return status.with_plugin(plugin.name());
                }
            }
        }
        Status::success()
    }

    /// Runs Filter on one node twice when pods of equal or higher priority are nominated to it: once
    /// with them (room must be left for them) and once without (they may not need this node after all).
    pub fn run_filter_with_nominated_pods(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        node: &NodeInfo,
        nominator: &dyn Nominator,
    ) -> Status {
        let nominated: Vec<_> = nominator
            .nominated_pods_for_node(node.name())
            .into_iter()
            .filter(|n| n.uid() != pod.uid() && n.priority() >= pod.priority())
            .collect();
        if nominated.is_empty() {
            return self.run_filter(state, pod, node);
        }
        let mut state_with = state.clone();
        let mut node_with = node.clone();
        for other in &nominated {
            node_with.add_pod(other.clone());
            let status =
                self.run_pre_filter_extension_add_pod(&mut state_with, pod, other, &node_with);
            if !status.is_success() {
                return status;
            }
        }
        let status = self.run_filter(&state_with, pod, &node_with);
        if !status.is_success() {
            return status;
        }
        self.run_filter(state, pod, node)
    }

    /// Tells PreFilter extensions that `added` is now on `node`.
    pub fn run_pre_filter_extension_add_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        added: &PodInfo,
        node: &NodeInfo,
    ) -> Status {
        self.run_pre_filter_extensions(state, |ext, state| ext.add_pod(state, pod, added, node))
    }

    /// Tells PreFilter extensions that `removed` is no longer on `node`.
    pub fn run_pre_filter_extension_remove_pod(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        removed: &PodInfo,
        node: &NodeInfo,
    ) -> Status {
        self.run_pre_filter_extensions(state, |ext, state| {
            ext.remove_pod(state, pod, removed, node)
        })
    }

    fn run_pre_filter_extensions(
        &self,
        state: &mut CycleState,
        call: impl Fn(&dyn super::interface::PreFilterExtensions, &mut CycleState) -> Status,
    ) -> Status {
        for plugin in self.at(ExtensionPoint::PreFilter) {
            if state.skip_filter_plugins.contains(plugin.name()) {
                continue;
            }
            let Some(ext) = plugin
                .as_pre_filter()
                .and_then(|p| p.pre_filter_extensions())
            else {
                continue;
            };
            let status = call(ext, state);
            if !status.is_success() {
                return Status::error(format!(
                    "running {} PreFilter extension: {}",
                    plugin.name(),
                    status.message()
                ))
                .with_plugin(plugin.name());
            }
        }
        Status::success()
    }

    /// Runs PostFilter plugins until one succeeds or returns an unresolvable verdict.
    pub fn run_post_filter(
        &self,
        context: &PostFilterContext<'_>,
    ) -> (Option<PostFilterResult>, Status) {
        let mut reasons = Vec::new();
        // An Unschedulable plugin may still override the nomination (to clear it), as upstream keeps it.
        let mut kept = None;
        for plugin in self.at(ExtensionPoint::PostFilter) {
            let Some(p) = plugin.as_post_filter() else {
                continue;
            };
            let (result, status) = p.post_filter(context);
            match status.code() {
                Code::Success => return (result, status.with_plugin(plugin.name())),
                Code::UnschedulableAndUnresolvable | Code::Error => {
                    return (None, status.with_plugin(plugin.name()));
                }
                _ => {
                    reasons.extend(status.reasons().iter().cloned());
                    kept = result.or(kept);
                }
            }
        }
        (kept, Status::new(Code::Unschedulable, reasons))
    }

    /// Runs PreScore; a failure stops at once.
    pub fn run_pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[Arc<NodeInfo>],
        snapshot: &Snapshot,
    ) -> Status {
        for plugin in self.at(ExtensionPoint::PreScore) {
            let Some(p) = plugin.as_pre_score() else {
                continue;
            };
            let status = p.pre_score(state, pod, nodes, snapshot);
            if status.is_skip() {
                state.skip_score_plugins.insert(plugin.name());
            } else if !status.is_success() {
                return status.with_plugin(plugin.name());
            }
        }
        Status::success()
    }

    /// Runs Score on every node in parallel, normalises each plugin's scores, weighs and sums them.
    pub fn run_score(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        nodes: &[Arc<NodeInfo>],
    ) -> Result<Vec<NodeScore>, Status> {
        let plugins: Vec<_> = self
            .at(ExtensionPoint::Score)
            .iter()
            .filter(|p| !state.skip_score_plugins.contains(p.name()))
            .filter_map(|p| p.as_score().map(|s| (p.name(), s)))
            .collect();
        let mut totals: Vec<NodeScore> = nodes
            .iter()
            .map(|n| NodeScore {
                name: n.name().to_string(),
                score: 0,
            })
            .collect();
        for (name, plugin) in plugins {
            let raw: Result<Vec<i64>, Status> = self.pool.install(|| {
                nodes
                    .par_iter()
                    .map(|node| plugin.score(state, pod, node))
                    .collect()
            });
            let mut scores: Vec<NodeScore> = raw
                .map_err(|s| s.with_plugin(name))?
                .into_iter()
                .zip(nodes)
                .map(|(score, node)| NodeScore {
                    name: node.name().to_string(),
                    score,
                })
                .collect();
            let status = plugin.normalize_score(state, pod, &mut scores);
            if !status.is_success() {
                return Err(status.with_plugin(name));
            }
            let weight = self.score_weight(name);
            for (total, score) in totals.iter_mut().zip(&scores) {
                if !(MIN_NODE_SCORE..=MAX_NODE_SCORE).contains(&score.score) {
                    return Err(Status::error(format!(
                        "plugin {name:?} returns an invalid score {}, it should in the range of [{MIN_NODE_SCORE}, {MAX_NODE_SCORE}] after normalizing",
                        score.score
                    )));
                }
                total.score += score.score * weight;
            }
        }
        Ok(totals)
    }

    /// Runs Reserve; on failure the caller runs Unreserve.
    pub fn run_reserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> Status {
        for plugin in self.at(ExtensionPoint::Reserve) {
            if let Some(p) = plugin.as_reserve() {
                let status = p.reserve(state, pod, node);
                if !status.is_success() {
                    return status.with_plugin(plugin.name());
                }
            }
        }
        Status::success()
    }

    /// Runs Unreserve in reverse order.
    pub fn run_unreserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) {
        for plugin in self.at(ExtensionPoint::Reserve).iter().rev() {
            if let Some(p) = plugin.as_reserve() {
                p.unreserve(state, pod, node);
            }
        }
    }

    /// Runs Permit; waiting is not supported, so Wait is treated as a rejection.
    pub fn run_permit(&self, state: &CycleState, pod: &PodInfo, node: &str) -> Status {
        for plugin in self.at(ExtensionPoint::Permit) {
            if let Some(p) = plugin.as_permit() {
                let (status, _) = p.permit(state, pod, node);
                if status.code() == Code::Wait {
                    return Status::unschedulable("waiting in Permit is not supported")
                        .with_plugin(plugin.name());
                }
                if !status.is_success() {
                    return status.with_plugin(plugin.name());
                }
            }
        }
        Status::success()
    }

    /// Runs PreBind in order.
    pub async fn run_pre_bind(&self, state: &CycleState, pod: &Pod, node: &str) -> Status {
        for plugin in self.at(ExtensionPoint::PreBind) {
            if let Some(p) = plugin.as_pre_bind() {
                let status = p.pre_bind(state, pod, node).await;
                if !status.is_success() {
                    return status.with_plugin(plugin.name());
                }
            }
        }
        Status::success()
    }

    /// Runs Bind until a binder does not Skip.
    pub async fn run_bind(&self, state: &CycleState, pod: &Pod, node: &str) -> Status {
        for plugin in self.at(ExtensionPoint::Bind) {
            if let Some(p) = plugin.as_bind() {
                let status = p.bind(state, pod, node).await;
                if !status.is_skip() {
                    return status.with_plugin(plugin.name());
                }
            }
        }
        Status::error("no bind plugin bound the pod")
    }

    /// Runs PostBind.
    pub fn run_post_bind(&self, state: &CycleState, pod: &Pod, node: &str) {
        for plugin in self.at(ExtensionPoint::PostBind) {
            if let Some(p) = plugin.as_post_bind() {
                p.post_bind(state, pod, node);
            }
        }
    }
}

/// A plugin with its configured score weight.
type WeightedPlugin = (Arc<dyn Plugin>, Option<i32>);

/// Upstream's expansion of multi-point plugins onto one extension point: plugins configured explicitly
/// at the point first (they override the multi-point entry), then multi-point ones not disabled there, then
/// the remaining explicit ones.
fn expand(
    point: ExtensionPoint,
    config: &Plugins,
    instances: &BTreeMap<String, Arc<dyn Plugin>>,
) -> Result<Vec<WeightedPlugin>, FrameworkError> {
    let explicit = point.settings(config);
    let disabled: BTreeSet<&str> = explicit.disabled.iter().map(|p| p.name.as_str()).collect();
    let explicit_names: BTreeSet<&str> = explicit.enabled.iter().map(|p| p.name.as_str()).collect();
    let instance = |name: &str| -> Result<Arc<dyn Plugin>, FrameworkError> {
        instances
            .get(name)
            .cloned()
            .ok_or_else(|| FrameworkError::UnknownPlugin(name.to_string()))
    };
    let mut overridden = Vec::new();
    let mut from_multi_point = Vec::new();
    let mut seen = BTreeSet::new();
    for plugin in &config.multi_point.enabled {
        let instance = instance(&plugin.name)?;
        if !point.implemented_by(instance.as_ref()) {
            continue;
        }
        if disabled.contains("*") || disabled.contains(plugin.name.as_str()) {
            continue;
        }
        if explicit_names.contains(plugin.name.as_str()) {
            overridden.push(plugin.name.as_str());
            continue;
        }
        if !seen.insert(plugin.name.as_str()) {
            return Err(FrameworkError::Duplicate(plugin.name.clone(), point));
        }
        from_multi_point.push((instance, plugin.weight));
    }
    let mut result = Vec::new();
    let mut rest = Vec::new();
    for plugin in &explicit.enabled {
        let instance = instance(&plugin.name)?;
        if !point.implemented_by(instance.as_ref()) {
            return Err(FrameworkError::NotImplemented(plugin.name.clone(), point));
        }
        if !seen.insert(plugin.name.as_str()) {
            return Err(FrameworkError::Duplicate(plugin.name.clone(), point));
        }
        if overridden.contains(&plugin.name.as_str()) {
            result.push((instance, plugin.weight));
        } else {
            rest.push((instance, plugin.weight));
        }
    }
    result.extend(from_multi_point);
    result.extend(rest);
    Ok(result)
}

#[cfg(test)]
#[path = "runtime_tests.rs"]
mod tests;
