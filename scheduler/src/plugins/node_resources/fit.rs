//! NodeResourcesFit (upstream `fit.go`): Filter rejects nodes without room for the pod's requests;
//! Score ranks the rest with the configured strategy (LeastAllocated, MostAllocated or
//! RequestedToCapacityRatio).

use std::sync::Arc;

use super::requested_to_capacity_ratio::{FunctionShape, FunctionShapePoint};
use super::resource_allocation::{PreScoreState, ResourceAllocation};
use super::{
    is_extended_resource_name, least_allocated, most_allocated, requested_to_capacity_ratio,
};
use crate::config::{NodeResourcesFitArgs, ScoringStrategyType};
use crate::framework::resource::{CPU, EPHEMERAL_STORAGE, MEMORY, PODS};
use crate::framework::{
    ActionType, ClusterEvent, Code, CycleState, EventResource, FilterPlugin, Handle,
    MAX_NODE_SCORE, NodeInfo, Plugin, PodInfo, PreFilterPlugin, PreFilterResult, PreScorePlugin,
    Resource, ScorePlugin, Snapshot, Status,
};

/// The plugin's upstream name.
pub const NAME: &str = "NodeResourcesFit";
/// Where PreFilter leaves the pod's requests for Filter.
pub const PRE_FILTER_STATE_KEY: &str = "PreFilterNodeResourcesFit";
/// Where PreScore leaves the pod's requests of the scored resources for Score.
pub const PRE_SCORE_STATE_KEY: &str = "PreScoreNodeResourcesFit";

/// The highest score a RequestedToCapacityRatio shape point may give (upstream `MaxCustomPriorityScore`).
pub const MAX_CUSTOM_PRIORITY_SCORE: i64 = 10;

/// The Score strategy, ready to evaluate.
#[derive(Clone, Debug)]
enum Strategy {
    LeastAllocated,
    MostAllocated,
    RequestedToCapacityRatio(FunctionShape),
}

/// The NodeResourcesFit plugin.
#[derive(Debug)]
pub struct Fit {
    ignored_resources: Vec<String>,
    ignored_resource_groups: Vec<String>,
    allocation: ResourceAllocation,
    strategy: Strategy,
}

/// What the pod asks for, as Filter checks it: CPU, memory, ephemeral storage, and the scalar resources
/// with a non-zero request that are not ignored (upstream `preFilterState`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FitRequest {
    /// CPU in millicores.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage: i64,
    /// Scalar resources to check, by name.
    pub scalar_resources: Vec<(String, i64)>,
}

impl FitRequest {
    /// The checked part of `requests`; extended resources named in `ignored_resources`, or whose domain
    /// is in `ignored_resource_groups`, are left out.
    pub fn new(
        requests: &Resource,
        ignored_resources: &[String],
        ignored_resource_groups: &[String],
    ) -> Self {
        let ignored = |name: &str| {
            is_extended_resource_name(name)
                && (ignored_resources.iter().any(|r| r == name)
                    || name.split_once('/').is_some_and(|(group, _)| {
                        ignored_resource_groups.iter().any(|g| g == group)
                    }))
        };
        Self {
            milli_cpu: requests.milli_cpu,
            memory: requests.memory,
            ephemeral_storage: requests.ephemeral_storage,
            scalar_resources: requests
                .scalar_resources
                .iter()
                .filter(|(name, quantity)| **quantity != 0 && !ignored(name))
                .map(|(name, quantity)| (name.clone(), *quantity))
                .collect(),
        }
    }

    /// Everything `pod` asks for, nothing ignored (upstream `Fits`).
    pub fn from_pod(pod: &PodInfo) -> Self {
        Self::new(&pod.requests, &[], &[])
    }
}

/// A resource the node lacks for the pod (upstream `InsufficientResource`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InsufficientResource<'a> {
    /// The resource (`pods`, `cpu`, `example.com/gpu`, ...).
    pub resource_name: &'a str,
    /// What the pod requests.
    pub requested: i64,
    /// What the node's pods already use.
    pub used: i64,
    /// The node's allocatable amount.
    pub capacity: i64,
    /// Whether the pod asks for more than the whole node has, so preemption cannot help.
    pub unresolvable: bool,
}

impl InsufficientResource<'_> {
    /// The reason shown to users: "Too many pods" or "Insufficient <resource>".
    pub fn reason(&self) -> String {
        if self.resource_name == PODS {
            "Too many pods".to_string()
        } else {
            format!("Insufficient {}", self.resource_name)
        }
    }
}

/// Calls `visit` for each resource `node` lacks for `request`, in upstream's order: pods, cpu, memory,
/// ephemeral-storage, then scalar resources by name.
fn for_each_insufficient<'a>(
    request: &'a FitRequest,
    node: &NodeInfo,
    mut visit: impl FnMut(InsufficientResource<'a>),
) {
    let allocatable = &node.allocatable;
    let requested = &node.requested;
    let pods = node.pods.len() as i64;
    if pods + 1 > allocatable.allowed_pod_number {
        visit(InsufficientResource {
            resource_name: PODS,
            requested: 1,
            used: pods,
            capacity: allocatable.allowed_pod_number,
            unresolvable: false,
        });
    }
    let mut check = |resource_name: &'a str, wanted: i64, used: i64, capacity: i64| {
        if wanted > 0 && wanted > capacity - used {
            visit(InsufficientResource {
                resource_name,
                requested: wanted,
                used,
                capacity,
                unresolvable: wanted > capacity,
            });
        }
    };
    check(
        CPU,
        request.milli_cpu,
        requested.milli_cpu,
        allocatable.milli_cpu,
    );
    check(MEMORY, request.memory, requested.memory, allocatable.memory);
    check(
        EPHEMERAL_STORAGE,
        request.ephemeral_storage,
        requested.ephemeral_storage,
        allocatable.ephemeral_storage,
    );
    for (name, quantity) in &request.scalar_resources {
        let amount = |r: &Resource| r.scalar_resources.get(name).copied().unwrap_or(0);
        check(name, *quantity, amount(requested), amount(allocatable));
    }
}

/// The resources `node` lacks for `request` (upstream `fitsRequest`); empty when the pod fits.
pub fn fits_request<'a>(request: &'a FitRequest, node: &NodeInfo) -> Vec<InsufficientResource<'a>> {
    let mut insufficient = Vec::new();
    for_each_insufficient(request, node, |r| insufficient.push(r));
    insufficient
}

/// Whether `pod` fits `node`'s free resources, nothing ignored (upstream `Fits` being empty).
pub fn fits(pod: &PodInfo, node: &NodeInfo) -> bool {
    fits_request(&FitRequest::from_pod(pod), node).is_empty()
}

impl Fit {
    /// The plugin with `args`, already validated with the configuration.
    pub fn new(args: &NodeResourcesFitArgs, _handle: &Handle) -> Result<Self, String> {
        let NodeResourcesFitArgs {
            ignored_resources,
            ignored_resource_groups,
            scoring_strategy,
        } = args.clone();
        let strategy = match scoring_strategy.type_ {
            ScoringStrategyType::LeastAllocated => Strategy::LeastAllocated,
            ScoringStrategyType::MostAllocated => Strategy::MostAllocated,
            ScoringStrategyType::RequestedToCapacityRatio => {
                let shape = scoring_strategy
                    .requested_to_capacity_ratio
                    .as_ref()
                    .map(|param| param.shape.as_slice())
                    .unwrap_or_default();
                // Shape scores are 0-10; the scheduler's are 0-100.
                Strategy::RequestedToCapacityRatio(FunctionShape(
                    shape
                        .iter()
                        .map(|point| FunctionShapePoint {
                            utilization: i64::from(point.utilization),
                            score: i64::from(point.score)
                                * (MAX_NODE_SCORE / MAX_CUSTOM_PRIORITY_SCORE),
                        })
                        .collect(),
                ))
            }
        };
        Ok(Self {
            ignored_resources,
            ignored_resource_groups,
            allocation: ResourceAllocation::new(&scoring_strategy.resources, false),
            strategy,
        })
    }
}

impl Plugin for Fit {
    fn name(&self) -> &'static str {
        NAME
    }

    /// As upstream with queueing hints (the 1.36 default): a deleted or shrunk pod may free room, and a
    /// new or grown node may have it.
    fn events_to_register(&self) -> Vec<ClusterEvent> {
        let pod_actions = ActionType::DELETE.or(ActionType::UPDATE_POD_SCALE_DOWN);
        vec![
            ClusterEvent::new(EventResource::AssignedPod, pod_actions),
            ClusterEvent::new(EventResource::UnscheduledPod, pod_actions),
            ClusterEvent::new(
                EventResource::Node,
                ActionType::ADD.or(ActionType::UPDATE_NODE_ALLOCATABLE),
            ),
        ]
    }

    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }

    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }

    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }

    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for Fit {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _snapshot: &Snapshot,
    ) -> (Option<PreFilterResult>, Status) {
        let request = FitRequest::new(
            &pod.requests,
            &self.ignored_resources,
            &self.ignored_resource_groups,
        );
        // Shared, so preemption's copies of the cycle state do not copy it.
        state.write(PRE_FILTER_STATE_KEY, Arc::new(request));
        (None, Status::success())
    }
}

impl FilterPlugin for Fit {
    fn filter(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(request) = state.read::<Arc<FitRequest>>(PRE_FILTER_STATE_KEY) else {
            return Status::error(format!(
                "error reading {PRE_FILTER_STATE_KEY:?} from cycleState: not found"
            ));
        };
        let mut code = Code::Unschedulable;
        let mut reasons = Vec::new();
        for_each_insufficient(request, node, |insufficient| {
            if insufficient.unresolvable {
                code = Code::UnschedulableAndUnresolvable;
            }
            reasons.push(insufficient.reason());
        });
        if reasons.is_empty() {
            Status::success()
        } else {
            Status::new(code, reasons)
        }
    }
}

impl PreScorePlugin for Fit {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[Arc<NodeInfo>],
        _snapshot: &Snapshot,
    ) -> Status {
        let pod_requests = self.allocation.pod_requests(pod);
        state.write(PRE_SCORE_STATE_KEY, PreScoreState { pod_requests });
        Status::success()
    }
}

impl ScorePlugin for Fit {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        let pod_requests = self
            .allocation
            .scored_requests(state, PRE_SCORE_STATE_KEY, pod)?;
        let amounts = self.allocation.amounts(&pod_requests, node);
        Ok(match &self.strategy {
            Strategy::LeastAllocated => least_allocated::score(amounts),
            Strategy::MostAllocated => most_allocated::score(amounts),
            Strategy::RequestedToCapacityRatio(shape) => {
                requested_to_capacity_ratio::score(shape, amounts)
            }
        })
    }
}
