//! The Deployment controller's decisions as pure functions: how big each ReplicaSet should be (scaling,
//! rolling update, recreate), which old ReplicaSets to delete, and the status to write.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

use super::util::{self, *};
use crate::pod::Pod;

/// A ReplicaSet to resize: its name and new `spec.replicas`.
pub type Resize = (String, i32);

/// Active pods in the cache by the UID of the ReplicaSet controlling them.
pub type ActivePods = HashMap<String, i32>;

/// What `scale` (upstream `dc.scale`) does for a Deployment whose size changed or that is paused.
#[derive(Debug, PartialEq)]
pub enum ScalePlan {
    /// Nothing to do.
    Nothing,
    /// The only active (or the latest) ReplicaSet takes the Deployment's replicas.
    One(Resize),
    /// The new ReplicaSet is saturated: scale every active old one to zero.
    OldToZero(Vec<String>),
    /// A rolling update is under way: spread the change over the active ReplicaSets in proportion. Every
    /// one is written (its replicas annotations change even when its size does not).
    Proportional(Vec<Resize>),
}

/// Upstream's `scale`: scaling during a rollout keeps the ratios between the ReplicaSets, the largest
/// absorbing the rounding leftover.
pub fn scale_plan(
    d: &Deployment,
    new_rs: Option<&ReplicaSet>,
    old_rss: &[ReplicaSet],
) -> ScalePlan {
    let replicas = deployment_replicas(d);
    if let Some(rs) = find_active_or_latest(new_rs, old_rss) {
        if rs_replicas(rs) == replicas {
            return ScalePlan::Nothing;
        }
        return ScalePlan::One((name(rs).to_string(), replicas));
    }
    if is_saturated(d, new_rs) {
        let olds = active(old_rss).into_iter().map(|rs| name(rs).to_string());
        return ScalePlan::OldToZero(olds.collect());
    }
    if !is_rolling_update(d) {
        return ScalePlan::Nothing;
    }
    let mut all = active(old_rss.iter().chain(new_rs));
    let current = replica_count(all.iter().copied());
    let allowed = if replicas > 0 {
        replicas + max_surge(d)
    } else {
        0
    };
    let to_add = allowed - current;
    match to_add.cmp(&0) {
        std::cmp::Ordering::Greater => all.sort_by(|a, b| by_size_newer(a, b)),
        std::cmp::Ordering::Less => all.sort_by(|a, b| by_size_older(a, b)),
        std::cmp::Ordering::Equal => {}
    }
    let mut added = 0;
    let mut sizes: Vec<Resize> = Vec::with_capacity(all.len());
    for rs in &all {
        let mut size = rs_replicas(rs);
        if to_add != 0 {
            let proportion = replica_set_proportion(rs, d, to_add, added);
            size += proportion;
            added += proportion;
        }
        sizes.push((name(rs).to_string(), size));
    }
    if to_add != 0
        && let Some(first) = sizes.first_mut()
    {
        first.1 = (first.1 + to_add - added).max(0);
    }
    ScalePlan::Proportional(sizes)
}

/// Upstream's `reconcileNewReplicaSet`: the new ReplicaSet's next size, if it changes.
pub fn rolling_new_replica_set_size(
    d: &Deployment,
    all_rss: &[&ReplicaSet],
    new_rs: &ReplicaSet,
    pods: &ActivePods,
) -> Result<Option<i32>, InvalidIntOrPercent> {
    let replicas = deployment_replicas(d);
    let current = rs_replicas(new_rs);
    if current == replicas {
        return Ok(None);
    }
    if current > replicas {
        return Ok(Some(replicas));
    }
    let next = new_rs_new_replicas(d, all_rss, new_rs, pods)?;
    Ok((next != current).then_some(next))
}

/// Upstream's `NewRSNewReplicas`: how big the new ReplicaSet may be now. Unlike upstream, the surge
/// counts each ReplicaSet's pods still alive where they exceed its spec.replicas ([`pods_to_count`]), so
/// pods the new ReplicaSet creates never land before the old pods they replace are gone.
pub fn new_rs_new_replicas(
    d: &Deployment,
    all_rss: &[&ReplicaSet],
    new_rs: &ReplicaSet,
    pods: &ActivePods,
) -> Result<i32, InvalidIntOrPercent> {
    let replicas = deployment_replicas(d);
    if !is_rolling_update(d) {
        return Ok(replicas);
    }
    let (surge, _) = rolling_params(d);
    let surge = scaled_value(surge.unwrap_or(&IntOrString::Int(0)), replicas, true)?;
    let current: i32 = all_rss.iter().map(|rs| pods_to_count(rs, pods)).sum();
    let max_total = replicas + surge;
    if current >= max_total {
        return Ok(rs_replicas(new_rs));
    }
    let scale_up = (max_total - current).min(replicas - rs_replicas(new_rs));
    Ok(rs_replicas(new_rs) + scale_up)
}

/// The pods a ReplicaSet counts for against maxSurge: its spec.replicas, or its active pods while it has
/// more (a scale-down whose deletions have not all landed yet). Upstream counts spec.replicas alone, so
/// the new ReplicaSet's creates race the old one's deletes and the total can pass replicas + maxSurge.
pub fn pods_to_count(rs: &ReplicaSet, pods: &ActivePods) -> i32 {
    let active = pods.get(util::uid(rs)).copied().unwrap_or(0);
    rs_replicas(rs).max(active)
}

/// Upstream's `reconcileOldReplicaSets`: first old replicas that are not available go (oldest
/// ReplicaSets first) as far as availability allows, then available ones down to minAvailable. Returns
/// the resizes in the order upstream makes them.
pub fn rolling_old_replica_sets_scale_down(
    d: &Deployment,
    all_rss: &[&ReplicaSet],
    old_active: &[&ReplicaSet],
    new_rs: &ReplicaSet,
) -> Vec<Resize> {
    let old_pods = replica_count(old_active.iter().copied());
    if old_pods == 0 {
        return Vec::new();
    }
    let all_pods = replica_count(all_rss.iter().copied());
    let min_available = deployment_replicas(d) - max_unavailable(d);
    let new_unavailable = rs_replicas(new_rs) - rs_available(new_rs);
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Vec::new();
    }
    let mut olds: Vec<ReplicaSet> = old_active.iter().map(|rs| (*rs).clone()).collect();
    olds.sort_by(by_creation_timestamp);
    let mut resizes: Vec<Resize> = Vec::new();
    // Phase 1 (cleanupUnhealthyReplicas): unavailable old replicas, up to max_scaled_down.
    let mut cleaned = 0;
    for rs in olds.iter_mut() {
        if cleaned >= max_scaled_down {
            break;
        }
        let replicas = rs_replicas(rs);
        if replicas == 0 || replicas == rs_available(rs) {
            continue;
        }
        let down = (max_scaled_down - cleaned).min(replicas - rs_available(rs));
        if down < 0 {
            // The status counts more available pods than the spec asks for (it lags a scale-down):
            // upstream refuses this "scale down" that would scale up, and scales nothing this sync.
            return Vec::new();
        }
        set_rs_replicas(rs, replicas - down);
        resizes.push((name(rs).to_string(), replicas - down));
        cleaned += down;
    }
    // Phase 2 (scaleDownOldReplicaSetsForRollingUpdate): available replicas above minAvailable.
    let available = available_replica_count(olds.iter().chain(std::iter::once(new_rs)));
    if available <= min_available {
        return resizes;
    }
    let to_scale_down = available - min_available;
    let mut scaled = 0;
    for rs in &olds {
        if scaled >= to_scale_down {
            break;
        }
        let replicas = rs_replicas(rs);
        if replicas == 0 {
            continue;
        }
        let down = replicas.min(to_scale_down - scaled);
        resizes.push((name(rs).to_string(), replicas - down));
        scaled += down;
    }
    resizes
}

/// Upstream's `oldPodsRunning` (Recreate): old ReplicaSets still report pods, or an old ReplicaSet's pod
/// has not finished.
pub fn old_pods_running(
    new_rs: Option<&ReplicaSet>,
    old_rss: &[ReplicaSet],
    pods_by_rs: &HashMap<String, Vec<Pod>>,
) -> bool {
    if actual_replica_count(old_rss) > 0 {
        return true;
    }
    let new_uid = new_rs.map(util::uid);
    pods_by_rs
        .iter()
        .filter(|(rs_uid, _)| Some(rs_uid.as_str()) != new_uid)
        .flat_map(|(_, pods)| pods)
        .any(|pod| {
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Failed" | "Succeeded"))
        })
}

/// Upstream's `cleanupDeployment`: the old ReplicaSets beyond revisionHistoryLimit, lowest revision first,
/// that are fully scaled down, synced and not being deleted.
pub fn replica_sets_to_clean_up(d: &Deployment, old_rss: &[ReplicaSet]) -> Vec<String> {
    let Some(limit) = revision_history_limit(d) else {
        return Vec::new();
    };
    let mut alive: Vec<&ReplicaSet> = old_rss
        .iter()
        .filter(|rs| rs.metadata.deletion_timestamp.is_none())
        .collect();
    let diff = i64::try_from(alive.len()).unwrap_or(i64::MAX) - i64::from(limit);
    if diff <= 0 {
        return Vec::new();
    }
    alive.sort_by(|a, b| by_revision(a, b));
    alive
        .into_iter()
        .take(usize::try_from(diff).unwrap_or(0))
        .filter(|rs| {
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            rs_status_replicas(rs) == 0
                && rs_replicas(rs) == 0
                && rs.metadata.generation.unwrap_or(0) <= observed
        })
        .map(|rs| name(rs).to_string())
        .collect()
}

/// Upstream's `calculateStatus`: replica counts from the ReplicaSets, the Available condition from
/// minAvailable, other conditions carried over.
pub fn calculate_status(
    all_rss: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    d: &Deployment,
    now: &Time,
) -> DeploymentStatus {
    let all = || all_rss.iter().copied();
    let available = available_replica_count(all());
    let total = replica_count(all());
    let unavailable = (total - available).max(0);
    let old = status(d);
    // These fields are `omitempty` integers upstream: 0 is written as absent, and must compare so.
    let nonzero = |v: i32| (v != 0).then_some(v);
    let mut status = DeploymentStatus {
        observed_generation: Some(generation(d)).filter(|g| *g != 0),
        replicas: nonzero(actual_replica_count(all())),
        updated_replicas: nonzero(actual_replica_count(new_rs)),
        ready_replicas: nonzero(ready_replica_count(all())),
        available_replicas: nonzero(available),
        unavailable_replicas: nonzero(unavailable),
        collision_count: old.collision_count,
        terminating_replicas: terminating_replica_count(all()),
        conditions: old.conditions.clone().filter(|c| !c.is_empty()),
    };
    let condition = if available >= deployment_replicas(d) - max_unavailable(d) {
        new_condition(
            CONDITION_AVAILABLE,
            "True",
            MINIMUM_REPLICAS_AVAILABLE,
            "Deployment has minimum availability.".into(),
            now,
        )
    } else {
        new_condition(
            CONDITION_AVAILABLE,
            "False",
            MINIMUM_REPLICAS_UNAVAILABLE,
            "Deployment does not have minimum availability.".into(),
            now,
        )
    };
    set_condition(&mut status, condition);
    status
}

/// Upstream's `syncRolloutStatus` without the write: the status with the Progressing condition (complete,
/// progressing, or timed out) and ReplicaFailure taken from the ReplicaSets.
pub fn rollout_status(
    all_rss: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    d: &Deployment,
    now: &Time,
) -> DeploymentStatus {
    let mut new_status = calculate_status(all_rss, new_rs, d, now);
    if !has_progress_deadline(d) {
        remove_condition(&mut new_status, CONDITION_PROGRESSING);
    }
    let old = status(d);
    let current = get_condition(&old, CONDITION_PROGRESSING);
    let complete_already = new_status.replicas == new_status.updated_replicas
        && current.is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE_REASON));
    let subject = match new_rs {
        Some(rs) => format!("ReplicaSet {:?}", name(rs)),
        None => format!(
            "Deployment {:?}",
            d.metadata.name.as_deref().unwrap_or_default()
        ),
    };
    if has_progress_deadline(d) && !complete_already {
        if deployment_complete(d, &new_status) {
            let condition = new_condition(
                CONDITION_PROGRESSING,
                "True",
                NEW_RS_AVAILABLE_REASON,
                format!("{subject} has successfully progressed."),
                now,
            );
            set_condition(&mut new_status, condition);
        } else if deployment_progressing(d, &new_status) {
            // Progress refreshes lastUpdateTime (the deadline restarts); the transition time stays while
            // the condition stays True.
            let mut condition = new_condition(
                CONDITION_PROGRESSING,
                "True",
                REPLICA_SET_UPDATED_REASON,
                format!("{subject} is progressing."),
                now,
            );
            if let Some(current) = current {
                if current.status == "True" {
                    condition.last_transition_time = current.last_transition_time.clone();
                }
                remove_condition(&mut new_status, CONDITION_PROGRESSING);
            }
            set_condition(&mut new_status, condition);
        } else if deployment_timed_out(d, &new_status, now.0) {
            let condition = new_condition(
                CONDITION_PROGRESSING,
                "False",
                TIMED_OUT_REASON,
                format!("{subject} has timed out progressing."),
                now,
            );
            set_condition(&mut new_status, condition);
        }
    }
    match replica_failure(all_rss, new_rs) {
        Some(condition) => set_condition(&mut new_status, condition),
        None => remove_condition(&mut new_status, CONDITION_REPLICA_FAILURE),
    }
    new_status
}

/// Upstream's `getReplicaFailures`: the new ReplicaSet's ReplicaFailure condition, else any ReplicaSet's.
fn replica_failure(
    all_rss: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
) -> Option<k8s_openapi::api::apps::v1::DeploymentCondition> {
    let failure = |rs: &ReplicaSet| {
        rs.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == CONDITION_REPLICA_FAILURE))
            .map(replica_set_to_deployment_condition)
    };
    new_rs
        .and_then(failure)
        .or_else(|| all_rss.iter().find_map(|rs| failure(rs)))
}

/// When to look at a Deployment again (upstream `requeueStuckDeployment`) so that the progress deadline is
/// noticed: `None` when there is nothing to wait for; `Some(ZERO)` when the deadline is (almost) here.
pub fn requeue_stuck_after(
    d: &Deployment,
    new_status: &DeploymentStatus,
    now: Timestamp,
) -> Option<Duration> {
    let old = status(d);
    let current = get_condition(&old, CONDITION_PROGRESSING)?;
    let deadline = progress_deadline_seconds(d).filter(|_| has_progress_deadline(d))?;
    if deployment_complete(d, new_status) || current.reason.as_deref() == Some(TIMED_OUT_REASON) {
        return None;
    }
    let updated = current
        .last_update_time
        .as_ref()
        .map_or(0, |t| t.0.as_millisecond());
    let after_ms = updated + i64::from(deadline) * 1000 - now.as_millisecond();
    if after_ms < 1000 {
        return Some(Duration::ZERO);
    }
    Some(Duration::from_millis(u64::try_from(after_ms).unwrap_or(0)) + Duration::from_secs(1))
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
