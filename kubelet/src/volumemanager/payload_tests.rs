use super::*;
use serde_json::json;

fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

fn item(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
    KeyToPath {
        key: key.to_string(),
        path: path.to_string(),
        mode,
    }
}

#[test]
fn without_items_every_key_is_a_file_with_the_default_mode() {
    let payload = keyed_payload(
        "configmap",
        &data(&[("a", "1"), ("b", "2")]),
        None,
        0o400,
        false,
    )
    .unwrap();
    assert_eq!(payload.len(), 2);
    assert_eq!(
        payload["a"],
        FileProjection {
            data: b"1".to_vec(),
            mode: 0o400,
            ..FileProjection::default()
        }
    );
}

#[test]
fn items_choose_keys_paths_and_modes() {
    let items = [
        item("a", "dir/first", Some(0o600)),
        item("b", "second", None),
    ];
    let payload = keyed_payload(
        "configmap",
        &data(&[("a", "1"), ("b", "2"), ("c", "3")]),
        Some(&items),
        DEFAULT_MODE,
        false,
    )
    .unwrap();
    assert_eq!(payload.keys().collect::<Vec<_>>(), ["dir/first", "second"]);
    assert_eq!(payload["dir/first"].mode, 0o600);
    assert_eq!(payload["second"].mode, 0o644);
}

#[test]
fn a_missing_item_key_fails_unless_optional() {
    let items = [item("nope", "x", None)];
    let err =
        keyed_payload("configmap", &data(&[]), Some(&items), DEFAULT_MODE, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "configmap references non-existent config key: nope"
    );
    let err = keyed_payload("secret", &data(&[]), Some(&items), DEFAULT_MODE, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "secret references non-existent secret key: nope"
    );
    assert!(
        keyed_payload("configmap", &data(&[]), Some(&items), DEFAULT_MODE, true)
            .unwrap()
            .is_empty()
    );
}

fn pod() -> Pod {
    serde_json::from_value(json!({
        "metadata": {
            "name": "p", "namespace": "ns", "uid": "u-1",
            "labels": {"b": "two", "a": "o\"ne"},
            "annotations": {"k": "v"},
        },
        "spec": {
            "nodeName": "n1",
            "containers": [{
                "name": "main",
                "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
            }],
        },
    }))
    .unwrap()
}

#[test]
fn downward_fields_and_label_maps() {
    let pod = pod();
    assert_eq!(
        downward_field(&pod, "metadata.labels").unwrap(),
        "a=\"o\\\"ne\"\nb=\"two\""
    );
    assert_eq!(
        downward_field(&pod, "metadata.annotations").unwrap(),
        "k=\"v\""
    );
    assert_eq!(downward_field(&pod, "metadata.namespace").unwrap(), "ns");
    assert_eq!(downward_field(&pod, "metadata.labels['b']").unwrap(), "two");
    assert_eq!(downward_field(&pod, "spec.nodeName").unwrap(), "n1");
    assert!(downward_field(&pod, "spec.bogus").is_err());
}

#[test]
fn resource_values_are_rounded_up_in_divisor_units() {
    let pod = pod();
    assert_eq!(
        resource_value(&pod, "main", "requests.cpu", None, &BTreeMap::new()).unwrap(),
        "1"
    );
    let milli = Quantity("1m".to_string());
    assert_eq!(
        resource_value(&pod, "main", "requests.cpu", Some(&milli), &BTreeMap::new()).unwrap(),
        "250"
    );
    let mi = Quantity("1Mi".to_string());
    assert_eq!(
        resource_value(&pod, "main", "limits.memory", Some(&mi), &BTreeMap::new()).unwrap(),
        "128"
    );
    assert_eq!(
        resource_value(&pod, "main", "requests.memory", None, &BTreeMap::new()).unwrap(),
        "67108864"
    );
    assert!(resource_value(&pod, "other", "requests.cpu", None, &BTreeMap::new()).is_err());
    assert!(resource_value(&pod, "main", "limits.gpu", None, &BTreeMap::new()).is_err());
}

#[test]
fn downward_payload_uses_item_modes() {
    let items: Vec<DownwardAPIVolumeFile> = serde_json::from_value(json!([
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "ns", "mode": 0o600, "fieldRef": {"fieldPath": "metadata.namespace"}},
        {"path": "cpu", "resourceFieldRef": {"containerName": "main", "resource": "requests.cpu", "divisor": "1m"}},
    ]))
    .unwrap();
    let payload = downward_payload(&pod(), &items, DEFAULT_MODE, &BTreeMap::new()).unwrap();
    assert_eq!(
        payload["ns"],
        FileProjection {
            data: b"ns".to_vec(),
            mode: 0o600,
            ..FileProjection::default()
        }
    );
    assert_eq!(payload["labels"].mode, 0o644);
    assert_eq!(payload["cpu"].data, b"250");
}

#[test]
fn go_quote_escapes_like_strconv() {
    assert_eq!(go_quote("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\x01\"");
}

#[test]
fn the_fs_user_is_the_one_user_every_container_runs_as() {
    let pod =
        |spec: serde_json::Value| -> Pod { serde_json::from_value(json!({"spec": spec})).unwrap() };
    assert_eq!(fs_user(&pod(json!({"containers": [{"name": "a"}]}))), None);
    let same = pod(json!({
        "securityContext": {"runAsUser": 1000, "fsGroup": 2000},
        "containers": [{"name": "a"}, {"name": "b", "securityContext": {"runAsUser": 1000}}],
    }));
    assert_eq!(fs_user(&same), Some(1000));
    assert_eq!(fs_group(&same), Some(2000));
    let different = pod(json!({
        "securityContext": {"runAsUser": 1000},
        "containers": [{"name": "a"}, {"name": "b", "securityContext": {"runAsUser": 1001}}],
    }));
    assert_eq!(fs_user(&different), None);
}

#[test]
fn an_fs_group_makes_files_group_readable() {
    let payload = keyed_payload("secret", &data(&[("k", "v")]), None, 0o600, false).unwrap();
    let owned = with_fs_group(payload.clone(), Some(2000));
    assert_eq!((owned["k"].mode, owned["k"].gid), (0o640, Some(2000)));
    assert_eq!(with_fs_group(payload.clone(), None), payload);
}

#[test]
fn an_unset_limit_reads_as_the_nodes_allocatable() {
    let allocatable = BTreeMap::from([("cpu".to_string(), Quantity("4".to_string()))]);
    assert_eq!(
        resource_value(&pod(), "main", "limits.cpu", None, &allocatable).unwrap(),
        "4"
    );
    assert_eq!(
        resource_value(&pod(), "main", "limits.memory", None, &allocatable).unwrap(),
        "134217728"
    );
}
