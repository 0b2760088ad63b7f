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

pub use balanced_allocation::BalancedAllocation;
pub use fit::{Fit, FitRequest, InsufficientResource, fits, fits_request};

pub use crate::config::ResourceSpec;

/// Whether `name` is an extended resource (upstream `v1helper.IsExtendedResourceName`): it has a domain
/// prefix that is not `kubernetes.io`, and is not a quota `requests.` name.
pub fn is_extended_resource_name(name: &str) -> bool {
    name.contains('/') && !name.contains("kubernetes.io/") && !name.starts_with("requests.")
}
