use super::*;
use k8s_openapi::api::apps::v1::DeploymentCondition;
use serde_json::json;

fn deployment(
    replicas: i32,
    surge: serde_json::Value,
    unavailable: serde_json::Value,
) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "d", "namespace": "ns", "uid": "d-uid", "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "new"}]}}
        }
    }))
    .unwrap()
}

/// A ReplicaSet named `name`, created at second `created`, with `replicas` and `available` pods, the
/// max-replicas annotation `max` and the template's image `image`.
fn rs(
    name: &str,
    created: i64,
    replicas: i32,
    available: i32,
    max: Option<i32>,
    image: &str,
) -> ReplicaSet {
    let mut annotations = serde_json::Map::new();
    if let Some(max) = max {
        annotations.insert(MAX_REPLICAS_ANNOTATION.into(), json!(max.to_string()));
        annotations.insert(DESIRED_REPLICAS_ANNOTATION.into(), json!(max.to_string()));
    }
    serde_json::from_value(json!({
        "metadata": {
            "name": name, "namespace": "ns", "uid": format!("{name}-uid"), "annotations": annotations,
            "creationTimestamp": Timestamp::from_second(created).unwrap().to_string()
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": image}]}}
        },
        "status": {"replicas": replicas, "availableReplicas": available, "readyReplicas": available}
    }))
    .unwrap()
}

fn sizes(plan: ScalePlan) -> Vec<(String, i32)> {
    match plan {
        ScalePlan::Proportional(sizes) => sizes,
        other => panic!("not proportional: {other:?}"),
    }
}

fn pairs(v: &[(&str, i32)]) -> Vec<(String, i32)> {
    v.iter().map(|(n, s)| (n.to_string(), *s)).collect()
}

#[test]
fn scaling_a_single_active_replica_set() {
    let d = deployment(5, json!(1), json!(0));
    let new = rs("new", 2, 3, 3, Some(3), "new");
    let old = rs("old", 1, 0, 0, Some(3), "old");
    assert_eq!(
        scale_plan(&d, Some(&new), std::slice::from_ref(&old)),
        ScalePlan::One(("new".into(), 5))
    );
    let done = rs("new", 2, 5, 5, Some(5), "new");
    assert_eq!(scale_plan(&d, Some(&done), &[old]), ScalePlan::Nothing);
    // No new ReplicaSet and no active one: the latest old one takes the replicas.
    let older = rs("a", 1, 0, 0, None, "a");
    let newer = rs("b", 2, 0, 0, None, "b");
    assert_eq!(
        scale_plan(&d, None, &[older, newer]),
        ScalePlan::One(("b".into(), 5))
    );
}

#[test]
fn a_saturated_new_replica_set_scales_old_ones_to_zero() {
    let d = deployment(3, json!(1), json!(0));
    let new = rs("new", 2, 3, 3, Some(3), "new");
    let old = rs("old", 1, 2, 2, Some(3), "old");
    let idle = rs("idle", 0, 0, 0, Some(3), "idle");
    assert_eq!(
        scale_plan(&d, Some(&new), &[old, idle]),
        ScalePlan::OldToZero(vec!["old".into()])
    );
}

#[test]
fn proportional_scaling_keeps_the_ratio() {
    // Scaling up 5 → 10 mid-rollout (maxSurge 0): 3 old and 2 new become 6 and 4.
    let d = deployment(10, json!(0), json!(1));
    let new = rs("new", 2, 2, 2, Some(5), "new");
    let old = rs("old", 1, 3, 3, Some(5), "old");
    assert_eq!(
        sizes(scale_plan(&d, Some(&new), std::slice::from_ref(&old))),
        pairs(&[("old", 6), ("new", 4)])
    );
    // And back down 10 → 5.
    let d = deployment(5, json!(0), json!(1));
    let new = rs("new", 2, 4, 4, Some(10), "new");
    let old = rs("old", 1, 6, 6, Some(10), "old");
    assert_eq!(
        sizes(scale_plan(&d, Some(&new), &[old])),
        pairs(&[("old", 3), ("new", 2)])
    );
}

#[test]
fn proportional_scaling_gives_the_leftover_to_the_first() {
    // 1+1+1 → 4: every share rounds to 0; the leftover goes to the newest of the equal-sized.
    let d = deployment(4, json!(0), json!(1));
    let a = rs("a", 1, 1, 1, Some(3), "a");
    let b = rs("b", 2, 1, 1, Some(3), "b");
    let new = rs("new", 3, 1, 1, Some(3), "new");
    assert_eq!(
        sizes(scale_plan(&d, Some(&new), &[a.clone(), b.clone()])),
        pairs(&[("new", 2), ("b", 1), ("a", 1)])
    );
    // 1+1+1 → 2: the oldest of the equal-sized absorbs the reduction.
    let d = deployment(2, json!(0), json!(1));
    assert_eq!(
        sizes(scale_plan(&d, Some(&new), &[a, b])),
        pairs(&[("a", 0), ("b", 1), ("new", 1)])
    );
}

#[test]
fn proportional_scaling_with_surge_counts_the_surge() {
    // 10 replicas + 3 surge = 13 → 20 + 5 = 25: old 8 and new 5 become 15 and 10 (annotations say 13).
    let d = deployment(20, json!("25%"), json!("25%"));
    let new = rs("new", 2, 5, 0, Some(13), "new");
    let old = rs("old", 1, 8, 8, Some(13), "old");
    let plan = sizes(scale_plan(&d, Some(&new), &[old]));
    assert_eq!(plan.iter().map(|(_, s)| s).sum::<i32>(), 25);
    assert_eq!(plan, pairs(&[("old", 15), ("new", 10)]));
}

#[test]
fn scaling_to_zero_empties_every_replica_set() {
    let d = deployment(0, json!(1), json!(1));
    let new = rs("new", 2, 2, 2, Some(6), "new");
    let old = rs("old", 1, 3, 3, Some(6), "old");
    assert_eq!(
        sizes(scale_plan(&d, Some(&new), &[old])),
        pairs(&[("old", 0), ("new", 0)])
    );
}

#[test]
fn rolling_new_replica_set_steps() {
    // (replicas, surge, unavailable, old size, new size) → next new size.
    type Case = (
        i32,
        serde_json::Value,
        serde_json::Value,
        i32,
        i32,
        Option<i32>,
    );
    let cases: &[Case] = &[
        (10, json!(2), json!(0), 10, 0, Some(2)),
        (10, json!("25%"), json!(0), 10, 0, Some(3)),
        (10, json!(2), json!(0), 10, 2, None),
        (10, json!(2), json!(0), 8, 2, Some(4)),
        (10, json!(0), json!(2), 8, 0, Some(2)),
        (3, json!(1), json!(0), 0, 3, None),
        (3, json!(1), json!(0), 0, 5, Some(3)),
        (3, json!(5), json!(0), 3, 0, Some(3)),
    ];
    for (replicas, surge, unavailable, old_size, new_size, want) in cases {
        let d = deployment(*replicas, surge.clone(), unavailable.clone());
        let old = rs("old", 1, *old_size, *old_size, None, "old");
        let new = rs("new", 2, *new_size, 0, None, "new");
        let got =
            rolling_new_replica_set_size(&d, &[&old, &new], &new, &ActivePods::new()).unwrap();
        assert_eq!(
            got, *want,
            "replicas {replicas} surge {surge} unavailable {unavailable} old {old_size} new {new_size}"
        );
    }
}

#[test]
fn rolling_old_replica_set_steps() {
    // (replicas, surge, unavailable, old size, old available, new size, new available) → resizes.
    type Case<'a> = (
        i32,
        serde_json::Value,
        serde_json::Value,
        i32,
        i32,
        i32,
        i32,
        &'a [(&'a str, i32)],
    );
    let cases: &[Case] = &[
        // Available old pods go down to minAvailable (8).
        (10, json!(2), json!(2), 10, 10, 2, 0, &[("old", 8)]),
        // Unavailable old pods go first, as far as max_scaled_down (2) allows.
        (10, json!(2), json!(2), 10, 5, 2, 0, &[("old", 8)]),
        // maxUnavailable 0: nothing goes until new pods are available.
        (3, json!(1), json!(0), 3, 3, 1, 0, &[]),
        (3, json!(1), json!(0), 3, 3, 1, 1, &[("old", 2)]),
        // Unhealthy and then healthy scale-down in one step.
        (4, json!(0), json!(2), 4, 3, 0, 0, &[("old", 3), ("old", 2)]),
        // Nothing old left.
        (3, json!(1), json!(0), 0, 0, 3, 3, &[]),
        // The old status still counts pods its spec gave up: never a scale-up, nothing this time.
        (4, json!(1), json!(1), 2, 3, 3, 2, &[]),
    ];
    for (replicas, surge, unavailable, old_size, old_avail, new_size, new_avail, want) in cases {
        let d = deployment(*replicas, surge.clone(), unavailable.clone());
        let old = rs("old", 1, *old_size, *old_avail, None, "old");
        let new = rs("new", 2, *new_size, *new_avail, None, "new");
        let old_active = active([&old]);
        let got = rolling_old_replica_sets_scale_down(&d, &[&old, &new], &old_active, &new);
        assert_eq!(
            got,
            pairs(want),
            "case {replicas} {surge} {unavailable} {old_size}/{old_avail} {new_size}/{new_avail}"
        );
    }
}

#[test]
fn rolling_scale_down_takes_the_oldest_first_and_never_breaks_availability() {
    // Simulate a whole rollout: at every step total <= replicas + surge and available >= replicas -
    // unavailable, and it ends with only the new ReplicaSet.
    for (replicas, surge, unavailable) in [
        (5, json!(1), json!(0)),
        (10, json!("25%"), json!("25%")),
        (4, json!(0), json!(1)),
        (3, json!("50%"), json!(0)),
    ] {
        let d = deployment(replicas, surge.clone(), unavailable.clone());
        let (max_total, min_avail) = (replicas + max_surge(&d), replicas - max_unavailable(&d));
        let mut old = rs("old", 1, replicas, replicas, None, "old");
        let mut new = rs("new", 2, 0, 0, None, "new");
        for _ in 0..50 {
            let no_pods = ActivePods::new();
            if let Some(size) =
                rolling_new_replica_set_size(&d, &[&old, &new], &new, &no_pods).unwrap()
            {
                set_rs_replicas(&mut new, size);
            } else {
                let old_active = active([&old]);
                for (_, size) in
                    rolling_old_replica_sets_scale_down(&d, &[&old, &new], &old_active, &new)
                {
                    set_rs_replicas(&mut old, size);
                }
            }
            // Pods come and go at once; all become available.
            for rs in [&mut old, &mut new] {
                let n = rs_replicas(rs);
                rs.status =
                    serde_json::from_value(json!({"replicas": n, "availableReplicas": n})).unwrap();
            }
            assert!(
                rs_replicas(&old) + rs_replicas(&new) <= max_total,
                "surge exceeded"
            );
            assert!(
                rs_available(&old) + rs_available(&new) >= min_avail,
                "availability broken"
            );
        }
        assert_eq!(
            (rs_replicas(&old), rs_replicas(&new)),
            (0, replicas),
            "rollout {surge} {unavailable} finished"
        );
    }
}

#[test]
fn new_replica_set_size_respects_surge() {
    let d = deployment(10, json!(2), json!(0));
    let new = rs("new", 2, 0, 0, None, "new");
    let no_pods = ActivePods::new();
    let old = rs("old", 1, 10, 10, None, "old");
    assert_eq!(
        new_rs_new_replicas(&d, &[&old, &new], &new, &no_pods).unwrap(),
        2
    );
    let old12 = rs("old", 1, 12, 12, None, "old");
    assert_eq!(
        new_rs_new_replicas(&d, &[&old12, &new], &new, &no_pods).unwrap(),
        0,
        "at the surge limit"
    );
    let few = rs("old", 1, 0, 0, None, "old");
    assert_eq!(
        new_rs_new_replicas(&d, &[&few, &new], &new, &no_pods).unwrap(),
        10,
        "never beyond replicas"
    );
}

#[test]
fn the_surge_counts_old_pods_still_being_deleted() {
    // 200 replicas, maxSurge 50: the old ReplicaSet was scaled from 146 to 46 but its pods are not all
    // deleted yet.
    let d = deployment(200, json!("25%"), json!("25%"));
    let old = rs("old", 1, 46, 46, None, "old");
    let new = rs("new", 2, 104, 104, None, "new");
    let pods = |old: i32, new: i32| -> ActivePods {
        [("old-uid".to_string(), old), ("new-uid".to_string(), new)].into()
    };
    let size = |p: &ActivePods| rolling_new_replica_set_size(&d, &[&old, &new], &new, p).unwrap();
    assert_eq!(size(&pods(146, 104)), None, "no deletion landed yet");
    assert_eq!(
        size(&pods(86, 104)),
        Some(164),
        "as far as deletions landed"
    );
    assert_eq!(size(&pods(46, 104)), Some(200), "all landed");
    // Pods not created yet count as their spec.replicas.
    assert_eq!(size(&pods(0, 0)), Some(200));
    assert_eq!(pods_to_count(&old, &pods(146, 0)), 146);
    assert_eq!(pods_to_count(&old, &pods(3, 0)), 46);
}

#[test]
fn a_rollout_whose_deletes_lag_never_has_more_than_replicas_plus_surge_pods() {
    // The ReplicaSet controller creates pods at once, but deletions land only after the Deployment
    // controller's next step: live pods must still never pass replicas + maxSurge.
    for (replicas, surge, unavailable) in [
        (200, json!("25%"), json!("25%")),
        (10, json!(2), json!(3)),
        (5, json!(1), json!(0)),
    ] {
        let d = deployment(replicas, surge.clone(), unavailable.clone());
        let max_total = replicas + max_surge(&d);
        let mut old = rs("old", 1, replicas, replicas, None, "old");
        let mut new = rs("new", 2, 0, 0, None, "new");
        // Old pods alive, and the old size whose deletions are in flight.
        let (mut old_live, mut old_pending) = (replicas, replicas);
        for _ in 0..100 {
            let pods: ActivePods = [
                ("old-uid".to_string(), old_live),
                ("new-uid".to_string(), rs_replicas(&new)),
            ]
            .into();
            if let Some(size) =
                rolling_new_replica_set_size(&d, &[&old, &new], &new, &pods).unwrap()
            {
                set_rs_replicas(&mut new, size);
            } else {
                let old_active = active([&old]);
                for (_, size) in
                    rolling_old_replica_sets_scale_down(&d, &[&old, &new], &old_active, &new)
                {
                    set_rs_replicas(&mut old, size);
                }
            }
            let n = rs_replicas(&new);
            new.status =
                serde_json::from_value(json!({"replicas": n, "availableReplicas": n})).unwrap();
            assert!(
                old_live + n <= max_total,
                "{} live pods for {replicas} + maxSurge {surge}",
                old_live + n
            );
            // The previous step's deletions land now; this step's are still in flight.
            (old_live, old_pending) = (old_pending, rs_replicas(&old));
            old.status = serde_json::from_value(
                json!({"replicas": old_live, "availableReplicas": old_live}),
            )
            .unwrap();
        }
        assert_eq!(
            (rs_replicas(&old), rs_replicas(&new)),
            (0, replicas),
            "rollout {surge} {unavailable} finished"
        );
    }
}

#[test]
fn recreate_waits_for_old_pods() {
    let new = rs("new", 2, 0, 0, None, "new");
    let mut old = rs("old", 1, 0, 0, None, "old");
    let pod = |phase: &str| -> Pod {
        serde_json::from_value(json!({"status": {"phase": phase}})).unwrap()
    };
    let mut pods = HashMap::new();
    assert!(!old_pods_running(
        Some(&new),
        std::slice::from_ref(&old),
        &pods
    ));
    pods.insert("old-uid".to_string(), vec![pod("Succeeded"), pod("Failed")]);
    assert!(
        !old_pods_running(Some(&new), std::slice::from_ref(&old), &pods),
        "finished pods do not count"
    );
    pods.insert("new-uid".to_string(), vec![pod("Running")]);
    assert!(
        !old_pods_running(Some(&new), std::slice::from_ref(&old), &pods),
        "the new ReplicaSet's pods do not count"
    );
    pods.insert("old-uid".to_string(), vec![pod("Pending")]);
    assert!(old_pods_running(
        Some(&new),
        std::slice::from_ref(&old),
        &pods
    ));
    pods.clear();
    old.status = serde_json::from_value(json!({"replicas": 1})).unwrap();
    assert!(
        old_pods_running(Some(&new), &[old], &pods),
        "status still counts pods"
    );
}

#[test]
fn cleanup_deletes_the_oldest_revisions_beyond_the_limit() {
    let mut d = deployment(1, json!(1), json!(0));
    d.spec.as_mut().unwrap().revision_history_limit = Some(1);
    let with_revision = |name: &str, revision: &str, replicas: i32| {
        let mut rs = rs(name, 1, replicas, 0, None, name);
        rs.metadata.annotations =
            Some([(REVISION_ANNOTATION.to_string(), revision.to_string())].into());
        rs
    };
    let olds = [
        with_revision("r3", "3", 0),
        with_revision("r1", "1", 0),
        with_revision("r2", "2", 1),
    ];
    // r1 and r2 are beyond the limit; r2 still has replicas.
    assert_eq!(replica_sets_to_clean_up(&d, &olds), vec!["r1".to_string()]);
    d.spec.as_mut().unwrap().revision_history_limit = Some(3);
    assert!(replica_sets_to_clean_up(&d, &olds).is_empty());
}

fn condition<'a>(status: &'a DeploymentStatus, type_: &str) -> &'a DeploymentCondition {
    get_condition(status, type_).unwrap_or_else(|| panic!("no {type_} condition"))
}

#[test]
fn status_counts_and_availability() {
    let d = deployment(3, json!(1), json!(1));
    let now = util::now();
    let new = rs("new", 2, 2, 1, None, "new");
    let old = rs("old", 1, 2, 2, None, "old");
    let status = calculate_status(&[&old, &new], Some(&new), &d, &now);
    assert_eq!(
        (
            status.replicas,
            status.updated_replicas,
            status.ready_replicas,
            status.available_replicas,
            status.unavailable_replicas,
            status.observed_generation
        ),
        (Some(4), Some(2), Some(3), Some(3), Some(1), Some(1))
    );
    assert_eq!(
        status.terminating_replicas,
        Some(0),
        "a pointer upstream: 0 is written"
    );
    let all_available = rs("new", 2, 3, 3, None, "new");
    let status = calculate_status(&[&all_available], Some(&all_available), &d, &now);
    assert_eq!(
        status.unavailable_replicas, None,
        "omitempty upstream: 0 is absent"
    );
    let available = condition(&status, CONDITION_AVAILABLE);
    assert_eq!(
        (available.status.as_str(), available.reason.as_deref()),
        ("True", Some(MINIMUM_REPLICAS_AVAILABLE))
    );
    assert_eq!(
        available.message.as_deref(),
        Some("Deployment has minimum availability.")
    );
    let few = rs("new", 2, 3, 1, None, "new");
    let status = calculate_status(&[&few], Some(&few), &d, &now);
    let available = condition(&status, CONDITION_AVAILABLE);
    assert_eq!(
        (available.status.as_str(), available.reason.as_deref()),
        ("False", Some(MINIMUM_REPLICAS_UNAVAILABLE))
    );
    assert_eq!(
        available.message.as_deref(),
        Some("Deployment does not have minimum availability.")
    );
}

#[test]
fn rollout_status_reports_progress_completion_and_timeout() {
    let mut d = deployment(2, json!(1), json!(0));
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(30);
    let t0 = Time(Timestamp::from_second(1000).unwrap());
    let mut old_status = DeploymentStatus {
        replicas: Some(1),
        updated_replicas: Some(1),
        ..Default::default()
    };
    set_condition(
        &mut old_status,
        new_condition(
            CONDITION_PROGRESSING,
            "True",
            NEW_REPLICA_SET_REASON,
            "Created new replica set \"new\"".into(),
            &t0,
        ),
    );
    d.status = Some(old_status);

    // More updated replicas: progressing, lastUpdateTime refreshed, transition time kept.
    let new = rs("new", 2, 2, 0, None, "new");
    let t1 = Time(Timestamp::from_second(1010).unwrap());
    let status = rollout_status(&[&new], Some(&new), &d, &t1);
    let p = condition(&status, CONDITION_PROGRESSING);
    assert_eq!(
        (p.reason.as_deref(), p.message.as_deref()),
        (
            Some(REPLICA_SET_UPDATED_REASON),
            Some("ReplicaSet \"new\" is progressing.")
        )
    );
    assert_eq!(
        (p.last_update_time.as_ref(), p.last_transition_time.as_ref()),
        (Some(&t1), Some(&t0))
    );

    // Nothing changes and the deadline passes: timed out.
    d.status.as_mut().unwrap().replicas = Some(2);
    d.status.as_mut().unwrap().updated_replicas = Some(2);
    let late = Time(Timestamp::from_second(1031).unwrap());
    let status = rollout_status(&[&new], Some(&new), &d, &late);
    let p = condition(&status, CONDITION_PROGRESSING);
    assert_eq!(
        (p.status.as_str(), p.reason.as_deref()),
        ("False", Some(TIMED_OUT_REASON))
    );
    assert_eq!(
        p.message.as_deref(),
        Some("ReplicaSet \"new\" has timed out progressing.")
    );
    let early = Time(Timestamp::from_second(1020).unwrap());
    assert_eq!(
        requeue_stuck_after(
            &d,
            &rollout_status(&[&new], Some(&new), &d, &early),
            early.0
        ),
        Some(std::time::Duration::from_secs(11)),
        "come back when the deadline passes"
    );

    // All available: complete.
    let done = rs("new", 2, 2, 2, None, "new");
    let status = rollout_status(&[&done], Some(&done), &d, &late);
    let p = condition(&status, CONDITION_PROGRESSING);
    assert_eq!(
        (p.status.as_str(), p.reason.as_deref()),
        ("True", Some(NEW_RS_AVAILABLE_REASON))
    );
    assert_eq!(
        p.message.as_deref(),
        Some("ReplicaSet \"new\" has successfully progressed.")
    );
    assert_eq!(requeue_stuck_after(&d, &status, late.0), None);

    // Without a deadline there is no Progressing condition.
    d.spec.as_mut().unwrap().progress_deadline_seconds = None;
    assert!(
        get_condition(
            &rollout_status(&[&done], Some(&done), &d, &late),
            CONDITION_PROGRESSING
        )
        .is_none()
    );
}

#[test]
fn replica_failures_come_from_the_new_replica_set_first() {
    let d = deployment(1, json!(1), json!(0));
    let failing = |name: &str, message: &str| {
        let mut rs = rs(name, 1, 1, 0, None, name);
        rs.status.as_mut().unwrap().conditions = Some(vec![serde_json::from_value(json!({
            "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": message
        }))
        .unwrap()]);
        rs
    };
    let old = failing("old", "old failed");
    let new = failing("new", "new failed");
    let status = rollout_status(&[&old, &new], Some(&new), &d, &util::now());
    assert_eq!(
        condition(&status, CONDITION_REPLICA_FAILURE)
            .message
            .as_deref(),
        Some("new failed")
    );
    let healthy = rs("new", 2, 1, 0, None, "new");
    let status = rollout_status(&[&old, &healthy], Some(&healthy), &d, &util::now());
    assert_eq!(
        condition(&status, CONDITION_REPLICA_FAILURE)
            .message
            .as_deref(),
        Some("old failed")
    );
}
