//! The scheduler's configuration file, `KubeSchedulerConfiguration` (`kubescheduler.config.k8s.io/v1`), read
//! as kube-scheduler 1.36 reads it: decoded strictly (YAML or JSON), defaulted, validated.
//!
//! Flags together with `--config`, as kube-scheduler 1.36 combines them (cmd/kube-scheduler/app/options):
//! the leader-election flags (`--leader-elect`, `--leader-elect-lease-duration`, `-renew-deadline`,
//! `-retry-period`, `-resource-lock`, `-resource-name`, `-resource-namespace`) override the configuration whenever
//! they are given on the command line, with or without `--config`, and validation runs after they are applied.
//! The deprecated client flags (`--kubeconfig`, `--kube-api-qps`, `--kube-api-burst`, like `--kube-api-content-type`
//! and `--profiling`) apply only without `--config`; with it they are ignored and the file's `clientConnection` wins.

mod args;
mod args_validation;
use component_base::config::decode;
mod defaults;
mod field;
mod names;
mod node_affinity;
mod plugin_args;
#[cfg(test)]
mod tests;
mod types;
mod validation;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use args::{
    DefaultPreemptionArgs, DefaultingType, DynamicResourcesArgs, InterPodAffinityArgs,
    NodeAffinityArgs, NodeResourcesBalancedAllocationArgs, NodeResourcesFitArgs,
    PodTopologySpreadArgs, RequestedToCapacityRatioParam, ResourceSpec, ScoringStrategy,
    ScoringStrategyType, UtilizationShapePoint, VolumeBindingArgs,
};
pub use decode::DecodeError;
pub use defaults::{DEFAULT_PLUGINS, DEFAULT_SCHEDULER_NAME, IN_TREE_PLUGINS};
pub use field::{ErrorKind, FieldError};
pub use plugin_args::{Args, PLUGINS_WITH_ARGS, PluginArgs};
pub use types::{
    API_VERSION, ClientConnectionConfiguration, Extender, ExtenderManagedResource,
    ExtenderTlsConfig, GoDuration, KIND, KubeSchedulerConfiguration, KubeSchedulerProfile,
    LeaderElectionConfiguration, Plugin, PluginConfig, PluginSet, Plugins,
};

/// The defaulted, validated scheduler configuration (upstream's internal KubeSchedulerConfiguration).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it was read from; `None` for the built-in default.
    pub source: Option<PathBuf>,
    /// Parallelism of the scheduling algorithms.
    pub parallelism: i32,
    /// Leader election.
    pub leader_election: LeaderElection,
    /// Apiserver client.
    pub client_connection: ClientConnection,
    /// Profiling endpoints (kept for fidelity; ferrokube serves none).
    pub enable_profiling: bool,
    /// Contention profiling (kept for fidelity).
    pub enable_contention_profiling: bool,
    /// Percentage of nodes to score; 0 means adaptive.
    pub percentage_of_nodes_to_score: i32,
    /// Initial backoff of unschedulable pods, seconds.
    pub pod_initial_backoff_seconds: i64,
    /// Maximum backoff of unschedulable pods, seconds.
    pub pod_max_backoff_seconds: i64,
    /// Scheduling profiles, at least one.
    pub profiles: Vec<Profile>,
    /// Extenders as given; always empty once validated, since ferrokube has none.
    pub extenders: Vec<Extender>,
    /// Fill caches only once leading.
    pub delay_cache_until_active: bool,
}

/// Leader election settings, defaulted.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaderElection {
    /// Take part in leader election.
    pub leader_elect: bool,
    /// Lease duration.
    pub lease_duration: GoDuration,
    /// Renew deadline.
    pub renew_deadline: GoDuration,
    /// Retry period.
    pub retry_period: GoDuration,
    /// Lock type (`leases`).
    pub resource_lock: String,
    /// Lease name.
    pub resource_name: String,
    /// Lease namespace.
    pub resource_namespace: String,
}

/// Apiserver client settings, defaulted.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConnection {
    /// Kubeconfig path; `None` means in-cluster or the default loading rules.
    pub kubeconfig: Option<PathBuf>,
    /// Accept header.
    pub accept_content_types: String,
    /// Request content type.
    pub content_type: String,
    /// Client-side QPS.
    pub qps: f32,
    /// Client-side burst.
    pub burst: i32,
}

/// One scheduling profile, defaulted.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// The `spec.schedulerName` this profile serves.
    pub scheduler_name: String,
    /// Profile override of percentageOfNodesToScore.
    pub percentage_of_nodes_to_score: Option<i32>,
    /// Default plugins merged with the profile's. multiPoint is not expanded: the framework does that from what
    /// each plugin implements.
    pub plugins: Plugins,
    /// pluginConfig as upstream's internal profile holds it: the file's entries in order, then default args for
    /// each enabled plugin that takes args and had none.
    pub plugin_config: Vec<PluginConfigEntry>,
}

impl Profile {
    /// The typed args of every plugin that takes args, upstream's defaults where the profile has none.
    pub fn plugin_args(&self) -> PluginArgs {
        PluginArgs::from_args(self.plugin_config.iter().map(|c| &c.args))
    }
}

/// One pluginConfig entry with decoded, defaulted args.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginConfigEntry {
    /// Plugin name.
    pub name: String,
    /// Its args.
    pub args: Args,
}

/// Why a configuration could not be used; its Display is one line naming the file and the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not YAML or JSON.
    #[error("{file}: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A field is unknown, of the wrong type, or the document is not a v1 KubeSchedulerConfiguration.
    #[error("{file}: {error}")]
    Decode {
        /// The file.
        file: String,
        /// The field path and what is wrong.
        error: DecodeError,
    },
    /// Validation failed.
    #[error("{file}: {}", field::join(.errors))]
    Invalid {
        /// The file.
        file: String,
        /// Every failure, in upstream's order.
        errors: Vec<FieldError>,
    },
}

/// How a configuration without a file is named in errors.
const NO_FILE: &str = "command-line flags";

fn file_label(source: Option<&Path>) -> String {
    source.map_or_else(|| NO_FILE.to_owned(), |p| p.display().to_string())
}

/// Reads, strictly decodes, defaults and validates the configuration file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.display().to_string(),
        source,
    })?;
    parse(&text, Some(path))
}

/// Like [`load`] on text already read; `source` names the file in errors.
pub fn parse(text: &str, source: Option<&Path>) -> Result<Config, ConfigError> {
    let file = file_label(source);
    let decode_error = |error| ConfigError::Decode {
        file: file.clone(),
        error,
    };
    let yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| ConfigError::Syntax {
            file: file.clone(),
            message: e.to_string().replace('\n', " "),
        })?;
    let json = decode::yaml_to_json(yaml, "").map_err(decode_error)?;
    check_type(&json).map_err(decode_error)?;
    let raw: KubeSchedulerConfiguration = decode::from_value(&json, "")
        .map_err(explain_dropped_fields)
        .map_err(decode_error)?;
    let mut all_args = Vec::with_capacity(raw.profiles.len());
    for (i, profile) in raw.profiles.iter().enumerate() {
        let mut profile_args = Vec::with_capacity(profile.plugin_config.len());
        for (j, entry) in profile.plugin_config.iter().enumerate() {
            let path = format!("profiles[{i}].pluginConfig[{j}].args");
            profile_args.push(Args::decode(&entry.name, &entry.args, &path).map_err(decode_error)?);
        }
        all_args.push(profile_args);
    }
    let config = defaults::complete(raw, all_args, source.map(Path::to_path_buf));
    validate(&config)?;
    Ok(config)
}

/// Both were dropped from the v1 API; people upgrading old files meet them first.
fn explain_dropped_fields(mut error: DecodeError) -> DecodeError {
    for field in ["healthzBindAddress", "metricsBindAddress"] {
        if error.message == format!("unknown field {field:?}") {
            error.message.push_str(
                " (not part of kubescheduler.config.k8s.io/v1; serving is set with --bind-address and \
                 --secure-port)",
            );
        }
    }
    error
}

/// Upstream reads apiVersion and kind before anything else and knows only v1 of this kind.
fn check_type(json: &serde_json::Value) -> Result<(), DecodeError> {
    // An empty document has no apiVersion either.
    let empty = serde_json::Map::new();
    let object = match json {
        serde_json::Value::Object(object) => object,
        serde_json::Value::Null => &empty,
        _ => {
            return Err(DecodeError::at(
                "",
                "expected a KubeSchedulerConfiguration object",
            ));
        }
    };
    for (field, want) in [("apiVersion", API_VERSION), ("kind", KIND)] {
        match object.get(field).and_then(serde_json::Value::as_str) {
            None | Some("") => return Err(DecodeError::at(field, "Required value")),
            Some(got) if got != want => {
                return Err(DecodeError::at(
                    field,
                    format!("Unsupported value: {got:?}: supported values: {want:?}"),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The configuration used when `--config` is not given: every upstream default.
pub fn default_config() -> Config {
    let raw = KubeSchedulerConfiguration {
        api_version: API_VERSION.to_owned(),
        kind: KIND.to_owned(),
        ..KubeSchedulerConfiguration::default()
    };
    defaults::complete(raw, Vec::new(), None)
}

/// Validates a configuration again, e.g. after [`apply_flag_overrides`], as upstream validates after flags.
pub fn validate(config: &Config) -> Result<(), ConfigError> {
    let errors = validation::validate(config);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            file: file_label(config.source.as_deref()),
            errors,
        })
    }
}

/// The flags that can change the configuration; `Some` means given on the command line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlagOverrides {
    /// `--kubeconfig` (deprecated; ignored with `--config`).
    pub kubeconfig: Option<PathBuf>,
    /// `--leader-elect`.
    pub leader_elect: Option<bool>,
    /// `--leader-elect-lease-duration`.
    pub lease_duration: Option<Duration>,
    /// `--leader-elect-renew-deadline`.
    pub renew_deadline: Option<Duration>,
    /// `--leader-elect-retry-period`.
    pub retry_period: Option<Duration>,
    /// `--leader-elect-resource-lock`.
    pub resource_lock: Option<String>,
    /// `--leader-elect-resource-name`.
    pub resource_name: Option<String>,
    /// `--leader-elect-resource-namespace`.
    pub resource_namespace: Option<String>,
    /// `--kube-api-qps` (deprecated; ignored with `--config`).
    pub kube_api_qps: Option<f32>,
    /// `--kube-api-burst` (deprecated; ignored with `--config`).
    pub kube_api_burst: Option<u32>,
}

/// Applies the flags by the rule in this module's documentation: leader-election flags always, client flags only
/// when the configuration did not come from a file (`config.source` is `None`). Call [`validate`] afterwards.
pub fn apply_flag_overrides(config: &mut Config, overrides: &FlagOverrides) {
    let le = &mut config.leader_election;
    if let Some(v) = overrides.leader_elect {
        le.leader_elect = v;
    }
    for (target, value) in [
        (&mut le.lease_duration, overrides.lease_duration),
        (&mut le.renew_deadline, overrides.renew_deadline),
        (&mut le.retry_period, overrides.retry_period),
    ] {
        if let Some(v) = value {
            *target = GoDuration::from_std(v);
        }
    }
    for (target, value) in [
        (&mut le.resource_lock, &overrides.resource_lock),
        (&mut le.resource_name, &overrides.resource_name),
        (&mut le.resource_namespace, &overrides.resource_namespace),
    ] {
        if let Some(v) = value {
            target.clone_from(v);
        }
    }
    if config.source.is_some() {
        return;
    }
    let cc = &mut config.client_connection;
    if let Some(v) = &overrides.kubeconfig {
        cc.kubeconfig = Some(v.clone());
    }
    if let Some(v) = overrides.kube_api_qps {
        cc.qps = v;
    }
    if let Some(v) = overrides.kube_api_burst {
        cc.burst = i32::try_from(v).unwrap_or(i32::MAX);
    }
}
