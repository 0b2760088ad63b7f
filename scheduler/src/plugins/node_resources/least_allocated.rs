//! The LeastAllocated strategy: favours nodes with more of the scored resources left over (upstream
//! `least_allocated.go`).

use super::resource_allocation::Amounts;
use crate::framework::MAX_NODE_SCORE;

/// The weighted average of each resource's free share after placing the pod, on a 0-MAX_NODE_SCORE scale:
/// `Σ((allocatable - requested) * MAX_NODE_SCORE / allocatable * weight) / Σ weight`.
pub(super) fn score(amounts: impl Iterator<Item = Amounts>) -> i64 {
    let (mut node_score, mut weight_sum) = (0, 0);
    for a in amounts {
        node_score += least_requested_score(a.requested, a.allocatable) * a.weight;
        weight_sum += a.weight;
    }
    if weight_sum == 0 {
        0
    } else {
        node_score / weight_sum
    }
}

/// The unused share of `capacity`, 0 when the requests exceed it.
fn least_requested_score(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}
