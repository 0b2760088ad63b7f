//! The node-resources plugins (upstream `framework/plugins/noderesources`): `NodeResourcesFit` filters out
//! nodes without room for the pod's requests and scores the rest by a configurable strategy;
//! `NodeResourcesBalancedAllocation` favours nodes whose resource usage the pod leaves more balanced.

pub mod balanced_allocation;
pub mod fit;
mod least_allocated;
mod most_allocated;
mod requested_to_capacity_ratio;
mod resource_allocation;

#[cfg(test)]
mod tests;

pub use balanced_allocation::{BalancedAllocation, BalancedAllocationSettings};
pub use fit::{
    Fit, FitRequest, FitSettings, InsufficientResource, RequestedToCapacityRatioParam,
    ScoringStrategy, ScoringStrategyType, UtilizationShapePoint, fits, fits_request,
};

use crate::framework::resource::{CPU, MEMORY};

/// One resource the scoring strategies look at, and its weight (upstream `config.ResourceSpec`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceSpec {
    /// The resource name (`cpu`, `memory`, `example.com/gpu`, ...).
    pub name: String,
    /// Its weight in the weighted average.
    pub weight: i64,
}

impl ResourceSpec {
    /// A resource with `weight`.
    pub fn new(name: &str, weight: i64) -> Self {
        Self {
            name: name.to_string(),
            weight,
        }
    }
}

/// The resources scored when none are configured: CPU and memory, weight 1 each.
pub fn default_resources() -> Vec<ResourceSpec> {
    vec![ResourceSpec::new(CPU, 1), ResourceSpec::new(MEMORY, 1)]
}

/// Whether `name` is an extended resource (upstream `v1helper.IsExtendedResourceName`): it has a domain
/// prefix that is not `kubernetes.io`, and is not a quota `requests.` name.
pub fn is_extended_resource_name(name: &str) -> bool {
    name.contains('/') && !name.contains("kubernetes.io/") && !name.starts_with("requests.")
}

/// Joins field errors as apimachinery's `ErrorList.ToAggregate()` prints them.
fn aggregate(errors: Vec<String>) -> Result<(), String> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.concat()),
        _ => Err(format!("[{}]", errors.join(", "))),
    }
}
