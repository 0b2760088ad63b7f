//! A probe's port: a number, or the name of one of the container's ports (upstream's ResolveContainerPort).

use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::ProbeError;

/// The port number `port` means in `container`: a number as is, a name looked up in the container's ports
/// (and, failing that, parsed as a number, as upstream's last-ditch effort).
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, ProbeError> {
    let number = match port {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(name) => {
            let named = container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()));
            match named {
                Some(p) => i64::from(p.container_port),
                None => name
                    .parse::<i64>()
                    .map_err(|_| ProbeError::Port(format!("port {name} not found")))?,
            }
        }
    };
    u16::try_from(number)
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ProbeError::Port(format!("invalid port number: {number}")))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ContainerPort;

    use super::*;

    fn container() -> Container {
        Container {
            name: "c".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..ContainerPort::default()
            }]),
            ..Container::default()
        }
    }

    #[test]
    fn ports_resolve_by_number_and_name() {
        let c = container();
        assert_eq!(resolve_port(&IntOrString::Int(80), &c).ok(), Some(80));
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &c).ok(),
            Some(8080)
        );
        assert_eq!(
            resolve_port(&IntOrString::String("9090".into()), &c).ok(),
            Some(9090)
        );
        let missing = resolve_port(&IntOrString::String("grpc".into()), &c);
        assert_eq!(
            missing.map_err(|e| e.to_string()),
            Err("port grpc not found".to_string())
        );
        assert!(resolve_port(&IntOrString::Int(0), &c).is_err());
        assert!(resolve_port(&IntOrString::Int(70000), &c).is_err());
    }
}
