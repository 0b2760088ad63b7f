//! Reserve, Unreserve, PreBind's binding checks, settings and scoring.

use super::*;

#[test]
fn reserve_assumes_bindings_and_unreserve_forgets_them() {
    let plugin = plugin(
        vec![
            claim("pvc-a", WAIT, "", false, "1Gi"),
            claim("pvc-b", PROVISIONED, "", false, "1Gi"),
        ],
        vec![pv("pv-a", WAIT, "1Gi", "node-a")],
    );
    let pod = pod_with_claims(&["pvc-a", "pvc-b"]);
    let node = make_node("node-a").info(vec![]);
    let mut state = CycleState::default();
    let (_, status) = plugin.pre_filter(&mut state, &pod, &Snapshot::default());
    assert!(status.is_success(), "{status}");
    assert_eq!(plugin.filter(&state, &pod, &node), Status::success());
    assert_eq!(
        plugin.reserve(&mut state, &pod, "node-a"),
        Status::success()
    );

    let data = state.read::<StateData>(STATE_KEY).expect("state");
    assert!(!data.all_bound);
    let reserved = data.reserved.as_ref().expect("reserved");
    let claim_ref = reserved.static_bindings[0]
        .volume
        .spec
        .as_ref()
        .and_then(|s| s.claim_ref.clone())
        .expect("claimRef");
    assert_eq!(claim_ref.name.as_deref(), Some("pvc-a"));
    assert_eq!(claim_ref.uid.as_deref(), Some("uid-pvc-a"));
    let selected = reserved.dynamic_provisions[0]
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANN_SELECTED_NODE).cloned());
    assert_eq!(selected.as_deref(), Some("node-a"));

    // Another pod's claim of the same class can no longer take the assumed PV.
    let other = plugin
        .cache
        .volume(plugin.listers.as_ref(), "pv-a")
        .expect("pv");
    assert!(other.spec.as_ref().is_some_and(|s| s.claim_ref.is_some()));
    let annotated = plugin
        .cache
        .claim(plugin.listers.as_ref(), "default", "pvc-b")
        .expect("pvc");
    assert!(annotated.metadata.annotations.is_some());

    plugin.unreserve(&mut state, &pod, "node-a");
    let restored = plugin
        .cache
        .volume(plugin.listers.as_ref(), "pv-a")
        .expect("pv");
    assert!(
        restored
            .spec
            .as_ref()
            .is_some_and(|s| s.claim_ref.is_none())
    );
    let restored = plugin
        .cache
        .claim(plugin.listers.as_ref(), "default", "pvc-b")
        .expect("pvc");
    assert!(restored.metadata.annotations.is_none());
}

#[test]
fn reserve_of_bound_claims_leaves_nothing_to_bind() {
    let plugin = plugin(
        vec![claim("pvc-a", WAIT, "pv-a", true, "1Gi")],
        vec![pv("pv-a", WAIT, "1Gi", "")],
    );
    let pod = pod_with_claims(&["pvc-a"]);
    let mut state = CycleState::default();
    let (_, status) = plugin.pre_filter(&mut state, &pod, &Snapshot::default());
    assert!(status.is_success());
    assert_eq!(
        plugin.reserve(&mut state, &pod, "node-a"),
        Status::success()
    );
    assert!(
        state
            .read::<StateData>(STATE_KEY)
            .is_some_and(|d| d.all_bound)
    );
}

#[test]
fn bindings_complete_only_when_the_controller_has_bound_the_claims() {
    let node_labels =
        BTreeMap::from([("kubernetes.io/hostname".to_string(), "node-a".to_string())]);
    let mut bound_pv = pv("pv-a", WAIT, "1Gi", "node-a");
    bound_pv.spec.as_mut().expect("spec").claim_ref = Some(ObjectReference {
        name: Some("pvc-a".into()),
        namespace: Some("default".into()),
        uid: Some("uid-pvc-a".into()),
        ..Default::default()
    });
    let pending = claim("pvc-a", WAIT, "", false, "1Gi");
    let done = claim("pvc-a", WAIT, "pv-a", true, "1Gi");
    let volumes = |pv: &PersistentVolume| PodVolumes {
        static_bindings: vec![StaticBinding {
            claim: Arc::new(pending.clone()),
            volume: Arc::new(pv.clone()),
        }],
        dynamic_provisions: vec![],
        node_labels: node_labels.clone(),
    };
    let listers = |claim: &PersistentVolumeClaim, pv: &PersistentVolume| StaticListers {
        claims: vec![Arc::new(claim.clone())],
        volumes: vec![Arc::new(pv.clone())],
        ..Default::default()
    };
    let check = |l: StaticListers, v: PodVolumes| prebind::check_bindings(&l, "node-a", &v);
    assert_eq!(
        check(listers(&pending, &bound_pv), volumes(&bound_pv)),
        Ok(false)
    );
    assert_eq!(
        check(listers(&done, &bound_pv), volumes(&bound_pv)),
        Ok(true)
    );
    // Our write is not in the informer yet.
    let mut written = bound_pv.clone();
    written.metadata.resource_version = Some("2".into());
    assert_eq!(
        check(listers(&done, &bound_pv), volumes(&written)),
        Ok(false)
    );
    // The PV controller dropped the claimRef.
    let reset = pv("pv-a", WAIT, "1Gi", "node-a");
    assert_eq!(
        check(listers(&done, &reset), volumes(&reset)),
        Err(r#"ClaimRef got reset for pv "pv-a""#.into())
    );

    let provisioning = PodVolumes {
        static_bindings: vec![],
        dynamic_provisions: vec![Arc::new(claim("pvc-a", PROVISIONED, "", false, "1Gi"))],
        node_labels: node_labels.clone(),
    };
    let mut annotated = claim("pvc-a", PROVISIONED, "", false, "1Gi");
    annotated.metadata.annotations = Some(BTreeMap::from([(
        ANN_SELECTED_NODE.into(),
        "node-a".into(),
    )]));
    let other = pv("unused", WAIT, "1Gi", "");
    assert_eq!(
        check(listers(&annotated, &other), provisioning.clone()),
        Ok(false)
    );
    let mut rejected = annotated.clone();
    rejected.metadata.annotations = Some(BTreeMap::new());
    assert_eq!(
        check(listers(&rejected, &other), provisioning.clone()),
        Err(r#"provisioning failed for PVC "pvc-a""#.into())
    );
    let mut provisioned = annotated.clone();
    provisioned.spec.as_mut().expect("spec").volume_name = Some("pv-new".into());
    provisioned
        .metadata
        .annotations
        .as_mut()
        .expect("annotations")
        .insert(ANN_BIND_COMPLETED.into(), "yes".into());
    assert_eq!(
        check(listers(&provisioned, &other), provisioning.clone()),
        Ok(false)
    );
    let new_pv = pv("pv-new", PROVISIONED, "1Gi", "node-a");
    assert_eq!(
        check(listers(&provisioned, &new_pv), provisioning),
        Ok(true)
    );
}

#[test]
fn settings_default_and_validation() {
    assert_eq!(VolumeBindingArgs::default().bind_timeout_seconds, 600);
    let negative = VolumeBindingArgs {
        shape: None,
        bind_timeout_seconds: -1,
    };
    assert!(VolumeBinding::new(&negative, &Handle::for_tests(StaticListers::default())).is_err());
}

#[test]
fn scoring_is_skipped_without_the_capacity_scoring_gate() {
    let plugin = plugin(vec![], vec![]);
    let pod = pod_with(vec![]);
    let status = plugin.pre_score(&mut CycleState::default(), &pod, &[], &Snapshot::default());
    assert!(status.is_skip());
}
