//! Zones and their disruption states (upstream's ComputeZoneState and handleDisruption): how unhealthy a
//! zone is decides how fast nodes in it get NoExecute taints; when every zone is fully disrupted the
//! controller assumes its own connectivity is the problem and stops tainting altogether.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Node;

/// A zone's disruption state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneState {
    /// Just seen, not yet classified.
    Initial,
    /// Mostly healthy.
    Normal,
    /// At least --unhealthy-zone-threshold of its nodes (and more than two) are not Ready.
    PartialDisruption,
    /// No node is Ready.
    FullDisruption,
}

/// Upstream's `GetZoneKey`: region and zone labels (beta names first), "" when neither is set.
pub fn zone_key(node: &Node) -> String {
    let Some(labels) = node.metadata.labels.as_ref() else {
        return String::new();
    };
    let pick = |beta: &str, ga: &str| {
        labels
            .get(beta)
            .or_else(|| labels.get(ga))
            .cloned()
            .unwrap_or_default()
    };
    let zone = pick(
        "failure-domain.beta.kubernetes.io/zone",
        "topology.kubernetes.io/zone",
    );
    let region = pick(
        "failure-domain.beta.kubernetes.io/region",
        "topology.kubernetes.io/region",
    );
    if region.is_empty() && zone.is_empty() {
        return String::new();
    }
    format!("{region}:\0:{zone}")
}

/// Upstream's `ComputeZoneState` from the zone's nodes' Ready statuses (`None`: no Ready condition):
/// the number of not-Ready nodes and the state.
pub fn compute_zone_state(ready: &[Option<&str>], unhealthy_threshold: f32) -> (usize, ZoneState) {
    let ready_nodes = ready.iter().filter(|s| **s == Some("True")).count();
    let not_ready = ready.len() - ready_nodes;
    let state = if ready_nodes == 0 && not_ready > 0 {
        ZoneState::FullDisruption
    } else if not_ready > 2 && not_ready as f32 / ready.len() as f32 >= unhealthy_threshold {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    };
    (not_ready, state)
}

/// The eviction rates the controller was configured with.
#[derive(Debug, Clone, Copy)]
pub struct Rates {
    /// --node-eviction-rate.
    pub healthy_qps: f32,
    /// --secondary-node-eviction-rate.
    pub secondary_qps: f32,
    /// --large-cluster-size-threshold.
    pub large_cluster_threshold: u32,
}

impl Rates {
    /// Upstream's `setLimiterInZone`: the tainting rate for a zone of `size` nodes in `state`.
    pub fn qps(&self, state: ZoneState, size: usize) -> Option<f32> {
        match state {
            ZoneState::Normal | ZoneState::FullDisruption => Some(self.healthy_qps),
            // Large zones slow down; small ones stop.
            ZoneState::PartialDisruption if size > self.large_cluster_threshold as usize => {
                Some(self.secondary_qps)
            }
            ZoneState::PartialDisruption => Some(0.0),
            ZoneState::Initial => None,
        }
    }
}

/// What `handle_disruption` asks of the controller.
#[derive(Debug, Default, PartialEq)]
pub struct DisruptionActions {
    /// Every zone is fully disrupted: remove the NoExecute taints from all nodes.
    pub mark_all_reachable: bool,
    /// Leaving full disruption: restart every node's probe timestamp at now.
    pub reset_probe_timestamps: bool,
    /// New tainting rates by zone.
    pub limiters: Vec<(String, f32)>,
}

/// Upstream's `handleDisruption`: updates `zone_states` from the zones' nodes' Ready statuses and says
/// which rate limiters change.
pub fn handle_disruption(
    zone_states: &mut HashMap<String, ZoneState>,
    zone_ready: &HashMap<String, Vec<Option<&str>>>,
    unhealthy_threshold: f32,
    rates: &Rates,
) -> DisruptionActions {
    let mut new_states = HashMap::new();
    let mut all_are_fully_disrupted = true;
    for (zone, ready) in zone_ready {
        let (_, state) = compute_zone_state(ready, unhealthy_threshold);
        if state != ZoneState::FullDisruption {
            all_are_fully_disrupted = false;
        }
        new_states.insert(zone.clone(), state);
        zone_states
            .entry(zone.clone())
            .or_insert(ZoneState::Initial);
    }
    zone_states.retain(|zone, _| zone_ready.contains_key(zone));
    let all_were_fully_disrupted = zone_states
        .values()
        .all(|s| *s == ZoneState::FullDisruption);
    let mut actions = DisruptionActions::default();
    if all_are_fully_disrupted && all_were_fully_disrupted {
        return actions;
    }
    if all_are_fully_disrupted {
        tracing::info!(
            "Controller detected that all Nodes are not-Ready. Entering master disruption mode"
        );
        actions.mark_all_reachable = true;
        for (zone, state) in zone_states.iter_mut() {
            actions.limiters.push((zone.clone(), 0.0));
            *state = ZoneState::FullDisruption;
        }
        return actions;
    }
    let size = |zone: &str| zone_ready.get(zone).map_or(0, Vec::len);
    if all_were_fully_disrupted {
        tracing::info!(
            "Controller detected that some Nodes are Ready. Exiting master disruption mode"
        );
        actions.reset_probe_timestamps = true;
        for (zone, state) in zone_states.iter_mut() {
            let new = new_states[zone];
            if let Some(qps) = rates.qps(new, size(zone)) {
                actions.limiters.push((zone.clone(), qps));
            }
            *state = new;
        }
        return actions;
    }
    for (zone, state) in zone_states.iter_mut() {
        let new = new_states[zone];
        if *state == new {
            continue;
        }
        tracing::info!(
            zone,
            ?new,
            "Controller detected that zone is now in new state"
        );
        if let Some(qps) = rates.qps(new, size(zone)) {
            actions.limiters.push((zone.clone(), qps));
        }
        *state = new;
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATES: Rates = Rates {
        healthy_qps: 0.1,
        secondary_qps: 0.01,
        large_cluster_threshold: 50,
    };

    fn statuses(ready: usize, not_ready: usize) -> Vec<Option<&'static str>> {
        let mut all = vec![Some("True"); ready];
        all.extend(std::iter::repeat_n(Some("Unknown"), not_ready));
        all
    }

    #[test]
    fn zone_states() {
        assert_eq!(
            compute_zone_state(&statuses(0, 1), 0.55),
            (1, ZoneState::FullDisruption)
        );
        assert_eq!(
            compute_zone_state(&statuses(1, 2), 0.55),
            (2, ZoneState::Normal)
        );
        assert_eq!(
            compute_zone_state(&statuses(2, 3), 0.55),
            (3, ZoneState::PartialDisruption)
        );
        assert_eq!(
            compute_zone_state(&statuses(3, 3), 0.55),
            (3, ZoneState::Normal)
        );
        assert_eq!(
            compute_zone_state(&[None, Some("True")], 0.55),
            (1, ZoneState::Normal)
        );
        assert_eq!(compute_zone_state(&[], 0.55), (0, ZoneState::Normal));
    }

    #[test]
    fn zone_keys() {
        let mut node = Node::default();
        assert_eq!(zone_key(&node), "");
        node.metadata.labels = Some(
            [
                ("topology.kubernetes.io/zone".to_string(), "a".to_string()),
                ("topology.kubernetes.io/region".to_string(), "r".to_string()),
            ]
            .into(),
        );
        assert_eq!(zone_key(&node), "r:\0:a");
    }

    #[test]
    fn partial_disruption_slows_large_zones_and_stops_small_ones() {
        assert_eq!(RATES.qps(ZoneState::PartialDisruption, 51), Some(0.01));
        assert_eq!(RATES.qps(ZoneState::PartialDisruption, 50), Some(0.0));
        assert_eq!(RATES.qps(ZoneState::FullDisruption, 10), Some(0.1));
        assert_eq!(RATES.qps(ZoneState::Normal, 10), Some(0.1));
    }

    #[test]
    fn all_zones_fully_disrupted_stops_evictions() {
        let mut states = HashMap::from([("a".to_string(), ZoneState::Normal)]);
        let ready = HashMap::from([("a".to_string(), statuses(0, 1))]);
        let actions = handle_disruption(&mut states, &ready, 0.55, &RATES);
        assert!(actions.mark_all_reachable);
        assert_eq!(actions.limiters, vec![("a".to_string(), 0.0)]);
        assert_eq!(states["a"], ZoneState::FullDisruption);
        // Staying fully disrupted changes nothing.
        let again = handle_disruption(&mut states, &ready, 0.55, &RATES);
        assert_eq!(again, DisruptionActions::default());
    }

    #[test]
    fn leaving_full_disruption_resets_probes_and_limiters() {
        let mut states = HashMap::from([("a".to_string(), ZoneState::FullDisruption)]);
        let ready = HashMap::from([("a".to_string(), statuses(1, 0))]);
        let actions = handle_disruption(&mut states, &ready, 0.55, &RATES);
        assert!(actions.reset_probe_timestamps);
        assert_eq!(actions.limiters, vec![("a".to_string(), 0.1)]);
        assert_eq!(states["a"], ZoneState::Normal);
    }

    #[test]
    fn one_zone_fully_disrupted_among_healthy_ones_keeps_evicting() {
        let mut states = HashMap::from([
            ("a".to_string(), ZoneState::Normal),
            ("b".to_string(), ZoneState::Normal),
        ]);
        let ready = HashMap::from([
            ("a".to_string(), statuses(0, 2)),
            ("b".to_string(), statuses(2, 0)),
        ]);
        let actions = handle_disruption(&mut states, &ready, 0.55, &RATES);
        assert!(!actions.mark_all_reachable);
        assert_eq!(actions.limiters, vec![("a".to_string(), 0.1)]);
        assert_eq!(states["a"], ZoneState::FullDisruption);
    }

    #[test]
    fn new_zone_starts_initial_and_vanished_zone_is_dropped() {
        let mut states = HashMap::from([("gone".to_string(), ZoneState::Normal)]);
        let ready = HashMap::from([("new".to_string(), statuses(3, 0))]);
        let actions = handle_disruption(&mut states, &ready, 0.55, &RATES);
        assert_eq!(actions.limiters, vec![("new".to_string(), 0.1)]);
        assert_eq!(
            states,
            HashMap::from([("new".to_string(), ZoneState::Normal)])
        );
    }
}
