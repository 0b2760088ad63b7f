//! The order in which a controller gives up pods when it scales down (upstream `ActivePods` and
//! `ActivePodsWithRanks` in pkg/controller/controller_utils.go, with the default-on PodDeletionCost and the
//! GA LogarithmicScaleDown behaviour). Pods that sort first are deleted first: the least useful ones.

use std::borrow::Borrow;
use std::cmp::Ordering;

use k8s_openapi::jiff::Timestamp;

use crate::pod::Pod;
use crate::pod_util::{is_pod_ready, pod_deletion_cost, pod_ready_time};

fn phase_ordinal(pod: &Pod) -> u8 {
    // Pending < Unknown < Running; anything else counts as Pending, as upstream's map lookup yields 0.
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    }
}

fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default()
}

fn creation(pod: &Pod) -> Option<Timestamp> {
    pod.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// Highest restart count of regular containers and of sidecars (restartable init containers).
fn max_container_restarts(pod: &Pod) -> (i32, i32) {
    let Some(status) = pod.status.as_ref() else {
        return (0, 0);
    };
    let regular = status
        .container_statuses
        .iter()
        .flatten()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0);
    let sidecars: Vec<&str> = pod
        .spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .filter(|c| c.restart_policy.as_deref() == Some("Always"))
        .map(|c| c.name.as_str())
        .collect();
    let sidecar = status
        .init_container_statuses
        .iter()
        .flatten()
        .filter(|c| sidecars.contains(&c.name.as_str()))
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0);
    (regular, sidecar)
}

/// More restarts sort first (upstream `compareMaxContainerRestarts`).
fn compare_restarts(a: &Pod, b: &Pod) -> Ordering {
    let (ra, sa) = max_container_restarts(a);
    let (rb, sb) = max_container_restarts(b);
    rb.cmp(&ra).then(sb.cmp(&sa))
}

/// Upstream `afterOrZero`: a missing time sorts first, else the later time does.
fn later_or_missing_first(a: Option<Timestamp>, b: Option<Timestamp>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => b.cmp(&a),
    }
}

/// Floor of log2 of the nanoseconds since `t`; -1 when `t` is not in the past.
fn log2_age(t: Timestamp, now: Timestamp) -> i64 {
    let nanos = now.duration_since(t).as_nanos();
    if nanos <= 0 {
        -1
    } else {
        i64::from(127 - nanos.leading_zeros() as i32)
    }
}

/// The logarithmic age bucket a time falls in (upstream `logarithmicRankDiff` under LogarithmicScaleDown);
/// a missing time sorts first, as upstream's `afterOrZero`.
fn age_bucket(t: Option<Timestamp>, now: Timestamp) -> i64 {
    t.map_or(i64::MIN, |t| log2_age(t, now))
}

fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

/// Orders pods for deletion, least valuable first (upstream `ActivePodsWithRanks.Less`): unassigned before
/// assigned; Pending before Unknown before Running; not ready before ready; lower deletion cost first;
/// higher `rank` (more related pods on the same node) first; ready for less time first; more restarts
/// first; newer first. `now` is the reference for logarithmic age buckets.
pub fn compare_for_deletion(
    a: &Pod,
    rank_a: i64,
    b: &Pod,
    rank_b: i64,
    now: Timestamp,
) -> Ordering {
    let (na, nb) = (node_name(a), node_name(b));
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return nb.is_empty().cmp(&na.is_empty());
    }
    let phase = phase_ordinal(a).cmp(&phase_ordinal(b));
    if phase != Ordering::Equal {
        return phase;
    }
    let (ready_a, ready_b) = (is_pod_ready(a), is_pod_ready(b));
    if ready_a != ready_b {
        return ready_a.cmp(&ready_b);
    }
    let cost = pod_deletion_cost(a).cmp(&pod_deletion_cost(b));
    if cost != Ordering::Equal {
        return cost;
    }
    if rank_a != rank_b {
        return rank_b.cmp(&rank_a);
    }
    // Upstream breaks a tie within one age bucket by UID at once, which is not transitive (Go's sort does
    // not mind; Rust's panics). The buckets are compared as upstream does and the UID decides last.
    if ready_a && ready_b {
        let ready = age_bucket(pod_ready_time(a), now).cmp(&age_bucket(pod_ready_time(b), now));
        if ready != Ordering::Equal {
            return ready;
        }
    }
    compare_restarts(a, b)
        .then_with(|| age_bucket(creation(a), now).cmp(&age_bucket(creation(b), now)))
        .then_with(|| uid(a).cmp(uid(b)))
}

/// Orders pods least valuable first without ranks or deletion cost, comparing times exactly (upstream
/// `ActivePods.Less`, used where no related pods are known).
pub fn compare_active_pods(a: &Pod, b: &Pod) -> Ordering {
    let (na, nb) = (node_name(a), node_name(b));
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return nb.is_empty().cmp(&na.is_empty());
    }
    let phase = phase_ordinal(a).cmp(&phase_ordinal(b));
    if phase != Ordering::Equal {
        return phase;
    }
    let (ready_a, ready_b) = (is_pod_ready(a), is_pod_ready(b));
    if ready_a != ready_b {
        return ready_a.cmp(&ready_b);
    }
    if ready_a && ready_b {
        let (ta, tb) = (pod_ready_time(a), pod_ready_time(b));
        if ta != tb {
            return later_or_missing_first(ta, tb);
        }
    }
    compare_restarts(a, b).then_with(|| later_or_missing_first(creation(a), creation(b)))
}

/// Sorts `pods` (each with its rank) so the ones to delete first come first.
pub fn sort_for_deletion<P: Borrow<Pod>>(pods: &mut [(P, i64)], now: Timestamp) {
    pods.sort_by(|(a, ra), (b, rb)| compare_for_deletion(a.borrow(), *ra, b.borrow(), *rb, now));
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodCondition;

    use crate::pod::{ContainerStatus, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("valid")
    }

    #[derive(Default)]
    struct P {
        node: &'static str,
        phase: &'static str,
        ready_since: Option<i64>,
        restarts: i32,
        created: i64,
        cost: Option<&'static str>,
        uid: &'static str,
    }

    fn pod(p: P) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.uid = Some(p.uid.into());
        pod.metadata.creation_timestamp = Some(Time(ts(p.created)));
        if let Some(cost) = p.cost {
            pod.metadata.annotations =
                Some([(crate::pod_util::POD_DELETION_COST.into(), cost.into())].into());
        }
        pod.spec = Some(PodSpec {
            node_name: (!p.node.is_empty()).then(|| p.node.to_string()),
            ..Default::default()
        });
        pod.status = Some(PodStatus {
            phase: Some(p.phase.into()),
            conditions: p.ready_since.map(|s| {
                vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(ts(s))),
                    ..Default::default()
                }]
            }),
            container_statuses: Some(vec![ContainerStatus {
                restart_count: p.restarts,
                ..Default::default()
            }]),
            ..Default::default()
        });
        pod
    }

    const NOW: i64 = 1_000_000;

    fn first(a: P, b: P) -> Ordering {
        compare_for_deletion(&pod(a), 0, &pod(b), 0, ts(NOW))
    }

    #[test]
    fn unassigned_pending_not_ready_go_first() {
        let running = || P {
            node: "n",
            phase: "Running",
            ready_since: Some(0),
            ..Default::default()
        };
        assert_eq!(
            first(
                P {
                    phase: "Running",
                    ..Default::default()
                },
                running()
            ),
            Ordering::Less
        );
        assert_eq!(
            first(
                P {
                    node: "n",
                    phase: "Pending",
                    ..Default::default()
                },
                P {
                    node: "n",
                    phase: "Unknown",
                    ..Default::default()
                }
            ),
            Ordering::Less
        );
        assert_eq!(
            first(
                P {
                    node: "n",
                    phase: "Unknown",
                    ..Default::default()
                },
                running()
            ),
            Ordering::Less
        );
        assert_eq!(
            first(
                P {
                    node: "n",
                    phase: "Running",
                    ..Default::default()
                },
                running()
            ),
            Ordering::Less
        );
        assert_eq!(
            first(
                running(),
                P {
                    node: "n",
                    phase: "Running",
                    ..Default::default()
                }
            ),
            Ordering::Greater
        );
    }

    #[test]
    fn cost_rank_ready_time_restarts_age() {
        let base = |f: fn(&mut P)| {
            let mut p = P {
                node: "n",
                phase: "Running",
                ready_since: Some(NOW - 100),
                created: NOW - 200,
                uid: "a",
                ..Default::default()
            };
            f(&mut p);
            p
        };
        assert_eq!(
            first(base(|p| p.cost = Some("-1")), base(|_| ())),
            Ordering::Less
        );
        let (a, b) = (pod(base(|_| ())), pod(base(|_| ())));
        assert_eq!(
            compare_for_deletion(&a, 3, &b, 1, ts(NOW)),
            Ordering::Less,
            "more colocated first"
        );
        // Ready for 10 s vs 1000 s: different log2 buckets, the shorter one goes first.
        assert_eq!(
            first(
                base(|p| p.ready_since = Some(NOW - 10)),
                base(|p| p.ready_since = Some(NOW - 1000))
            ),
            Ordering::Less
        );
        assert_eq!(
            first(base(|p| p.restarts = 5), base(|_| ())),
            Ordering::Less
        );
        assert_eq!(
            first(base(|p| p.created = NOW - 5), base(|_| ())),
            Ordering::Less,
            "newer first"
        );
        // Same log2 bucket: broken by UID.
        assert_eq!(
            first(
                base(|p| {
                    p.created = NOW - 200;
                    p.uid = "b"
                }),
                base(|p| p.created = NOW - 201)
            ),
            Ordering::Greater
        );
    }

    #[test]
    fn exact_ordering_without_ranks() {
        let a = pod(P {
            node: "n",
            phase: "Running",
            created: 10,
            ..Default::default()
        });
        let b = pod(P {
            node: "n",
            phase: "Running",
            created: 11,
            ..Default::default()
        });
        assert_eq!(compare_active_pods(&b, &a), Ordering::Less, "newer first");
        let mut pods = vec![
            (a.clone(), 0),
            (b.clone(), 0),
            (
                pod(P {
                    phase: "Pending",
                    ..Default::default()
                }),
                0,
            ),
        ];
        sort_for_deletion(&mut pods, ts(NOW));
        assert!(
            pods[0]
                .0
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_none()
        );
    }

    #[test]
    fn the_deletion_order_is_a_total_order() {
        // Pods whose ready times share age buckets while their restarts and creation times disagree:
        // the mix that made upstream's order intransitive and Rust's sort panic.
        const UIDS: [&str; 6] = ["a", "b", "c", "d", "e", "f"];
        let pods: Vec<Pod> = (0..36)
            .map(|i: i64| {
                pod(P {
                    node: "n",
                    phase: "Running",
                    ready_since: Some(NOW - 1000 - (i % 3) * 300),
                    restarts: (i % 4) as i32,
                    created: NOW - 5000 + (i % 5) * 700,
                    uid: UIDS[(i % 6) as usize],
                    ..Default::default()
                })
            })
            .collect();
        let cmp = |a: &Pod, b: &Pod| compare_for_deletion(a, 0, b, 0, ts(NOW));
        for a in &pods {
            for b in &pods {
                assert_eq!(cmp(a, b), cmp(b, a).reverse(), "antisymmetric");
                for c in &pods {
                    if cmp(a, b) != Ordering::Greater && cmp(b, c) != Ordering::Greater {
                        assert_ne!(cmp(a, c), Ordering::Greater, "transitive");
                    }
                }
            }
        }
        let mut ranked: Vec<(&Pod, i64)> = pods.iter().map(|p| (p, 0)).collect();
        sort_for_deletion(&mut ranked, ts(NOW));
    }
}
