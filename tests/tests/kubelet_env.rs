//! The environment ferrokube-kubelet gives containers from the cluster: the Service variables upstream's
//! kubelet sets (`<NAME>_SERVICE_HOST`, `<NAME>_SERVICE_PORT`, the docker-link `<NAME>_PORT...` ones) for the
//! Services of the pod's namespace, and always those of the `kubernetes` Service in `default`, through
//! which in-cluster clients find the apiserver.

use std::collections::BTreeMap;
use std::time::Duration;

use ferrokube_cluster::Identity;
use ferrokube_cluster::testing::{TestNamespace, shared_control_plane};
use ferrokube_tests::kubelet::TestNode;
use ferrokube_tests::scheduling::{default_service_account, eventually};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};

const NODE: &str = "node-1";
const BRIDGE: &str = "fk-env0";
const POD_CIDR: &str = "10.241.0.0/24";

/// A busybox pod that prints its environment and exits; `spec` merged into its spec.
fn env_pod(name: &str, spec: Value) -> Pod {
    let mut pod = json!({
        "metadata": {"name": name},
        "spec": {
            "nodeName": NODE,
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 2,
            "containers": [{
                "name": "main",
                "image": "busybox",
                "command": ["sh", "-c", "env"],
                "env": [
                    {"name": "WEB_API_SERVICE_PORT_HTTP", "value": "mine"},
                    {"name": "API", "value": "$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)"},
                ],
            }],
        },
    });
    for (key, value) in spec.as_object().unwrap() {
        pod["spec"][key] = value.clone();
    }
    serde_json::from_value(pod).unwrap()
}

/// Runs `pod` to completion on `node` and returns the environment it printed.
async fn environment_of(node: &TestNode, pods: &Api<Pod>, pod: Pod) -> BTreeMap<String, String> {
    let name = pod.metadata.name.clone().unwrap();
    let created = pods.create(&PostParams::default(), &pod).await.unwrap();
    eventually(
        Duration::from_secs(60),
        &format!("pod {name} to succeed"),
        || async {
            let pod = pods.get(&name).await.ok()?;
            (pod.status?.phase.as_deref() == Some("Succeeded")).then_some(())
        },
    )
    .await;
    let log = std::fs::read_to_string(node.log_file(&created, "main")).unwrap();
    log.lines()
        .filter_map(|line| line.split_once(" stdout F "))
        .filter_map(|(_, var)| var.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn containers_get_the_service_variables_of_their_namespace_and_the_apiserver() {
    let node = TestNode::start(NODE, BRIDGE, POD_CIDR, &[]).await;
    let admin = shared_control_plane()
        .client(&Identity::admin())
        .await
        .unwrap();
    let namespace = TestNamespace::new("kubelet-env").await;
    let ns = namespace.name().to_string();
    default_service_account(&admin, &ns).await;
    let services: Api<Service> = Api::namespaced(admin.clone(), &ns);
    let web = services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "web-api"},
                "spec": {"selector": {"app": "web"}, "ports": [
                    {"name": "http", "port": 8080, "targetPort": 80, "protocol": "TCP"},
                    {"name": "dns", "port": 53, "protocol": "UDP"},
                ]},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let web_ip = web.spec.unwrap().cluster_ip.unwrap();
    services
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "headless"},
                "spec": {"clusterIP": "None", "selector": {"app": "web"},
                    "ports": [{"port": 80}]},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let kubernetes = Api::<Service>::namespaced(admin.clone(), "default")
        .get("kubernetes")
        .await
        .unwrap()
        .spec
        .unwrap();
    let api_ip = kubernetes.cluster_ip.unwrap();
    let api_port = kubernetes.ports.unwrap()[0].port;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);

    let env = environment_of(&node, &pods, env_pod("links", json!({}))).await;
    let expected = [
        ("KUBERNETES_SERVICE_HOST", api_ip.clone()),
        ("KUBERNETES_SERVICE_PORT", api_port.to_string()),
        ("KUBERNETES_SERVICE_PORT_HTTPS", api_port.to_string()),
        ("KUBERNETES_PORT", format!("tcp://{api_ip}:{api_port}")),
        (
            &format!("KUBERNETES_PORT_{api_port}_TCP_ADDR"),
            api_ip.clone(),
        ),
        ("WEB_API_SERVICE_HOST", web_ip.clone()),
        ("WEB_API_SERVICE_PORT", "8080".to_string()),
        ("WEB_API_SERVICE_PORT_DNS", "53".to_string()),
        ("WEB_API_PORT", format!("tcp://{web_ip}:8080")),
        ("WEB_API_PORT_8080_TCP", format!("tcp://{web_ip}:8080")),
        ("WEB_API_PORT_8080_TCP_PROTO", "tcp".to_string()),
        ("WEB_API_PORT_8080_TCP_PORT", "8080".to_string()),
        ("WEB_API_PORT_8080_TCP_ADDR", web_ip.clone()),
        ("WEB_API_PORT_53_UDP", format!("udp://{web_ip}:53")),
        ("WEB_API_PORT_53_UDP_PROTO", "udp".to_string()),
        // The container's own variable wins over the Service's.
        ("WEB_API_SERVICE_PORT_HTTP", "mine".to_string()),
        // `$(VAR)` sees the Service variables.
        ("API", format!("{api_ip}:{api_port}")),
    ];
    for (name, value) in &expected {
        assert_eq!(env.get(*name), Some(value), "{name} in {env:?}");
    }
    assert!(
        !env.keys().any(|k| k.starts_with("HEADLESS_")),
        "a headless Service has no variables: {env:?}"
    );

    // Without service links only the apiserver's remain.
    let env = environment_of(
        &node,
        &pods,
        env_pod("nolinks", json!({"enableServiceLinks": false})),
    )
    .await;
    assert_eq!(env.get("KUBERNETES_SERVICE_HOST"), Some(&api_ip));
    assert_eq!(
        env.get("KUBERNETES_SERVICE_PORT"),
        Some(&api_port.to_string())
    );
    assert_eq!(env.get("API"), Some(&format!("{api_ip}:{api_port}")));
    assert!(
        !env.keys()
            .any(|k| k.starts_with("WEB_API_") && k != "WEB_API_SERVICE_PORT_HTTP"),
        "no variables of the namespace's Services: {env:?}"
    );
}
