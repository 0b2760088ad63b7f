use k8s_openapi::api::apps::v1::DeploymentStatus;
use k8s_openapi::api::core::v1::{ConfigMap, PodSpec, Service};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::*;
use crate::addons::api_resource;

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

fn custom() -> Config {
    Config {
        cluster_ip: "10.100.0.53".parse().unwrap(),
        cluster_domain: "example.test".into(),
        replicas: 3,
    }
}

#[test]
fn the_objects_are_kubeadms_in_its_order_each_of_a_kind_deploy_knows() {
    let objects = objects(&Config::default()).unwrap();
    let names: Vec<(&str, &str)> = objects
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("ConfigMap", "coredns"),
            ("ClusterRole", "system:coredns"),
            ("ClusterRoleBinding", "system:coredns"),
            ("ServiceAccount", "coredns"),
            ("Deployment", "coredns"),
            ("Service", "kube-dns"),
        ]
    );
    for object in &objects {
        api_resource(object["kind"].as_str().unwrap()).unwrap();
        if object["kind"] != "ClusterRole" && object["kind"] != "ClusterRoleBinding" {
            assert_eq!(object["metadata"]["namespace"], NAMESPACE, "{object}");
        }
    }
    assert!(api_resource("Pod").is_none());
}

#[test]
fn the_default_config_is_kubeadms() {
    let config = Config::default();
    assert_eq!(config.cluster_ip.to_string(), "10.96.0.10");
    assert_eq!(config.cluster_domain, "cluster.local");
    assert_eq!(config.replicas, 2);
}

#[test]
fn the_corefile_is_kubeadms_for_the_cluster_domain() {
    let expected = r".:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf {
       max_concurrent 1000
    }
    cache 30 {
       disable success cluster.local
       disable denial cluster.local
    }
    loop
    reload
    loadbalance
}
";
    assert_eq!(corefile("cluster.local"), expected);
    let objects = objects(&Config::default()).unwrap();
    let config_map: ConfigMap = typed(find(&objects, "ConfigMap", NAME));
    assert_eq!(config_map.data.unwrap()["Corefile"], expected);
}

#[test]
fn another_domain_is_served_and_not_cached_and_no_domain_caches_everything() {
    let text = corefile("example.test");
    assert!(text.contains("    kubernetes example.test in-addr.arpa ip6.arpa {\n"));
    assert!(text.contains("       disable success example.test\n"));
    assert!(text.contains("       disable denial example.test\n"));
    assert!(!text.contains("cluster.local"));
    let objects = objects(&custom()).unwrap();
    assert_eq!(find(&objects, "ConfigMap", NAME)["data"]["Corefile"], text);

    let text = corefile("");
    assert!(text.contains("\n    cache 30\n    loop\n"), "{text}");
    assert!(!text.contains("disable"));
}

#[test]
fn the_service_is_kube_dns_at_the_cluster_ip() {
    for config in [Config::default(), custom()] {
        let objects = objects(&config).unwrap();
        let object = find(&objects, "Service", SERVICE);
        assert!(object["metadata"].get("resourceVersion").is_none());
        let service: Service = typed(object);
        let labels = service.metadata.labels.unwrap();
        assert_eq!(labels["k8s-app"], APP_LABEL);
        assert_eq!(labels["kubernetes.io/cluster-service"], "true");
        assert_eq!(labels["kubernetes.io/name"], "CoreDNS");
        let annotations = service.metadata.annotations.unwrap();
        assert_eq!(annotations["prometheus.io/port"], "9153");
        assert_eq!(annotations["prometheus.io/scrape"], "true");
        let spec = service.spec.unwrap();
        assert_eq!(
            spec.cluster_ip.as_deref(),
            Some(config.cluster_ip.to_string().as_str())
        );
        assert_eq!(spec.selector.unwrap()["k8s-app"], APP_LABEL);
        let ports: Vec<(String, i32, String, Value)> = spec
            .ports
            .unwrap()
            .into_iter()
            .map(|p| {
                (
                    p.name.unwrap(),
                    p.port,
                    p.protocol.unwrap(),
                    serde_json::to_value(p.target_port.unwrap()).unwrap(),
                )
            })
            .collect();
        assert_eq!(
            ports,
            [
                ("dns".into(), 53, "UDP".into(), json!(53)),
                ("dns-tcp".into(), 53, "TCP".into(), json!(53)),
                ("metrics".into(), 9153, "TCP".into(), json!(9153)),
            ]
        );
    }
}

#[test]
fn the_deployment_runs_the_local_image_with_kubeadms_pod() {
    let objects = objects(&custom()).unwrap();
    let deployment: Deployment = typed(find(&objects, "Deployment", NAME));
    assert_eq!(deployment.metadata.labels.unwrap()["k8s-app"], APP_LABEL);
    let spec = deployment.spec.unwrap();
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(spec.selector.match_labels.unwrap()["k8s-app"], APP_LABEL);
    assert_eq!(
        spec.template.metadata.unwrap().labels.unwrap()["k8s-app"],
        APP_LABEL
    );
    let strategy = spec.strategy.unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));

    let pod = pod_spec(&objects);
    assert_eq!(pod.service_account_name.as_deref(), Some(NAME));
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("system-cluster-critical")
    );
    assert_eq!(pod.dns_policy.as_deref(), Some("Default"));
    assert_eq!(pod.node_selector.unwrap()["kubernetes.io/os"], "linux");
    let tolerations: Vec<String> = pod
        .tolerations
        .unwrap()
        .into_iter()
        .map(|t| t.key.unwrap())
        .collect();
    assert_eq!(
        tolerations,
        [
            "CriticalAddonsOnly",
            "node-role.kubernetes.io/control-plane"
        ]
    );
    let anti_affinity = pod.affinity.unwrap().pod_anti_affinity.unwrap();
    let term = &anti_affinity
        .preferred_during_scheduling_ignored_during_execution
        .unwrap()[0];
    assert_eq!(
        term.pod_affinity_term.topology_key,
        "kubernetes.io/hostname"
    );

    let volume = &pod.volumes.unwrap()[0];
    let config_map = volume.config_map.as_ref().unwrap();
    assert_eq!(config_map.name, NAME);
    assert_eq!(config_map.items.as_ref().unwrap()[0].key, "Corefile");

    let container = &pod.containers[0];
    assert_eq!(container.name, NAME);
    assert_eq!(container.image.as_deref(), Some(image().as_str()));
    assert_eq!(
        image(),
        format!("ferrokube.local/coredns:{COREDNS_VERSION}")
    );
    assert_eq!(container.image_pull_policy.as_deref(), Some("Never"));
    let command: Vec<&str> = container
        .command
        .iter()
        .chain(container.args.iter())
        .flatten()
        .map(String::as_str)
        .collect();
    assert_eq!(command, ["/coredns", "-conf", "/etc/coredns/Corefile"]);
    let mount = &container.volume_mounts.as_ref().unwrap()[0];
    assert_eq!(
        (mount.mount_path.as_str(), mount.read_only),
        ("/etc/coredns", Some(true))
    );
}

#[test]
fn the_container_keeps_kubeadms_probes_resources_ports_and_security_context() {
    let objects = objects(&Config::default()).unwrap();
    let container = pod_spec(&objects).containers.remove(0);
    let value = serde_json::to_value(&container).unwrap();
    assert_eq!(
        value["livenessProbe"],
        json!({"httpGet": {"path": "/health", "port": "liveness-probe", "scheme": "HTTP"},
               "initialDelaySeconds": 60, "timeoutSeconds": 5, "successThreshold": 1, "failureThreshold": 5})
    );
    assert_eq!(
        value["readinessProbe"],
        json!({"httpGet": {"path": "/ready", "port": "readiness-probe", "scheme": "HTTP"}})
    );
    assert_eq!(
        value["resources"],
        json!({"limits": {"memory": "170Mi"}, "requests": {"cpu": "100m", "memory": "70Mi"}})
    );
    assert_eq!(
        value["securityContext"],
        json!({"allowPrivilegeEscalation": false,
               "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
               "readOnlyRootFilesystem": true})
    );
    let ports: Vec<(String, i32)> = container
        .ports
        .unwrap()
        .into_iter()
        .map(|p| (p.name.unwrap(), p.container_port))
        .collect();
    let expected = [
        ("dns", 53),
        ("dns-tcp", 53),
        ("metrics", 9153),
        ("liveness-probe", 8080),
        ("readiness-probe", 8181),
    ];
    let expected: Vec<(String, i32)> = expected.iter().map(|(n, p)| (n.to_string(), *p)).collect();
    assert_eq!(ports, expected);
}

#[test]
fn the_cluster_role_lets_coredns_list_and_watch_what_it_serves() {
    let objects = objects(&Config::default()).unwrap();
    let role: ClusterRole = typed(find(&objects, "ClusterRole", "system:coredns"));
    let rules: Vec<(Vec<String>, Vec<String>, Vec<String>)> = role
        .rules
        .unwrap()
        .into_iter()
        .map(|r| (r.api_groups.unwrap(), r.resources.unwrap(), r.verbs))
        .collect();
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        rules,
        [
            (
                strings(&[""]),
                strings(&["endpoints", "services", "pods", "namespaces"]),
                strings(&["list", "watch"])
            ),
            (
                strings(&["discovery.k8s.io"]),
                strings(&["endpointslices"]),
                strings(&["list", "watch"])
            ),
        ]
    );
    let binding: ClusterRoleBinding = typed(find(&objects, "ClusterRoleBinding", "system:coredns"));
    assert_eq!(binding.role_ref.name, "system:coredns");
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!(
        (
            subject.kind.as_str(),
            subject.name.as_str(),
            subject.namespace.as_deref()
        ),
        ("ServiceAccount", NAME, Some(NAMESPACE))
    );
}

fn deployment(generation: i64, status: Option<DeploymentStatus>) -> Deployment {
    let mut deployment: Deployment = typed(find(
        &objects(&Config::default()).unwrap(),
        "Deployment",
        NAME,
    ));
    deployment.metadata.generation = Some(generation);
    deployment.status = status;
    deployment
}

fn status(observed: i64, updated: i32, available: i32) -> Option<DeploymentStatus> {
    Some(DeploymentStatus {
        observed_generation: Some(observed),
        updated_replicas: Some(updated),
        available_replicas: Some(available),
        ..DeploymentStatus::default()
    })
}

#[test]
fn available_means_the_current_generation_with_every_replica_available() {
    assert_eq!(
        unavailable_reason(&deployment(1, None)).as_deref(),
        Some("no status yet")
    );
    assert_eq!(
        unavailable_reason(&deployment(2, status(1, 2, 2))).as_deref(),
        Some("generation 2 not observed yet (at 1)")
    );
    assert_eq!(
        unavailable_reason(&deployment(1, status(1, 2, 1))).as_deref(),
        Some("1 of 2 replicas available, 2 updated")
    );
    assert_eq!(
        unavailable_reason(&deployment(1, status(1, 1, 2))).as_deref(),
        Some("2 of 2 replicas available, 1 updated")
    );
    assert_eq!(unavailable_reason(&deployment(1, status(1, 2, 2))), None);
}
