//! Table tests mirroring upstream's `volume_binding_test.go` and `binder_test.go` core cases; shared
//! fixtures here, PreFilter/Filter cases in `filter`, Reserve and PreBind cases in `binding`.

mod binding;
mod filter;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Volume;
use k8s_openapi::api::core::v1::{
    EphemeralVolumeSource, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimStatus, PersistentVolumeClaimVolumeSource, PersistentVolumeSpec,
    PersistentVolumeStatus, TopologySelectorLabelRequirement, TopologySelectorTerm,
    VolumeNodeAffinity, VolumeResourceRequirements,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};

use super::binder::{ERR_REASON_BIND_CONFLICT, ERR_REASON_NODE_CONFLICT, ERR_REASON_PV_NOT_EXIST};
use super::pv_helpers::{ANN_BIND_COMPLETED, ANN_SELECTED_NODE, find_matching_volume};
use super::*;
use crate::framework::StaticListers;
use crate::testing::{make_node, make_pod};

const WAIT: &str = "wait-sc";
const IMMEDIATE: &str = "immediate-sc";
const PROVISIONED: &str = "provisioned-sc";

fn class(name: &str, mode: Option<&str>, provisioner: &str) -> Arc<StorageClass> {
    Arc::new(StorageClass {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        provisioner: provisioner.into(),
        volume_binding_mode: mode.map(String::from),
        ..Default::default()
    })
}

fn classes() -> Vec<Arc<StorageClass>> {
    vec![
        class(
            WAIT,
            Some("WaitForFirstConsumer"),
            "kubernetes.io/no-provisioner",
        ),
        class(IMMEDIATE, Some("Immediate"), "kubernetes.io/no-provisioner"),
        class(PROVISIONED, Some("WaitForFirstConsumer"), "csi.example.com"),
    ]
}

/// A claim; `volume` non-empty with `bound` gives a fully bound claim.
fn claim(name: &str, class: &str, volume: &str, bound: bool, size: &str) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            resource_version: Some("1".into()),
            annotations: bound.then(|| BTreeMap::from([(ANN_BIND_COMPLETED.into(), "yes".into())])),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            storage_class_name: (!class.is_empty()).then(|| class.into()),
            volume_name: (!volume.is_empty()).then(|| volume.into()),
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".into(), Quantity(size.into()))])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: Some(PersistentVolumeClaimStatus {
            phase: Some(if bound { "Bound" } else { "Pending" }.into()),
            ..Default::default()
        }),
    }
}

fn hostname_affinity(host: &str) -> VolumeNodeAffinity {
    VolumeNodeAffinity {
        required: Some(NodeSelector {
            node_selector_terms: vec![NodeSelectorTerm {
                match_expressions: Some(vec![NodeSelectorRequirement {
                    key: "kubernetes.io/hostname".into(),
                    operator: "In".into(),
                    values: Some(vec![host.into()]),
                }]),
                ..Default::default()
            }],
        }),
    }
}

/// An Available PV of `class` on `host` (any host when empty).
fn pv(name: &str, class: &str, size: &str, host: &str) -> PersistentVolume {
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name.into()),
            resource_version: Some("1".into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            storage_class_name: Some(class.into()),
            capacity: Some(BTreeMap::from([("storage".into(), Quantity(size.into()))])),
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            node_affinity: (!host.is_empty()).then(|| hostname_affinity(host)),
            ..Default::default()
        }),
        status: Some(PersistentVolumeStatus {
            phase: Some("Available".into()),
            ..Default::default()
        }),
    }
}

fn pvc_volume(claim: &str) -> Volume {
    Volume {
        name: format!("vol-{claim}"),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim.into(),
            read_only: None,
        }),
        ..Default::default()
    }
}

fn pod_with(volumes: Vec<Volume>) -> Arc<PodInfo> {
    make_pod("pod-a")
        .with_spec(|s| s.volumes = Some(volumes))
        .info()
}

fn pod_with_claims(claims: &[&str]) -> Arc<PodInfo> {
    pod_with(claims.iter().map(|c| pvc_volume(c)).collect())
}

fn plugin(claims: Vec<PersistentVolumeClaim>, volumes: Vec<PersistentVolume>) -> VolumeBinding {
    let listers = StaticListers {
        claims: claims.into_iter().map(Arc::new).collect(),
        volumes: volumes.into_iter().map(Arc::new).collect(),
        storage_classes: classes(),
        ..Default::default()
    };
    VolumeBinding::new(&VolumeBindingArgs::default(), &Handle::for_tests(listers)).expect("plugin")
}

struct Case {
    name: &'static str,
    pod: Arc<PodInfo>,
    claims: Vec<PersistentVolumeClaim>,
    volumes: Vec<PersistentVolume>,
    pre_filter: Status,
    filter: Status,
}

fn unresolvable(reasons: &[&str]) -> Status {
    Status::new(
        Code::UnschedulableAndUnresolvable,
        reasons.iter().map(|r| r.to_string()).collect(),
    )
}
