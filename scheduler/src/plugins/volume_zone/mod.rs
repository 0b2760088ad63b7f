//! VolumeZone: a pod's bound PersistentVolumes labelled with a zone or region only fit nodes in that zone
//! or region (upstream `plugins/volumezone`).

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, Pod};

use crate::framework::{
    ActionType, ClusterEvent, CycleState, EventResource, FilterPlugin, Handle, Listers, NodeInfo,
    Plugin, PodInfo, PreFilterPlugin, PreFilterResult, Snapshot, Status,
};
use crate::plugins::volume_binding::pv_helpers::{claim_class, claim_volume_name, not_found};

/// The plugin's upstream name.
pub const NAME: &str = "VolumeZone";
/// The CycleState key of the PVs' topologies.
pub const PRE_FILTER_STATE_KEY: &str = "PreFilterVolumeZone";
/// Filter's reason when a PV's zone or region is not the node's.
pub const ERR_REASON_CONFLICT: &str = "node(s) had no available volume zone";

const LABEL_FAILURE_DOMAIN_BETA_ZONE: &str = "failure-domain.beta.kubernetes.io/zone";
const LABEL_FAILURE_DOMAIN_BETA_REGION: &str = "failure-domain.beta.kubernetes.io/region";
const LABEL_TOPOLOGY_ZONE: &str = "topology.kubernetes.io/zone";
const LABEL_TOPOLOGY_REGION: &str = "topology.kubernetes.io/region";

/// The labels compared, in upstream's order.
const TOPOLOGY_LABELS: [&str; 4] = [
    LABEL_FAILURE_DOMAIN_BETA_ZONE,
    LABEL_FAILURE_DOMAIN_BETA_REGION,
    LABEL_TOPOLOGY_ZONE,
    LABEL_TOPOLOGY_REGION,
];

/// One topology label of a PV: its key and the zones (or regions) it allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PvTopology {
    /// The label key.
    pub key: &'static str,
    /// The allowed values (a multi-zone label lists several, separated by `__`).
    pub values: BTreeSet<String>,
}

/// The GA label a beta one was replaced by, so beta-labelled PVs match GA-labelled nodes.
fn translate_to_ga_label(label: &str) -> &str {
    match label {
        LABEL_FAILURE_DOMAIN_BETA_REGION => LABEL_TOPOLOGY_REGION,
        LABEL_FAILURE_DOMAIN_BETA_ZONE => LABEL_TOPOLOGY_ZONE,
        other => other,
    }
}

/// A `__`-separated zone list as a set; any empty entry makes the label unusable.
fn label_zones_to_set(value: &str) -> Option<BTreeSet<String>> {
    value
        .split("__")
        .map(|zone| {
            let zone = zone.trim();
            (!zone.is_empty()).then(|| zone.to_string())
        })
        .collect()
}

/// The PV's topology labels (upstream `getPVTopologies`); unparsable ones are ignored.
pub fn pv_topologies(volume: &PersistentVolume) -> Vec<PvTopology> {
    let Some(labels) = volume.metadata.labels.as_ref() else {
        return Vec::new();
    };
    TOPOLOGY_LABELS
        .iter()
        .filter_map(|key| {
            let values = label_zones_to_set(labels.get(*key)?)?;
            Some(PvTopology { key, values })
        })
        .collect()
}

/// The VolumeZone plugin.
pub struct VolumeZone {
    listers: Arc<dyn Listers>,
}

impl VolumeZone {
    /// Creates the plugin.
    pub fn new(handle: &Handle) -> Result<Self, String> {
        Ok(Self {
            listers: handle.listers.clone(),
        })
    }

    /// The topologies of the PVs the pod's claims are bound to; WaitForFirstConsumer claims that are not
    /// bound yet are left to VolumeBinding (upstream `getPVbyPod`).
    fn pod_pv_topologies(&self, pod: &Pod) -> Result<Vec<PvTopology>, Status> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let mut topologies = Vec::new();
        for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            let Some(source) = &volume.persistent_volume_claim else {
                continue;
            };
            let claim_name = source.claim_name.as_str();
            if claim_name.is_empty() {
                return Err(Status::unresolvable("PersistentVolumeClaim had no name"));
            }
            let Some(claim) = self.listers.persistent_volume_claim(namespace, claim_name) else {
                return Err(Status::unresolvable(not_found(
                    "persistentvolumeclaim",
                    claim_name,
                )));
            };
            let pv_name = claim_volume_name(&claim);
            if pv_name.is_empty() {
                let class_name = claim_class(&claim);
                if class_name.is_empty() {
                    return Err(Status::unresolvable(
                        "PersistentVolumeClaim had no pv name and storageClass name",
                    ));
                }
                let Some(class) = self.listers.storage_class(class_name) else {
                    return Err(Status::unresolvable(not_found(
                        "storageclass.storage.k8s.io",
                        class_name,
                    )));
                };
                match class.volume_binding_mode.as_deref() {
                    None => {
                        return Err(Status::unresolvable(format!(
                            "VolumeBindingMode not set for StorageClass {class_name:?}"
                        )));
                    }
                    Some("WaitForFirstConsumer") => continue,
                    Some(_) => return Err(Status::unresolvable("PersistentVolume had no name")),
                }
            }
            let Some(pv) = self.listers.persistent_volume(pv_name) else {
                return Err(Status::unresolvable(not_found("persistentvolume", pv_name)));
            };
            topologies.extend(pv_topologies(&pv));
        }
        Ok(topologies)
    }
}

impl Plugin for VolumeZone {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEvent> {
        let add_update = ActionType::ADD.or(ActionType::UPDATE);
        vec![
            ClusterEvent::new(EventResource::StorageClass, ActionType::ADD),
            ClusterEvent::new(
                EventResource::Node,
                ActionType::ADD.or(ActionType::UPDATE_NODE_LABEL),
            ),
            ClusterEvent::new(EventResource::PersistentVolumeClaim, add_update),
            ClusterEvent::new(EventResource::PersistentVolume, add_update),
        ]
    }

    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for VolumeZone {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _snapshot: &Snapshot,
    ) -> (Option<PreFilterResult>, Status) {
        match self.pod_pv_topologies(&pod.pod) {
            Err(status) => (None, status),
            Ok(topologies) if topologies.is_empty() => (None, Status::skip()),
            Ok(topologies) => {
                state.write(PRE_FILTER_STATE_KEY, Arc::new(topologies));
                (None, Status::success())
            }
        }
    }
}

impl FilterPlugin for VolumeZone {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if pod
            .pod
            .spec
            .as_ref()
            .is_none_or(|s| s.volumes.as_ref().is_none_or(Vec::is_empty))
        {
            return Status::success();
        }
        let computed;
        let topologies = match state.read::<Arc<Vec<PvTopology>>>(PRE_FILTER_STATE_KEY) {
            Some(topologies) => topologies.as_slice(),
            None => match self.pod_pv_topologies(&pod.pod) {
                Ok(topologies) => {
                    computed = topologies;
                    computed.as_slice()
                }
                Err(status) => return status,
            },
        };
        let labels = node.labels();
        // Nodes without topology labels (single-zone clusters) host any volume.
        if !TOPOLOGY_LABELS.iter().any(|key| labels.contains_key(*key)) {
            return Status::success();
        }
        for topology in topologies {
            let value = labels
                .get(topology.key)
                .or_else(|| labels.get(translate_to_ga_label(topology.key)));
            if value.is_none_or(|v| !topology.values.contains(v)) {
                return Status::unresolvable(ERR_REASON_CONFLICT);
            }
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests;
