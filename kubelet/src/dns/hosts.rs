//! The /etc/hosts the kubelet manages for a pod's containers (upstream's managedHostsFileContent and
//! nodeHostsFileContent): localhost entries and the pod's own name on the pod network, the node's file on
//! the host network, the pod's hostAliases after either.

use k8s_openapi::api::core::v1::{HostAlias, Pod};

use crate::sandbox::namespaces::pod_hostname;

/// The first line of a pod-network hosts file.
const MANAGED_HEADER: &str = "# Kubernetes-managed hosts file.\n";
/// The first line of a host-network hosts file.
const HOST_NETWORK_HEADER: &str = "# Kubernetes-managed hosts file (host network).\n";

/// The pod's hostname and, with a subdomain, its domain `SUBDOMAIN.NAMESPACE.svc.CLUSTER_DOMAIN`.
pub fn hostname_and_domain(pod: &Pod, cluster_domain: &str) -> (String, Option<String>) {
    let spec = pod.spec.clone().unwrap_or_default();
    let hostname = pod_hostname(
        pod.metadata.name.as_deref().unwrap_or_default(),
        spec.hostname.as_deref(),
    );
    let domain = spec.subdomain.filter(|s| !s.is_empty()).map(|subdomain| {
        format!(
            "{subdomain}.{}.svc.{cluster_domain}",
            pod.metadata.namespace.as_deref().unwrap_or_default()
        )
    });
    (hostname, domain)
}

/// The hosts file of a pod on the pod network with `ips`.
pub fn managed_hosts(
    ips: &[String],
    hostname: &str,
    domain: Option<&str>,
    aliases: &[HostAlias],
) -> String {
    let mut text = String::from(MANAGED_HEADER);
    text.push_str("127.0.0.1\tlocalhost\n");
    text.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    text.push_str("fe00::0\tip6-localnet\n");
    text.push_str("fe00::0\tip6-mcastprefix\n");
    text.push_str("fe00::1\tip6-allnodes\n");
    text.push_str("fe00::2\tip6-allrouters\n");
    for ip in ips {
        match domain {
            Some(domain) => text.push_str(&format!("{ip}\t{hostname}.{domain}\t{hostname}\n")),
            None => text.push_str(&format!("{ip}\t{hostname}\n")),
        }
    }
    text.push_str(&alias_entries(aliases));
    text
}

/// The hosts file of a host-network pod: the node's `/etc/hosts` content, then the aliases.
pub fn host_network_hosts(node_hosts: &str, aliases: &[HostAlias]) -> String {
    format!(
        "{HOST_NETWORK_HEADER}{node_hosts}{}",
        alias_entries(aliases)
    )
}

fn alias_entries(aliases: &[HostAlias]) -> String {
    if aliases.is_empty() {
        return String::new();
    }
    let mut text = String::from("\n# Entries added by HostAliases.\n");
    for alias in aliases {
        let names = alias.hostnames.clone().unwrap_or_default().join("\t");
        text.push_str(&format!("{}\t{names}\n", alias.ip));
    }
    text
}
