//! PodDisruptionBudgets as preemption weighs them (upstream `filterPodsWithPDBViolation`).

use std::sync::Arc;

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::core::{Selector, SelectorExt};

use crate::framework::PodInfo;
use crate::framework::pod_info::labels;

/// A budget with its selector compiled once per preemption attempt.
pub(super) struct PdbInfo {
    pdb: Arc<PodDisruptionBudget>,
    /// `None` when the selector is nil, empty or invalid: upstream lets such a budget match no pod.
    selector: Option<Selector>,
}

impl PdbInfo {
    /// Compiles `pdb`'s selector.
    pub(super) fn new(pdb: Arc<PodDisruptionBudget>) -> Self {
        let selector = pdb
            .spec
            .as_ref()
            .and_then(|spec| spec.selector.clone())
            .and_then(|selector| Selector::try_from(selector).ok())
            .filter(|selector| !selector.selects_all());
        Self { pdb, selector }
    }

    fn namespace(&self) -> &str {
        self.pdb.metadata.namespace.as_deref().unwrap_or_default()
    }

    fn disruptions_allowed(&self) -> i32 {
        self.pdb
            .status
            .as_ref()
            .and_then(|status| status.disruptions_allowed)
            .unwrap_or(0)
    }

    /// Whether the disruption controller already counted `pod_name` as disrupted.
    fn already_disrupted(&self, pod_name: &str) -> bool {
        self.pdb
            .status
            .as_ref()
            .and_then(|status| status.disrupted_pods.as_ref())
            .is_some_and(|pods| pods.contains_key(pod_name))
    }

    fn matches(&self, pod: &PodInfo) -> bool {
        self.namespace() == pod.namespace()
            && self
                .selector
                .as_ref()
                .is_some_and(|selector| selector.matches(labels(&pod.pod)))
    }
}

/// Splits `pods` into those whose eviction would take one of their budgets below zero and the rest,
/// keeping the order within each group. Each budget's allowance is spent in `pods`' order, so callers
/// pass the pods most important first.
pub(super) fn split_by_pdb_violation(
    pods: Vec<Arc<PodInfo>>,
    pdbs: &[PdbInfo],
) -> (Vec<Arc<PodInfo>>, Vec<Arc<PodInfo>>) {
    let mut allowed: Vec<i32> = pdbs.iter().map(PdbInfo::disruptions_allowed).collect();
    let mut violating = Vec::new();
    let mut non_violating = Vec::new();
    for pod in pods {
        let mut violated = false;
        // A pod without labels matches no budget.
        if !labels(&pod.pod).is_empty() {
            for (pdb, allowed) in pdbs.iter().zip(allowed.iter_mut()) {
                // A pod the API server already processed an eviction for does not spend the budget again.
                if !pdb.matches(&pod) || pdb.already_disrupted(pod.name()) {
                    continue;
                }
                *allowed -= 1;
                if *allowed < 0 {
                    violated = true;
                }
            }
        }
        if violated {
            violating.push(pod);
        } else {
            non_violating.push(pod);
        }
    }
    (violating, non_violating)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::policy::v1::{PodDisruptionBudgetSpec, PodDisruptionBudgetStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
    use k8s_openapi::jiff::Timestamp;

    use super::*;
    use crate::testing::make_pod;

    fn pdb(selector: Option<LabelSelector>, allowed: i32, disrupted: &[&str]) -> PdbInfo {
        PdbInfo::new(Arc::new(PodDisruptionBudget {
            metadata: ObjectMeta {
                name: Some("pdb".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(PodDisruptionBudgetSpec {
                selector,
                ..Default::default()
            }),
            status: Some(PodDisruptionBudgetStatus {
                disruptions_allowed: Some(allowed),
                disrupted_pods: Some(
                    disrupted
                        .iter()
                        .map(|name| (name.to_string(), Time(Timestamp::UNIX_EPOCH)))
                        .collect(),
                ),
                ..Default::default()
            }),
        }))
    }

    fn app_foo() -> Option<LabelSelector> {
        Some(LabelSelector {
            match_labels: Some(BTreeMap::from([("app".into(), "foo".into())])),
            ..Default::default()
        })
    }

    fn names(pods: &[Arc<PodInfo>]) -> Vec<&str> {
        pods.iter().map(|p| p.name()).collect()
    }

    #[test]
    fn budgets_are_spent_in_order_and_disrupted_pods_do_not_count() {
        let pods = || {
            vec![
                make_pod("p1").label("app", "foo").info(),
                make_pod("p2").label("app", "foo").info(),
                make_pod("p3").label("app", "foo").info(),
                make_pod("unlabelled").info(),
                make_pod("other-ns")
                    .namespace("other")
                    .label("app", "foo")
                    .info(),
            ]
        };
        struct Case {
            name: &'static str,
            pdbs: Vec<PdbInfo>,
            violating: Vec<&'static str>,
        }
        let cases = [
            Case {
                name: "one disruption allowed: the second and third pods violate",
                pdbs: vec![pdb(app_foo(), 1, &[])],
                violating: vec!["p2", "p3"],
            },
            Case {
                name: "an already disrupted pod neither violates nor spends the budget",
                pdbs: vec![pdb(app_foo(), 1, &["p1"])],
                violating: vec!["p3"],
            },
            Case {
                name: "nil selector matches nothing",
                pdbs: vec![pdb(None, 0, &[])],
                violating: vec![],
            },
            Case {
                name: "empty selector matches nothing",
                pdbs: vec![pdb(Some(LabelSelector::default()), 0, &[])],
                violating: vec![],
            },
            Case {
                name: "enough budget: nothing violates",
                pdbs: vec![pdb(app_foo(), 3, &[])],
                violating: vec![],
            },
        ];
        for case in cases {
            let (violating, non_violating) = split_by_pdb_violation(pods(), &case.pdbs);
            assert_eq!(names(&violating), case.violating, "{}", case.name);
            assert_eq!(
                violating.len() + non_violating.len(),
                5,
                "{}: every pod lands in one group",
                case.name
            );
        }
    }
}
