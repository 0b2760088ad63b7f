//! Event handlers (upstream `addRS`/`updateRS`/`deleteRS` and `addPod`/`updatePod`/`deletePod`): map
//! informer events to the keys of the sets to sync, and lower expectations as created and deleted pods
//! show up in the cache.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::core::SelectorExt;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

use component_base::informer::{InformerEvent, ObjectKey, index};

use super::controller::ReplicaSetController;
use super::kind::ReplicaKind;
use crate::pod_util::{controller_of, is_pod_ready, pod_key};

/// Feeds the controller's queue from its informers until `stop`.
pub(super) fn spawn<K: ReplicaKind>(
    controller: Arc<ReplicaSetController<K>>,
    stop: CancellationToken,
) {
    let sets = controller.sets.subscribe();
    let pods = controller.pods.subscribe();
    let c = controller.clone();
    tokio::spawn(pump(sets, stop.clone(), move |event| c.on_set_event(event)));
    tokio::spawn(pump(pods, stop, move |event| {
        controller.on_pod_event(event)
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
    fn on_set_event(&self, event: InformerEvent<K>) {
        match event {
            InformerEvent::Added(set) => self.queue.add(ObjectKey::of(set.as_ref())),
            InformerEvent::Updated { old, new } => {
                // Deleted and recreated under the same name between two watch events.
                if old.meta().uid != new.meta().uid {
                    self.on_set_deleted(&old);
                }
                self.queue.add(ObjectKey::of(new.as_ref()));
            }
            InformerEvent::Deleted(set) => self.on_set_deleted(&set),
        }
    }

    fn on_set_deleted(&self, set: &K) {
        let key = ObjectKey::of(set);
        self.expectations.delete(&key.to_string());
        self.queue.add(key);
    }

    fn on_pod_event(&self, event: InformerEvent<Pod>) {
        match event {
            InformerEvent::Added(pod) => self.on_pod_added(&pod),
            InformerEvent::Updated { old, new } => self.on_pod_updated(&old, &new),
            InformerEvent::Deleted(pod) => self.on_pod_deleted(&pod),
        }
    }

    /// The set `reference` names, if it is of our kind and still the same object (UID).
    fn resolve_controller_ref(
        &self,
        namespace: Option<&String>,
        reference: &OwnerReference,
    ) -> Option<Arc<K>> {
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

    /// Sets of the pod's namespace whose (non-empty, valid) selector matches it (upstream
    /// `GetPodReplicaSets`); more than one is a user error, logged.
    fn matching_sets(&self, pod: &Pod) -> Vec<Arc<K>> {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let sets: Vec<Arc<K>> = self
            .sets
            .by_index(index::NAMESPACE, &namespace)
            .into_iter()
            .filter(|set| !set.selector_is_empty())
            .filter(|set| set.selector().is_ok_and(|s| s.matches(&labels)))
            .collect();
        if sets.len() > 1 {
            tracing::warn!(kind = K::KIND.kind, pod = %pod_key(pod), "user error! more than one {} is selecting pods with labels: {labels:?}", K::KIND.kind);
        }
        sets
    }

    fn on_pod_added(&self, pod: &Pod) {
        // A pod that shows up already being deleted (after a relist) only counts as a deletion.
        if pod.metadata.deletion_timestamp.is_some() {
            self.on_pod_deleted(pod);
            return;
        }
        if let Some(reference) = controller_of(&pod.metadata) {
            if let Some(set) =
                self.resolve_controller_ref(pod.metadata.namespace.as_ref(), reference)
            {
                let key = ObjectKey::of(set.as_ref());
                self.expectations.creation_observed(&key.to_string());
                self.queue.add(key);
            }
            return;
        }
        // An orphan: whoever may adopt it should look.
        for set in self.matching_sets(pod) {
            self.queue.add(ObjectKey::of(set.as_ref()));
        }
    }

    fn on_pod_updated(&self, old: &Pod, new: &Pod) {
        // Periodic relists send updates with nothing changed.
        if old.metadata.resource_version == new.metadata.resource_version {
            return;
        }
        let labels_changed = old.metadata.labels != new.metadata.labels;
        if new.metadata.deletion_timestamp.is_some() {
            // Graceful deletion started: count it now, not when the pod is finally gone.
            self.on_pod_deleted(new);
            if labels_changed {
                self.on_pod_deleted(old);
            }
            return;
        }
        let new_ref = controller_of(&new.metadata);
        let old_ref = controller_of(&old.metadata);
        let ref_changed = new_ref != old_ref;
        if ref_changed
            && let Some(old_ref) = old_ref
            && let Some(set) = self.resolve_controller_ref(old.metadata.namespace.as_ref(), old_ref)
        {
            self.queue.add(ObjectKey::of(set.as_ref()));
        }
        if let Some(new_ref) = new_ref {
            if let Some(set) = self.resolve_controller_ref(new.metadata.namespace.as_ref(), new_ref)
            {
                let key = ObjectKey::of(set.as_ref());
                let min_ready = set.min_ready_seconds();
                if !is_pod_ready(old) && is_pod_ready(new) && min_ready > 0 {
                    // Ready now, available only after minReadySeconds: look again then.
                    let wait = Duration::from_secs(u64::try_from(min_ready).unwrap_or(0));
                    self.queue.add_after(key.clone(), wait);
                }
                self.queue.add(key);
            }
            return;
        }
        if labels_changed || ref_changed {
            for set in self.matching_sets(new) {
                self.queue.add(ObjectKey::of(set.as_ref()));
            }
        }
    }

    fn on_pod_deleted(&self, pod: &Pod) {
        let Some(reference) = controller_of(&pod.metadata) else {
            return;
        };
        let Some(set) = self.resolve_controller_ref(pod.metadata.namespace.as_ref(), reference)
        else {
            return;
        };
        let key = ObjectKey::of(set.as_ref());
        self.expectations
            .deletion_observed(&key.to_string(), &pod_key(pod));
        self.queue.add(key);
    }
}
