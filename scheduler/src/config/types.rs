//! `KubeSchedulerConfiguration` (`kubescheduler.config.k8s.io/v1`) as a file holds it, field for field as
//! k8s.io/kube-scheduler/config/v1 of Kubernetes 1.36 (types.go) and component-base's v1alpha1 types embedded in it.
//! Every struct refuses unknown fields, because upstream decodes this file strictly.

use serde::{Deserialize, Serialize};

pub use component_base::config::GoDuration;

/// The only API version upstream 1.36 reads.
pub const API_VERSION: &str = "kubescheduler.config.k8s.io/v1";
/// The kind of the top-level object.
pub const KIND: &str = "KubeSchedulerConfiguration";

/// The configuration file's top-level object.
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct KubeSchedulerConfiguration {
    /// Must be `kubescheduler.config.k8s.io/v1`.
    pub api_version: String,
    /// Must be `KubeSchedulerConfiguration`.
    pub kind: String,
    /// Parallelism of the scheduling algorithms; default 16.
    pub parallelism: Option<i32>,
    /// Leader election client settings.
    pub leader_election: LeaderElectionConfiguration,
    /// Apiserver client settings.
    pub client_connection: ClientConnectionConfiguration,
    /// Serve /debug/pprof; default true (we have no pprof, the value is kept for fidelity).
    pub enable_profiling: Option<bool>,
    /// Block profiling when profiling is on; default true.
    pub enable_contention_profiling: Option<bool>,
    /// Percentage of feasible nodes after which filtering stops; 0 or unset means adaptive.
    pub percentage_of_nodes_to_score: Option<i32>,
    /// Initial backoff of unschedulable pods, seconds; default 1.
    pub pod_initial_backoff_seconds: Option<i64>,
    /// Maximum backoff of unschedulable pods, seconds; default 10.
    pub pod_max_backoff_seconds: Option<i64>,
    /// Scheduling profiles; one `default-scheduler` profile when empty.
    pub profiles: Vec<KubeSchedulerProfile>,
    /// Scheduler extenders: read and kept, but refused by validation because ferrokube does not call extenders.
    pub extenders: Vec<Extender>,
    /// Fill informer caches only once leading.
    pub delay_cache_until_active: bool,
}

/// component-base's LeaderElectionConfiguration (v1alpha1).
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LeaderElectionConfiguration {
    /// Take part in leader election; default true.
    pub leader_elect: Option<bool>,
    /// Lease duration; zero means the default 15s.
    pub lease_duration: GoDuration,
    /// Renew deadline; zero means the default 10s.
    pub renew_deadline: GoDuration,
    /// Retry period; zero means the default 2s.
    pub retry_period: GoDuration,
    /// Lock object type; only `leases` is valid.
    pub resource_lock: String,
    /// Lock object name; default `kube-scheduler`.
    pub resource_name: String,
    /// Lock object namespace; default `kube-system`.
    pub resource_namespace: String,
}

/// component-base's ClientConnectionConfiguration (v1alpha1).
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ClientConnectionConfiguration {
    /// Path to a kubeconfig file; empty means in-cluster or the default loading rules.
    pub kubeconfig: String,
    /// Accept header for apiserver requests.
    pub accept_content_types: String,
    /// Content type of request bodies; default `application/vnd.kubernetes.protobuf`.
    pub content_type: String,
    /// Client-side queries per second; zero means the default 50.
    pub qps: f32,
    /// Client-side burst; zero means the default 100.
    pub burst: i32,
}

/// A scheduling profile.
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct KubeSchedulerProfile {
    /// The `spec.schedulerName` this profile serves.
    pub scheduler_name: Option<String>,
    /// Overrides the global percentageOfNodesToScore.
    pub percentage_of_nodes_to_score: Option<i32>,
    /// Plugins enabled and disabled on top of the defaults.
    pub plugins: Option<Plugins>,
    /// Arguments per plugin.
    pub plugin_config: Vec<PluginConfig>,
}

/// Plugin sets per extension point.
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Plugins {
    /// Before a pod enters the active queue.
    pub pre_enqueue: PluginSet,
    /// Ordering of the scheduling queue; exactly one plugin.
    pub queue_sort: PluginSet,
    /// PreFilter.
    pub pre_filter: PluginSet,
    /// Filter.
    pub filter: PluginSet,
    /// PostFilter (preemption).
    pub post_filter: PluginSet,
    /// PreScore.
    pub pre_score: PluginSet,
    /// Score, with weights.
    pub score: PluginSet,
    /// Reserve/Unreserve.
    pub reserve: PluginSet,
    /// Permit.
    pub permit: PluginSet,
    /// PreBind.
    pub pre_bind: PluginSet,
    /// Bind.
    pub bind: PluginSet,
    /// PostBind.
    pub post_bind: PluginSet,
    /// Plugins enabled at every extension point they implement.
    pub multi_point: PluginSet,
    /// Workload placement generation (upstream feature gate TopologyAwareWorkloadScheduling, off in 1.36).
    pub placement_generate: PluginSet,
    /// Workload placement scoring (same gate).
    pub placement_score: PluginSet,
}

/// Enabled and disabled plugins of one extension point.
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PluginSet {
    /// Plugins to run, after the defaults, in this order.
    pub enabled: Vec<Plugin>,
    /// Default plugins to drop; `*` drops them all.
    pub disabled: Vec<Plugin>,
}

/// A plugin name and, for scoring, its weight.
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Plugin {
    /// Plugin name.
    pub name: String,
    /// Score weight; unset or 0 counts as 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
}

impl Plugin {
    /// A plugin entry with an optional weight.
    pub fn new(name: &str, weight: Option<i32>) -> Self {
        Self {
            name: name.to_owned(),
            weight,
        }
    }
}

/// Arguments of one plugin, kept raw until decoded by the plugin's args type.
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct PluginConfig {
    /// Plugin name.
    pub name: String,
    /// The raw arguments object (it may carry its own apiVersion and kind).
    pub args: serde_json::Value,
}

/// An HTTP scheduler extender (upstream Extender); accepted by the decoder, refused by validation.
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Extender {
    /// URL prefix of the extender.
    pub url_prefix: String,
    /// Filter verb.
    pub filter_verb: String,
    /// Preempt verb.
    pub preempt_verb: String,
    /// Prioritize verb.
    pub prioritize_verb: String,
    /// Weight of the prioritize scores.
    pub weight: i64,
    /// Bind verb.
    pub bind_verb: String,
    /// Use HTTPS.
    #[serde(rename = "enableHTTPS")]
    pub enable_https: bool,
    /// TLS settings.
    pub tls_config: Option<ExtenderTlsConfig>,
    /// Call timeout.
    pub http_timeout: GoDuration,
    /// The extender caches nodes itself.
    pub node_cache_capable: bool,
    /// Extended resources the extender manages.
    pub managed_resources: Vec<ExtenderManagedResource>,
    /// Scheduling goes on when the extender fails.
    pub ignorable: bool,
}

/// TLS settings of an extender.
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ExtenderTlsConfig {
    /// Skip verification.
    pub insecure: bool,
    /// SNI server name.
    pub server_name: String,
    /// Client certificate file.
    pub cert_file: String,
    /// Client key file.
    pub key_file: String,
    /// CA file.
    pub ca_file: String,
    /// Client certificate, base64 PEM.
    pub cert_data: String,
    /// Client key, base64 PEM.
    pub key_data: String,
    /// CA bundle, base64 PEM.
    pub ca_data: String,
}

/// An extended resource managed by an extender.
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct ExtenderManagedResource {
    /// Resource name.
    pub name: String,
    /// The scheduler skips this resource in its own checks.
    pub ignored_by_scheduler: bool,
}
