//! Housekeeping (upstream's HandlePodCleanups): after the pod informer's first full list and then every
//! [`HOUSEKEEPING_PERIOD`], whatever the node still holds for a pod that is neither bound to it nor being
//! terminated by a worker — containers, a sandbox, a pod directory, pod cgroups — is removed. That is how
//! pods deleted while the kubelet was down, or whose removal failed midway, are cleaned up. Old attempts
//! of restarted containers are collected on the same pass.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use component_base::informer::SharedInformer;
use k8s_openapi::api::core::v1::Pod;
use tokio_util::sync::CancellationToken;

use crate::kuberuntime::record::LABEL_POD_UID;
use crate::pod_workers::{PodWorkers, WorkerContext};

/// How often housekeeping runs (upstream's housekeepingPeriod).
pub const HOUSEKEEPING_PERIOD: Duration = Duration::from_secs(2);

/// The UIDs among `found` (what the node holds something for) that are not in `known` (pods bound to the
/// node, and pods a worker is still busy with).
pub fn orphans<'a>(
    found: impl IntoIterator<Item = &'a str>,
    known: &HashSet<String>,
) -> BTreeSet<String> {
    found
        .into_iter()
        .filter(|uid| !uid.is_empty() && !known.contains(*uid))
        .map(str::to_string)
        .collect()
}

/// Runs housekeeping until `stop`, starting once `pods` has its first full list.
pub async fn run(workers: PodWorkers, pods: SharedInformer<Pod>, stop: CancellationToken) {
    tokio::select! {
        () = stop.cancelled() => return,
        () = pods.wait_for_sync() => {}
    }
    loop {
        clean_up(&workers, &pods).await;
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(HOUSEKEEPING_PERIOD) => {}
        }
    }
}

/// One pass.
async fn clean_up(workers: &PodWorkers, pods: &SharedInformer<Pod>) {
    let context = workers.context();
    // What the node holds is read before what is wanted: a pod whose first container appears after its
    // UID was read as unknown could otherwise lose it. Read in this order, such a pod is known by then.
    let containers = match context.manager.runtime().list_containers().await {
        Ok(containers) => containers,
        Err(e) => {
            tracing::warn!(error = %e, "housekeeping cannot list containers");
            return;
        }
    };
    let mut found: BTreeSet<String> = containers
        .iter()
        .filter_map(|c| c.labels.get(LABEL_POD_UID).cloned())
        .collect();
    found.extend(context.manager.sandbox().list());
    found.extend(context.volumes.pod_dirs());
    let mut known = workers.active();
    known.extend(pods.list().iter().filter_map(|p| p.metadata.uid.clone()));
    for uid in orphans(found.iter().map(String::as_str), &known) {
        remove_orphan(context, &uid).await;
    }
    if let Err(e) = context.manager.collect_garbage(&containers).await {
        tracing::warn!(error = %e, "cannot remove old container attempts");
    }
}

/// Removes what is left of pod `uid`: its containers (killed at once: the pod is gone, and with it its
/// grace period), sandbox, cgroups and directory.
async fn remove_orphan(context: &WorkerContext, uid: &str) {
    tracing::info!(uid, "Cleaning up orphaned pod");
    match context.manager.pod_status(uid).await {
        Ok(status) => {
            if let Err(e) = context.manager.remove_pod(uid, &status).await {
                tracing::warn!(uid, error = %e, "cannot remove the orphaned pod's containers");
                return;
            }
        }
        Err(e) => {
            tracing::warn!(uid, error = %e, "cannot read the orphaned pod's containers");
            return;
        }
    }
    if let Err(e) = context.volumes.remove_pod(uid).await {
        tracing::warn!(uid, error = %e, "cannot remove the orphaned pod's directory");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orphans_are_the_found_uids_nobody_knows() {
        let known: HashSet<String> = ["bound", "terminating"].map(String::from).into();
        let found = [
            "bound",
            "gone",
            "terminating",
            "gone",
            "",
            "deleted-while-down",
        ];
        assert_eq!(
            orphans(found, &known),
            ["deleted-while-down", "gone"].map(String::from).into()
        );
        assert!(orphans([], &known).is_empty());
        assert_eq!(orphans(["x"], &HashSet::new()), ["x".to_string()].into());
    }
}
