//! One sync of a ReplicaSet or ReplicationController (upstream `syncReplicaSet`, `manageReplicas`,
//! `claimPods`, `updateReplicaSetStatus`): read the set and its pods from the caches, claim pods, create or
//! delete pods as decided in [`super::manage`], write the status computed in [`super::status`].

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use component_base::client::error_message;
use futures::future::join_all;
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::core::{Selector, SelectorExt};
use kube::{Api, Client};

use component_base::informer::{IndexFunc, OWN_WRITE_TIMEOUT, ObjectKey, SharedInformer, index};
use component_base::workqueue::RateLimitingQueue;

use super::CONTROLLER_UID_INDEX;
use super::kind::{ReplicaKind, ReplicaStatus};
use super::manage::{
    ReplicaAction, SLOW_START_INITIAL_BATCH_SIZE, pods_to_delete, replica_action, slow_start_batch,
};
use super::status::{ManageFailure, StatusInputs, calculate_status, status_changed};
use crate::controller_ref_manager::{
    ClaimError, PodControllerRefManager, recheck_deletion_timestamp,
};
use crate::expectations::UidTrackingExpectations;
use crate::pod::Pod;
use crate::pod_control::{PodControl, PodControlError};
use crate::pod_util::{
    POD_CONTROLLER_INDEX, controller_of, is_controlled_by, is_pod_active, is_pod_terminating,
    min_next_pod_availability_check, pod_controller_index_key, pod_key,
};

/// Status writes retried once after re-reading the object (upstream `statusUpdateRetries`).
const STATUS_UPDATE_RETRIES: usize = 1;

/// Indexes sets by their controller's UID (upstream `controllerUIDIndex`).
pub fn controller_uid_index<K: ReplicaKind>() -> IndexFunc<K> {
    Arc::new(|set: &K| {
        controller_of(set.meta())
            .map(|r| r.uid.clone())
            .into_iter()
            .collect()
    })
}

/// Why creating or deleting pods failed; displays as upstream's error, which becomes the ReplicaFailure
/// condition's message.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// A pod could not be created.
    #[error("{0}")]
    Create(PodControlError),
    /// A pod could not be deleted.
    #[error("unable to delete pods: {0}")]
    Delete(PodControlError),
    /// Nothing to create pods from.
    #[error("the object has no pod template")]
    NoTemplate,
}

/// Why a sync failed; the key is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Adopting or releasing pods failed.
    #[error("claiming pods: {0}")]
    Claim(#[from] ClaimError),
    /// Reaching spec.replicas failed.
    #[error(transparent)]
    Manage(#[from] ManageError),
    /// The status could not be written.
    #[error("updating status: {}", error_message(.0))]
    Status(#[source] kube::Error),
}

/// The controller for one kind: caches, queue, expectations and the pod writer.
pub struct ReplicaSetController<K: ReplicaKind> {
    pub(super) sets: SharedInformer<K>,
    pub(super) pods: SharedInformer<Pod>,
    pub(super) client: Client,
    pub(super) pod_control: PodControl,
    pub(super) expectations: UidTrackingExpectations,
    pub(super) queue: RateLimitingQueue<ObjectKey>,
    pub(super) burst_replicas: usize,
}

fn labels_match(selector: &Selector, pod: &Pod) -> bool {
    selector.matches(&pod.metadata.labels.clone().unwrap_or_default())
}

impl<K: ReplicaKind> ReplicaSetController<K> {
    /// Brings the set with `key` one step closer to spec.replicas and writes its status.
    pub async fn sync(&self, key: ObjectKey) -> Result<(), SyncError> {
        let key_string = key.to_string();
        let Some(set) = self.sets.get(&key) else {
            tracing::debug!(kind = K::KIND.kind, key = %key_string, "deleted");
            self.expectations.delete(&key_string);
            return Ok(());
        };
        let needs_sync = self.expectations.satisfied(&key_string);
        let selector = match set.selector() {
            Ok(selector) => selector,
            Err(e) => {
                // A selector that cannot be evaluated is the user's to fix; retrying would not help.
                tracing::error!(kind = K::KIND.kind, key = %key_string, "error converting pod selector to selector: {e}");
                return Ok(());
            }
        };
        let namespace = key.namespace.clone().unwrap_or_default();
        let uid = set.meta().uid.clone().unwrap_or_default();
        let mut all = self.pods.by_index(
            POD_CONTROLLER_INDEX,
            &pod_controller_index_key(&namespace, Some(&uid)),
        );
        all.extend(self.pods.by_index(
            POD_CONTROLLER_INDEX,
            &pod_controller_index_key(&namespace, None),
        ));
        let active: Vec<Arc<Pod>> = all.iter().filter(|p| is_pod_active(p)).cloned().collect();
        let active = self.claim_pods(&set, selector.clone(), active).await?;
        let terminating = if K::TERMINATING_REPLICAS {
            all.iter()
                .filter(|p| is_pod_terminating(p))
                .filter(|p| is_controlled_by(&p.metadata, &uid) && labels_match(&selector, p))
                .count()
        } else {
            0
        };

        let mut failure = None;
        if needs_sync && set.meta().deletion_timestamp.is_none() {
            failure = self
                .manage_replicas(&set, &key_string, active.clone())
                .await
                .err();
        }

        let now = Timestamp::now();
        let template_labels = set
            .template()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        let inputs = StatusInputs {
            current: set.replica_status(),
            replicas: set.replicas(),
            min_ready_seconds: set.min_ready_seconds(),
            template_labels: &template_labels,
            report_terminating: K::TERMINATING_REPLICAS,
        };
        let manage_failure = failure.as_ref().map(|e| ManageFailure {
            message: e.to_string(),
        });
        let new_status = calculate_status(
            &inputs,
            active.iter().map(|p| p.as_ref()),
            terminating,
            manage_failure.as_ref(),
            now,
        );
        let updated = self.update_status(&set, new_status).await?;
        if let Some(e) = failure {
            return Err(e.into());
        }
        // Pods ready but not yet available: look again once the first of them should be.
        let min_ready = updated.min_ready_seconds();
        let status = updated.replica_status();
        if min_ready > 0 && status.ready_replicas != status.available_replicas {
            let next =
                min_next_pod_availability_check(active.iter().map(|p| p.as_ref()), min_ready, now)
                    .unwrap_or(Duration::from_secs(u64::try_from(min_ready).unwrap_or(0)));
            self.queue.add_after(key, next);
        }
        Ok(())
    }

    /// Adopts matching orphans and releases owned pods that stopped matching; the pods that are ours.
    async fn claim_pods(
        &self,
        set: &K,
        selector: Selector,
        pods: Vec<Arc<Pod>>,
    ) -> Result<Vec<Arc<Pod>>, ClaimError> {
        let meta = set.meta().clone();
        let api: Api<K> = Api::namespaced(
            self.client.clone(),
            meta.namespace.as_deref().unwrap_or_default(),
        );
        let (name, uid) = (
            meta.name.clone().unwrap_or_default(),
            meta.uid.clone().unwrap_or_default(),
        );
        let can_adopt = recheck_deletion_timestamp(move || async move {
            let fresh = api.get(&name).await.map_err(|e| e.to_string())?;
            let fresh_uid = fresh.meta().uid.clone().unwrap_or_default();
            if fresh_uid != uid {
                return Err(format!(
                    "original {} {}/{} is gone: got uid {fresh_uid}, wanted {uid}",
                    K::KIND.kind,
                    fresh.meta().namespace.as_deref().unwrap_or_default(),
                    name
                ));
            }
            Ok(fresh.meta().clone())
        });
        let manager =
            PodControllerRefManager::new(self.client.clone(), meta, K::KIND, selector, can_adopt);
        manager.claim(pods, |_| true).await
    }

    /// Creates or deletes pods towards spec.replicas, recording expectations first so events for the
    /// pods this sync writes are counted before the next sync trusts the cache again.
    async fn manage_replicas(
        &self,
        set: &K,
        key: &str,
        active: Vec<Arc<Pod>>,
    ) -> Result<(), ManageError> {
        let meta = set.meta();
        let namespace = meta.namespace.as_deref().unwrap_or_default();
        let owner = K::KIND.object_reference(meta);
        match replica_action(active.len(), set.replicas(), self.burst_replicas) {
            ReplicaAction::Nothing => Ok(()),
            ReplicaAction::Create(count) => {
                let Some(template) = set.template() else {
                    return Err(ManageError::NoTemplate);
                };
                tracing::debug!(
                    kind = K::KIND.kind,
                    key,
                    need = set.replicas(),
                    creating = count,
                    "Too few replicas"
                );
                self.expectations.expect_creations(key, count as i64);
                let controller_ref = K::KIND.controller_ref(meta);
                let (created, error) =
                    slow_start_batch(count, SLOW_START_INITIAL_BATCH_SIZE, || async {
                        match self
                            .pod_control
                            .create_pod(namespace, template, &owner, controller_ref.clone(), None)
                            .await
                        {
                            Ok(_) => Ok(()),
                            // The namespace is going away: nothing to do, and no error to report.
                            Err(e) if e.is_namespace_terminating() => Ok(()),
                            Err(e) => Err(e),
                        }
                    })
                    .await;
                // Pods never asked for will never be observed.
                for _ in created..count {
                    self.expectations.creation_observed(key);
                }
                error.map_or(Ok(()), |e| Err(ManageError::Create(e)))
            }
            ReplicaAction::Delete(count) => {
                tracing::debug!(
                    kind = K::KIND.kind,
                    key,
                    need = set.replicas(),
                    deleting = count,
                    "Too many replicas"
                );
                let related = self.indirectly_related_pods(set);
                let victims = pods_to_delete(active, &related, count, Timestamp::now());
                self.expectations
                    .expect_deletions(key, victims.iter().map(|p| pod_key(p)));
                let owner = &owner;
                let results = join_all(victims.iter().map(|pod| async move {
                    let name = pod.metadata.name.as_deref().unwrap_or_default();
                    (
                        pod,
                        self.pod_control.delete_pod(namespace, name, owner).await,
                    )
                }))
                .await;
                let mut first_error = None;
                for (pod, result) in results {
                    if let Err(e) = result {
                        // A failed delete will never be observed; a pod already gone already was.
                        self.expectations.deletion_observed(key, &pod_key(pod));
                        if !e.is_not_found() {
                            first_error.get_or_insert(e);
                        }
                    }
                }
                first_error.map_or(Ok(()), |e| Err(ManageError::Delete(e)))
            }
        }
    }

    /// Pods of the other sets controlled by the same owner (a Deployment's ReplicaSets), for spreading
    /// deletions (upstream `getIndirectlyRelatedPods`).
    fn indirectly_related_pods(&self, set: &K) -> Vec<Arc<Pod>> {
        let Some(owner) = controller_of(set.meta()) else {
            return Vec::new();
        };
        let mut seen = HashSet::new();
        let mut related = Vec::new();
        for other in self.sets.by_index(CONTROLLER_UID_INDEX, &owner.uid) {
            let Ok(selector) = other.selector() else {
                continue;
            };
            let namespace = other.meta().namespace.clone().unwrap_or_default();
            for pod in self.pods.by_index(index::NAMESPACE, &namespace) {
                if labels_match(&selector, &pod) && seen.insert(pod.metadata.uid.clone()) {
                    related.push(pod);
                }
            }
        }
        related
    }

    /// Writes `new` with the set's generation observed, unless nothing changed; on failure re-reads the
    /// set once and tries again (upstream `updateReplicaSetStatus`). A conflict left over is returned so
    /// the key is retried: the status is never written over a newer object.
    async fn update_status(&self, set: &K, new: ReplicaStatus) -> Result<K, SyncError> {
        let generation = set.meta().generation.unwrap_or(0);
        if !status_changed(&set.replica_status(), &new, generation) {
            return Ok(set.clone());
        }
        let mut new = new;
        new.observed_generation = generation;
        let namespace = set.meta().namespace.clone().unwrap_or_default();
        let name = set.meta().name.clone().unwrap_or_default();
        let api: Api<K> = Api::namespaced(self.client.clone(), &namespace);
        let mut object = set.clone();
        let mut attempt = 0;
        loop {
            object.set_replica_status(new.clone());
            match api
                .replace_status(&name, &PostParams::default(), &object)
                .await
            {
                Ok(updated) => {
                    let replaced = object.meta().resource_version.as_deref();
                    self.sets
                        .wait_until_replaced(&ObjectKey::of(set), replaced, OWN_WRITE_TIMEOUT)
                        .await;
                    return Ok(updated);
                }
                Err(e) if attempt >= STATUS_UPDATE_RETRIES => return Err(SyncError::Status(e)),
                Err(e) => {
                    tracing::debug!(kind = K::KIND.kind, %namespace, %name, "status update failed, re-reading: {e}");
                    object = api.get(&name).await.map_err(SyncError::Status)?;
                    attempt += 1;
                }
            }
        }
    }
}
