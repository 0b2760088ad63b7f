//! What the scoring strategies of both plugins share (upstream `resource_allocation.go`): which amount of
//! each configured resource counts for the pod and the node, and which resources are left out of a node's
//! score.

use std::borrow::Cow;

use super::ResourceSpec;
use crate::framework::resource::{CPU, EPHEMERAL_STORAGE, MEMORY, is_scalar_resource};
use crate::framework::{CycleState, NodeInfo, PodInfo, Resource, Status};

/// What both plugins' PreScore leaves for Score: the pod's request of each scored resource.
#[derive(Clone, Debug)]
pub(crate) struct PreScoreState {
    pub(crate) pod_requests: Vec<i64>,
}

/// How a configured resource maps onto [`Resource`]'s fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Cpu,
    Memory,
    EphemeralStorage,
    Scalar,
    /// Anything else (`pods`, `storage`, ...): never part of a node's score, as upstream.
    Unscored,
}

#[derive(Clone, Debug)]
struct ScoredResource {
    name: String,
    weight: i64,
    kind: Kind,
}

/// One resource's amounts on one node, as the scorers see them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Amounts {
    /// The resource's configured weight.
    pub weight: i64,
    /// Requested by the node's pods and the incoming pod.
    pub requested: i64,
    /// Requested by the node's pods alone.
    pub allocated: i64,
    /// The node's allocatable amount (never 0: such resources are left out).
    pub allocatable: i64,
}

/// The configured resources, resolved once, and which requests count (upstream `resourceAllocationScorer`).
#[derive(Clone, Debug)]
pub(crate) struct ResourceAllocation {
    resources: Vec<ScoredResource>,
    /// Exact requests (BalancedAllocation) rather than requests with defaults for CPU and memory (Fit).
    use_requested: bool,
}

impl ResourceAllocation {
    /// The pod's requests as PreScore left them under `key`, or computed now if PreScore did not run.
    pub(crate) fn scored_requests<'a>(
        &self,
        state: &'a CycleState,
        key: &'static str,
        pod: &PodInfo,
    ) -> Result<Cow<'a, [i64]>, Status> {
        if self.is_empty() {
            return Err(Status::error("resources not found"));
        }
        Ok(match state.read::<PreScoreState>(key) {
            Some(pre_score) => Cow::Borrowed(&pre_score.pod_requests),
            None => Cow::Owned(self.pod_requests(pod)),
        })
    }

    /// The scorer for `specs`.
    pub(crate) fn new(specs: &[ResourceSpec], use_requested: bool) -> Self {
        let resources = specs
            .iter()
            .map(|spec| ScoredResource {
                name: spec.name.clone(),
                weight: spec.weight,
                kind: match spec.name.as_str() {
                    CPU => Kind::Cpu,
                    MEMORY => Kind::Memory,
                    EPHEMERAL_STORAGE => Kind::EphemeralStorage,
                    name if is_scalar_resource(name) => Kind::Scalar,
                    _ => Kind::Unscored,
                },
            })
            .collect();
        Self {
            resources,
            use_requested,
        }
    }

    /// Whether no resource is configured (upstream then fails Score with "resources not found").
    pub(crate) fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    /// The pod's request of each configured resource, in configuration order (upstream
    /// `calculatePodResourceRequestList`): CPU in millicores, the rest in base units.
    pub(crate) fn pod_requests(&self, pod: &PodInfo) -> Vec<i64> {
        let requests = if self.use_requested {
            &pod.requests
        } else {
            &pod.non_zero_requests
        };
        self.resources
            .iter()
            .map(|r| amount(requests, r.kind, &r.name))
            .collect()
    }

    /// Each configured resource's amounts on `node` with the pod's `pod_requests` added, leaving out
    /// resources the node has none of and extended resources the pod does not ask for (upstream
    /// `score` and `calculateResourceAllocatableRequest`). Allocation-free; cloneable for a second pass.
    pub(crate) fn amounts<'a>(
        &'a self,
        pod_requests: &'a [i64],
        node: &'a NodeInfo,
    ) -> impl Iterator<Item = Amounts> + Clone + 'a {
        // CPU and memory count containers without requests at their defaults, except for
        // BalancedAllocation; ephemeral storage and scalar resources always count exact requests.
        let cpu_memory_requested = if self.use_requested {
            &node.requested
        } else {
            &node.non_zero_requested
        };
        self.resources
            .iter()
            .zip(pod_requests)
            .filter_map(move |(resource, &pod_request)| {
                let (allocatable, allocated) = match resource.kind {
                    Kind::Cpu => (node.allocatable.milli_cpu, cpu_memory_requested.milli_cpu),
                    Kind::Memory => (node.allocatable.memory, cpu_memory_requested.memory),
                    Kind::EphemeralStorage => (
                        node.allocatable.ephemeral_storage,
                        node.requested.ephemeral_storage,
                    ),
                    Kind::Scalar if pod_request == 0 => return None,
                    Kind::Scalar => (
                        *node
                            .allocatable
                            .scalar_resources
                            .get(resource.name.as_str())?,
                        amount(&node.requested, Kind::Scalar, &resource.name),
                    ),
                    Kind::Unscored => return None,
                };
                (allocatable != 0).then_some(Amounts {
                    weight: resource.weight,
                    requested: allocated + pod_request,
                    allocated,
                    allocatable,
                })
            })
    }
}

fn amount(resource: &Resource, kind: Kind, name: &str) -> i64 {
    match kind {
        Kind::Cpu => resource.milli_cpu,
        Kind::Memory => resource.memory,
        Kind::EphemeralStorage => resource.ephemeral_storage,
        Kind::Scalar => resource.scalar_resources.get(name).copied().unwrap_or(0),
        Kind::Unscored => 0,
    }
}
