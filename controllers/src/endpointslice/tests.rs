//! The reconciler and its helpers, without an apiserver.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use super::endpoints::*;
use super::reconciler::*;
use super::tracker::*;
use crate::pod::Pod;

const SERVICE_UID: &str = "svc-uid";

fn service(extra_spec: Value) -> Service {
    let mut spec = json!({
        "selector": {"app": "web"},
        "clusterIP": "10.0.0.10",
        "ipFamilies": ["IPv4"],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}],
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "ns", "uid": SERVICE_UID, "labels": {"team": "a"},
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": spec,
    }))
    .unwrap()
}

/// A Running pod on node-a with `ip`, Ready as given, exposing `http` on `port`.
fn pod(name: &str, ip: &str, ready: bool, port: i32) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "ns", "uid": format!("{name}-uid"),
                     "labels": {"app": "web"}, "resourceVersion": "1"},
        "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "i",
                 "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}]}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                   "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                                   "lastTransitionTime": "2026-01-01T00:01:00Z"}]},
    }))
    .unwrap()
}

fn terminating(mut pod: Pod) -> Pod {
    pod.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-01-01T00:02:00Z".parse().unwrap(),
    ));
    pod
}

fn node(name: &str, zone: &str) -> Arc<Node> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {LABEL_TOPOLOGY_ZONE: zone}},
        }))
        .unwrap(),
    )
}

fn run(service: &Service, pods: &[Pod], existing: &[EndpointSlice], max: usize) -> Changes {
    let pods: Vec<Arc<Pod>> = pods.iter().cloned().map(Arc::new).collect();
    let existing: Vec<Arc<EndpointSlice>> = existing.iter().cloned().map(Arc::new).collect();
    reconcile(&Input {
        service,
        pods: &pods,
        node: |name: &str| (name == "node-a").then(|| node("node-a", "zone-1")),
        existing: &existing,
        max_endpoints_per_slice: max,
        trigger_time: None,
    })
}

/// Gives created slices names and resourceVersions, as the apiserver would.
fn persist(changes: Changes) -> Vec<EndpointSlice> {
    let mut slices = changes.update;
    for (i, mut slice) in changes.create.into_iter().enumerate() {
        slice.metadata.name = Some(format!("web-{i}"));
        slice.metadata.uid = Some(format!("slice-{i}"));
        slice.metadata.resource_version = Some("5".into());
        slices.push(slice);
    }
    slices
}

fn conditions(endpoint: &Endpoint) -> (bool, bool, bool) {
    let c = endpoint.conditions.clone().unwrap();
    (c.ready.unwrap(), c.serving.unwrap(), c.terminating.unwrap())
}

fn endpoints_by_pod(slices: &[EndpointSlice]) -> BTreeMap<String, Endpoint> {
    slices
        .iter()
        .flat_map(|s| s.endpoints.clone().unwrap_or_default())
        .map(|e| (e.target_ref.clone().unwrap().name.unwrap(), e))
        .collect()
}

#[test]
fn conditions_follow_readiness_and_deletion() {
    let pods = [
        pod("ready", "10.1.0.1", true, 8080),
        pod("unready", "10.1.0.2", false, 8080),
        terminating(pod("leaving", "10.1.0.3", true, 8080)),
        terminating(pod("leaving-unready", "10.1.0.4", false, 8080)),
    ];
    let changes = run(&service(json!({})), &pods, &[], 100);
    assert_eq!(changes.create.len(), 1);
    assert!(changes.update.is_empty() && changes.delete.is_empty());
    let endpoints = endpoints_by_pod(&changes.create);
    assert_eq!(conditions(&endpoints["ready"]), (true, true, false));
    assert_eq!(conditions(&endpoints["unready"]), (false, false, false));
    assert_eq!(conditions(&endpoints["leaving"]), (false, true, true));
    assert_eq!(
        conditions(&endpoints["leaving-unready"]),
        (false, false, true)
    );
    let ready = &endpoints["ready"];
    assert_eq!(ready.addresses, ["10.1.0.1"]);
    assert_eq!(ready.node_name.as_deref(), Some("node-a"));
    assert_eq!(ready.zone.as_deref(), Some("zone-1"));
    let target = ready.target_ref.clone().unwrap();
    assert_eq!(target.kind.as_deref(), Some("Pod"));
    assert_eq!(target.uid.as_deref(), Some("ready-uid"));
    assert_eq!(ready.hostname, None);
}

#[test]
fn publish_not_ready_addresses_makes_every_endpoint_ready() {
    let pods = [
        pod("unready", "10.1.0.2", false, 8080),
        terminating(pod("leaving", "10.1.0.3", false, 8080)),
    ];
    let changes = run(
        &service(json!({"publishNotReadyAddresses": true})),
        &pods,
        &[],
        100,
    );
    let endpoints = endpoints_by_pod(&changes.create);
    assert_eq!(conditions(&endpoints["unready"]), (true, false, false));
    assert_eq!(conditions(&endpoints["leaving"]), (true, false, true));
}

#[test]
fn pods_without_ip_terminal_pods_and_pods_on_unknown_nodes_are_left_out() {
    let mut no_ip = pod("no-ip", "10.1.0.1", true, 8080);
    no_ip.status.as_mut().unwrap().pod_ip = None;
    no_ip.status.as_mut().unwrap().pod_ips = None;
    let mut done = pod("done", "10.1.0.2", true, 8080);
    done.status.as_mut().unwrap().phase = Some("Succeeded".into());
    let mut lost = pod("lost", "10.1.0.3", true, 8080);
    lost.spec.as_mut().unwrap().node_name = Some("gone".into());
    let changes = run(
        &service(json!({})),
        &[no_ip, done, lost.clone(), pod("ok", "10.1.0.4", true, 8080)],
        &[],
        100,
    );
    let endpoints = endpoints_by_pod(&changes.create);
    assert_eq!(endpoints.keys().collect::<Vec<_>>(), ["ok"]);
    assert_eq!(
        changes.errors,
        ["skipping Pod lost for Service ns/web: Node gone Not Found"]
    );
    // Published regardless when the Service asks for unready addresses.
    let changes = run(
        &service(json!({"publishNotReadyAddresses": true})),
        &[lost],
        &[],
        100,
    );
    assert!(changes.errors.is_empty());
    let endpoints = endpoints_by_pod(&changes.create);
    assert_eq!(endpoints["lost"].zone, None);
}

#[test]
fn named_target_ports_resolve_per_pod_into_separate_slices() {
    let mut other_protocol = pod("udp", "10.1.0.5", true, 9999);
    other_protocol.spec.as_mut().unwrap().containers[0]
        .ports
        .as_mut()
        .unwrap()[0]
        .protocol = Some("UDP".into());
    let pods = [
        pod("a", "10.1.0.1", true, 8080),
        pod("b", "10.1.0.2", true, 8080),
        pod("c", "10.1.0.3", true, 9090),
        other_protocol,
    ];
    let changes = run(&service(json!({})), &pods, &[], 100);
    let mut by_port: BTreeMap<Option<i32>, Vec<String>> = BTreeMap::new();
    for slice in &changes.create {
        let ports = slice.ports.clone().unwrap();
        assert!(ports.len() <= 1);
        let port = ports.first().map(|p| {
            assert_eq!(p.name.as_deref(), Some("http"));
            assert_eq!(p.protocol.as_deref(), Some("TCP"));
            p.port.unwrap()
        });
        let names = endpoints_by_pod(std::slice::from_ref(slice));
        by_port.insert(port, names.into_keys().collect());
    }
    assert_eq!(by_port[&Some(8080)], ["a", "b"]);
    assert_eq!(by_port[&Some(9090)], ["c"]);
    // No port of that name and protocol: the endpoint is published without ports.
    assert_eq!(by_port[&None], ["udp"]);
}

#[test]
fn numeric_target_ports_and_sidecar_ports() {
    let svc = service(json!({"ports": [
        {"name": "a", "port": 80, "protocol": "TCP", "targetPort": 8081},
        {"name": "b", "port": 81, "protocol": "TCP", "targetPort": "side"},
    ]}));
    let mut p = pod("p", "10.1.0.1", true, 8080);
    p.spec.as_mut().unwrap().init_containers = Some(vec![
        serde_json::from_value(json!({"name": "s", "restartPolicy": "Always",
            "ports": [{"name": "side", "containerPort": 7000, "protocol": "TCP"}]}))
        .unwrap(),
    ]);
    let ports = endpoint_ports(&svc, &p);
    let got: Vec<(String, i32)> = ports
        .iter()
        .map(|p| (p.name.clone().unwrap(), p.port.unwrap()))
        .collect();
    assert_eq!(got, [("a".to_string(), 8081), ("b".to_string(), 7000)]);
}

#[test]
fn endpoints_are_split_by_max_endpoints_per_slice() {
    let pods: Vec<Pod> = (1..=5)
        .map(|i| pod(&format!("p{i}"), &format!("10.1.0.{i}"), true, 8080))
        .collect();
    let changes = run(&service(json!({})), &pods, &[], 2);
    let mut sizes: Vec<usize> = changes
        .create
        .iter()
        .map(|s| s.endpoints.as_ref().unwrap().len())
        .collect();
    sizes.sort();
    assert_eq!(sizes, [1, 2, 2]);
    assert_eq!(endpoints_by_pod(&changes.create).len(), 5);
}

#[test]
fn new_slices_carry_labels_owner_and_generate_name() {
    let changes = run(
        &service(json!({})),
        &[pod("a", "10.1.0.1", true, 8080)],
        &[],
        100,
    );
    let slice = &changes.create[0];
    assert_eq!(slice.address_type, "IPv4");
    assert_eq!(slice.metadata.generate_name.as_deref(), Some("web-"));
    assert_eq!(slice.metadata.namespace.as_deref(), Some("ns"));
    let labels = slice.metadata.labels.clone().unwrap();
    assert_eq!(labels[LABEL_MANAGED_BY], CONTROLLER_NAME);
    assert_eq!(labels[LABEL_SERVICE_NAME], "web");
    assert_eq!(labels["team"], "a");
    assert!(!labels.contains_key(LABEL_HEADLESS));
    let owner = &slice.metadata.owner_references.clone().unwrap()[0];
    assert_eq!(
        (
            owner.api_version.as_str(),
            owner.kind.as_str(),
            owner.name.as_str(),
            owner.uid.as_str()
        ),
        ("v1", "Service", "web", SERVICE_UID)
    );
    assert_eq!(owner.controller, Some(true));
    assert_eq!(owner.block_owner_deletion, Some(true));

    let headless = run(
        &service(json!({"clusterIP": "None"})),
        &[pod("a", "10.1.0.1", true, 8080)],
        &[],
        100,
    );
    let labels = headless.create[0].metadata.labels.clone().unwrap();
    assert_eq!(labels[LABEL_HEADLESS], "");
}

#[test]
fn an_unchanged_state_needs_no_writes() {
    let svc = service(json!({}));
    let pods = [
        pod("a", "10.1.0.1", true, 8080),
        pod("b", "10.1.0.2", false, 8080),
    ];
    let slices = persist(run(&svc, &pods, &[], 100));
    let changes = run(&svc, &pods, &slices, 100);
    assert!(
        changes.create.is_empty() && changes.update.is_empty() && changes.delete.is_empty(),
        "{changes:?}"
    );
}

#[test]
fn a_readiness_change_updates_the_slice_in_place() {
    let svc = service(json!({}));
    let mut pods = vec![
        pod("a", "10.1.0.1", true, 8080),
        pod("b", "10.1.0.2", true, 8080),
    ];
    let slices = persist(run(&svc, &pods, &[], 100));
    pods[1] = pod("b", "10.1.0.2", false, 8080);
    let changes = run(&svc, &pods, &slices, 100);
    assert!(changes.create.is_empty() && changes.delete.is_empty());
    assert_eq!(changes.update.len(), 1);
    let updated = &changes.update[0];
    assert_eq!(updated.metadata.name.as_deref(), Some("web-0"));
    assert_eq!(updated.metadata.resource_version.as_deref(), Some("5"));
    let endpoints = endpoints_by_pod(&changes.update);
    assert_eq!(conditions(&endpoints["a"]), (true, true, false));
    assert_eq!(conditions(&endpoints["b"]), (false, false, false));

    // Then terminating.
    let slices = changes.update;
    pods[1] = terminating(pod("b", "10.1.0.2", true, 8080));
    let changes = run(&svc, &pods, &slices, 100);
    assert_eq!(changes.update.len(), 1);
    assert_eq!(
        conditions(&endpoints_by_pod(&changes.update)["b"]),
        (false, true, true)
    );
}

#[test]
fn a_new_pod_goes_into_an_existing_slice_with_room_and_a_removed_pod_leaves_it() {
    let svc = service(json!({}));
    let mut pods = vec![pod("a", "10.1.0.1", true, 8080)];
    let slices = persist(run(&svc, &pods, &[], 2));
    pods.push(pod("b", "10.1.0.2", true, 8080));
    let changes = run(&svc, &pods, &slices, 2);
    assert!(changes.create.is_empty() && changes.delete.is_empty());
    assert_eq!(changes.update.len(), 1);
    assert_eq!(endpoints_by_pod(&changes.update).len(), 2);

    // A third does not fit: a new slice, the full one untouched.
    let slices = changes.update;
    pods.push(pod("c", "10.1.0.3", true, 8080));
    let changes = run(&svc, &pods, &slices, 2);
    assert!(changes.update.is_empty() && changes.delete.is_empty());
    assert_eq!(changes.create.len(), 1);

    // Removing the only endpoint of a slice deletes it.
    let mut slices = slices;
    slices.extend(persist(Changes {
        create: changes.create,
        ..Changes::default()
    }));
    slices[1].metadata.name = Some("web-1".into());
    pods.pop();
    let changes = run(&svc, &pods, &slices, 2);
    assert!(changes.create.is_empty() && changes.update.is_empty());
    assert_eq!(changes.delete.len(), 1);
    assert_eq!(changes.delete[0].metadata.name.as_deref(), Some("web-1"));
}

#[test]
fn a_service_without_endpoints_gets_one_placeholder_slice() {
    let svc = service(json!({}));
    let changes = run(&svc, &[], &[], 100);
    assert_eq!(changes.create.len(), 1);
    let placeholder = &changes.create[0];
    assert!(placeholder.endpoints.as_ref().unwrap().is_empty());
    assert!(placeholder.ports.as_ref().unwrap().is_empty());
    let slices = persist(changes);
    let again = run(&svc, &[], &slices, 100);
    assert!(again.create.is_empty() && again.update.is_empty() && again.delete.is_empty());

    // Pods appear: the placeholder is reused (an update, not a delete and a create).
    let changes = run(&svc, &[pod("a", "10.1.0.1", true, 8080)], &slices, 100);
    assert!(changes.create.is_empty() && changes.delete.is_empty());
    assert_eq!(changes.update.len(), 1);
    assert_eq!(changes.update[0].metadata.name.as_deref(), Some("web-0"));
    assert_eq!(changes.update[0].ports.as_ref().unwrap().len(), 1);
}

#[test]
fn slices_of_another_owner_or_address_type_are_deleted() {
    let svc = service(json!({}));
    let mut slices = persist(run(&svc, &[pod("a", "10.1.0.1", true, 8080)], &[], 100));
    let mut foreign = slices[0].clone();
    foreign.metadata.name = Some("old".into());
    foreign.metadata.owner_references.as_mut().unwrap()[0].uid = "previous".into();
    let mut v6 = slices[0].clone();
    v6.metadata.name = Some("v6".into());
    v6.address_type = "IPv6".into();
    slices.push(foreign);
    slices.push(v6);
    let changes = run(&svc, &[pod("a", "10.1.0.1", true, 8080)], &slices, 100);
    let mut deleted: Vec<_> = changes
        .delete
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    deleted.sort();
    assert_eq!(deleted, ["old", "v6"]);
    assert!(changes.create.is_empty() && changes.update.is_empty());
}

#[test]
fn service_label_changes_update_slice_labels() {
    let svc = service(json!({}));
    let pods = [pod("a", "10.1.0.1", true, 8080)];
    let slices = persist(run(&svc, &pods, &[], 100));
    let mut relabelled = svc.clone();
    relabelled.metadata.labels = Some(BTreeMap::from([("team".into(), "b".into())]));
    let changes = run(&relabelled, &pods, &slices, 100);
    assert_eq!(changes.update.len(), 1);
    assert_eq!(
        changes.update[0].metadata.labels.clone().unwrap()["team"],
        "b"
    );
}

#[test]
fn the_trigger_time_is_stamped_or_removed() {
    let svc = service(json!({}));
    let pods = [Arc::new(pod("a", "10.1.0.1", true, 8080))];
    let time: Timestamp = "2026-01-01T00:01:00.5Z".parse().unwrap();
    let changes = reconcile(&Input {
        service: &svc,
        pods: &pods,
        node: |_: &str| Some(node("node-a", "z")),
        existing: &[],
        max_endpoints_per_slice: 100,
        trigger_time: Some(time),
    });
    let annotations = changes.create[0].metadata.annotations.clone().unwrap();
    assert_eq!(
        annotations[LAST_CHANGE_TRIGGER_TIME],
        "2026-01-01T00:01:00.5Z"
    );
}

#[test]
fn creates_are_dropped_for_a_service_being_deleted() {
    let mut svc = service(json!({}));
    svc.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        Timestamp::now(),
    ));
    let changes = run(&svc, &[pod("a", "10.1.0.1", true, 8080)], &[], 100);
    assert!(changes.create.is_empty());
}

#[test]
fn address_types_follow_ip_families() {
    assert_eq!(address_types(&service(json!({}))), ["IPv4"]);
    assert_eq!(
        address_types(&service(json!({"ipFamilies": ["IPv6", "IPv4"]}))),
        ["IPv6", "IPv4"]
    );
    assert_eq!(
        address_types(&service(
            json!({"ipFamilies": null, "clusterIP": "fd00::1"})
        )),
        ["IPv6"]
    );
    assert_eq!(
        address_types(&service(json!({"ipFamilies": null, "clusterIP": "None"}))),
        ["IPv4", "IPv6"]
    );
}

#[test]
fn hostname_is_set_for_pods_in_the_service_subdomain() {
    let mut p = pod("a", "10.1.0.1", true, 8080);
    let spec = p.spec.as_mut().unwrap();
    spec.hostname = Some("host".into());
    spec.subdomain = Some("web".into());
    let endpoint = pod_to_endpoint(&p, None, &service(json!({})), IPV4);
    assert_eq!(endpoint.hostname.as_deref(), Some("host"));
    p.spec.as_mut().unwrap().subdomain = Some("other".into());
    let endpoint = pod_to_endpoint(&p, None, &service(json!({})), IPV4);
    assert_eq!(endpoint.hostname, None);
}

#[test]
fn pod_events_select_the_services_to_sync() {
    let web = Arc::new(service(json!({})));
    let mut db = service(json!({"selector": {"app": "db"}}));
    db.metadata.name = Some("db".into());
    let none = {
        let mut s = service(json!({"selector": null}));
        s.metadata.name = Some("manual".into());
        s
    };
    let services = [web, Arc::new(db), Arc::new(none)];
    let a = pod("a", "10.1.0.1", true, 8080);
    assert_eq!(
        services_to_update(&services, None, Some(&a)),
        ["web".to_string()].into()
    );
    // Nothing that matters changed.
    let mut same = a.clone();
    same.metadata.resource_version = Some("2".into());
    assert!(services_to_update(&services, Some(&a), Some(&same)).is_empty());
    // Readiness changed.
    let mut unready = pod("a", "10.1.0.1", false, 8080);
    unready.metadata.resource_version = Some("2".into());
    assert_eq!(
        services_to_update(&services, Some(&a), Some(&unready)),
        ["web".to_string()].into()
    );
    // Moved to another Service: both.
    let mut moved = a.clone();
    moved.metadata.resource_version = Some("2".into());
    moved.metadata.labels = Some(BTreeMap::from([("app".into(), "db".into())]));
    assert_eq!(
        services_to_update(&services, Some(&a), Some(&moved)),
        ["db".to_string(), "web".to_string()].into()
    );
}

#[test]
fn trigger_times_report_the_earliest_new_change() {
    let tracker = TriggerTimeTracker::default();
    let svc = service(json!({}));
    let pods = vec![Arc::new(pod("a", "10.1.0.1", true, 8080))];
    let created: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    assert_eq!(tracker.compute(&svc, &pods), Some(created));
    assert_eq!(tracker.compute(&svc, &pods), None);
    let mut later = pod("a", "10.1.0.1", false, 8080);
    later.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].last_transition_time =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-01-01T00:05:00Z".parse().unwrap(),
        ));
    assert_eq!(
        tracker.compute(&svc, &[Arc::new(later)]),
        Some("2026-01-01T00:05:00Z".parse().unwrap())
    );
}

#[test]
fn the_slice_tracker_notices_a_lagging_cache() {
    let tracker = SliceTracker::default();
    let svc = service(json!({}));
    let mut slice = persist(run(&svc, &[], &[], 100)).remove(0);
    slice.metadata.generation = Some(2);
    let key = ("ns".to_string(), "web".to_string());
    tracker.update(&slice);
    assert!(tracker.stale(&key, &[]), "a slice we made is missing");
    let mut old = slice.clone();
    old.metadata.generation = Some(1);
    assert!(tracker.stale(&key, &[Arc::new(old)]));
    assert!(!tracker.stale(&key, &[Arc::new(slice.clone())]));
    assert!(!tracker.should_sync(&slice));
    tracker.expect_deletion(&slice);
    assert!(tracker.stale(&key, &[Arc::new(slice.clone())]));
    assert!(!tracker.stale(&key, &[]));
    assert!(tracker.handle_deletion(&slice), "our own deletion");
    tracker.update(&slice);
    assert!(!tracker.handle_deletion(&slice), "someone else's deletion");
}
