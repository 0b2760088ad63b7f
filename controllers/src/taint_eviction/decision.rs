//! What to do with one pod on a node with NoExecute taints (upstream's `processPodOnNode`), as pure
//! functions of the pod's tolerations, the node's taints, the eviction already scheduled and the time.

use std::ops::Add;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Taint, Toleration};

/// The node's NoExecute taints (upstream's `getNoExecuteTaints`).
pub fn no_execute_taints(taints: &[Taint]) -> Vec<Taint> {
    taints
        .iter()
        .filter(|t| t.effect == "NoExecute")
        .cloned()
        .collect()
}

/// Upstream's `Toleration.ToleratesTaint` (the alpha comparison operators Lt/Gt are off by default and so
/// match nothing).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or_default() {
        "" | "Equal" => {
            toleration.value.as_deref().unwrap_or_default()
                == taint.value.as_deref().unwrap_or_default()
        }
        "Exists" => true,
        _ => false,
    }
}

/// Upstream's `GetMatchingTolerations`: for each taint the first toleration that tolerates it, or `None`
/// when some taint is not tolerated.
pub fn matching_tolerations<'a>(
    taints: &[Taint],
    tolerations: &'a [Toleration],
) -> Option<Vec<&'a Toleration>> {
    taints
        .iter()
        .map(|taint| tolerations.iter().find(|t| tolerates(t, taint)))
        .collect()
}

/// How long a pod may stay (upstream's `getMinTolerationTime`): the least tolerationSeconds among the
/// tolerations used, zero if any is zero or negative (or none were used), `None` when all tolerate forever.
pub fn min_toleration_time(used: &[&Toleration]) -> Option<Duration> {
    if used.is_empty() {
        return Some(Duration::ZERO);
    }
    let mut least: Option<i64> = None;
    for seconds in used.iter().filter_map(|t| t.toleration_seconds) {
        if seconds <= 0 {
            return Some(Duration::ZERO);
        }
        least = Some(least.map_or(seconds, |l| l.min(seconds)));
    }
    least.map(|s| Duration::from_secs(s.unsigned_abs()))
}

/// What happens to a pod's scheduled eviction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan<T> {
    /// Cancel any scheduled eviction: no taints, or the pod tolerates them forever.
    Cancel,
    /// Keep the eviction already scheduled.
    Keep,
    /// Cancel any scheduled eviction and schedule one at `fire_at`, counted from `created_at`.
    Schedule { created_at: T, fire_at: T },
}

/// Upstream's `processPodOnNode` decision. `taints` are the node's NoExecute taints; `scheduled` is when
/// the pod's pending eviction was first scheduled (the time it started being counted from).
pub fn plan<T>(
    taints: &[Taint],
    tolerations: &[Toleration],
    scheduled: Option<T>,
    now: T,
) -> Plan<T>
where
    T: Copy + Ord + Add<Duration, Output = T>,
{
    if taints.is_empty() {
        return Plan::Cancel;
    }
    let Some(used) = matching_tolerations(taints, tolerations) else {
        return Plan::Schedule {
            created_at: now,
            fire_at: now,
        };
    };
    let Some(min) = min_toleration_time(&used) else {
        return Plan::Cancel;
    };
    let fire_at = now + min;
    match scheduled {
        // The earlier start wins: a node update does not restart the countdown.
        Some(created_at) if created_at + min < fire_at => Plan::Keep,
        Some(created_at) => Plan::Schedule {
            created_at,
            fire_at,
        },
        None => Plan::Schedule {
            created_at: now,
            fire_at,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            effect: effect.into(),
            ..Default::default()
        }
    }

    fn toleration(key: &str, seconds: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: seconds,
            ..Default::default()
        }
    }

    const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
    const NOT_READY: &str = "node.kubernetes.io/not-ready";

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn only_no_execute_taints_count() {
        let taints = [taint("a", "NoSchedule"), taint("b", "NoExecute")];
        assert_eq!(no_execute_taints(&taints), vec![taint("b", "NoExecute")]);
    }

    #[test]
    fn untolerated_taint_evicts_now() {
        let now = secs(100);
        let plan = plan(&[taint(UNREACHABLE, "NoExecute")], &[], None, now);
        assert_eq!(
            plan,
            Plan::Schedule {
                created_at: now,
                fire_at: now
            }
        );
    }

    #[test]
    fn toleration_seconds_delay_eviction() {
        let now = secs(100);
        let tolerations = [toleration(UNREACHABLE, Some(5))];
        let plan = plan(&[taint(UNREACHABLE, "NoExecute")], &tolerations, None, now);
        assert_eq!(
            plan,
            Plan::Schedule {
                created_at: now,
                fire_at: secs(105)
            }
        );
    }

    #[test]
    fn tolerating_forever_cancels() {
        let tolerations = [toleration(UNREACHABLE, None)];
        let plan = plan(
            &[taint(UNREACHABLE, "NoExecute")],
            &tolerations,
            Some(secs(1)),
            secs(2),
        );
        assert_eq!(plan, Plan::Cancel);
    }

    #[test]
    fn no_taints_cancels() {
        assert_eq!(
            plan::<Duration>(&[], &[], Some(secs(1)), secs(2)),
            Plan::Cancel
        );
    }

    #[test]
    fn least_toleration_seconds_of_the_matching_tolerations_wins() {
        let taints = [
            taint(UNREACHABLE, "NoExecute"),
            taint(NOT_READY, "NoExecute"),
        ];
        let tolerations = [
            toleration(UNREACHABLE, Some(30)),
            toleration(NOT_READY, Some(10)),
            toleration("unrelated", Some(1)),
        ];
        let plan = plan(&taints, &tolerations, None, secs(0));
        assert_eq!(
            plan,
            Plan::Schedule {
                created_at: secs(0),
                fire_at: secs(10)
            }
        );
    }

    #[test]
    fn forever_and_timed_tolerations_use_the_timed_one() {
        let taints = [
            taint(UNREACHABLE, "NoExecute"),
            taint(NOT_READY, "NoExecute"),
        ];
        let tolerations = [
            toleration(UNREACHABLE, None),
            toleration(NOT_READY, Some(7)),
        ];
        let got = plan(&taints, &tolerations, None, secs(0));
        assert_eq!(
            got,
            Plan::Schedule {
                created_at: secs(0),
                fire_at: secs(7)
            }
        );
    }

    #[test]
    fn zero_or_negative_seconds_evict_now() {
        let tolerations = [toleration(UNREACHABLE, Some(-1))];
        let got = plan(
            &[taint(UNREACHABLE, "NoExecute")],
            &tolerations,
            None,
            secs(3),
        );
        assert_eq!(
            got,
            Plan::Schedule {
                created_at: secs(3),
                fire_at: secs(3)
            }
        );
    }

    #[test]
    fn earlier_scheduled_eviction_is_kept() {
        let tolerations = [toleration(UNREACHABLE, Some(5))];
        let got = plan(
            &[taint(UNREACHABLE, "NoExecute")],
            &tolerations,
            Some(secs(1)),
            secs(3),
        );
        assert_eq!(got, Plan::Keep);
    }

    #[test]
    fn toleration_matching_rules() {
        let t = Taint {
            key: "k".into(),
            value: Some("v".into()),
            effect: "NoExecute".into(),
            ..Default::default()
        };
        let equal = Toleration {
            key: Some("k".into()),
            value: Some("v".into()),
            ..Default::default()
        };
        assert!(tolerates(&equal, &t));
        let other_value = Toleration {
            value: Some("w".into()),
            ..equal.clone()
        };
        assert!(!tolerates(&other_value, &t));
        let wildcard = Toleration {
            operator: Some("Exists".into()),
            ..Default::default()
        };
        assert!(tolerates(&wildcard, &t));
        let other_effect = Toleration {
            effect: Some("NoSchedule".into()),
            ..wildcard.clone()
        };
        assert!(!tolerates(&other_effect, &t));
        let less_than = Toleration {
            operator: Some("Lt".into()),
            ..equal
        };
        assert!(!tolerates(&less_than, &t));
    }
}
