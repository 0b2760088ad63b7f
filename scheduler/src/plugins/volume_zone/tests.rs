//! Table tests mirroring upstream's unit tests.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, Volume,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;
use crate::framework::StaticListers;
use crate::testing::{make_node, make_pod};

/// Name, claim, node labels, verdict.
type ZoneCase<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, Status);

fn pv(name: &str, labels: &[(&str, &str)]) -> Arc<PersistentVolume> {
    Arc::new(PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        ..Default::default()
    })
}

fn pvc(name: &str, volume: &str, class: Option<&str>) -> Arc<PersistentVolumeClaim> {
    Arc::new(PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            volume_name: (!volume.is_empty()).then(|| volume.into()),
            storage_class_name: class.map(String::from),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn storage_class(name: &str, mode: Option<&str>) -> Arc<StorageClass> {
    Arc::new(StorageClass {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        volume_binding_mode: mode.map(String::from),
        ..Default::default()
    })
}

fn pod_with_claim(claim: &str) -> Arc<PodInfo> {
    make_pod("pod_1")
        .with_spec(|s| {
            s.volumes = Some(vec![Volume {
                name: "v".into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim.into(),
                    read_only: None,
                }),
                ..Default::default()
            }])
        })
        .info()
}

fn plugin() -> VolumeZone {
    let listers = StaticListers {
        volumes: vec![
            pv("Vol_1", &[(LABEL_FAILURE_DOMAIN_BETA_ZONE, "us-west1-a")]),
            pv(
                "Vol_2",
                &[
                    (LABEL_FAILURE_DOMAIN_BETA_REGION, "us-west1"),
                    ("uselessLabel", "none"),
                ],
            ),
            pv(
                "Vol_3",
                &[(LABEL_FAILURE_DOMAIN_BETA_ZONE, "us-west1-c__us-west1-a")],
            ),
            pv("Vol_Stable_1", &[(LABEL_TOPOLOGY_ZONE, "us-west1-a")]),
            pv(
                "Vol_Stable_2",
                &[
                    (LABEL_TOPOLOGY_REGION, "us-west1"),
                    ("uselessLabel", "none"),
                ],
            ),
            pv(
                "Vol_Stable_3",
                &[
                    (LABEL_TOPOLOGY_ZONE, "us-west1-a"),
                    (LABEL_TOPOLOGY_REGION, "us-west1-a"),
                ],
            ),
            pv(
                "Vol_Stable_4",
                &[(LABEL_TOPOLOGY_ZONE, "us-west1-c__us-west1-a")],
            ),
        ],
        claims: vec![
            pvc("PVC_1", "Vol_1", None),
            pvc("PVC_2", "Vol_2", None),
            pvc("PVC_3", "Vol_3", None),
            pvc("PVC_4", "Vol_not_exist", None),
            pvc("PVC_Stable_1", "Vol_Stable_1", None),
            pvc("PVC_Stable_2", "Vol_Stable_2", None),
            pvc("PVC_Stable_3", "Vol_Stable_3", None),
            pvc("PVC_Stable_4", "Vol_Stable_4", None),
            pvc("PVC_NoSC", "", Some("Class_0")),
            pvc("PVC_EmptySC", "", None),
            pvc("PVC_WaitSC", "", Some("Class_Wait")),
            pvc("PVC_ImmediateSC", "", Some("Class_Immediate")),
        ],
        storage_classes: vec![
            storage_class("Class_Immediate", Some("Immediate")),
            storage_class("Class_Wait", Some("WaitForFirstConsumer")),
            storage_class("Class_Unset", None),
        ],
        ..Default::default()
    };
    VolumeZone::new(&Handle::for_tests(listers)).expect("plugin")
}

#[test]
fn filter_matches_upstream_single_and_multi_zone_cases() {
    let conflict = Status::unresolvable(ERR_REASON_CONFLICT);
    let beta_zone = LABEL_FAILURE_DOMAIN_BETA_ZONE;
    let beta_region = LABEL_FAILURE_DOMAIN_BETA_REGION;
    let cases: Vec<ZoneCase> = vec![
        ("node without labels", "PVC_1", vec![], Status::success()),
        (
            "beta zone label matched",
            "PVC_1",
            vec![(beta_zone, "us-west1-a"), ("uselessLabel", "none")],
            Status::success(),
        ),
        (
            "beta region label matched",
            "PVC_2",
            vec![(beta_region, "us-west1")],
            Status::success(),
        ),
        (
            "beta region label doesn't match",
            "PVC_2",
            vec![(beta_region, "no_us-west1")],
            conflict.clone(),
        ),
        (
            "beta zone label doesn't match",
            "PVC_1",
            vec![(beta_zone, "no_us-west1-a")],
            conflict.clone(),
        ),
        (
            "zone label matched",
            "PVC_Stable_1",
            vec![(LABEL_TOPOLOGY_ZONE, "us-west1-a")],
            Status::success(),
        ),
        (
            "region label matched",
            "PVC_Stable_2",
            vec![(LABEL_TOPOLOGY_REGION, "us-west1")],
            Status::success(),
        ),
        (
            "region label doesn't match",
            "PVC_Stable_2",
            vec![(LABEL_TOPOLOGY_REGION, "no_us-west1")],
            conflict.clone(),
        ),
        (
            "zone label doesn't match",
            "PVC_Stable_1",
            vec![(LABEL_TOPOLOGY_ZONE, "no_us-west1-a")],
            conflict.clone(),
        ),
        (
            "pv with zone and region, node with only zone",
            "PVC_Stable_3",
            vec![(LABEL_TOPOLOGY_ZONE, "us-west1-a")],
            conflict.clone(),
        ),
        (
            "pv with zone, node with beta zone",
            "PVC_Stable_1",
            vec![(beta_zone, "us-west1-a")],
            conflict.clone(),
        ),
        (
            "pv with beta label, node with ga label, matched",
            "PVC_1",
            vec![(LABEL_TOPOLOGY_ZONE, "us-west1-a")],
            Status::success(),
        ),
        (
            "pv with beta label, node with ga label, don't match",
            "PVC_1",
            vec![(LABEL_TOPOLOGY_ZONE, "us-west1-b")],
            conflict.clone(),
        ),
        (
            "multi-zone beta label matched",
            "PVC_3",
            vec![(beta_zone, "us-west1-a")],
            Status::success(),
        ),
        (
            "multi-zone beta label doesn't match",
            "PVC_3",
            vec![(beta_zone, "us-west1-b")],
            conflict.clone(),
        ),
        (
            "multi-zone label matched",
            "PVC_Stable_4",
            vec![(LABEL_TOPOLOGY_ZONE, "us-west1-a")],
            Status::success(),
        ),
        (
            "label zone failure domain matched with a WFFC claim",
            "PVC_WaitSC",
            vec![(beta_zone, "us-west1-a")],
            Status::success(),
        ),
    ];
    let plugin = plugin();
    for (name, claim, labels, want) in cases {
        let pod = pod_with_claim(claim);
        let mut node = make_node("host1");
        node.0.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        );
        let node = node.info(vec![]);
        let mut state = CycleState::default();
        let (_, pre_filter) = plugin.pre_filter(&mut state, &pod, &Snapshot::default());
        if pre_filter.is_skip() {
            assert!(want.is_success(), "{name}: skipped but expected {want}");
            continue;
        }
        assert!(pre_filter.is_success(), "{name}: {pre_filter}");
        assert_eq!(plugin.filter(&state, &pod, &node), want, "{name}");
    }
}

#[test]
fn pre_filter_rejections_and_skips_match_upstream() {
    let plugin = plugin();
    let cases = [
        (
            "PVC_EmptySC",
            Status::unresolvable("PersistentVolumeClaim had no pv name and storageClass name"),
        ),
        (
            "PVC_NoSC",
            Status::unresolvable(r#"storageclass.storage.k8s.io "Class_0" not found"#),
        ),
        (
            "PVC_ImmediateSC",
            Status::unresolvable("PersistentVolume had no name"),
        ),
        (
            "PVC_4",
            Status::unresolvable(r#"persistentvolume "Vol_not_exist" not found"#),
        ),
        (
            "PVC_missing",
            Status::unresolvable(r#"persistentvolumeclaim "PVC_missing" not found"#),
        ),
        ("PVC_WaitSC", Status::skip()),
    ];
    for (claim, want) in cases {
        let (_, status) = plugin.pre_filter(
            &mut CycleState::default(),
            &pod_with_claim(claim),
            &Snapshot::default(),
        );
        assert_eq!(status, want, "{claim}");
    }
    let (_, status) = plugin.pre_filter(
        &mut CycleState::default(),
        &make_pod("no-volumes").info(),
        &Snapshot::default(),
    );
    assert!(status.is_skip());
}

#[test]
fn filter_without_pre_filter_state_computes_it() {
    let plugin = plugin();
    let node = make_node("host1")
        .label(LABEL_TOPOLOGY_ZONE, "us-west1-b")
        .info(vec![]);
    assert_eq!(
        plugin.filter(
            &CycleState::default(),
            &pod_with_claim("PVC_Stable_1"),
            &node
        ),
        Status::unresolvable(ERR_REASON_CONFLICT)
    );
}

#[test]
fn malformed_zone_lists_are_ignored() {
    let volume = pv(
        "bad",
        &[
            (LABEL_TOPOLOGY_ZONE, "a____b"),
            (LABEL_TOPOLOGY_REGION, "r"),
        ],
    );
    let topologies = pv_topologies(&volume);
    assert_eq!(topologies.len(), 1);
    assert_eq!(topologies[0].key, LABEL_TOPOLOGY_REGION);
}
