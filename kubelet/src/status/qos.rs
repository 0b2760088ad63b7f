//! A pod's QoS class, as upstream's GetPodQOS: BestEffort without any request or limit, Guaranteed when every
//! container limits CPU and memory and requests what it limits, Burstable otherwise.

use k8s_openapi::api::core::v1::{Container, PodSpec};

use component_base::quantity::parse_milli;

/// The resources the QoS class looks at.
const QOS_RESOURCES: [&str; 2] = ["cpu", "memory"];

/// `BestEffort`, `Burstable` or `Guaranteed`.
pub fn qos_class(spec: &PodSpec) -> &'static str {
    let containers: Vec<&Container> = crate::pod_spec::all_containers(spec).collect();
    let mut any_set = false;
    let mut guaranteed = true;
    for container in containers {
        let resources = container.resources.clone().unwrap_or_default();
        let requests = resources.requests.unwrap_or_default();
        let limits = resources.limits.unwrap_or_default();
        for name in QOS_RESOURCES {
            let request = requests
                .get(name)
                .and_then(|q| parse_milli(&q.0))
                .filter(|v| *v != 0);
            let limit = limits
                .get(name)
                .and_then(|q| parse_milli(&q.0))
                .filter(|v| *v != 0);
            any_set |= request.is_some() || limit.is_some();
            // A missing request defaults to the limit (the apiserver does this too).
            match (request.or(limit), limit) {
                (Some(request), Some(limit)) if request == limit => {}
                _ => guaranteed = false,
            }
        }
    }
    match (any_set, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::ResourceRequirements;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    use super::*;

    fn container(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        let list = |pairs: &[(&str, &str)]| {
            (!pairs.is_empty()).then(|| {
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                    .collect::<BTreeMap<_, _>>()
            })
        };
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: list(requests),
                limits: list(limits),
                ..ResourceRequirements::default()
            }),
            ..Container::default()
        }
    }

    fn pod(containers: Vec<Container>) -> PodSpec {
        PodSpec {
            containers,
            ..PodSpec::default()
        }
    }

    #[test]
    fn classes_are_upstreams() {
        assert_eq!(qos_class(&pod(vec![container(&[], &[])])), "BestEffort");
        let both = [("cpu", "1"), ("memory", "1Gi")];
        assert_eq!(qos_class(&pod(vec![container(&both, &both)])), "Guaranteed");
        assert_eq!(qos_class(&pod(vec![container(&[], &both)])), "Guaranteed");
        assert_eq!(
            qos_class(&pod(vec![container(&[("cpu", "100m")], &[])])),
            "Burstable"
        );
        assert_eq!(
            qos_class(&pod(vec![container(&both, &both), container(&[], &[])])),
            "Burstable"
        );
    }
}
