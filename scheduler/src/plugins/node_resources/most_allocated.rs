//! The MostAllocated strategy: favours nodes with less of the scored resources left over, for bin packing
//! (upstream `most_allocated.go`).

use super::resource_allocation::Amounts;
use crate::framework::MAX_NODE_SCORE;

/// The weighted average of each resource's used share after placing the pod, on a 0-MAX_NODE_SCORE scale:
/// `Σ(requested * MAX_NODE_SCORE / allocatable * weight) / Σ weight`.
pub(super) fn score(amounts: impl Iterator<Item = Amounts>) -> i64 {
    let (mut node_score, mut weight_sum) = (0, 0);
    for a in amounts {
        node_score += most_requested_score(a.requested, a.allocatable) * a.weight;
        weight_sum += a.weight;
    }
    if weight_sum == 0 {
        0
    } else {
        node_score / weight_sum
    }
}

/// The used share of `capacity`; requests above it count as full, since pods without requests are
/// counted at default amounts that can exceed a small node.
fn most_requested_score(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 {
        return 0;
    }
    requested.min(capacity) * MAX_NODE_SCORE / capacity
}
