//! Typed arguments of the in-tree plugins that take any (k8s.io/kube-scheduler/config/v1 types_pluginargs.go), with
//! upstream's v1 defaults (pkg/scheduler/apis/config/v1/defaults.go) folded into their `Default` and serde
//! defaults. An args object may carry its own `apiVersion` and `kind`; both are checked, then dropped, and the
//! rest is decoded strictly. Validation of these values lives in `args_validation.rs`.

use super::types::GoDuration;
use k8s_openapi::api::core::v1::{NodeAffinity, TopologySpreadConstraint};
use serde::{Deserialize, Deserializer, Serialize};

/// A resource and its weight in a scoring strategy.
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ResourceSpec {
    /// Resource name, e.g. `cpu`.
    pub name: String,
    /// Weight; 0 in the file means 1.
    pub weight: i64,
}

impl ResourceSpec {
    /// A resource with a weight.
    pub fn new(name: &str, weight: i64) -> Self {
        Self {
            name: name.to_owned(),
            weight,
        }
    }
}

/// Upstream's defaultResourceSpec: cpu and memory, weight 1 each.
pub(crate) fn default_resources() -> Vec<ResourceSpec> {
    vec![ResourceSpec::new("cpu", 1), ResourceSpec::new("memory", 1)]
}

/// Sets unset (0) resource weights to 1, as upstream's defaulting does.
pub(crate) fn default_weights(resources: &mut [ResourceSpec]) {
    for resource in resources.iter_mut().filter(|r| r.weight == 0) {
        resource.weight = 1;
    }
}

/// One point of a piecewise-linear scoring function.
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct UtilizationShapePoint {
    /// Utilization, 0 to 100.
    pub utilization: i32,
    /// Score at that utilization, 0 to 10.
    pub score: i32,
}

/// How NodeResourcesFit scores nodes.
#[derive(Deserialize, Serialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ScoringStrategyType {
    /// Prefer nodes with the least requested resources.
    #[default]
    LeastAllocated,
    /// Prefer nodes with the most requested resources.
    MostAllocated,
    /// Score by a custom shape of requested-to-capacity ratio.
    RequestedToCapacityRatio,
}

/// The shape of the RequestedToCapacityRatio strategy.
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RequestedToCapacityRatioParam {
    /// Points of the scoring function, by increasing utilization.
    pub shape: Vec<UtilizationShapePoint>,
}

/// NodeResourcesFit's scoring strategy. `type` has no default once the strategy is given, as upstream.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScoringStrategy {
    /// Strategy.
    #[serde(rename = "type")]
    pub type_: ScoringStrategyType,
    /// Resources scored and their weights; default cpu:1, memory:1.
    #[serde(default)]
    pub resources: Vec<ResourceSpec>,
    /// Only for RequestedToCapacityRatio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_to_capacity_ratio: Option<RequestedToCapacityRatioParam>,
}

impl Default for ScoringStrategy {
    fn default() -> Self {
        Self {
            type_: ScoringStrategyType::LeastAllocated,
            resources: default_resources(),
            requested_to_capacity_ratio: None,
        }
    }
}

/// NodeResourcesFit arguments.
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct NodeResourcesFitArgs {
    /// Resources the filter ignores.
    pub ignored_resources: Vec<String>,
    /// Resource groups (name prefixes before `/`) the filter ignores.
    pub ignored_resource_groups: Vec<String>,
    /// Scoring strategy; default LeastAllocated on cpu and memory.
    pub scoring_strategy: ScoringStrategy,
}

/// NodeResourcesBalancedAllocation arguments.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct NodeResourcesBalancedAllocationArgs {
    /// Resources balanced; default cpu and memory.
    pub resources: Vec<ResourceSpec>,
}

impl Default for NodeResourcesBalancedAllocationArgs {
    fn default() -> Self {
        Self {
            resources: default_resources(),
        }
    }
}

/// Where PodTopologySpread's default constraints come from.
#[derive(Serialize, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DefaultingType {
    /// Kubernetes' built-in constraints (hostname and zone, ScheduleAnyway).
    #[default]
    System,
    /// The constraints listed in `defaultConstraints`.
    List,
}

impl<'de> Deserialize<'de> for DefaultingType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match String::deserialize(deserializer)?.as_str() {
            // Upstream defaults an empty string to System.
            "" | "System" => Ok(Self::System),
            "List" => Ok(Self::List),
            other => Err(serde::de::Error::unknown_variant(
                other,
                &["System", "List"],
            )),
        }
    }
}

/// PodTopologySpread arguments.
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PodTopologySpreadArgs {
    /// Constraints for pods that define none; only with `defaultingType: List`.
    pub default_constraints: Vec<TopologySpreadConstraint>,
    /// System or List; default System.
    pub defaulting_type: DefaultingType,
}

impl PodTopologySpreadArgs {
    /// The default constraints in effect: upstream's systemDefaultConstraints for System, the list for List.
    pub fn effective_default_constraints(&self) -> Vec<TopologySpreadConstraint> {
        match self.defaulting_type {
            DefaultingType::List => self.default_constraints.clone(),
            DefaultingType::System => [
                ("kubernetes.io/hostname", 3),
                ("topology.kubernetes.io/zone", 5),
            ]
            .into_iter()
            .map(|(key, max_skew)| TopologySpreadConstraint {
                max_skew,
                topology_key: key.to_owned(),
                when_unsatisfiable: "ScheduleAnyway".to_owned(),
                ..TopologySpreadConstraint::default()
            })
            .collect(),
        }
    }
}

/// InterPodAffinity arguments.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct InterPodAffinityArgs {
    /// Score weight of existing pods' required affinity to the incoming pod; default 1.
    pub hard_pod_affinity_weight: i32,
    /// Ignore existing pods' preferred terms unless the incoming pod has affinity terms.
    pub ignore_preferred_terms_of_existing_pods: bool,
}

impl Default for InterPodAffinityArgs {
    fn default() -> Self {
        Self {
            hard_pod_affinity_weight: 1,
            ignore_preferred_terms_of_existing_pods: false,
        }
    }
}

/// NodeAffinity arguments.
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct NodeAffinityArgs {
    /// Affinity every pod must also satisfy.
    pub added_affinity: Option<NodeAffinity>,
}

/// DefaultPreemption arguments.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DefaultPreemptionArgs {
    /// Minimum candidates as a percentage of nodes; default 10.
    pub min_candidate_nodes_percentage: i32,
    /// Minimum candidates, absolute; default 100.
    pub min_candidate_nodes_absolute: i32,
}

impl Default for DefaultPreemptionArgs {
    fn default() -> Self {
        Self {
            min_candidate_nodes_percentage: 10,
            min_candidate_nodes_absolute: 100,
        }
    }
}

/// VolumeBinding arguments.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct VolumeBindingArgs {
    /// Volume binding timeout, seconds; default 600.
    pub bind_timeout_seconds: i64,
    /// Storage-capacity scoring shape; refused while upstream's StorageCapacityScoring gate (alpha, off) is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shape: Option<Vec<UtilizationShapePoint>>,
}

impl Default for VolumeBindingArgs {
    fn default() -> Self {
        Self {
            bind_timeout_seconds: 600,
            shape: None,
        }
    }
}

/// DynamicResources arguments; the defaults are those of 1.36's default feature gates.
#[derive(Deserialize, Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct DynamicResourcesArgs {
    /// Filter time limit per node; default 10s, 0 disables it (DRASchedulerFilterTimeout, beta, on).
    pub filter_timeout: Option<GoDuration>,
    /// PreBind wait for device binding conditions; default 10m (DRADeviceBindingConditions, beta, on).
    pub binding_timeout: Option<GoDuration>,
}

impl Default for DynamicResourcesArgs {
    fn default() -> Self {
        Self {
            filter_timeout: Some(GoDuration::from_secs(10)),
            binding_timeout: Some(GoDuration::from_secs(600)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_default_constraints_are_upstreams() {
        let constraints = PodTopologySpreadArgs::default().effective_default_constraints();
        let got: Vec<(i32, &str, &str)> = constraints
            .iter()
            .map(|c| {
                (
                    c.max_skew,
                    c.topology_key.as_str(),
                    c.when_unsatisfiable.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (3, "kubernetes.io/hostname", "ScheduleAnyway"),
                (5, "topology.kubernetes.io/zone", "ScheduleAnyway")
            ]
        );
    }
}
