use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
use kube::api::ObjectMeta;

use super::*;

fn service(name: &str, namespace: &str, cluster_ip: &str, ports: &[(&str, i32, &str)]) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some(cluster_ip.into()),
            ports: Some(
                ports
                    .iter()
                    .map(|(name, port, protocol)| ServicePort {
                        name: (!name.is_empty()).then(|| name.to_string()),
                        port: *port,
                        protocol: Some(protocol.to_string()),
                        ..ServicePort::default()
                    })
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Upstream's TestFromServices.
#[test]
fn from_services_names_and_formats_as_upstream() {
    let services = [
        service("foo-bar", "", "1.2.3.4", &[("", 8080, "TCP")]),
        service(
            "abc-123",
            "",
            "5.6.7.8",
            &[("u-d-p", 8081, "UDP"), ("t-c-p", 8081, "TCP")],
        ),
        service(
            "q-u-u-x",
            "",
            "9.8.7.6",
            &[("", 8082, "TCP"), ("8083", 8083, "TCP")],
        ),
        service("svrc-clusterip-none", "", "None", &[("", 8082, "TCP")]),
        service("svrc-clusterip-empty", "", "", &[("", 8082, "TCP")]),
        service(
            "super-ipv6",
            "",
            "2001:DB8::",
            &[("u-d-p", 8084, "UDP"), ("t-c-p", 8084, "TCP")],
        ),
        service("sctp-1", "", "1.2.3.4", &[("", 777, "SCTP")]),
    ];
    let refs: Vec<&Service> = services.iter().collect();
    let expected = pairs(&[
        ("FOO_BAR_SERVICE_HOST", "1.2.3.4"),
        ("FOO_BAR_SERVICE_PORT", "8080"),
        ("FOO_BAR_PORT", "tcp://1.2.3.4:8080"),
        ("FOO_BAR_PORT_8080_TCP", "tcp://1.2.3.4:8080"),
        ("FOO_BAR_PORT_8080_TCP_PROTO", "tcp"),
        ("FOO_BAR_PORT_8080_TCP_PORT", "8080"),
        ("FOO_BAR_PORT_8080_TCP_ADDR", "1.2.3.4"),
        ("ABC_123_SERVICE_HOST", "5.6.7.8"),
        ("ABC_123_SERVICE_PORT", "8081"),
        ("ABC_123_SERVICE_PORT_U_D_P", "8081"),
        ("ABC_123_SERVICE_PORT_T_C_P", "8081"),
        ("ABC_123_PORT", "udp://5.6.7.8:8081"),
        ("ABC_123_PORT_8081_UDP", "udp://5.6.7.8:8081"),
        ("ABC_123_PORT_8081_UDP_PROTO", "udp"),
        ("ABC_123_PORT_8081_UDP_PORT", "8081"),
        ("ABC_123_PORT_8081_UDP_ADDR", "5.6.7.8"),
        ("ABC_123_PORT_8081_TCP", "tcp://5.6.7.8:8081"),
        ("ABC_123_PORT_8081_TCP_PROTO", "tcp"),
        ("ABC_123_PORT_8081_TCP_PORT", "8081"),
        ("ABC_123_PORT_8081_TCP_ADDR", "5.6.7.8"),
        ("Q_U_U_X_SERVICE_HOST", "9.8.7.6"),
        ("Q_U_U_X_SERVICE_PORT", "8082"),
        ("Q_U_U_X_SERVICE_PORT_8083", "8083"),
        ("Q_U_U_X_PORT", "tcp://9.8.7.6:8082"),
        ("Q_U_U_X_PORT_8082_TCP", "tcp://9.8.7.6:8082"),
        ("Q_U_U_X_PORT_8082_TCP_PROTO", "tcp"),
        ("Q_U_U_X_PORT_8082_TCP_PORT", "8082"),
        ("Q_U_U_X_PORT_8082_TCP_ADDR", "9.8.7.6"),
        ("Q_U_U_X_PORT_8083_TCP", "tcp://9.8.7.6:8083"),
        ("Q_U_U_X_PORT_8083_TCP_PROTO", "tcp"),
        ("Q_U_U_X_PORT_8083_TCP_PORT", "8083"),
        ("Q_U_U_X_PORT_8083_TCP_ADDR", "9.8.7.6"),
        ("SUPER_IPV6_SERVICE_HOST", "2001:DB8::"),
        ("SUPER_IPV6_SERVICE_PORT", "8084"),
        ("SUPER_IPV6_SERVICE_PORT_U_D_P", "8084"),
        ("SUPER_IPV6_SERVICE_PORT_T_C_P", "8084"),
        ("SUPER_IPV6_PORT", "udp://[2001:DB8::]:8084"),
        ("SUPER_IPV6_PORT_8084_UDP", "udp://[2001:DB8::]:8084"),
        ("SUPER_IPV6_PORT_8084_UDP_PROTO", "udp"),
        ("SUPER_IPV6_PORT_8084_UDP_PORT", "8084"),
        ("SUPER_IPV6_PORT_8084_UDP_ADDR", "2001:DB8::"),
        ("SUPER_IPV6_PORT_8084_TCP", "tcp://[2001:DB8::]:8084"),
        ("SUPER_IPV6_PORT_8084_TCP_PROTO", "tcp"),
        ("SUPER_IPV6_PORT_8084_TCP_PORT", "8084"),
        ("SUPER_IPV6_PORT_8084_TCP_ADDR", "2001:DB8::"),
        ("SCTP_1_SERVICE_HOST", "1.2.3.4"),
        ("SCTP_1_SERVICE_PORT", "777"),
        ("SCTP_1_PORT", "sctp://1.2.3.4:777"),
        ("SCTP_1_PORT_777_SCTP", "sctp://1.2.3.4:777"),
        ("SCTP_1_PORT_777_SCTP_PROTO", "sctp"),
        ("SCTP_1_PORT_777_SCTP_PORT", "777"),
        ("SCTP_1_PORT_777_SCTP_ADDR", "1.2.3.4"),
    ]);
    assert_eq!(from_services(&refs), expected);
}

/// The services of upstream's TestMakeEnvironmentVariables.
fn cluster_services() -> Vec<Service> {
    vec![
        service("kubernetes", "default", "1.2.3.1", &[("", 8081, "TCP")]),
        service("test", "test1", "1.2.3.3", &[("", 8083, "TCP")]),
        service("kubernetes", "test2", "1.2.3.4", &[("", 8084, "TCP")]),
        service("test", "test2", "1.2.3.5", &[("", 8085, "TCP")]),
        service("test", "test2", "None", &[("", 8085, "TCP")]),
        service("test", "test2", "", &[("", 8085, "TCP")]),
        service("not-special", "default", "1.2.3.8", &[("", 8088, "TCP")]),
        service("not-special", "default", "None", &[("", 8088, "TCP")]),
        service("not-special", "default", "", &[("", 8088, "TCP")]),
    ]
}

/// The seven variables of service `prefix` at `ip:port`.
fn service_vars(prefix: &str, ip: &str, port: u16) -> Vec<(String, String)> {
    let url = format!("tcp://{ip}:{port}");
    vec![
        (format!("{prefix}_SERVICE_HOST"), ip.to_string()),
        (format!("{prefix}_SERVICE_PORT"), port.to_string()),
        (format!("{prefix}_PORT"), url.clone()),
        (format!("{prefix}_PORT_{port}_TCP"), url),
        (format!("{prefix}_PORT_{port}_TCP_PROTO"), "tcp".to_string()),
        (format!("{prefix}_PORT_{port}_TCP_PORT"), port.to_string()),
        (format!("{prefix}_PORT_{port}_TCP_ADDR"), ip.to_string()),
    ]
}

fn map(groups: &[&[(String, String)]]) -> BTreeMap<String, String> {
    groups.iter().copied().flatten().cloned().collect()
}

#[test]
fn the_master_service_is_always_there_and_the_namespaces_with_service_links() {
    let services = cluster_services();
    let kubernetes = service_vars("KUBERNETES", "1.2.3.1", 8081);
    // Service links off: only the master service.
    assert_eq!(
        service_env_map("test1", false, &services),
        map(&[&kubernetes])
    );
    // On: the namespace's services with a cluster IP too.
    assert_eq!(
        service_env_map("test1", true, &services),
        map(&[&service_vars("TEST", "1.2.3.3", 8083), &kubernetes])
    );
    // A pod in the master service's namespace, without and with service links.
    assert_eq!(
        service_env_map("default", false, &services),
        map(&[&kubernetes])
    );
    assert_eq!(
        service_env_map("default", true, &services),
        map(&[&service_vars("NOT_SPECIAL", "1.2.3.8", 8088), &kubernetes])
    );
}

#[test]
fn a_namespace_service_named_like_the_master_service_wins_only_with_service_links() {
    let services = cluster_services();
    assert_eq!(
        service_env_map("test2", false, &services),
        map(&[&service_vars("KUBERNETES", "1.2.3.1", 8081)])
    );
    assert_eq!(
        service_env_map("test2", true, &services),
        map(&[
            &service_vars("TEST", "1.2.3.5", 8085),
            &service_vars("KUBERNETES", "1.2.3.4", 8084)
        ])
    );
    // Whatever order the cache lists them in.
    let reversed: Vec<Service> = services.into_iter().rev().collect();
    assert_eq!(
        service_env_map("test2", true, &reversed)["KUBERNETES_SERVICE_HOST"],
        "1.2.3.4"
    );
}

#[test]
fn headless_and_unset_cluster_ips_have_no_variables() {
    assert!(!is_service_ip_set(&service("h", "x", "None", &[])));
    assert!(!is_service_ip_set(&service("e", "x", "", &[])));
    assert!(!is_service_ip_set(&Service::default()));
    assert!(is_service_ip_set(&service("s", "x", "10.0.0.1", &[])));
    // A cluster IP without ports (validation forbids it) gives the host alone rather than failing.
    let portless = service("portless", "x", "10.0.0.1", &[]);
    assert_eq!(
        from_services(&[&portless]),
        pairs(&[("PORTLESS_SERVICE_HOST", "10.0.0.1")])
    );
}
