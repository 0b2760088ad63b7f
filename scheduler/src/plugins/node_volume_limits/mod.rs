//! NodeVolumeLimits: a node takes no more CSI volumes per driver than its CSINode says the driver can
//! attach (upstream `plugins/nodevolumelimits/csi.go`).
//!
//! Not covered: in-tree volumes migrated to CSI (counted by upstream through csi-translation-lib) and
//! VolumeAttachment objects (no lister for them yet).

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};

use crate::framework::{
    ActionType, ClusterEvent, CycleState, EventResource, FilterPlugin, Handle, Listers, NodeInfo,
    Plugin, PodInfo, PreFilterPlugin, PreFilterResult, Snapshot, Status,
};
use crate::plugins::volume_binding::pv_helpers::{
    claim_class, claim_volume_name, not_found, volume_claim_name, volume_is_for_pod,
};

/// The plugin's upstream name.
pub const NAME: &str = "NodeVolumeLimits";
/// The CycleState key of the new pod's CSI volumes.
pub const PRE_FILTER_STATE_KEY: &str = "PreFilterNodeVolumeLimits";
/// Filter's reason when a driver's attach limit would be exceeded.
pub const ERR_REASON_MAX_VOLUME_COUNT_EXCEEDED: &str = "node(s) exceed max volume count";

/// In-tree provisioners upstream counts only once migrated to CSI, which is not modelled here.
const IN_TREE_PROVISIONERS: [&str; 7] = [
    "kubernetes.io/aws-ebs",
    "kubernetes.io/gce-pd",
    "kubernetes.io/azure-disk",
    "kubernetes.io/azure-file",
    "kubernetes.io/cinder",
    "kubernetes.io/vsphere-volume",
    "kubernetes.io/portworx-volume",
];

/// CSI volumes by unique name (`<driver>/<handle>`), with their driver.
type Volumes = HashMap<String, String>;

/// The new pod's CSI volumes, or the status every node gets because they could not be determined.
#[derive(Clone, Debug)]
struct PreFilterState(Result<Arc<Volumes>, Status>);

/// The NodeVolumeLimits (CSILimits) plugin.
pub struct NodeVolumeLimits {
    listers: Arc<dyn Listers>,
    /// Prefix of made-up handles for unbound claims, so they never collide with real volume handles.
    random_volume_id_prefix: String,
}

fn random_prefix() -> String {
    let part = || RandomState::new().build_hasher().finish();
    format!("{:016x}{:016x}", part(), part())
}

impl NodeVolumeLimits {
    /// Creates the plugin.
    pub fn new(handle: &Handle) -> Result<Self, String> {
        Ok(Self {
            listers: handle.listers.clone(),
            random_volume_id_prefix: random_prefix(),
        })
    }

    /// Adds the pod's CSI volumes to `result` (upstream `filterAttachableVolumes`). For the pod being
    /// scheduled a missing claim is an error; other pods' missing claims are not counted.
    fn attachable_volumes(
        &self,
        pod: &Pod,
        new_pod: bool,
        result: &mut Volumes,
    ) -> Result<(), Status> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            let Some((claim_name, ephemeral)) = volume_claim_name(pod, volume) else {
                continue;
            };
            if claim_name.is_empty() {
                return Err(Status::error("PersistentVolumeClaim had no name"));
            }
            let Some(claim) = self.listers.persistent_volume_claim(namespace, &claim_name) else {
                if new_pod {
                    return Err(Status::unresolvable(format!(
                        "looking up PVC {namespace}/{claim_name}: {}",
                        not_found("persistentvolumeclaim", &claim_name)
                    )));
                }
                continue;
            };
            if ephemeral {
                volume_is_for_pod(pod, &claim).map_err(Status::error)?;
            }
            if let Some((driver, handle)) = self.csi_driver_info(&claim) {
                result.insert(format!("{driver}/{handle}"), driver);
            }
        }
        Ok(())
    }

    /// The claim's CSI driver and volume handle, from its PV or, while unbound, its StorageClass.
    fn csi_driver_info(&self, claim: &PersistentVolumeClaim) -> Option<(String, String)> {
        let pv_name = claim_volume_name(claim);
        if pv_name.is_empty() {
            return self.csi_driver_info_from_class(claim);
        }
        let Some(pv) = self.listers.persistent_volume(pv_name) else {
            // A deleted PV or a claim pre-bound to a PV not created yet: count by class.
            return self.csi_driver_info_from_class(claim);
        };
        let csi = pv.spec.as_ref()?.csi.as_ref()?;
        Some((csi.driver.clone(), csi.volume_handle.clone()))
    }

    fn csi_driver_info_from_class(
        &self,
        claim: &PersistentVolumeClaim,
    ) -> Option<(String, String)> {
        let class_name = claim_class(claim);
        // Without a class the claim binds immediately, so it is bound before scheduling: nothing to count.
        if class_name.is_empty() {
            return None;
        }
        let class = self.listers.storage_class(class_name)?;
        if class.provisioner.is_empty()
            || IN_TREE_PROVISIONERS.contains(&class.provisioner.as_str())
        {
            return None;
        }
        let handle = format!(
            "{}-{}/{}",
            self.random_volume_id_prefix,
            claim.metadata.namespace.as_deref().unwrap_or_default(),
            claim.metadata.name.as_deref().unwrap_or_default()
        );
        Some((class.provisioner.clone(), handle))
    }

    /// Each driver's attach limit on the node, from its CSINode.
    fn volume_limits(&self, node: &str) -> HashMap<String, i64> {
        let Some(csi_node) = self.listers.csi_node(node) else {
            return HashMap::new();
        };
        csi_node
            .spec
            .drivers
            .iter()
            .filter_map(|d| {
                let count = d.allocatable.as_ref()?.count?;
                Some((d.name.clone(), i64::from(count)))
            })
            .collect()
    }
}

impl Plugin for NodeVolumeLimits {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEvent> {
        vec![
            ClusterEvent::new(EventResource::CsiNode, ActionType::ADD),
            ClusterEvent::new(EventResource::AssignedPod, ActionType::DELETE),
            ClusterEvent::new(EventResource::PersistentVolumeClaim, ActionType::ADD),
        ]
    }

    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for NodeVolumeLimits {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _snapshot: &Snapshot,
    ) -> (Option<PreFilterResult>, Status) {
        let uses_claims = pod
            .pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .any(|v| v.persistent_volume_claim.is_some() || v.ephemeral.is_some());
        if !uses_claims {
            return (None, Status::skip());
        }
        // The pod's own volumes do not depend on the node, so they are resolved once here; a failure is
        // reported by Filter on every node, as upstream does.
        let mut volumes = Volumes::new();
        let result = self
            .attachable_volumes(&pod.pod, true, &mut volumes)
            .map(|()| Arc::new(volumes));
        state.write(PRE_FILTER_STATE_KEY, PreFilterState(result));
        (None, Status::success())
    }
}

impl FilterPlugin for NodeVolumeLimits {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let computed;
        let new_volumes = match state.read::<PreFilterState>(PRE_FILTER_STATE_KEY) {
            Some(PreFilterState(Ok(volumes))) => volumes.as_ref(),
            Some(PreFilterState(Err(status))) => return status.clone(),
            None => {
                let mut volumes = Volumes::new();
                if let Err(status) = self.attachable_volumes(&pod.pod, true, &mut volumes) {
                    return status;
                }
                computed = volumes;
                &computed
            }
        };
        if new_volumes.is_empty() {
            return Status::success();
        }
        let limits = self.volume_limits(node.name());
        if limits.is_empty() {
            return Status::success();
        }
        let mut attached = Volumes::new();
        for existing in &node.pods {
            if let Err(status) = self.attachable_volumes(&existing.pod, false, &mut attached) {
                return Status::error(status.message());
            }
        }
        let mut attached_count: HashMap<&str, i64> = HashMap::new();
        for driver in attached.values() {
            *attached_count.entry(driver).or_default() += 1;
        }
        let mut new_count: HashMap<&str, i64> = HashMap::new();
        // A volume already attached for another pod takes no new slot.
        for (unique, driver) in new_volumes {
            if !attached.contains_key(unique) {
                *new_count.entry(driver).or_default() += 1;
            }
        }
        for (driver, count) in new_count {
            if let Some(limit) = limits.get(driver)
                && attached_count.get(driver).copied().unwrap_or(0) + count > *limit
            {
                return Status::unschedulable(ERR_REASON_MAX_VOLUME_COUNT_EXCEEDED);
            }
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests;
