//! The EndpointSlice reconciler (upstream staging k8s.io/endpointslice reconciler.go), as a pure function:
//! from a Service, the pods its selector matches, the nodes and the Service's current slices, the slices to
//! create, update and delete. Endpoints stay in the slice they are in when they can (updated in place), new
//! ones fill slices already being written before unchanged ones, and a slice is created only when nothing
//! else has room.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use k8s_openapi::jiff::Timestamp;

use super::endpoints::{
    CONTROLLER_NAME, EndpointKey, LABEL_MANAGED_BY, LABEL_SERVICE_NAME, LAST_CHANGE_TRIGGER_TIME,
    PortKey, address_types, endpoint_key, endpoint_ports, endpoints_equal_beyond_key, new_slice,
    owned_by, pod_to_endpoint, port_key, should_pod_be_in_endpoints, slice_labels,
};
use crate::pod::Pod;

/// What the reconciler decided for one Service.
#[derive(Debug, Default)]
pub struct Changes {
    /// New slices (generateName set, no name).
    pub create: Vec<EndpointSlice>,
    /// Slices to write over existing ones (name set; resourceVersion kept when it was an existing slice).
    pub update: Vec<EndpointSlice>,
    /// Slices to delete.
    pub delete: Vec<EndpointSlice>,
    /// Pods left out because their node is unknown: the sync must be retried.
    pub errors: Vec<String>,
}

/// Everything the reconciler reads.
pub struct Input<'a, N: Fn(&str) -> Option<Arc<Node>>> {
    /// The Service (with a selector).
    pub service: &'a Service,
    /// The pods its selector matches.
    pub pods: &'a [Arc<Pod>],
    /// Node lookup by name.
    pub node: N,
    /// The Service's slices managed by this controller (see [`managed_slices`]).
    pub existing: &'a [Arc<EndpointSlice>],
    /// `--max-endpoints-per-slice`.
    pub max_endpoints_per_slice: usize,
    /// The endpoints.kubernetes.io/last-change-trigger-time to write; `None` removes it.
    pub trigger_time: Option<Timestamp>,
}

/// The slices among `slices` that this controller manages for `service` and that are not being deleted
/// (upstream drops those so a slow deletion cannot wedge the Service).
pub fn managed_slices(service: &Service, slices: &[Arc<EndpointSlice>]) -> Vec<Arc<EndpointSlice>> {
    let name = service.metadata.name.as_deref();
    slices
        .iter()
        .filter(|slice| {
            let labels = slice.metadata.labels.as_ref();
            let label = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
            slice.metadata.namespace == service.metadata.namespace
                && label(LABEL_SERVICE_NAME) == name
                && label(LABEL_MANAGED_BY) == Some(CONTROLLER_NAME)
                && slice.metadata.deletion_timestamp.is_none()
        })
        .cloned()
        .collect()
}

/// Computes the changes that bring the Service's slices to what its pods want.
pub fn reconcile<N: Fn(&str) -> Option<Arc<Node>>>(input: &Input<'_, N>) -> Changes {
    let types = address_types(input.service);
    let mut by_type: BTreeMap<&str, Vec<&EndpointSlice>> = BTreeMap::new();
    let mut unsupported = Vec::new();
    for slice in input.existing {
        match types.iter().find(|t| **t == slice.address_type) {
            Some(address_type) => by_type.entry(address_type).or_default().push(slice),
            None => unsupported.push(EndpointSlice::clone(slice)),
        }
    }
    let mut changes = Changes::default();
    for address_type in types {
        let existing = by_type.remove(address_type).unwrap_or_default();
        let by_type = reconcile_address_type(input, &existing, address_type);
        changes.create.extend(by_type.create);
        changes.update.extend(by_type.update);
        changes.delete.extend(by_type.delete);
        changes.errors.extend(by_type.errors);
    }
    changes.delete.extend(unsupported);
    changes
}

/// The endpoints wanted for one address type, grouped by the ports their pods resolve to.
struct Desired {
    ports: BTreeMap<PortKey, Vec<EndpointPort>>,
    endpoints: BTreeMap<PortKey, BTreeMap<EndpointKey, Endpoint>>,
    errors: Vec<String>,
}

fn desired_endpoints<N: Fn(&str) -> Option<Arc<Node>>>(
    input: &Input<'_, N>,
    address_type: &str,
) -> Desired {
    let service = input.service;
    let publish_not_ready = service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let mut desired = Desired {
        ports: BTreeMap::new(),
        endpoints: BTreeMap::new(),
        errors: Vec::new(),
    };
    for pod in input.pods {
        if !should_pod_be_in_endpoints(pod) {
            continue;
        }
        let ports = endpoint_ports(service, pod);
        let key = port_key(&ports);
        desired.ports.entry(key.clone()).or_insert(ports);
        let group = desired.endpoints.entry(key).or_default();
        let node_name = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        let node = (input.node)(node_name.unwrap_or_default());
        // A pod on an unknown node is left out (and the sync retried) so a dangling node reference cannot
        // wedge the slice; a Service publishing unready addresses asks for it regardless.
        if node.is_none() && !publish_not_ready {
            desired.errors.push(format!(
                "skipping Pod {} for Service {}/{}: Node {} Not Found",
                pod.metadata.name.as_deref().unwrap_or_default(),
                service.metadata.namespace.as_deref().unwrap_or_default(),
                service.metadata.name.as_deref().unwrap_or_default(),
                node_name.unwrap_or_default(),
            ));
            continue;
        }
        let endpoint = pod_to_endpoint(pod, node.as_deref(), service, address_type);
        if !endpoint.addresses.is_empty() {
            group.insert(endpoint_key(&endpoint), endpoint);
        }
    }
    desired
}

fn reconcile_address_type<N: Fn(&str) -> Option<Arc<Node>>>(
    input: &Input<'_, N>,
    existing: &[&EndpointSlice],
    address_type: &str,
) -> Changes {
    let service = input.service;
    let mut changes = Changes::default();
    let mut existing_by_ports: BTreeMap<PortKey, Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in existing {
        if owned_by(slice, service) {
            let key = port_key(slice.ports.as_deref().unwrap_or_default());
            existing_by_ports.entry(key).or_default().push(slice);
        } else {
            // A slice of an earlier Service with the same name.
            changes.delete.push((*slice).clone());
        }
    }
    let Desired {
        ports,
        endpoints,
        errors,
    } = desired_endpoints(input, address_type);
    changes.errors = errors;
    for (key, desired) in endpoints {
        let group_ports = ports.get(&key).cloned().unwrap_or_default();
        let slices = existing_by_ports.remove(&key).unwrap_or_default();
        let by_ports = reconcile_port_mapping(input, &slices, desired, group_ports, address_type);
        changes.create.extend(by_ports.create);
        changes.update.extend(by_ports.update);
        changes.delete.extend(by_ports.delete);
    }
    // Port mappings no pod resolves to any more.
    for slices in existing_by_ports.into_values() {
        changes
            .delete
            .extend(slices.into_iter().map(|s| (*s).clone()));
    }
    // A Service with no endpoints still gets one empty slice, so consumers can tell it is handled.
    if existing.len() == changes.delete.len() && changes.create.is_empty() {
        let placeholder = new_slice(service, Vec::new(), address_type);
        if changes.delete.len() == 1 && placeholder_equal(&changes.delete[0], &placeholder) {
            changes.delete.clear();
        } else {
            changes.create.push(placeholder);
        }
    }
    finalize(input, &mut changes, address_type);
    changes
}

/// Whether `slice` is already the placeholder: upstream compares namespace, labels, address type, ports
/// and endpoints only.
fn placeholder_equal(slice: &EndpointSlice, placeholder: &EndpointSlice) -> bool {
    let labels = |s: &EndpointSlice| s.metadata.labels.clone().unwrap_or_default();
    slice.metadata.namespace == placeholder.metadata.namespace
        && labels(slice) == labels(placeholder)
        && slice.address_type == placeholder.address_type
        && slice.endpoints.as_deref().unwrap_or_default().is_empty()
        && slice.ports.as_deref().unwrap_or_default().is_empty()
}

/// Turns creates into updates of slices that would be deleted (fewer writes, stable names), drops creates
/// for a Service being deleted (the garbage collector is removing its slices), and stamps the trigger time.
fn finalize<N: Fn(&str) -> Option<Arc<Node>>>(
    input: &Input<'_, N>,
    changes: &mut Changes,
    address_type: &str,
) {
    let mut index = 0;
    while index < changes.delete.len() && !changes.create.is_empty() {
        let reusable = &changes.delete[index];
        if reusable.address_type == address_type && owned_by(reusable, input.service) {
            let reused = changes.delete.remove(index);
            if let Some(mut slice) = changes.create.pop() {
                slice.metadata.name = reused.metadata.name;
                changes.update.push(slice);
            }
        } else {
            index += 1;
        }
    }
    if input.service.metadata.deletion_timestamp.is_some() {
        changes.create.clear();
    }
    for slice in changes.create.iter_mut().chain(changes.update.iter_mut()) {
        let annotations = slice.metadata.annotations.get_or_insert_with(BTreeMap::new);
        match input.trigger_time {
            Some(time) => {
                annotations.insert(LAST_CHANGE_TRIGGER_TIME.to_string(), time.to_string());
            }
            None => {
                annotations.remove(LAST_CHANGE_TRIGGER_TIME);
            }
        }
        if annotations.is_empty() {
            slice.metadata.annotations = None;
        }
    }
}

/// The slices of one port mapping: keep endpoints where they are, update those that changed, drop those no
/// longer wanted, then place the new ones.
fn reconcile_port_mapping<N: Fn(&str) -> Option<Arc<Node>>>(
    input: &Input<'_, N>,
    existing: &[&EndpointSlice],
    mut desired: BTreeMap<EndpointKey, Endpoint>,
    ports: Vec<EndpointPort>,
    address_type: &str,
) -> Changes {
    let max = input.max_endpoints_per_slice.max(1);
    let mut by_name: BTreeMap<String, EndpointSlice> = BTreeMap::new();
    let mut unchanged = BTreeSet::new();
    let mut to_update = BTreeSet::new();
    let mut to_delete = BTreeSet::new();

    // 1. Keep wanted endpoints in their slices, taking their current form; drop the unwanted.
    for slice in existing {
        let name = slice.metadata.name.clone().unwrap_or_default();
        let current = slice.endpoints.as_deref().unwrap_or_default();
        let mut kept = Vec::new();
        let mut endpoint_changed = false;
        for endpoint in current {
            if let Some(wanted) = desired.remove(&endpoint_key(endpoint)) {
                endpoint_changed |= !endpoints_equal_beyond_key(&wanted, endpoint);
                kept.push(wanted);
            }
        }
        let (labels, labels_changed) = slice_labels(slice, input.service);
        let mut copy = (*slice).clone();
        if endpoint_changed || kept.len() != current.len() {
            if kept.is_empty() {
                to_delete.insert(name.clone());
            } else {
                copy.endpoints = Some(kept);
                copy.metadata.labels = Some(labels);
                to_update.insert(name.clone());
            }
        } else if labels_changed {
            copy.metadata.labels = Some(labels);
            to_update.insert(name.clone());
        } else {
            unchanged.insert(name.clone());
        }
        by_name.insert(name, copy);
    }

    // 2. Fill the slices being written anyway, fullest first.
    if !desired.is_empty() && !to_update.is_empty() {
        let mut order: Vec<(usize, String)> = to_update
            .iter()
            .map(|name| (by_name.get(name).map_or(0, endpoint_count), name.clone()))
            .collect();
        order.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        for (_, name) in order {
            if let Some(slice) = by_name.get_mut(&name) {
                fill(slice, &mut desired, max);
            }
        }
    }

    // 3. Put what is left in the unchanged slice it fits best, else in new slices.
    let mut create = Vec::new();
    while !desired.is_empty() {
        let target = if desired.len() < max {
            slice_to_fill(&unchanged, &by_name, desired.len(), max)
        } else {
            None
        };
        match target {
            Some(name) => {
                if let Some(slice) = by_name.get_mut(&name) {
                    fill(slice, &mut desired, max);
                }
                unchanged.remove(&name);
                to_update.insert(name);
            }
            None => {
                let mut slice = new_slice(input.service, ports.clone(), address_type);
                fill(&mut slice, &mut desired, max);
                create.push(slice);
            }
        }
    }

    let take = |names: &BTreeSet<String>, by_name: &mut BTreeMap<String, EndpointSlice>| {
        names
            .iter()
            .filter_map(|n| by_name.remove(n))
            .collect::<Vec<_>>()
    };
    Changes {
        update: take(&to_update, &mut by_name),
        delete: take(&to_delete, &mut by_name),
        create,
        errors: Vec::new(),
    }
}

fn endpoint_count(slice: &EndpointSlice) -> usize {
    slice.endpoints.as_ref().map_or(0, Vec::len)
}

/// Moves desired endpoints into `slice` until it holds `max`.
fn fill(slice: &mut EndpointSlice, desired: &mut BTreeMap<EndpointKey, Endpoint>, max: usize) {
    let endpoints = slice.endpoints.get_or_insert_with(Vec::new);
    while endpoints.len() < max {
        let Some((_, endpoint)) = desired.pop_first() else {
            break;
        };
        endpoints.push(endpoint);
    }
}

/// The unchanged slice that `count` more endpoints would bring closest to full without overflowing it.
fn slice_to_fill(
    unchanged: &BTreeSet<String>,
    by_name: &BTreeMap<String, EndpointSlice>,
    count: usize,
    max: usize,
) -> Option<String> {
    let mut best: Option<(usize, &String)> = None;
    for name in unchanged {
        let filled = count + by_name.get(name).map_or(0, endpoint_count);
        if filled > max {
            continue;
        }
        let room = max - filled;
        if best.is_none_or(|(best_room, _)| room < best_room) {
            best = Some((room, name));
            if room == 0 {
                break;
            }
        }
    }
    best.map(|(_, name)| name.clone())
}
