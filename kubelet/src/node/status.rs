//! The node status as upstream's setters (pkg/kubelet/nodestatus) compute it: a pure function of the node
//! as last seen, the machine, the configuration and the runtime's state. It says which events the change
//! calls for; the caller posts the status and records them.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Instant;

use component_base::quantity::{format_binary, format_decimal_milli, parse_milli, parse_value};
use component_base::version::go_arch;
use k8s_openapi::api::core::v1::{
    ContainerImage, DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints,
    NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::machine::{MachineInfo, huge_page_resource};
use super::runtime_state::RuntimeState;
use crate::config::KubeletConfiguration;

/// Upstream lists at most this many names per image.
const MAX_NAMES_PER_IMAGE: usize = 5;
/// The default hard eviction threshold for memory.available, which upstream subtracts from allocatable.
const EVICTION_HARD_MEMORY: i64 = 100 << 20;
/// The default hard eviction threshold for nodefs.available, a share of the filesystem.
const EVICTION_HARD_NODEFS_PERCENT: i64 = 10;

/// Everything the status is computed from besides the node itself.
pub struct StatusInputs<'a> {
    /// The host name reported as the Hostname address.
    pub hostname: &'a str,
    /// The node's IPs, already chosen.
    pub node_ips: &'a [IpAddr],
    /// The machine.
    pub machine: &'a MachineInfo,
    /// The kubelet's configuration (reservations, max pods, serving port, image count).
    pub config: &'a KubeletConfiguration,
    /// The container runtime and network.
    pub runtime: &'a RuntimeState,
    /// Now, for the runtime's staleness.
    pub now_instant: Instant,
    /// Now, for condition times.
    pub now: Timestamp,
}

/// Sets every field the kubelet owns in `node.status`, keeping conditions it does not own. Returns the
/// reasons of the node events the change calls for (`NodeHasSufficientMemory`, `NodeReady`, ...).
pub fn set_node_status(node: &mut Node, inputs: &StatusInputs) -> Vec<&'static str> {
    let status = node.status.get_or_insert_with(NodeStatus::default);
    status.addresses = Some(addresses(inputs.node_ips, inputs.hostname));
    set_capacity(status, inputs.machine, inputs.config);
    set_node_info(status, inputs);
    status.daemon_endpoints = Some(NodeDaemonEndpoints {
        kubelet_endpoint: Some(DaemonEndpoint {
            port: inputs.config.port,
        }),
    });
    status.images = Some(images(
        &inputs.runtime.images,
        inputs.config.node_status_max_images.unwrap_or(50),
    ));
    let now = Time(inputs.now);
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let mut events = Vec::new();
    for pressure in PRESSURES {
        events.extend(set_pressure_condition(conditions, &pressure, &now));
    }
    let ready_errors = ready_errors(status, inputs);
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    events.extend(set_ready_condition(conditions, ready_errors, &now));
    events
}

/// The InternalIP(s) and the Hostname, as upstream's NodeAddress setter without a cloud provider.
fn addresses(node_ips: &[IpAddr], hostname: &str) -> Vec<NodeAddress> {
    let address = |type_: &str, address: String| NodeAddress {
        type_: type_.to_string(),
        address,
    };
    let mut addresses: Vec<NodeAddress> = node_ips
        .iter()
        .take(2)
        .map(|ip| address("InternalIP", ip.to_string()))
        .collect();
    addresses.push(address("Hostname", hostname.to_string()));
    addresses
}

fn set_capacity(status: &mut NodeStatus, machine: &MachineInfo, config: &KubeletConfiguration) {
    let mut capacity = BTreeMap::new();
    capacity.insert("cpu".to_string(), machine.num_cores * 1000);
    capacity.insert("memory".to_string(), machine.memory_bytes);
    capacity.insert(
        "ephemeral-storage".to_string(),
        machine.ephemeral_storage_bytes,
    );
    let max_pods = i64::from(config.max_pods);
    let pods = match config.pods_per_core {
        0 => max_pods,
        per_core => (machine.num_cores * i64::from(per_core)).min(max_pods),
    };
    capacity.insert("pods".to_string(), pods);
    for (kib, bytes) in &machine.huge_pages {
        capacity.insert(huge_page_resource(*kib), *bytes);
    }
    let reserved = reservations(config, machine);
    let mut allocatable: BTreeMap<String, i64> = capacity
        .iter()
        .map(|(name, value)| {
            let left = value - reserved.get(name).copied().unwrap_or(0);
            (name.clone(), left.max(0))
        })
        .collect();
    let huge_pages: i64 = machine.huge_pages.iter().map(|(_, bytes)| bytes).sum();
    if let Some(memory) = allocatable.get_mut("memory") {
        *memory = (*memory - huge_pages).max(0);
    }
    status.capacity = Some(quantities(&capacity));
    status.allocatable = Some(quantities(&allocatable));
}

/// What upstream's GetNodeAllocatableReservation subtracts: system and kube reservations plus the default
/// hard eviction thresholds. CPU in millicores, the rest in base units.
fn reservations(config: &KubeletConfiguration, machine: &MachineInfo) -> BTreeMap<String, i64> {
    let mut reserved: BTreeMap<String, i64> = BTreeMap::new();
    for (name, quantity) in config.system_reserved.iter().chain(&config.kube_reserved) {
        let value = if name == "cpu" {
            parse_milli(quantity)
        } else {
            parse_value(quantity)
        };
        *reserved.entry(name.clone()).or_default() += value.unwrap_or(0);
    }
    *reserved.entry("memory".to_string()).or_default() += EVICTION_HARD_MEMORY;
    *reserved.entry("ephemeral-storage".to_string()).or_default() +=
        machine.ephemeral_storage_bytes * EVICTION_HARD_NODEFS_PERCENT / 100;
    reserved
}

/// Values as Quantities: CPU and pod counts decimal, bytes binary, as upstream's.
fn quantities(values: &BTreeMap<String, i64>) -> BTreeMap<String, Quantity> {
    values
        .iter()
        .map(|(name, value)| {
            let text = match name.as_str() {
                "cpu" => format_decimal_milli(*value),
                "pods" => format_decimal_milli(value * 1000),
                _ => format_binary(*value),
            };
            (name.clone(), Quantity(text))
        })
        .collect()
}

fn set_node_info(status: &mut NodeStatus, inputs: &StatusInputs) {
    let machine = inputs.machine;
    let version = component_base::version::KUBERNETES_VERSION;
    let runtime_version = inputs.runtime.version.as_deref().unwrap_or("Unknown");
    status.node_info = Some(NodeSystemInfo {
        machine_id: machine.machine_id.clone(),
        system_uuid: machine.system_uuid.clone(),
        boot_id: machine.boot_id.clone(),
        kernel_version: machine.kernel_version.clone(),
        os_image: machine.os_image.clone(),
        container_runtime_version: format!("containerd://{runtime_version}"),
        kubelet_version: format!("v{}", version.trim_start_matches('v')),
        // DisableNodeKubeProxyVersion is locked on in 1.36: the field stays empty.
        kube_proxy_version: String::new(),
        operating_system: "linux".to_string(),
        architecture: go_arch().to_string(),
        ..NodeSystemInfo::default()
    });
}

fn images(images: &[ContainerImage], max_images: i32) -> Vec<ContainerImage> {
    let limit = usize::try_from(max_images).unwrap_or(usize::MAX);
    images
        .iter()
        .take(limit)
        .map(|image| ContainerImage {
            names: image
                .names
                .as_ref()
                .map(|names| names.iter().take(MAX_NAMES_PER_IMAGE).cloned().collect()),
            size_bytes: image.size_bytes,
        })
        .collect()
}

/// One of the pressure conditions; ferrokube has no eviction manager yet, so there is never pressure.
struct Pressure {
    type_: &'static str,
    false_reason: &'static str,
    false_message: &'static str,
}

const PRESSURES: [Pressure; 3] = [
    Pressure {
        type_: "MemoryPressure",
        false_reason: "KubeletHasSufficientMemory",
        false_message: "kubelet has sufficient memory available",
    },
    Pressure {
        type_: "DiskPressure",
        false_reason: "KubeletHasNoDiskPressure",
        false_message: "kubelet has no disk pressure",
    },
    Pressure {
        type_: "PIDPressure",
        false_reason: "KubeletHasSufficientPID",
        false_message: "kubelet has sufficient PID available",
    },
];

/// The event upstream records when a pressure condition becomes False.
fn pressure_event(type_: &str) -> &'static str {
    match type_ {
        "MemoryPressure" => "NodeHasSufficientMemory",
        "DiskPressure" => "NodeHasNoDiskPressure",
        _ => "NodeHasSufficientPID",
    }
}

fn set_pressure_condition(
    conditions: &mut Vec<NodeCondition>,
    pressure: &Pressure,
    now: &Time,
) -> Option<&'static str> {
    let index = match conditions.iter().position(|c| c.type_ == pressure.type_) {
        Some(index) => index,
        None => {
            conditions.push(NodeCondition {
                type_: pressure.type_.to_string(),
                status: "Unknown".to_string(),
                ..NodeCondition::default()
            });
            conditions.len() - 1
        }
    };
    let condition = &mut conditions[index];
    condition.last_heartbeat_time = Some(now.clone());
    if condition.status == "False" {
        return None;
    }
    condition.status = "False".to_string();
    condition.reason = Some(pressure.false_reason.to_string());
    condition.message = Some(pressure.false_message.to_string());
    condition.last_transition_time = Some(now.clone());
    Some(pressure_event(pressure.type_))
}

/// Why the node is not ready: the runtime's and network's errors and missing capacities.
fn ready_errors(status: &NodeStatus, inputs: &StatusInputs) -> Vec<String> {
    let mut errors = inputs.runtime.runtime_errors(inputs.now_instant);
    errors.extend(inputs.runtime.network_errors());
    let capacity = status.capacity.as_ref();
    let missing: Vec<&str> = ["cpu", "memory", "pods", "ephemeral-storage"]
        .into_iter()
        .filter(|name| capacity.is_none_or(|c| !c.contains_key(*name)))
        .collect();
    if !missing.is_empty() {
        errors.push(format!(
            "missing node capacity for resources: {}",
            missing.join(", ")
        ));
    }
    errors
}

fn set_ready_condition(
    conditions: &mut Vec<NodeCondition>,
    errors: Vec<String>,
    now: &Time,
) -> Option<&'static str> {
    let mut ready = NodeCondition {
        type_: "Ready".to_string(),
        status: "True".to_string(),
        reason: Some("KubeletReady".to_string()),
        message: Some("kubelet is posting ready status".to_string()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
    };
    if !errors.is_empty() {
        ready.status = "False".to_string();
        ready.reason = Some("KubeletNotReady".to_string());
        ready.message = Some(aggregate(&errors));
    }
    let Some(existing) = conditions.iter_mut().find(|c| c.type_ == "Ready") else {
        conditions.push(ready);
        return None;
    };
    let event = if existing.status == ready.status {
        ready.last_transition_time = existing.last_transition_time.clone();
        None
    } else if ready.status == "True" {
        Some("NodeReady")
    } else {
        Some("NodeNotReady")
    };
    *existing = ready;
    event
}

/// apimachinery's error aggregate: one message alone, several in brackets.
fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// Whether `after` differs from `before` in anything but heartbeat times (upstream's
/// nodeStatusHasChanged), i.e. whether it must be posted before the report period is up.
pub fn status_changed(before: &NodeStatus, after: &NodeStatus) -> bool {
    let without_heartbeats = |status: &NodeStatus| {
        let mut status = status.clone();
        if let Some(conditions) = status.conditions.as_mut() {
            for condition in conditions.iter_mut() {
                condition.last_heartbeat_time = None;
            }
            conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
        }
        status
    };
    without_heartbeats(before) != without_heartbeats(after)
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
