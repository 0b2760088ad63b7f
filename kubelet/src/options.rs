//! The kubelet's command line: upstream's flag names. Flags that have a KubeletConfiguration field are
//! `Option`s, so a flag given on the command line overrides the file and an absent one leaves it alone, as
//! upstream's flag precedence does.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;
use component_base::config::GoDuration;
use component_base::flags::LoggingFlags;
use component_base::version;
use k8s_openapi::api::core::v1::Taint;

/// ferrokube-kubelet's command line.
#[derive(Parser, Debug, Clone)]
#[command(name = "ferrokube-kubelet", version = version::long_version(),
          about = "ferrokube-kubelet: a drop-in replacement for the kubelet")]
pub struct Flags {
    /// Path to a kubeconfig file with the apiserver's address and this node's credentials.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// A KubeletConfiguration file (kubelet.config.k8s.io/v1beta1); flags override its fields.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The node name to use instead of the host name.
    #[arg(long)]
    pub hostname_override: Option<String>,
    /// The node's IP address(es), comma-separated (one per family); default: the address of the node name.
    #[arg(long, value_delimiter = ',')]
    pub node_ip: Vec<IpAddr>,
    /// Where the kubelet keeps its files (volumes, plugin state).
    #[arg(long, default_value = "/var/lib/kubelet")]
    pub root_dir: PathBuf,
    /// The container runtime's socket (containerd's native API), `unix://` optional.
    #[arg(long, visible_alias = "containerd-address")]
    pub container_runtime_endpoint: Option<String>,
    /// Directories searched for CNI plugin binaries, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "/opt/cni/bin,/usr/lib/cni"
    )]
    pub cni_bin_dir: Vec<PathBuf>,
    /// The directory holding the CNI network configuration (the first .conflist/.conf is used).
    #[arg(long, default_value = "/etc/cni/net.d")]
    pub cni_conf_dir: PathBuf,
    /// The CIDR pod IPs are allocated from on this node (when the controller-manager does not allocate one).
    #[arg(long)]
    pub pod_cidr: Option<String>,
    /// The most pods this node runs.
    #[arg(long)]
    pub max_pods: Option<i32>,
    /// Labels to add when registering the node, `key=value,...`.
    #[arg(long, value_parser = parse_label, value_delimiter = ',')]
    pub node_labels: Vec<(String, String)>,
    /// Taints to register the node with, `key=value:Effect,...`.
    #[arg(long, value_parser = parse_taint, value_delimiter = ',')]
    pub register_with_taints: Option<Vec<Taint>>,
    /// Register the node with the apiserver.
    #[arg(long)]
    pub register_node: Option<bool>,
    /// Resources reserved for the system, `cpu=100m,memory=100Mi,...`.
    #[arg(long, value_parser = parse_resource, value_delimiter = ',')]
    pub system_reserved: Option<Vec<(String, String)>>,
    /// Resources reserved for Kubernetes components, `cpu=100m,memory=100Mi,...`.
    #[arg(long, value_parser = parse_resource, value_delimiter = ',')]
    pub kube_reserved: Option<Vec<(String, String)>>,
    /// How often the node status is computed (and posted when it changed).
    #[arg(long, value_parser = GoDuration::parse)]
    pub node_status_update_frequency: Option<GoDuration>,
    /// Queries per second to the apiserver.
    #[arg(long)]
    pub kube_api_qps: Option<f32>,
    /// Burst of queries to the apiserver.
    #[arg(long)]
    pub kube_api_burst: Option<i32>,
    /// DNS server IPs for pods with dnsPolicy ClusterFirst, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub cluster_dns: Option<Vec<IpAddr>>,
    /// The cluster's DNS domain, searched by pods.
    #[arg(long)]
    pub cluster_domain: Option<String>,
    /// Where container logs are written.
    #[arg(long)]
    pub pod_logs_dir: Option<String>,
    /// The IP address the kubelet serves on.
    #[arg(long)]
    pub address: Option<IpAddr>,
    /// The kubelet's serving port.
    #[arg(long)]
    pub port: Option<i32>,
    /// The IP address of the healthz server.
    #[arg(long)]
    pub healthz_bind_address: Option<IpAddr>,
    /// The port of the healthz server; 0 disables it.
    #[arg(long)]
    pub healthz_port: Option<i32>,
    /// The directory of the self-signed serving certificate when --tls-cert-file is not given.
    #[arg(long, default_value = "/var/lib/kubelet/pki")]
    pub cert_dir: PathBuf,
    /// The serving certificate (PEM, the chain after it).
    #[arg(long)]
    pub tls_cert_file: Option<String>,
    /// The serving certificate's key (PEM).
    #[arg(long)]
    pub tls_private_key_file: Option<String>,
    /// The server's cipher suites, by Go's names (config `tlsCipherSuites`).
    #[arg(long, value_delimiter = ',')]
    pub tls_cipher_suites: Option<Vec<String>>,
    /// The minimum TLS version: VersionTLS10..VersionTLS13 (config `tlsMinVersion`).
    #[arg(long)]
    pub tls_min_version: Option<String>,
    /// Client certificates signed by this CA bundle are authenticated (user = CN, groups = O).
    #[arg(long)]
    pub client_ca_file: Option<String>,
    /// Serve requests no authenticator accepts as system:anonymous.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub anonymous_auth: Option<bool>,
    /// Authenticate bearer tokens with TokenReview.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub authentication_token_webhook: Option<bool>,
    /// How long token reviews are cached.
    #[arg(long, value_parser = GoDuration::parse)]
    pub authentication_token_webhook_cache_ttl: Option<GoDuration>,
    /// AlwaysAllow or Webhook (SubjectAccessReview).
    #[arg(long)]
    pub authorization_mode: Option<String>,
    /// How long an allow from the webhook is cached.
    #[arg(long, value_parser = GoDuration::parse)]
    pub authorization_webhook_cache_authorized_ttl: Option<GoDuration>,
    /// How long a denial from the webhook is cached.
    #[arg(long, value_parser = GoDuration::parse)]
    pub authorization_webhook_cache_unauthorized_ttl: Option<GoDuration>,
    #[command(flatten)]
    pub logging: LoggingFlags,
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("invalid label {text:?}: want key=value"))
}

fn parse_resource(text: &str) -> Result<(String, String), String> {
    let (name, quantity) = parse_label(text)?;
    match component_base::quantity::parse_milli(&quantity) {
        Some(_) => Ok((name, quantity)),
        None => Err(format!("invalid quantity {quantity:?} for {name}")),
    }
}

/// `key=value:Effect` or `key:Effect`, as upstream's `ParseTaints`.
pub fn parse_taint(text: &str) -> Result<Taint, String> {
    let invalid = |why: &str| format!("invalid taint spec: {text}, {why}");
    let (key_value, effect) = text
        .rsplit_once(':')
        .ok_or_else(|| invalid("missing effect"))?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return Err(invalid(&format!(
            "invalid taint effect: {effect}, unsupported taint effect"
        )));
    }
    let (key, value) = match key_value.split_once('=') {
        Some((key, value)) => (key, Some(value.to_string())),
        None => (key_value, None),
    };
    if key.is_empty() {
        return Err(invalid("empty key"));
    }
    Ok(Taint {
        key: key.to_string(),
        value,
        effect: effect.to_string(),
        time_added: None,
    })
}

/// Resource lists given as pairs, as a map.
pub fn resource_map(pairs: &[(String, String)]) -> BTreeMap<String, String> {
    pairs.iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taints_parse_as_upstream() {
        let taint = parse_taint("dedicated=gpu:NoSchedule").expect("valid");
        assert_eq!(
            (
                taint.key.as_str(),
                taint.value.as_deref(),
                taint.effect.as_str()
            ),
            ("dedicated", Some("gpu"), "NoSchedule")
        );
        let taint = parse_taint("example.com/flag:NoExecute").expect("valid");
        assert_eq!(taint.value, None);
        assert!(parse_taint("novalue").is_err());
        assert!(
            parse_taint("k=v:Sometimes")
                .expect_err("bad effect")
                .contains("invalid taint effect: Sometimes")
        );
    }

    #[test]
    fn flags_parse_lists_and_aliases() {
        let flags = Flags::try_parse_from([
            "ferrokube-kubelet",
            "--containerd-address=/run/c.sock",
            "--node-labels=a=1,b=2",
            "--system-reserved=cpu=100m,memory=1Gi",
            "--register-with-taints=k=v:NoSchedule",
            "--node-ip=10.0.0.5",
        ])
        .expect("valid flags");
        assert_eq!(
            flags.container_runtime_endpoint.as_deref(),
            Some("/run/c.sock")
        );
        assert_eq!(flags.node_labels.len(), 2);
        assert_eq!(flags.system_reserved.as_ref().map(Vec::len), Some(2));
        assert_eq!(flags.register_with_taints.as_ref().map(Vec::len), Some(1));
        assert!(
            Flags::try_parse_from(["ferrokube-kubelet", "--system-reserved=cpu=lots"]).is_err()
        );
    }
}
