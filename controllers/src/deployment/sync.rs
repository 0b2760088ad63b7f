//! One Deployment's sync (upstream `syncDeployment`, sync.go and progress.go): read the caches, decide with
//! [`super::plan`], write ReplicaSets and the status. Rollouts are in `rollout`, the new ReplicaSet in
//! `new_replica_set`.

use std::collections::HashMap;

use component_base::client::error_message;
use component_base::informer::{OWN_WRITE_TIMEOUT, ObjectKey, index};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, DeleteParams, PostParams};

use super::Controller;
use super::claim;
use super::plan::{self, ScalePlan};
use super::rollout::rollback_to;
use super::util::{self, *};
use crate::controller_ref_manager::{
    ClaimError, ControllerRefManager, label_selector_as_selector, recheck_deletion_timestamp,
};
use crate::pod::Pod;

/// Longest revision-history annotation kept.
pub(super) const MAX_REV_HISTORY_LENGTH_IN_CHARS: usize = 2000;

/// Why a sync failed; the key is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("{action} {object}: {}", error_message(.source))]
    Api {
        action: &'static str,
        object: String,
        #[source]
        source: kube::Error,
    },
    #[error("deployment {0}: {1}")]
    Invalid(String, String),
    #[error("claiming replica sets of deployment {0}: {1}")]
    Claim(String, ClaimError),
}

pub(super) fn api_err(
    action: &'static str,
    object: &str,
) -> impl FnOnce(kube::Error) -> SyncError + use<> {
    let object = object.to_string();
    move |source| SyncError::Api {
        action,
        object,
        source,
    }
}

pub(super) fn key_of(d: &Deployment) -> String {
    ObjectKey::of(d).to_string()
}

/// Errors for a terminating namespace are dropped, as upstream's `handleErr` does.
pub(super) fn namespace_terminating(e: &SyncError) -> bool {
    matches!(e, SyncError::Api { source: kube::Error::Api(s), .. }
        if s.details.as_ref().is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating")))
}

impl Controller {
    pub(super) fn deployment_api(&self, d: &Deployment) -> Api<Deployment> {
        Api::namespaced(
            self.client.clone(),
            d.metadata.namespace.as_deref().unwrap_or_default(),
        )
    }

    pub(super) fn rs_api(&self, namespace: &str) -> Api<ReplicaSet> {
        Api::namespaced(self.client.clone(), namespace)
    }

    pub(super) fn reference(d: &Deployment) -> ObjectReference {
        ObjectReference {
            api_version: Some("apps/v1".into()),
            kind: Some("Deployment".into()),
            name: d.metadata.name.clone(),
            namespace: d.metadata.namespace.clone(),
            uid: d.metadata.uid.clone(),
            resource_version: d.metadata.resource_version.clone(),
            ..Default::default()
        }
    }

    pub(super) async fn event(&self, d: &Deployment, warning: bool, reason: &str, note: String) {
        let reference = Self::reference(d);
        if warning {
            self.recorder.warning(&reference, reason, reason, note);
        } else {
            self.recorder.normal(&reference, reason, reason, note);
        }
    }

    /// UpdateStatus: PUT /status with the Deployment's resourceVersion; a conflict fails the sync. The
    /// local copy takes the new resourceVersion so later writes of this sync are not refused.
    pub(super) async fn update_status(&self, d: &mut Deployment) -> Result<(), SyncError> {
        let name = d.metadata.name.clone().unwrap_or_default();
        let updated = self
            .deployment_api(d)
            .replace_status(&name, &PostParams::default(), d)
            .await
            .map_err(api_err("updating status of deployment", &name))?;
        let replaced = std::mem::replace(
            &mut d.metadata.resource_version,
            updated.metadata.resource_version,
        );
        self.deployments
            .wait_until_replaced(&ObjectKey::of(d), replaced.as_deref(), OWN_WRITE_TIMEOUT)
            .await;
        Ok(())
    }

    pub(super) async fn update_replica_set(
        &self,
        rs: &ReplicaSet,
    ) -> Result<ReplicaSet, SyncError> {
        let namespace = rs.metadata.namespace.as_deref().unwrap_or_default();
        let updated = self
            .rs_api(namespace)
            .replace(util::name(rs), &PostParams::default(), rs)
            .await
            .map_err(api_err("updating replica set", util::name(rs)))?;
        self.replica_sets
            .wait_until_replaced(
                &ObjectKey::of(rs),
                rs.metadata.resource_version.as_deref(),
                OWN_WRITE_TIMEOUT,
            )
            .await;
        Ok(updated)
    }

    /// Upstream's `syncDeployment`.
    pub(crate) async fn sync_deployment(&self, key: &ObjectKey) -> Result<(), SyncError> {
        let Some(cached) = self.deployments.get(key) else {
            return Ok(());
        };
        let mut d = (*cached).clone();
        match self.sync_deployment_inner(&mut d).await {
            Err(e) if namespace_terminating(&e) => Ok(()),
            other => other,
        }
    }

    pub(super) async fn sync_deployment_inner(&self, d: &mut Deployment) -> Result<(), SyncError> {
        let selector = d
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        if claim::selects_everything(&selector) {
            self.event(
                d,
                true,
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.".into(),
            )
            .await;
            let status = d.status.get_or_insert_with(Default::default);
            if status.observed_generation.unwrap_or(0) < d.metadata.generation.unwrap_or(0) {
                status.observed_generation = d.metadata.generation;
                // Upstream ignores this write's error too.
                let _ = self.update_status(d).await;
            }
            return Ok(());
        }
        let rs_list = self.claim_replica_sets(d).await?;
        if d.metadata.deletion_timestamp.is_some() {
            return self.sync_status_only(d, &rs_list).await;
        }
        self.check_paused_conditions(d).await?;
        if is_paused(d) {
            return self.sync(d, &rs_list).await;
        }
        if rollback_to(d).is_some() {
            return self.rollback(d, &rs_list).await;
        }
        if self.is_scaling_event(d, &rs_list).await? {
            tracing::debug!(deployment = %key_of(d), "Scaling event");
            return self.sync(d, &rs_list).await;
        }
        match strategy_type(d) {
            "Recreate" => {
                let pods = self.pod_map(&rs_list);
                self.rollout_recreate(d, &rs_list, &pods).await
            }
            "RollingUpdate" => self.rollout_rolling(d, &rs_list).await,
            other => Err(SyncError::Invalid(
                key_of(d),
                format!("unexpected deployment strategy type: {other}"),
            )),
        }
    }

    /// Upstream's `getReplicaSetsForDeployment`: claims (adopting and releasing) the namespace's
    /// ReplicaSets. Adoption first re-reads the Deployment, once, to be sure it is still the same object
    /// and not being deleted.
    pub(super) async fn claim_replica_sets(
        &self,
        d: &Deployment,
    ) -> Result<Vec<ReplicaSet>, SyncError> {
        let namespace = d.metadata.namespace.clone().unwrap_or_default();
        let spec_selector = d
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        let selector = label_selector_as_selector(&spec_selector)
            .map_err(|e| SyncError::Invalid(key_of(d), format!("invalid label selector: {e}")))?;
        let api = self.deployment_api(d);
        let name = d.metadata.name.clone().unwrap_or_default();
        let uid = d.metadata.uid.clone();
        let can_adopt = recheck_deletion_timestamp(move || async move {
            let fresh = api.get(&name).await.map_err(|e| e.to_string())?;
            if fresh.metadata.uid != uid {
                return Err(format!(
                    "original Deployment {}/{name} is gone: got uid {:?}, wanted {uid:?}",
                    fresh.metadata.namespace.as_deref().unwrap_or_default(),
                    fresh.metadata.uid
                ));
            }
            Ok(fresh.metadata)
        });
        let manager = ControllerRefManager::<ReplicaSet>::new(
            self.client.clone(),
            d.metadata.clone(),
            claim::CONTROLLER_KIND,
            selector,
            can_adopt,
        );
        let candidates = self.replica_sets.by_index(index::NAMESPACE, &namespace);
        let claimed = manager
            .claim(candidates, |_| true)
            .await
            .map_err(|e| SyncError::Claim(key_of(d), e))?;
        Ok(claimed.into_iter().map(|rs| (*rs).clone()).collect())
    }

    /// Pods by the UID of the ReplicaSet controlling them.
    pub(super) fn pod_map(&self, rs_list: &[ReplicaSet]) -> HashMap<String, Vec<Pod>> {
        rs_list
            .iter()
            .map(|rs| {
                let pods = self.pods_of(rs).iter().map(|p| (**p).clone()).collect();
                (util::uid(rs).to_string(), pods)
            })
            .collect()
    }

    pub(super) async fn sync_status_only(
        &self,
        d: &mut Deployment,
        rs_list: &[ReplicaSet],
    ) -> Result<(), SyncError> {
        let (new_rs, old_rss) = self
            .get_all_replica_sets_and_sync_revision(d, rs_list, false)
            .await?;
        self.sync_deployment_status(&old_rss, new_rs.as_ref(), d)
            .await
    }

    /// Upstream's `sync`: scaling (also of paused Deployments) without rolling out.
    pub(super) async fn sync(
        &self,
        d: &mut Deployment,
        rs_list: &[ReplicaSet],
    ) -> Result<(), SyncError> {
        let (new_rs, old_rss) = self
            .get_all_replica_sets_and_sync_revision(d, rs_list, false)
            .await?;
        self.scale(d, new_rs.as_ref(), &old_rss).await?;
        if is_paused(d) && rollback_to(d).is_none() {
            self.cleanup_deployment(&old_rss, d).await?;
        }
        self.sync_deployment_status(&old_rss, new_rs.as_ref(), d)
            .await
    }

    /// Upstream's `checkPausedConditions`: Progressing=Unknown DeploymentPaused / DeploymentResumed.
    pub(super) async fn check_paused_conditions(
        &self,
        d: &mut Deployment,
    ) -> Result<(), SyncError> {
        if !has_progress_deadline(d) {
            return Ok(());
        }
        let status = util::status(d);
        let reason = get_condition(&status, CONDITION_PROGRESSING).and_then(|c| c.reason.clone());
        if reason.as_deref() == Some(TIMED_OUT_REASON) {
            return Ok(());
        }
        let paused_exists = reason.as_deref() == Some(PAUSED_DEPLOY_REASON);
        let condition = if is_paused(d) && !paused_exists {
            new_condition(
                CONDITION_PROGRESSING,
                "Unknown",
                PAUSED_DEPLOY_REASON,
                "Deployment is paused".into(),
                &now(),
            )
        } else if !is_paused(d) && paused_exists {
            new_condition(
                CONDITION_PROGRESSING,
                "Unknown",
                RESUMED_DEPLOY_REASON,
                "Deployment is resumed".into(),
                &now(),
            )
        } else {
            return Ok(());
        };
        set_condition(d.status.get_or_insert_with(Default::default), condition);
        self.update_status(d).await
    }

    /// Upstream's `isScalingEvent`: an active ReplicaSet was sized for other Deployment replicas.
    pub(super) async fn is_scaling_event(
        &self,
        d: &mut Deployment,
        rs_list: &[ReplicaSet],
    ) -> Result<bool, SyncError> {
        let (new_rs, old_rss) = self
            .get_all_replica_sets_and_sync_revision(d, rs_list, false)
            .await?;
        let replicas = deployment_replicas(d);
        Ok(active(old_rss.iter().chain(new_rs.as_ref()))
            .into_iter()
            .filter_map(desired_replicas_annotation)
            .any(|desired| desired != replicas))
    }

    /// Upstream's `getAllReplicaSetsAndSyncRevision`: the new ReplicaSet (made if asked and missing) and
    /// all the others.
    pub(super) async fn get_all_replica_sets_and_sync_revision(
        &self,
        d: &mut Deployment,
        rs_list: &[ReplicaSet],
        create: bool,
    ) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>), SyncError> {
        let old_rss = find_old_replica_sets(d, rs_list);
        let new_rs = self
            .get_new_replica_set(d, rs_list, &old_rss, create)
            .await?;
        Ok((new_rs, old_rss))
    }

    /// Upstream's `scale`.
    pub(super) async fn scale(
        &self,
        d: &Deployment,
        new_rs: Option<&ReplicaSet>,
        old_rss: &[ReplicaSet],
    ) -> Result<(), SyncError> {
        let by_name = |wanted: &str| {
            old_rss
                .iter()
                .chain(new_rs)
                .find(|rs| util::name(rs) == wanted)
                .cloned()
        };
        match plan::scale_plan(d, new_rs, old_rss) {
            ScalePlan::Nothing => {}
            ScalePlan::One((name, size)) => {
                if let Some(rs) = by_name(&name) {
                    self.scale_replica_set(&rs, size, d, false).await?;
                }
            }
            ScalePlan::OldToZero(names) => {
                for name in names {
                    if let Some(rs) = by_name(&name) {
                        self.scale_replica_set(&rs, 0, d, false).await?;
                    }
                }
            }
            ScalePlan::Proportional(sizes) => {
                for (name, size) in sizes {
                    if let Some(rs) = by_name(&name) {
                        self.scale_replica_set(&rs, size, d, true).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Upstream's `scaleReplicaSet`: writes the size and the replicas annotations; returns whether the
    /// size changed and the ReplicaSet as written.
    pub(super) async fn scale_replica_set(
        &self,
        rs: &ReplicaSet,
        new_scale: i32,
        d: &Deployment,
        force: bool,
    ) -> Result<(bool, ReplicaSet), SyncError> {
        let old_scale = rs_replicas(rs);
        if !force && old_scale == new_scale {
            return Ok((false, rs.clone()));
        }
        let desired = deployment_replicas(d);
        let max = desired + max_surge(d);
        let size_changes = old_scale != new_scale;
        if !size_changes && !replicas_annotations_need_update(rs, desired, max) {
            return Ok((false, rs.clone()));
        }
        tracing::debug!(deployment = %key_of(d), replica_set = util::name(rs), old_scale, new_scale,
            resource_version = ?rs.metadata.resource_version, "Scaling replica set");
        let mut copy = rs.clone();
        set_rs_replicas(&mut copy, new_scale);
        set_replicas_annotations(&mut copy, desired, max);
        let updated = self.update_replica_set(&copy).await?;
        if size_changes {
            let direction = if old_scale < new_scale { "up" } else { "down" };
            let note = format!(
                "Scaled {direction} replica set {} from {old_scale} to {new_scale}",
                util::name(&updated)
            );
            self.event(d, false, "ScalingReplicaSet", note).await;
        }
        Ok((size_changes, updated))
    }

    /// Upstream's `cleanupDeployment`: deletes old ReplicaSets beyond revisionHistoryLimit.
    pub(super) async fn cleanup_deployment(
        &self,
        old_rss: &[ReplicaSet],
        d: &Deployment,
    ) -> Result<(), SyncError> {
        let namespace = d.metadata.namespace.clone().unwrap_or_default();
        for name in plan::replica_sets_to_clean_up(d, old_rss) {
            match self
                .rs_api(&namespace)
                .delete(&name, &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(api_err("deleting replica set", &name)(e)),
            }
        }
        Ok(())
    }

    /// Upstream's `syncDeploymentStatus`: writes the computed status if it changed.
    pub(super) async fn sync_deployment_status(
        &self,
        old_rss: &[ReplicaSet],
        new_rs: Option<&ReplicaSet>,
        d: &mut Deployment,
    ) -> Result<(), SyncError> {
        let all: Vec<&ReplicaSet> = old_rss.iter().chain(new_rs).collect();
        let status = plan::calculate_status(&all, new_rs, d, &now());
        if d.status.as_ref() == Some(&status) {
            return Ok(());
        }
        d.status = Some(status);
        self.update_status(d).await
    }

    /// Upstream's `syncRolloutStatus`: writes the status with the Progressing condition, or, unchanged,
    /// comes back when the progress deadline would pass.
    pub(super) async fn sync_rollout_status(
        &self,
        old_rss: &[ReplicaSet],
        new_rs: Option<&ReplicaSet>,
        d: &mut Deployment,
    ) -> Result<(), SyncError> {
        let all: Vec<&ReplicaSet> = old_rss.iter().chain(new_rs).collect();
        let now = now();
        let status = plan::rollout_status(&all, new_rs, d, &now);
        if d.status.as_ref() == Some(&status) {
            match plan::requeue_stuck_after(d, &status, now.0) {
                Some(after) if after.is_zero() => self.queue.add_rate_limited(ObjectKey::of(d)),
                Some(after) => self.queue.add_after(ObjectKey::of(d), after),
                None => {}
            }
            return Ok(());
        }
        d.status = Some(status);
        self.update_status(d).await
    }
}
