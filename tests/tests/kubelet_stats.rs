//! ferrokube-kubelet's `/metrics`, `/metrics/resource` and `/stats/summary` on real containers, read
//! through the apiserver's node proxy as `kubectl get --raw` does: a busy pod (a shell spinning) shows
//! CPU time growing and a working set, an idle one is listed too, the kubelet_* metrics count the running
//! pods; a ServiceAccount without nodes/metrics or nodes/stats is refused by the kubelet itself.

use std::collections::BTreeMap;
use std::time::Duration;

use ferrokube_cluster::Identity;
use ferrokube_cluster::testing::{TestNamespace, shared_control_plane};
use ferrokube_tests::kubectl::kubectl_ok;
use ferrokube_tests::kubelet::{TestNode, direct_kubelet_client, every_pod_gone};
use ferrokube_tests::scheduling::{default_service_account, eventually};
use http::Request;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Node, Pod, ServiceAccount};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const NODE: &str = "node-1";
const BRIDGE: &str = "fk-sta0";
const POD_CIDR: &str = "10.247.0.0/24";

fn pod(name: &str, script: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "nodeName": NODE,
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main",
                "image": "busybox",
                "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", script],
            }],
        },
    }))
    .unwrap()
}

/// GET `path` of the node's kubelet through the apiserver's node proxy.
async fn try_proxy_get(client: &Client, path: &str) -> kube::Result<String> {
    let request = Request::get(format!("/api/v1/nodes/{NODE}/proxy{path}"))
        .body(Vec::new())
        .unwrap();
    client.request_text(request).await
}

async fn proxy_get(client: &Client, path: &str) -> String {
    try_proxy_get(client, path)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// One sample of the Prometheus text: name, labels, value, timestamp.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
    timestamp: Option<i64>,
}

/// The samples of a Prometheus text (label values here hold no spaces, commas or escapes).
fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|line| {
            let (series, rest) = match line.find('}') {
                Some(end) => (&line[..=end], &line[end + 1..]),
                None => line.split_once(' ').unwrap(),
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => {
                    let labels = labels
                        .trim_end_matches('}')
                        .split(',')
                        .filter(|p| !p.is_empty())
                        .map(|pair| {
                            let (k, v) = pair.split_once('=').unwrap();
                            (k.to_string(), v.trim_matches('"').to_string())
                        })
                        .collect();
                    (name, labels)
                }
                None => (series, BTreeMap::new()),
            };
            let mut fields = rest.split_whitespace();
            Sample {
                name: name.to_string(),
                labels,
                value: fields.next().unwrap().parse().unwrap(),
                timestamp: fields.next().map(|t| t.parse().unwrap()),
            }
        })
        .collect()
}

fn find<'a>(samples: &'a [Sample], name: &str, pod: Option<&str>) -> Option<&'a Sample> {
    samples.iter().find(|s| {
        s.name == name && pod.is_none_or(|p| s.labels.get("pod").map(String::as_str) == Some(p))
    })
}

#[tokio::test]
async fn kubelet_serves_metrics_resource_metrics_and_the_stats_summary() {
    let node = TestNode::start(NODE, BRIDGE, POD_CIDR, &[]).await;
    let admin = shared_control_plane()
        .client(&Identity::admin())
        .await
        .unwrap();
    let namespace = TestNamespace::new("kubelet-stats").await;
    let ns = namespace.name();
    default_service_account(&admin, ns).await;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), ns);
    pods.create(
        &PostParams::default(),
        &pod("busy", "while true; do :; done"),
    )
    .await
    .unwrap();
    pods.create(&PostParams::default(), &pod("idle", "sleep 3600"))
        .await
        .unwrap();
    for name in ["busy", "idle"] {
        eventually(
            Duration::from_secs(60),
            &format!("{name} Running"),
            || async {
                let pod = pods.get(name).await.ok()?;
                (pod.status?.phase.as_deref() == Some("Running")).then_some(())
            },
        )
        .await;
    }

    // /metrics/resource: every series metrics-server needs, non-zero, with the stat's time.
    let resource = eventually(
        Duration::from_secs(30),
        "resource metrics for both pods",
        || async {
            let text = try_proxy_get(&admin, "/metrics/resource").await.ok()?;
            let all = samples(&text);
            let busy = find(&all, "container_cpu_usage_seconds_total", Some("busy"))?;
            find(&all, "container_memory_working_set_bytes", Some("idle"))?;
            (busy.value > 0.5).then_some(text)
        },
    )
    .await;
    let all = samples(&resource);
    let now = chrono::Utc::now().timestamp_millis();
    for name in [
        "node_cpu_usage_seconds_total",
        "node_memory_working_set_bytes",
    ] {
        let sample = find(&all, name, None).unwrap_or_else(|| panic!("{name} in {resource}"));
        assert!(sample.value > 0.0, "{sample:?}");
        let at = sample.timestamp.expect("a timestamp");
        assert!((now - at).abs() < 60_000, "{sample:?} at {now}");
    }
    for pod in ["busy", "idle"] {
        for name in [
            "container_cpu_usage_seconds_total",
            "container_memory_working_set_bytes",
            "pod_cpu_usage_seconds_total",
            "pod_memory_working_set_bytes",
        ] {
            let sample = find(&all, name, Some(pod))
                .unwrap_or_else(|| panic!("{name} of {pod} in {resource}"));
            assert!(sample.value > 0.0, "{sample:?}");
            assert_eq!(sample.labels.get("namespace").map(String::as_str), Some(ns));
            assert!(sample.timestamp.is_some(), "{sample:?}");
            if name.starts_with("container_") {
                assert_eq!(sample.labels["container"], "main");
            }
        }
        let start = find(&all, "container_start_time_seconds", Some(pod)).unwrap();
        assert!(start.timestamp.is_none() && (now / 1000 - start.value as i64).abs() < 600);
    }
    assert_eq!(
        find(&all, "resource_scrape_error", None).unwrap().value,
        0.0
    );
    assert!(resource.contains(
        "# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the \
         container in core-seconds\n# TYPE container_cpu_usage_seconds_total counter\n"
    ));
    // The busy container's CPU time grows between scrapes.
    let busy_cpu = find(&all, "container_cpu_usage_seconds_total", Some("busy"))
        .unwrap()
        .value;
    eventually(Duration::from_secs(20), "busy CPU time to grow", || async {
        let all = samples(&proxy_get(&admin, "/metrics/resource").await);
        let now = find(&all, "container_cpu_usage_seconds_total", Some("busy"))?.value;
        (now > busy_cpu + 0.2).then_some(())
    })
    .await;

    // /stats/summary: the node and both pods with CPU and memory.
    // As `kubectl get --raw` reads it.
    let raw = kubectl_ok(&[
        "get",
        "--raw",
        &format!("/api/v1/nodes/{NODE}/proxy/stats/summary"),
    ])
    .await;
    let summary: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(summary["node"]["nodeName"], NODE);
    assert!(summary["node"]["cpu"]["usageCoreNanoSeconds"].as_u64() > Some(0));
    assert!(summary["node"]["memory"]["workingSetBytes"].as_u64() > Some(0));
    let listed = summary["pods"].as_array().unwrap();
    for name in ["busy", "idle"] {
        let pod = listed
            .iter()
            .find(|p| p["podRef"]["name"] == name && p["podRef"]["namespace"] == ns)
            .unwrap_or_else(|| panic!("{name} in {summary:#}"));
        assert!(pod["podRef"]["uid"].as_str().is_some_and(|u| !u.is_empty()));
        assert!(
            pod["cpu"]["usageCoreNanoSeconds"].as_u64() > Some(0),
            "{pod:#}"
        );
        assert!(
            pod["memory"]["workingSetBytes"].as_u64() > Some(0),
            "{pod:#}"
        );
        let containers = pod["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 1, "{pod:#}");
        assert_eq!(containers[0]["name"], "main");
        assert!(containers[0]["cpu"]["usageCoreNanoSeconds"].as_u64() > Some(0));
        assert!(containers[0]["memory"]["workingSetBytes"].as_u64() > Some(0));
        assert!(pod["network"]["rxBytes"].as_u64().is_some(), "{pod:#}");
    }
    // The sampler has a previous sample by now: the spinning container uses about a core.
    let busy = listed
        .iter()
        .find(|p| p["podRef"]["name"] == "busy")
        .unwrap();
    let cores = busy["containers"][0]["cpu"]["usageNanoCores"].as_u64();
    assert!(cores > Some(200_000_000), "{busy:#}");
    let only: Value =
        serde_json::from_str(&proxy_get(&admin, "/stats/summary?only_cpu_and_memory=true").await)
            .unwrap();
    assert!(only["pods"][0].get("network").is_none(), "{only:#}");

    // /metrics: the kubelet's own metrics.
    let metrics = proxy_get(&admin, "/metrics").await;
    let all = samples(&metrics);
    let running = find(&all, "kubelet_running_pods", None).unwrap();
    assert!(running.value >= 2.0, "{running:?}");
    let containers = all
        .iter()
        .find(|s| {
            s.name == "kubelet_running_containers"
                && s.labels.get("container_state").map(String::as_str) == Some("running")
        })
        .unwrap();
    assert!(containers.value >= 2.0, "{containers:?}");
    assert_eq!(
        find(&all, "kubelet_node_name", None).unwrap().labels["node"],
        NODE
    );
    assert!(
        find(&all, "kubelet_started_pods_total", None)
            .unwrap()
            .value
            >= 2.0
    );
    for name in [
        "kubelet_pod_start_duration_seconds_count",
        "kubelet_pod_start_sli_duration_seconds_count",
        "kubelet_pod_worker_duration_seconds_count",
        "kubelet_pod_worker_start_duration_seconds_count",
        "kubelet_started_containers_total",
        "kubelet_runtime_operations_total",
        "rest_client_requests_total",
    ] {
        let sample = find(&all, name, None).unwrap_or_else(|| panic!("{name} in {metrics}"));
        assert!(sample.value >= 1.0, "{sample:?}");
    }
    assert!(metrics.contains("# TYPE kubelet_pod_start_duration_seconds histogram\n"));
    assert!(metrics.contains("kubelet_pod_start_duration_seconds_bucket{le=\"0.5\"}"));

    forbidden_without_permission(&admin, ns).await;

    pods.delete_collection(&DeleteParams::default(), &Default::default())
        .await
        .unwrap();
    every_pod_gone(&pods, Duration::from_secs(60)).await;
    namespace.delete().await;
    drop(node);
}

/// A ServiceAccount's token, sent to the kubelet itself, is refused on each endpoint with upstream's
/// Forbidden text naming the subresource.
async fn forbidden_without_permission(admin: &Client, ns: &str) {
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns);
    let account: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "nobody"}})).unwrap();
    accounts
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 600}}))
            .unwrap();
    let token = accounts
        .create_token_request("nobody", &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token
        .unwrap();
    let node = Api::<Node>::all(admin.clone()).get(NODE).await.unwrap();
    let auth = kube::config::AuthInfo {
        token: Some(token.into()),
        ..Default::default()
    };
    let client = direct_kubelet_client(&node, auth).await;
    let user = format!("system:serviceaccount:{ns}:nobody");
    for (path, subresource) in [
        ("/metrics", "metrics"),
        ("/metrics/resource", "metrics"),
        ("/stats/summary", "stats"),
    ] {
        let request = Request::get(path).body(Vec::new()).unwrap();
        match client.request_text(request).await {
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 403, "{path}: {status:?}");
                assert_eq!(
                    status.message,
                    format!(
                        "Forbidden (user={user}, verb=get, resource=nodes, subresource(s)=[{subresource}])"
                    ),
                    "{path}"
                );
            }
            other => panic!("{path}: {other:?}"),
        }
    }
}
