//! The args of one pluginConfig entry, decoded the way upstream's scheme decodes `<Plugin>Args`: the object may
//! carry its own `apiVersion` and `kind`, which must match; the rest is decoded strictly and defaulted. Plugins
//! without an args type keep their args raw, as upstream keeps runtime.Unknown.

use serde_json::Value;

use super::args::{
    DefaultPreemptionArgs, DynamicResourcesArgs, InterPodAffinityArgs, NodeAffinityArgs,
    NodeResourcesBalancedAllocationArgs, NodeResourcesFitArgs, PodTopologySpreadArgs,
    VolumeBindingArgs, default_resources, default_weights,
};
use super::types::API_VERSION;
use component_base::config::decode::{self, DecodeError};

/// The decoded args of one pluginConfig entry.
#[derive(Debug, Clone, PartialEq)]
pub enum Args {
    /// NodeResourcesFitArgs.
    NodeResourcesFit(NodeResourcesFitArgs),
    /// NodeResourcesBalancedAllocationArgs.
    NodeResourcesBalancedAllocation(NodeResourcesBalancedAllocationArgs),
    /// PodTopologySpreadArgs.
    PodTopologySpread(PodTopologySpreadArgs),
    /// InterPodAffinityArgs.
    InterPodAffinity(InterPodAffinityArgs),
    /// NodeAffinityArgs.
    NodeAffinity(NodeAffinityArgs),
    /// DefaultPreemptionArgs.
    DefaultPreemption(DefaultPreemptionArgs),
    /// VolumeBindingArgs.
    VolumeBinding(VolumeBindingArgs),
    /// DynamicResourcesArgs.
    DynamicResources(DynamicResourcesArgs),
    /// A plugin without an args type: kept raw, as upstream keeps runtime.Unknown.
    Other(Value),
}

/// The plugins that have an args type, i.e. those upstream's scheme knows `<Name>Args` for.
pub const PLUGINS_WITH_ARGS: [&str; 8] = [
    "NodeResourcesFit",
    "NodeResourcesBalancedAllocation",
    "PodTopologySpread",
    "InterPodAffinity",
    "NodeAffinity",
    "DefaultPreemption",
    "VolumeBinding",
    "DynamicResources",
];

impl Args {
    /// Upstream's defaulted args for `plugin`, or `None` when the plugin has no args type.
    pub fn defaults_for(plugin: &str) -> Option<Self> {
        Some(match plugin {
            "NodeResourcesFit" => Self::NodeResourcesFit(NodeResourcesFitArgs::default()),
            "NodeResourcesBalancedAllocation" => {
                Self::NodeResourcesBalancedAllocation(NodeResourcesBalancedAllocationArgs::default())
            }
            "PodTopologySpread" => Self::PodTopologySpread(PodTopologySpreadArgs::default()),
            "InterPodAffinity" => Self::InterPodAffinity(InterPodAffinityArgs::default()),
            "NodeAffinity" => Self::NodeAffinity(NodeAffinityArgs::default()),
            "DefaultPreemption" => Self::DefaultPreemption(DefaultPreemptionArgs::default()),
            "VolumeBinding" => Self::VolumeBinding(VolumeBindingArgs::default()),
            "DynamicResources" => Self::DynamicResources(DynamicResourcesArgs::default()),
            _ => return None,
        })
    }

    /// Decodes and defaults the raw args of `plugin`, found at `path` (`profiles[0].pluginConfig[1].args`).
    pub fn decode(plugin: &str, raw: &Value, path: &str) -> Result<Self, DecodeError> {
        if !PLUGINS_WITH_ARGS.contains(&plugin) {
            return Ok(Self::Other(raw.clone()));
        }
        let mut object = match raw {
            Value::Null => serde_json::Map::new(),
            Value::Object(object) => object.clone(),
            other => {
                let kind = if other.is_array() {
                    "sequence"
                } else {
                    "scalar"
                };
                return Err(DecodeError::at(
                    path,
                    format!("invalid type: {kind}, expected {plugin}Args"),
                ));
            }
        };
        if let Some(version) = object.remove("apiVersion")
            && version.as_str() != Some(API_VERSION)
        {
            return Err(DecodeError::at(
                &decode::child(path, "apiVersion"),
                format!("Unsupported value: {version}: supported values: {API_VERSION:?}"),
            ));
        }
        let want = format!("{plugin}Args");
        if let Some(kind) = object.remove("kind")
            && kind.as_str() != Some(want.as_str())
        {
            let got = kind
                .as_str()
                .map_or_else(|| kind.to_string(), str::to_owned);
            return Err(DecodeError::at(
                path,
                format!("args for plugin {plugin} were not of type {want}, got {got}"),
            ));
        }
        let value = Value::Object(object);
        let mut args = match plugin {
            "NodeResourcesFit" => Self::NodeResourcesFit(decode::from_value(&value, path)?),
            "NodeResourcesBalancedAllocation" => {
                Self::NodeResourcesBalancedAllocation(decode::from_value(&value, path)?)
            }
            "PodTopologySpread" => Self::PodTopologySpread(decode::from_value(&value, path)?),
            "InterPodAffinity" => Self::InterPodAffinity(decode::from_value(&value, path)?),
            "NodeAffinity" => Self::NodeAffinity(decode::from_value(&value, path)?),
            "DefaultPreemption" => Self::DefaultPreemption(decode::from_value(&value, path)?),
            "VolumeBinding" => Self::VolumeBinding(decode::from_value(&value, path)?),
            _ => Self::DynamicResources(decode::from_value(&value, path)?),
        };
        args.apply_defaults();
        Ok(args)
    }

    /// The defaulting that serde's field defaults cannot express (SetDefaults_* in upstream's defaults.go).
    fn apply_defaults(&mut self) {
        match self {
            Self::NodeResourcesFit(args) => {
                let resources = &mut args.scoring_strategy.resources;
                if resources.is_empty() {
                    *resources = default_resources();
                }
                default_weights(resources);
            }
            Self::NodeResourcesBalancedAllocation(args) => {
                if args.resources.is_empty() {
                    args.resources = default_resources();
                }
                default_weights(&mut args.resources);
            }
            _ => {}
        }
    }
}

/// The defaulted args of every in-tree plugin that takes args: what the framework hands each plugin.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PluginArgs {
    /// NodeResourcesFit.
    pub node_resources_fit: NodeResourcesFitArgs,
    /// NodeResourcesBalancedAllocation.
    pub node_resources_balanced_allocation: NodeResourcesBalancedAllocationArgs,
    /// PodTopologySpread.
    pub pod_topology_spread: PodTopologySpreadArgs,
    /// InterPodAffinity.
    pub inter_pod_affinity: InterPodAffinityArgs,
    /// NodeAffinity.
    pub node_affinity: NodeAffinityArgs,
    /// DefaultPreemption.
    pub default_preemption: DefaultPreemptionArgs,
    /// VolumeBinding.
    pub volume_binding: VolumeBindingArgs,
    /// DynamicResources.
    pub dynamic_resources: DynamicResourcesArgs,
}

impl PluginArgs {
    /// Collects typed args; plugins without an entry keep upstream's defaults.
    pub fn from_args<'a>(entries: impl IntoIterator<Item = &'a Args>) -> Self {
        let mut all = Self::default();
        for args in entries {
            match args.clone() {
                Args::NodeResourcesFit(a) => all.node_resources_fit = a,
                Args::NodeResourcesBalancedAllocation(a) => {
                    all.node_resources_balanced_allocation = a
                }
                Args::PodTopologySpread(a) => all.pod_topology_spread = a,
                Args::InterPodAffinity(a) => all.inter_pod_affinity = a,
                Args::NodeAffinity(a) => all.node_affinity = a,
                Args::DefaultPreemption(a) => all.default_preemption = a,
                Args::VolumeBinding(a) => all.volume_binding = a,
                Args::DynamicResources(a) => all.dynamic_resources = a,
                Args::Other(_) => {}
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::args::{DefaultingType, ResourceSpec, ScoringStrategyType};
    use serde_json::json;

    fn decode(plugin: &str, raw: Value) -> Result<Args, String> {
        Args::decode(plugin, &raw, "args").map_err(|e| e.to_string())
    }

    #[test]
    fn empty_args_get_upstream_defaults() {
        for plugin in PLUGINS_WITH_ARGS {
            let want = Args::defaults_for(plugin).expect(plugin);
            assert_eq!(decode(plugin, Value::Null), Ok(want.clone()), "{plugin}");
            assert_eq!(decode(plugin, json!({})), Ok(want), "{plugin}");
        }
        let all = PluginArgs::default();
        assert_eq!(all.default_preemption.min_candidate_nodes_percentage, 10);
        assert_eq!(all.default_preemption.min_candidate_nodes_absolute, 100);
        assert_eq!(all.inter_pod_affinity.hard_pod_affinity_weight, 1);
        assert_eq!(all.volume_binding.bind_timeout_seconds, 600);
        assert_eq!(
            all.node_resources_fit.scoring_strategy.type_,
            ScoringStrategyType::LeastAllocated
        );
        assert_eq!(
            all.node_resources_fit.scoring_strategy.resources,
            default_resources()
        );
        assert_eq!(
            all.pod_topology_spread.defaulting_type,
            DefaultingType::System
        );
    }

    #[test]
    fn weights_default_to_one_and_resources_to_cpu_and_memory() {
        let got = decode(
            "NodeResourcesFit",
            json!({"kind": "NodeResourcesFitArgs", "scoringStrategy": {"type": "MostAllocated"}}),
        );
        let Ok(Args::NodeResourcesFit(args)) = got else {
            panic!("{got:?}")
        };
        assert_eq!(
            args.scoring_strategy.type_,
            ScoringStrategyType::MostAllocated
        );
        assert_eq!(args.scoring_strategy.resources, default_resources());
        let got = decode(
            "NodeResourcesBalancedAllocation",
            json!({"resources": [{"name": "cpu"}, {"name": "x", "weight": 0}]}),
        );
        let Ok(Args::NodeResourcesBalancedAllocation(args)) = got else {
            panic!("{got:?}")
        };
        assert_eq!(
            args.resources,
            vec![ResourceSpec::new("cpu", 1), ResourceSpec::new("x", 1)]
        );
    }

    #[test]
    fn bad_args_are_refused_with_the_field_named() {
        let cases = [
            (
                "DefaultPreemption",
                json!({"kind": "InterPodAffinityArgs"}),
                "args: args for plugin DefaultPreemption were not of type DefaultPreemptionArgs, got InterPodAffinityArgs",
            ),
            (
                "DefaultPreemption",
                json!({"apiVersion": "kubescheduler.config.k8s.io/v1beta3"}),
                "args.apiVersion: Unsupported value",
            ),
            (
                "NodeResourcesFit",
                json!({"scoringStrategy": {"type": "Fancy"}}),
                r#"args.scoringStrategy.type: Unsupported value: "Fancy": supported values: "LeastAllocated", "MostAllocated", "RequestedToCapacityRatio""#,
            ),
            (
                "NodeResourcesFit",
                json!({"scoringStrategy": {"resources": [{"Name": "cpu"}]}}),
                r#"args.scoringStrategy.resources[0]: unknown field "Name""#,
            ),
            (
                "PodTopologySpread",
                json!({"defaultingType": "Some"}),
                r#"args.defaultingType: Unsupported value: "Some": supported values: "System", "List""#,
            ),
            (
                "PodTopologySpread",
                json!({"defaultConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "typo": 1}]}),
                r#"args.defaultConstraints[0]: unknown field "typo""#,
            ),
            (
                "InterPodAffinity",
                json!({"hardPodAffinityWeight": "1"}),
                "args.hardPodAffinityWeight: invalid type: string",
            ),
            (
                "VolumeBinding",
                json!([1]),
                "args: invalid type: sequence, expected VolumeBindingArgs",
            ),
        ];
        for (plugin, raw, want) in cases {
            let got = decode(plugin, raw).expect_err(want);
            assert!(got.starts_with(want), "got {got}\nwant {want}");
        }
    }

    #[test]
    fn args_of_plugins_without_an_args_type_are_kept_raw() {
        assert_eq!(
            decode("PrioritySort", json!({"x": 1})),
            Ok(Args::Other(json!({"x": 1})))
        );
    }
}
