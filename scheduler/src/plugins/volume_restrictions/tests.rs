//! Table tests mirroring upstream's unit tests.

use k8s_openapi::api::core::v1::{
    AWSElasticBlockStoreVolumeSource, GCEPersistentDiskVolumeSource, ISCSIVolumeSource,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource,
    RBDVolumeSource,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;
use crate::framework::StaticListers;
use crate::testing::{make_node, make_pod};

fn pod_with(name: &str, volumes: Vec<Volume>) -> Pod {
    make_pod(name)
        .with_spec(|s| s.volumes = Some(volumes))
        .obj()
}

fn gce(pd: &str, read_only: bool) -> Volume {
    Volume {
        name: "gce".into(),
        gce_persistent_disk: Some(GCEPersistentDiskVolumeSource {
            pd_name: pd.into(),
            read_only: Some(read_only),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn ebs(id: &str) -> Volume {
    Volume {
        name: "ebs".into(),
        aws_elastic_block_store: Some(AWSElasticBlockStoreVolumeSource {
            volume_id: id.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn rbd(monitors: &[&str], image: &str) -> Volume {
    Volume {
        name: "rbd".into(),
        rbd: Some(RBDVolumeSource {
            monitors: monitors.iter().map(|m| m.to_string()).collect(),
            pool: Some("foo".into()),
            image: image.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn iscsi(iqn: &str) -> Volume {
    Volume {
        name: "iscsi".into(),
        iscsi: Some(ISCSIVolumeSource {
            target_portal: "127.0.0.1:3260".into(),
            iqn: iqn.into(),
            lun: 0,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn claim_volume(claim: &str) -> Volume {
    Volume {
        name: claim.into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim.into(),
            read_only: None,
        }),
        ..Default::default()
    }
}

fn claim(name: &str, mode: &str) -> Arc<PersistentVolumeClaim> {
    Arc::new(PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec![mode.into()]),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn plugin() -> VolumeRestrictions {
    let listers = StaticListers {
        claims: vec![
            claim("claim-with-rwop-1", READ_WRITE_ONCE_POD),
            claim("claim-with-rwop-2", READ_WRITE_ONCE_POD),
            claim("claim-with-rwx", "ReadWriteMany"),
        ],
        ..Default::default()
    };
    VolumeRestrictions::new(&Handle::for_tests(listers)).expect("plugin")
}

fn run(plugin: &VolumeRestrictions, pod: Pod, existing: Vec<Pod>) -> (Status, Status) {
    let node = make_node("node-1").info(existing);
    let snapshot = Snapshot::new(vec![Arc::new(node.clone())]);
    let pod = PodInfo::new(Arc::new(pod));
    let mut state = CycleState::default();
    let (_, pre_filter) = plugin.pre_filter(&mut state, &pod, &snapshot);
    if !pre_filter.is_success() {
        return (pre_filter, Status::success());
    }
    let filter = plugin.filter(&state, &pod, &node);
    (pre_filter, filter)
}

#[test]
fn disk_conflicts_match_upstream() {
    let disk = Status::unschedulable(ERR_REASON_DISK_CONFLICT);
    let cases = vec![
        ("nothing", vec![], vec![], Status::skip()),
        (
            "one gce state",
            vec![gce("foo", false)],
            vec![],
            Status::success(),
        ),
        (
            "same gce",
            vec![gce("foo", false)],
            vec![gce("foo", false)],
            disk.clone(),
        ),
        (
            "different gce",
            vec![gce("foo", false)],
            vec![gce("bar", false)],
            Status::success(),
        ),
        (
            "same gce read-only",
            vec![gce("foo", true)],
            vec![gce("foo", true)],
            Status::success(),
        ),
        ("same ebs", vec![ebs("foo")], vec![ebs("foo")], disk.clone()),
        (
            "different ebs",
            vec![ebs("foo")],
            vec![ebs("bar")],
            Status::success(),
        ),
        (
            "same rbd",
            vec![rbd(&["a", "b"], "bar")],
            vec![rbd(&["b", "c"], "bar")],
            disk.clone(),
        ),
        (
            "rbd different monitors",
            vec![rbd(&["a"], "bar")],
            vec![rbd(&["c"], "bar")],
            Status::success(),
        ),
        (
            "rbd different image",
            vec![rbd(&["a"], "bar")],
            vec![rbd(&["a"], "baz")],
            Status::success(),
        ),
        (
            "same iscsi",
            vec![iscsi("iqn.2016-12.server:storage.target01")],
            vec![iscsi("iqn.2016-12.server:storage.target01")],
            disk.clone(),
        ),
        (
            "different iscsi",
            vec![iscsi("iqn.2016-12.server:storage.target01")],
            vec![iscsi("iqn.2017-12.server:storage.target01")],
            Status::success(),
        ),
    ];
    let plugin = plugin();
    for (name, volumes, existing, want) in cases {
        let existing = if existing.is_empty() {
            vec![]
        } else {
            vec![pod_with("existing", existing).clone()]
        };
        let (pre_filter, filter) = run(&plugin, pod_with("new", volumes), existing);
        let got = if pre_filter.is_skip() {
            pre_filter
        } else {
            filter
        };
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn read_write_once_pod_conflicts_match_upstream() {
    let plugin = plugin();
    let conflict = Status::unschedulable(ERR_REASON_READ_WRITE_ONCE_POD_CONFLICT);
    let with_claims = |name: &str, claims: &[&str]| {
        pod_with(name, claims.iter().map(|c| claim_volume(c)).collect())
    };
    let existing_node = |name: &str, claims: &[&str]| {
        let mut pod = with_claims(name, claims);
        pod.spec.as_mut().expect("spec").node_name = Some("node-1".into());
        pod
    };
    let cases = vec![
        (
            "no conflict",
            with_claims("p", &["claim-with-rwop-1"]),
            vec![],
            (Status::skip(), Status::success()),
        ),
        (
            "rwop claim used by a scheduled pod",
            with_claims("p", &["claim-with-rwop-1"]),
            vec![existing_node("e", &["claim-with-rwop-1"])],
            (Status::success(), conflict.clone()),
        ),
        (
            "rwx claim shared",
            with_claims("p", &["claim-with-rwx"]),
            vec![existing_node("e", &["claim-with-rwx"])],
            (Status::skip(), Status::success()),
        ),
        (
            "missing claim",
            with_claims("p", &["claim-missing"]),
            vec![],
            (
                Status::unresolvable(r#"persistentvolumeclaim "claim-missing" not found"#),
                Status::success(),
            ),
        ),
    ];
    for (name, pod, existing, want) in cases {
        assert_eq!(run(&plugin, pod, existing), want, "{name}");
    }
}

#[test]
fn preemption_what_if_updates_the_conflict_count() {
    let plugin = plugin();
    let claims = vec![claim_volume("claim-with-rwop-1")];
    let user = PodInfo::new(Arc::new(pod_with("user", claims.clone())));
    let node = make_node("node-1").info(vec![(*user.pod).clone()]);
    let snapshot = Snapshot::new(vec![Arc::new(node.clone())]);
    let pod = PodInfo::new(Arc::new(pod_with("new", claims)));
    let mut state = CycleState::default();
    let (_, status) = plugin.pre_filter(&mut state, &pod, &snapshot);
    assert!(status.is_success());
    assert!(plugin.filter(&state, &pod, &node).is_rejected());
    assert!(
        plugin
            .remove_pod(&mut state, &pod, &user, &node)
            .is_success()
    );
    assert_eq!(plugin.filter(&state, &pod, &node), Status::success());
    assert!(plugin.add_pod(&mut state, &pod, &user, &node).is_success());
    assert!(plugin.filter(&state, &pod, &node).is_rejected());
}
