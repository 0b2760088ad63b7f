//! Upstream's ValidateKubeSchedulerConfiguration (pkg/scheduler/apis/config/validation/validation.go) and
//! component-base's client-connection and leader-election validation, on the defaulted configuration, plus the
//! profile checks upstream's framework makes when it builds a profile (unknown plugins, exactly one queue-sort
//! plugin, a bind plugin), so a bad file fails at start-up with the field named. Errors read as apimachinery's
//! field errors: `profiles[0].schedulerName: Required value`.

use std::collections::{BTreeSet, HashMap};

use super::args_validation::validate_args;
use super::defaults::{IN_TREE_PLUGINS, extension_points};
use super::field::FieldError;
use super::types::{API_VERSION, PluginSet};
use super::{Config, Profile};
use component_base::config::decode::{child, index};

/// Plugins removed from the v1 API; upstream names them specially (invalidPluginsByVersion).
const REMOVED_PLUGINS: [&str; 4] = [
    "AzureDiskLimits",
    "CinderLimits",
    "EBSLimits",
    "GCEPDLimits",
];

fn removed_plugin(path: &str, name: &str) -> FieldError {
    FieldError::invalid(
        path,
        name,
        format!(
            "was invalid in version {API_VERSION:?} (KubeSchedulerConfiguration is version {API_VERSION:?})"
        ),
    )
}

/// Validates the defaulted configuration; an empty list means valid.
pub fn validate(config: &Config) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if config.client_connection.burst < 0 {
        errs.push(FieldError::invalid(
            "clientConnection.burst",
            config.client_connection.burst,
            "must be non-negative",
        ));
    }
    validate_leader_election(config, &mut errs);
    if config.parallelism <= 0 {
        errs.push(FieldError::invalid(
            "parallelism",
            config.parallelism,
            "should be an integer value greater than zero",
        ));
    }
    if config.profiles.is_empty() {
        errs.push(FieldError::required("profiles", ""));
    } else {
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (i, profile) in config.profiles.iter().enumerate() {
            let path = index("profiles", i);
            validate_profile(&path, profile, &mut errs);
            if names.insert(&profile.scheduler_name, i).is_some() {
                errs.push(FieldError::duplicate(
                    &child(&path, "schedulerName"),
                    &profile.scheduler_name,
                ));
            }
        }
        validate_common_queue_sort(&config.profiles, &mut errs);
    }
    validate_percentage(
        "percentageOfNodesToScore",
        Some(config.percentage_of_nodes_to_score),
        &mut errs,
    );
    if config.pod_initial_backoff_seconds <= 0 {
        errs.push(FieldError::invalid(
            "podInitialBackoffSeconds",
            config.pod_initial_backoff_seconds,
            "must be greater than 0",
        ));
    }
    if config.pod_max_backoff_seconds < config.pod_initial_backoff_seconds {
        errs.push(FieldError::invalid(
            "podMaxBackoffSeconds",
            config.pod_max_backoff_seconds,
            "must be greater than or equal to PodInitialBackoffSeconds",
        ));
    }
    // Deviation: upstream calls extenders over HTTP; ferrokube does not, so a file that relies on them must fail.
    if !config.extenders.is_empty() {
        errs.push(FieldError::forbidden(
            "extenders",
            "scheduler extenders are not supported by ferrokube-scheduler; remove the extenders list",
        ));
    }
    errs
}

fn validate_leader_election(config: &Config, errs: &mut Vec<FieldError>) {
    let le = &config.leader_election;
    if !le.leader_elect {
        return;
    }
    for (field, value) in [
        ("leaseDuration", le.lease_duration),
        ("renewDeadline", le.renew_deadline),
        ("retryPeriod", le.retry_period),
    ] {
        if value.0 <= 0 {
            errs.push(FieldError::invalid(
                &child("leaderElection", field),
                value,
                "must be greater than zero",
            ));
        }
    }
    if le.lease_duration <= le.renew_deadline {
        errs.push(FieldError::invalid(
            "leaderElection.leaseDuration",
            le.lease_duration,
            "must be greater than `RenewDeadline`",
        ));
    }
    for (field, value) in [
        ("resourceLock", &le.resource_lock),
        ("resourceNamespace", &le.resource_namespace),
        ("resourceName", &le.resource_name),
    ] {
        if value.is_empty() {
            errs.push(FieldError::required(&child("leaderElection", field), ""));
        }
    }
    if !le.resource_lock.is_empty() && le.resource_lock != "leases" {
        errs.push(FieldError::invalid(
            "leaderElection.resourceLock",
            &le.resource_lock,
            r#"resourceLock value must be "leases""#,
        ));
    }
}

fn validate_percentage(path: &str, value: Option<i32>, errs: &mut Vec<FieldError>) {
    if let Some(v) = value
        && !(0..=100).contains(&v)
    {
        errs.push(FieldError::invalid(path, v, "not in valid range [0-100]"));
    }
}

fn validate_profile(path: &str, profile: &Profile, errs: &mut Vec<FieldError>) {
    if profile.scheduler_name.is_empty() {
        errs.push(FieldError::required(&child(path, "schedulerName"), ""));
    }
    validate_percentage(
        &child(path, "percentageOfNodesToScore"),
        profile.percentage_of_nodes_to_score,
        errs,
    );
    let plugins_path = child(path, "plugins");
    for (point, set) in extension_points(&profile.plugins) {
        for (i, plugin) in set.enabled.iter().enumerate() {
            let entry = index(&child(&child(&plugins_path, point), "enabled"), i);
            // Upstream names removed plugins everywhere but multiPoint, where, like any unknown name, they fail
            // building the framework ("does not exist"); ferrokube has no out-of-tree plugins to allow for.
            if REMOVED_PLUGINS.contains(&plugin.name.as_str()) && point != "multiPoint" {
                errs.push(removed_plugin(&entry, &plugin.name));
            } else if !IN_TREE_PLUGINS.contains(&plugin.name.as_str()) {
                errs.push(FieldError::not_found(
                    &child(&entry, "name"),
                    &plugin.name,
                    "no such plugin in kube-scheduler 1.36",
                ));
            }
            if let Some(weight) = plugin.weight
                && weight < 0
            {
                // Deviation: upstream lets a negative score weight through; it can only be a mistake.
                errs.push(FieldError::invalid(
                    &child(&entry, "weight"),
                    weight,
                    "must not be negative (0 means the default of 1)",
                ));
            }
        }
    }
    let mut seen = BTreeSet::new();
    for (i, entry) in profile.plugin_config.iter().enumerate() {
        let entry_path = index(&child(path, "pluginConfig"), i);
        if !seen.insert(entry.name.as_str()) {
            errs.push(FieldError::duplicate(&entry_path, &entry.name));
        }
        if REMOVED_PLUGINS.contains(&entry.name.as_str()) {
            errs.push(removed_plugin(&entry_path, &entry.name));
        } else if !IN_TREE_PLUGINS.contains(&entry.name.as_str()) {
            errs.push(FieldError::not_found(
                &child(&entry_path, "name"),
                &entry.name,
                "no such plugin in kube-scheduler 1.36",
            ));
        } else {
            errs.extend(validate_args(&entry.args, &child(&entry_path, "args")));
        }
    }
    validate_queue_sort_and_bind(path, profile, errs);
}

/// How many plugins a profile runs at an extension point, given the in-tree plugins that implement it: those
/// enabled there, plus those enabled through multiPoint unless disabled there (framework's expandMultiPointPlugins).
fn effective_count(set: &PluginSet, multi_point: &PluginSet, implementers: &[&str]) -> usize {
    let disabled: BTreeSet<&str> = set.disabled.iter().map(|p| p.name.as_str()).collect();
    let mut names: BTreeSet<&str> = set.enabled.iter().map(|p| p.name.as_str()).collect();
    if !disabled.contains("*") {
        names.extend(
            multi_point
                .enabled
                .iter()
                .map(|p| p.name.as_str())
                .filter(|n| implementers.contains(n) && !disabled.contains(n)),
        );
    }
    names.len()
}

fn validate_queue_sort_and_bind(path: &str, profile: &Profile, errs: &mut Vec<FieldError>) {
    let plugins = &profile.plugins;
    let queue_sort = effective_count(&plugins.queue_sort, &plugins.multi_point, &["PrioritySort"]);
    // Upstream's validation only looks at profiles[0]; its framework then requires exactly one in every profile.
    if plugins.queue_sort.enabled.len() > 1 {
        errs.push(FieldError::invalid(
            &child(path, "plugins.queueSort.enabled"),
            plugins.queue_sort.enabled.len(),
            "only one queue sort plugin can be enabled",
        ));
    } else if queue_sort != 1 {
        errs.push(FieldError::invalid(
            &child(path, "plugins.queueSort"),
            queue_sort,
            format!(
                "only one queue sort plugin required for profile with scheduler name {:?}",
                profile.scheduler_name
            ),
        ));
    }
    if effective_count(&plugins.bind, &plugins.multi_point, &["DefaultBinder"]) == 0 {
        errs.push(FieldError::required(
            &child(path, "plugins.bind"),
            format!(
                "at least one bind plugin is needed for profile with scheduler name {:?}",
                profile.scheduler_name
            ),
        ));
    }
}

fn validate_common_queue_sort(profiles: &[Profile], errs: &mut Vec<FieldError>) {
    let canon = &profiles[0].plugins.queue_sort;
    let name = canon.enabled.first().map(|p| p.name.as_str());
    let args_of = |profile: &Profile| {
        name.and_then(|n| profile.plugin_config.iter().find(|c| c.name == n))
            .map(|c| c.args.clone())
    };
    let canon_args = args_of(&profiles[0]);
    for (i, profile) in profiles.iter().enumerate().skip(1) {
        let path = index("profiles", i);
        let current = &profile.plugins.queue_sort;
        if current != canon {
            let value = serde_json::to_value(current).unwrap_or_default();
            errs.push(FieldError::invalid(
                &child(&path, "plugins.queueSort"),
                value,
                "must be the same for all profiles",
            ));
        }
        if name.is_some() && args_of(profile).is_some_and(|args| Some(&args) != canon_args.as_ref())
        {
            errs.push(FieldError::invalid(
                &child(&path, "pluginConfig.args"),
                name.unwrap_or_default(),
                "queueSort must be the same for all profiles",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::parse;

    fn error_of(body: &str) -> String {
        let text = format!(
            "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n{body}"
        );
        match parse(&text, Some(Path::new("/etc/kubernetes/scheduler.yaml"))) {
            Ok(config) => panic!("accepted: {config:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn each_validation_rule_names_its_field() {
        let gpu_fit = "profiles:\n- pluginConfig:\n  - name: NodeResourcesFit\n    args:\n      scoringStrategy:\n        type: LeastAllocated\n        resources:\n        - name: cpu\n          weight: 101\n";
        let cases = [
            (
                "parallelism: -1\n",
                "parallelism: Invalid value: -1: should be an integer value greater than zero",
            ),
            (
                "percentageOfNodesToScore: 101\n",
                "percentageOfNodesToScore: Invalid value: 101: not in valid range [0-100]",
            ),
            (
                "podInitialBackoffSeconds: -1\npodMaxBackoffSeconds: 10\n",
                "podInitialBackoffSeconds: Invalid value: -1: must be greater than 0",
            ),
            (
                "podInitialBackoffSeconds: 5\npodMaxBackoffSeconds: 2\n",
                "podMaxBackoffSeconds: Invalid value: 2: must be greater than or equal to PodInitialBackoffSeconds",
            ),
            (
                "leaderElection:\n  leaseDuration: 5s\n",
                "leaderElection.leaseDuration: Invalid value: \"5s\": must be greater than `RenewDeadline`",
            ),
            (
                "leaderElection:\n  retryPeriod: -1s\n",
                "leaderElection.retryPeriod: Invalid value: \"-1s\": must be greater than zero",
            ),
            (
                "leaderElection:\n  resourceLock: endpoints\n",
                "leaderElection.resourceLock: Invalid value: \"endpoints\": resourceLock value must be \"leases\"",
            ),
            (
                "clientConnection:\n  burst: -1\n",
                "clientConnection.burst: Invalid value: -1: must be non-negative",
            ),
            (
                "profiles:\n- schedulerName: a\n- percentageOfNodesToScore: 1\n",
                "profiles[1].schedulerName: Required value",
            ),
            (
                "profiles:\n- schedulerName: a\n- schedulerName: a\n",
                "profiles[1].schedulerName: Duplicate value: \"a\"",
            ),
            (
                "profiles:\n- percentageOfNodesToScore: -5\n",
                "profiles[0].percentageOfNodesToScore: Invalid value: -5: not in valid range [0-100]",
            ),
            (
                "profiles:\n- plugins:\n    queueSort:\n      enabled: [{name: PrioritySort}, {name: Other}]\n",
                "profiles[0].plugins.queueSort.enabled: Invalid value: 2: only one queue sort plugin can be enabled",
            ),
            (
                "profiles:\n- plugins:\n    queueSort:\n      disabled: [{name: '*'}]\n",
                "profiles[0].plugins.queueSort: Invalid value: 0: only one queue sort plugin required",
            ),
            (
                "profiles:\n- schedulerName: a\n- schedulerName: b\n  plugins:\n    queueSort:\n      disabled: [{name: PrioritySort}]\n      enabled: [{name: PrioritySort}]\n",
                "profiles[1].plugins.queueSort: Invalid value: {\"disabled\":[{\"name\":\"PrioritySort\"}],\"enabled\":[{\"name\":\"PrioritySort\"}]}: must be the same for all profiles",
            ),
            (
                "profiles:\n- plugins:\n    multiPoint:\n      disabled: [{name: DefaultBinder}]\n",
                "profiles[0].plugins.bind: Required value: at least one bind plugin is needed",
            ),
            (
                "profiles:\n- plugins:\n    score:\n      enabled: [{name: NodeResourceFit}]\n",
                "profiles[0].plugins.score.enabled[0].name: Not found: \"NodeResourceFit\"",
            ),
            (
                "profiles:\n- plugins:\n    score:\n      enabled: [{name: ImageLocality, weight: -1}]\n",
                "profiles[0].plugins.score.enabled[0].weight: Invalid value: -1: must not be negative",
            ),
            (
                "profiles:\n- plugins:\n    filter:\n      enabled: [{name: EBSLimits}]\n",
                "profiles[0].plugins.filter.enabled[0]: Invalid value: \"EBSLimits\": was invalid in version",
            ),
            (
                "profiles:\n- pluginConfig:\n  - name: Fancy\n    args: {}\n",
                "profiles[0].pluginConfig[0].name: Not found: \"Fancy\"",
            ),
            (
                "profiles:\n- pluginConfig:\n  - name: NodeAffinity\n  - name: NodeAffinity\n",
                "profiles[0].pluginConfig[1]: Duplicate value: \"NodeAffinity\"",
            ),
            (
                gpu_fit,
                "profiles[0].pluginConfig[0].args.scoringStrategy.resources[0].weight: Invalid value: 101: resource weight of cpu not in valid range (0, 100]",
            ),
            (
                "profiles:\n- pluginConfig:\n  - name: InterPodAffinity\n    args: {hardPodAffinityWeight: 101}\n",
                "profiles[0].pluginConfig[0].args.hardPodAffinityWeight: Invalid value: 101: not in valid range [0, 100]",
            ),
            (
                "profiles:\n- pluginConfig:\n  - name: PodTopologySpread\n    args:\n      defaultingType: List\n      defaultConstraints: [{maxSkew: 0, topologyKey: zone, whenUnsatisfiable: DoNotSchedule}]\n",
                "profiles[0].pluginConfig[0].args.defaultConstraints[0].maxSkew: Invalid value: 0: not in valid range (0, inf)",
            ),
            (
                "profiles:\n- pluginConfig:\n  - name: DefaultPreemption\n    args: {minCandidateNodesPercentage: 200}\n",
                "profiles[0].pluginConfig[0].args.minCandidateNodesPercentage: Invalid value: 200: not in valid range [0, 100]",
            ),
            (
                "extenders:\n- urlPrefix: http://127.0.0.1:8888\n  filterVerb: filter\n",
                "extenders: Forbidden: scheduler extenders are not supported",
            ),
        ];
        for (body, want) in cases {
            let got = error_of(body);
            assert!(
                got.starts_with("/etc/kubernetes/scheduler.yaml: ") && got.contains(want),
                "got  {got}\nwant {want}"
            );
        }
    }

    #[test]
    fn several_failures_are_listed_on_one_line() {
        let got = error_of("parallelism: 0\npodInitialBackoffSeconds: -1\n");
        assert_eq!(
            got,
            "/etc/kubernetes/scheduler.yaml: [parallelism: Invalid value: 0: should be an integer value greater than zero, \
         podInitialBackoffSeconds: Invalid value: -1: must be greater than 0]"
        );
    }
}
