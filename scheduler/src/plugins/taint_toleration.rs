//! TaintToleration: filters out nodes with NoSchedule/NoExecute taints the pod does not tolerate, and
//! prefers nodes with fewer untolerated PreferNoSchedule taints (upstream `plugins/tainttoleration`).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Toleration;

use super::helper::{
    default_normalize_score, find_untolerated_taint, node_taints, pod_tolerations, tolerates,
};
use crate::framework::{
    ActionType, ClusterEvent, CycleState, EventResource, FilterPlugin, Handle, MAX_NODE_SCORE,
    NodeInfo, NodeScore, Plugin, PodInfo, PreScorePlugin, ScorePlugin, Snapshot, Status,
};

/// The plugin name.
pub const NAME: &str = "TaintToleration";
/// The reason for a node with an untolerated NoSchedule/NoExecute taint. Since 1.35 (backported to
/// 1.34) upstream no longer names the taint, whose key and value may be sensitive.
pub const ERR_REASON_UNTOLERATED: &str = "node(s) had untolerated taint(s)";
const PRE_SCORE_STATE_KEY: &str = "PreScoreTaintToleration";

/// The pod's tolerations that can tolerate a PreferNoSchedule taint, computed once per cycle.
#[derive(Clone, Debug)]
struct PreScoreState {
    tolerations_prefer_no_schedule: Arc<[Toleration]>,
}

/// The TaintToleration plugin.
#[derive(Debug, Default)]
pub struct TaintToleration;

impl TaintToleration {
    /// Creates the plugin; it has no arguments.
    pub fn new(_handle: &Handle) -> Result<Self, String> {
        Ok(Self)
    }
}

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEvent> {
        vec![
            ClusterEvent::new(
                EventResource::Node,
                ActionType::ADD.or(ActionType::UPDATE_NODE_TAINT),
            ),
            ClusterEvent::new(
                EventResource::UnscheduledPod,
                ActionType::UPDATE_POD_TOLERATIONS,
            ),
        ]
    }

    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }

    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }

    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
}

impl FilterPlugin for TaintToleration {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(node) = node.node() else {
            return Status::error("node not found");
        };
        let untolerated =
            find_untolerated_taint(node_taints(node), pod_tolerations(&pod.pod), |t| {
                t.effect == "NoSchedule" || t.effect == "NoExecute"
            });
        match untolerated {
            None => Status::success(),
            Some(_) => Status::unresolvable(ERR_REASON_UNTOLERATED),
        }
    }
}

impl PreScorePlugin for TaintToleration {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _nodes: &[Arc<NodeInfo>],
        _snapshot: &Snapshot,
    ) -> Status {
        // An empty effect tolerates every effect, PreferNoSchedule included.
        let tolerations: Arc<[Toleration]> = pod_tolerations(&pod.pod)
            .iter()
            .filter(|t| {
                t.effect
                    .as_deref()
                    .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
            })
            .cloned()
            .collect();
        state.write(
            PRE_SCORE_STATE_KEY,
            PreScoreState {
                tolerations_prefer_no_schedule: tolerations,
            },
        );
        Status::success()
    }
}

impl ScorePlugin for TaintToleration {
    fn score(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        let Some(s) = state.read::<PreScoreState>(PRE_SCORE_STATE_KEY) else {
            return Err(Status::error(format!(
                "failed to read {PRE_SCORE_STATE_KEY:?} from cycleState: not found"
            )));
        };
        let Some(node) = node.node() else {
            return Err(Status::error("node not found"));
        };
        let intolerable = node_taints(node)
            .iter()
            .filter(|taint| taint.effect == "PreferNoSchedule")
            .filter(|taint| {
                !s.tolerations_prefer_no_schedule
                    .iter()
                    .any(|t| tolerates(t, taint))
            })
            .count();
        Ok(intolerable as i64)
    }

    fn normalize_score(
        &self,
        _state: &CycleState,
        _pod: &PodInfo,
        scores: &mut [NodeScore],
    ) -> Status {
        default_normalize_score(MAX_NODE_SCORE, true, scores);
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Toleration;

    use super::*;
    use crate::framework::Code;
    use crate::testing::{MakeNode, make_node, make_pod};

    fn toleration(key: &str, operator: &str, value: &str, effect: &str) -> Toleration {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Toleration {
            key: some(key),
            operator: some(operator),
            value: some(value),
            effect: some(effect),
            ..Default::default()
        }
    }

    fn pod_with(tolerations: &[Toleration]) -> Arc<PodInfo> {
        tolerations
            .iter()
            .fold(make_pod("pod1"), |pod, t| pod.toleration(t.clone()))
            .info()
    }

    fn node_with(name: &str, taints: &[(&str, &str, &str)]) -> MakeNode {
        taints
            .iter()
            .fold(make_node(name), |node, (k, v, e)| node.taint(k, v, e))
    }

    #[test]
    fn filter_rejects_untolerated_no_schedule_taints() {
        let dedicated_user1 = [("dedicated", "user1", "NoSchedule")];
        let cases = [
            (
                "a pod having no tolerations can't be scheduled onto a node with nonempty taints",
                pod_with(&[]),
                node_with("nodeA", &dedicated_user1),
                false,
            ),
            (
                "a pod which can be scheduled on a dedicated node assigned to user1 with effect NoSchedule",
                pod_with(&[toleration("dedicated", "", "user1", "NoSchedule")]),
                node_with("nodeA", &dedicated_user1),
                true,
            ),
            (
                "a pod which can't be scheduled on a dedicated node assigned to user2 with effect NoSchedule",
                pod_with(&[toleration("dedicated", "Equal", "user2", "NoSchedule")]),
                node_with("nodeA", &dedicated_user1),
                false,
            ),
            (
                "a toleration with operator Exists tolerates the taint",
                pod_with(&[toleration("foo", "Exists", "", "NoSchedule")]),
                node_with("nodeA", &[("foo", "bar", "NoSchedule")]),
                true,
            ),
            (
                "multiple tolerations tolerate all the node's taints",
                pod_with(&[
                    toleration("dedicated", "Equal", "user2", "NoSchedule"),
                    toleration("foo", "Exists", "", "NoSchedule"),
                ]),
                node_with(
                    "nodeA",
                    &[
                        ("dedicated", "user2", "NoSchedule"),
                        ("foo", "bar", "NoSchedule"),
                    ],
                ),
                true,
            ),
            (
                "key and value match but the (non-empty) effect doesn't",
                pod_with(&[toleration("foo", "Equal", "bar", "PreferNoSchedule")]),
                node_with("nodeA", &[("foo", "bar", "NoSchedule")]),
                false,
            ),
            (
                "key and value match and the toleration's effect is empty",
                pod_with(&[toleration("foo", "Equal", "bar", "")]),
                node_with("nodeA", &[("foo", "bar", "NoSchedule")]),
                true,
            ),
            (
                "untolerated taint with effect PreferNoSchedule does not filter",
                pod_with(&[toleration("dedicated", "Equal", "user2", "NoSchedule")]),
                node_with("nodeA", &[("dedicated", "user1", "PreferNoSchedule")]),
                true,
            ),
            (
                "no tolerations and only a PreferNoSchedule taint",
                pod_with(&[]),
                node_with("nodeA", &[("dedicated", "user1", "PreferNoSchedule")]),
                true,
            ),
            (
                "untolerated NoExecute taint with an empty value",
                pod_with(&[]),
                node_with(
                    "nodeA",
                    &[("node-role.kubernetes.io/control-plane", "", "NoExecute")],
                ),
                false,
            ),
        ];
        for (name, pod, node, fits) in cases {
            let status = TaintToleration.filter(&CycleState::default(), &pod, &node.info(vec![]));
            if fits {
                assert!(status.is_success(), "{name}: {status}");
            } else {
                assert_eq!(status.code(), Code::UnschedulableAndUnresolvable, "{name}");
                assert_eq!(status.reasons(), [ERR_REASON_UNTOLERATED], "{name}");
            }
        }
    }

    #[test]
    fn score_prefers_nodes_with_fewer_intolerable_prefer_no_schedule_taints() {
        let arm = ("cpu-type", "arm64", "PreferNoSchedule");
        let ssd = ("disk-type", "ssd", "PreferNoSchedule");
        let cases = [
            (
                "node with taints tolerated by the pod gets a higher score",
                pod_with(&[toleration("foo", "Equal", "bar", "PreferNoSchedule")]),
                vec![
                    node_with("nodeA", &[("foo", "bar", "PreferNoSchedule")]),
                    node_with("nodeB", &[("foo", "blah", "PreferNoSchedule")]),
                ],
                vec![MAX_NODE_SCORE, 0],
            ),
            (
                "the count of tolerated taints does not matter",
                pod_with(&[
                    toleration("cpu-type", "Equal", "arm64", "PreferNoSchedule"),
                    toleration("disk-type", "Equal", "ssd", "PreferNoSchedule"),
                ]),
                vec![
                    node_with("nodeA", &[]),
                    node_with("nodeB", &[arm]),
                    node_with("nodeC", &[arm, ssd]),
                ],
                vec![MAX_NODE_SCORE, MAX_NODE_SCORE, MAX_NODE_SCORE],
            ),
            (
                "the more intolerable taints a node has, the lower its score",
                pod_with(&[toleration("foo", "Equal", "bar", "PreferNoSchedule")]),
                vec![
                    node_with("nodeA", &[]),
                    node_with("nodeB", &[arm]),
                    node_with("nodeC", &[arm, ssd]),
                ],
                vec![MAX_NODE_SCORE, 50, 0],
            ),
            (
                "only PreferNoSchedule taints and tolerations count",
                pod_with(&[
                    toleration("cpu-type", "Equal", "arm64", "NoSchedule"),
                    toleration("disk-type", "Equal", "ssd", "NoSchedule"),
                ]),
                vec![
                    node_with("nodeA", &[]),
                    node_with("nodeB", &[("cpu-type", "arm64", "NoSchedule")]),
                    node_with("nodeC", &[arm, ssd]),
                ],
                vec![MAX_NODE_SCORE, MAX_NODE_SCORE, 0],
            ),
            (
                "no taints and tolerations: lands on the node with no taints",
                pod_with(&[]),
                vec![node_with("nodeA", &[]), node_with("nodeB", &[arm])],
                vec![MAX_NODE_SCORE, 0],
            ),
        ];
        for (name, pod, nodes, want) in cases {
            let nodes: Vec<Arc<NodeInfo>> = nodes
                .into_iter()
                .map(|n| Arc::new(n.info(vec![])))
                .collect();
            let mut state = CycleState::default();
            let status = TaintToleration.pre_score(&mut state, &pod, &nodes, &Snapshot::default());
            assert!(status.is_success(), "{name}: {status}");
            let mut scores: Vec<NodeScore> = nodes
                .iter()
                .map(|n| NodeScore {
                    name: n.name().to_string(),
                    score: TaintToleration.score(&state, &pod, n).unwrap(),
                })
                .collect();
            let status = TaintToleration.normalize_score(&state, &pod, &mut scores);
            assert!(status.is_success(), "{name}: {status}");
            let got: Vec<i64> = scores.iter().map(|s| s.score).collect();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn score_without_pre_score_state_is_an_error() {
        let result = TaintToleration.score(
            &CycleState::default(),
            &pod_with(&[]),
            &make_node("n").info(vec![]),
        );
        assert_eq!(result.map_err(|s| s.code()), Err(Code::Error));
    }
}
