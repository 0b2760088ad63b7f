//! Constraint parsing, node inclusion and pod counting shared by filtering and scoring (upstream
//! `podtopologyspread/common.go`, and `plugins/helper/spread.go` for the default selector).

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{self, Node, Pod};
use kube::core::{Selector, SelectorExt};

use super::PodTopologySpread;
use crate::framework::pod_info::{CompiledSelector, compile_selector, labels};
use crate::framework::{Listers, NodeInfo, PodInfo};
use crate::plugins::helper;

/// The well-known hostname label.
pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";
/// The well-known zone label.
pub const LABEL_TOPOLOGY_ZONE: &str = "topology.kubernetes.io/zone";

/// Whether nodes the pod could not land on count towards a constraint's domains (upstream
/// `NodeInclusionPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeInclusionPolicy {
    /// Only nodes matching the pod's node affinity / tolerating the node's taints count.
    Honor,
    /// All nodes count.
    Ignore,
}

impl NodeInclusionPolicy {
    /// The policy named `value`, `default` when unset; upstream only tests for Honor, so anything else ignores.
    fn parse(value: Option<&str>, default: Self) -> Self {
        match value {
            None => default,
            Some("Honor") => Self::Honor,
            Some(_) => Self::Ignore,
        }
    }
}

/// A spread constraint with its selector compiled and its defaults applied (upstream
/// `topologySpreadConstraint`).
#[derive(Clone, Debug)]
pub struct TopologySpreadConstraint {
    /// The allowed difference between a domain's matching pods and the global minimum.
    pub max_skew: i32,
    /// The node label whose values are the domains.
    pub topology_key: String,
    /// Which pods count, with matchLabelKeys merged in; `None` (a nil labelSelector) matches nothing.
    pub selector: CompiledSelector,
    /// Below this many domains the global minimum is taken as 0 (default 1).
    pub min_domains: i32,
    /// Default Honor.
    pub node_affinity_policy: NodeInclusionPolicy,
    /// Default Ignore.
    pub node_taints_policy: NodeInclusionPolicy,
}

impl TopologySpreadConstraint {
    /// Whether `node` counts for this constraint under its inclusion policies. `affinity` caches the
    /// pod's node-affinity verdict for `node` across the pod's constraints.
    pub fn match_node_inclusion_policies(
        &self,
        pod: &Pod,
        node: &Node,
        affinity: &OnceCell<bool>,
    ) -> bool {
        if self.node_affinity_policy == NodeInclusionPolicy::Honor
            && !*affinity.get_or_init(|| helper::pod_matches_node_selector_and_affinity(pod, node))
        {
            return false;
        }
        if self.node_taints_policy == NodeInclusionPolicy::Honor
            && helper::find_untolerated_taint(
                helper::node_taints(node),
                helper::pod_tolerations(pod),
                |t| t.effect == "NoSchedule" || t.effect == "NoExecute",
            )
            .is_some()
        {
            return false;
        }
        true
    }
}

/// The pod's own constraints with `action` (DoNotSchedule or ScheduleAnyway), compiled (upstream
/// `filterTopologySpreadConstraints`).
pub fn filter_topology_spread_constraints(
    constraints: &[v1::TopologySpreadConstraint],
    pod_labels: &BTreeMap<String, String>,
    action: &str,
) -> Result<Vec<TopologySpreadConstraint>, String> {
    constraints
        .iter()
        .filter(|c| c.when_unsatisfiable == action)
        .map(|c| {
            let mut selector = compile_selector(c.label_selector.as_ref())?;
            let match_labels: BTreeMap<String, String> = c
                .match_label_keys
                .iter()
                .flatten()
                .filter_map(|key| pod_labels.get(key).map(|v| (key.clone(), v.clone())))
                .collect();
            if !match_labels.is_empty() {
                selector = merge_label_set_with_selector(match_labels, selector);
            }
            Ok(TopologySpreadConstraint {
                max_skew: c.max_skew,
                topology_key: c.topology_key.clone(),
                selector,
                min_domains: c.min_domains.unwrap_or(1),
                node_affinity_policy: NodeInclusionPolicy::parse(
                    c.node_affinity_policy.as_deref(),
                    NodeInclusionPolicy::Honor,
                ),
                node_taints_policy: NodeInclusionPolicy::parse(
                    c.node_taints_policy.as_deref(),
                    NodeInclusionPolicy::Ignore,
                ),
            })
        })
        .collect()
}

/// ANDs the matchLabelKeys' labels with `selector`; a nil selector stays nil, as upstream.
fn merge_label_set_with_selector(
    match_labels: BTreeMap<String, String>,
    selector: CompiledSelector,
) -> CompiledSelector {
    let selector = selector?;
    let mut merged: Selector = match_labels.into_iter().collect();
    merged.extend(selector);
    Some(merged)
}

/// Whether `labels` has every constraint's topology key.
pub fn node_labels_match_spread_constraints(
    labels: &BTreeMap<String, String>,
    constraints: &[TopologySpreadConstraint],
) -> bool {
    constraints
        .iter()
        .all(|c| labels.contains_key(&c.topology_key))
}

/// How many of `pods` in namespace `namespace`, not terminating, match `selector`. An empty selector
/// counts nothing, as upstream's `countPodsMatchSelector`.
pub fn count_pods_match_selector(
    pods: &[Arc<PodInfo>],
    selector: &CompiledSelector,
    namespace: &str,
) -> i64 {
    let Some(selector) = selector else {
        return 0;
    };
    if selector.selects_all() {
        return 0;
    }
    pods.iter()
        .filter(|p| {
            p.pod.metadata.deletion_timestamp.is_none()
                && p.namespace() == namespace
                && selector.matches(labels(&p.pod))
        })
        .count() as i64
}

/// The matching pods on one node for one constraint's domain.
pub struct TopologyCount<'a> {
    /// Index into the constraints.
    pub constraint_id: usize,
    /// The node's value of the constraint's topology key ("" when the node lacks it).
    pub value: &'a str,
    /// Matching pods on the node.
    pub count: i64,
}

/// Counts `pod`'s matching pods on one node for every constraint the node is included in and `wanted`
/// accepts; nothing when `require_all_topologies` and the node lacks a topology key.
pub fn count_node_pods<'a>(
    pod: &Pod,
    node_info: &'a NodeInfo,
    constraints: &[TopologySpreadConstraint],
    require_all_topologies: bool,
    wanted: impl Fn(usize, &str) -> bool,
) -> Vec<TopologyCount<'a>> {
    let Some(node) = node_info.node() else {
        return Vec::new();
    };
    let node_labels = node_info.labels();
    if require_all_topologies && !node_labels_match_spread_constraints(node_labels, constraints) {
        return Vec::new();
    }
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let affinity = OnceCell::new();
    let mut counts = Vec::new();
    for (constraint_id, c) in constraints.iter().enumerate() {
        if !c.match_node_inclusion_policies(pod, node, &affinity) {
            continue;
        }
        let value = node_labels.get(&c.topology_key).map_or("", String::as_str);
        if !wanted(constraint_id, value) {
            continue;
        }
        counts.push(TopologyCount {
            constraint_id,
            value,
            count: count_pods_match_selector(&node_info.pods, &c.selector, namespace),
        });
    }
    counts
}

impl PodTopologySpread {
    /// The pod's DoNotSchedule constraints, or the default ones when it has none (upstream `getConstraints`).
    pub(super) fn get_constraints(
        &self,
        pod: &Pod,
    ) -> Result<Vec<TopologySpreadConstraint>, String> {
        self.constraints_for(pod, super::DO_NOT_SCHEDULE)
            .map_err(|e| match pod_constraints(pod) {
                [] => format!("setting default hard topology spread constraints: {e}"),
                _ => format!("obtaining pod's hard topology spread constraints: {e}"),
            })
    }

    /// The pod's constraints with `action`, or the default ones with `action` when it has none.
    pub(super) fn constraints_for(
        &self,
        pod: &Pod,
        action: &str,
    ) -> Result<Vec<TopologySpreadConstraint>, String> {
        match pod_constraints(pod) {
            [] => self.build_default_constraints(pod, action),
            own => filter_topology_spread_constraints(own, labels(pod), action),
        }
    }

    /// The default constraints with `action`, all selecting by the pod's Services and controller (upstream
    /// `buildDefaultConstraints`); none when nothing selects the pod.
    fn build_default_constraints(
        &self,
        pod: &Pod,
        action: &str,
    ) -> Result<Vec<TopologySpreadConstraint>, String> {
        let mut constraints =
            filter_topology_spread_constraints(&self.default_constraints, labels(pod), action)?;
        if constraints.is_empty() {
            return Ok(constraints);
        }
        let selector = default_selector(pod, self.listers.as_ref());
        if selector.selects_all() {
            return Ok(Vec::new());
        }
        for c in &mut constraints {
            c.selector = Some(selector.clone());
        }
        Ok(constraints)
    }
}

/// The pod's own topologySpreadConstraints.
pub fn pod_constraints(pod: &Pod) -> &[v1::TopologySpreadConstraint] {
    pod.spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_deref())
        .unwrap_or_default()
}

/// A selector from the Services, ReplicationController, ReplicaSet or StatefulSet selecting `pod`
/// (upstream `helper.DefaultSelector`).
pub fn default_selector(pod: &Pod, listers: &dyn Listers) -> Selector {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let pod_labels = labels(pod);
    // Every Service here selects the pod, so their selectors cannot conflict: merging is safe.
    let mut label_set = BTreeMap::new();
    for service in listers.services(namespace) {
        let Some(selector) = service.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
            continue;
        };
        if selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)) {
            label_set.extend(selector.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    let mut selector: Selector = label_set.clone().into_iter().collect();
    let Some(owner) = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
    else {
        return selector;
    };
    let controller_selector = match (owner.api_version.as_str(), owner.kind.as_str()) {
        ("v1", "ReplicationController") => {
            if let Some(rc) = listers
                .replication_controllers(namespace)
                .into_iter()
                .find(|rc| rc.metadata.name.as_deref() == Some(owner.name.as_str()))
            {
                label_set.extend(
                    rc.spec
                        .iter()
                        .flat_map(|s| s.selector.iter().flatten())
                        .map(|(k, v)| (k.clone(), v.clone())),
                );
                selector = label_set.into_iter().collect();
            }
            None
        }
        ("apps/v1", "ReplicaSet") => listers
            .replica_sets(namespace)
            .into_iter()
            .find(|rs| rs.metadata.name.as_deref() == Some(owner.name.as_str()))
            .and_then(|rs| rs.spec.as_ref().map(|s| s.selector.clone())),
        ("apps/v1", "StatefulSet") => listers
            .stateful_sets(namespace)
            .into_iter()
            .find(|ss| ss.metadata.name.as_deref() == Some(owner.name.as_str()))
            .and_then(|ss| ss.spec.as_ref().map(|s| s.selector.clone())),
        _ => None,
    };
    if let Some(Ok(other)) = controller_selector.map(Selector::try_from) {
        selector.extend(other);
    }
    selector
}
