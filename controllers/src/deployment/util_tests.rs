use super::*;
use serde_json::json;

pub(crate) fn deployment(
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
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
        }
    }))
    .unwrap()
}

fn rs_with_annotations(annotations: serde_json::Value) -> ReplicaSet {
    serde_json::from_value(json!({"metadata": {"name": "r", "annotations": annotations}})).unwrap()
}

#[test]
fn fenceposts_round_surge_up_and_unavailable_down() {
    let int = IntOrString::Int;
    let pct = |s: &str| IntOrString::String(s.to_string());
    type Case = (Option<IntOrString>, Option<IntOrString>, i32, (i32, i32));
    let cases: &[Case] = &[
        (Some(int(1)), Some(int(1)), 10, (1, 1)),
        (Some(pct("25%")), Some(pct("25%")), 10, (3, 2)),
        (Some(pct("25%")), Some(pct("25%")), 4, (1, 1)),
        (Some(pct("10%")), Some(pct("10%")), 5, (1, 0)),
        (Some(int(0)), Some(int(0)), 3, (0, 1)),
        (Some(pct("0%")), Some(pct("1%")), 50, (0, 1)),
        (None, None, 3, (0, 1)),
        (Some(pct("100%")), Some(pct("0%")), 3, (3, 0)),
        (Some(pct("33%")), Some(pct("33%")), 10, (4, 3)),
    ];
    for (surge, unavailable, desired, want) in cases {
        assert_eq!(
            resolve_fenceposts(surge.as_ref(), unavailable.as_ref(), *desired).unwrap(),
            *want,
            "surge {surge:?} unavailable {unavailable:?} desired {desired}"
        );
    }
    assert!(resolve_fenceposts(Some(&pct("25")), None, 4).is_err());
}

#[test]
fn max_surge_and_unavailable_of_deployments() {
    let d = deployment(10, json!("25%"), json!("25%"));
    assert_eq!((max_surge(&d), max_unavailable(&d)), (3, 2));
    let zero = deployment(0, json!(1), json!(5));
    assert_eq!(max_unavailable(&zero), 0, "no replicas, none unavailable");
    let capped = deployment(2, json!(0), json!(5));
    assert_eq!(max_unavailable(&capped), 2, "never more than replicas");
    let mut recreate = d.clone();
    recreate.spec.as_mut().unwrap().strategy =
        serde_json::from_value(json!({"type": "Recreate"})).unwrap();
    assert_eq!((max_surge(&recreate), max_unavailable(&recreate)), (0, 0));
}

#[test]
fn conditions_keep_transition_time_for_the_same_status() {
    let t1 = Time(Timestamp::from_second(100).unwrap());
    let t2 = Time(Timestamp::from_second(200).unwrap());
    let mut status = DeploymentStatus::default();
    set_condition(
        &mut status,
        new_condition(
            CONDITION_PROGRESSING,
            "True",
            NEW_REPLICA_SET_REASON,
            "a".into(),
            &t1,
        ),
    );
    // Same status and reason: untouched.
    set_condition(
        &mut status,
        new_condition(
            CONDITION_PROGRESSING,
            "True",
            NEW_REPLICA_SET_REASON,
            "b".into(),
            &t2,
        ),
    );
    let c = get_condition(&status, CONDITION_PROGRESSING).unwrap();
    assert_eq!(
        (c.message.as_deref(), c.last_update_time.as_ref()),
        (Some("a"), Some(&t1))
    );
    // Same status, new reason: transition time kept, update time new.
    set_condition(
        &mut status,
        new_condition(
            CONDITION_PROGRESSING,
            "True",
            NEW_RS_AVAILABLE_REASON,
            "c".into(),
            &t2,
        ),
    );
    let c = get_condition(&status, CONDITION_PROGRESSING).unwrap();
    assert_eq!(
        (c.last_transition_time.as_ref(), c.last_update_time.as_ref()),
        (Some(&t1), Some(&t2))
    );
    // New status: both new.
    set_condition(
        &mut status,
        new_condition(
            CONDITION_PROGRESSING,
            "False",
            TIMED_OUT_REASON,
            "d".into(),
            &t2,
        ),
    );
    assert_eq!(
        get_condition(&status, CONDITION_PROGRESSING)
            .unwrap()
            .last_transition_time
            .as_ref(),
        Some(&t2)
    );
    remove_condition(&mut status, CONDITION_PROGRESSING);
    assert!(status.conditions.is_none());
}

#[test]
fn revisions_and_revision_history() {
    let d = deployment(3, json!(1), json!(0));
    let mut rs = rs_with_annotations(json!({REVISION_ANNOTATION: "2"}));
    assert!(set_new_replica_set_annotations(&d, &mut rs, 5, true, 2000));
    let a = rs.metadata.annotations.clone().unwrap();
    assert_eq!(a[REVISION_ANNOTATION], "5");
    assert_eq!(a[REVISION_HISTORY_ANNOTATION], "2");
    assert!(
        !a.contains_key(DESIRED_REPLICAS_ANNOTATION),
        "an existing ReplicaSet keeps its replicas annotations"
    );
    assert!(set_new_replica_set_annotations(&d, &mut rs, 7, true, 2000));
    assert_eq!(
        rs.metadata.annotations.as_ref().unwrap()[REVISION_HISTORY_ANNOTATION],
        "2,5"
    );
    assert!(
        !set_new_replica_set_annotations(&d, &mut rs, 7, true, 2000),
        "same revision: no change"
    );
    // The history is cut from the front to fit the limit.
    set_new_replica_set_annotations(&d, &mut rs, 9, true, 4);
    assert_eq!(
        rs.metadata.annotations.as_ref().unwrap()[REVISION_HISTORY_ANNOTATION],
        "5,7"
    );

    let mut fresh = rs_with_annotations(json!({}));
    set_new_replica_set_annotations(&d, &mut fresh, 1, false, 2000);
    let a = fresh.metadata.annotations.unwrap();
    assert_eq!(
        (
            a[REVISION_ANNOTATION].as_str(),
            a[DESIRED_REPLICAS_ANNOTATION].as_str(),
            a[MAX_REPLICAS_ANNOTATION].as_str()
        ),
        ("1", "3", "4")
    );
    assert!(!a.contains_key(REVISION_HISTORY_ANNOTATION));

    let rss = [
        rs_with_annotations(json!({REVISION_ANNOTATION: "3"})),
        rs_with_annotations(json!({REVISION_ANNOTATION: "1"})),
        rs_with_annotations(json!({REVISION_ANNOTATION: "7"})),
        rs_with_annotations(json!({REVISION_ANNOTATION: "x"})),
    ];
    assert_eq!((max_revision(&rss), last_revision(&rss)), (7, 3));
}

#[test]
fn deployment_annotations_are_copied_except_the_controllers_own() {
    let mut d = deployment(1, json!(1), json!(0));
    d.metadata.annotations = Some(
        [
            ("team", "a"),
            (REVISION_ANNOTATION, "9"),
            (LAST_APPLIED_CONFIG, "{}"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
    );
    let mut rs = rs_with_annotations(json!({}));
    set_new_replica_set_annotations(&d, &mut rs, 1, true, 2000);
    let a = rs.metadata.annotations.clone().unwrap();
    assert_eq!(a.get("team").map(String::as_str), Some("a"));
    assert_eq!(a[REVISION_ANNOTATION], "1");
    assert!(!a.contains_key(LAST_APPLIED_CONFIG));

    let old = rs_with_annotations(json!({"team": "b", REVISION_ANNOTATION: "1"}));
    set_deployment_annotations_to(&mut d, &old);
    let a = d.metadata.annotations.unwrap();
    assert_eq!(
        (a["team"].as_str(), a[REVISION_ANNOTATION].as_str()),
        ("b", "9")
    );
}

#[test]
fn templates_compare_without_the_hash_label() {
    let d = deployment(1, json!(1), json!(0));
    let template = deployment_template(&d);
    let mut hashed = template.clone();
    hashed
        .metadata
        .as_mut()
        .unwrap()
        .labels
        .as_mut()
        .unwrap()
        .insert(DEFAULT_DEPLOYMENT_UNIQUE_LABEL_KEY.into(), "abc".into());
    assert!(equal_ignore_hash(&template, &hashed));
    let mut other = hashed.clone();
    other.spec.as_mut().unwrap().containers[0].image = Some("j".into());
    assert!(!equal_ignore_hash(&template, &other));
    // nil and empty are the same to Go's semantic equality.
    let mut empty_annotations = template.clone();
    empty_annotations.metadata.as_mut().unwrap().annotations = Some(Default::default());
    assert!(equal_ignore_hash(&template, &empty_annotations));
}

#[test]
fn progress_and_completion() {
    let mut d = deployment(3, json!(1), json!(0));
    d.status = Some(DeploymentStatus {
        replicas: Some(3),
        updated_replicas: Some(1),
        available_replicas: Some(2),
        ..Default::default()
    });
    let done = DeploymentStatus {
        replicas: Some(3),
        updated_replicas: Some(3),
        available_replicas: Some(3),
        observed_generation: Some(1),
        ..Default::default()
    };
    assert!(deployment_complete(&d, &done));
    assert!(!deployment_complete(
        &d,
        &DeploymentStatus {
            observed_generation: Some(0),
            ..done.clone()
        }
    ));
    assert!(deployment_progressing(
        &d,
        &DeploymentStatus {
            updated_replicas: Some(2),
            replicas: Some(3),
            ..Default::default()
        }
    ));
    assert!(!deployment_progressing(
        &d,
        &DeploymentStatus {
            replicas: Some(3),
            updated_replicas: Some(1),
            available_replicas: Some(2),
            ..Default::default()
        }
    ));

    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(10);
    let mut status = DeploymentStatus::default();
    let t = Time(Timestamp::from_second(1000).unwrap());
    set_condition(
        &mut status,
        new_condition(
            CONDITION_PROGRESSING,
            "True",
            REPLICA_SET_UPDATED_REASON,
            String::new(),
            &t,
        ),
    );
    assert!(!deployment_timed_out(
        &d,
        &status,
        Timestamp::from_second(1010).unwrap()
    ));
    assert!(deployment_timed_out(
        &d,
        &status,
        Timestamp::from_second(1011).unwrap()
    ));
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(i32::MAX);
    assert!(!deployment_timed_out(
        &d,
        &status,
        Timestamp::from_second(99999).unwrap()
    ));
}
