//! The new ReplicaSet (upstream `getNewReplicaSet`): found by template, kept at the newest revision, or
//! created under the template hash.

use component_base::informer::ObjectKey;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;

use super::Controller;
use super::claim;
use super::hash::{compute_hash, replica_set_name};
use super::plan::new_rs_new_replicas;
use super::sync::{MAX_REV_HISTORY_LENGTH_IN_CHARS, SyncError, key_of};
use super::util::{self, *};

impl Controller {
    /// Upstream's `getNewReplicaSet`: keeps the new ReplicaSet's revision and annotations current, or
    /// creates it (named by the template hash, bumping collisionCount on a name clash).
    pub(super) async fn get_new_replica_set(
        &self,
        d: &mut Deployment,
        rs_list: &[ReplicaSet],
        old_rss: &[ReplicaSet],
        create: bool,
    ) -> Result<Option<ReplicaSet>, SyncError> {
        let new_revision = max_revision(old_rss) + 1;
        if let Some(existing) = find_new_replica_set(d, rs_list) {
            let mut rs = existing;
            let annotations_updated = set_new_replica_set_annotations(
                d,
                &mut rs,
                new_revision,
                true,
                MAX_REV_HISTORY_LENGTH_IN_CHARS,
            );
            let min_ready = d.spec.as_ref().and_then(|s| s.min_ready_seconds);
            let spec = rs.spec.get_or_insert_with(Default::default);
            if annotations_updated || spec.min_ready_seconds.unwrap_or(0) != min_ready.unwrap_or(0)
            {
                spec.min_ready_seconds = min_ready;
                return self.update_replica_set(&rs).await.map(Some);
            }
            let revision = rs
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(REVISION_ANNOTATION))
                .cloned()
                .unwrap_or_default();
            let mut needs_update = set_deployment_revision(d, &revision);
            if has_progress_deadline(d)
                && get_condition(&util::status(d), CONDITION_PROGRESSING).is_none()
            {
                let condition = new_condition(
                    CONDITION_PROGRESSING,
                    "True",
                    FOUND_NEW_RS_REASON,
                    format!("Found new replica set {:?}", util::name(&rs)),
                    &now(),
                );
                set_condition(d.status.get_or_insert_with(Default::default), condition);
                needs_update = true;
            }
            if needs_update {
                self.update_status(d).await?;
            }
            return Ok(Some(rs));
        }
        if !create {
            return Ok(None);
        }
        let new_rs = self.new_replica_set_object(d, old_rss, new_revision)?;
        let namespace = d.metadata.namespace.clone().unwrap_or_default();
        let replicas = rs_replicas(&new_rs);
        let rs_name = util::name(&new_rs).to_string();
        let (created, already_exists) = match self
            .rs_api(&namespace)
            .create(&PostParams::default(), &new_rs)
            .await
        {
            Ok(created) => (created, false),
            Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => {
                let key = ObjectKey {
                    namespace: Some(namespace.clone()),
                    name: rs_name.clone(),
                };
                let existing = self.replica_sets.get(&key);
                let ours = existing.as_ref().is_some_and(|rs| {
                    claim::controller_ref(rs.metadata.owner_references.as_ref())
                        .map(|o| o.uid.as_str())
                        == d.metadata.uid.as_deref()
                        && rs_template(rs)
                            .is_some_and(|t| equal_ignore_hash(&deployment_template(d), t))
                });
                match existing {
                    Some(rs) if ours => ((*rs).clone(), true),
                    // Not cached yet (our own create from an earlier sync): not a collision; retry once
                    // the cache has it, as upstream's lister miss does.
                    None => {
                        return Err(SyncError::Api {
                            action: "creating replica set",
                            object: rs_name,
                            source: kube::Error::Api(s),
                        });
                    }
                    Some(_) => {
                        // A hash collision: the next sync tries another name.
                        let status = d.status.get_or_insert_with(Default::default);
                        status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
                        if self.update_status(d).await.is_ok() {
                            tracing::debug!(deployment = %key_of(d), "found a hash collision, bumped collisionCount");
                        }
                        return Err(SyncError::Api {
                            action: "creating replica set",
                            object: rs_name,
                            source: kube::Error::Api(s),
                        });
                    }
                }
            }
            Err(e) => {
                let msg = format!("Failed to create new replica set {rs_name:?}: {e}");
                if has_progress_deadline(d) {
                    let condition = new_condition(
                        CONDITION_PROGRESSING,
                        "False",
                        FAILED_RS_CREATE_REASON,
                        msg.clone(),
                        &now(),
                    );
                    set_condition(d.status.get_or_insert_with(Default::default), condition);
                    let _ = self.update_status(d).await;
                }
                self.event(d, true, FAILED_RS_CREATE_REASON, msg).await;
                return Err(SyncError::Api {
                    action: "creating replica set",
                    object: rs_name,
                    source: e,
                });
            }
        };
        if !already_exists && replicas > 0 {
            let note = format!(
                "Scaled up replica set {} from 0 to {replicas}",
                util::name(&created)
            );
            self.event(d, false, "ScalingReplicaSet", note).await;
        }
        let mut needs_update = set_deployment_revision(d, &new_revision.to_string());
        if !already_exists && has_progress_deadline(d) {
            let condition = new_condition(
                CONDITION_PROGRESSING,
                "True",
                NEW_REPLICA_SET_REASON,
                format!("Created new replica set {:?}", util::name(&created)),
                &now(),
            );
            set_condition(d.status.get_or_insert_with(Default::default), condition);
            needs_update = true;
        }
        if needs_update {
            self.update_status(d).await?;
        }
        Ok(Some(created))
    }

    /// The new ReplicaSet for the Deployment's template, sized as far as the strategy allows now.
    pub(super) fn new_replica_set_object(
        &self,
        d: &Deployment,
        old_rss: &[ReplicaSet],
        new_revision: i64,
    ) -> Result<ReplicaSet, SyncError> {
        let mut template = deployment_template(d);
        let collision_count = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = compute_hash(&template, collision_count);
        let metadata = template.metadata.get_or_insert_with(Default::default);
        metadata.labels.get_or_insert_with(Default::default).insert(
            DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY.to_string(),
            hash.clone(),
        );
        let labels = metadata.labels.clone();
        let mut selector = d
            .spec
            .as_ref()
            .map(|s| s.selector.clone())
            .unwrap_or_default();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(
                DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY.to_string(),
                hash.clone(),
            );
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(replica_set_name(
                    d.metadata.name.as_deref().unwrap_or_default(),
                    &hash,
                )),
                namespace: d.metadata.namespace.clone(),
                owner_references: Some(vec![claim::owner_reference(d)]),
                labels,
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: d.spec.as_ref().and_then(|s| s.min_ready_seconds),
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let all: Vec<&ReplicaSet> = old_rss.iter().chain(std::iter::once(&rs)).collect();
        let pods = self.active_pods(old_rss);
        let replicas = new_rs_new_replicas(d, &all, &rs, &pods)
            .map_err(|e| SyncError::Invalid(key_of(d), e.to_string()))?;
        set_rs_replicas(&mut rs, replicas);
        set_new_replica_set_annotations(
            d,
            &mut rs,
            new_revision,
            false,
            MAX_REV_HISTORY_LENGTH_IN_CHARS,
        );
        Ok(rs)
    }
}
