use k8s_openapi::api::core::v1::{
    EnvVar, EnvVarSource, ObjectFieldSelector, PodSecurityContext, PodSpec, ResourceRequirements,
    SecurityContext,
};
use kube::api::ObjectMeta;

use super::*;
use crate::kuberuntime::env::EnvSources;

fn pod() -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("shop".into()),
            uid: Some("uid-1".into()),
            labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            node_name: Some("node-1".into()),
            security_context: Some(PodSecurityContext {
                run_as_user: Some(1000),
                supplemental_groups: Some(vec![5]),
                ..PodSecurityContext::default()
            }),
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

fn image() -> ImageConfig {
    ImageConfig {
        entrypoint: vec!["/entry".into()],
        cmd: vec!["serve".into()],
        env: vec!["PATH=/bin".into()],
        user: "7:8".into(),
        ..ImageConfig::default()
    }
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

fn field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

#[test]
fn command_env_and_user_follow_upstream() {
    let container = Container {
        name: "c".into(),
        command: Some(vec!["sh".into(), "-c".into()]),
        args: Some(vec!["echo $(GREETING) $$(NOT) $(MISSING)".into()]),
        env: Some(vec![
            env("WHO", "world"),
            env("GREETING", "hello-$(WHO)"),
            field("POD", "metadata.name"),
            field("APP", "metadata.labels['app']"),
        ]),
        security_context: Some(SecurityContext {
            run_as_group: Some(3000),
            allow_privilege_escalation: Some(false),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    let sandbox = SandboxNamespaces::default();
    let spec = container_spec(
        &pod(),
        &container,
        &SpecInputs {
            image: &image(),
            sandbox: &sandbox,
            volumes: &PodVolumes::default(),
            env_sources: &EnvSources::default(),
            cgroup_parent: "/kubepods/besteffort/poduid-1",
            id: "abc",
        },
    )
    .unwrap();
    assert_eq!(
        spec.args,
        vec!["sh", "-c", "echo hello-world $(NOT) $(MISSING)"]
    );
    assert_eq!(
        spec.env,
        vec![
            "PATH=/bin",
            "WHO=world",
            "GREETING=hello-world",
            "POD=web",
            "APP=web"
        ]
    );
    assert_eq!(
        (spec.uid, spec.gid, spec.additional_gids.clone()),
        (1000, 3000, vec![5])
    );
    assert!(spec.no_new_privileges);
    assert_eq!(
        spec.cgroups_path.as_deref(),
        Some("/kubepods/besteffort/poduid-1/abc")
    );
    assert_eq!(spec.resources.cpu_shares, Some(2));
}

#[test]
fn the_image_decides_what_the_pod_leaves_open() {
    let mut pod = pod();
    pod.spec = Some(PodSpec::default());
    let container = Container {
        name: "c".into(),
        ..Container::default()
    };
    let spec = container_spec(
        &pod,
        &container,
        &SpecInputs {
            image: &image(),
            sandbox: &SandboxNamespaces::default(),
            volumes: &PodVolumes::default(),
            env_sources: &EnvSources::default(),
            cgroup_parent: "/kubepods",
            id: "x",
        },
    )
    .unwrap();
    assert_eq!(spec.args, vec!["/entry", "serve"]);
    assert_eq!((spec.uid, spec.gid), (7, 8));
}

#[test]
fn limits_become_cgroup_values() {
    let quantities = |pairs: &[(&str, &str)]| {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                .collect(),
        )
    };
    let container = Container {
        name: "c".into(),
        resources: Some(ResourceRequirements {
            requests: quantities(&[("cpu", "250m")]),
            limits: quantities(&[("cpu", "500m"), ("memory", "64Mi")]),
            ..ResourceRequirements::default()
        }),
        ..Container::default()
    };
    let spec = container_spec(
        &pod(),
        &container,
        &SpecInputs {
            image: &image(),
            sandbox: &SandboxNamespaces::default(),
            volumes: &PodVolumes::default(),
            env_sources: &EnvSources::default(),
            cgroup_parent: "/kubepods",
            id: "x",
        },
    )
    .unwrap();
    assert_eq!(spec.resources.cpu_shares, Some(256));
    assert_eq!(spec.resources.cpu_quota, Some(50_000));
    assert_eq!(spec.resources.cpu_period, Some(100_000));
    assert_eq!(spec.resources.memory_limit, Some(64 << 20));
}

#[test]
fn volume_mounts_bind_the_pods_volumes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("cfg/sub")).unwrap();
    let mut volumes = PodVolumes::default();
    volumes.insert("cfg", dir.path().join("cfg"));
    let mount =
        |name: &str, path: &str, sub: Option<&str>| k8s_openapi::api::core::v1::VolumeMount {
            name: name.into(),
            mount_path: path.into(),
            read_only: Some(true),
            sub_path: sub.map(Into::into),
            ..Default::default()
        };
    let container = Container {
        name: "main".into(),
        volume_mounts: Some(vec![
            mount("cfg", "/etc/cfg", None),
            mount("cfg", "/sub", Some("sub")),
        ]),
        ..Container::default()
    };
    let mounts = container_mounts(&container, &volumes, &HashMap::new()).unwrap();
    assert_eq!(mounts[0].source, dir.path().join("cfg"));
    assert_eq!(
        (mounts[0].destination.as_str(), mounts[0].read_only),
        ("/etc/cfg", true)
    );
    assert_eq!(mounts[1].source, dir.path().join("cfg/sub"));
    let mut forced = PodVolumes::default();
    forced.insert_read_only("cfg", dir.path().join("cfg"));
    let writable = Container {
        volume_mounts: Some(vec![k8s_openapi::api::core::v1::VolumeMount {
            read_only: None,
            ..mount("cfg", "/etc/cfg", None)
        }]),
        ..container.clone()
    };
    let mounts = container_mounts(&writable, &forced, &HashMap::new()).unwrap();
    assert!(
        mounts[0].read_only,
        "configMap volumes are always read-only"
    );

    let escaping = Container {
        volume_mounts: Some(vec![mount("cfg", "/x", Some("../../etc"))]),
        ..container.clone()
    };
    assert!(container_mounts(&escaping, &volumes, &HashMap::new()).is_err());
    let unknown = Container {
        volume_mounts: Some(vec![mount("nope", "/x", None)]),
        ..container
    };
    let err = container_mounts(&unknown, &volumes, &HashMap::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot find volume \"nope\" to mount into container \"main\""
    );
}

#[test]
fn run_as_non_root_is_verified_as_upstream() {
    let mut pod = pod();
    let container = Container {
        name: "c".into(),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    // The pod's runAsUser 1000 is not root.
    assert_eq!(verify(&pod, &container, "").map(|_| ()), Ok(()));
    pod.spec = Some(PodSpec::default());
    let root_image = verify(&pod, &container, "").expect_err("the image runs as root");
    assert!(root_image.starts_with("container has runAsNonRoot and image will run as root (pod: \"web_shop(uid-1)\", container: c)"), "{root_image}");
    let named = verify(&pod, &container, "nobody").expect_err("a user name");
    assert!(
        named.contains("image has non-numeric user (nobody)"),
        "{named}"
    );
    assert_eq!(verify(&pod, &container, "65534:65534").map(|_| ()), Ok(()));
}

fn verify(pod: &Pod, container: &Container, user: &str) -> Result<ContainerSpec, String> {
    let image = ImageConfig {
        user: user.into(),
        ..ImageConfig::default()
    };
    container_spec(
        pod,
        container,
        &SpecInputs {
            image: &image,
            sandbox: &SandboxNamespaces::default(),
            volumes: &PodVolumes::default(),
            env_sources: &EnvSources::default(),
            cgroup_parent: "/kubepods",
            id: "x",
        },
    )
    .map_err(|e| e.to_string())
}
