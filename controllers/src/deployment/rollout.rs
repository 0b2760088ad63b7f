//! The rollouts (upstream rolling.go, recreate.go, rollback.go): how the ReplicaSets move from the old
//! template to the new one, and the deprecated rollback request.

use std::collections::HashMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::PostParams;

use super::Controller;
use super::plan;
use super::sync::{SyncError, api_err, key_of};
use super::util::{self, *};
use crate::pod::Pod;

impl Controller {
    /// Upstream's `rolloutRolling`.
    pub(super) async fn rollout_rolling(
        &self,
        d: &mut Deployment,
        rs_list: &[ReplicaSet],
    ) -> Result<(), SyncError> {
        let (new_rs, old_rss) = self
            .get_all_replica_sets_and_sync_revision(d, rs_list, true)
            .await?;
        let Some(new_rs) = new_rs else {
            return Err(SyncError::Invalid(key_of(d), "no new replica set".into()));
        };
        let all: Vec<&ReplicaSet> = old_rss.iter().chain(std::iter::once(&new_rs)).collect();
        let invalid = |e: InvalidIntOrPercent| SyncError::Invalid(key_of(d), e.to_string());
        let pods = self.active_pods(all.iter().copied());
        if let Some(size) =
            plan::rolling_new_replica_set_size(d, &all, &new_rs, &pods).map_err(invalid)?
            && self.scale_replica_set(&new_rs, size, d, false).await?.0
        {
            return self.sync_rollout_status(&old_rss, Some(&new_rs), d).await;
        }
        let old_active = active(&old_rss);
        let resizes = plan::rolling_old_replica_sets_scale_down(d, &all, &old_active, &new_rs);
        let mut scaled_down = false;
        let mut current: HashMap<String, ReplicaSet> = old_rss
            .iter()
            .map(|rs| (util::name(rs).to_string(), rs.clone()))
            .collect();
        for (name, size) in resizes {
            if let Some(rs) = current.get(&name).cloned() {
                let (scaled, updated) = self.scale_replica_set(&rs, size, d, false).await?;
                scaled_down |= scaled;
                current.insert(name, updated);
            }
        }
        if scaled_down {
            return self.sync_rollout_status(&old_rss, Some(&new_rs), d).await;
        }
        if deployment_complete(d, &util::status(d)) {
            self.cleanup_deployment(&old_rss, d).await?;
        }
        self.sync_rollout_status(&old_rss, Some(&new_rs), d).await
    }

    /// Upstream's `rolloutRecreate`: all old pods go before the new ReplicaSet is scaled up.
    pub(super) async fn rollout_recreate(
        &self,
        d: &mut Deployment,
        rs_list: &[ReplicaSet],
        pods: &HashMap<String, Vec<Pod>>,
    ) -> Result<(), SyncError> {
        let (mut new_rs, mut old_rss) = self
            .get_all_replica_sets_and_sync_revision(d, rs_list, false)
            .await?;
        let mut scaled_down = false;
        for rs in old_rss.iter_mut().filter(|rs| rs_replicas(rs) > 0) {
            let (scaled, updated) = self.scale_replica_set(rs, 0, d, false).await?;
            if scaled {
                *rs = updated;
                scaled_down = true;
            }
        }
        if scaled_down || plan::old_pods_running(new_rs.as_ref(), &old_rss, pods) {
            return self.sync_rollout_status(&old_rss, new_rs.as_ref(), d).await;
        }
        if new_rs.is_none() {
            (new_rs, old_rss) = self
                .get_all_replica_sets_and_sync_revision(d, rs_list, true)
                .await?;
        }
        if let Some(rs) = new_rs.as_ref() {
            self.scale_replica_set(rs, deployment_replicas(d), d, false)
                .await?;
        }
        if deployment_complete(d, &util::status(d)) {
            self.cleanup_deployment(&old_rss, d).await?;
        }
        self.sync_rollout_status(&old_rss, new_rs.as_ref(), d).await
    }

    /// Upstream's `rollback` (the deprecated rollback annotation): puts an old revision's template back.
    pub(super) async fn rollback(
        &self,
        d: &mut Deployment,
        rs_list: &[ReplicaSet],
    ) -> Result<(), SyncError> {
        let (new_rs, old_rss) = self
            .get_all_replica_sets_and_sync_revision(d, rs_list, true)
            .await?;
        let all: Vec<&ReplicaSet> = old_rss.iter().chain(new_rs.as_ref()).collect();
        let mut to = rollback_to(d).unwrap_or(0);
        if to == 0 {
            to = last_revision(all.iter().copied());
            if to == 0 {
                self.event(
                    d,
                    true,
                    ROLLBACK_REVISION_NOT_FOUND,
                    "Unable to find last revision.".into(),
                )
                .await;
                return self.update_and_clear_rollback_to(d).await;
            }
        }
        if let Some(rs) = all.iter().find(|rs| revision(rs) == Some(to)) {
            let template = rs_template(rs).cloned().unwrap_or_default();
            if !equal_ignore_hash(&deployment_template(d), &template) {
                set_from_replica_set_template(d, template);
                set_deployment_annotations_to(d, rs);
                self.update_and_clear_rollback_to(d).await?;
                let note = format!(
                    "Rolled back deployment {:?} to revision {to}",
                    d.metadata.name.as_deref().unwrap_or_default()
                );
                self.event(d, false, ROLLBACK_DONE, note).await;
                return Ok(());
            }
            let note = format!(
                "The rollback revision contains the same template as current deployment {:?}",
                d.metadata.name.as_deref().unwrap_or_default()
            );
            self.event(d, true, ROLLBACK_TEMPLATE_UNCHANGED, note).await;
            return self.update_and_clear_rollback_to(d).await;
        }
        self.event(
            d,
            true,
            ROLLBACK_REVISION_NOT_FOUND,
            "Unable to find the revision to rollback to.".into(),
        )
        .await;
        self.update_and_clear_rollback_to(d).await
    }

    pub(super) async fn update_and_clear_rollback_to(
        &self,
        d: &mut Deployment,
    ) -> Result<(), SyncError> {
        if let Some(annotations) = d.metadata.annotations.as_mut() {
            annotations.remove(DEPRECATED_ROLLBACK_TO);
        }
        let name = d.metadata.name.clone().unwrap_or_default();
        let updated = self
            .deployment_api(d)
            .replace(&name, &PostParams::default(), d)
            .await
            .map_err(api_err("updating deployment", &name))?;
        d.metadata.resource_version = updated.metadata.resource_version;
        Ok(())
    }
}

/// The revision the deprecated rollback annotation asks for.
pub(super) fn rollback_to(d: &Deployment) -> Option<i64> {
    let value = d
        .metadata
        .annotations
        .as_ref()?
        .get(DEPRECATED_ROLLBACK_TO)?;
    if value.is_empty() {
        return None;
    }
    value.parse().ok()
}

/// Upstream's `SetFromReplicaSetTemplate`: the Deployment takes the template without the hash label.
pub(super) fn set_from_replica_set_template(
    d: &mut Deployment,
    mut template: k8s_openapi::api::core::v1::PodTemplateSpec,
) {
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY);
    }
    if let Some(spec) = d.spec.as_mut() {
        spec.template = template;
    }
}
