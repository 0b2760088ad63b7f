//! PreBind's API work (upstream `BindPodVolumes`): write the PVs' claimRefs and the claims' selected-node
//! annotations, then wait until the persistent-volume controller (and any external provisioner) has bound
//! every claim, up to the bind timeout.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use kube::Api;
use kube::api::PostParams;

use crate::framework::Listers;

use super::assume_cache::{AssumeCache, claim_key, is_newer};
use super::binder::{PodVolumes, StaticBinding, is_claim_fully_bound};
use super::pv_helpers::{ANN_SELECTED_NODE, check_node_affinity, claim_volume_name};

/// How often binding progress is checked (upstream polls every second).
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Whether every claim the pod's binding touched is fully bound (upstream `checkBindings`), reading the
/// informers' objects. `Err` means binding failed and scheduling must be retried.
pub fn check_bindings(
    listers: &dyn Listers,
    node: &str,
    volumes: &PodVolumes,
) -> Result<bool, String> {
    for binding in &volumes.static_bindings {
        let name = binding.volume.metadata.name.as_deref().unwrap_or_default();
        let Some(pv) = listers.persistent_volume(name) else {
            return Err(format!(
                "failed to check binding: {}",
                super::pv_helpers::not_found("persistentvolume", name)
            ));
        };
        let claim_name = binding.claim.metadata.name.as_deref().unwrap_or_default();
        let namespace = binding
            .claim
            .metadata
            .namespace
            .as_deref()
            .unwrap_or_default();
        let Some(claim) = listers.persistent_volume_claim(namespace, claim_name) else {
            return Err(format!(
                "failed to check binding: {}",
                super::pv_helpers::not_found("persistentvolumeclaim", claim_name)
            ));
        };
        // The informer has not yet seen our own update.
        if is_newer(&binding.volume.metadata, &pv.metadata) {
            return Ok(false);
        }
        if !check_node_affinity(&pv, &volumes.node_labels) {
            return Err(format!(
                "pv {name:?} node affinity doesn't match node {node:?}: no matching NodeSelectorTerms"
            ));
        }
        let claim_ref = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
        if claim_ref.is_none_or(|r| r.uid.as_deref().unwrap_or_default().is_empty()) {
            return Err(format!("ClaimRef got reset for pv {name:?}"));
        }
        if !is_claim_fully_bound(&claim) {
            return Ok(false);
        }
    }
    for provisioned in &volumes.dynamic_provisions {
        let name = provisioned.metadata.name.as_deref().unwrap_or_default();
        let namespace = provisioned
            .metadata
            .namespace
            .as_deref()
            .unwrap_or_default();
        let Some(claim) = listers.persistent_volume_claim(namespace, name) else {
            return Err(format!(
                "failed to check provisioning pvc: {}",
                super::pv_helpers::not_found("persistentvolumeclaim", name)
            ));
        };
        if is_newer(&provisioned.metadata, &claim.metadata) {
            return Ok(false);
        }
        let Some(annotations) = claim.metadata.annotations.as_ref() else {
            return Err(format!("selectedNode annotation reset for PVC {name:?}"));
        };
        // Provisioners remove the annotation to hand a failed provisioning back to the scheduler.
        if annotations.get(ANN_SELECTED_NODE).map(String::as_str) != Some(node) {
            return Err(format!("provisioning failed for PVC {name:?}"));
        }
        let volume_name = claim_volume_name(&claim);
        if !volume_name.is_empty() {
            // The PV may simply not have reached the informer yet.
            let Some(pv) = listers.persistent_volume(volume_name) else {
                return Ok(false);
            };
            if !check_node_affinity(&pv, &volumes.node_labels) {
                return Err(format!(
                    "pv {volume_name:?} node affinity doesn't match node {node:?}: no matching NodeSelectorTerms"
                ));
            }
        }
        if !is_claim_fully_bound(&claim) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Makes the API updates for the assumed bindings, replacing each written object by the server's copy;
/// on failure forgets the assumptions not yet written (upstream `bindAPIUpdate`).
async fn bind_api_update(
    client: &kube::Client,
    cache: &AssumeCache,
    volumes: &mut PodVolumes,
) -> Result<(), String> {
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let mut failed = None;
    for (index, binding) in volumes.static_bindings.iter_mut().enumerate() {
        let name = binding.volume.metadata.name.clone().unwrap_or_default();
        match pvs
            .replace(&name, &PostParams::default(), &binding.volume)
            .await
        {
            Ok(written) => binding.volume = written.into(),
            Err(error) => {
                failed = Some((index, 0, error.to_string()));
                break;
            }
        }
    }
    if failed.is_none() {
        for (index, claim) in volumes.dynamic_provisions.iter_mut().enumerate() {
            let namespace = claim.metadata.namespace.clone().unwrap_or_default();
            let name = claim.metadata.name.clone().unwrap_or_default();
            let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
            match api.replace(&name, &PostParams::default(), claim).await {
                Ok(written) => *claim = written.into(),
                Err(error) => {
                    failed = Some((volumes.static_bindings.len(), index, error.to_string()));
                    break;
                }
            }
        }
    }
    let Some((bindings_done, provisions_done, error)) = failed else {
        return Ok(());
    };
    for binding in &volumes.static_bindings[bindings_done..] {
        cache.restore_volume(binding.volume.metadata.name.as_deref().unwrap_or_default());
    }
    for claim in &volumes.dynamic_provisions[provisions_done..] {
        cache.restore_claim(&claim_key(claim));
    }
    Err(error)
}

/// Whether the pod still exists (binding for a deleted pod is abandoned).
async fn pod_exists(client: &kube::Client, pod: &Pod) -> Result<(), String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match api.get_opt(name).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(format!(
            "pod does not exist any more: {}",
            super::pv_helpers::not_found("pods", name)
        )),
        // A transient read failure is not a reason to give up; the next poll retries.
        Err(error) => {
            tracing::debug!(%error, "failed to get pod while binding its volumes");
            Ok(())
        }
    }
}

/// Writes the bindings and waits until they complete or `timeout` passes.
pub async fn bind_pod_volumes(
    client: &kube::Client,
    listers: &dyn Listers,
    cache: &AssumeCache,
    pod: &Pod,
    node: &str,
    mut volumes: PodVolumes,
    timeout: Duration,
) -> Result<(), String> {
    bind_api_update(client, cache, &mut volumes).await?;
    let deadline = Instant::now() + timeout;
    loop {
        let now = Instant::now();
        if now + POLL_INTERVAL > deadline {
            tokio::time::sleep(deadline.saturating_duration_since(now)).await;
            return Err("binding volumes: context deadline exceeded".into());
        }
        tokio::time::sleep(POLL_INTERVAL).await;
        pod_exists(client, pod)
            .await
            .map_err(|e| format!("binding volumes: {e}"))?;
        if check_bindings(listers, node, &volumes).map_err(|e| format!("binding volumes: {e}"))? {
            forget(cache, &volumes.static_bindings, &volumes.dynamic_provisions);
            return Ok(());
        }
    }
}

/// Drops assumptions the informers have caught up with.
pub fn forget(
    cache: &AssumeCache,
    bindings: &[StaticBinding],
    claims: &[std::sync::Arc<PersistentVolumeClaim>],
) {
    for binding in bindings {
        cache.restore_volume(binding.volume.metadata.name.as_deref().unwrap_or_default());
    }
    for claim in claims {
        cache.restore_claim(&claim_key(claim));
    }
}
