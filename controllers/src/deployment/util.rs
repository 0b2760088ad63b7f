//! Deployment helpers (upstream `pkg/controller/deployment/util`): annotations, revisions, conditions,
//! rolling-update fenceposts, replica counts and the new/old ReplicaSet split. All pure.

use std::cmp::Ordering;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetCondition,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

pub use super::revision::*;

/// The revision of a ReplicaSet (and, on a Deployment, of its newest ReplicaSet).
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions a ReplicaSet served, comma-separated.
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's replicas when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
/// The Deployment's replicas plus maxSurge when the ReplicaSet was last scaled.
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";
/// The deprecated extensions/v1beta1 rollback request.
pub const DEPRECATED_ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
/// kubectl's last-applied configuration, never copied to ReplicaSets.
pub(super) const LAST_APPLIED_CONFIG: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The label (and selector requirement) that tells a Deployment's ReplicaSets apart.
pub const DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY: &str = "pod-template-hash";

/// Condition types.
pub const CONDITION_AVAILABLE: &str = "Available";
/// The Deployment is rolling out, done, or stuck.
pub const CONDITION_PROGRESSING: &str = "Progressing";
/// Some pods could not be created or deleted.
pub const CONDITION_REPLICA_FAILURE: &str = "ReplicaFailure";

/// Event and condition reasons.
pub const ROLLBACK_REVISION_NOT_FOUND: &str = "DeploymentRollbackRevisionNotFound";
pub const ROLLBACK_TEMPLATE_UNCHANGED: &str = "DeploymentRollbackTemplateUnchanged";
pub const ROLLBACK_DONE: &str = "DeploymentRollback";
pub const REPLICA_SET_UPDATED_REASON: &str = "ReplicaSetUpdated";
pub const FAILED_RS_CREATE_REASON: &str = "ReplicaSetCreateError";
pub const NEW_REPLICA_SET_REASON: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS_REASON: &str = "FoundNewReplicaSet";
pub const NEW_RS_AVAILABLE_REASON: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT_REASON: &str = "ProgressDeadlineExceeded";
pub const PAUSED_DEPLOY_REASON: &str = "DeploymentPaused";
pub const RESUMED_DEPLOY_REASON: &str = "DeploymentResumed";
pub const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";

/// `math.MaxInt32`: upstream's "no limit" for progressDeadlineSeconds and revisionHistoryLimit.
const NO_LIMIT: i32 = i32::MAX;

// ---- field accessors (k8s-openapi fields are optional; these give the apiserver's defaults) ----

/// `spec.replicas` (defaulted to 1 by the apiserver).
pub fn deployment_replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `spec.replicas` of a ReplicaSet (defaulted to 1 by the apiserver).
pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// Sets `spec.replicas` of a ReplicaSet.
pub fn set_rs_replicas(rs: &mut ReplicaSet, replicas: i32) {
    rs.spec.get_or_insert_with(Default::default).replicas = Some(replicas);
}

/// `status.replicas` of a ReplicaSet.
pub fn rs_status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map_or(0, |s| s.replicas)
}

/// `status.availableReplicas` of a ReplicaSet.
pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// `status.readyReplicas` of a ReplicaSet.
pub fn rs_ready(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

/// The ReplicaSet's pod template.
pub fn rs_template(rs: &ReplicaSet) -> Option<&PodTemplateSpec> {
    rs.spec.as_ref().and_then(|s| s.template.as_ref())
}

/// The Deployment's pod template.
pub fn deployment_template(d: &Deployment) -> PodTemplateSpec {
    d.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

/// A ReplicaSet's UID.
pub fn uid(rs: &ReplicaSet) -> &str {
    rs.metadata.uid.as_deref().unwrap_or("")
}

/// A ReplicaSet's name.
pub fn name(rs: &ReplicaSet) -> &str {
    rs.metadata.name.as_deref().unwrap_or("")
}

/// Whether the Deployment is paused.
pub fn is_paused(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
}

/// The Deployment's status, or an empty one.
pub fn status(d: &Deployment) -> DeploymentStatus {
    d.status.clone().unwrap_or_default()
}

/// `metadata.generation`.
pub fn generation(d: &Deployment) -> i64 {
    d.metadata.generation.unwrap_or(0)
}

// ---- strategy and fenceposts ----

/// Whether the strategy is RollingUpdate (the apiserver's default).
pub fn is_rolling_update(d: &Deployment) -> bool {
    strategy_type(d) == "RollingUpdate"
}

/// `spec.strategy.type`, defaulted as the apiserver does.
pub fn strategy_type(d: &Deployment) -> &str {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
}

/// A bad maxSurge/maxUnavailable value (the apiserver's validation normally prevents it).
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid value for IntOrString: invalid type: string is not a percentage: {0:?}")]
pub struct InvalidIntOrPercent(pub String);

/// intstr's `GetScaledValueFromIntOrPercent`: an integer as is, or a percentage of `total` rounded up or
/// down.
pub fn scaled_value(
    value: &IntOrString,
    total: i32,
    round_up: bool,
) -> Result<i32, InvalidIntOrPercent> {
    match value {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let percent: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| InvalidIntOrPercent(s.clone()))?;
            let product = percent * i64::from(total);
            // Integer ceiling/floor of product/100, as math.Ceil/Floor of the float quotient.
            let scaled = if round_up {
                product.div_euclid(100) + i64::from(product.rem_euclid(100) != 0)
            } else {
                product.div_euclid(100)
            };
            Ok(i32::try_from(scaled).unwrap_or(i32::MAX))
        }
    }
}

/// Upstream's `ResolveFenceposts`: maxSurge rounds up, maxUnavailable rounds down, and both zero would
/// deadlock the rollout, so maxUnavailable becomes 1.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), InvalidIntOrPercent> {
    let zero = IntOrString::Int(0);
    let surge = scaled_value(max_surge.unwrap_or(&zero), desired, true)?;
    let mut unavailable = scaled_value(max_unavailable.unwrap_or(&zero), desired, false)?;
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok((surge, unavailable))
}

/// The RollingUpdate strategy's maxSurge and maxUnavailable as written.
pub fn rolling_params(d: &Deployment) -> (Option<&IntOrString>, Option<&IntOrString>) {
    let rolling = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    (
        rolling.and_then(|r| r.max_surge.as_ref()),
        rolling.and_then(|r| r.max_unavailable.as_ref()),
    )
}

/// Upstream's `MaxSurge`: 0 unless RollingUpdate; a bad value counts as 0, as upstream ignores the error.
pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling_update(d) {
        return 0;
    }
    let (surge, unavailable) = rolling_params(d);
    resolve_fenceposts(surge, unavailable, deployment_replicas(d)).map_or(0, |(s, _)| s)
}

/// Upstream's `MaxUnavailable`: 0 unless RollingUpdate with replicas, and never more than replicas.
pub fn max_unavailable(d: &Deployment) -> i32 {
    let replicas = deployment_replicas(d);
    if !is_rolling_update(d) || replicas == 0 {
        return 0;
    }
    let (surge, unavailable) = rolling_params(d);
    let unavailable = resolve_fenceposts(surge, unavailable, replicas).map_or(0, |(_, u)| u);
    unavailable.min(replicas)
}

/// Whether progressDeadlineSeconds is set to a real limit.
pub fn has_progress_deadline(d: &Deployment) -> bool {
    progress_deadline_seconds(d).is_some_and(|s| s != NO_LIMIT)
}

/// `spec.progressDeadlineSeconds`.
pub fn progress_deadline_seconds(d: &Deployment) -> Option<i32> {
    d.spec.as_ref().and_then(|s| s.progress_deadline_seconds)
}

/// `spec.revisionHistoryLimit` when it is a real limit.
pub fn revision_history_limit(d: &Deployment) -> Option<i32> {
    d.spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .filter(|l| *l != NO_LIMIT)
}

// ---- conditions ----

/// Now, at the second precision the API keeps, so a written condition reads back equal.
pub fn now() -> Time {
    Time(Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_else(|_| Timestamp::now()))
}

/// A new condition stamped `now`.
pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: &Time,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
    }
}

/// The condition of `type_`.
pub fn get_condition<'a>(
    status: &'a DeploymentStatus,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
}

/// Upstream's `SetDeploymentCondition`: a condition with the same status and reason is kept as it is;
/// with the same status the transition time is kept; otherwise it replaces the old one at the end.
pub fn set_condition(status: &mut DeploymentStatus, mut condition: DeploymentCondition) {
    if let Some(current) = get_condition(status, &condition.type_) {
        if current.status == condition.status && current.reason == condition.reason {
            return;
        }
        if current.status == condition.status {
            condition.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &condition.type_);
    status
        .conditions
        .get_or_insert_with(Vec::new)
        .push(condition);
}

/// Removes the condition of `type_`; no conditions left means none at all, as Go's nil slice.
pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != type_);
        if conditions.is_empty() {
            status.conditions = None;
        }
    }
}

/// A ReplicaSet condition as a Deployment condition.
pub fn replica_set_to_deployment_condition(c: &ReplicaSetCondition) -> DeploymentCondition {
    DeploymentCondition {
        type_: c.type_.clone(),
        status: c.status.clone(),
        last_transition_time: c.last_transition_time.clone(),
        last_update_time: c.last_transition_time.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
    }
}

// ---- counts ----

/// Sum of `spec.replicas`.
pub fn replica_count<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    rss.into_iter().map(rs_replicas).sum()
}

/// Sum of `status.replicas`.
pub fn actual_replica_count<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    rss.into_iter().map(rs_status_replicas).sum()
}

/// Sum of `status.readyReplicas`.
pub fn ready_replica_count<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    rss.into_iter().map(rs_ready).sum()
}

/// Sum of `status.availableReplicas`.
pub fn available_replica_count<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    rss.into_iter().map(rs_available).sum()
}

/// Sum of `status.terminatingReplicas`; unknown (`None`) if a ReplicaSet that was synced does not report
/// it. A ReplicaSet never synced counts as 0.
pub fn terminating_replica_count<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> Option<i32> {
    let mut total = 0;
    for rs in rss {
        let status = rs.status.as_ref();
        let observed = status.and_then(|s| s.observed_generation).unwrap_or(0);
        match status.and_then(|s| s.terminating_replicas) {
            Some(t) => total += t,
            None if observed == 0 => {}
            None => return None,
        }
    }
    Some(total)
}

// ---- ordering ----

fn creation_key(rs: &ReplicaSet) -> (Option<Timestamp>, &str) {
    (
        rs.metadata.creation_timestamp.as_ref().map(|t| t.0),
        name(rs),
    )
}

/// `ReplicaSetsByCreationTimestamp`: oldest first, names break ties.
pub fn by_creation_timestamp(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    creation_key(a).cmp(&creation_key(b))
}

/// `ReplicaSetsBySizeOlder`: largest first, older first among equals.
pub fn by_size_older(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    rs_replicas(b)
        .cmp(&rs_replicas(a))
        .then_with(|| by_creation_timestamp(a, b))
}

/// `ReplicaSetsBySizeNewer`: largest first, newer first among equals.
pub fn by_size_newer(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    rs_replicas(b)
        .cmp(&rs_replicas(a))
        .then_with(|| by_creation_timestamp(b, a))
}

/// `ReplicaSetsByRevision`: lowest revision first; creation time when revisions tie or do not parse.
pub fn by_revision(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    match (revision(a), revision(b)) {
        (Some(ra), Some(rb)) if ra != rb => ra.cmp(&rb),
        _ => by_creation_timestamp(a, b),
    }
}

// ---- templates, new and old ReplicaSets ----

/// Drops nulls, empty objects and empty arrays: Go's semantic equality does not tell nil from empty.
fn normalize(value: serde_json::Value) -> Option<serde_json::Value> {
    use serde_json::Value;
    match value {
        Value::Null => None,
        Value::Object(map) => {
            let map: serde_json::Map<String, Value> = map
                .into_iter()
                .filter_map(|(k, v)| normalize(v).map(|v| (k, v)))
                .collect();
            (!map.is_empty()).then_some(Value::Object(map))
        }
        Value::Array(items) => {
            let items: Vec<Value> = items
                .into_iter()
                .map(|v| normalize(v).unwrap_or(Value::Null))
                .collect();
            (!items.is_empty()).then_some(Value::Array(items))
        }
        other => Some(other),
    }
}

fn without_hash(template: &PodTemplateSpec) -> Option<serde_json::Value> {
    let mut template = template.clone();
    if let Some(metadata) = template.metadata.as_mut()
        && let Some(labels) = metadata.labels.as_mut()
    {
        labels.remove(DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY);
    }
    serde_json::to_value(&template).ok().and_then(normalize)
}

/// Upstream's `EqualIgnoreHash`: the templates are equal once the pod-template-hash label is dropped.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    without_hash(a) == without_hash(b)
}

/// Upstream's `FindNewReplicaSet`: the oldest ReplicaSet whose template equals the Deployment's.
pub fn find_new_replica_set(d: &Deployment, rss: &[ReplicaSet]) -> Option<ReplicaSet> {
    let template = deployment_template(d);
    let mut sorted: Vec<&ReplicaSet> = rss.iter().collect();
    sorted.sort_by(|a, b| by_creation_timestamp(a, b));
    sorted
        .into_iter()
        .find(|rs| rs_template(rs).is_some_and(|t| equal_ignore_hash(t, &template)))
        .cloned()
}

/// Upstream's `FindOldReplicaSets` (its second result): every ReplicaSet but the new one.
pub fn find_old_replica_sets(d: &Deployment, rss: &[ReplicaSet]) -> Vec<ReplicaSet> {
    let new_uid = find_new_replica_set(d, rss).map(|rs| uid(&rs).to_string());
    rss.iter()
        .filter(|rs| new_uid.as_deref() != Some(uid(rs)))
        .cloned()
        .collect()
}

/// ReplicaSets with replicas (`FilterActiveReplicaSets`).
pub fn active<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> Vec<&'a ReplicaSet> {
    rss.into_iter().filter(|rs| rs_replicas(rs) > 0).collect()
}

/// Upstream's `FindActiveOrLatest`: the only ReplicaSet with replicas; with none, the new one or else the
/// newest old one; with several, none.
pub fn find_active_or_latest<'a>(
    new_rs: Option<&'a ReplicaSet>,
    old_rss: &'a [ReplicaSet],
) -> Option<&'a ReplicaSet> {
    if new_rs.is_none() && old_rss.is_empty() {
        return None;
    }
    let mut olds: Vec<&ReplicaSet> = old_rss.iter().collect();
    olds.sort_by(|a, b| by_creation_timestamp(b, a));
    let all = active(olds.iter().copied().chain(new_rs));
    match all.len() {
        0 => new_rs.or_else(|| olds.first().copied()),
        1 => Some(all[0]),
        _ => None,
    }
}

/// Upstream's `IsSaturated`: the new ReplicaSet runs exactly the Deployment's replicas, all available.
pub fn is_saturated(d: &Deployment, rs: Option<&ReplicaSet>) -> bool {
    let Some(rs) = rs else { return false };
    let desired = rs
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DESIRED_REPLICAS_ANNOTATION))
        .and_then(|v| v.parse::<i32>().ok());
    let replicas = deployment_replicas(d);
    desired == Some(replicas) && rs_replicas(rs) == replicas && rs_available(rs) == replicas
}

/// Upstream's `DeploymentComplete`: every replica updated and available, and the spec observed.
pub fn deployment_complete(d: &Deployment, new_status: &DeploymentStatus) -> bool {
    let replicas = deployment_replicas(d);
    new_status.updated_replicas.unwrap_or(0) == replicas
        && new_status.replicas.unwrap_or(0) == replicas
        && new_status.available_replicas.unwrap_or(0) == replicas
        && new_status.observed_generation.unwrap_or(0) >= generation(d)
}

/// Upstream's `DeploymentProgressing`: more updated, ready or available replicas, or fewer old ones, than
/// the last status says.
pub fn deployment_progressing(d: &Deployment, new_status: &DeploymentStatus) -> bool {
    let old = status(d);
    let get = |v: Option<i32>| v.unwrap_or(0);
    let old_old = get(old.replicas) - get(old.updated_replicas);
    let new_old = get(new_status.replicas) - get(new_status.updated_replicas);
    get(new_status.updated_replicas) > get(old.updated_replicas)
        || new_old < old_old
        || get(new_status.ready_replicas) > get(old.ready_replicas)
        || get(new_status.available_replicas) > get(old.available_replicas)
}

/// Upstream's `DeploymentTimedOut`: the Progressing condition was last updated more than
/// progressDeadlineSeconds before `now`.
pub fn deployment_timed_out(d: &Deployment, new_status: &DeploymentStatus, now: Timestamp) -> bool {
    let Some(deadline) = progress_deadline_seconds(d).filter(|_| has_progress_deadline(d)) else {
        return false;
    };
    let Some(condition) = get_condition(new_status, CONDITION_PROGRESSING) else {
        return false;
    };
    match condition.reason.as_deref() {
        Some(NEW_RS_AVAILABLE_REASON) => return false,
        Some(TIMED_OUT_REASON) => return true,
        _ => {}
    }
    let from = condition
        .last_update_time
        .as_ref()
        .map_or(0, |t| t.0.as_second());
    from + i64::from(deadline) < now.as_second()
}

/// Upstream's `GetReplicaSetProportion`: this ReplicaSet's share of a scaling of `to_add` replicas, of
/// which `added` are handed out already.
pub fn replica_set_proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = replica_set_fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

fn replica_set_fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    let replicas = deployment_replicas(d);
    if replicas == 0 {
        return -rs_replicas(rs);
    }
    let max_replicas = replicas + max_surge(d);
    let before = match max_replicas_annotation(rs) {
        Some(v) if v != 0 => v,
        _ => {
            let current = status(d).replicas.unwrap_or(0);
            if current == 0 {
                return 0;
            }
            current
        }
    };
    let new_size = f64::from(rs_replicas(rs)) * f64::from(max_replicas) / f64::from(before);
    round_to_i32(new_size) - rs_replicas(rs)
}

/// `integer.RoundToInt32`: halves round away from zero.
fn round_to_i32(value: f64) -> i32 {
    // Replica counts are far inside i32; `as` saturates at worst.
    if value < 0.0 {
        (value - 0.5) as i32
    } else {
        (value + 0.5) as i32
    }
}

#[cfg(test)]
#[path = "util_tests.rs"]
mod tests;
