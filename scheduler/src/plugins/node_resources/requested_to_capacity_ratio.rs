//! The RequestedToCapacityRatio strategy: scores each resource's utilisation with a user-defined broken
//! linear function (upstream `requested_to_capacity_ratio.go` and `helper.BuildBrokenLinearFunction`).

use super::resource_allocation::Amounts;

/// Utilisation is measured in percent.
const MAX_UTILIZATION: i64 = 100;

/// One point of a broken linear function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FunctionShapePoint {
    /// The function's argument.
    pub utilization: i64,
    /// Its value there.
    pub score: i64,
}

/// A function made of straight segments between points sorted by utilisation (upstream `FunctionShape`):
/// the first score below the first point, the last score above the last, linear in between.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FunctionShape(pub Vec<FunctionShapePoint>);

impl FunctionShape {
    /// The function's value at `p`, in integer arithmetic as upstream.
    pub(crate) fn value(&self, p: i64) -> i64 {
        let points = &self.0;
        for (i, point) in points.iter().enumerate() {
            if p <= point.utilization {
                let Some(previous) = i.checked_sub(1).map(|j| points[j]) else {
                    return point.score;
                };
                return previous.score
                    + (point.score - previous.score) * (p - previous.utilization)
                        / (point.utilization - previous.utilization);
            }
        }
        points.last().map_or(0, |point| point.score)
    }
}

/// The weighted average of each resource's shaped utilisation, rounded; resources scoring 0 do not count.
pub(super) fn score(shape: &FunctionShape, amounts: impl Iterator<Item = Amounts>) -> i64 {
    let (mut node_score, mut weight_sum) = (0i64, 0i64);
    for a in amounts {
        let resource_score = resource_score(shape, a.requested, a.allocatable);
        if resource_score > 0 {
            node_score += resource_score * a.weight;
            weight_sum += a.weight;
        }
    }
    if weight_sum == 0 {
        return 0;
    }
    (node_score as f64 / weight_sum as f64).round() as i64
}

fn resource_score(shape: &FunctionShape, requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return shape.value(MAX_UTILIZATION);
    }
    shape.value(requested * MAX_UTILIZATION / capacity)
}
