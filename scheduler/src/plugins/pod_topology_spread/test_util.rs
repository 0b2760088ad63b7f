//! Builders the plugin's tests share (upstream's `st.MakePod().SpreadConstraint(...)` and friends).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta, OwnerReference, Time,
};

use super::{PodTopologySpread, PodTopologySpreadArgs};
use crate::framework::{
    CycleState, FilterPlugin, Handle, NodeInfo, PodInfo, PreFilterPlugin, Snapshot, StaticListers,
    Status,
};
use crate::testing::{MakeNode, MakePod, make_node, make_pod};

/// `st.MakeLabelSelector().Exists(key)`.
pub fn exists(key: &str) -> Option<LabelSelector> {
    Some(LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: key.into(),
            operator: "Exists".into(),
            values: None,
        }]),
        match_labels: None,
    })
}

/// `st.MakeLabelSelector().Label(key, value)`.
pub fn label_selector(key: &str, value: &str) -> Option<LabelSelector> {
    Some(LabelSelector {
        match_labels: Some(BTreeMap::from([(key.into(), value.into())])),
        match_expressions: None,
    })
}

/// A constraint with upstream's defaults for the optional fields.
pub fn constraint(
    max_skew: i32,
    key: &str,
    when: &str,
    selector: Option<LabelSelector>,
) -> TopologySpreadConstraint {
    TopologySpreadConstraint {
        max_skew,
        topology_key: key.into(),
        when_unsatisfiable: when.into(),
        label_selector: selector,
        ..Default::default()
    }
}

/// Pod builders upstream's tests use that the shared MakePod lacks.
pub trait SpreadPodExt {
    /// Adds a topology spread constraint.
    fn spread(self, constraint: TopologySpreadConstraint) -> Self;
    /// Adds a required node affinity term `key <operator> values`.
    fn node_affinity(self, key: &str, operator: &str, values: &[&str]) -> Self;
    /// Marks the pod terminating.
    fn terminating(self) -> Self;
    /// Sets a controller owner reference.
    fn owner(self, api_version: &str, kind: &str, name: &str) -> Self;
}

impl SpreadPodExt for MakePod {
    fn spread(self, constraint: TopologySpreadConstraint) -> Self {
        self.with_spec(|s| {
            s.topology_spread_constraints
                .get_or_insert_with(Default::default)
                .push(constraint)
        })
    }

    fn node_affinity(self, key: &str, operator: &str, values: &[&str]) -> Self {
        let term = NodeSelectorTerm {
            match_expressions: Some(vec![NodeSelectorRequirement {
                key: key.into(),
                operator: operator.into(),
                values: Some(values.iter().map(|v| v.to_string()).collect()),
            }]),
            ..Default::default()
        };
        self.with_spec(|s| {
            s.affinity = Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: vec![term],
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            })
        })
    }

    fn terminating(mut self) -> Self {
        self.0.metadata.deletion_timestamp = Some(Time(Default::default()));
        self
    }

    fn owner(mut self, api_version: &str, kind: &str, name: &str) -> Self {
        self.0.metadata.owner_references = Some(vec![OwnerReference {
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
            uid: name.into(),
            controller: Some(true),
            ..Default::default()
        }]);
        self
    }
}

/// A node with exactly `labels` (unlike `make_node`, no hostname label unless given).
pub fn node(name: &str, labels: &[(&str, &str)]) -> MakeNode {
    let mut node = make_node(name);
    node.0.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    node
}

/// A snapshot of `nodes` holding the `pods` bound to them.
pub fn snapshot(nodes: &[Node], pods: &[Pod]) -> Snapshot {
    Snapshot::new(node_infos(nodes, pods))
}

/// NodeInfos of `nodes` holding the `pods` bound to them.
pub fn node_infos(nodes: &[Node], pods: &[Pod]) -> Vec<Arc<NodeInfo>> {
    nodes
        .iter()
        .map(|node| {
            let mut info = NodeInfo::new(Arc::new(node.clone()));
            for pod in pods {
                let bound = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
                if bound == node.metadata.name.as_deref() {
                    info.add_pod(Arc::new(PodInfo::new(Arc::new(pod.clone()))));
                }
            }
            Arc::new(info)
        })
        .collect()
}

/// The plugin with `settings`, serving `listers`.
pub fn plugin(settings: PodTopologySpreadArgs, listers: StaticListers) -> PodTopologySpread {
    match PodTopologySpread::new(settings, &Handle::for_tests(listers)) {
        Ok(plugin) => plugin,
        Err(e) => panic!("building the plugin: {e}"),
    }
}

/// The plugin with `defaultingType: List` and no default constraints, as most upstream tests use.
pub fn list_plugin() -> PodTopologySpread {
    plugin(
        PodTopologySpreadArgs {
            defaulting_type: super::DefaultingType::List,
            ..Default::default()
        },
        StaticListers::default(),
    )
}

/// The taint a cordoned node carries.
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// A node with `zone` and `node` labels, as most upstream cases use.
pub fn zoned(name: &str, zone: &str) -> Node {
    node(name, &[("zone", zone), ("node", name)]).obj()
}

/// node-a, node-b in zone1; node-x, node-y in zone2.
pub fn four_nodes() -> Vec<Node> {
    vec![
        zoned("node-a", "zone1"),
        zoned("node-b", "zone1"),
        zoned("node-x", "zone2"),
        zoned("node-y", "zone2"),
    ]
}

/// Pods labelled foo="" bound to nodes, named `p-<node suffix><n>`.
pub fn foo_pods(spread: &[(&str, usize)]) -> Vec<Pod> {
    spread
        .iter()
        .flat_map(|(node, n)| {
            (1..=*n).map(move |i| {
                let suffix = node.trim_start_matches("node-");
                make_pod(&format!("p-{suffix}{i}"))
                    .node(node)
                    .label("foo", "")
                    .obj()
            })
        })
        .collect()
}

/// The incoming pod `p` labelled foo="".
pub fn incoming() -> MakePod {
    make_pod("p").label("foo", "")
}

/// `constraint(max_skew, key, DoNotSchedule, foo exists)`.
pub fn hard(max_skew: i32, key: &str) -> TopologySpreadConstraint {
    constraint(max_skew, key, super::DO_NOT_SCHEDULE, exists("foo"))
}

/// `constraint(max_skew, key, ScheduleAnyway, foo exists)`.
pub fn soft(max_skew: i32, key: &str) -> TopologySpreadConstraint {
    constraint(max_skew, key, super::SCHEDULE_ANYWAY, exists("foo"))
}

/// A node named `name` whose hostname label is its name.
pub fn host(name: &str) -> Node {
    node(name, &[(super::LABEL_HOSTNAME, name)]).obj()
}

/// Pods with `labels` bound to nodes: (pod name, node, labels).
pub fn pods(spec: &[(&str, &str, &[&str])]) -> Vec<Pod> {
    spec.iter()
        .map(|(name, node, labels)| {
            labels
                .iter()
                .fold(make_pod(name).node(node), |p, l| p.label(l, ""))
                .obj()
        })
        .collect()
}

/// Metadata of `name` in namespace default.
pub fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: Some("default".into()),
        ..Default::default()
    }
}

/// Runs PreFilter and Filter on every node, returning each node's status.
pub fn filter_all(pod: Pod, nodes: &[Node], pods: &[Pod]) -> Vec<(String, Status)> {
    let plugin = list_plugin();
    let pod = PodInfo::new(Arc::new(pod));
    let snapshot = snapshot(nodes, pods);
    let mut state = CycleState::default();
    let (_, status) = plugin.pre_filter(&mut state, &pod, &snapshot);
    assert!(status.is_success(), "PreFilter: {status}");
    snapshot
        .nodes()
        .iter()
        .map(|n| (n.name().to_string(), plugin.filter(&state, &pod, n)))
        .collect()
}
