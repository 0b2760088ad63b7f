//! Event handlers (upstream `addRS`/`updateRS`/`deleteRS` and `addPod`/`updatePod`/`deletePod`): map
//! informer events to the keys of the sets to sync, and lower expectations as created and deleted pods
//! show up in the cache. What an event means is decided by pure functions returning [`Effect`]s; the
//! controller applies them to its queue and expectations.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::core::SelectorExt;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use component_base::informer::{InformerEvent, ObjectKey, index};

use super::controller::ReplicaSetController;
use super::kind::ReplicaKind;
use crate::pod::Pod;
use crate::pod_util::{controller_of, is_pod_ready, pod_key};

/// What one informer event asks of the controller, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Sync the set.
    Sync(ObjectKey),
    /// Sync the set after a delay (availability after minReadySeconds).
    SyncAfter(ObjectKey, Duration),
    /// One of the set's expected creations was observed.
    CreationObserved(ObjectKey),
    /// The pod with this `namespace/name` key, controlled by the set, is going or gone.
    DeletionObserved(ObjectKey, String),
    /// The set is gone: drop its expectations.
    Forget(ObjectKey),
}

/// How handlers find sets in the cache.
pub trait SetLookup<K> {
    /// The set `reference` names in `namespace`, if it is of our kind and still the same object (UID).
    fn resolve(&self, namespace: Option<&String>, reference: &OwnerReference) -> Option<Arc<K>>;
    /// Sets of the pod's namespace whose (non-empty, valid) selector matches it (upstream
    /// `GetPodReplicaSets`).
    fn matching(&self, pod: &Pod) -> Vec<Arc<K>>;
}

/// Effects of a set's add, update or delete.
pub fn set_event_effects<K: ReplicaKind>(event: &InformerEvent<K>) -> Vec<Effect> {
    match event {
        InformerEvent::Added(set) => vec![Effect::Sync(ObjectKey::of(set.as_ref()))],
        InformerEvent::Updated { old, new } => {
            let mut effects = Vec::new();
            // Deleted and recreated under the same name between two watch events.
            if old.meta().uid != new.meta().uid {
                let key = ObjectKey::of(old.as_ref());
                effects.extend([Effect::Forget(key.clone()), Effect::Sync(key)]);
            }
            effects.push(Effect::Sync(ObjectKey::of(new.as_ref())));
            effects
        }
        InformerEvent::Deleted(set) => {
            let key = ObjectKey::of(set.as_ref());
            vec![Effect::Forget(key.clone()), Effect::Sync(key)]
        }
    }
}

/// Effects of a pod's add, update or delete.
pub fn pod_event_effects<K: ReplicaKind>(
    event: &InformerEvent<Pod>,
    sets: &impl SetLookup<K>,
) -> Vec<Effect> {
    match event {
        InformerEvent::Added(pod) => pod_added(pod, sets),
        InformerEvent::Updated { old, new } => pod_updated(old, new, sets),
        InformerEvent::Deleted(pod) => pod_deleted(pod, sets),
    }
}

fn pod_added<K: ReplicaKind>(pod: &Pod, sets: &impl SetLookup<K>) -> Vec<Effect> {
    // A pod that shows up already being deleted (after a relist) only counts as a deletion.
    if pod.metadata.deletion_timestamp.is_some() {
        return pod_deleted(pod, sets);
    }
    if let Some(reference) = controller_of(&pod.metadata) {
        let Some(set) = sets.resolve(pod.metadata.namespace.as_ref(), reference) else {
            return Vec::new();
        };
        let key = ObjectKey::of(set.as_ref());
        return vec![Effect::CreationObserved(key.clone()), Effect::Sync(key)];
    }
    // An orphan: whoever may adopt it should look.
    sets.matching(pod)
        .iter()
        .map(|set| Effect::Sync(ObjectKey::of(set.as_ref())))
        .collect()
}

fn pod_updated<K: ReplicaKind>(old: &Pod, new: &Pod, sets: &impl SetLookup<K>) -> Vec<Effect> {
    // Relists send updates with nothing changed.
    if old.metadata.resource_version == new.metadata.resource_version {
        return Vec::new();
    }
    let labels_changed = old.metadata.labels != new.metadata.labels;
    if new.metadata.deletion_timestamp.is_some() {
        // Graceful deletion started: count it now, not when the pod is finally gone.
        let mut effects = pod_deleted(new, sets);
        if labels_changed {
            effects.extend(pod_deleted(old, sets));
        }
        return effects;
    }
    let mut effects = Vec::new();
    let new_ref = controller_of(&new.metadata);
    let old_ref = controller_of(&old.metadata);
    let ref_changed = new_ref != old_ref;
    if ref_changed
        && let Some(old_ref) = old_ref
        && let Some(set) = sets.resolve(old.metadata.namespace.as_ref(), old_ref)
    {
        effects.push(Effect::Sync(ObjectKey::of(set.as_ref())));
    }
    if let Some(new_ref) = new_ref {
        if let Some(set) = sets.resolve(new.metadata.namespace.as_ref(), new_ref) {
            let key = ObjectKey::of(set.as_ref());
            effects.push(Effect::Sync(key.clone()));
            let min_ready = set.min_ready_seconds();
            if !is_pod_ready(old) && is_pod_ready(new) && min_ready > 0 {
                // Ready now, available only after minReadySeconds: look again then.
                let wait = Duration::from_secs(u64::try_from(min_ready).unwrap_or(0));
                effects.push(Effect::SyncAfter(key, wait));
            }
        }
        return effects;
    }
    if labels_changed || ref_changed {
        effects.extend(
            sets.matching(new)
                .iter()
                .map(|set| Effect::Sync(ObjectKey::of(set.as_ref()))),
        );
    }
    effects
}

fn pod_deleted<K: ReplicaKind>(pod: &Pod, sets: &impl SetLookup<K>) -> Vec<Effect> {
    let Some(reference) = controller_of(&pod.metadata) else {
        return Vec::new();
    };
    let Some(set) = sets.resolve(pod.metadata.namespace.as_ref(), reference) else {
        return Vec::new();
    };
    let key = ObjectKey::of(set.as_ref());
    vec![
        Effect::DeletionObserved(key.clone(), pod_key(pod)),
        Effect::Sync(key),
    ]
}

/// Feeds the controller's queue from its informers until `stop`.
pub(super) fn spawn<K: ReplicaKind>(
    controller: Arc<ReplicaSetController<K>>,
    stop: CancellationToken,
) {
    let sets = controller.sets.subscribe();
    let pods = controller.pods.subscribe();
    let c = controller.clone();
    tokio::spawn(pump(sets, stop.clone(), move |event| {
        c.apply(set_event_effects(&event));
    }));
    tokio::spawn(pump(pods, stop, move |event| {
        controller.apply(pod_event_effects(&event, controller.as_ref()));
    }));
}

async fn pump<T>(
    mut events: UnboundedReceiver<InformerEvent<T>>,
    stop: CancellationToken,
    handle: impl Fn(InformerEvent<T>),
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            event = events.recv() => match event {
                Some(event) => handle(event),
                None => return,
            },
        }
    }
}

impl<K: ReplicaKind> ReplicaSetController<K> {
    fn apply(&self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Sync(key) => self.queue.add(key),
                Effect::SyncAfter(key, delay) => self.queue.add_after(key, delay),
                Effect::CreationObserved(key) => {
                    self.expectations.creation_observed(&key.to_string());
                }
                Effect::DeletionObserved(key, pod) => {
                    self.expectations.deletion_observed(&key.to_string(), &pod);
                }
                Effect::Forget(key) => self.expectations.delete(&key.to_string()),
            }
        }
    }
}

impl<K: ReplicaKind> SetLookup<K> for ReplicaSetController<K> {
    fn resolve(&self, namespace: Option<&String>, reference: &OwnerReference) -> Option<Arc<K>> {
        if reference.kind != K::KIND.kind {
            return None;
        }
        let key = ObjectKey {
            namespace: namespace.cloned(),
            name: reference.name.clone(),
        };
        let set = self.sets.get(&key)?;
        (set.meta().uid.as_deref() == Some(reference.uid.as_str())).then_some(set)
    }

    fn matching(&self, pod: &Pod) -> Vec<Arc<K>> {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let candidates = self.sets.by_index(index::NAMESPACE, &namespace);
        let sets = matching_sets(candidates, pod);
        if sets.len() > 1 {
            tracing::warn!(
                kind = K::KIND.kind,
                pod = %pod_key(pod),
                "user error! more than one {} is selecting pods with labels: {:?}",
                K::KIND.kind,
                pod.metadata.labels
            );
        }
        sets
    }
}

/// The `candidates` whose selector is non-empty, valid and matches the pod's labels: an empty selector
/// must match nothing here, not everything.
pub fn matching_sets<K: ReplicaKind>(candidates: Vec<Arc<K>>, pod: &Pod) -> Vec<Arc<K>> {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    candidates
        .into_iter()
        .filter(|set| !set.selector_is_empty())
        .filter(|set| set.selector().is_ok_and(|s| s.matches(&labels)))
        .collect()
}

#[cfg(test)]
mod tests;
