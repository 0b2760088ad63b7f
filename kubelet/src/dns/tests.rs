use k8s_openapi::api::core::v1::{HostAlias, PodDNSConfigOption, PodSpec};
use kube::api::ObjectMeta;

use super::hosts::{host_network_hosts, hostname_and_domain, managed_hosts};
use super::*;

fn pod(policy: Option<&str>, host_network: bool) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("shop".into()),
            uid: Some("u1".into()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            dns_policy: policy.map(Into::into),
            host_network: Some(host_network),
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

fn configurer(cluster_dns: &[&str]) -> DnsConfigurer {
    DnsConfigurer {
        cluster_dns: cluster_dns.iter().map(ToString::to_string).collect(),
        cluster_domain: "cluster.local".into(),
        host: Some(parse_resolv_conf(
            "# host\nnameserver 10.0.0.2\nnameserver 10.0.0.3\nsearch example.com. corp.example .\n\
             options timeout:2 ndots:1\noptions attempts:3 timeout:1\n",
        )),
    }
}

#[test]
fn resolv_conf_parses_as_upstream() {
    let host = configurer(&[]).host.unwrap();
    assert_eq!(host.servers, ["10.0.0.2", "10.0.0.3"]);
    assert_eq!(host.searches, ["example.com", "corp.example"]);
    assert_eq!(host.options, ["timeout:1", "ndots:1", "attempts:3"]);
}

#[test]
fn cluster_first_uses_the_cluster_dns_and_search_domains() {
    let dns = configurer(&["10.96.0.10"]).pod_dns(&pod(None, false));
    assert!(dns.warnings.is_empty());
    assert_eq!(
        dns.config.resolv_conf(),
        "search shop.svc.cluster.local svc.cluster.local cluster.local example.com corp.example\n\
         nameserver 10.96.0.10\n\
         options ndots:5\n"
    );
    // On the host network ClusterFirst means Default, unless ClusterFirstWithHostNet.
    let host = configurer(&["10.96.0.10"]).pod_dns(&pod(Some("ClusterFirst"), true));
    assert_eq!(host.config.servers, ["10.0.0.2", "10.0.0.3"]);
    let with_host_net =
        configurer(&["10.96.0.10"]).pod_dns(&pod(Some("ClusterFirstWithHostNet"), true));
    assert_eq!(with_host_net.config.servers, ["10.96.0.10"]);
}

#[test]
fn without_cluster_dns_cluster_first_falls_back_to_default_with_a_warning() {
    let dns = configurer(&[]).pod_dns(&pod(Some("ClusterFirst"), false));
    assert_eq!(dns.config.servers, ["10.0.0.2", "10.0.0.3"]);
    assert_eq!(dns.warnings.len(), 1);
    assert_eq!(dns.warnings[0].0, "MissingClusterDNS");
    assert!(
        dns.warnings[0]
            .1
            .starts_with("pod: \"web_shop(u1)\". kubelet does not have ClusterDNS IP configured"),
        "{}",
        dns.warnings[0].1
    );
}

#[test]
fn none_takes_only_the_pods_dns_config_and_options_merge_by_name() {
    let mut p = pod(Some("None"), false);
    p.spec.as_mut().unwrap().dns_config = Some(PodDNSConfig {
        nameservers: Some(vec!["1.1.1.1".into(), "1.1.1.1".into()]),
        searches: Some(vec!["a.example".into()]),
        options: Some(vec![
            PodDNSConfigOption {
                name: Some("ndots".into()),
                value: Some("2".into()),
            },
            PodDNSConfigOption {
                name: Some("edns0".into()),
                value: None,
            },
        ]),
    });
    let dns = configurer(&["10.96.0.10"]).pod_dns(&p);
    assert_eq!(
        dns.config.resolv_conf(),
        "search a.example\nnameserver 1.1.1.1\noptions ndots:2 edns0\n"
    );
    // The pod's options replace the cluster's of the same name.
    p.spec.as_mut().unwrap().dns_policy = Some("ClusterFirst".into());
    let dns = configurer(&["10.96.0.10"]).pod_dns(&p);
    assert_eq!(dns.config.servers, ["10.96.0.10", "1.1.1.1"]);
    assert_eq!(dns.config.options, ["ndots:2", "edns0"]);
}

#[test]
fn limits_cut_nameservers_and_search_paths_with_warnings() {
    let mut p = pod(Some("ClusterFirst"), false);
    p.spec.as_mut().unwrap().dns_config = Some(PodDNSConfig {
        nameservers: Some(vec!["1.1.1.1".into(), "8.8.8.8".into(), "9.9.9.9".into()]),
        searches: Some((0..40).map(|i| format!("d{i}.example")).collect()),
        options: None,
    });
    let dns = configurer(&["10.96.0.10"]).pod_dns(&p);
    assert_eq!(dns.config.servers, ["10.96.0.10", "1.1.1.1", "8.8.8.8"]);
    assert_eq!(dns.config.searches.len(), 32);
    let reasons: Vec<&str> = dns.warnings.iter().map(|w| w.0).collect();
    assert_eq!(reasons, ["DNSConfigForming", "DNSConfigForming"]);
}

#[test]
fn resolv_conf_disabled_means_the_local_resolver() {
    let mut c = configurer(&[]);
    c.host = None;
    let dns = c.pod_dns(&pod(Some("Default"), false));
    assert_eq!(dns.config.resolv_conf(), "search .\nnameserver 127.0.0.1\n");
}

#[test]
fn hosts_files_as_upstream_writes_them() {
    let mut p = pod(None, false);
    p.spec.as_mut().unwrap().hostname = Some("db-0".into());
    p.spec.as_mut().unwrap().subdomain = Some("db".into());
    let (hostname, domain) = hostname_and_domain(&p, "cluster.local");
    assert_eq!(hostname, "db-0");
    assert_eq!(domain.as_deref(), Some("db.shop.svc.cluster.local"));
    let aliases = [HostAlias {
        ip: "10.1.2.3".into(),
        hostnames: Some(vec!["foo.local".into(), "bar.local".into()]),
    }];
    assert_eq!(
        managed_hosts(
            &["10.244.0.5".into()],
            &hostname,
            domain.as_deref(),
            &aliases
        ),
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n\
         10.244.0.5\tdb-0.db.shop.svc.cluster.local\tdb-0\n\
         \n\
         # Entries added by HostAliases.\n\
         10.1.2.3\tfoo.local\tbar.local\n"
    );
    assert_eq!(
        managed_hosts(&["10.244.0.5".into()], "web", None, &[])
            .lines()
            .last(),
        Some("10.244.0.5\tweb")
    );
    assert_eq!(
        host_network_hosts("127.0.0.1 localhost\n", &[]),
        "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n"
    );
}
