//! The binding decisions (upstream `volumebinding/binder.go`): sorting a pod's claims in PreFilter, finding
//! PVs or provisioning for one node in Filter, and the in-memory binding Reserve assumes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;

use crate::framework::Listers;

use super::assume_cache::AssumeCache;
use super::pv_helpers::{
    ANN_BIND_COMPLETED, ANN_BOUND_BY_CONTROLLER, ANN_SELECTED_NODE, NOT_SUPPORTED_PROVISIONER,
    check_node_affinity, claim_class, claim_volume_name, find_matching_volume, has_annotation,
    is_delay_binding_mode, is_volume_bound_to_claim, match_topology_selector_terms,
    requested_storage, volume_claim_name, volume_is_for_pod,
};

/// Bound claims' PVs do not admit the node.
pub const ERR_REASON_NODE_CONFLICT: &str = "node(s) had volume node affinity conflict";
/// No PV (nor provisioning) can serve an unbound claim on the node.
pub const ERR_REASON_BIND_CONFLICT: &str =
    "node(s) didn't find available persistent volumes to bind";
/// A bound claim's PV does not exist.
pub const ERR_REASON_PV_NOT_EXIST: &str =
    "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)";

/// A bound claim and its PV, if the PV exists.
#[derive(Clone, Debug)]
pub struct BoundClaim {
    /// The claim.
    pub claim: Arc<PersistentVolumeClaim>,
    /// The PV it is bound to.
    pub volume: Option<Arc<PersistentVolume>>,
}

/// A pod's claims sorted by what scheduling must do for them (upstream `PodVolumeClaims`).
#[derive(Clone, Debug, Default)]
pub struct PodVolumeClaims {
    /// Fully bound claims.
    pub bound: Vec<BoundClaim>,
    /// Unbound WaitForFirstConsumer claims, smallest request first.
    pub unbound_delay: Vec<Arc<PersistentVolumeClaim>>,
    /// Unbound (or pre-bound but incomplete) claims that the PV controller should have bound.
    pub unbound_immediate: Vec<Arc<PersistentVolumeClaim>>,
    /// Candidate PVs for the delayed claims, by StorageClass name.
    pub volumes_by_class: HashMap<String, Vec<Arc<PersistentVolume>>>,
    /// The delayed claims' StorageClasses (`None` when missing).
    pub classes: HashMap<String, Option<Arc<StorageClass>>>,
}

/// A claim to bind to a pre-provisioned PV.
#[derive(Clone, Debug)]
pub struct StaticBinding {
    /// The claim.
    pub claim: Arc<PersistentVolumeClaim>,
    /// The PV chosen for it.
    pub volume: Arc<PersistentVolume>,
}

/// What binding the pod's volumes on one node takes (upstream `PodVolumes`).
#[derive(Clone, Debug, Default)]
pub struct PodVolumes {
    /// Claims to bind to existing PVs.
    pub static_bindings: Vec<StaticBinding>,
    /// Claims to provision on the node.
    pub dynamic_provisions: Vec<Arc<PersistentVolumeClaim>>,
    /// The node's labels, to check the PVs binding produces.
    pub node_labels: BTreeMap<String, String>,
}

/// Whether the claim is fully bound: it names a PV and the PV controller finished binding.
pub fn is_claim_fully_bound(claim: &PersistentVolumeClaim) -> bool {
    !claim_volume_name(claim).is_empty() && has_annotation(&claim.metadata, ANN_BIND_COMPLETED)
}

/// Why the pod's claims keep it out of scheduling altogether (upstream `podHasPVCs`), or whether it has
/// any claim. Errors are UnschedulableAndUnresolvable messages.
pub fn pod_has_claims(pod: &Pod, listers: &dyn Listers) -> Result<bool, String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let mut has_claim = false;
    for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let Some((name, ephemeral)) = volume_claim_name(pod, volume) else {
            continue;
        };
        has_claim = true;
        let Some(claim) = listers.persistent_volume_claim(namespace, &name) else {
            return Err(if ephemeral {
                format!(
                    "waiting for ephemeral volume controller to create the persistentvolumeclaim {name:?}"
                )
            } else {
                super::pv_helpers::not_found("persistentvolumeclaim", &name)
            });
        };
        if claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Lost") {
            return Err(format!(
                "persistentvolumeclaim {name:?} bound to non-existent persistentvolume {:?}",
                claim_volume_name(&claim)
            ));
        }
        if claim.metadata.deletion_timestamp.is_some() {
            return Err(format!("persistentvolumeclaim {name:?} is being deleted"));
        }
        if ephemeral {
            volume_is_for_pod(pod, &claim)?;
        }
    }
    Ok(has_claim)
}

/// Each claim the pod uses, as the scheduler sees it, with whether it is fully bound.
fn pod_claims(
    pod: &Pod,
    listers: &dyn Listers,
    cache: &AssumeCache,
) -> Result<Vec<(Arc<PersistentVolumeClaim>, bool)>, String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let mut claims = Vec::new();
    for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let Some((name, ephemeral)) = volume_claim_name(pod, volume) else {
            continue;
        };
        let Some(claim) = cache.claim(listers, namespace, &name) else {
            return Err(format!(
                "error getting PVC \"{namespace}/{name}\": {}",
                super::pv_helpers::not_found("persistentvolumeclaim", &name)
            ));
        };
        if ephemeral {
            volume_is_for_pod(pod, &claim)?;
        }
        let bound = is_claim_fully_bound(&claim);
        claims.push((claim, bound));
    }
    Ok(claims)
}

/// Whether every claim of the pod is fully bound (upstream `arePodVolumesBound`).
pub fn pod_volumes_bound(pod: &Pod, listers: &dyn Listers, cache: &AssumeCache) -> bool {
    pod_claims(pod, listers, cache).is_ok_and(|claims| claims.iter().all(|(_, bound)| *bound))
}

/// Sorts the pod's claims into bound, delayed and immediate ones and gathers what Filter needs for them
/// (upstream `GetPodVolumeClaims`).
pub fn pod_volume_claims(
    pod: &Pod,
    listers: &dyn Listers,
    cache: &AssumeCache,
) -> Result<PodVolumeClaims, String> {
    let mut result = PodVolumeClaims::default();
    for (claim, bound) in pod_claims(pod, listers, cache)? {
        if bound {
            let volume = cache.volume(listers, claim_volume_name(&claim));
            result.bound.push(BoundClaim { claim, volume });
        } else if is_delay_binding_mode(&claim, listers)? && claim_volume_name(&claim).is_empty() {
            result.unbound_delay.push(claim);
        } else {
            // Pre-bound claims are the PV controller's to finish, like immediate ones.
            result.unbound_immediate.push(claim);
        }
    }
    // Smallest requests first, so each claim takes the smallest PV that fits it.
    result.unbound_delay.sort_by_key(|c| requested_storage(c));
    for claim in &result.unbound_delay {
        let class = claim_class(claim).to_string();
        if !result.volumes_by_class.contains_key(&class) {
            let volumes = cache.volumes_of_class(listers, &class);
            result.volumes_by_class.insert(class.clone(), volumes);
        }
        if !class.is_empty() && !result.classes.contains_key(&class) {
            let storage_class = listers.storage_class(&class);
            result.classes.insert(class, storage_class);
        }
    }
    Ok(result)
}

/// What a node offers the pod's volumes: the bindings to make, or why it cannot host them.
pub enum NodeFit {
    /// The node fits; binding takes these steps.
    Fits(PodVolumes),
    /// The node does not fit, for these reasons (in upstream's order).
    Conflicts(Vec<&'static str>),
}

/// Checks the pod's claims against one node (upstream `FindPodVolumes`); errors are internal errors.
pub fn find_pod_volumes(
    claims: &PodVolumeClaims,
    node_name: &str,
    node_labels: &BTreeMap<String, String>,
) -> Result<NodeFit, String> {
    let mut bound_satisfied = true;
    let mut bound_pvs_found = true;
    for bound in &claims.bound {
        let Some(volume) = &bound.volume else {
            bound_pvs_found = false;
            break;
        };
        if !check_node_affinity(volume, node_labels) {
            bound_satisfied = false;
            break;
        }
    }
    let mut unbound_satisfied = true;
    let mut volumes = PodVolumes::default();
    'unbound: {
        if claims.unbound_delay.is_empty() {
            break 'unbound;
        }
        let mut to_provision = Vec::new();
        let mut to_match = Vec::new();
        for claim in &claims.unbound_delay {
            match claim
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANN_SELECTED_NODE))
            {
                // Provisioning was already started for another node.
                Some(selected) if selected != node_name => {
                    unbound_satisfied = false;
                    break 'unbound;
                }
                Some(_) => to_provision.push(claim.clone()),
                None => to_match.push(claim.clone()),
            }
        }
        let mut chosen = HashSet::new();
        for claim in to_match {
            let candidates = claims
                .volumes_by_class
                .get(claim_class(&claim))
                .map(Vec::as_slice)
                .unwrap_or_default();
            match find_matching_volume(&claim, candidates, node_labels, &chosen)? {
                Some(volume) => {
                    chosen.insert(volume.metadata.name.clone().unwrap_or_default());
                    volumes
                        .static_bindings
                        .push(StaticBinding { claim, volume });
                }
                None => {
                    unbound_satisfied = false;
                    to_provision.push(claim);
                }
            }
        }
        if !to_provision.is_empty() {
            unbound_satisfied = can_provision(claims, &to_provision, node_labels)?;
            if unbound_satisfied {
                volumes.dynamic_provisions = to_provision;
            }
        }
    }
    let mut reasons = Vec::new();
    if !bound_satisfied {
        reasons.push(ERR_REASON_NODE_CONFLICT);
    }
    if !unbound_satisfied {
        reasons.push(ERR_REASON_BIND_CONFLICT);
    }
    if !bound_pvs_found {
        reasons.push(ERR_REASON_PV_NOT_EXIST);
    }
    if !reasons.is_empty() {
        return Ok(NodeFit::Conflicts(reasons));
    }
    volumes.node_labels = if claims.unbound_delay.is_empty() {
        BTreeMap::new()
    } else {
        node_labels.clone()
    };
    Ok(NodeFit::Fits(volumes))
}

/// Whether every claim can be provisioned dynamically on the node (upstream `checkVolumeProvisions`; storage
/// capacity tracking is not checked).
fn can_provision(
    claims: &PodVolumeClaims,
    to_provision: &[Arc<PersistentVolumeClaim>],
    node_labels: &BTreeMap<String, String>,
) -> Result<bool, String> {
    for claim in to_provision {
        let class_name = claim_class(claim);
        if class_name.is_empty() {
            return Err(format!(
                "no class for claim {:?}",
                super::assume_cache::claim_key(claim)
            ));
        }
        let Some(Some(class)) = claims.classes.get(class_name) else {
            return Err(format!("failed to find storage class {class_name:?}"));
        };
        if class.provisioner.is_empty() || class.provisioner == NOT_SUPPORTED_PROVISIONER {
            return Ok(false);
        }
        let topologies = class.allowed_topologies.as_deref().unwrap_or_default();
        if !match_topology_selector_terms(topologies, node_labels) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The volume bound to the claim, and whether that changed it (upstream `GetBindVolumeToClaim`).
pub fn bind_volume_to_claim(
    volume: &PersistentVolume,
    claim: &PersistentVolumeClaim,
) -> (PersistentVolume, bool) {
    let set_bound_by_controller = !is_volume_bound_to_claim(volume, claim);
    let mut bound = volume.clone();
    let mut dirty = false;
    let claim_ref = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
    let same = claim_ref.is_some_and(|r| {
        r.name == claim.metadata.name
            && r.namespace == claim.metadata.namespace
            && r.uid.as_deref().unwrap_or_default()
                == claim.metadata.uid.as_deref().unwrap_or_default()
    });
    if !same {
        bound.spec.get_or_insert_with(Default::default).claim_ref = Some(ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("PersistentVolumeClaim".into()),
            name: claim.metadata.name.clone(),
            namespace: claim.metadata.namespace.clone(),
            uid: claim.metadata.uid.clone(),
            resource_version: claim.metadata.resource_version.clone(),
            field_path: None,
        });
        dirty = true;
    }
    if set_bound_by_controller && !has_annotation(&bound.metadata, ANN_BOUND_BY_CONTROLLER) {
        bound
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(ANN_BOUND_BY_CONTROLLER.into(), "yes".into());
        dirty = true;
    }
    (bound, dirty)
}

/// The claim annotated for provisioning on `node`.
pub fn claim_with_selected_node(
    claim: &PersistentVolumeClaim,
    node: &str,
) -> PersistentVolumeClaim {
    let mut annotated = claim.clone();
    annotated
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(ANN_SELECTED_NODE.into(), node.into());
    annotated
}
