//! Deciding how to reach spec.replicas (upstream `manageReplicas`, `slowStartBatch` and `getPodsToDelete`):
//! how many pods to create or delete this sync (at most the burst), in which growing batches to create
//! them, and which pods to delete.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures::future::join_all;
use k8s_openapi::jiff::Timestamp;

use crate::active_pods::sort_for_deletion;
use crate::pod::Pod;
use crate::pod_util::is_pod_active;

/// Most pods created or deleted in one sync (upstream `BurstReplicas`).
pub const BURST_REPLICAS: usize = 500;

/// The first slow-start batch (upstream `SlowStartInitialBatchSize`).
pub const SLOW_START_INITIAL_BATCH_SIZE: usize = 1;

/// What one sync does about the number of pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaAction {
    /// The count is right.
    Nothing,
    /// Create this many pods.
    Create(usize),
    /// Delete this many pods.
    Delete(usize),
}

/// Compares `active` pods with `replicas` wanted, capping the change at `burst`.
pub fn replica_action(active: usize, replicas: i32, burst: usize) -> ReplicaAction {
    let wanted = usize::try_from(replicas).unwrap_or(0);
    if active < wanted {
        ReplicaAction::Create((wanted - active).min(burst))
    } else if active > wanted {
        ReplicaAction::Delete((active - wanted).min(burst))
    } else {
        ReplicaAction::Nothing
    }
}

/// Batch sizes of a slow start creating `count`: `initial`, then doubling, the last one what remains.
pub fn slow_start_batches(count: usize, initial: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let mut remaining = count;
    let mut size = remaining.min(initial.max(1));
    while size > 0 {
        batches.push(size);
        remaining -= size;
        size = (2 * size).min(remaining);
    }
    batches
}

/// Calls `call` `count` times in batches of [`slow_start_batches`], each batch concurrently, stopping
/// after the first batch with a failure: a quota or admission error then costs one call, not hundreds.
/// Returns how many calls succeeded and the first error.
pub async fn slow_start_batch<E, F, Fut>(
    count: usize,
    initial: usize,
    call: F,
) -> (usize, Option<E>)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), E>>,
{
    let mut successes = 0;
    for size in slow_start_batches(count, initial) {
        let results = join_all((0..size).map(|_| call())).await;
        let mut first_error = None;
        for result in results {
            match result {
                Ok(()) => successes += 1,
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if first_error.is_some() {
            return (successes, first_error);
        }
    }
    (successes, None)
}

fn node_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default()
}

/// The `diff` pods of `active` to delete first. Each is ranked by how many active `related` pods (of the
/// same owner's other sets) share its node, so scale-down spreads the survivors (upstream
/// `getPodsToDelete` with `getPodsRankedByRelatedPodsOnSameNode`).
pub fn pods_to_delete(
    active: Vec<Arc<Pod>>,
    related: &[Arc<Pod>],
    diff: usize,
    now: Timestamp,
) -> Vec<Arc<Pod>> {
    if diff >= active.len() {
        return active;
    }
    let mut on_node: HashMap<&str, i64> = HashMap::new();
    for pod in related.iter().filter(|p| is_pod_active(p)) {
        *on_node.entry(node_name(pod)).or_default() += 1;
    }
    let mut ranked: Vec<(Arc<Pod>, i64)> = active
        .into_iter()
        .map(|p| {
            let rank = on_node.get(node_name(&p)).copied().unwrap_or(0);
            (p, rank)
        })
        .collect();
    sort_for_deletion(&mut ranked, now);
    ranked.into_iter().take(diff).map(|(p, _)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod::{PodSpec, PodStatus};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn diff_becomes_creates_or_deletes_capped_by_the_burst() {
        assert_eq!(replica_action(0, 3, 500), ReplicaAction::Create(3));
        assert_eq!(replica_action(5, 3, 500), ReplicaAction::Delete(2));
        assert_eq!(replica_action(3, 3, 500), ReplicaAction::Nothing);
        assert_eq!(replica_action(0, 1000, 500), ReplicaAction::Create(500));
        assert_eq!(replica_action(900, 0, 500), ReplicaAction::Delete(500));
        assert_eq!(replica_action(2, -1, 500), ReplicaAction::Delete(2));
    }

    #[test]
    fn slow_start_doubles() {
        assert_eq!(slow_start_batches(0, 1), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1, 1), [1]);
        assert_eq!(slow_start_batches(10, 1), [1, 2, 4, 3]);
        assert_eq!(slow_start_batches(15, 1), [1, 2, 4, 8]);
        assert_eq!(slow_start_batches(500, 1).iter().sum::<usize>(), 500);
    }

    #[tokio::test]
    async fn slow_start_stops_after_the_first_failing_batch() {
        let calls = AtomicUsize::new(0);
        // Calls 1..=3 succeed (batches 1 and 2), the 4th fails: batch 3 (4 calls) runs whole, then stop.
        let (ok, err) = slow_start_batch(20, 1, || {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            async move { if n == 4 { Err("quota") } else { Ok(()) } }
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 7);
        assert_eq!((ok, err), (6, Some("quota")));
        let (ok, err) = slow_start_batch(5, 1, || async { Ok::<(), ()>(()) }).await;
        assert_eq!((ok, err), (5, None));
    }

    fn pod(name: &str, node: &str, phase: &str) -> Arc<Pod> {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.into());
        pod.spec = Some(PodSpec {
            node_name: Some(node.into()),
            ..Default::default()
        });
        pod.status = Some(PodStatus {
            phase: Some(phase.into()),
            ..Default::default()
        });
        Arc::new(pod)
    }

    fn names(pods: &[Arc<Pod>]) -> Vec<&str> {
        pods.iter()
            .map(|p| p.metadata.name.as_deref().unwrap_or_default())
            .collect()
    }

    #[test]
    fn deletes_the_least_useful_and_the_most_colocated() {
        let active = vec![
            pod("running", "n1", "Running"),
            pod("pending", "n1", "Pending"),
            pod("unscheduled", "", "Pending"),
        ];
        let chosen = pods_to_delete(active.clone(), &[], 2, Timestamp::UNIX_EPOCH);
        assert_eq!(names(&chosen), ["unscheduled", "pending"]);
        // Same state: the pod on the node crowded with related pods goes first.
        let active = vec![pod("a", "n1", "Running"), pod("b", "n2", "Running")];
        let related = vec![
            pod("r1", "n2", "Running"),
            pod("r2", "n2", "Running"),
            pod("r3", "n1", "Running"),
        ];
        assert_eq!(
            names(&pods_to_delete(
                active.clone(),
                &related,
                1,
                Timestamp::UNIX_EPOCH
            )),
            ["b"]
        );
        assert_eq!(
            pods_to_delete(active, &related, 5, Timestamp::UNIX_EPOCH).len(),
            2
        );
    }
}
