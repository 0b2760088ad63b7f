//! The environment variables that tell a container where the Services are (upstream's
//! pkg/kubelet/envvars and the kubelet's getServiceEnvVarMap): `<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT`,
//! one `<NAME>_SERVICE_PORT_<PORTNAME>` per named port, and the docker-link style `<NAME>_PORT...` variables.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;

/// The namespace of the master services.
pub const MASTER_NAMESPACE: &str = "default";

/// Services of [`MASTER_NAMESPACE`] whose variables every pod gets, even with `enableServiceLinks: false`
/// (upstream's masterServices): how in-cluster clients find the apiserver.
pub const MASTER_SERVICES: &[&str] = &["kubernetes"];

/// Why a pod's service variables cannot be made (upstream's makeEnvironmentVariables errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceEnvError {
    /// The service cache has not been filled once: the variables would silently lack the master service.
    #[error("services have not yet been read at least once, cannot construct envvars")]
    NotSynced,
    /// The API defaults `enableServiceLinks`; a pod without it did not come through the API.
    #[error("nil pod.spec.enableServiceLinks encountered, cannot construct envvars")]
    NoServiceLinksSetting,
}

/// Whether the Service has a cluster IP (not headless, not unset), upstream's IsServiceIPSet.
pub fn is_service_ip_set(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty() && ip != "None")
}

/// The variables of a pod in `namespace` from `services` (every Service the kubelet knows): those of its
/// own namespace when `enable_service_links`, and always the master services; a Service of the pod's
/// namespace wins over the master service of the same name.
pub fn service_env_map<'a>(
    namespace: &str,
    enable_service_links: bool,
    services: impl IntoIterator<Item = &'a Service>,
) -> BTreeMap<String, String> {
    let mut chosen: BTreeMap<&str, &Service> = BTreeMap::new();
    for service in services {
        if !is_service_ip_set(service) {
            continue;
        }
        let name = service.metadata.name.as_deref().unwrap_or_default();
        let service_namespace = service.metadata.namespace.as_deref().unwrap_or_default();
        if service_namespace == MASTER_NAMESPACE && MASTER_SERVICES.contains(&name) {
            chosen.entry(name).or_insert(service);
        } else if service_namespace == namespace && enable_service_links {
            chosen.insert(name, service);
        }
    }
    let chosen: Vec<&Service> = chosen.into_values().collect();
    from_services(&chosen).into_iter().collect()
}

/// The variables of `services`, in upstream's order (FromServices); Services without a cluster IP are
/// skipped.
pub fn from_services(services: &[&Service]) -> Vec<(String, String)> {
    let mut vars = Vec::new();
    for service in services {
        if !is_service_ip_set(service) {
            continue;
        }
        let prefix = variable_name(service.metadata.name.as_deref().unwrap_or_default());
        let spec = service.spec.clone().unwrap_or_default();
        let cluster_ip = spec.cluster_ip.clone().unwrap_or_default();
        let ports = spec.ports.unwrap_or_default();
        vars.push((format!("{prefix}_SERVICE_HOST"), cluster_ip.clone()));
        // Validation gives every Service with a cluster IP a port; without one there is nothing more.
        let Some(first) = ports.first() else {
            continue;
        };
        let port_name = format!("{prefix}_SERVICE_PORT");
        vars.push((port_name.clone(), first.port.to_string()));
        for port in &ports {
            if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
                vars.push((
                    format!("{port_name}_{}", variable_name(name)),
                    port.port.to_string(),
                ));
            }
        }
        for (i, port) in ports.iter().enumerate() {
            let protocol = port
                .protocol
                .as_deref()
                .filter(|p| !p.is_empty())
                .unwrap_or("TCP");
            let scheme = protocol.to_lowercase();
            let url = format!("{scheme}://{}", join_host_port(&cluster_ip, port.port));
            // Docker special-cases the first port.
            if i == 0 {
                vars.push((format!("{prefix}_PORT"), url.clone()));
            }
            let port_prefix = format!("{prefix}_PORT_{}_{}", port.port, protocol.to_uppercase());
            vars.extend([
                (port_prefix.clone(), url),
                (format!("{port_prefix}_PROTO"), scheme),
                (format!("{port_prefix}_PORT"), port.port.to_string()),
                (format!("{port_prefix}_ADDR"), cluster_ip.clone()),
            ]);
        }
    }
    vars
}

/// A Service or port name as a variable name: upper case, `-` as `_` (upstream's makeEnvVariableName).
fn variable_name(name: &str) -> String {
    name.replace('-', "_").to_uppercase()
}

/// `host:port`, the host in brackets when it holds a colon (an IPv6 address), as Go's net.JoinHostPort.
fn join_host_port(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
#[path = "envvars_tests.rs"]
mod tests;
