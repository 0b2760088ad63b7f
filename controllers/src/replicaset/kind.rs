//! The two kinds one controller serves (upstream runs the ReplicaSet controller for ReplicationControllers
//! through adapters in pkg/controller/replication): apps/v1 ReplicaSet and core/v1 ReplicationController,
//! seen through one trait with a common status shape.

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{
    PodTemplateSpec, ReplicationController, ReplicationControllerCondition,
    ReplicationControllerStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::core::Selector;
use serde::Serialize;

use component_base::informer::Watched;

use crate::controller_ref_manager::{label_selector_as_selector, selector_from_set};
use crate::pod_control::ControllerKind;

/// One condition, common to both kinds.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    /// `ReplicaFailure`.
    pub type_: String,
    /// `True`, `False`, `Unknown`.
    pub status: String,
    /// Machine-readable reason (`FailedCreate`, `FailedDelete`).
    pub reason: Option<String>,
    /// Human-readable message (the apiserver's error).
    pub message: Option<String>,
    /// When `status` last changed.
    pub last_transition_time: Option<Time>,
}

/// The status fields the controller writes, common to both kinds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplicaStatus {
    /// Active pods claimed.
    pub replicas: i32,
    /// Of those, the ones carrying all the template's labels.
    pub fully_labeled_replicas: i32,
    /// Of those, the Ready ones.
    pub ready_replicas: i32,
    /// Of those, the ones Ready for minReadySeconds.
    pub available_replicas: i32,
    /// Claimed pods being deleted; only ReplicaSets report it (DeploymentReplicaSetTerminatingReplicas).
    pub terminating_replicas: Option<i32>,
    /// The generation this status describes.
    pub observed_generation: i64,
    /// Conditions (ReplicaFailure).
    pub conditions: Vec<Condition>,
}

/// A kind of object that keeps N pods running from a template.
pub trait ReplicaKind:
    Watched + Serialize + kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
{
    /// apiVersion and kind, as in owner references and events.
    const KIND: ControllerKind;
    /// Whether status.terminatingReplicas is maintained (upstream `EnableStatusTerminatingReplicas`).
    const TERMINATING_REPLICAS: bool;

    /// spec.replicas, 1 when unset (the apiserver's default).
    fn replicas(&self) -> i32;
    /// spec.minReadySeconds.
    fn min_ready_seconds(&self) -> i32;
    /// The pod selector; `Err` for one that cannot be evaluated.
    fn selector(&self) -> Result<Selector, String>;
    /// Whether the selector selects anything specific: an empty one matches no orphans in lookups.
    fn selector_is_empty(&self) -> bool;
    /// spec.template.
    fn template(&self) -> Option<&PodTemplateSpec>;
    /// The status in common form.
    fn replica_status(&self) -> ReplicaStatus;
    /// Replaces the status.
    fn set_replica_status(&mut self, status: ReplicaStatus);
}

impl ReplicaKind for ReplicaSet {
    const KIND: ControllerKind = ControllerKind {
        api_version: "apps/v1",
        kind: "ReplicaSet",
    };
    const TERMINATING_REPLICAS: bool = true;

    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }

    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }

    fn selector(&self) -> Result<Selector, String> {
        match &self.spec {
            Some(spec) => label_selector_as_selector(&spec.selector),
            None => Err("no spec".to_string()),
        }
    }

    fn selector_is_empty(&self) -> bool {
        self.spec.as_ref().is_none_or(|s| {
            s.selector
                .match_labels
                .as_ref()
                .is_none_or(|l| l.is_empty())
                && s.selector
                    .match_expressions
                    .as_ref()
                    .is_none_or(|e| e.is_empty())
        })
    }

    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }

    fn replica_status(&self) -> ReplicaStatus {
        let Some(s) = &self.status else {
            return ReplicaStatus::default();
        };
        ReplicaStatus {
            replicas: s.replicas,
            fully_labeled_replicas: s.fully_labeled_replicas.unwrap_or(0),
            ready_replicas: s.ready_replicas.unwrap_or(0),
            available_replicas: s.available_replicas.unwrap_or(0),
            terminating_replicas: s.terminating_replicas,
            observed_generation: s.observed_generation.unwrap_or(0),
            conditions: s
                .conditions
                .iter()
                .flatten()
                .map(|c| Condition {
                    type_: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    last_transition_time: c.last_transition_time.clone(),
                })
                .collect(),
        }
    }

    fn set_replica_status(&mut self, status: ReplicaStatus) {
        let conditions: Vec<ReplicaSetCondition> = status
            .conditions
            .into_iter()
            .map(|c| ReplicaSetCondition {
                type_: c.type_,
                status: c.status,
                reason: c.reason,
                message: c.message,
                last_transition_time: c.last_transition_time,
            })
            .collect();
        self.status = Some(ReplicaSetStatus {
            replicas: status.replicas,
            fully_labeled_replicas: Some(status.fully_labeled_replicas),
            ready_replicas: Some(status.ready_replicas),
            available_replicas: Some(status.available_replicas),
            terminating_replicas: status.terminating_replicas,
            observed_generation: Some(status.observed_generation),
            conditions: (!conditions.is_empty()).then_some(conditions),
        });
    }
}

impl ReplicaKind for ReplicationController {
    const KIND: ControllerKind = ControllerKind {
        api_version: "v1",
        kind: "ReplicationController",
    };
    const TERMINATING_REPLICAS: bool = false;

    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }

    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }

    fn selector(&self) -> Result<Selector, String> {
        let set = self
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        Ok(selector_from_set(&set))
    }

    fn selector_is_empty(&self) -> bool {
        self.spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .is_none_or(|s| s.is_empty())
    }

    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }

    fn replica_status(&self) -> ReplicaStatus {
        let Some(s) = &self.status else {
            return ReplicaStatus::default();
        };
        ReplicaStatus {
            replicas: s.replicas,
            fully_labeled_replicas: s.fully_labeled_replicas.unwrap_or(0),
            ready_replicas: s.ready_replicas.unwrap_or(0),
            available_replicas: s.available_replicas.unwrap_or(0),
            terminating_replicas: None,
            observed_generation: s.observed_generation.unwrap_or(0),
            conditions: s
                .conditions
                .iter()
                .flatten()
                .map(|c| Condition {
                    type_: c.type_.clone(),
                    status: c.status.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    last_transition_time: c.last_transition_time.clone(),
                })
                .collect(),
        }
    }

    fn set_replica_status(&mut self, status: ReplicaStatus) {
        let conditions: Vec<ReplicationControllerCondition> = status
            .conditions
            .into_iter()
            .map(|c| ReplicationControllerCondition {
                type_: c.type_,
                status: c.status,
                reason: c.reason,
                message: c.message,
                last_transition_time: c.last_transition_time,
            })
            .collect();
        self.status = Some(ReplicationControllerStatus {
            replicas: status.replicas,
            fully_labeled_replicas: Some(status.fully_labeled_replicas),
            ready_replicas: Some(status.ready_replicas),
            available_replicas: Some(status.available_replicas),
            observed_generation: Some(status.observed_generation),
            conditions: (!conditions.is_empty()).then_some(conditions),
        });
    }
}
