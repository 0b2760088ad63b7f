use k8s_openapi::api::core::v1::{
    ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVarSource, PodSpec,
    ResourceFieldSelector, ResourceRequirements, SecretEnvSource, SecretKeySelector,
};
use kube::api::ObjectMeta;

use super::*;

fn pod() -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("shop".into()),
            ..ObjectMeta::default()
        },
        ..Pod::default()
    }
}

fn sources() -> EnvSources {
    let data = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    EnvSources {
        config_maps: HashMap::from([(
            "settings".to_string(),
            data(&[("MODE", "fast"), ("LEVEL", "3")]),
        )]),
        secrets: HashMap::from([("creds".to_string(), data(&[("password", "s3cret")]))]),
        allocatable: BTreeMap::from([
            ("cpu".to_string(), Quantity("2".into())),
            ("memory".to_string(), Quantity("8Gi".into())),
        ]),
        services: BTreeMap::new(),
    }
}

fn config_map_key(name: &str, map: &str, key: &str, optional: Option<bool>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: map.into(),
                key: key.into(),
                optional,
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

#[test]
fn env_from_then_env_with_configmap_and_secret_keys() {
    let container = Container {
        name: "c".into(),
        env_from: Some(vec![EnvFromSource {
            prefix: Some("APP_".into()),
            config_map_ref: Some(ConfigMapEnvSource {
                name: "settings".into(),
                optional: None,
            }),
            ..EnvFromSource::default()
        }]),
        env: Some(vec![
            config_map_key("MODE", "settings", "MODE", None),
            EnvVar {
                name: "PASSWORD".into(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: "creds".into(),
                        key: "password".into(),
                        optional: None,
                    }),
                    ..EnvVarSource::default()
                }),
                ..EnvVar::default()
            },
            EnvVar {
                name: "SUMMARY".into(),
                value: Some("$(APP_MODE)-$(APP_LEVEL)".into()),
                ..EnvVar::default()
            },
            config_map_key("MAYBE", "settings", "absent", Some(true)),
        ]),
        ..Container::default()
    };
    let env = environment(&pod(), &container, &ImageConfig::default(), &sources()).expect("env");
    assert_eq!(
        env,
        vec![
            "APP_LEVEL=3",
            "APP_MODE=fast",
            "MODE=fast",
            "PASSWORD=s3cret",
            "SUMMARY=fast-3"
        ]
    );
}

#[test]
fn missing_sources_are_upstreams_config_errors_unless_optional() {
    let with_env = |var: EnvVar| Container {
        name: "c".into(),
        env: Some(vec![var]),
        ..Container::default()
    };
    let image = ImageConfig::default();
    let missing_map = with_env(config_map_key("X", "nope", "k", None));
    assert_eq!(
        environment(&pod(), &missing_map, &image, &sources()),
        Err("configmap \"nope\" not found".to_string())
    );
    let missing_key = with_env(config_map_key("X", "settings", "k", None));
    assert_eq!(
        environment(&pod(), &missing_key, &image, &sources()),
        Err("couldn't find key k in ConfigMap shop/settings".to_string())
    );
    let optional = with_env(config_map_key("X", "nope", "k", Some(true)));
    assert_eq!(
        environment(&pod(), &optional, &image, &sources()),
        Ok(vec![])
    );
    let missing_secret = Container {
        name: "c".into(),
        env_from: Some(vec![EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: "gone".into(),
                optional: None,
            }),
            ..EnvFromSource::default()
        }]),
        ..Container::default()
    };
    assert_eq!(
        environment(&pod(), &missing_secret, &image, &sources()),
        Err("secret \"gone\" not found".to_string())
    );
}

fn resource(name: &str, of: Option<&str>, resource: &str, divisor: Option<&str>) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            resource_field_ref: Some(ResourceFieldSelector {
                container_name: of.map(Into::into),
                resource: resource.into(),
                divisor: divisor.map(|d| Quantity(d.into())),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

#[test]
fn resource_field_refs_read_this_or_another_container_and_the_node_for_unset_limits() {
    let limited = |name: &str, cpu: &str, memory: &str| Container {
        name: name.into(),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([("cpu".to_string(), Quantity(cpu.into()))])),
            limits: Some(BTreeMap::from([(
                "memory".to_string(),
                Quantity(memory.into()),
            )])),
            ..ResourceRequirements::default()
        }),
        ..Container::default()
    };
    let mut main = limited("main", "250m", "64Mi");
    main.env = Some(vec![
        resource("CPU_REQUEST", None, "requests.cpu", Some("1m")),
        resource("MEMORY_LIMIT", Some(""), "limits.memory", Some("1Mi")),
        resource("CPU_LIMIT", None, "limits.cpu", None),
        resource("SIDE_CPU", Some("side"), "requests.cpu", Some("1m")),
    ]);
    let mut pod = pod();
    pod.spec = Some(PodSpec {
        containers: vec![main.clone(), limited("side", "100m", "32Mi")],
        ..PodSpec::default()
    });
    let env = environment(&pod, &main, &ImageConfig::default(), &sources()).unwrap();
    assert_eq!(
        env,
        [
            "CPU_REQUEST=250",
            "MEMORY_LIMIT=64",
            // No CPU limit: the node's allocatable, as upstream.
            "CPU_LIMIT=2",
            "SIDE_CPU=100",
        ]
    );
    main.env = Some(vec![resource("BAD", None, "limits.gpu", None)]);
    let err = environment(&pod, &main, &ImageConfig::default(), &sources()).unwrap_err();
    assert_eq!(err, "unsupported container resource : limits.gpu");
}

fn with_services(pairs: &[(&str, &str)]) -> EnvSources {
    EnvSources {
        services: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..sources()
    }
}

fn literal(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

/// Upstream's "env expansion, service env vars" and "api server = Y, kubelet = Y": `$(VAR)` reads the
/// Services' variables, the container's own variables win over them and over the image's, and the image's
/// lose to the Services'.
#[test]
fn service_variables_come_after_the_containers_own_and_expand() {
    let sources = with_services(&[
        ("KUBERNETES_SERVICE_HOST", "1.2.3.1"),
        ("TEST_SERVICE_HOST", "1.2.3.3"),
        ("TEST_SERVICE_PORT", "8083"),
    ]);
    let container = Container {
        name: "c".into(),
        env: Some(vec![
            literal(
                "SERVICE_VAR_TEST",
                "$(TEST_SERVICE_HOST):$(TEST_SERVICE_PORT)",
            ),
            literal("TEST_SERVICE_PORT", "9999"),
            literal("AFTER", "$(TEST_SERVICE_PORT)"),
        ]),
        ..Container::default()
    };
    let image = ImageConfig {
        env: vec!["PATH=/bin".into(), "TEST_SERVICE_HOST=image".into()],
        ..ImageConfig::default()
    };
    let env = environment(&pod(), &container, &image, &sources).unwrap();
    assert_eq!(
        env,
        [
            "PATH=/bin",
            "TEST_SERVICE_HOST=image",
            "SERVICE_VAR_TEST=1.2.3.3:8083",
            "TEST_SERVICE_PORT=9999",
            "AFTER=9999",
            "KUBERNETES_SERVICE_HOST=1.2.3.1",
            // Later than the image's, so the Service's value is the one the process reads.
            "TEST_SERVICE_HOST=1.2.3.3",
        ]
    );
}

/// Upstream's "configmap, service env vars": envFrom also wins over a Service's variable.
#[test]
fn env_from_wins_over_service_variables() {
    let sources = EnvSources {
        config_maps: HashMap::from([(
            "links".to_string(),
            BTreeMap::from([("TEST_SERVICE_HOST".to_string(), "from-map".to_string())]),
        )]),
        ..with_services(&[("TEST_SERVICE_HOST", "1.2.3.3")])
    };
    let container = Container {
        name: "c".into(),
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource {
                name: "links".into(),
                optional: None,
            }),
            ..EnvFromSource::default()
        }]),
        ..Container::default()
    };
    let env = environment(&pod(), &container, &ImageConfig::default(), &sources).unwrap();
    assert_eq!(env, ["TEST_SERVICE_HOST=from-map"]);
}
