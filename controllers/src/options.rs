//! kube-controller-manager's own flags (KubeControllerManagerConfiguration's command-line form), with
//! upstream's names and defaults. Of the flags of controllers ferrokube does not run, those kubeadm's
//! manifest passes are accepted, so that the binary drops into it, and reported as ignored; others are not.

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
    #[command(flatten)]
    pub not_run: NotRunControllerFlags,
}

/// Flags kubeadm's kube-controller-manager manifest (and kind's configuration of it) passes for controllers
/// ferrokube does not run (nodeipam, csrsigning, serviceaccount-token, persistentvolume-binder).
#[derive(Args, Clone, Debug, Default)]
pub struct NotRunControllerFlags {
    /// Should CIDRs for Pods be allocated and set on the cloud provider (nodeipam; ignored).
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", require_equals = true)]
    pub allocate_node_cidrs: Option<bool>,
    /// CIDR Range for Pods in cluster (nodeipam; ignored).
    #[arg(long)]
    pub cluster_cidr: Option<String>,
    /// CIDR Range for Services in cluster (nodeipam; ignored).
    #[arg(long)]
    pub service_cluster_ip_range: Option<String>,
    /// Mask size for node cidr in cluster (nodeipam; ignored).
    #[arg(long)]
    pub node_cidr_mask_size: Option<i32>,
    /// Filename containing a PEM-encoded X509 CA certificate used to issue cluster-scoped certificates
    /// (csrsigning; ignored).
    #[arg(long)]
    pub cluster_signing_cert_file: Option<PathBuf>,
    /// Filename containing a PEM-encoded RSA or ECDSA private key used to sign cluster-scoped certificates
    /// (csrsigning; ignored).
    #[arg(long)]
    pub cluster_signing_key_file: Option<PathBuf>,
    /// Filename containing a PEM-encoded private RSA or ECDSA key used to sign service account tokens
    /// (serviceaccount-token; ignored).
    #[arg(long)]
    pub service_account_private_key_file: Option<PathBuf>,
    /// Enable HostPath PV provisioning when running without a cloud provider (persistentvolume-binder;
    /// ignored).
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", require_equals = true)]
    pub enable_hostpath_provisioner: Option<bool>,
}

impl NotRunControllerFlags {
    /// The flags given, by name, with the controller each is for.
    pub fn given(&self) -> Vec<(&'static str, &'static str)> {
        [
            (
                self.allocate_node_cidrs.is_some(),
                "--allocate-node-cidrs",
                "nodeipam",
            ),
            (self.cluster_cidr.is_some(), "--cluster-cidr", "nodeipam"),
            (
                self.service_cluster_ip_range.is_some(),
                "--service-cluster-ip-range",
                "nodeipam",
            ),
            (
                self.node_cidr_mask_size.is_some(),
                "--node-cidr-mask-size",
                "nodeipam",
            ),
            (
                self.cluster_signing_cert_file.is_some(),
                "--cluster-signing-cert-file",
                "csrsigning",
            ),
            (
                self.cluster_signing_key_file.is_some(),
                "--cluster-signing-key-file",
                "csrsigning",
            ),
            (
                self.service_account_private_key_file.is_some(),
                "--service-account-private-key-file",
                "serviceaccount-token",
            ),
            (
                self.enable_hostpath_provisioner.is_some(),
                "--enable-hostpath-provisioner",
                "persistentvolume-binder",
            ),
        ]
        .into_iter()
        .filter(|(given, _, _)| *given)
        .map(|(_, flag, controller)| (flag, controller))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    /// kube-controller-manager's command in the manifest `kubeadm init` writes (Kubernetes 1.36).
    const KUBEADM_MANIFEST_FLAGS: &[&str] = &[
        "kube-controller-manager",
        "--allocate-node-cidrs=true",
        "--authentication-kubeconfig=/etc/kubernetes/controller-manager.conf",
        "--authorization-kubeconfig=/etc/kubernetes/controller-manager.conf",
        "--bind-address=127.0.0.1",
        "--client-ca-file=/etc/kubernetes/pki/ca.crt",
        "--cluster-cidr=10.244.0.0/16",
        "--cluster-name=kubernetes",
        "--cluster-signing-cert-file=/etc/kubernetes/pki/ca.crt",
        "--cluster-signing-key-file=/etc/kubernetes/pki/ca.key",
        "--controllers=*,bootstrapsigner,tokencleaner",
        "--kubeconfig=/etc/kubernetes/controller-manager.conf",
        "--leader-elect=true",
        "--requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt",
        "--root-ca-file=/etc/kubernetes/pki/ca.crt",
        "--service-account-private-key-file=/etc/kubernetes/pki/sa.key",
        "--service-cluster-ip-range=10.96.0.0/12",
        "--use-service-account-credentials=true",
        // kind adds this one.
        "--enable-hostpath-provisioner=true",
    ];

    #[test]
    fn kubeadms_manifest_flags_are_accepted_and_those_for_controllers_not_run_named() {
        let flags = crate::Flags::try_parse_from(KUBEADM_MANIFEST_FLAGS).unwrap();
        let manager = flags.controller_manager;
        assert!(manager.use_service_account_credentials);
        assert_eq!(
            manager.controllers,
            ["*", "bootstrapsigner", "tokencleaner"]
        );
        assert!(crate::names::ControllerSelection::parse(&manager.controllers).is_ok());
        assert_eq!(
            manager.not_run.given(),
            [
                ("--allocate-node-cidrs", "nodeipam"),
                ("--cluster-cidr", "nodeipam"),
                ("--service-cluster-ip-range", "nodeipam"),
                ("--cluster-signing-cert-file", "csrsigning"),
                ("--cluster-signing-key-file", "csrsigning"),
                ("--service-account-private-key-file", "serviceaccount-token"),
                ("--enable-hostpath-provisioner", "persistentvolume-binder"),
            ]
        );
        let none = crate::Flags::try_parse_from(["kube-controller-manager"]).unwrap();
        assert!(none.controller_manager.not_run.given().is_empty());
    }
}
