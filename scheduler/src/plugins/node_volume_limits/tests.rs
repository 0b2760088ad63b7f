//! Table tests mirroring upstream's unit tests.

use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, EphemeralVolumeSource, PersistentVolume, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, PersistentVolumeSpec, Volume,
};
use k8s_openapi::api::storage::v1::{
    CSINode, CSINodeDriver, CSINodeSpec, StorageClass, VolumeNodeResources,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::*;
use crate::framework::StaticListers;
use crate::testing::{make_node, make_pod};

/// Name, new pod, pods on the node, CSINode limits, verdict.
type LimitCase<'a> = (&'a str, Pod, Vec<Pod>, &'a [(&'a str, Option<i32>)], Status);

const EBS: &str = "ebs.csi.aws.com";
const GCE: &str = "pd.csi.storage.gke.io";

fn claim(name: &str, volume: &str, class: Option<&str>) -> Arc<PersistentVolumeClaim> {
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

fn csi_pv(name: &str, driver: &str) -> Arc<PersistentVolume> {
    Arc::new(PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            csi: Some(CSIPersistentVolumeSource {
                driver: driver.into(),
                volume_handle: format!("handle-{name}"),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn class(name: &str, provisioner: &str) -> Arc<StorageClass> {
    Arc::new(StorageClass {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        provisioner: provisioner.into(),
        ..Default::default()
    })
}

fn csi_node(limits: &[(&str, Option<i32>)]) -> Arc<CSINode> {
    Arc::new(CSINode {
        metadata: ObjectMeta {
            name: Some("node-1".into()),
            ..Default::default()
        },
        spec: CSINodeSpec {
            drivers: limits
                .iter()
                .map(|(driver, count)| CSINodeDriver {
                    name: driver.to_string(),
                    node_id: "node-1".into(),
                    allocatable: count.map(|c| VolumeNodeResources { count: Some(c) }),
                    ..Default::default()
                })
                .collect(),
        },
    })
}

fn claims_pod(name: &str, claims: &[&str]) -> Pod {
    make_pod(name)
        .with_spec(|s| {
            s.volumes = Some(
                claims
                    .iter()
                    .map(|c| Volume {
                        name: c.to_string(),
                        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                            claim_name: c.to_string(),
                            read_only: None,
                        }),
                        ..Default::default()
                    })
                    .collect(),
            )
        })
        .obj()
}

fn listers(limits: &[(&str, Option<i32>)]) -> StaticListers {
    let mut claims = Vec::new();
    let mut volumes = Vec::new();
    for i in 0..4 {
        claims.push(claim(&format!("csi-ebs-{i}"), &format!("pv-ebs-{i}"), None));
        volumes.push(csi_pv(&format!("pv-ebs-{i}"), EBS));
    }
    claims.push(claim("csi-gce-0", "pv-gce-0", None));
    volumes.push(csi_pv("pv-gce-0", GCE));
    claims.push(claim("unbound-ebs-0", "", Some("ebs-sc")));
    claims.push(claim("unbound-ebs-1", "", Some("ebs-sc")));
    claims.push(claim("missing-pv", "pv-gone", Some("ebs-sc")));
    claims.push(claim("no-class", "", None));
    claims.push(claim("in-tree", "", Some("in-tree-sc")));
    StaticListers {
        claims,
        volumes,
        storage_classes: vec![
            class("ebs-sc", EBS),
            class("in-tree-sc", "kubernetes.io/aws-ebs"),
        ],
        csi_nodes: if limits.is_empty() {
            vec![]
        } else {
            vec![csi_node(limits)]
        },
        ..Default::default()
    }
}

fn run(pod: Pod, existing: Vec<Pod>, limits: &[(&str, Option<i32>)]) -> Status {
    let plugin = NodeVolumeLimits::new(&Handle::for_tests(listers(limits))).expect("plugin");
    let node = make_node("node-1").info(existing);
    let pod = PodInfo::new(Arc::new(pod));
    let mut state = CycleState::default();
    let (_, pre_filter) = plugin.pre_filter(&mut state, &pod, &Snapshot::default());
    if !pre_filter.is_success() {
        return pre_filter;
    }
    plugin.filter(&state, &pod, &node)
}

#[test]
fn csi_limits_match_upstream() {
    let exceeded = Status::unschedulable(ERR_REASON_MAX_VOLUME_COUNT_EXCEEDED);
    let ebs_limit = [(EBS, Some(2))];
    let cases: Vec<LimitCase> = vec![
        (
            "fits when node volume limit >= new pods CSI volume",
            claims_pod("new", &["csi-ebs-0", "csi-ebs-1"]),
            vec![],
            &ebs_limit,
            Status::success(),
        ),
        (
            "doesn't when node volume limit <= pods CSI volume",
            claims_pod("new", &["csi-ebs-0"]),
            vec![claims_pod("e", &["csi-ebs-1", "csi-ebs-2"])],
            &ebs_limit,
            exceeded.clone(),
        ),
        (
            "should when driver does not support volume limits",
            claims_pod("new", &["csi-ebs-0"]),
            vec![claims_pod("e", &["csi-ebs-1", "csi-ebs-2"])],
            &[(EBS, None)],
            Status::success(),
        ),
        (
            "no CSINode means no limits",
            claims_pod("new", &["csi-ebs-0"]),
            vec![claims_pod("e", &["csi-ebs-1", "csi-ebs-2"])],
            &[],
            Status::success(),
        ),
        (
            "count pending PVCs towards volume limit <= pods CSI volume",
            claims_pod("new", &["csi-ebs-0"]),
            vec![claims_pod("e", &["csi-ebs-1", "unbound-ebs-0"])],
            &ebs_limit,
            exceeded.clone(),
        ),
        (
            "unbound claims of the new pod count by class",
            claims_pod("new", &["unbound-ebs-0", "unbound-ebs-1", "csi-ebs-0"]),
            vec![],
            &ebs_limit,
            exceeded.clone(),
        ),
        (
            "a PV that is gone counts by class",
            claims_pod("new", &["missing-pv"]),
            vec![claims_pod("e", &["csi-ebs-1", "csi-ebs-2"])],
            &ebs_limit,
            exceeded.clone(),
        ),
        (
            "the same volume on the node is counted once",
            claims_pod("new", &["csi-ebs-1", "csi-ebs-2"]),
            vec![claims_pod("e", &["csi-ebs-1", "csi-ebs-2"])],
            &ebs_limit,
            Status::success(),
        ),
        (
            "two drivers are limited separately",
            claims_pod("new", &["csi-gce-0"]),
            vec![claims_pod("e", &["csi-ebs-1", "csi-ebs-2"])],
            &[(EBS, Some(2)), (GCE, Some(1))],
            Status::success(),
        ),
        (
            "a second driver's limit is exceeded",
            claims_pod("new", &["csi-gce-0"]),
            vec![claims_pod("f", &["csi-ebs-1"])],
            &[(EBS, Some(2)), (GCE, Some(0))],
            exceeded.clone(),
        ),
        (
            "a volume already attached needs no slot",
            claims_pod("new", &["csi-gce-0"]),
            vec![claims_pod("e", &["csi-gce-0"])],
            &[(GCE, Some(1))],
            Status::success(),
        ),
        (
            "classless and in-tree claims are not counted",
            claims_pod("new", &["no-class", "in-tree"]),
            vec![claims_pod("e", &["csi-ebs-1", "csi-ebs-2"])],
            &ebs_limit,
            Status::success(),
        ),
        (
            "existing pods' missing claims are ignored",
            claims_pod("new", &["csi-ebs-0"]),
            vec![claims_pod("e", &["csi-ebs-1", "nope"])],
            &ebs_limit,
            Status::success(),
        ),
        (
            "missing claim of the new pod",
            claims_pod("new", &["nope"]),
            vec![],
            &ebs_limit,
            Status::unresolvable(
                r#"looking up PVC default/nope: persistentvolumeclaim "nope" not found"#,
            ),
        ),
        (
            "pod without claims skips",
            make_pod("new").obj(),
            vec![],
            &ebs_limit,
            Status::skip(),
        ),
    ];
    for (name, pod, existing, limits, want) in cases {
        assert_eq!(run(pod, existing, limits), want, "{name}");
    }
}

#[test]
fn ephemeral_volumes_count_and_must_belong_to_the_pod() {
    let ephemeral_pod = make_pod("eph")
        .with_spec(|s| {
            s.volumes = Some(vec![Volume {
                name: "scratch".into(),
                ephemeral: Some(EphemeralVolumeSource::default()),
                ..Default::default()
            }])
        })
        .obj();
    let mut owned = (*claim("eph-scratch", "pv-ebs-3", None)).clone();
    owned.metadata.owner_references = Some(vec![OwnerReference {
        controller: Some(true),
        uid: "eph".into(),
        ..Default::default()
    }]);
    let mut listers = listers(&[(EBS, Some(1))]);
    listers.claims.push(Arc::new(owned));
    let plugin = NodeVolumeLimits::new(&Handle::for_tests(listers)).expect("plugin");
    let node = make_node("node-1").info(vec![claims_pod("e", &["csi-ebs-1"])]);
    let pod = PodInfo::new(Arc::new(ephemeral_pod.clone()));
    let mut state = CycleState::default();
    let _ = plugin.pre_filter(&mut state, &pod, &Snapshot::default());
    assert_eq!(
        plugin.filter(&state, &pod, &node),
        Status::unschedulable(ERR_REASON_MAX_VOLUME_COUNT_EXCEEDED)
    );

    let mut foreign = ephemeral_pod;
    foreign.metadata.uid = Some("someone-else".into());
    let pod = PodInfo::new(Arc::new(foreign));
    let mut state = CycleState::default();
    let _ = plugin.pre_filter(&mut state, &pod, &Snapshot::default());
    let status = plugin.filter(&state, &pod, &node);
    assert_eq!(status.code(), crate::framework::Code::Error);
    assert_eq!(
        status.message(),
        "PVC default/eph-scratch was not created for pod default/eph (pod is not owner)"
    );
}
