//! Pods' DNS resolver settings, as upstream's network/dns Configurer decides them (cluster DNS with the
//! cluster's search domains, the host's resolv.conf, or none, plus the pod's dnsConfig), and the
//! resolv.conf containers get (written as containerd's CRI plugin writes it).

pub mod hosts;

use k8s_openapi::api::core::v1::{Pod, PodDNSConfig};

use crate::kuberuntime::manager::pod_description;

/// At most this many nameservers (upstream's MaxDNSNameservers).
const MAX_NAMESERVERS: usize = 3;
/// At most this many search domains (MaxDNSSearchPaths).
const MAX_SEARCH_PATHS: usize = 32;
/// The search line's longest length (MaxDNSSearchListChars).
const MAX_SEARCH_CHARS: usize = 2048;
/// A search domain longer than a DNS subdomain is dropped (glibc aborts on them).
const MAX_DOMAIN_LENGTH: usize = 253;

/// A resolver configuration: what resolv.conf says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsConfig {
    /// `nameserver` lines.
    pub servers: Vec<String>,
    /// The `search` line.
    pub searches: Vec<String>,
    /// The `options` line.
    pub options: Vec<String>,
}

impl DnsConfig {
    /// resolv.conf's text, as containerd's CRI plugin writes it for a sandbox.
    pub fn resolv_conf(&self) -> String {
        let mut text = String::new();
        if !self.searches.is_empty() {
            text.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        for server in &self.servers {
            text.push_str(&format!("nameserver {server}\n"));
        }
        if !self.options.is_empty() {
            text.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        text
    }
}

/// What decides pods' DNS: the kubelet's clusterDNS, clusterDomain and resolvConf.
#[derive(Debug, Clone, Default)]
pub struct DnsConfigurer {
    /// clusterDNS: the cluster DNS servers' IPs.
    pub cluster_dns: Vec<String>,
    /// clusterDomain, e.g. `cluster.local`; empty for none.
    pub cluster_domain: String,
    /// The host's resolv.conf as read from `resolvConf` (empty text when resolvConf is "").
    pub host: Option<DnsConfig>,
}

/// A pod's DNS settings and the warnings (event reason, message) about forming them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodDns {
    /// The settings.
    pub config: DnsConfig,
    /// Warning events for the pod.
    pub warnings: Vec<(&'static str, String)>,
}

impl DnsConfigurer {
    /// The DNS settings of `pod` (upstream's GetPodDNS).
    pub fn pod_dns(&self, pod: &Pod) -> PodDns {
        let spec = pod.spec.clone().unwrap_or_default();
        let host_network = spec.host_network.unwrap_or(false);
        let mut warnings = Vec::new();
        let host = || match &self.host {
            Some(host) => host.clone(),
            // resolvConf "" disables lookups through the host's servers: the local machine's then.
            None => DnsConfig {
                servers: vec!["127.0.0.1".to_string()],
                searches: vec![".".to_string()],
                options: Vec::new(),
            },
        };
        let cluster = match spec.dns_policy.as_deref().unwrap_or("ClusterFirst") {
            "None" => None,
            "Default" => Some(false),
            "ClusterFirst" if host_network => Some(false),
            _ => Some(true),
        };
        let mut config = match cluster {
            None => DnsConfig::default(),
            Some(true) if !self.cluster_dns.is_empty() => DnsConfig {
                servers: self.cluster_dns.clone(),
                searches: self.cluster_searches(
                    pod,
                    self.host
                        .as_ref()
                        .map(|h| h.searches.as_slice())
                        .unwrap_or_default(),
                ),
                options: vec!["ndots:5".to_string()],
            },
            Some(true) => {
                warnings.push((
                    "MissingClusterDNS",
                    format!(
                        "pod: \"{}\". kubelet does not have ClusterDNS IP configured and cannot \
                         create Pod using \"ClusterFirst\" policy. Falling back to \"Default\" policy.",
                        pod_description(pod)
                    ),
                ));
                host()
            }
            Some(false) => host(),
        };
        if let Some(extra) = &spec.dns_config {
            append_dns_config(&mut config, extra);
        }
        fit_limits(&mut config, &mut warnings);
        PodDns { config, warnings }
    }

    /// `NS.svc.DOMAIN svc.DOMAIN DOMAIN` before the host's searches, without duplicates.
    fn cluster_searches(&self, pod: &Pod, host: &[String]) -> Vec<String> {
        if self.cluster_domain.is_empty() {
            return host.to_vec();
        }
        let domain = &self.cluster_domain;
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let mut searches = vec![
            format!("{namespace}.svc.{domain}"),
            format!("svc.{domain}"),
            domain.clone(),
        ];
        searches.extend(host.iter().cloned());
        dedup(searches)
    }
}

/// Parses resolv.conf text (upstream's parseResolvConf): nameservers accumulate, the last search and
/// options lines win, `.` and trailing dots dropped from search domains.
pub fn parse_resolv_conf(text: &str) -> DnsConfig {
    let mut config = DnsConfig::default();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [first, ..] if first.starts_with('#') => {}
            ["nameserver", server, ..] => config.servers.push((*server).to_string()),
            ["search", domains @ ..] => {
                config.searches = domains
                    .iter()
                    .filter(|d| **d != ".")
                    .map(|d| d.trim_end_matches('.').to_string())
                    .collect();
            }
            ["options", options @ ..] => {
                let options: Vec<String> = options.iter().map(ToString::to_string).collect();
                merge_options(&mut config.options, &options);
            }
            _ => {}
        }
    }
    config
}

/// Adds the pod's dnsConfig: nameservers and searches appended without duplicates, options merged by name
/// (the pod's win).
fn append_dns_config(config: &mut DnsConfig, extra: &PodDNSConfig) {
    config
        .servers
        .extend(extra.nameservers.iter().flatten().cloned());
    config.servers = dedup(std::mem::take(&mut config.servers));
    config
        .searches
        .extend(extra.searches.iter().flatten().cloned());
    config.searches = dedup(std::mem::take(&mut config.searches));
    let options: Vec<String> = extra
        .options
        .iter()
        .flatten()
        .filter_map(|o| {
            let name = o.name.as_deref()?;
            Some(match o.value.as_deref() {
                Some(value) if !value.is_empty() => format!("{name}:{value}"),
                _ => name.to_string(),
            })
        })
        .collect();
    merge_options(&mut config.options, &options);
}

/// Sets each of `options` by its name (the part before `:`), replacing one of the same name in place.
fn merge_options(existing: &mut Vec<String>, options: &[String]) {
    let name = |option: &str| option.split(':').next().unwrap_or_default().to_string();
    for option in options {
        match existing.iter_mut().find(|o| name(o) == name(option)) {
            Some(slot) => *slot = option.clone(),
            None => existing.push(option.clone()),
        }
    }
}

/// Upstream's formDNSConfigFitsLimits, with its DNSConfigForming warnings.
fn fit_limits(config: &mut DnsConfig, warnings: &mut Vec<(&'static str, String)>) {
    if config.servers.len() > MAX_NAMESERVERS {
        config.servers.truncate(MAX_NAMESERVERS);
        warnings.push((
            "DNSConfigForming",
            format!(
                "Nameserver limits were exceeded, some nameservers have been omitted, the applied \
                 nameserver line is: {}",
                config.servers.join(" ")
            ),
        ));
    }
    let mut exceeded = config.searches.len() > MAX_SEARCH_PATHS;
    config.searches.truncate(MAX_SEARCH_PATHS);
    let before = config.searches.len();
    config.searches.retain(|s| s.len() <= MAX_DOMAIN_LENGTH);
    exceeded |= config.searches.len() != before;
    while config.searches.join(" ").len() > MAX_SEARCH_CHARS {
        config.searches.pop();
        exceeded = true;
    }
    if exceeded {
        warnings.push((
            "DNSConfigForming",
            format!(
                "Search Line limits were exceeded, some search paths have been omitted, the applied \
                 search line is: {}",
                config.searches.join(" ")
            ),
        ));
    }
}

fn dedup(items: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    items
        .into_iter()
        .filter(|i| seen.insert(i.clone()))
        .collect()
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
