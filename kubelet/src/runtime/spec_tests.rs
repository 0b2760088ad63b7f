//! Unit tests of the OCI spec builder.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::*;

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn names(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn mount<'a>(spec: &'a Value, destination: &str) -> Option<&'a Value> {
    spec["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["destination"] == destination)
}

fn namespace_types(spec: &Value) -> Vec<String> {
    spec["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn command_and_args_resolution_follows_the_kubelet() {
    let entrypoint = strings(&["/entry"]);
    let cmd = strings(&["default-arg"]);
    // Neither: the image's Entrypoint and Cmd.
    assert_eq!(
        resolve_args(&entrypoint, &cmd, &[], &[]),
        strings(&["/entry", "default-arg"])
    );
    // Only args: the image's Entrypoint with the given args.
    assert_eq!(
        resolve_args(&entrypoint, &cmd, &[], &strings(&["x"])),
        strings(&["/entry", "x"])
    );
    // Only command: the image's Cmd is dropped too.
    assert_eq!(
        resolve_args(&entrypoint, &cmd, &strings(&["sh", "-c"]), &[]),
        strings(&["sh", "-c"])
    );
    // Both.
    assert_eq!(
        resolve_args(
            &entrypoint,
            &cmd,
            &strings(&["sh"]),
            &strings(&["-c", "true"])
        ),
        strings(&["sh", "-c", "true"])
    );
    // An image with only Cmd (busybox: Cmd ["sh"]).
    assert_eq!(
        resolve_args(&[], &strings(&["sh"]), &[], &[]),
        strings(&["sh"])
    );
    assert_eq!(
        resolve_args(&[], &strings(&["sh"]), &[], &strings(&["echo", "hi"])),
        strings(&["echo", "hi"])
    );
}

#[test]
fn defaults_match_containerd_for_an_unprivileged_container() {
    let spec = build(&ContainerSpec {
        args: strings(&["sh"]),
        no_new_privileges: true,
        ..ContainerSpec::default()
    });
    assert_eq!(spec["ociVersion"], OCI_VERSION);
    assert_eq!(spec["root"], json!({"path": "rootfs", "readonly": false}));
    assert_eq!(spec["process"]["args"], json!(["sh"]));
    assert_eq!(spec["process"]["cwd"], "/");
    assert_eq!(spec["process"]["user"], json!({"uid": 0, "gid": 0}));
    assert_eq!(spec["process"]["noNewPrivileges"], true);
    assert_eq!(spec["process"]["terminal"], false);
    assert_eq!(spec["process"]["env"], json!([DEFAULT_PATH_ENV]));
    let caps = &spec["process"]["capabilities"];
    for set in ["bounding", "effective", "permitted"] {
        assert_eq!(names(&caps[set]), strings(&DEFAULT_CAPABILITIES), "{set}");
    }
    // No inheritable or ambient capabilities (containerd dropped them in 1.6.2, CVE-2022-24769).
    assert!(caps.get("inheritable").is_none());
    assert!(caps.get("ambient").is_none());
    assert_eq!(names(&spec["linux"]["maskedPaths"]), strings(&MASKED_PATHS));
    assert_eq!(
        names(&spec["linux"]["readonlyPaths"]),
        strings(&READONLY_PATHS)
    );
    assert_eq!(
        namespace_types(&spec),
        strings(&["pid", "ipc", "uts", "mount", "network"])
    );
    assert_eq!(
        spec["linux"]["resources"]["devices"],
        json!([{"allow": false, "access": "rwm"}])
    );
    assert!(spec.get("hostname").is_none());
    assert!(spec["linux"].get("cgroupsPath").is_none());
    assert!(spec["process"].get("rlimits").is_none());
}

#[test]
fn default_mounts_are_containerds_without_run() {
    let spec = build(&ContainerSpec::default());
    let destinations: Vec<&str> = spec["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["destination"].as_str().unwrap())
        .collect();
    assert_eq!(
        destinations,
        [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
            "/sys",
            "/sys/fs/cgroup"
        ]
    );
    let proc = mount(&spec, "/proc").unwrap();
    assert_eq!(proc["type"], "proc");
    assert_eq!(proc["options"], json!(["nosuid", "noexec", "nodev"]));
    let pts = mount(&spec, "/dev/pts").unwrap();
    assert_eq!(pts["type"], "devpts");
    assert!(names(&pts["options"]).contains(&"newinstance".to_string()));
    let shm = mount(&spec, "/dev/shm").unwrap();
    assert_eq!(shm["source"], "shm");
    assert!(names(&shm["options"]).contains(&"mode=1777".to_string()));
    assert_eq!(mount(&spec, "/dev/mqueue").unwrap()["type"], "mqueue");
    assert!(names(&mount(&spec, "/sys").unwrap()["options"]).contains(&"ro".to_string()));
    assert!(names(&mount(&spec, "/sys/fs/cgroup").unwrap()["options"]).contains(&"ro".to_string()));
}

#[test]
fn process_fields_are_taken_from_the_input() {
    let spec = build(&ContainerSpec {
        args: strings(&["/bin/app", "--flag"]),
        env: strings(&["PATH=/bin", "A=1"]),
        cwd: "/work".into(),
        uid: 1000,
        gid: 2000,
        additional_gids: vec![3000, 4000],
        oom_score_adj: Some(1000),
        ..ContainerSpec::default()
    });
    assert_eq!(spec["process"]["args"], json!(["/bin/app", "--flag"]));
    // The image or pod's PATH wins: no default PATH is added.
    assert_eq!(spec["process"]["env"], json!(["PATH=/bin", "A=1"]));
    assert_eq!(spec["process"]["cwd"], "/work");
    assert_eq!(
        spec["process"]["user"],
        json!({"uid": 1000, "gid": 2000, "additionalGids": [3000, 4000]})
    );
    assert_eq!(spec["process"]["oomScoreAdj"], 1000);
}

#[test]
fn hostname_is_set_with_a_private_or_joined_uts_namespace_only() {
    let spec = build(&ContainerSpec {
        hostname: Some("web-0".into()),
        ..ContainerSpec::default()
    });
    assert_eq!(spec["hostname"], "web-0");
    assert_eq!(
        spec["process"]["env"],
        json!([DEFAULT_PATH_ENV, "HOSTNAME=web-0"])
    );
    let joined = build(&ContainerSpec {
        hostname: Some("web-0".into()),
        uts: NamespaceMode::Join(PathBuf::from("/proc/42/ns/uts")),
        ..ContainerSpec::default()
    });
    assert_eq!(joined["hostname"], "web-0");
    let host = build(&ContainerSpec {
        hostname: Some("node-1".into()),
        uts: NamespaceMode::Host,
        ..ContainerSpec::default()
    });
    assert!(host.get("hostname").is_none());
    // A HOSTNAME the pod sets itself is kept alone.
    let own = build(&ContainerSpec {
        hostname: Some("a".into()),
        env: strings(&["HOSTNAME=b"]),
        ..ContainerSpec::default()
    });
    assert_eq!(
        own["process"]["env"],
        json!([DEFAULT_PATH_ENV, "HOSTNAME=b"])
    );
}

#[test]
fn namespaces_are_joined_by_path_or_left_to_the_host() {
    let spec = build(&ContainerSpec {
        network: NamespaceMode::Join(PathBuf::from("/var/run/netns/pod-a")),
        ipc: NamespaceMode::Join(PathBuf::from("/proc/7/ns/ipc")),
        ..ContainerSpec::default()
    });
    let namespaces = spec["linux"]["namespaces"].as_array().unwrap();
    assert!(namespaces.contains(&json!({"type": "network", "path": "/var/run/netns/pod-a"})));
    assert!(namespaces.contains(&json!({"type": "ipc", "path": "/proc/7/ns/ipc"})));
    assert!(namespaces.contains(&json!({"type": "pid"})));

    let host = build(&ContainerSpec {
        network: NamespaceMode::Host,
        uts: NamespaceMode::Host,
        ..ContainerSpec::default()
    });
    assert_eq!(namespace_types(&host), strings(&["pid", "ipc", "mount"]));
}

#[test]
fn bind_mounts_are_added_and_replace_default_mounts() {
    let spec = build(&ContainerSpec {
        mounts: vec![
            BindMount {
                source: PathBuf::from("/var/lib/kubelet/pods/u/volumes/data"),
                destination: "/data".into(),
                read_only: false,
            },
            BindMount {
                source: PathBuf::from("/var/lib/kubelet/pods/u/etc-hosts"),
                destination: "/etc/hosts".into(),
                read_only: true,
            },
            BindMount {
                source: PathBuf::from("/dev/shm-of-pod"),
                destination: "/dev/shm".into(),
                read_only: false,
            },
        ],
        ..ContainerSpec::default()
    });
    assert_eq!(
        mount(&spec, "/data").unwrap(),
        &json!({"destination": "/data", "type": "bind",
                "source": "/var/lib/kubelet/pods/u/volumes/data",
                "options": ["rbind", "rprivate", "rw"]})
    );
    assert_eq!(
        mount(&spec, "/etc/hosts").unwrap()["options"],
        json!(["rbind", "rprivate", "ro"])
    );
    let shm: Vec<&Value> = spec["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["destination"] == "/dev/shm")
        .collect();
    assert_eq!(shm.len(), 1);
    assert_eq!(shm[0]["type"], "bind");
}

#[test]
fn cgroups_path_and_resources() {
    let spec = build(&ContainerSpec {
        cgroups_path: Some("/kubepods/burstable/podabc/ctr1".into()),
        resources: Resources {
            cpu_shares: Some(512),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            memory_limit: Some(64 << 20),
        },
        ..ContainerSpec::default()
    });
    assert_eq!(
        spec["linux"]["cgroupsPath"],
        "/kubepods/burstable/podabc/ctr1"
    );
    let resources = &spec["linux"]["resources"];
    assert_eq!(
        resources["cpu"],
        json!({"shares": 512, "quota": 50_000, "period": 100_000})
    );
    assert_eq!(resources["memory"], json!({"limit": 64 << 20}));

    let partial = build(&ContainerSpec {
        resources: Resources {
            cpu_shares: Some(2),
            ..Resources::default()
        },
        ..ContainerSpec::default()
    });
    assert_eq!(partial["linux"]["resources"]["cpu"], json!({"shares": 2}));
    assert!(partial["linux"]["resources"].get("memory").is_none());
}

#[test]
fn capabilities_add_and_drop_over_the_default_set() {
    let caps = effective_capabilities(
        false,
        &Capabilities {
            add: strings(&["NET_ADMIN", "cap_sys_time", "CHOWN"]),
            drop: strings(&["NET_RAW", "CAP_KILL"]),
        },
    );
    assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
    assert!(caps.contains(&"CAP_SYS_TIME".to_string()));
    assert!(!caps.contains(&"CAP_NET_RAW".to_string()));
    assert!(!caps.contains(&"CAP_KILL".to_string()));
    // Adding one already present does not duplicate it.
    assert_eq!(caps.iter().filter(|c| *c == "CAP_CHOWN").count(), 1);
    assert_eq!(caps.len(), DEFAULT_CAPABILITIES.len() + 2 - 2);
}

#[test]
fn capabilities_all() {
    let none = effective_capabilities(
        false,
        &Capabilities {
            add: vec![],
            drop: strings(&["ALL"]),
        },
    );
    assert!(none.is_empty());
    let only_bind = effective_capabilities(
        false,
        &Capabilities {
            add: strings(&["NET_BIND_SERVICE"]),
            drop: strings(&["all"]),
        },
    );
    assert_eq!(only_bind, strings(&["CAP_NET_BIND_SERVICE"]));
    let all_but_chown = effective_capabilities(
        false,
        &Capabilities {
            add: strings(&["ALL"]),
            drop: strings(&["CHOWN"]),
        },
    );
    assert_eq!(all_but_chown.len(), ALL_CAPABILITIES.len() - 1);
    assert!(!all_but_chown.contains(&"CAP_CHOWN".to_string()));
}

#[test]
fn privileged_containers_get_everything() {
    let spec = build(&ContainerSpec {
        privileged: true,
        no_new_privileges: true,
        capabilities: Capabilities {
            add: vec![],
            drop: strings(&["ALL"]),
        },
        ..ContainerSpec::default()
    });
    assert_eq!(
        names(&spec["process"]["capabilities"]["bounding"]),
        strings(&ALL_CAPABILITIES)
    );
    assert_eq!(spec["process"]["noNewPrivileges"], false);
    assert!(spec["linux"].get("maskedPaths").is_none());
    assert!(spec["linux"].get("readonlyPaths").is_none());
    assert!(names(&mount(&spec, "/sys").unwrap()["options"]).contains(&"rw".to_string()));
    assert_eq!(
        spec["linux"]["resources"]["devices"],
        json!([{"allow": true, "access": "rwm"}])
    );
}

#[test]
fn read_only_root_and_no_new_privileges_flags() {
    let spec = build(&ContainerSpec {
        read_only_root_filesystem: true,
        no_new_privileges: false,
        ..ContainerSpec::default()
    });
    assert_eq!(spec["root"]["readonly"], true);
    assert_eq!(spec["process"]["noNewPrivileges"], false);
}

#[test]
fn annotations_are_recorded() {
    let spec = build(&ContainerSpec {
        annotations: vec![("io.kubernetes.pod.name".into(), "web".into())],
        ..ContainerSpec::default()
    });
    assert_eq!(
        spec["annotations"],
        json!({"io.kubernetes.pod.name": "web"})
    );
    assert!(
        build(&ContainerSpec::default())
            .get("annotations")
            .is_none()
    );
}
