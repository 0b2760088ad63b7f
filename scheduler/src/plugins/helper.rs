//! Matching rules several plugins share: node selectors and required node affinity, taints and
//! tolerations, and the default score normalisation (upstream `component-helpers/scheduling/corev1` and
//! `plugins/helper`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, Taint, Toleration,
};

use crate::framework::NodeScore;

/// Whether `requirement` holds for `labels` (operators In, NotIn, Exists, DoesNotExist, Gt, Lt).
pub fn requirement_matches(
    requirement: &NodeSelectorRequirement,
    labels: &BTreeMap<String, String>,
) -> bool {
    let values = requirement.values.as_deref().unwrap_or_default();
    let value = labels.get(&requirement.key);
    match requirement.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => value.is_none_or(|v| !values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(actual), [wanted]) = (value.and_then(|v| v.parse::<i64>().ok()), values)
            else {
                return false;
            };
            let Ok(wanted) = wanted.parse::<i64>() else {
                return false;
            };
            if requirement.operator == "Gt" {
                actual > wanted
            } else {
                actual < wanted
            }
        }
        _ => false,
    }
}

/// Whether one node selector term matches `node`: all its expressions and fields hold; an empty term
/// matches nothing.
pub fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    expressions
        .iter()
        .all(|r| requirement_matches(r, node_labels(node)))
        && fields.iter().all(|r| field_matches(r, node))
}

fn field_matches(requirement: &NodeSelectorRequirement, node: &Node) -> bool {
    if requirement.key != "metadata.name" {
        return false;
    }
    let fields = BTreeMap::from([(
        requirement.key.clone(),
        node.metadata.name.clone().unwrap_or_default(),
    )]);
    requirement_matches(requirement, &fields)
}

/// A node's labels.
pub fn node_labels(node: &Node) -> &BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    node.metadata.labels.as_ref().unwrap_or(&EMPTY)
}

/// Whether any of the selector's terms matches `node` (terms are ORed).
pub fn node_selector_matches(selector: &NodeSelector, node: &Node) -> bool {
    selector
        .node_selector_terms
        .iter()
        .any(|term| term_matches(term, node))
}

/// Whether `node` satisfies `pod`'s nodeSelector and required node affinity (upstream
/// `GetRequiredNodeAffinity(pod).Match(node)`).
pub fn pod_matches_node_selector_and_affinity(pod: &Pod, node: &Node) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    let labels = node_labels(node);
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(key, value)| labels.get(key) == Some(value));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    selector_ok && required.is_none_or(|selector| node_selector_matches(selector, node))
}

/// Whether `toleration` tolerates `taint` (upstream `Toleration.ToleratesTaint`).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if toleration
        .effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            !key.is_empty()
                && toleration.value.as_deref().unwrap_or_default()
                    == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

/// The first taint passing `filter` that no toleration tolerates.
pub fn find_untolerated_taint<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    filter: impl Fn(&Taint) -> bool,
) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| filter(t))
        .find(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
}

/// A node's taints.
pub fn node_taints(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
}

/// A pod's tolerations.
pub fn pod_tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default()
}

/// Scales scores so the highest becomes `max_priority`; `reverse` turns high raw scores into low ones
/// (upstream `helper.DefaultNormalizeScore`).
pub fn default_normalize_score(max_priority: i64, reverse: bool, scores: &mut [NodeScore]) {
    let highest = scores.iter().map(|s| s.score).max().unwrap_or(0);
    if highest == 0 {
        if reverse {
            for score in scores.iter_mut() {
                score.score = max_priority;
            }
        }
        return;
    }
    for score in scores.iter_mut() {
        score.score = max_priority * score.score / highest;
        if reverse {
            score.score = max_priority - score.score;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn requirement(key: &str, operator: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn requirements_follow_upstream_operators() {
        let labels = BTreeMap::from([
            ("zone".to_string(), "a".to_string()),
            ("cores".to_string(), "8".to_string()),
        ]);
        let cases = [
            (requirement("zone", "In", &["a", "b"]), true),
            (requirement("zone", "In", &["b"]), false),
            (requirement("zone", "NotIn", &["b"]), true),
            (requirement("missing", "NotIn", &["b"]), true),
            (requirement("zone", "Exists", &[]), true),
            (requirement("zone", "DoesNotExist", &[]), false),
            (requirement("cores", "Gt", &["4"]), true),
            (requirement("cores", "Lt", &["4"]), false),
            (requirement("zone", "Gt", &["4"]), false),
            (requirement("cores", "Gt", &["x"]), false),
            (requirement("zone", "Bogus", &["a"]), false),
        ];
        for (requirement, expected) in cases {
            assert_eq!(
                requirement_matches(&requirement, &labels),
                expected,
                "{requirement:?}"
            );
        }
    }

    #[test]
    fn terms_are_ored_and_empty_terms_match_nothing() {
        let node = Node {
            metadata: ObjectMeta {
                name: Some("n1".into()),
                labels: Some(BTreeMap::from([("zone".into(), "a".into())])),
                ..Default::default()
            },
            ..Default::default()
        };
        let by_field = NodeSelectorTerm {
            match_fields: Some(vec![requirement("metadata.name", "In", &["n1"])]),
            ..Default::default()
        };
        let wrong_zone = NodeSelectorTerm {
            match_expressions: Some(vec![requirement("zone", "In", &["b"])]),
            ..Default::default()
        };
        assert!(term_matches(&by_field, &node));
        assert!(!term_matches(&NodeSelectorTerm::default(), &node));
        let selector = NodeSelector {
            node_selector_terms: vec![wrong_zone.clone(), by_field],
        };
        assert!(node_selector_matches(&selector, &node));
        let selector = NodeSelector {
            node_selector_terms: vec![wrong_zone],
        };
        assert!(!node_selector_matches(&selector, &node));
    }

    #[test]
    fn tolerations_match_as_upstream() {
        let taint = Taint {
            key: "k".into(),
            value: Some("v".into()),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        let toleration = |key: Option<&str>,
                          operator: Option<&str>,
                          value: Option<&str>,
                          effect: Option<&str>| Toleration {
            key: key.map(String::from),
            operator: operator.map(String::from),
            value: value.map(String::from),
            effect: effect.map(String::from),
            ..Default::default()
        };
        let cases = [
            (toleration(Some("k"), None, Some("v"), None), true),
            (toleration(Some("k"), Some("Equal"), Some("x"), None), false),
            (
                toleration(Some("k"), Some("Exists"), None, Some("NoSchedule")),
                true,
            ),
            (
                toleration(Some("k"), Some("Exists"), None, Some("NoExecute")),
                false,
            ),
            (toleration(None, Some("Exists"), None, None), true),
            (toleration(Some("other"), Some("Exists"), None, None), false),
        ];
        for (toleration, expected) in cases {
            assert_eq!(tolerates(&toleration, &taint), expected, "{toleration:?}");
        }
    }

    #[test]
    fn normalisation_scales_to_the_maximum_and_reverses() {
        let mut scores: Vec<NodeScore> = [0, 5, 10]
            .iter()
            .map(|s| NodeScore {
                name: String::new(),
                score: *s,
            })
            .collect();
        default_normalize_score(100, false, &mut scores);
        assert_eq!(
            scores.iter().map(|s| s.score).collect::<Vec<_>>(),
            [0, 50, 100]
        );
        default_normalize_score(100, true, &mut scores);
        assert_eq!(
            scores.iter().map(|s| s.score).collect::<Vec<_>>(),
            [100, 50, 0]
        );
        let mut zeros = vec![NodeScore {
            name: String::new(),
            score: 0,
        }];
        default_normalize_score(100, true, &mut zeros);
        assert_eq!(zeros[0].score, 100);
    }
}
