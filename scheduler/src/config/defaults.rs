//! Upstream's v1 defaulting (pkg/scheduler/apis/config/v1/defaults.go and default_plugins.go of Kubernetes
//! 1.36): top-level defaults, one `default-scheduler` profile when none is given, the default plugins merged with
//! the profile's own as `mergePlugins` does, and default args for every enabled plugin that takes args.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::plugin_args::Args;
use super::types::{
    GoDuration, KubeSchedulerConfiguration, KubeSchedulerProfile, Plugin, PluginSet, Plugins,
};
use super::{ClientConnection, Config, LeaderElection, PluginConfigEntry, Profile};

/// The scheduler name of the default profile (`v1.DefaultSchedulerName`).
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

/// Every plugin of upstream 1.36's in-tree registry (framework/plugins/registry.go).
pub const IN_TREE_PLUGINS: [&str; 23] = [
    "DynamicResources",
    "ImageLocality",
    "TaintToleration",
    "NodeName",
    "NodePorts",
    "NodeAffinity",
    "NodeDeclaredFeatures",
    "PodTopologySpread",
    "NodeUnschedulable",
    "NodeResourcesFit",
    "NodeResourcesBalancedAllocation",
    "VolumeBinding",
    "VolumeRestrictions",
    "VolumeZone",
    "NodeVolumeLimits",
    "InterPodAffinity",
    "PrioritySort",
    "DefaultBinder",
    "DefaultPreemption",
    "SchedulingGates",
    "GangScheduling",
    "TopologyPlacementGenerator",
    "PodGroupPodsCount",
];

/// `getDefaultPlugins()` of 1.36 with the default feature gates, as MultiPoint plugins and weights.
///
/// The gates on by default add DynamicResources (weight 2, before DefaultPreemption: DynamicResourceAllocation,
/// GA) and NodeDeclaredFeatures (last: NodeDeclaredFeatures, beta), and both are here. Left out, as upstream
/// leaves them out by default: GangScheduling (GangScheduling, alpha) and TopologyPlacementGenerator and
/// PodGroupPodsCount (TopologyAwareWorkloadScheduling, alpha); they can still be enabled by name.
pub const DEFAULT_PLUGINS: [(&str, Option<i32>); 20] = [
    ("SchedulingGates", None),
    ("PrioritySort", None),
    ("NodeUnschedulable", None),
    ("NodeName", None),
    ("TaintToleration", Some(3)),
    ("NodeAffinity", Some(2)),
    ("NodePorts", None),
    ("NodeResourcesFit", Some(1)),
    ("VolumeRestrictions", None),
    ("NodeVolumeLimits", None),
    ("VolumeBinding", None),
    ("VolumeZone", None),
    ("PodTopologySpread", Some(2)),
    ("InterPodAffinity", Some(2)),
    ("DynamicResources", Some(2)),
    ("DefaultPreemption", None),
    ("NodeResourcesBalancedAllocation", Some(1)),
    ("ImageLocality", Some(1)),
    ("DefaultBinder", None),
    ("NodeDeclaredFeatures", None),
];

/// The default plugins: everything in MultiPoint, no extension point set explicitly.
pub fn default_plugins() -> Plugins {
    Plugins {
        multi_point: PluginSet {
            enabled: DEFAULT_PLUGINS
                .iter()
                .map(|(name, weight)| Plugin::new(name, *weight))
                .collect(),
            disabled: Vec::new(),
        },
        ..Plugins::default()
    }
}

/// Each extension point's file name with its plugin set, in upstream's field order.
pub fn extension_points(p: &Plugins) -> [(&'static str, &PluginSet); 15] {
    [
        ("preEnqueue", &p.pre_enqueue),
        ("queueSort", &p.queue_sort),
        ("preFilter", &p.pre_filter),
        ("filter", &p.filter),
        ("postFilter", &p.post_filter),
        ("preScore", &p.pre_score),
        ("score", &p.score),
        ("reserve", &p.reserve),
        ("permit", &p.permit),
        ("preBind", &p.pre_bind),
        ("bind", &p.bind),
        ("postBind", &p.post_bind),
        ("multiPoint", &p.multi_point),
        ("placementGenerate", &p.placement_generate),
        ("placementScore", &p.placement_score),
    ]
}

fn extension_points_mut(p: &mut Plugins) -> [&mut PluginSet; 15] {
    [
        &mut p.pre_enqueue,
        &mut p.queue_sort,
        &mut p.pre_filter,
        &mut p.filter,
        &mut p.post_filter,
        &mut p.pre_score,
        &mut p.score,
        &mut p.reserve,
        &mut p.permit,
        &mut p.pre_bind,
        &mut p.bind,
        &mut p.post_bind,
        &mut p.multi_point,
        &mut p.placement_generate,
        &mut p.placement_score,
    ]
}

/// `mergePlugins`: the profile's plugins on top of the defaults, extension point by extension point.
pub fn merge_plugins(defaults: Plugins, custom: Option<&Plugins>) -> Plugins {
    let Some(custom) = custom else {
        return defaults;
    };
    let mut merged = defaults;
    let customs = extension_points(custom).map(|(_, set)| set);
    for (set, custom_set) in extension_points_mut(&mut merged).into_iter().zip(customs) {
        *set = merge_plugin_set(set, custom_set);
    }
    merged
}

/// `mergePluginSet`: defaults minus the disabled ones (all with `*`), a default re-enabled by the user takes the
/// user's entry in the default's place, then the user's other plugins in their order. Disabled entries are kept
/// (without weights) so the framework knows not to expand multiPoint plugins there.
pub fn merge_plugin_set(defaults: &PluginSet, custom: &PluginSet) -> PluginSet {
    let disabled: Vec<Plugin> = custom
        .disabled
        .iter()
        .chain(&defaults.disabled)
        .map(|p| Plugin::new(&p.name, None))
        .collect();
    let disabled_names: BTreeSet<&str> = disabled.iter().map(|p| p.name.as_str()).collect();
    let mut replaced = BTreeSet::new();
    let mut enabled = Vec::new();
    if !disabled_names.contains("*") {
        for default in defaults
            .enabled
            .iter()
            .filter(|p| !disabled_names.contains(p.name.as_str()))
        {
            // Upstream keeps the last user entry of a name (a map); duplicates are appended below and then refused
            // by the framework, as upstream's is.
            match custom.enabled.iter().rposition(|p| p.name == default.name) {
                Some(i) => {
                    replaced.insert(i);
                    enabled.push(custom.enabled[i].clone());
                }
                None => enabled.push(default.clone()),
            }
        }
    }
    enabled.extend(
        custom
            .enabled
            .iter()
            .enumerate()
            .filter(|(i, _)| !replaced.contains(i))
            .map(|(_, p)| p.clone()),
    );
    PluginSet { enabled, disabled }
}

/// `pluginsNames`: every plugin enabled anywhere, sorted, which is the order upstream appends default args in.
pub fn enabled_plugin_names(p: &Plugins) -> BTreeSet<String> {
    extension_points(p)
        .iter()
        .flat_map(|(_, set)| set.enabled.iter().map(|p| p.name.clone()))
        .collect()
}

/// Defaults one profile; `user_args` are its pluginConfig entries already decoded and defaulted, in file order.
fn complete_profile(
    profile: KubeSchedulerProfile,
    user_args: Vec<Args>,
    only_profile: bool,
) -> Profile {
    let plugins = merge_plugins(default_plugins(), profile.plugins.as_ref());
    let mut plugin_config: Vec<PluginConfigEntry> = profile
        .plugin_config
        .into_iter()
        .zip(user_args)
        .map(|(entry, args)| PluginConfigEntry {
            name: entry.name,
            args,
        })
        .collect();
    for name in enabled_plugin_names(&plugins) {
        if plugin_config.iter().any(|c| c.name == name) {
            continue;
        }
        if let Some(args) = Args::defaults_for(&name) {
            plugin_config.push(PluginConfigEntry { name, args });
        }
    }
    // Only a lone profile gets the default name; with several, validation asks for every name.
    let default_name = if only_profile {
        DEFAULT_SCHEDULER_NAME
    } else {
        ""
    };
    Profile {
        scheduler_name: profile
            .scheduler_name
            .unwrap_or_else(|| default_name.to_owned()),
        percentage_of_nodes_to_score: profile.percentage_of_nodes_to_score,
        plugins,
        plugin_config,
    }
}

fn or_default(value: GoDuration, default: i64) -> GoDuration {
    if value.is_zero() {
        GoDuration::from_secs(default)
    } else {
        value
    }
}

fn or_default_str(value: String, default: &str) -> String {
    if value.is_empty() {
        default.to_owned()
    } else {
        value
    }
}

/// `SetDefaults_KubeSchedulerConfiguration`; `args[i]` holds profile i's decoded pluginConfig args.
pub fn complete(
    raw: KubeSchedulerConfiguration,
    mut args: Vec<Vec<Args>>,
    source: Option<PathBuf>,
) -> Config {
    let mut profiles = raw.profiles;
    if profiles.is_empty() {
        profiles.push(KubeSchedulerProfile::default());
    }
    args.resize_with(profiles.len(), Vec::new);
    let only_profile = profiles.len() == 1;
    let profiles = profiles
        .into_iter()
        .zip(args)
        .map(|(p, a)| complete_profile(p, a, only_profile))
        .collect();
    let le = raw.leader_election;
    let cc = raw.client_connection;
    let enable_profiling = raw.enable_profiling.unwrap_or(true);
    Config {
        source,
        parallelism: raw.parallelism.unwrap_or(16),
        leader_election: LeaderElection {
            leader_elect: le.leader_elect.unwrap_or(true),
            lease_duration: or_default(le.lease_duration, 15),
            renew_deadline: or_default(le.renew_deadline, 10),
            retry_period: or_default(le.retry_period, 2),
            resource_lock: or_default_str(le.resource_lock, "leases"),
            resource_name: or_default_str(le.resource_name, "kube-scheduler"),
            resource_namespace: or_default_str(le.resource_namespace, "kube-system"),
        },
        client_connection: ClientConnection {
            kubeconfig: (!cc.kubeconfig.is_empty()).then(|| PathBuf::from(cc.kubeconfig)),
            accept_content_types: cc.accept_content_types,
            content_type: or_default_str(cc.content_type, "application/vnd.kubernetes.protobuf"),
            qps: if cc.qps == 0.0 { 50.0 } else { cc.qps },
            burst: if cc.burst == 0 { 100 } else { cc.burst },
        },
        enable_profiling,
        // Contention profiling defaults on only where profiling is on; a disabled default is upstream's nil.
        enable_contention_profiling: raw.enable_contention_profiling.unwrap_or(enable_profiling),
        percentage_of_nodes_to_score: raw.percentage_of_nodes_to_score.unwrap_or(0),
        pod_initial_backoff_seconds: raw.pod_initial_backoff_seconds.unwrap_or(1),
        pod_max_backoff_seconds: raw.pod_max_backoff_seconds.unwrap_or(10),
        profiles,
        extenders: raw.extenders,
        delay_cache_until_active: raw.delay_cache_until_active,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(enabled: &[(&str, Option<i32>)], disabled: &[&str]) -> PluginSet {
        PluginSet {
            enabled: enabled.iter().map(|(n, w)| Plugin::new(n, *w)).collect(),
            disabled: disabled.iter().map(|n| Plugin::new(n, None)).collect(),
        }
    }

    #[test]
    fn merge_plugin_set_follows_upstream() {
        let defaults = set(&[("A", None), ("B", Some(1)), ("C", Some(2))], &[]);
        let cases: [(&str, PluginSet, PluginSet); 5] = [
            (
                "nothing custom",
                PluginSet::default(),
                set(&[("A", None), ("B", Some(1)), ("C", Some(2))], &[]),
            ),
            (
                "disable one",
                set(&[], &["B"]),
                set(&[("A", None), ("C", Some(2))], &[]),
            ),
            (
                "disable all, enable two",
                set(&[("C", Some(5)), ("X", None)], &["*"]),
                set(&[("C", Some(5)), ("X", None)], &[]),
            ),
            (
                "re-enable keeps order",
                set(&[("X", Some(1)), ("B", Some(7))], &[]),
                set(
                    &[("A", None), ("B", Some(7)), ("C", Some(2)), ("X", Some(1))],
                    &[],
                ),
            ),
            (
                "disabled then enabled",
                set(&[("B", Some(4))], &["B"]),
                set(&[("A", None), ("C", Some(2)), ("B", Some(4))], &[]),
            ),
        ];
        for (name, custom, want) in cases {
            let merged = merge_plugin_set(&defaults, &custom);
            assert_eq!(merged.enabled, want.enabled, "{name}");
            assert_eq!(merged.disabled, custom.disabled, "{name}");
        }
    }

    #[test]
    fn default_args_are_added_for_enabled_plugins_only() {
        let config = complete(KubeSchedulerConfiguration::default(), Vec::new(), None);
        let added: Vec<&str> = config.profiles[0]
            .plugin_config
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            added,
            [
                "DefaultPreemption",
                "DynamicResources",
                "InterPodAffinity",
                "NodeAffinity",
                "NodeResourcesBalancedAllocation",
                "NodeResourcesFit",
                "PodTopologySpread",
                "VolumeBinding"
            ]
        );
        let profile = KubeSchedulerProfile {
            plugins: Some(Plugins {
                multi_point: set(&[("PrioritySort", None), ("DefaultBinder", None)], &["*"]),
                ..Plugins::default()
            }),
            ..KubeSchedulerProfile::default()
        };
        let raw = KubeSchedulerConfiguration {
            profiles: vec![profile],
            ..KubeSchedulerConfiguration::default()
        };
        assert!(
            complete(raw, Vec::new(), None).profiles[0]
                .plugin_config
                .is_empty()
        );
    }
}
