//! Storage rules the volume plugins share (upstream `component-helpers/storage/volume`,
//! `component-helpers/storage/ephemeral` and `v1helper.MatchTopologySelectorTerms`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    NodeSelectorTerm, PersistentVolume, PersistentVolumeClaim, Pod, TopologySelectorTerm, Volume,
};
use kube::core::{Selector, SelectorExt};

use crate::framework::Listers;
use crate::plugins::helper::requirement_matches;
use component_base::quantity::parse_milli;

/// Set on a PVC by the scheduler to ask for dynamic provisioning on that node.
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// Set on a PVC by the persistent-volume controller once binding is complete.
pub const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// Set on a PV whose claimRef was set by a controller (the scheduler counts as one) rather than the user.
pub const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// The deprecated annotation naming a claim's or volume's class; it wins over the spec field.
pub const BETA_STORAGE_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";
/// A provisioner name meaning "this class cannot provision dynamically".
pub const NOT_SUPPORTED_PROVISIONER: &str = "kubernetes.io/no-provisioner";
/// The ReadWriteOncePod access mode.
pub const READ_WRITE_ONCE_POD: &str = "ReadWriteOncePod";

/// An API NotFound message as listers return it (`persistentvolumeclaim "x" not found`).
pub fn not_found(resource: &str, name: &str) -> String {
    format!("{resource} \"{name}\" not found")
}

/// The claim's StorageClass name ("" when it asks for none).
pub fn claim_class(claim: &PersistentVolumeClaim) -> &str {
    if let Some(class) = claim
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(BETA_STORAGE_CLASS_ANNOTATION))
    {
        return class;
    }
    claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or_default()
}

/// The volume's StorageClass name ("" when it has none).
pub fn volume_class(volume: &PersistentVolume) -> &str {
    if let Some(class) = volume
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(BETA_STORAGE_CLASS_ANNOTATION))
    {
        return class;
    }
    volume
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or_default()
}

/// The name of the volume a claim is bound (or pre-bound) to ("" when none).
pub fn claim_volume_name(claim: &PersistentVolumeClaim) -> &str {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .unwrap_or_default()
}

/// Whether an annotation is present.
pub fn has_annotation(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    key: &str,
) -> bool {
    meta.annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(key))
}

/// The claim a pod volume uses and whether it is a generic ephemeral volume's (`<pod>-<volume>`).
pub fn volume_claim_name(pod: &Pod, volume: &Volume) -> Option<(String, bool)> {
    if let Some(claim) = &volume.persistent_volume_claim {
        return Some((claim.claim_name.clone(), false));
    }
    volume.ephemeral.as_ref().map(|_| {
        let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
        (format!("{pod_name}-{}", volume.name), true)
    })
}

/// Checks that an ephemeral volume's claim was created for (is controlled by) the pod.
pub fn volume_is_for_pod(pod: &Pod, claim: &PersistentVolumeClaim) -> Result<(), String> {
    let pod_namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let claim_namespace = claim.metadata.namespace.as_deref().unwrap_or_default();
    let pod_uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let controlled = claim
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.controller == Some(true) && r.uid == pod_uid);
    if claim_namespace != pod_namespace || !controlled {
        return Err(format!(
            "PVC {claim_namespace}/{} was not created for pod {pod_namespace}/{} (pod is not owner)",
            claim.metadata.name.as_deref().unwrap_or_default(),
            pod.metadata.name.as_deref().unwrap_or_default()
        ));
    }
    Ok(())
}

/// Whether the claim's class delays binding until a pod uses it (WaitForFirstConsumer); a missing class
/// means immediate binding.
pub fn is_delay_binding_mode(
    claim: &PersistentVolumeClaim,
    listers: &dyn Listers,
) -> Result<bool, String> {
    let class_name = claim_class(claim);
    if class_name.is_empty() {
        return Ok(false);
    }
    let Some(class) = listers.storage_class(class_name) else {
        return Ok(false);
    };
    match class.volume_binding_mode.as_deref() {
        None => Err(format!(
            "VolumeBindingMode not set for StorageClass {class_name:?}"
        )),
        Some(mode) => Ok(mode == "WaitForFirstConsumer"),
    }
}

/// A claim's storage request in milli-units (0 when it asks for none).
pub fn requested_storage(claim: &PersistentVolumeClaim) -> i64 {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .and_then(|q| parse_milli(&q.0))
        .unwrap_or(0)
}

/// A volume's storage capacity in milli-units (0 when it declares none).
pub fn volume_capacity(volume: &PersistentVolume) -> i64 {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .and_then(|q| parse_milli(&q.0))
        .unwrap_or(0)
}

fn term_matches_labels(term: &NodeSelectorTerm, labels: &BTreeMap<String, String>) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    // Upstream evaluates PV affinity against a node made of labels only, so fields see an empty name.
    let no_name = || BTreeMap::from([("metadata.name".to_string(), String::new())]);
    expressions.iter().all(|r| requirement_matches(r, labels))
        && (fields.is_empty()
            || fields
                .iter()
                .all(|r| r.key == "metadata.name" && requirement_matches(r, &no_name())))
}

/// Whether the volume's required node affinity admits a node with `labels` (upstream `CheckNodeAffinity`).
pub fn check_node_affinity(volume: &PersistentVolume, labels: &BTreeMap<String, String>) -> bool {
    let Some(required) = volume
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
    else {
        return true;
    };
    required
        .node_selector_terms
        .iter()
        .any(|term| term_matches_labels(term, labels))
}

/// Whether a StorageClass's allowedTopologies admit a node with `labels`: no terms admit every node, an
/// empty term none.
pub fn match_topology_selector_terms(
    terms: &[TopologySelectorTerm],
    labels: &BTreeMap<String, String>,
) -> bool {
    if terms.is_empty() {
        return true;
    }
    terms.iter().any(|term| {
        let expressions = term.match_label_expressions.as_deref().unwrap_or_default();
        !expressions.is_empty()
            && expressions.iter().all(|e| {
                labels
                    .get(&e.key)
                    .is_some_and(|value| e.values.contains(value))
            })
    })
}

/// Whether the volume is pre-bound or bound to this claim (namespace and name, and UID when set).
pub fn is_volume_bound_to_claim(volume: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let Some(claim_ref) = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return false;
    };
    if claim_ref.name.as_deref() != claim.metadata.name.as_deref()
        || claim_ref.namespace.as_deref() != claim.metadata.namespace.as_deref()
    {
        return false;
    }
    let ref_uid = claim_ref.uid.as_deref().unwrap_or_default();
    ref_uid.is_empty() || Some(ref_uid) == claim.metadata.uid.as_deref()
}

fn volume_mode_mismatch(claim: &PersistentVolumeClaim, volume: &PersistentVolume) -> bool {
    let wanted = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_mode.as_deref())
        .unwrap_or("Filesystem");
    let offered = volume
        .spec
        .as_ref()
        .and_then(|s| s.volume_mode.as_deref())
        .unwrap_or("Filesystem");
    wanted != offered
}

fn access_modes_satisfied(claim: &PersistentVolumeClaim, volume: &PersistentVolume) -> bool {
    let offered = volume
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.as_deref())
        .unwrap_or_default();
    claim
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.as_deref())
        .unwrap_or_default()
        .iter()
        .all(|mode| offered.contains(mode))
}

/// The volume to bind an unbound claim to on a node with `node_labels`: one pre-bound to the claim, else
/// the smallest Available one that fits (upstream `FindMatchingVolume`, scheduler path). `excluded` holds
/// volumes already chosen for the pod's other claims.
pub fn find_matching_volume(
    claim: &PersistentVolumeClaim,
    volumes: &[Arc<PersistentVolume>],
    node_labels: &BTreeMap<String, String>,
    excluded: &HashSet<String>,
) -> Result<Option<Arc<PersistentVolume>>, String> {
    let requested = requested_storage(claim);
    let requested_class = claim_class(claim);
    let selector = match claim.spec.as_ref().and_then(|s| s.selector.as_ref()) {
        Some(selector) => Some(Selector::try_from(selector.clone()).map_err(|e| {
            format!(
                "error creating internal label selector for claim: {}/{}: {e}",
                claim.metadata.namespace.as_deref().unwrap_or_default(),
                claim.metadata.name.as_deref().unwrap_or_default()
            )
        })?),
        None => None,
    };
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    let mut smallest: Option<(&Arc<PersistentVolume>, i64)> = None;
    for volume in volumes {
        let name = volume.metadata.name.as_deref().unwrap_or_default();
        if excluded.contains(name) {
            continue;
        }
        let has_claim_ref = volume.spec.as_ref().is_some_and(|s| s.claim_ref.is_some());
        let bound_to_claim = is_volume_bound_to_claim(volume, claim);
        if has_claim_ref && !bound_to_claim {
            continue;
        }
        let capacity = volume_capacity(volume);
        if capacity < requested
            || volume_mode_mismatch(claim, volume)
            || volume.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        let affinity_ok = check_node_affinity(volume, node_labels);
        if bound_to_claim {
            // A pre-bound volume decides the claim: on this node it either fits or nothing does.
            return Ok(affinity_ok.then(|| volume.clone()));
        }
        let available =
            volume.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Available");
        let labels = volume.metadata.labels.as_ref().unwrap_or(&EMPTY);
        if !available
            || selector.as_ref().is_some_and(|s| !s.matches(labels))
            || volume_class(volume) != requested_class
            || !affinity_ok
            || !access_modes_satisfied(claim, volume)
        {
            continue;
        }
        if smallest.is_none_or(|(_, size)| size > capacity) {
            smallest = Some((volume, capacity));
        }
    }
    Ok(smallest.map(|(volume, _)| volume.clone()))
}
