//! One pod's scheduling algorithm (upstream `schedule_one.go`, `schedulePod`): PreFilter, Filter across
//! nodes in parallel with an adaptive number of feasible nodes to find, PreScore and Score, and the host
//! choice. Pure: it reads a snapshot and decides; the caller assumes, binds and reports.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng;
use rayon::prelude::*;

use crate::framework::{
    CycleState, ExtensionPoint, Framework, NodeInfo, NodeScore, NodeToStatus, Nominator, PodInfo,
    Snapshot, Status,
};

/// Below this many nodes every node is evaluated (upstream `minFeasibleNodesToFind`).
pub const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// The adaptive percentage never drops below this (upstream `minFeasibleNodesPercentageToFind`).
pub const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: i64 = 5;
/// Upstream's message when the cluster has no nodes.
pub const NO_NODES_AVAILABLE: &str = "no nodes available to schedule pods";

/// Where the pod should go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleResult {
    /// The chosen node.
    pub suggested_host: String,
    /// How many nodes were filtered.
    pub evaluated_nodes: usize,
    /// How many of them fit.
    pub feasible_nodes: usize,
}

/// Why no node fits, per node (upstream `framework.Diagnosis`).
#[derive(Clone, Debug, Default)]
pub struct Diagnosis {
    /// Each rejected node's status.
    pub node_to_status: NodeToStatus,
    /// Plugins that rejected the pod somewhere.
    pub unschedulable_plugins: BTreeSet<&'static str>,
    /// Plugins that returned Pending.
    pub pending_plugins: BTreeSet<&'static str>,
    /// The PreFilter rejection's message, if PreFilter rejected the pod.
    pub pre_filter_msg: String,
    /// PostFilter's message (preemption's verdict).
    pub post_filter_msg: String,
}

/// No node fits the pod (upstream `framework.FitError`).
#[derive(Clone, Debug)]
pub struct FitError {
    /// How many nodes the snapshot had.
    pub num_all_nodes: usize,
    /// Why.
    pub diagnosis: Diagnosis,
}

impl FitError {
    /// Upstream's message: "0/N nodes are available: <histogram of reasons>. <preemption message>."
    pub fn message(&self) -> String {
        let mut message = format!("0/{} nodes are available:", self.num_all_nodes);
        if !self.diagnosis.pre_filter_msg.is_empty() {
            message.push_str(&format!(" {}.", self.diagnosis.pre_filter_msg));
        } else {
            let mut histogram: BTreeMap<&str, usize> = BTreeMap::new();
            for status in self.diagnosis.node_to_status.values() {
                for reason in status.reasons() {
                    *histogram.entry(reason).or_default() += 1;
                }
            }
            let mut reasons: Vec<String> = histogram
                .iter()
                .map(|(reason, count)| format!("{count} {reason}"))
                .collect();
            reasons.sort();
            if !reasons.is_empty() {
                message.push_str(&format!(" {}.", reasons.join(", ")));
            }
        }
        if !self.diagnosis.post_filter_msg.is_empty() {
            message.push_str(&format!(" {}.", self.diagnosis.post_filter_msg));
        }
        message
    }
}

/// Why an attempt failed.
#[derive(Clone, Debug)]
pub enum ScheduleError {
    /// No node fits.
    Fit(Box<FitError>),
    /// Something broke; the pod is retried after backoff.
    Error(Status),
}

/// How many feasible nodes to look for before scoring (upstream `numFeasibleNodesToFind`).
pub fn num_feasible_nodes_to_find(
    percentage_of_nodes_to_score: i32,
    num_all_nodes: usize,
) -> usize {
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND {
        return num_all_nodes;
    }
    let mut percentage = i64::from(percentage_of_nodes_to_score);
    if percentage <= 0 {
        percentage = (50 - num_all_nodes as i64 / 125).max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND);
    }
    let found = (num_all_nodes as i64 * percentage / 100) as usize;
    found.max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// The scheduling algorithm's own state: where the next search over nodes starts, so load spreads.
#[derive(Debug, Default)]
pub struct Algorithm {
    next_start_node_index: usize,
    /// The global percentageOfNodesToScore (0: adaptive).
    pub percentage_of_nodes_to_score: i32,
}

impl Algorithm {
    /// An algorithm using `percentage_of_nodes_to_score` where a profile sets none.
    pub fn new(percentage_of_nodes_to_score: i32) -> Self {
        Self {
            next_start_node_index: 0,
            percentage_of_nodes_to_score,
        }
    }

    /// Picks a node for `pod`, or says why none fits.
    pub fn schedule_pod(
        &mut self,
        framework: &Framework,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        nominator: &dyn Nominator,
    ) -> Result<ScheduleResult, ScheduleError> {
        if snapshot.is_empty() {
            return Err(ScheduleError::Error(Status::error(NO_NODES_AVAILABLE)));
        }
        let (feasible, diagnosis) =
            self.find_nodes_that_fit_pod(framework, state, pod, snapshot, nominator)?;
        if feasible.is_empty() {
            return Err(ScheduleError::Fit(Box::new(FitError {
                num_all_nodes: snapshot.len(),
                diagnosis,
            })));
        }
        let evaluated_nodes = feasible.len() + diagnosis.node_to_status.len();
        if feasible.len() == 1 {
            return Ok(ScheduleResult {
                suggested_host: feasible[0].name().to_string(),
                evaluated_nodes,
                feasible_nodes: 1,
            });
        }
        let scores = prioritize_nodes(framework, state, pod, &feasible, snapshot)?;
        Ok(ScheduleResult {
            suggested_host: select_host(&scores, &mut rand::rng()),
            evaluated_nodes,
            feasible_nodes: feasible.len(),
        })
    }

    fn find_nodes_that_fit_pod(
        &mut self,
        framework: &Framework,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        nominator: &dyn Nominator,
    ) -> Result<(Vec<Arc<NodeInfo>>, Diagnosis), ScheduleError> {
        let mut diagnosis = Diagnosis::default();
        let (pre_filter_result, status) = framework.run_pre_filter(state, pod, snapshot);
        if !status.is_success() {
            if !status.is_rejected() {
                return Err(ScheduleError::Error(status));
            }
            diagnosis.pre_filter_msg = status.message();
            diagnosis.unschedulable_plugins.extend(status.plugin());
            for node in snapshot.nodes() {
                diagnosis
                    .node_to_status
                    .insert(node.name().to_string(), status.clone());
            }
            return Ok((Vec::new(), diagnosis));
        }
        // A pod nominated by an earlier preemption tries its nominated node first.
        let nominated = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .filter(|n| !n.is_empty());
        if let Some(node) = nominated.and_then(|n| snapshot.get(n))
            && framework
                .run_filter_with_nominated_pods(state, pod, node, nominator)
                .is_success()
        {
            return Ok((vec![node.clone()], diagnosis));
        }
        let nodes: Vec<Arc<NodeInfo>> = match &pre_filter_result.node_names {
            Some(names) => {
                for node in snapshot.nodes() {
                    if !names.contains(node.name()) {
                        let status = Status::unresolvable(
                            "node(s) didn't satisfy plugin(s) [PreFilter result]",
                        );
                        diagnosis
                            .node_to_status
                            .insert(node.name().to_string(), status);
                    }
                }
                names
                    .iter()
                    .filter_map(|n| snapshot.get(n).cloned())
                    .collect()
            }
            None => snapshot.nodes().to_vec(),
        };
        let feasible = self.find_nodes_that_pass_filters(
            framework,
            state,
            pod,
            &nodes,
            nominator,
            &mut diagnosis,
        );
        Ok((feasible, diagnosis))
    }

    fn find_nodes_that_pass_filters(
        &mut self,
        framework: &Framework,
        state: &CycleState,
        pod: &PodInfo,
        nodes: &[Arc<NodeInfo>],
        nominator: &dyn Nominator,
        diagnosis: &mut Diagnosis,
    ) -> Vec<Arc<NodeInfo>> {
        let percentage = framework
            .percentage_of_nodes_to_score()
            .unwrap_or(self.percentage_of_nodes_to_score);
        let to_find = num_feasible_nodes_to_find(percentage, nodes.len());
        if nodes.is_empty() {
            return Vec::new();
        }
        let start = self.next_start_node_index % nodes.len();
        if framework.at(ExtensionPoint::Filter).is_empty() {
            self.next_start_node_index = (start + to_find) % nodes.len();
            return (0..to_find)
                .map(|i| nodes[(start + i) % nodes.len()].clone())
                .collect();
        }
        let found = AtomicUsize::new(0);
        let verdicts: Vec<(usize, Option<Status>)> = framework.pool().install(|| {
            (0..nodes.len())
                .into_par_iter()
                .filter_map(|i| {
                    if found.load(Ordering::Relaxed) >= to_find {
                        return None;
                    }
                    let node = &nodes[(start + i) % nodes.len()];
                    let status =
                        framework.run_filter_with_nominated_pods(state, pod, node, nominator);
                    if status.is_success() {
                        let rank = found.fetch_add(1, Ordering::Relaxed);
                        (rank < to_find).then_some((i, None))
                    } else {
                        Some((i, Some(status)))
                    }
                })
                .collect()
        });
        let mut feasible = Vec::new();
        for (i, status) in verdicts {
            let node = &nodes[(start + i) % nodes.len()];
            match status {
                None => feasible.push(node.clone()),
                Some(status) => {
                    if status.is_rejected() {
                        diagnosis.unschedulable_plugins.extend(status.plugin());
                    }
                    diagnosis
                        .node_to_status
                        .insert(node.name().to_string(), status);
                }
            }
        }
        let processed = feasible.len() + diagnosis.node_to_status.len();
        self.next_start_node_index = (start + processed) % nodes.len();
        feasible
    }
}

/// Runs PreScore and Score and returns each feasible node's total.
pub fn prioritize_nodes(
    framework: &Framework,
    state: &mut CycleState,
    pod: &PodInfo,
    nodes: &[Arc<NodeInfo>],
    snapshot: &Snapshot,
) -> Result<Vec<NodeScore>, ScheduleError> {
    let status = framework.run_pre_score(state, pod, nodes, snapshot);
    if !status.is_success() {
        return Err(ScheduleError::Error(status));
    }
    framework
        .run_score(state, pod, nodes)
        .map_err(ScheduleError::Error)
}

/// The highest-scoring node; ties are broken uniformly at random (reservoir sampling, as upstream).
pub fn select_host(scores: &[NodeScore], rng: &mut impl Rng) -> String {
    let mut best: Option<&NodeScore> = None;
    let mut ties = 0u32;
    for score in scores {
        match best {
            Some(b) if score.score < b.score => {}
            Some(b) if score.score == b.score => {
                ties += 1;
                if rng.random_range(0..ties + 1) == 0 {
                    best = Some(score);
                }
            }
            _ => {
                best = Some(score);
                ties = 0;
            }
        }
    }
    best.map(|b| b.name.clone()).unwrap_or_default()
}

#[cfg(test)]
mod tests;
