//! Node health as the node lifecycle controller tracks it (upstream's `nodeHealthData` and
//! `tryUpdateNodeHealth`): staleness is measured by when the controller itself last saw the Ready
//! heartbeat or the node's Lease change, never by the node's clock.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// Conditions set to Unknown when a node stops reporting; NetworkUnavailable is left alone, as upstream
/// (the control plane manages it).
pub const MONITORED_CONDITIONS: [&str; 4] =
    ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// What the controller last observed of a node.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeHealth {
    /// When the controller last saw a new heartbeat (Ready condition or Lease renewal).
    pub probe_timestamp: Timestamp,
    /// When the controller last saw the Ready condition transition.
    pub ready_transition_timestamp: Timestamp,
    /// The node status last observed.
    pub status: NodeStatus,
    /// The node's Lease last observed (`Some(renewTime)`), `None` if none was.
    pub lease: Option<Option<Timestamp>>,
}

/// The outcome of one health check.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    /// The health to remember.
    pub health: NodeHealth,
    /// The grace period the node is entitled to.
    pub grace_period: Duration,
    /// The Ready condition as the node reported it (a synthetic Unknown one if it never did).
    pub observed_ready: NodeCondition,
    /// The Ready condition after this check (`None` if the node never reported one and is not stale).
    pub current_ready: Option<NodeCondition>,
    /// The status to write (UpdateStatus) because the node went stale, and the health to remember once
    /// it is written.
    pub status_update: Option<(NodeStatus, NodeHealth)>,
}

/// The node's condition of `type_`.
pub fn condition<'a>(status: Option<&'a NodeStatus>, type_: &str) -> Option<&'a NodeCondition> {
    status?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

fn renew_time(lease: &Lease) -> Option<Timestamp> {
    lease.spec.as_ref()?.renew_time.as_ref().map(|t| t.0)
}

/// Upstream's `tryUpdateNodeHealth` without the write: decides the node's health from what was saved, the
/// node, its Lease and the time.
pub fn check(
    node: &Node,
    saved: Option<&NodeHealth>,
    lease: Option<&Lease>,
    now: Timestamp,
    startup_grace: Duration,
    monitor_grace: Duration,
) -> HealthCheck {
    let created = node
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
    let status = node.status.clone().unwrap_or_default();
    let current = condition(Some(&status), "Ready").cloned();
    let mut saved = saved.cloned();
    let (observed_ready, grace_period) = match &current {
        None => {
            // Never reported: a synthetic Unknown condition dated at creation.
            let observed = NodeCondition {
                type_: "Ready".into(),
                status: "Unknown".into(),
                last_heartbeat_time: Some(Time(created)),
                last_transition_time: Some(Time(created)),
                ..Default::default()
            };
            saved = Some(match saved {
                Some(health) => NodeHealth {
                    status: status.clone(),
                    ..health
                },
                None => NodeHealth {
                    probe_timestamp: created,
                    ready_transition_timestamp: created,
                    status: status.clone(),
                    lease: None,
                },
            });
            (observed, startup_grace)
        }
        Some(ready) => (ready.clone(), monitor_grace),
    };
    let fresh = || NodeHealth {
        probe_timestamp: now,
        ready_transition_timestamp: now,
        status: status.clone(),
        lease: None,
    };
    let saved_ready = saved
        .as_ref()
        .and_then(|h| condition(Some(&h.status), "Ready").cloned());
    let saved_lease = saved.as_ref().and_then(|h| h.lease);
    let mut health = match (saved, &saved_ready, &current) {
        (None, _, _) => fresh(),
        // Restarted with the node already reporting, or the condition was removed: start counting now.
        (Some(_), None, Some(_)) | (Some(_), Some(_), None) => fresh(),
        (Some(health), Some(saved_ready), Some(current))
            if saved_ready.last_heartbeat_time != current.last_heartbeat_time =>
        {
            let ready_transition_timestamp =
                if saved_ready.last_transition_time != current.last_transition_time {
                    now
                } else {
                    health.ready_transition_timestamp
                };
            NodeHealth {
                probe_timestamp: now,
                ready_transition_timestamp,
                status: status.clone(),
                lease: health.lease,
            }
        }
        (Some(health), _, _) => health,
    };
    // A renewed Lease counts as a heartbeat even if the status is never posted.
    let observed_lease = lease.map(renew_time);
    if let Some(observed) = observed_lease {
        let renewed = match saved_lease {
            None => true,
            Some(saved) => matches!((saved, observed), (Some(s), Some(o)) if s < o),
        };
        if renewed {
            health.lease = Some(observed);
            health.probe_timestamp = now;
        }
    }
    let stale = now > health.probe_timestamp + grace_period;
    let mut status_update = None;
    let mut current_ready = current.clone();
    if stale {
        let mut updated = status.clone();
        mark_unknown(&mut updated, created, now);
        let ready = condition(Some(&updated), "Ready").cloned();
        if ready.as_ref() != Some(&observed_ready) {
            let written = NodeHealth {
                probe_timestamp: health.probe_timestamp,
                ready_transition_timestamp: now,
                status: updated.clone(),
                lease: observed_lease,
            };
            status_update = Some((updated, written));
        }
        current_ready = ready;
    }
    HealthCheck {
        health,
        grace_period,
        observed_ready,
        current_ready,
        status_update,
    }
}

/// Sets the monitored conditions to Unknown as upstream does for a node that stopped reporting: conditions
/// never reported are added with reason NodeStatusNeverUpdated.
pub fn mark_unknown(status: &mut NodeStatus, created: Timestamp, now: Timestamp) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    for type_ in MONITORED_CONDITIONS {
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            None => conditions.push(NodeCondition {
                type_: type_.into(),
                status: "Unknown".into(),
                reason: Some("NodeStatusNeverUpdated".into()),
                message: Some("Kubelet never posted node status.".into()),
                last_heartbeat_time: Some(Time(created)),
                last_transition_time: Some(Time(now)),
            }),
            Some(c) if c.status != "Unknown" => {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(Time(now));
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests;
