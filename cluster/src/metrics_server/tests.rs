use k8s_openapi::api::core::v1::{PodSpec, Service};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use serde::de::DeserializeOwned;

use super::*;
use crate::addons::api_resource;

fn config() -> Config {
    Config {
        secure_port: 4443,
        host_network: true,
        apiserver: Some(("127.0.0.1".into(), 6443)),
    }
}

fn find(objects: &[Value], kind: &str, name: &str) -> Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
        .clone()
}

fn typed<K: DeserializeOwned>(object: Value) -> K {
    serde_json::from_value(object).unwrap()
}

fn pod_spec(objects: &[Value]) -> PodSpec {
    let deployment: Deployment = typed(find(objects, "Deployment", NAME));
    deployment.spec.unwrap().template.spec.unwrap()
}

#[test]
fn the_manifest_has_upstreams_objects_each_of_a_kind_deploy_knows() {
    let objects = objects(&Config::default()).unwrap();
    let names: Vec<(String, String)> = objects
        .iter()
        .map(|o| {
            let text = |v: &Value| v.as_str().unwrap().to_string();
            (text(&o["kind"]), text(&o["metadata"]["name"]))
        })
        .collect();
    let expected = [
        ("ServiceAccount", "metrics-server"),
        ("ClusterRole", "system:aggregated-metrics-reader"),
        ("ClusterRole", "system:metrics-server"),
        ("RoleBinding", "metrics-server-auth-reader"),
        ("ClusterRoleBinding", "metrics-server:system:auth-delegator"),
        ("ClusterRoleBinding", "system:metrics-server"),
        ("Service", "metrics-server"),
        ("Deployment", "metrics-server"),
        ("APIService", "v1beta1.metrics.k8s.io"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(k, n)| (k.to_string(), n.to_string()))
        .collect();
    assert_eq!(names, expected);
    for object in &objects {
        let kind = object["kind"].as_str().unwrap();
        api_resource(kind).unwrap();
        assert_eq!(object["metadata"]["labels"]["k8s-app"], NAME, "{object}");
        let namespaced = object["metadata"]["namespace"].as_str();
        let cluster_scoped = ["ClusterRole", "ClusterRoleBinding", "APIService"].contains(&kind);
        assert_eq!(namespaced.is_none(), cluster_scoped, "{object}");
        assert!(namespaced.is_none() || namespaced == Some(NAMESPACE));
    }
    // Objects referring to the APIService's backend come before it.
    assert_eq!(objects.last().unwrap()["kind"], "APIService");
}

#[test]
fn rbac_lets_it_scrape_kubelets_delegate_auth_and_be_read_by_viewers() {
    let objects = objects(&Config::default()).unwrap();
    let role: ClusterRole = typed(find(&objects, "ClusterRole", "system:metrics-server"));
    let rules = role.rules.unwrap();
    assert!(rules.iter().any(|r| {
        r.resources.as_deref() == Some(&["nodes/metrics".to_string()]) && r.verbs == ["get"]
    }));
    let reader: ClusterRole = typed(find(
        &objects,
        "ClusterRole",
        "system:aggregated-metrics-reader",
    ));
    let labels = reader.metadata.labels.unwrap();
    for role in ["view", "edit", "admin"] {
        let label = format!("rbac.authorization.k8s.io/aggregate-to-{role}");
        assert_eq!(labels.get(&label).map(String::as_str), Some("true"));
    }
    let delegator: ClusterRoleBinding = typed(find(
        &objects,
        "ClusterRoleBinding",
        "metrics-server:system:auth-delegator",
    ));
    assert_eq!(delegator.role_ref.name, "system:auth-delegator");
    let reader: RoleBinding = typed(find(&objects, "RoleBinding", "metrics-server-auth-reader"));
    assert_eq!(reader.role_ref.kind, "Role");
    assert_eq!(
        reader.role_ref.name,
        "extension-apiserver-authentication-reader"
    );
    for binding in [
        find(&objects, "ClusterRoleBinding", "system:metrics-server"),
        find(
            &objects,
            "ClusterRoleBinding",
            "metrics-server:system:auth-delegator",
        ),
        find(&objects, "RoleBinding", "metrics-server-auth-reader"),
    ] {
        let subject = &binding["subjects"][0];
        assert_eq!(
            (&subject["kind"], &subject["name"], &subject["namespace"]),
            (&"ServiceAccount".into(), &NAME.into(), &NAMESPACE.into())
        );
    }
}

#[test]
fn the_api_service_points_at_the_service_as_upstreams_does() {
    let objects = objects(&Config::default()).unwrap();
    let api_service: APIService = typed(find(&objects, "APIService", API_SERVICE));
    let spec = api_service.spec.unwrap();
    assert_eq!(
        (spec.group.as_deref(), spec.version.as_deref()),
        (Some("metrics.k8s.io"), Some("v1beta1"))
    );
    assert_eq!(spec.insecure_skip_tls_verify, Some(true));
    assert_eq!(
        (spec.group_priority_minimum, spec.version_priority),
        (100, 100)
    );
    let service = spec.service.unwrap();
    assert_eq!(
        (service.namespace.as_deref(), service.name.as_deref()),
        (Some(NAMESPACE), Some(NAME))
    );
    let service: Service = typed(find(&objects, "Service", NAME));
    let spec = service.spec.unwrap();
    let port = &spec.ports.unwrap()[0];
    assert_eq!(port.port, 443);
    assert_eq!(
        port.target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("https".into()))
    );
    let selector = spec.selector.unwrap();
    let pod = typed::<Deployment>(find(&objects, "Deployment", NAME))
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap();
    assert_eq!(Some(selector), pod.labels);
}

#[test]
fn the_deployment_runs_the_local_image_with_ferrokubes_flags_and_port() {
    let spec = pod_spec(&objects(&config()).unwrap());
    assert_eq!(spec.host_network, Some(true));
    assert_eq!(spec.service_account_name.as_deref(), Some(NAME));
    let container = &spec.containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some("ferrokube.local/metrics-server:v0.8.0")
    );
    assert_eq!(container.image_pull_policy.as_deref(), Some("Never"));
    assert_eq!(
        container.command.as_deref(),
        Some(&["/metrics-server".to_string()][..])
    );
    assert_eq!(
        container.args.as_deref().unwrap(),
        [
            "--cert-dir=/tmp",
            "--secure-port=4443",
            "--kubelet-preferred-address-types=InternalIP",
            "--kubelet-use-node-status-port",
            "--metric-resolution=15s",
            "--kubelet-insecure-tls",
        ]
    );
    let port = &container.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.container_port),
        (Some("https"), 4443)
    );
    let env: Vec<(String, String)> = container
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.value.unwrap()))
        .collect();
    assert_eq!(
        env,
        [
            (
                "KUBERNETES_SERVICE_HOST".to_string(),
                "127.0.0.1".to_string()
            ),
            ("KUBERNETES_SERVICE_PORT".to_string(), "6443".to_string()),
        ]
    );
    // Upstream's hardening and probes stay.
    let security = container.security_context.clone().unwrap();
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.run_as_user, Some(1000));
    let probe = container.readiness_probe.clone().unwrap().http_get.unwrap();
    assert_eq!(
        (probe.path.as_deref(), probe.scheme.as_deref()),
        (Some("/readyz"), Some("HTTPS"))
    );
}

#[test]
fn by_default_it_keeps_the_pod_network_and_the_kubernetes_service() {
    let spec = pod_spec(&objects(&Config::default()).unwrap());
    assert_eq!(spec.host_network, None);
    let container = &spec.containers[0];
    assert_eq!(container.env, None);
    assert!(
        container
            .args
            .as_ref()
            .unwrap()
            .contains(&"--secure-port=10250".to_string())
    );
}

#[test]
fn the_api_service_is_available_only_with_a_true_available_condition() {
    let with = |status: &str| -> APIService {
        typed(serde_json::json!({
            "metadata": {"name": API_SERVICE},
            "status": {"conditions": [{"type": "Available", "status": status,
                "reason": "MissingEndpoints", "message": "endpoints for service/metrics-server in \"kube-system\" have no addresses"}]}
        }))
    };
    assert_eq!(unavailable_reason(&with("True")), None);
    assert_eq!(
        unavailable_reason(&with("False")).as_deref(),
        Some(
            "MissingEndpoints: endpoints for service/metrics-server in \"kube-system\" have no addresses"
        )
    );
    let fresh: APIService = typed(serde_json::json!({"metadata": {"name": API_SERVICE}}));
    assert_eq!(
        unavailable_reason(&fresh).as_deref(),
        Some("no Available condition yet")
    );
}
