//! The serviceaccount, root-ca-cert-publisher and endpointslice controllers of ferrokube-controller-manager
//! against the real apiserver: what every namespace gets, and EndpointSlices following pods (no kubelet:
//! the test writes pod status itself).

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use ferrokube_cluster::Identity;
use ferrokube_cluster::testing::{TestNamespace, shared_control_plane};
use ferrokube_tests::controllers::ControllerManagerProcess;
use ferrokube_tests::scheduling::{admin, create_node, eventually, exclusive};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const CONTROLLERS: &str = "serviceaccount,root-ca-cert-publisher,endpointslice";
const QUICKLY: Duration = Duration::from_secs(20);
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// The CA bundle in the controller-manager's kubeconfig, as its certificate-authority-data carries it.
fn kubeconfig_ca() -> String {
    let path = shared_control_plane()
        .kubeconfig(&Identity::controller_manager())
        .unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(path).unwrap();
    let cluster = kubeconfig.clusters[0].cluster.clone().unwrap();
    let data = cluster.certificate_authority_data.unwrap();
    let pem = base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap();
    String::from_utf8(pem).unwrap()
}

async fn default_service_account(client: &Client, namespace: &str) -> ServiceAccount {
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), namespace);
    eventually(QUICKLY, "the default ServiceAccount", || async {
        accounts.get_opt("default").await.unwrap()
    })
    .await
}

async fn root_ca_config_map(client: &Client, namespace: &str, ca: &str) -> ConfigMap {
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), namespace);
    eventually(
        QUICKLY,
        "kube-root-ca.crt with the cluster's CA",
        || async {
            let cm = config_maps.get_opt("kube-root-ca.crt").await.unwrap()?;
            let data = cm.data.clone()?;
            (data.len() == 1 && data.get("ca.crt").map(String::as_str) == Some(ca)).then_some(cm)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn every_namespace_gets_its_default_service_account_and_root_ca() {
    // One controller-manager at a time: two endpointslice controllers would fight over the same slices.
    let _turn = exclusive().await;
    let manager = ControllerManagerProcess::start("sync-namespaces", CONTROLLERS, &[]);
    let ns = TestNamespace::new("sync-ns").await;
    let client = admin().await;
    let ca = kubeconfig_ca();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");

    let account = default_service_account(&client, &ns.name).await;
    let cm = root_ca_config_map(&client, &ns.name, &ca).await;
    let annotations = cm.metadata.annotations.unwrap_or_default();
    assert_eq!(
        annotations
            .get("kubernetes.io/description")
            .map(String::as_str),
        Some(DESCRIPTION),
        "{}",
        manager.log_tail()
    );

    // Deleted: both come back.
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), &ns.name);
    accounts
        .delete("default", &DeleteParams::default())
        .await
        .unwrap();
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), &ns.name);
    config_maps
        .delete("kube-root-ca.crt", &DeleteParams::default())
        .await
        .unwrap();
    let recreated = eventually(QUICKLY, "a new default ServiceAccount", || async {
        let sa = accounts.get_opt("default").await.unwrap()?;
        (sa.metadata.uid != account.metadata.uid).then_some(sa)
    })
    .await;
    assert!(recreated.metadata.uid.is_some());
    let restored = root_ca_config_map(&client, &ns.name, &ca).await;
    assert_ne!(restored.metadata.uid, cm.metadata.uid);

    // Modified: restored, the description too, other metadata kept.
    let tamper = json!({
        "metadata": {"labels": {"mine": "yes"}, "annotations": {"kubernetes.io/description": null}},
        "data": {"ca.crt": "not a CA", "extra": "x"},
    });
    config_maps
        .patch(
            "kube-root-ca.crt",
            &PatchParams::default(),
            &Patch::Merge(tamper),
        )
        .await
        .unwrap();
    let repaired = eventually(QUICKLY, "kube-root-ca.crt repaired", || async {
        let cm = config_maps.get("kube-root-ca.crt").await.unwrap();
        let described = cm
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("kubernetes.io/description"))
            .is_some_and(|d| d == DESCRIPTION);
        let data = cm.data.clone().unwrap_or_default();
        (described && data == BTreeMap::from([("ca.crt".to_string(), ca.clone())])).then_some(cm)
    })
    .await;
    assert_eq!(repaired.metadata.labels.unwrap()["mine"], "yes");
    ns.delete().await;
}

/// Sets a pod's status as a kubelet would: Running with `ip`, Ready as given (transition at `since`).
async fn set_pod_status(pods: &Api<Pod>, name: &str, ip: &str, ready: bool, since: &str) {
    let status = if ready { "True" } else { "False" };
    let patch = json!({"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": status, "lastTransitionTime": since}],
    }});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
}

/// A pod of app `web` on `node` whose container names port `http` as `port`, with `finalizers`.
fn web_pod(name: &str, node: &str, port: i32, finalizers: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "web"}, "finalizers": finalizers},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
                 "ports": [{"name": "http", "containerPort": port}]}]},
    }))
    .unwrap()
}

/// The managed slices of Service `service`.
async fn slices_of(client: &Client, namespace: &str, service: &str) -> Vec<EndpointSlice> {
    let selector = format!("kubernetes.io/service-name={service}");
    Api::<EndpointSlice>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(&selector))
        .await
        .unwrap()
        .items
}

/// Each endpoint of `slices` by pod name, with its slice's name and port.
fn endpoints(slices: &[EndpointSlice]) -> BTreeMap<String, (String, Option<i32>, Endpoint)> {
    let mut all = BTreeMap::new();
    for slice in slices {
        let port = slice
            .ports
            .as_ref()
            .and_then(|p| p.first())
            .and_then(|p| p.port);
        for endpoint in slice.endpoints.clone().unwrap_or_default() {
            let pod = endpoint.target_ref.clone().unwrap().name.unwrap();
            let name = slice.metadata.name.clone().unwrap();
            all.insert(pod, (name, port, endpoint));
        }
    }
    all
}

fn conditions(endpoint: &Endpoint) -> (Option<bool>, Option<bool>, Option<bool>) {
    let c = endpoint.conditions.clone().unwrap_or_default();
    (c.ready, c.serving, c.terminating)
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoint_slices_follow_pods_of_services_with_selectors() {
    let _turn = exclusive().await;
    let manager = ControllerManagerProcess::start("sync-slices", CONTROLLERS, &[]);
    let ns = TestNamespace::new("sync-slices").await;
    let client = admin().await;
    // The serviceaccount controller provides what pod admission asks for.
    default_service_account(&client, &ns.name).await;
    let node = "slices-node";
    create_node(
        &client,
        node,
        "4",
        json!({"topology.kubernetes.io/zone": "zone-a"}),
        json!([]),
    )
    .await;

    let services = Api::<Service>::namespaced(client.clone(), &ns.name);
    let manual: Service = serde_json::from_value(json!({
        "metadata": {"name": "manual"},
        "spec": {"ports": [{"port": 80}]},
    }))
    .unwrap();
    services
        .create(&PostParams::default(), &manual)
        .await
        .unwrap();
    let web: Service = serde_json::from_value(json!({
        "metadata": {"name": "web", "labels": {"tier": "front"}},
        "spec": {"selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }))
    .unwrap();
    let web = services.create(&PostParams::default(), &web).await.unwrap();

    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name);
    let hold = json!(["ferrokube.test/hold"]);
    pods.create(
        &PostParams::default(),
        &web_pod("web-1", node, 8080, json!(null)),
    )
    .await
    .unwrap();
    pods.create(&PostParams::default(), &web_pod("web-2", node, 9090, hold))
        .await
        .unwrap();
    set_pod_status(&pods, "web-1", "10.244.0.11", true, "2026-01-01T00:00:01Z").await;
    set_pod_status(&pods, "web-2", "10.244.0.12", true, "2026-01-01T00:00:02Z").await;

    // Both pods, each in the slice of the port its named targetPort resolves to.
    let slices = eventually(QUICKLY, "slices with both pods", || async {
        let slices = slices_of(&client, &ns.name, "web").await;
        let found = endpoints(&slices);
        (found.len() == 2
            && found
                .values()
                .all(|(_, _, e)| conditions(e).0 == Some(true)))
        .then_some(slices)
    })
    .await;
    assert_eq!(slices.len(), 2, "{slices:?}\n{}", manager.log_tail());
    for slice in &slices {
        let labels = slice.metadata.labels.clone().unwrap();
        assert_eq!(
            labels["endpointslice.kubernetes.io/managed-by"],
            "endpointslice-controller.k8s.io"
        );
        assert_eq!(labels["kubernetes.io/service-name"], "web");
        assert_eq!(labels["tier"], "front");
        assert_eq!(slice.address_type, "IPv4");
        assert!(slice.metadata.name.as_deref().unwrap().starts_with("web-"));
        let owner = &slice.metadata.owner_references.clone().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("Service", "web")
        );
        assert_eq!(Some(&owner.uid), web.metadata.uid.as_ref());
        assert_eq!(owner.controller, Some(true));
        assert_eq!(owner.block_owner_deletion, Some(true));
        let annotations = slice.metadata.annotations.clone().unwrap_or_default();
        assert!(
            annotations.contains_key("endpoints.kubernetes.io/last-change-trigger-time"),
            "{annotations:?}"
        );
        let port = &slice.ports.clone().unwrap()[0];
        assert_eq!(port.name.as_deref(), Some("http"));
        assert_eq!(port.protocol.as_deref(), Some("TCP"));
    }
    let found = endpoints(&slices);
    let (web1_slice, port, web1) = &found["web-1"];
    assert_eq!(*port, Some(8080));
    assert_eq!(found["web-2"].1, Some(9090));
    assert_eq!(web1.addresses, ["10.244.0.11"]);
    assert_eq!(conditions(web1), (Some(true), Some(true), Some(false)));
    assert_eq!(web1.node_name.as_deref(), Some(node));
    assert_eq!(web1.zone.as_deref(), Some("zone-a"));

    // Not ready: updated in place.
    set_pod_status(&pods, "web-1", "10.244.0.11", false, "2026-01-01T00:01:00Z").await;
    let (slice, _, _) = eventually(QUICKLY, "web-1 not ready", || async {
        let found = endpoints(&slices_of(&client, &ns.name, "web").await);
        let entry = found.get("web-1")?.clone();
        (conditions(&entry.2) == (Some(false), Some(false), Some(false))).then_some(entry)
    })
    .await;
    assert_eq!(&slice, web1_slice, "the slice is updated, not replaced");

    // Terminating: held by its finalizer, still serving, no longer ready.
    pods.delete("web-2", &DeleteParams::default())
        .await
        .unwrap();
    eventually(QUICKLY, "web-2 terminating", || async {
        let found = endpoints(&slices_of(&client, &ns.name, "web").await);
        let (_, _, endpoint) = found.get("web-2")?;
        (conditions(endpoint) == (Some(false), Some(true), Some(true))).then_some(())
    })
    .await;
    // Gone (no kubelet confirms the deletion: force it): its endpoint and its port's slice go.
    pods.patch(
        "web-2",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    let _ = pods
        .delete("web-2", &DeleteParams::default().grace_period(0))
        .await;
    eventually(QUICKLY, "web-2's slice gone", || async {
        let slices = slices_of(&client, &ns.name, "web").await;
        let found = endpoints(&slices);
        (slices.len() == 1 && found.keys().collect::<Vec<_>>() == ["web-1"]).then_some(())
    })
    .await;

    // The Service without a selector got no slice from the controller.
    assert!(
        slices_of(&client, &ns.name, "manual").await.is_empty(),
        "{}",
        manager.log_tail()
    );

    let _ = pods
        .delete("web-1", &DeleteParams::default().grace_period(0))
        .await;
    let _ = Api::<Node>::all(client.clone())
        .delete(node, &DeleteParams::default())
        .await;
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn max_endpoints_per_slice_splits_endpoints() {
    let _turn = exclusive().await;
    let manager = ControllerManagerProcess::start(
        "sync-max-endpoints",
        CONTROLLERS,
        &["--max-endpoints-per-slice=2"],
    );
    let ns = TestNamespace::new("sync-max").await;
    let client = admin().await;
    default_service_account(&client, &ns.name).await;
    let node = "max-endpoints-node";
    create_node(&client, node, "4", json!({}), json!([])).await;
    let web: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }))
    .unwrap();
    Api::<Service>::namespaced(client.clone(), &ns.name)
        .create(&PostParams::default(), &web)
        .await
        .unwrap();
    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name);
    for i in 1..=5 {
        let name = format!("web-{i}");
        pods.create(
            &PostParams::default(),
            &web_pod(&name, node, 8080, json!(null)),
        )
        .await
        .unwrap();
        let ip = format!("10.244.1.{i}");
        set_pod_status(&pods, &name, &ip, true, "2026-01-01T00:00:01Z").await;
    }
    let slices = eventually(QUICKLY, "5 endpoints in slices", || async {
        let slices = slices_of(&client, &ns.name, "web").await;
        (endpoints(&slices).len() == 5).then_some(slices)
    })
    .await;
    let mut sizes: Vec<usize> = slices
        .iter()
        .map(|s| s.endpoints.as_ref().map_or(0, Vec::len))
        .collect();
    sizes.sort();
    assert_eq!(sizes, [1, 2, 2], "{}", manager.log_tail());
    for i in 1..=5 {
        let _ = pods
            .delete(
                &format!("web-{i}"),
                &DeleteParams::default().grace_period(0),
            )
            .await;
    }
    let _ = Api::<Node>::all(client.clone())
        .delete(node, &DeleteParams::default())
        .await;
    ns.delete().await;
}
