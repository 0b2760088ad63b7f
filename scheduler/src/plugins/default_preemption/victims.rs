//! Who may preempt, and the fewest pods to evict from one node (upstream `PodEligibleToPreemptOthers` and
//! `SelectVictimsOnNode` of `plugins/defaultpreemption`).

use std::cmp::Ordering;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use super::pdb::{PdbInfo, split_by_pdb_violation};
use crate::framework::pod_info::priority;
use crate::framework::{
    Code, CycleState, Framework, NodeInfo, Nominator, PodInfo, Snapshot, Status,
};

/// Why a node offers nothing to preempt.
pub const NO_VICTIMS_FOUND: &str = "No preemption victims found for incoming pod";
/// Why a pod with preemptionPolicy Never does not preempt.
pub const NOT_ELIGIBLE_PREEMPT_NEVER: &str = "not eligible due to preemptionPolicy=Never.";
/// Why a pod whose earlier victims are still terminating does not preempt again.
pub const NOT_ELIGIBLE_TERMINATING: &str =
    "not eligible due to a terminating pod on the nominated node.";

/// Whether `victim` may be evicted for `preemptor`: only strictly lower priorities are.
fn is_preemption_allowed(victim: &PodInfo, preemptor: &PodInfo) -> bool {
    victim.priority() < preemptor.priority()
}

/// Whether `pod` is being deleted because the scheduler preempted it (its DisruptionTarget condition
/// says so); pods deleted for other reasons do not hold a preemptor back.
fn terminating_by_preemption(pod: &Pod) -> bool {
    if pod.metadata.deletion_timestamp.is_none() {
        return false;
    }
    pod.status
        .iter()
        .flat_map(|status| status.conditions.iter().flatten())
        .find(|condition| condition.type_ == "DisruptionTarget")
        .is_some_and(|condition| {
            condition.status == "True"
                && condition.reason.as_deref() == Some("PreemptionByScheduler")
        })
}

/// Upstream's PodEligibleToPreemptOthers: `Err` with the reason when `pod` should not preempt now.
/// `nominated_status` is the Filter verdict on the pod's nominated node (nodes Filter did not reach count
/// as UnschedulableAndUnresolvable, as upstream's absent entries do).
pub(super) fn pod_eligible_to_preempt_others(
    pod: &PodInfo,
    snapshot: &Snapshot,
    nominated_status: Code,
) -> Result<(), &'static str> {
    let spec = pod.pod.spec.as_ref();
    if spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never") {
        return Err(NOT_ELIGIBLE_PREEMPT_NEVER);
    }
    let nominated = pod
        .pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .unwrap_or_default();
    if nominated.is_empty() {
        return Ok(());
    }
    // Preempting again is right when the nominated node can no longer take the pod at all.
    if nominated_status == Code::UnschedulableAndUnresolvable {
        return Ok(());
    }
    if let Some(node) = snapshot.get(nominated)
        && node
            .pods
            .iter()
            .any(|p| is_preemption_allowed(p, pod) && terminating_by_preemption(&p.pod))
    {
        return Err(NOT_ELIGIBLE_TERMINATING);
    }
    Ok(())
}

/// When a pod started; pods not started yet count as starting `now` (upstream `GetPodStartTime`).
pub(super) fn start_time(pod: &Pod, now: Timestamp) -> Timestamp {
    pod.status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map_or(now, |t| t.0)
}

/// Upstream's MoreImportantPod as an ordering: higher priority first, then the one that started earlier.
pub(super) fn more_important_first(a: &Pod, b: &Pod, now: Timestamp) -> Ordering {
    priority(b)
        .cmp(&priority(a))
        .then_with(|| start_time(a, now).cmp(&start_time(b, now)))
}

/// What the what-if evaluation of one node needs; shared by all nodes of one preemption attempt.
pub(super) struct Preemptor<'a> {
    /// The profile's framework, to re-run filters and PreFilter extensions.
    pub framework: &'a Framework,
    /// The pod that wants to preempt.
    pub pod: &'a PodInfo,
    /// Pods nominated to nodes, which the filters leave room for.
    pub nominator: &'a dyn Nominator,
    /// The budgets of the namespaces victims may come from.
    pub pdbs: &'a [PdbInfo],
    /// The time that stands in for pods not started yet.
    pub now: Timestamp,
}

impl Preemptor<'_> {
    /// Upstream's SelectVictimsOnNode on copies of the cycle state and node: the victims, most important
    /// first, and how many of them violate a budget; or the status saying why preemption does not help
    /// on this node.
    pub(super) fn select_victims_on_node(
        &self,
        state: &mut CycleState,
        node: &mut NodeInfo,
    ) -> Result<(Vec<Arc<PodInfo>>, i64), Status> {
        let mut potential: Vec<Arc<PodInfo>> = node
            .pods
            .iter()
            .filter(|p| is_preemption_allowed(p, self.pod))
            .cloned()
            .collect();
        if potential.is_empty() {
            return Err(Status::unresolvable(NO_VICTIMS_FOUND));
        }
        for victim in &potential {
            self.remove_pod(state, node, victim)?;
        }
        // If the pod does not fit even without every lower-priority pod, this node cannot help. Inter-pod
        // affinity to a victim is deliberately not considered, as upstream.
        let status = self.fits(state, node);
        if !status.is_success() {
            return Err(status);
        }
        potential.sort_by(|a, b| more_important_first(&a.pod, &b.pod, self.now));
        let (violating, non_violating) = split_by_pdb_violation(potential, self.pdbs);
        let mut victims = Vec::new();
        let mut num_violating = 0;
        // Reprieve as many pods as possible, budget-violating ones first, most important first.
        for pod in &violating {
            if !self.reprieve(state, node, pod, &mut victims)? {
                num_violating += 1;
            }
        }
        for pod in &non_violating {
            self.reprieve(state, node, pod, &mut victims)?;
        }
        if !violating.is_empty() && !non_violating.is_empty() {
            victims.sort_by(|a, b| more_important_first(&a.pod, &b.pod, self.now));
        }
        Ok((victims, num_violating))
    }

    fn fits(&self, state: &CycleState, node: &NodeInfo) -> Status {
        self.framework
            .run_filter_with_nominated_pods(state, self.pod, node, self.nominator)
    }

    /// Puts `pod` back; keeps it there if the preemptor still fits, else records it as a victim.
    fn reprieve(
        &self,
        state: &mut CycleState,
        node: &mut NodeInfo,
        pod: &Arc<PodInfo>,
        victims: &mut Vec<Arc<PodInfo>>,
    ) -> Result<bool, Status> {
        self.add_pod(state, node, pod)?;
        let fits = self.fits(state, node).is_success();
        if !fits {
            self.remove_pod(state, node, pod)?;
            victims.push(pod.clone());
        }
        Ok(fits)
    }

    fn remove_pod(
        &self,
        state: &mut CycleState,
        node: &mut NodeInfo,
        pod: &PodInfo,
    ) -> Result<(), Status> {
        if !node.remove_pod(pod.uid()) {
            return Err(Status::error(format!(
                "no corresponding pod {} in pods of node {}",
                pod.name(),
                node.name()
            )));
        }
        let status = self
            .framework
            .run_pre_filter_extension_remove_pod(state, self.pod, pod, node);
        if status.is_success() {
            Ok(())
        } else {
            Err(status)
        }
    }

    fn add_pod(
        &self,
        state: &mut CycleState,
        node: &mut NodeInfo,
        pod: &Arc<PodInfo>,
    ) -> Result<(), Status> {
        node.add_pod(pod.clone());
        let status = self
            .framework
            .run_pre_filter_extension_add_pod(state, self.pod, pod, node);
        if status.is_success() {
            Ok(())
        } else {
            Err(status)
        }
    }
}
