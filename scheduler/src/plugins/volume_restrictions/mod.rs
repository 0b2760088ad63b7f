//! VolumeRestrictions: in-tree disks that cannot be shared between pods on a node, and the
//! ReadWriteOncePod access mode, which allows one pod in the whole cluster (upstream
//! `plugins/volumerestrictions`).

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Volume};

use crate::framework::{
    ActionType, ClusterEvent, CycleState, EventResource, FilterPlugin, Handle, Listers, NodeInfo,
    Plugin, PodInfo, PreFilterExtensions, PreFilterPlugin, PreFilterResult, Snapshot, Status,
};
use crate::plugins::volume_binding::pv_helpers::{READ_WRITE_ONCE_POD, not_found};

/// The plugin's upstream name.
pub const NAME: &str = "VolumeRestrictions";
/// The CycleState key of [`PreFilterState`].
pub const PRE_FILTER_STATE_KEY: &str = "PreFilterVolumeRestrictions";
/// Filter's reason when a disk the pod mounts is already mounted read-write on the node.
pub const ERR_REASON_DISK_CONFLICT: &str = "node(s) had no available disk";
/// Filter's reason when a ReadWriteOncePod claim of the pod is in use.
pub const ERR_REASON_READ_WRITE_ONCE_POD_CONFLICT: &str =
    "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode";

/// What PreFilter found: the pod's ReadWriteOncePod claims and how many scheduled pods use them.
#[derive(Clone, Debug, Default)]
pub struct PreFilterState {
    /// Names of the pod's claims with the ReadWriteOncePod access mode.
    pub read_write_once_pod_pvcs: Arc<HashSet<String>>,
    /// References to those claims by scheduled pods; preemption's what-if changes it.
    pub conflicting_pvc_ref_count: i64,
}

impl PreFilterState {
    /// How many of `pod`'s volumes use one of the claims (upstream matches by claim name only).
    fn conflicting_refs(&self, pod: &Pod) -> i64 {
        let refs = pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .filter_map(|v| v.persistent_volume_claim.as_ref())
            .filter(|c| self.read_write_once_pod_pvcs.contains(&c.claim_name))
            .count();
        i64::try_from(refs).unwrap_or(i64::MAX)
    }
}

/// Whether any volume has a conflict-checked in-tree source.
fn needs_restrictions_check(volume: &Volume) -> bool {
    volume.gce_persistent_disk.is_some()
        || volume.aws_elastic_block_store.is_some()
        || volume.rbd.is_some()
        || volume.iscsi.is_some()
}

fn have_overlap(a: &[String], b: &[String]) -> bool {
    a.iter().any(|x| b.contains(x))
}

/// Whether `volume` conflicts with one of `pod`'s volumes (upstream `isVolumeConflict`).
fn is_volume_conflict(volume: &Volume, pod: &Pod) -> bool {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .any(|existing| {
            // GCE PDs may be shared only when every mount is read-only.
            if let (Some(disk), Some(other)) =
                (&volume.gce_persistent_disk, &existing.gce_persistent_disk)
                && disk.pd_name == other.pd_name
                && !(disk.read_only == Some(true) && other.read_only == Some(true))
            {
                return true;
            }
            // EBS volumes may never be shared.
            if let (Some(disk), Some(other)) = (
                &volume.aws_elastic_block_store,
                &existing.aws_elastic_block_store,
            ) && disk.volume_id == other.volume_id
            {
                return true;
            }
            if let (Some(disk), Some(other)) = (&volume.iscsi, &existing.iscsi)
                && disk.iqn == other.iqn
                && !(disk.read_only == Some(true) && other.read_only == Some(true))
            {
                return true;
            }
            if let (Some(disk), Some(other)) = (&volume.rbd, &existing.rbd)
                && have_overlap(&disk.monitors, &other.monitors)
                && disk.pool == other.pool
                && disk.image == other.image
                && !(disk.read_only == Some(true) && other.read_only == Some(true))
            {
                return true;
            }
            false
        })
}

/// Whether the pod's in-tree disks are free on the node (upstream `satisfyVolumeConflicts`).
fn satisfy_volume_conflicts(pod: &Pod, node: &NodeInfo) -> bool {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter(|v| needs_restrictions_check(v))
        .all(|v| {
            !node
                .pods
                .iter()
                .any(|existing| is_volume_conflict(v, &existing.pod))
        })
}

/// The VolumeRestrictions plugin.
pub struct VolumeRestrictions {
    listers: Arc<dyn Listers>,
}

impl VolumeRestrictions {
    /// Creates the plugin.
    pub fn new(handle: &Handle) -> Result<Self, String> {
        Ok(Self {
            listers: handle.listers.clone(),
        })
    }

    fn read_write_once_pod_pvcs(&self, pod: &Pod) -> Result<HashSet<String>, String> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let mut names = HashSet::new();
        for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            let Some(source) = &volume.persistent_volume_claim else {
                continue;
            };
            let Some(claim) = self
                .listers
                .persistent_volume_claim(namespace, &source.claim_name)
            else {
                return Err(not_found("persistentvolumeclaim", &source.claim_name));
            };
            let modes = claim.spec.as_ref().and_then(|s| s.access_modes.as_deref());
            if modes
                .unwrap_or_default()
                .iter()
                .any(|m| m == READ_WRITE_ONCE_POD)
            {
                names.insert(source.claim_name.clone());
            }
        }
        Ok(names)
    }
}

impl Plugin for VolumeRestrictions {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEvent> {
        vec![
            ClusterEvent::new(EventResource::AssignedPod, ActionType::DELETE),
            ClusterEvent::new(EventResource::Node, ActionType::ADD),
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

impl PreFilterPlugin for VolumeRestrictions {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> (Option<PreFilterResult>, Status) {
        let needs_check = pod
            .pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .any(needs_restrictions_check);
        let pvcs = match self.read_write_once_pod_pvcs(&pod.pod) {
            Ok(pvcs) => pvcs,
            Err(message) => return (None, Status::unresolvable(message)),
        };
        let namespace = pod.namespace();
        let conflicting = pvcs
            .iter()
            .filter(|name| {
                let key = format!("{namespace}/{name}");
                snapshot
                    .nodes()
                    .iter()
                    .any(|n| n.pvc_ref_counts.get(&key).is_some_and(|c| *c > 0))
            })
            .count();
        let conflicting = i64::try_from(conflicting).unwrap_or(i64::MAX);
        if !needs_check && conflicting == 0 {
            return (None, Status::skip());
        }
        state.write(
            PRE_FILTER_STATE_KEY,
            PreFilterState {
                read_write_once_pod_pvcs: Arc::new(pvcs),
                conflicting_pvc_ref_count: conflicting,
            },
        );
        (None, Status::success())
    }

    fn pre_filter_extensions(&self) -> Option<&dyn PreFilterExtensions> {
        Some(self)
    }
}

impl PreFilterExtensions for VolumeRestrictions {
    fn add_pod(
        &self,
        state: &mut CycleState,
        _pod: &PodInfo,
        added: &PodInfo,
        _node: &NodeInfo,
    ) -> Status {
        let Some(s) = state.read_mut::<PreFilterState>(PRE_FILTER_STATE_KEY) else {
            return Status::error(format!(
                "cannot read {PRE_FILTER_STATE_KEY:?} from cycleState"
            ));
        };
        s.conflicting_pvc_ref_count += s.conflicting_refs(&added.pod);
        Status::success()
    }

    fn remove_pod(
        &self,
        state: &mut CycleState,
        _pod: &PodInfo,
        removed: &PodInfo,
        _node: &NodeInfo,
    ) -> Status {
        let Some(s) = state.read_mut::<PreFilterState>(PRE_FILTER_STATE_KEY) else {
            return Status::error(format!(
                "cannot read {PRE_FILTER_STATE_KEY:?} from cycleState"
            ));
        };
        s.conflicting_pvc_ref_count -= s.conflicting_refs(&removed.pod);
        Status::success()
    }
}

impl FilterPlugin for VolumeRestrictions {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if !satisfy_volume_conflicts(&pod.pod, node) {
            return Status::unschedulable(ERR_REASON_DISK_CONFLICT);
        }
        let Some(s) = state.read::<PreFilterState>(PRE_FILTER_STATE_KEY) else {
            return Status::error(format!(
                "cannot read {PRE_FILTER_STATE_KEY:?} from cycleState"
            ));
        };
        if s.conflicting_pvc_ref_count > 0 {
            return Status::unschedulable(ERR_REASON_READ_WRITE_ONCE_POD_CONFLICT);
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests;
