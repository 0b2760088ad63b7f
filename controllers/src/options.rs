//! kube-controller-manager's own flags (KubeControllerManagerConfiguration's command-line form), with
//! upstream's names and defaults. Flags of controllers ferrokube does not run are not accepted.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use component_base::flags::parse_duration;

/// The controller-manager's flags beyond the ones every control-plane component shares.
#[derive(Args, Clone, Debug)]
pub struct ControllerManagerFlags {
    /// Controllers to enable: '*' enables all on-by-default controllers, 'foo' enables foo, '-foo'
    /// disables foo. Names and their upstream aliases are accepted.
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub controllers: Vec<String>,
    /// Each controller talks to the apiserver as its own ServiceAccount in kube-system.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", require_equals = true)]
    pub use_service_account_credentials: bool,
    /// CA bundle published to every namespace as kube-root-ca.crt; defaults to the kubeconfig's CA.
    #[arg(long)]
    pub root_ca_file: Option<PathBuf>,
    /// Deployments synced at once.
    #[arg(long, default_value_t = 5)]
    pub concurrent_deployment_syncs: usize,
    /// ReplicaSets synced at once.
    #[arg(long, default_value_t = 5)]
    pub concurrent_replicaset_syncs: usize,
    /// ReplicationControllers synced at once.
    #[arg(long, default_value_t = 5)]
    pub concurrent_rc_syncs: usize,
    /// Garbage-collector workers.
    #[arg(long, default_value_t = 20)]
    pub concurrent_gc_syncs: usize,
    /// Run the garbage collector.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", require_equals = true)]
    pub enable_garbage_collector: bool,
    /// Namespaces synced at once.
    #[arg(long, default_value_t = 10)]
    pub concurrent_namespace_syncs: usize,
    /// How often namespace lifecycle is resynced.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub namespace_sync_period: Duration,
    /// Services whose endpoints are synced at once (the EndpointSlice controller's workers).
    #[arg(long, default_value_t = 5)]
    pub concurrent_service_endpoint_syncs: usize,
    /// Most endpoints in one EndpointSlice.
    #[arg(long, default_value_t = 100)]
    pub max_endpoints_per_slice: usize,
    /// Batches EndpointSlice updates caused by pod changes over this period; 0 disables batching.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub endpointslice_updates_batch_period: Duration,
    /// Terminated pods kept before the pod garbage collector deletes the oldest; 0 disables it.
    #[arg(long, default_value_t = 12500)]
    pub terminated_pod_gc_threshold: i64,
    /// How often node health is checked.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub node_monitor_period: Duration,
    /// How long a node may go without reporting before it is marked unhealthy.
    #[arg(long, default_value = "50s", value_parser = parse_duration)]
    pub node_monitor_grace_period: Duration,
    /// How long a starting node may go without reporting before it is marked unhealthy.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub node_startup_grace_period: Duration,
    /// Nodes per second whose pods are evicted while a zone is healthy.
    #[arg(long, default_value_t = 0.1)]
    pub node_eviction_rate: f32,
    /// Nodes per second whose pods are evicted while a zone is unhealthy.
    #[arg(long, default_value_t = 0.01)]
    pub secondary_node_eviction_rate: f32,
    /// Below this many nodes a zone is small: unhealthy small zones stop evictions.
    #[arg(long, default_value_t = 50)]
    pub large_cluster_size_threshold: u32,
    /// Fraction of not-Ready nodes at which a zone counts as unhealthy.
    #[arg(long, default_value_t = 0.55)]
    pub unhealthy_zone_threshold: f32,
    /// Informers' resync period floor; accepted for compatibility (ferrokube's informers do not resync).
    #[arg(long, default_value = "12h", value_parser = parse_duration)]
    pub min_resync_period: Duration,
    /// The cluster's name.
    #[arg(long, default_value = "kubernetes")]
    pub cluster_name: String,
}
