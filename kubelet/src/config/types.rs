//! `KubeletConfiguration` (kubelet.config.k8s.io/v1beta1): the fields ferrokube's kubelet reads, named and
//! defaulted as upstream's (pkg/kubelet/apis/config/v1beta1/defaults.go). Go's zero value means "not set",
//! so defaults fill zeros; pointer fields of upstream's type are `Option`s here.

use std::collections::BTreeMap;

use component_base::config::GoDuration;
use k8s_openapi::api::core::v1::Taint;
use serde::{Deserialize, Serialize};

use super::auth::{KubeletAuthentication, KubeletAuthorization};

/// The only API version the file may have.
pub const API_VERSION: &str = "kubelet.config.k8s.io/v1beta1";
/// The file's kind.
pub const KIND: &str = "KubeletConfiguration";

/// The kubelet's configuration: the file's fields, then flags, then defaults.
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct KubeletConfiguration {
    /// Must be `kubelet.config.k8s.io/v1beta1`.
    pub api_version: String,
    /// Must be `KubeletConfiguration`.
    pub kind: String,
    /// The IP address the kubelet serves on; default 0.0.0.0.
    pub address: String,
    /// The kubelet's serving port; default 10250.
    pub port: i32,
    /// The healthz server's address; default 127.0.0.1.
    pub healthz_bind_address: String,
    /// The healthz server's port, 0 disables it; default 10248.
    pub healthz_port: Option<i32>,
    /// Register the node with the apiserver; default true.
    pub register_node: Option<bool>,
    /// Taints the node registers with.
    pub register_with_taints: Vec<Taint>,
    /// How often the node status is computed; default 10s.
    pub node_status_update_frequency: GoDuration,
    /// How often an unchanged node status is still posted; default 5m.
    pub node_status_report_frequency: GoDuration,
    /// The node Lease's duration; renewed every quarter of it; default 40.
    pub node_lease_duration_seconds: i32,
    /// The most pods on this node; default 110.
    pub max_pods: i32,
    /// Pods per core, 0 for no limit beyond maxPods.
    pub pods_per_core: i32,
    /// The node's pod CIDR when nothing allocates one.
    #[serde(rename = "podCIDR")]
    pub pod_cidr: String,
    /// Resources reserved for the system (`cpu`, `memory`, `ephemeral-storage`, `pid`).
    pub system_reserved: BTreeMap<String, String>,
    /// Resources reserved for Kubernetes components.
    pub kube_reserved: BTreeMap<String, String>,
    /// Queries per second to the apiserver; default 50.
    #[serde(rename = "kubeAPIQPS")]
    pub kube_api_qps: Option<f32>,
    /// Burst of queries to the apiserver; default 100.
    #[serde(rename = "kubeAPIBurst")]
    pub kube_api_burst: i32,
    /// DNS servers for ClusterFirst pods.
    #[serde(rename = "clusterDNS")]
    pub cluster_dns: Vec<String>,
    /// The cluster's DNS domain.
    pub cluster_domain: String,
    /// The container runtime's socket; default unix:///run/containerd/containerd.sock.
    pub container_runtime_endpoint: String,
    /// cgroupfs or systemd; default cgroupfs.
    pub cgroup_driver: String,
    /// The cgroup that holds the pods' cgroups; default the root.
    pub cgroup_root: String,
    /// How many images the node status lists, -1 for all; default 50.
    pub node_status_max_images: Option<i32>,
    /// How often running pods are resynced; default 1m.
    pub sync_frequency: GoDuration,
    /// The resolv.conf pods' DNS settings start from; default /etc/resolv.conf.
    pub resolv_conf: Option<String>,
    /// Where container logs are written; default /var/log/pods.
    pub pod_logs_dir: String,
    /// How requests to the server are authenticated.
    pub authentication: KubeletAuthentication,
    /// How they are authorized.
    pub authorization: KubeletAuthorization,
    /// The serving certificate (PEM); none means a self-signed one under `--cert-dir`.
    pub tls_cert_file: String,
    /// The serving certificate's key (PEM).
    pub tls_private_key_file: String,
    /// The server's cipher suites, by Go's names; empty for all.
    pub tls_cipher_suites: Vec<String>,
    /// The server's minimum TLS version (`VersionTLS12`, ...); empty for the default.
    pub tls_min_version: String,
}

impl KubeletConfiguration {
    /// Fills what is unset with upstream's defaults.
    pub fn apply_defaults(&mut self) {
        fn zero_or<T: Default + PartialEq>(field: &mut T, default: T) {
            if *field == T::default() {
                *field = default;
            }
        }
        zero_or(&mut self.address, "0.0.0.0".to_string());
        zero_or(&mut self.port, 10250);
        zero_or(&mut self.healthz_bind_address, "127.0.0.1".to_string());
        self.healthz_port.get_or_insert(10248);
        self.register_node.get_or_insert(true);
        if self.node_status_report_frequency.is_zero() {
            // Upstream: an explicitly set update frequency is also the report frequency.
            self.node_status_report_frequency = if self.node_status_update_frequency.is_zero() {
                GoDuration::from_secs(300)
            } else {
                self.node_status_update_frequency
            };
        }
        zero_or(
            &mut self.node_status_update_frequency,
            GoDuration::from_secs(10),
        );
        zero_or(&mut self.node_lease_duration_seconds, 40);
        zero_or(&mut self.max_pods, 110);
        self.kube_api_qps.get_or_insert(50.0);
        zero_or(&mut self.kube_api_burst, 100);
        zero_or(
            &mut self.container_runtime_endpoint,
            "unix:///run/containerd/containerd.sock".to_string(),
        );
        zero_or(&mut self.cgroup_driver, "cgroupfs".to_string());
        self.node_status_max_images.get_or_insert(50);
        zero_or(&mut self.sync_frequency, GoDuration::from_secs(60));
        zero_or(&mut self.pod_logs_dir, "/var/log/pods".to_string());
        self.resolv_conf
            .get_or_insert_with(|| "/etc/resolv.conf".to_string());
        self.authentication.apply_defaults();
        self.authorization.apply_defaults();
    }
}
