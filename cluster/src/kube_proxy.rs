//! Upstream kube-proxy, which makes Services' cluster IPs reach their endpoints on each node (iptables
//! mode): its configuration file, its command, and the cleanup of the rules it leaves behind.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::process::run_checked;
use crate::{Error, upstream};

/// The upstream binary's name (hack/upstream builds it).
pub const NAME: &str = "kube-proxy";
/// The proxy mode ferrokube runs: iptables, the Linux default.
pub const MODE: &str = "iptables";

/// How one node's kube-proxy runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Its kubeconfig (the `system:kube-proxy` identity).
    pub kubeconfig: PathBuf,
    /// The node it proxies for, as its kubelet registered it.
    pub hostname_override: String,
    /// The cluster's pod CIDR: traffic from outside it to a cluster IP is masqueraded.
    pub cluster_cidr: String,
    /// `bindAddress`, whose family picks the primary IP family when the node has no address.
    pub bind_address: IpAddr,
    /// `metricsBindAddress`: where `/metrics` is served.
    pub metrics_bind_address: SocketAddr,
    /// `healthzBindAddress`: where `/healthz` and `/livez` are served.
    pub healthz_bind_address: SocketAddr,
}

impl Config {
    /// kube-proxy's defaults for node `hostname_override`: binding to all addresses, metrics on
    /// 127.0.0.1:10249, health on 0.0.0.0:10256.
    pub fn new(kubeconfig: PathBuf, hostname_override: &str, cluster_cidr: &str) -> Self {
        Self {
            kubeconfig,
            hostname_override: hostname_override.to_string(),
            cluster_cidr: cluster_cidr.to_string(),
            bind_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            metrics_bind_address: SocketAddr::from((Ipv4Addr::LOCALHOST, 10249)),
            healthz_bind_address: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 10256)),
        }
    }
}

/// The KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1) for `config`, as YAML. Conntrack sysctls
/// are left as the host has them (`maxPerCore: 0` and zero TCP timeouts; the UDP ones default to zero):
/// kube-proxy otherwise writes nf_conntrack_max and the TCP established/close-wait timeouts at start,
/// which a VM or a container may refuse, and which would outlive it on a developer's machine.
pub fn config_file(config: &Config) -> String {
    let value = json!({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": config.kubeconfig.to_string_lossy()},
        "hostnameOverride": config.hostname_override,
        "bindAddress": config.bind_address.to_string(),
        "metricsBindAddress": config.metrics_bind_address.to_string(),
        "healthzBindAddress": config.healthz_bind_address.to_string(),
        "clusterCIDR": config.cluster_cidr,
        "mode": MODE,
        "conntrack": {
            "maxPerCore": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
    });
    // Serializing a JSON value of strings and numbers cannot fail; JSON is YAML too, should it ever.
    serde_yaml_ng::to_string(&value).unwrap_or_else(|_| value.to_string())
}

/// The command that runs kube-proxy `bin` with the configuration file at `config_path`.
pub fn command(bin: &Path, config_path: &Path) -> Command {
    let mut command = Command::new(bin);
    command.arg(format!("--config={}", config_path.display()));
    command
}

/// The command that removes every rule kube-proxy `bin` may have left (iptables, IPVS and nftables modes)
/// and exits.
pub fn cleanup_command(bin: &Path) -> Command {
    let mut command = Command::new(bin);
    command.arg("--cleanup");
    command
}

/// Removes the rules a kube-proxy left (its KUBE-* chains), with the upstream binary; run once every
/// kube-proxy of the host has stopped, or they would put them back.
pub fn cleanup() -> Result<(), Error> {
    let bin = upstream::binary(NAME)?;
    run_checked(&mut cleanup_command(&bin)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn config() -> Config {
        Config::new(
            PathBuf::from("/tmp/state dir/kube-proxy.kubeconfig"),
            "node-1",
            "10.244.0.0/16",
        )
    }

    fn parsed(config: &Config) -> Value {
        serde_yaml_ng::from_str(&config_file(config)).unwrap()
    }

    #[test]
    fn the_config_file_is_a_kube_proxy_configuration_in_iptables_mode() {
        let file = parsed(&config());
        assert_eq!(file["apiVersion"], "kubeproxy.config.k8s.io/v1alpha1");
        assert_eq!(file["kind"], "KubeProxyConfiguration");
        assert_eq!(file["mode"], "iptables");
        assert_eq!(
            file["clientConnection"]["kubeconfig"],
            "/tmp/state dir/kube-proxy.kubeconfig"
        );
        assert_eq!(file["hostnameOverride"], "node-1");
        assert_eq!(file["clusterCIDR"], "10.244.0.0/16");
    }

    #[test]
    fn the_defaults_are_kube_proxys_and_every_address_is_explicit() {
        let file = parsed(&config());
        assert_eq!(file["bindAddress"], "0.0.0.0");
        assert_eq!(file["metricsBindAddress"], "127.0.0.1:10249");
        assert_eq!(file["healthzBindAddress"], "0.0.0.0:10256");

        let mut custom = config();
        custom.bind_address = "192.0.2.2".parse().unwrap();
        custom.metrics_bind_address = "127.0.0.1:20249".parse().unwrap();
        custom.healthz_bind_address = "127.0.0.1:20256".parse().unwrap();
        let file = parsed(&custom);
        assert_eq!(file["bindAddress"], "192.0.2.2");
        assert_eq!(file["metricsBindAddress"], "127.0.0.1:20249");
        assert_eq!(file["healthzBindAddress"], "127.0.0.1:20256");
    }

    #[test]
    fn conntrack_sysctls_are_left_alone() {
        let conntrack = &parsed(&config())["conntrack"];
        assert_eq!(conntrack["maxPerCore"], 0);
        assert_eq!(conntrack["tcpEstablishedTimeout"], "0s");
        assert_eq!(conntrack["tcpCloseWaitTimeout"], "0s");
        assert!(conntrack.get("udpTimeout").is_none());
        assert!(conntrack.get("udpStreamTimeout").is_none());
        assert!(conntrack.get("tcpBeLiberal").is_none());
    }

    #[test]
    fn the_commands_pass_the_config_file_or_cleanup() {
        let bin = Path::new("/opt/bin/kube-proxy");
        let run = command(bin, Path::new("/etc/kube-proxy/config.yaml"));
        assert_eq!(run.get_program(), "/opt/bin/kube-proxy");
        let args: Vec<_> = run.get_args().collect();
        assert_eq!(args, ["--config=/etc/kube-proxy/config.yaml"]);
        let clean = cleanup_command(bin);
        assert_eq!(clean.get_program(), "/opt/bin/kube-proxy");
        assert_eq!(clean.get_args().collect::<Vec<_>>(), ["--cleanup"]);
    }
}
