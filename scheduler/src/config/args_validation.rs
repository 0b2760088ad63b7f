//! Upstream's plugin-args validation (pkg/scheduler/apis/config/validation/validation_pluginargs.go; NodeAffinity's
//! is in `node_affinity.rs`), with the feature gates at their 1.36 defaults: StorageCapacityScoring off,
//! DRASchedulerFilterTimeout, DRADeviceBindingConditions and DRAResourceClaimDeviceStatus on.

use k8s_openapi::api::core::v1::TopologySpreadConstraint;

use super::args::{
    DefaultPreemptionArgs, DefaultingType, DynamicResourcesArgs, NodeResourcesFitArgs,
    PodTopologySpreadArgs, ResourceSpec, ScoringStrategyType, UtilizationShapePoint,
    VolumeBindingArgs,
};
use super::field::FieldError;
use super::names::validate_label_name;
use super::node_affinity::validate_node_affinity;
use super::plugin_args::Args;
use super::types::GoDuration;
use component_base::config::decode::{child, index};

/// Validates one plugin's args found at `path`; an empty list means valid.
pub fn validate_args(args: &Args, path: &str) -> Vec<FieldError> {
    match args {
        Args::NodeResourcesFit(a) => node_resources_fit(a, path),
        Args::NodeResourcesBalancedAllocation(a) => {
            let mut errs = Vec::new();
            let mut seen = std::collections::BTreeSet::new();
            for (i, resource) in a.resources.iter().enumerate() {
                let p = index(&child(path, "resources"), i);
                if !seen.insert(resource.name.as_str()) {
                    errs.push(FieldError::duplicate(&child(&p, "name"), &resource.name));
                }
                if resource.weight != 1 {
                    errs.push(FieldError::invalid(
                        &child(&p, "weight"),
                        resource.weight,
                        "must be 1",
                    ));
                }
            }
            errs
        }
        Args::PodTopologySpread(a) => pod_topology_spread(a, path),
        Args::InterPodAffinity(a) => {
            let w = a.hard_pod_affinity_weight;
            if (0..=100).contains(&w) {
                Vec::new()
            } else {
                vec![FieldError::invalid(
                    &child(path, "hardPodAffinityWeight"),
                    w,
                    "not in valid range [0, 100]",
                )]
            }
        }
        Args::NodeAffinity(a) => validate_node_affinity(a, path),
        Args::DefaultPreemption(a) => default_preemption(a, path),
        Args::VolumeBinding(a) => volume_binding(a, path),
        Args::DynamicResources(a) => dynamic_resources(a, path),
        Args::Other(_) => Vec::new(),
    }
}

fn default_preemption(a: &DefaultPreemptionArgs, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let percentage = child(path, "minCandidateNodesPercentage");
    let absolute = child(path, "minCandidateNodesAbsolute");
    if !(0..=100).contains(&a.min_candidate_nodes_percentage) {
        errs.push(FieldError::invalid(
            &percentage,
            a.min_candidate_nodes_percentage,
            "not in valid range [0, 100]",
        ));
    }
    if a.min_candidate_nodes_absolute < 0 {
        errs.push(FieldError::invalid(
            &absolute,
            a.min_candidate_nodes_absolute,
            "not in valid range [0, inf)",
        ));
    }
    if a.min_candidate_nodes_percentage == 0 && a.min_candidate_nodes_absolute == 0 {
        errs.push(FieldError::invalid(
            &percentage,
            0,
            "cannot be zero at the same time as minCandidateNodesAbsolute",
        ));
        errs.push(FieldError::invalid(
            &absolute,
            0,
            "cannot be zero at the same time as minCandidateNodesPercentage",
        ));
    }
    errs
}

fn pod_topology_spread(a: &PodTopologySpreadArgs, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if a.defaulting_type == DefaultingType::System && !a.default_constraints.is_empty() {
        errs.push(FieldError::invalid(
            &child(path, "defaultingType"),
            "System",
            "when .defaultConstraints are not empty",
        ));
    }
    let list = child(path, "defaultConstraints");
    for (i, c) in a.default_constraints.iter().enumerate() {
        let p = index(&list, i);
        if c.max_skew <= 0 {
            errs.push(FieldError::invalid(
                &child(&p, "maxSkew"),
                c.max_skew,
                "not in valid range (0, inf)",
            ));
        }
        if c.topology_key.is_empty() {
            errs.push(FieldError::required(
                &child(&p, "topologyKey"),
                "can not be empty",
            ));
        } else {
            errs.extend(validate_label_name(
                &c.topology_key,
                &child(&p, "topologyKey"),
            ));
        }
        let when = child(&p, "whenUnsatisfiable");
        match c.when_unsatisfiable.as_str() {
            "" => errs.push(FieldError::required(&when, "can not be empty")),
            "DoNotSchedule" | "ScheduleAnyway" => {}
            other => errs.push(FieldError::not_supported(
                &when,
                other,
                &["DoNotSchedule", "ScheduleAnyway"],
            )),
        }
        if c.label_selector.is_some() {
            errs.push(FieldError::forbidden(
                &child(&p, "labelSelector"),
                "constraint must not define a selector, as they deduced for each pod",
            ));
        }
        let same = |o: &TopologySpreadConstraint| {
            o.topology_key == c.topology_key && o.when_unsatisfiable == c.when_unsatisfiable
        };
        if a.default_constraints[..i].iter().any(same) {
            errs.push(FieldError::duplicate(
                &p,
                format!("{{{}, {}}}", c.topology_key, c.when_unsatisfiable),
            ));
        }
    }
    errs
}

/// validateFunctionShape: at least one point, utilization strictly increasing within 0..=100, score 0..=10.
fn function_shape(shape: &[UtilizationShapePoint], path: &str) -> Vec<FieldError> {
    if shape.is_empty() {
        return vec![FieldError::required(
            path,
            "at least one point must be specified",
        )];
    }
    let mut errs = Vec::new();
    if let Some(i) = (1..shape.len()).find(|&i| shape[i - 1].utilization >= shape[i].utilization) {
        errs.push(FieldError::invalid(
            &child(&index(path, i), "utilization"),
            shape[i].utilization,
            "values must be sorted in increasing order",
        ));
    }
    for (i, point) in shape.iter().enumerate() {
        if !(0..=100).contains(&point.utilization) {
            errs.push(FieldError::invalid(
                &child(&index(path, i), "utilization"),
                point.utilization,
                "not in valid range [0, 100]",
            ));
        }
        if !(0..=10).contains(&point.score) {
            errs.push(FieldError::invalid(
                &child(&index(path, i), "score"),
                point.score,
                "not in valid range [0, 10]",
            ));
        }
    }
    errs
}

fn resource_weights(resources: &[ResourceSpec], path: &str) -> Vec<FieldError> {
    let bad = |r: &&ResourceSpec| r.weight <= 0 || r.weight > 100;
    resources
        .iter()
        .enumerate()
        .filter(|(_, r)| bad(r))
        .map(|(i, r)| {
            let msg = format!("resource weight of {} not in valid range (0, 100]", r.name);
            FieldError::invalid(&child(&index(path, i), "weight"), r.weight, msg)
        })
        .collect()
}

fn node_resources_fit(a: &NodeResourcesFitArgs, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, resource) in a.ignored_resources.iter().enumerate() {
        errs.extend(validate_label_name(
            resource,
            &index(&child(path, "ignoredResources"), i),
        ));
    }
    for (i, group) in a.ignored_resource_groups.iter().enumerate() {
        let p = index(&child(path, "ignoredResourceGroups"), i);
        if group.contains('/') {
            errs.push(FieldError::invalid(
                &p,
                group,
                "resource group name can't contain '/'",
            ));
        }
        errs.extend(validate_label_name(group, &p));
    }
    let strategy = &a.scoring_strategy;
    let strategy_path = child(path, "scoringStrategy");
    errs.extend(resource_weights(
        &strategy.resources,
        &child(&strategy_path, "resources"),
    ));
    let ratio_path = child(&strategy_path, "requestedToCapacityRatio");
    match (&strategy.type_, &strategy.requested_to_capacity_ratio) {
        (ScoringStrategyType::RequestedToCapacityRatio, None) => {
            errs.push(FieldError::required(
                &ratio_path,
                "must be specified when type is RequestedToCapacityRatio",
            ));
        }
        (ScoringStrategyType::RequestedToCapacityRatio, Some(ratio)) => {
            errs.extend(function_shape(&ratio.shape, &child(&ratio_path, "shape")));
        }
        (_, Some(_)) => {
            errs.push(FieldError::forbidden(
                &ratio_path,
                "must be nil when type is not RequestedToCapacityRatio",
            ));
        }
        (_, None) => {}
    }
    errs
}

fn volume_binding(a: &VolumeBindingArgs, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if a.bind_timeout_seconds < 0 {
        errs.push(FieldError::invalid(
            &child(path, "bindTimeoutSeconds"),
            a.bind_timeout_seconds,
            "invalid BindTimeoutSeconds, should not be a negative value",
        ));
    }
    if let Some(shape) = &a.shape {
        let value = serde_json::to_value(shape).unwrap_or_default();
        errs.push(FieldError::invalid(
            &child(path, "shape"),
            value,
            "unexpected field `shape`, remove it or turn on the feature gate StorageCapacityScoring",
        ));
    }
    errs
}

fn dynamic_resources(a: &DynamicResourcesArgs, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(t) = a.filter_timeout
        && t.0 < 0
    {
        errs.push(FieldError::invalid(
            &child(path, "filterTimeout"),
            t,
            "must be zero or positive",
        ));
    }
    if let Some(t) = a.binding_timeout
        && t < GoDuration::from_secs(1)
    {
        errs.push(FieldError::invalid(
            &child(path, "bindingTimeout"),
            t,
            "must be at least 1 second",
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use component_base::config::DecodeError;
    use serde_json::json;

    fn errors(plugin: &str, raw: serde_json::Value) -> Vec<String> {
        let args =
            Args::decode(plugin, &raw, "args").unwrap_or_else(|e: DecodeError| panic!("{e}"));
        validate_args(&args, "args")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn valid_args_pass() {
        let cases = [
            (
                "NodeResourcesFit",
                json!({"scoringStrategy": {"type": "RequestedToCapacityRatio", "resources": [{"name": "cpu", "weight": 100}],
                "requestedToCapacityRatio": {"shape": [{"utilization": 0, "score": 0}, {"utilization": 100, "score": 10}]}}}),
            ),
            (
                "PodTopologySpread",
                json!({"defaultingType": "List", "defaultConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]}),
            ),
            (
                "NodeAffinity",
                json!({"addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "foo", "operator": "In", "values": ["bar"]}], "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}}),
            ),
            (
                "DefaultPreemption",
                json!({"minCandidateNodesPercentage": 0, "minCandidateNodesAbsolute": 1}),
            ),
            (
                "DynamicResources",
                json!({"filterTimeout": "0s", "bindingTimeout": "30s"}),
            ),
        ];
        for (plugin, raw) in cases {
            assert_eq!(errors(plugin, raw), Vec::<String>::new(), "{plugin}");
        }
    }

    #[test]
    fn invalid_args_are_refused_with_their_path() {
        let cases = [
            (
                "NodeResourcesFit",
                json!({"scoringStrategy": {"type": "LeastAllocated", "resources": [{"name": "cpu", "weight": 101}]}}),
                "args.scoringStrategy.resources[0].weight: Invalid value: 101: resource weight of cpu not in valid range (0, 100]",
            ),
            (
                "NodeResourcesFit",
                json!({"scoringStrategy": {"type": "RequestedToCapacityRatio"}}),
                "args.scoringStrategy.requestedToCapacityRatio: Required value: must be specified when type is RequestedToCapacityRatio",
            ),
            (
                "NodeResourcesFit",
                json!({"scoringStrategy": {"type": "MostAllocated", "requestedToCapacityRatio": {}}}),
                "args.scoringStrategy.requestedToCapacityRatio: Forbidden: must be nil when type is not RequestedToCapacityRatio",
            ),
            (
                "NodeResourcesFit",
                json!({"scoringStrategy": {"type": "RequestedToCapacityRatio", "requestedToCapacityRatio": {"shape": [{"utilization": 50, "score": 1}, {"utilization": 40, "score": 11}]}}}),
                "args.scoringStrategy.requestedToCapacityRatio.shape[1].utilization: Invalid value: 40: values must be sorted in increasing order",
            ),
            (
                "NodeResourcesFit",
                json!({"scoringStrategy": {"type": "RequestedToCapacityRatio", "requestedToCapacityRatio": {"shape": [{"utilization": 101, "score": 11}]}}}),
                "args.scoringStrategy.requestedToCapacityRatio.shape[0].score: Invalid value: 11: not in valid range [0, 10]",
            ),
            (
                "NodeResourcesFit",
                json!({"ignoredResourceGroups": ["example.com/x"]}),
                "args.ignoredResourceGroups[0]: Invalid value: \"example.com/x\": resource group name can't contain '/'",
            ),
            (
                "NodeResourcesBalancedAllocation",
                json!({"resources": [{"name": "cpu", "weight": 2}]}),
                "args.resources[0].weight: Invalid value: 2: must be 1",
            ),
            (
                "NodeResourcesBalancedAllocation",
                json!({"resources": [{"name": "cpu"}, {"name": "cpu"}]}),
                "args.resources[1].name: Duplicate value: \"cpu\"",
            ),
            (
                "PodTopologySpread",
                json!({"defaultingType": "List", "defaultConstraints": [{"maxSkew": 0, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]}),
                "args.defaultConstraints[0].maxSkew: Invalid value: 0: not in valid range (0, inf)",
            ),
            (
                "PodTopologySpread",
                json!({"defaultConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]}),
                "args.defaultingType: Invalid value: \"System\": when .defaultConstraints are not empty",
            ),
            (
                "PodTopologySpread",
                json!({"defaultingType": "List", "defaultConstraints": [{"maxSkew": 1, "whenUnsatisfiable": "Never"}]}),
                "args.defaultConstraints[0].whenUnsatisfiable: Unsupported value: \"Never\": supported values: \"DoNotSchedule\", \"ScheduleAnyway\"",
            ),
            (
                "PodTopologySpread",
                json!({"defaultingType": "List", "defaultConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {}}]}),
                "args.defaultConstraints[0].labelSelector: Forbidden: constraint must not define a selector, as they deduced for each pod",
            ),
            (
                "PodTopologySpread",
                json!({"defaultingType": "List", "defaultConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}, {"maxSkew": 2, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]}),
                "args.defaultConstraints[1]: Duplicate value: \"{zone, DoNotSchedule}\"",
            ),
            (
                "InterPodAffinity",
                json!({"hardPodAffinityWeight": 101}),
                "args.hardPodAffinityWeight: Invalid value: 101: not in valid range [0, 100]",
            ),
            (
                "DefaultPreemption",
                json!({"minCandidateNodesPercentage": 101}),
                "args.minCandidateNodesPercentage: Invalid value: 101: not in valid range [0, 100]",
            ),
            (
                "DefaultPreemption",
                json!({"minCandidateNodesPercentage": 0, "minCandidateNodesAbsolute": 0}),
                "args.minCandidateNodesPercentage: Invalid value: 0: cannot be zero at the same time as minCandidateNodesAbsolute",
            ),
            (
                "VolumeBinding",
                json!({"bindTimeoutSeconds": -1}),
                "args.bindTimeoutSeconds: Invalid value: -1: invalid BindTimeoutSeconds, should not be a negative value",
            ),
            (
                "VolumeBinding",
                json!({"shape": []}),
                "args.shape: Invalid value: []: unexpected field `shape`, remove it or turn on the feature gate StorageCapacityScoring",
            ),
            (
                "DynamicResources",
                json!({"bindingTimeout": "500ms"}),
                "args.bindingTimeout: Invalid value: \"500ms\": must be at least 1 second",
            ),
            (
                "NodeAffinity",
                json!({"addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [{"key": "foo", "operator": "Near"}]}]}}}),
                "args.addedAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator: Unsupported value: \"Near\"",
            ),
            (
                "NodeAffinity",
                json!({"addedAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": {"matchExpressions": [{"key": "foo", "operator": "Gt", "values": ["x"]}]}}]}}),
                "args.addedAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].preference.matchExpressions[0].values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer",
            ),
            (
                "NodeAffinity",
                json!({"addedAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a", "b"]}]}]}}}),
                "args.addedAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[0].values: Invalid value: [\"a\",\"b\"]: must have one element",
            ),
        ];
        for (plugin, raw, want) in cases {
            let got = errors(plugin, raw);
            assert!(
                got.iter().any(|e| e.starts_with(want)),
                "{plugin}: got {got:?}\nwant {want}"
            );
        }
    }
}
