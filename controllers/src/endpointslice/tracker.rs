//! What the EndpointSlice controller remembers between syncs (upstream k8s.io/endpointslice/util): the
//! generations of the slices it wrote, so a cache that has not caught up is noticed; the trigger times it
//! has seen; and which Services a pod change concerns.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::jiff::Timestamp;

use super::endpoints::{LABEL_SERVICE_NAME, is_pod_ready, pod_ready_condition};
use crate::pod::Pod;

/// A Service's namespace and name.
pub type ServiceKey = (String, String);

/// The generation a slice is expected at; `None` when its deletion is expected.
type Generations = HashMap<String, Option<i64>>;

/// The Service a slice belongs to, by its service-name label.
pub fn service_of(slice: &EndpointSlice) -> Option<ServiceKey> {
    let name = slice.metadata.labels.as_ref()?.get(LABEL_SERVICE_NAME)?;
    if name.is_empty() {
        return None;
    }
    Some((slice.metadata.namespace.clone()?, name.clone()))
}

fn uid(slice: &EndpointSlice) -> String {
    slice.metadata.uid.clone().unwrap_or_default()
}

/// The slices this controller wrote, by Service (upstream's EndpointSliceTracker).
#[derive(Default)]
pub struct SliceTracker {
    services: Mutex<HashMap<ServiceKey, Generations>>,
}

impl SliceTracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ServiceKey, Generations>> {
        self.services.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the slice is tracked.
    pub fn has(&self, slice: &EndpointSlice) -> bool {
        let Some(service) = service_of(slice) else {
            return false;
        };
        self.lock()
            .get(&service)
            .is_some_and(|g| g.contains_key(&uid(slice)))
    }

    /// Whether a change to `slice` is news: not written by us, or newer than what we wrote.
    pub fn should_sync(&self, slice: &EndpointSlice) -> bool {
        let Some(service) = service_of(slice) else {
            return true;
        };
        let services = self.lock();
        match services.get(&service).and_then(|g| g.get(&uid(slice))) {
            None | Some(None) => true,
            Some(Some(generation)) => slice.metadata.generation.unwrap_or(0) > *generation,
        }
    }

    /// Whether `slices` (the cache's view of the Service's slices) lag behind what we wrote: an older
    /// generation, a slice we deleted, or a slice we made missing.
    pub fn stale(&self, service: &ServiceKey, slices: &[Arc<EndpointSlice>]) -> bool {
        let services = self.lock();
        let Some(generations) = services.get(service) else {
            return false;
        };
        let mut seen = BTreeSet::new();
        for slice in slices {
            let id = uid(slice);
            match generations.get(&id) {
                Some(None) => return true,
                Some(Some(g)) if *g > slice.metadata.generation.unwrap_or(0) => return true,
                _ => {}
            }
            seen.insert(id);
        }
        generations
            .iter()
            .any(|(id, g)| g.is_some() && !seen.contains(id))
    }

    /// Records a slice as written.
    pub fn update(&self, slice: &EndpointSlice) {
        if let Some(service) = service_of(slice) {
            let generation = slice.metadata.generation.unwrap_or(0);
            self.lock()
                .entry(service)
                .or_default()
                .insert(uid(slice), Some(generation));
        }
    }

    /// Records that we deleted a slice.
    pub fn expect_deletion(&self, slice: &EndpointSlice) {
        if let Some(service) = service_of(slice) {
            self.lock()
                .entry(service)
                .or_default()
                .insert(uid(slice), None);
        }
    }

    /// Forgets a deleted slice; false when the deletion was not ours (the Service must be synced).
    pub fn handle_deletion(&self, slice: &EndpointSlice) -> bool {
        let Some(service) = service_of(slice) else {
            return true;
        };
        let mut services = self.lock();
        let Some(generations) = services.get_mut(&service) else {
            return true;
        };
        !matches!(generations.remove(&uid(slice)), Some(Some(_)))
    }

    /// Forgets a deleted Service.
    pub fn delete_service(&self, service: &ServiceKey) {
        self.lock().remove(service);
    }
}

/// What was last seen of a Service's trigger times.
#[derive(Default)]
struct TriggerState {
    service: Option<Timestamp>,
    pods: BTreeMap<String, Timestamp>,
}

/// Computes endpoints.kubernetes.io/last-change-trigger-time (upstream's TriggerTimeTracker): the earliest
/// of the changes seen since the last sync, where a change is a pod's Ready transition or the Service's
/// creation.
#[derive(Default)]
pub struct TriggerTimeTracker {
    services: Mutex<HashMap<ServiceKey, TriggerState>>,
}

impl TriggerTimeTracker {
    /// The trigger time for this sync of `service` with `pods`; `None` when nothing changed.
    pub fn compute(&self, service: &Service, pods: &[Arc<Pod>]) -> Option<Timestamp> {
        let key = (
            service.metadata.namespace.clone().unwrap_or_default(),
            service.metadata.name.clone().unwrap_or_default(),
        );
        let mut services = self.services.lock().unwrap_or_else(|e| e.into_inner());
        let known = services.contains_key(&key);
        let state = services.entry(key).or_default();
        let mut earliest: Option<Timestamp> = None;
        let mut seen = BTreeMap::new();
        for pod in pods {
            let Some(time) = pod_ready_condition(pod)
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0)
            else {
                continue;
            };
            let name = pod.metadata.name.clone().unwrap_or_default();
            if state.pods.get(&name).is_none_or(|last| time > *last) {
                earliest = Some(earliest.map_or(time, |e| e.min(time)));
            }
            seen.insert(name, time);
        }
        let created = service.metadata.creation_timestamp.as_ref().map(|t| t.0);
        if let Some(created) = created
            && state.service.is_none_or(|last| created > last)
        {
            earliest = Some(earliest.map_or(created, |e| e.min(created)));
        }
        state.pods = seen;
        state.service = created;
        if !known {
            return created;
        }
        earliest
    }

    /// Forgets a deleted Service.
    pub fn delete_service(&self, service: &ServiceKey) {
        self.services
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(service);
    }
}

/// How a pod change matters to Services (upstream's podEndpointsChanged): whether its endpoint may have
/// changed, and whether the set of Services it matches may have.
pub fn pod_change(old: &Pod, new: &Pod) -> (bool, bool) {
    let spec_field = |pod: &Pod, f: fn(&crate::pod::PodSpec) -> Option<&String>| {
        pod.spec.as_ref().and_then(f).cloned()
    };
    let labels_changed = old.metadata.labels != new.metadata.labels
        || spec_field(old, |s| s.hostname.as_ref()) != spec_field(new, |s| s.hostname.as_ref())
        || spec_field(old, |s| s.subdomain.as_ref()) != spec_field(new, |s| s.subdomain.as_ref());
    let ips = |pod: &Pod| -> Vec<String> {
        let ips = pod.status.as_ref().and_then(|s| s.pod_ips.as_ref());
        ips.into_iter().flatten().map(|ip| ip.ip.clone()).collect()
    };
    let pod_changed = old.metadata.deletion_timestamp != new.metadata.deletion_timestamp
        || is_pod_ready(old) != is_pod_ready(new)
        || ips(old) != ips(new);
    (pod_changed, labels_changed)
}

/// Whether `selector` (a Service's, non-empty) matches `labels`.
pub fn selector_matches(
    selector: &BTreeMap<String, String>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// The Service's selector, `None` when it has none (such a Service selects no pods, not all).
pub fn selector(service: &Service) -> Option<&BTreeMap<String, String>> {
    let selector = service.spec.as_ref()?.selector.as_ref()?;
    (!selector.is_empty()).then_some(selector)
}

/// The names of the Services among `services` to sync for a pod event (upstream's GetServicesToUpdate):
/// those matching the pod; when its labels changed, also those it matched before — all of them if its
/// endpoint changed too, else only those it joined or left.
pub fn services_to_update(
    services: &[Arc<Service>],
    old: Option<&Pod>,
    new: Option<&Pod>,
) -> BTreeSet<String> {
    let matching = |pod: &Pod| -> BTreeSet<String> {
        services
            .iter()
            .filter(|s| {
                selector(s).is_some_and(|sel| selector_matches(sel, pod.metadata.labels.as_ref()))
            })
            .filter_map(|s| s.metadata.name.clone())
            .collect()
    };
    match (old, new) {
        (None, None) => BTreeSet::new(),
        (Some(pod), None) | (None, Some(pod)) => matching(pod),
        (Some(old), Some(new)) => {
            if old.metadata.resource_version == new.metadata.resource_version {
                return BTreeSet::new();
            }
            let (pod_changed, labels_changed) = pod_change(old, new);
            if !labels_changed {
                return if pod_changed {
                    matching(new)
                } else {
                    BTreeSet::new()
                };
            }
            let (before, after) = (matching(old), matching(new));
            if pod_changed {
                before.union(&after).cloned().collect()
            } else {
                before.symmetric_difference(&after).cloned().collect()
            }
        }
    }
}
