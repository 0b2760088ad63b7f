//! From pods and Services to endpoints (upstream staging k8s.io/endpointslice utils.go and util/): which
//! pods count, an endpoint's addresses and conditions, the ports a pod resolves a Service's ports to, and
//! the metadata of a new EndpointSlice.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Node, ObjectReference, Service, ServicePort};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::pod::Pod;

/// The label naming the Service a slice belongs to.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// The label naming who manages a slice.
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// The value of [`LABEL_MANAGED_BY`] on the slices this controller manages.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// The label marking slices of headless Services.
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
/// The node label giving its zone.
pub const LABEL_TOPOLOGY_ZONE: &str = "topology.kubernetes.io/zone";
/// The annotation with the time of the change that caused the last write.
pub const LAST_CHANGE_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";
/// The IPv4 address type.
pub const IPV4: &str = "IPv4";
/// The IPv6 address type.
pub const IPV6: &str = "IPv6";

/// Whether the pod's Ready condition is True.
pub fn is_pod_ready(pod: &Pod) -> bool {
    pod_ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// The pod's Ready condition.
pub fn pod_ready_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    let conditions = pod.status.as_ref()?.conditions.as_ref()?;
    conditions.iter().find(|c| c.type_ == "Ready")
}

/// Whether `pod` belongs in the Service's endpoints (upstream's ShouldPodBeInEndpoints with terminating
/// pods included): not terminal, and with an IP.
pub fn should_pod_be_in_endpoints(pod: &Pod) -> bool {
    let Some(status) = &pod.status else {
        return false;
    };
    if matches!(status.phase.as_deref(), Some("Failed" | "Succeeded")) {
        return false;
    }
    status.pod_ip.as_deref().is_some_and(|ip| !ip.is_empty())
        || status.pod_ips.as_ref().is_some_and(|ips| !ips.is_empty())
}

/// Whether an endpoint carries the pod's hostname: it has one and its subdomain is the Service.
fn should_set_hostname(pod: &Pod, service: &Service) -> bool {
    let spec = pod.spec.as_ref();
    let hostname = spec.and_then(|s| s.hostname.as_deref()).unwrap_or_default();
    let subdomain = spec
        .and_then(|s| s.subdomain.as_deref())
        .unwrap_or_default();
    !hostname.is_empty()
        && subdomain == service.metadata.name.as_deref().unwrap_or_default()
        && pod.metadata.namespace == service.metadata.namespace
}

/// The address types the Service's slices use: from its ipFamilies, else guessed from its clusterIP
/// (headless: both), as upstream does for objects from old apiservers.
pub fn address_types(service: &Service) -> Vec<&'static str> {
    let spec = service.spec.as_ref();
    let mut types = Vec::new();
    for family in spec
        .and_then(|s| s.ip_families.as_ref())
        .into_iter()
        .flatten()
    {
        let address_type = match family.as_str() {
            "IPv4" => IPV4,
            "IPv6" => IPV6,
            _ => continue,
        };
        if !types.contains(&address_type) {
            types.push(address_type);
        }
    }
    if !types.is_empty() {
        return types;
    }
    let cluster_ip = spec
        .and_then(|s| s.cluster_ip.as_deref())
        .unwrap_or_default();
    if !cluster_ip.is_empty() && cluster_ip != "None" {
        let v6 = cluster_ip.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv6());
        return vec![if v6 { IPV6 } else { IPV4 }];
    }
    vec![IPV4, IPV6]
}

/// The pod's addresses of `address_type`, normalised.
fn endpoint_addresses(pod: &Pod, address_type: &str) -> Vec<String> {
    let ips = pod.status.as_ref().and_then(|s| s.pod_ips.as_ref());
    ips.into_iter()
        .flatten()
        .filter_map(|ip| ip.ip.parse::<IpAddr>().ok())
        .filter(|ip| ip.is_ipv6() == (address_type == IPV6))
        .map(|ip| ip.to_string())
        .collect()
}

/// The endpoint for `pod`: addresses of `address_type`, conditions, node, zone, target and hostname.
pub fn pod_to_endpoint(
    pod: &Pod,
    node: Option<&Node>,
    service: &Service,
    address_type: &str,
) -> Endpoint {
    let serving = is_pod_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let publish_not_ready = service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    // For compatibility, a terminating pod is never ready unless the Service publishes unready addresses.
    let ready = publish_not_ready || (serving && !terminating);
    let node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    let zone = node
        .and_then(|n| n.metadata.labels.as_ref())
        .and_then(|labels| labels.get(LABEL_TOPOLOGY_ZONE))
        .filter(|zone| !zone.is_empty())
        .cloned();
    let hostname = if should_set_hostname(pod, service) {
        pod.spec.as_ref().and_then(|s| s.hostname.clone())
    } else {
        None
    };
    Endpoint {
        addresses: endpoint_addresses(pod, address_type),
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".to_string()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..ObjectReference::default()
        }),
        node_name: node_name.filter(|n| !n.is_empty()),
        zone,
        hostname,
        ..Endpoint::default()
    }
}

/// The container port `service_port` targets in `pod` (upstream's FindPort): a number is used as is; a
/// name is looked up among the ports of the pod's containers and sidecars with the same protocol.
pub fn find_port(pod: &Pod, service_port: &ServicePort) -> Option<i32> {
    let protocol = service_port.protocol.as_deref().unwrap_or("TCP");
    match &service_port.target_port {
        Some(IntOrString::Int(port)) => Some(*port),
        // The apiserver defaults targetPort to the port; a missing one means the same.
        None => Some(service_port.port),
        Some(IntOrString::String(name)) => {
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

/// The Service's ports as `pod` resolves them; ports the pod cannot resolve are left out, and a headless
/// Service without ports has none.
pub fn endpoint_ports(service: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let spec = service.spec.as_ref();
    let ports = spec.and_then(|s| s.ports.as_deref()).unwrap_or_default();
    let cluster_ip = spec.and_then(|s| s.cluster_ip.as_deref());
    if ports.is_empty() && cluster_ip == Some("None") {
        return Vec::new();
    }
    ports
        .iter()
        .filter_map(|service_port| {
            let port = find_port(pod, service_port)?;
            Some(EndpointPort {
                name: Some(service_port.name.clone().unwrap_or_default()),
                port: Some(port),
                protocol: Some(
                    service_port
                        .protocol
                        .clone()
                        .unwrap_or_else(|| "TCP".to_string()),
                ),
                app_protocol: service_port.app_protocol.clone(),
            })
        })
        .collect()
}

/// A key equal for equal sets of ports, whatever their order (upstream's PortMapKey).
pub type PortKey = Vec<(String, i32, String, Option<String>)>;

/// The [`PortKey`] of `ports`.
pub fn port_key(ports: &[EndpointPort]) -> PortKey {
    let mut key: PortKey = ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or_default(),
                p.protocol.clone().unwrap_or_default(),
                p.app_protocol.clone(),
            )
        })
        .collect();
    key.sort();
    key
}

/// What identifies an endpoint across syncs (upstream's endpoint hash): its addresses, hostname and target;
/// everything else may change in place.
pub type EndpointKey = (Vec<String>, String, String, String);

/// The [`EndpointKey`] of `endpoint`.
pub fn endpoint_key(endpoint: &Endpoint) -> EndpointKey {
    let mut addresses = endpoint.addresses.clone();
    addresses.sort();
    let target = endpoint.target_ref.as_ref();
    (
        addresses,
        endpoint.hostname.clone().unwrap_or_default(),
        target.and_then(|t| t.namespace.clone()).unwrap_or_default(),
        target.and_then(|t| t.name.clone()).unwrap_or_default(),
    )
}

/// Whether two endpoints with the same key are equal in what the key leaves out: node, zone, conditions
/// and target (its resourceVersion aside).
pub fn endpoints_equal_beyond_key(a: &Endpoint, b: &Endpoint) -> bool {
    let conditions = |e: &Endpoint| {
        let c = e.conditions.clone().unwrap_or_default();
        (c.ready, c.serving, c.terminating)
    };
    let target = |e: &Endpoint| {
        e.target_ref.clone().map(|mut t| {
            t.resource_version = None;
            t
        })
    };
    a.node_name == b.node_name
        && a.zone == b.zone
        && conditions(a) == conditions(b)
        && target(a) == target(b)
}

/// Whether `slice` is owned by `service` (its UID, kind Service, apiVersion v1).
pub fn owned_by(slice: &EndpointSlice, service: &Service) -> bool {
    let owners = slice.metadata.owner_references.iter().flatten();
    owners.into_iter().any(|o| {
        Some(&o.uid) == service.metadata.uid.as_ref()
            && o.kind == "Service"
            && o.api_version == "v1"
    })
}

/// Labels a slice of `service` must carry: the Service's own labels (reserved ones aside), the headless
/// marker for Services without a cluster IP, the service name and managed-by; and whether the slice's
/// non-reserved labels differ from the Service's.
pub fn slice_labels(slice: &EndpointSlice, service: &Service) -> (BTreeMap<String, String>, bool) {
    let reserved =
        |key: &str| key == LABEL_SERVICE_NAME || key == LABEL_MANAGED_BY || key == LABEL_HEADLESS;
    let unreserved = |labels: Option<&BTreeMap<String, String>>| -> BTreeMap<String, String> {
        labels
            .into_iter()
            .flatten()
            .filter(|(k, _)| !reserved(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let current = unreserved(slice.metadata.labels.as_ref());
    let mut wanted = unreserved(service.metadata.labels.as_ref());
    let changed = current != wanted;
    let cluster_ip = service.spec.as_ref().and_then(|s| s.cluster_ip.as_deref());
    if matches!(cluster_ip, None | Some("" | "None")) {
        wanted.insert(LABEL_HEADLESS.to_string(), String::new());
    }
    wanted.insert(
        LABEL_SERVICE_NAME.to_string(),
        service.metadata.name.clone().unwrap_or_default(),
    );
    wanted.insert(LABEL_MANAGED_BY.to_string(), CONTROLLER_NAME.to_string());
    (wanted, changed)
}

/// The generateName of the Service's slices: `<service>-`, or the bare name when the dash would make it
/// too long.
fn slice_prefix(service_name: &str) -> String {
    // A generated name adds 5 characters to at most 58 of prefix (upstream's NameIsDNSSubdomain(prefix,
    // true) check on the 253 limit, which a valid Service name, at most 63, always meets).
    let prefix = format!("{service_name}-");
    if prefix.len() > 253 {
        service_name.to_string()
    } else {
        prefix
    }
}

/// A new, empty slice of `service` with `ports` and `address_type`, owned by the Service.
pub fn new_slice(service: &Service, ports: Vec<EndpointPort>, address_type: &str) -> EndpointSlice {
    let name = service.metadata.name.clone().unwrap_or_default();
    let owner = OwnerReference {
        api_version: "v1".to_string(),
        kind: "Service".to_string(),
        name: name.clone(),
        uid: service.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    };
    let mut slice = EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(slice_prefix(&name)),
            namespace: service.metadata.namespace.clone(),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        address_type: address_type.to_string(),
        endpoints: Some(Vec::new()),
        ports: Some(ports),
    };
    slice.metadata.labels = Some(slice_labels(&slice, service).0);
    slice
}
