//! PreFilter and Filter verdicts, and PV matching.

use super::*;

#[test]
fn pre_filter_and_filter_verdicts_match_upstream() {
    let lost = {
        let mut c = claim("pvc-a", WAIT, "pv-a", false, "1Gi");
        c.status.as_mut().expect("status").phase = Some("Lost".into());
        c
    };
    let deleting = {
        let mut c = claim("pvc-a", WAIT, "", false, "1Gi");
        c.metadata.deletion_timestamp = Some(Time(Default::default()));
        c
    };
    let selected_elsewhere = {
        let mut c = claim("pvc-a", PROVISIONED, "", false, "1Gi");
        c.metadata.annotations = Some(BTreeMap::from([(
            ANN_SELECTED_NODE.into(),
            "node-b".into(),
        )]));
        c
    };
    let cases = vec![
        Case {
            name: "pod has no pvcs",
            pod: pod_with(vec![]),
            claims: vec![],
            volumes: vec![],
            pre_filter: Status::skip(),
            filter: Status::success(),
        },
        Case {
            name: "all bound",
            pod: pod_with_claims(&["pvc-a"]),
            claims: vec![claim("pvc-a", WAIT, "pv-a", true, "1Gi")],
            volumes: vec![pv("pv-a", WAIT, "1Gi", "")],
            pre_filter: Status::success(),
            filter: Status::success(),
        },
        Case {
            name: "pvc not found",
            pod: pod_with_claims(&["pvc-a"]),
            claims: vec![],
            volumes: vec![],
            pre_filter: Status::unresolvable(r#"persistentvolumeclaim "pvc-a" not found"#),
            filter: Status::success(),
        },
        Case {
            name: "pv not found claim lost",
            pod: pod_with_claims(&["pvc-a"]),
            claims: vec![lost],
            volumes: vec![],
            pre_filter: Status::unresolvable(
                r#"persistentvolumeclaim "pvc-a" bound to non-existent persistentvolume "pv-a""#,
            ),
            filter: Status::success(),
        },
        Case {
            name: "claim being deleted",
            pod: pod_with_claims(&["pvc-a"]),
            claims: vec![deleting],
            volumes: vec![],
            pre_filter: Status::unresolvable(r#"persistentvolumeclaim "pvc-a" is being deleted"#),
            filter: Status::success(),
        },
        Case {
            name: "immediate claims not bound",
            pod: pod_with_claims(&["pvc-a"]),
            claims: vec![claim("pvc-a", IMMEDIATE, "", false, "1Gi")],
            volumes: vec![],
            pre_filter: Status::unresolvable(ERR_REASON_UNBOUND_IMMEDIATE),
            filter: Status::success(),
        },
        Case {
            name: "claim without class is immediate",
            pod: pod_with_claims(&["pvc-a"]),
            claims: vec![claim("pvc-a", "", "", false, "1Gi")],
            volumes: vec![],
            pre_filter: Status::unresolvable(ERR_REASON_UNBOUND_IMMEDIATE),
            filter: Status::success(),
        },
        Case {
            name: "pre-bound delayed claim is treated as immediate",
            pod: pod_with_claims(&["pvc-a"]),
            claims: vec![claim("pvc-a", WAIT, "pv-a", false, "1Gi")],
            volumes: vec![pv("pv-a", WAIT, "1Gi", "")],
            pre_filter: Status::unresolvable(ERR_REASON_UNBOUND_IMMEDIATE),
            filter: Status::success(),
        },
        Case {
            name: "bound pv node affinity conflict",
            pod: pod_with_claims(&["pvc-a"]),
            claims: vec![claim("pvc-a", WAIT, "pv-a", true, "1Gi")],
            volumes: vec![pv("pv-a", WAIT, "1Gi", "node-b")],
            pre_filter: Status::success(),
            filter: unresolvable(&[ERR_REASON_NODE_CONFLICT]),
        },
        Case {
            name: "pv not found",
            pod: pod_with_claims(&["pvc-a"]),
            claims: vec![claim("pvc-a", WAIT, "pv-a", true, "1Gi")],
            volumes: vec![],
            pre_filter: Status::success(),
            filter: unresolvable(&[ERR_REASON_PV_NOT_EXIST]),
        },
        Case {
            name: "unbound claims no matches",
            pod: pod_with_claims(&["pvc-a"]),
            claims: vec![claim("pvc-a", WAIT, "", false, "1Gi")],
            volumes: vec![pv("pv-a", WAIT, "1Gi", "node-b")],
            pre_filter: Status::success(),
            filter: unresolvable(&[ERR_REASON_BIND_CONFLICT]),
        },
        Case {
            name: "bound and unbound unsatisfied",
            pod: pod_with_claims(&["pvc-a", "pvc-b"]),
            claims: vec![
                claim("pvc-a", WAIT, "pv-a", true, "1Gi"),
                claim("pvc-b", WAIT, "", false, "1Gi"),
            ],
            volumes: vec![pv("pv-a", WAIT, "1Gi", "node-b")],
            pre_filter: Status::success(),
            filter: unresolvable(&[ERR_REASON_NODE_CONFLICT, ERR_REASON_BIND_CONFLICT]),
        },
        Case {
            name: "unbound claim matches a local pv",
            pod: pod_with_claims(&["pvc-a"]),
            claims: vec![claim("pvc-a", WAIT, "", false, "1Gi")],
            volumes: vec![pv("pv-a", WAIT, "2Gi", "node-a")],
            pre_filter: Status::success(),
            filter: Status::success(),
        },
        Case {
            name: "unbound claim provisioned dynamically",
            pod: pod_with_claims(&["pvc-a"]),
            claims: vec![claim("pvc-a", PROVISIONED, "", false, "1Gi")],
            volumes: vec![],
            pre_filter: Status::success(),
            filter: Status::success(),
        },
        Case {
            name: "provisioning already selected another node",
            pod: pod_with_claims(&["pvc-a"]),
            claims: vec![selected_elsewhere],
            volumes: vec![],
            pre_filter: Status::success(),
            filter: unresolvable(&[ERR_REASON_BIND_CONFLICT]),
        },
        Case {
            name: "ephemeral claim not created yet",
            pod: pod_with(vec![Volume {
                name: "scratch".into(),
                ephemeral: Some(EphemeralVolumeSource::default()),
                ..Default::default()
            }]),
            claims: vec![],
            volumes: vec![],
            pre_filter: Status::unresolvable(
                r#"waiting for ephemeral volume controller to create the persistentvolumeclaim "pod-a-scratch""#,
            ),
            filter: Status::success(),
        },
    ];
    let node = make_node("node-a").info(vec![]);
    for case in cases {
        let plugin = plugin(case.claims, case.volumes);
        let mut state = CycleState::default();
        let (_, status) = plugin.pre_filter(&mut state, &case.pod, &Snapshot::default());
        assert_eq!(status, case.pre_filter, "{}: PreFilter", case.name);
        if status.is_success() {
            let status = plugin.filter(&state, &case.pod, &node);
            assert_eq!(status, case.filter, "{}: Filter", case.name);
        }
    }
}

#[test]
fn ephemeral_claim_must_be_owned_by_the_pod() {
    let pod = pod_with(vec![Volume {
        name: "scratch".into(),
        ephemeral: Some(EphemeralVolumeSource::default()),
        ..Default::default()
    }]);
    let mut owned = claim("pod-a-scratch", PROVISIONED, "", false, "1Gi");
    let foreign = owned.clone();
    owned.metadata.owner_references = Some(vec![OwnerReference {
        controller: Some(true),
        uid: "pod-a".into(),
        ..Default::default()
    }]);
    let plugin_for = |c: PersistentVolumeClaim| plugin(vec![c], vec![]);
    let (_, status) =
        plugin_for(foreign).pre_filter(&mut CycleState::default(), &pod, &Snapshot::default());
    assert_eq!(
        status,
        Status::unresolvable(
            "PVC default/pod-a-scratch was not created for pod default/pod-a (pod is not owner)"
        )
    );
    let (_, status) =
        plugin_for(owned).pre_filter(&mut CycleState::default(), &pod, &Snapshot::default());
    assert!(status.is_success(), "{status}");
}

#[test]
fn provisioning_needs_a_provisioner_and_allowed_topology() {
    let mut zoned = (*class("zoned", Some("WaitForFirstConsumer"), "csi.example.com")).clone();
    zoned.allowed_topologies = Some(vec![TopologySelectorTerm {
        match_label_expressions: Some(vec![TopologySelectorLabelRequirement {
            key: "topology.kubernetes.io/zone".into(),
            values: vec!["zone-a".into()],
        }]),
    }]);
    let listers = StaticListers {
        claims: vec![Arc::new(claim("pvc-a", "zoned", "", false, "1Gi"))],
        storage_classes: vec![Arc::new(zoned)],
        ..Default::default()
    };
    let plugin = VolumeBinding::new(&VolumeBindingArgs::default(), &Handle::for_tests(listers))
        .expect("plugin");
    let pod = pod_with_claims(&["pvc-a"]);
    let mut state = CycleState::default();
    let (_, status) = plugin.pre_filter(&mut state, &pod, &Snapshot::default());
    assert!(status.is_success(), "{status}");
    let in_zone = make_node("node-a")
        .label("topology.kubernetes.io/zone", "zone-a")
        .info(vec![]);
    let out_of_zone = make_node("node-b")
        .label("topology.kubernetes.io/zone", "zone-b")
        .info(vec![]);
    assert_eq!(plugin.filter(&state, &pod, &in_zone), Status::success());
    assert_eq!(
        plugin.filter(&state, &pod, &out_of_zone),
        unresolvable(&[ERR_REASON_BIND_CONFLICT])
    );
}

#[test]
fn matching_picks_the_smallest_fitting_available_volume() {
    let wanted = claim("pvc-a", WAIT, "", false, "5Gi");
    let labels = BTreeMap::from([("kubernetes.io/hostname".to_string(), "node-a".to_string())]);
    let mut released = pv("released", WAIT, "5Gi", "");
    released.status.as_mut().expect("status").phase = Some("Released".into());
    let mut block = pv("block", WAIT, "5Gi", "");
    block.spec.as_mut().expect("spec").volume_mode = Some("Block".into());
    let mut read_only_many = pv("rox", WAIT, "5Gi", "");
    read_only_many.spec.as_mut().expect("spec").access_modes = Some(vec!["ReadOnlyMany".into()]);
    let mut taken = pv("taken", WAIT, "5Gi", "");
    taken.spec.as_mut().expect("spec").claim_ref = Some(ObjectReference {
        name: Some("other".into()),
        namespace: Some("default".into()),
        ..Default::default()
    });
    let candidates: Vec<Arc<PersistentVolume>> = [
        pv("too-small", WAIT, "1Gi", ""),
        pv("big", WAIT, "100Gi", ""),
        pv("other-class", "other", "5Gi", ""),
        pv("other-node", WAIT, "5Gi", "node-b"),
        released,
        block,
        read_only_many,
        taken,
        pv("fits", WAIT, "10Gi", "node-a"),
    ]
    .into_iter()
    .map(Arc::new)
    .collect();
    let name = |found: Option<Arc<PersistentVolume>>| found.and_then(|v| v.metadata.name.clone());
    let found =
        find_matching_volume(&wanted, &candidates, &labels, &HashSet::new()).expect("match");
    assert_eq!(name(found), Some("fits".into()));
    let excluded = HashSet::from(["fits".to_string()]);
    let found = find_matching_volume(&wanted, &candidates, &labels, &excluded).expect("match");
    assert_eq!(name(found), Some("big".into()));

    // A volume pre-bound to the claim wins over smaller ones, but only where its affinity allows.
    let mut prebound = pv("prebound", WAIT, "50Gi", "node-b");
    prebound.spec.as_mut().expect("spec").claim_ref = Some(ObjectReference {
        name: Some("pvc-a".into()),
        namespace: Some("default".into()),
        ..Default::default()
    });
    let with_prebound = vec![Arc::new(prebound), candidates[8].clone()];
    let found =
        find_matching_volume(&wanted, &with_prebound, &labels, &HashSet::new()).expect("match");
    assert_eq!(name(found), None);
    let node_b = BTreeMap::from([("kubernetes.io/hostname".to_string(), "node-b".to_string())]);
    let found =
        find_matching_volume(&wanted, &with_prebound, &node_b, &HashSet::new()).expect("match");
    assert_eq!(name(found), Some("prebound".into()));
}
