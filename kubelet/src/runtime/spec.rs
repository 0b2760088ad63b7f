//! A pure builder of the OCI runtime spec runc gets for one container, following containerd 1.6's default
//! Unix spec (`oci/spec.go`) with the changes its CRI plugin makes for Kubernetes containers (no `/run`
//! tmpfs, a read-only cgroup mount, no default rlimits, capabilities and namespaces from the pod).

use std::path::PathBuf;

use serde_json::{Value, json};

/// The OCI runtime-spec version written into specs.
const OCI_VERSION: &str = "1.0.2-dev";
/// The PATH a container gets when neither the image nor the pod sets one (containerd's `defaultUnixEnv`).
pub const DEFAULT_PATH_ENV: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// containerd's default capability set for unprivileged containers (`oci.defaultCaps`).
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability Linux knows, in number order; what `ALL` and privileged containers get.
pub const ALL_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Paths hidden from unprivileged containers (containerd's default `maskedPaths`).
pub const MASKED_PATHS: [&str; 10] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];

/// Paths read-only in unprivileged containers (containerd's default `readonlyPaths`).
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// How a container gets one kind of Linux namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NamespaceMode {
    /// A new namespace of its own.
    #[default]
    Private,
    /// Join the existing namespace at this path (e.g. `/var/run/netns/NAME`, `/proc/PID/ns/ipc`).
    Join(PathBuf),
    /// The host's namespace (hostNetwork, hostIPC, hostPID).
    Host,
}

/// A bind mount of a host path into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// The host path.
    pub source: PathBuf,
    /// The path inside the container.
    pub destination: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// CPU and memory limits for the container's cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// cpu.shares (relative weight; the kubelet derives it from the CPU request).
    pub cpu_shares: Option<u64>,
    /// cpu.cfs_quota_us (from the CPU limit).
    pub cpu_quota: Option<i64>,
    /// cpu.cfs_period_us.
    pub cpu_period: Option<u64>,
    /// memory.limit_in_bytes.
    pub memory_limit: Option<i64>,
}

/// Capabilities added to and dropped from the default set, as a pod's securityContext names them
/// (`NET_ADMIN` or `CAP_NET_ADMIN`; `ALL`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Capabilities to add.
    pub add: Vec<String>,
    /// Capabilities to drop.
    pub drop: Vec<String>,
}

/// Everything the spec of one container is built from; the kubelet fills it from the pod and the image.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    /// The command line (already resolved with [`resolve_args`]).
    pub args: Vec<String>,
    /// The process runs on a terminal (the container's `tty`).
    pub terminal: bool,
    /// Environment as `NAME=value`, image env first, the container's after (later ones win).
    pub env: Vec<String>,
    /// Working directory; `/` when empty.
    pub cwd: String,
    /// The user id the process runs as.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
    /// Supplementary group ids.
    pub additional_gids: Vec<u32>,
    /// The hostname, set when the UTS namespace is not the host's.
    pub hostname: Option<String>,
    /// The network namespace (`Host` for hostNetwork pods).
    pub network: NamespaceMode,
    /// The IPC namespace.
    pub ipc: NamespaceMode,
    /// The UTS namespace.
    pub uts: NamespaceMode,
    /// The PID namespace.
    pub pid: NamespaceMode,
    /// Bind mounts (volumes, /etc/hosts, /etc/resolv.conf, the termination log, ...).
    pub mounts: Vec<BindMount>,
    /// cgroupfs path, e.g. `/kubepods/burstable/pod<uid>/<container id>`.
    pub cgroups_path: Option<String>,
    /// CPU and memory limits.
    pub resources: Resources,
    /// Capabilities over the default set.
    pub capabilities: Capabilities,
    /// securityContext.privileged.
    pub privileged: bool,
    /// securityContext.readOnlyRootFilesystem.
    pub read_only_root_filesystem: bool,
    /// The inverse of securityContext.allowPrivilegeEscalation (true unless it is allowed or privileged).
    pub no_new_privileges: bool,
    /// /proc/self/oom_score_adj of the process (the kubelet's QoS-based value).
    pub oom_score_adj: Option<i32>,
    /// Annotations recorded in the spec.
    pub annotations: Vec<(String, String)>,
}

/// The command line of a container, as the kubelet resolves it: `command` replaces the image's
/// Entrypoint (and then the image's Cmd is ignored), `args` replaces the image's Cmd.
pub fn resolve_args(
    image_entrypoint: &[String],
    image_cmd: &[String],
    command: &[String],
    args: &[String],
) -> Vec<String> {
    match (command.is_empty(), args.is_empty()) {
        // Only command: the image's Cmd is not used with an overridden entrypoint.
        (false, true) => command.to_vec(),
        (false, false) => command.iter().chain(args).cloned().collect(),
        (true, false) => image_entrypoint.iter().chain(args).cloned().collect(),
        (true, true) => image_entrypoint.iter().chain(image_cmd).cloned().collect(),
    }
}

/// The capability name in the kernel's form: `net_admin` and `NET_ADMIN` become `CAP_NET_ADMIN`.
fn capability_name(name: &str) -> String {
    let upper = name.to_ascii_uppercase();
    if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

/// The effective capability set: the default set (or all, when privileged), then `ALL` adds/drops, then the
/// named adds, then the named drops (containerd CRI's order, so `add: [ALL], drop: [CHOWN]` works).
pub fn effective_capabilities(privileged: bool, capabilities: &Capabilities) -> Vec<String> {
    if privileged {
        return ALL_CAPABILITIES.iter().map(|c| c.to_string()).collect();
    }
    let is_all = |c: &String| c.eq_ignore_ascii_case("ALL");
    let mut set: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect();
    if capabilities.add.iter().any(is_all) {
        set = ALL_CAPABILITIES.iter().map(|c| c.to_string()).collect();
    }
    if capabilities.drop.iter().any(is_all) {
        set.clear();
    }
    for add in capabilities.add.iter().filter(|c| !is_all(c)) {
        let name = capability_name(add);
        if !set.contains(&name) {
            set.push(name);
        }
    }
    for drop in capabilities.drop.iter().filter(|c| !is_all(c)) {
        let name = capability_name(drop);
        set.retain(|c| *c != name);
    }
    set
}

/// The environment with containerd's default PATH when none is set, and HOSTNAME as CRI sets it.
fn environment(spec: &ContainerSpec) -> Vec<String> {
    let has = |name: &str| {
        spec.env
            .iter()
            .any(|e| e.split_once('=').is_some_and(|(n, _)| n == name))
    };
    let mut env = Vec::with_capacity(spec.env.len() + 2);
    if !has("PATH") {
        env.push(DEFAULT_PATH_ENV.to_string());
    }
    if let Some(hostname) = &spec.hostname
        && !has("HOSTNAME")
    {
        env.push(format!("HOSTNAME={hostname}"));
    }
    env.extend(spec.env.iter().cloned());
    env
}

/// containerd's default mounts without `/run` (CRI removes it), plus CRI's read-only cgroup mount.
fn default_mounts(privileged: bool) -> Vec<Value> {
    let sys_options = if privileged {
        json!(["nosuid", "noexec", "nodev", "rw"])
    } else {
        json!(["nosuid", "noexec", "nodev", "ro"])
    };
    let cgroup_options = if privileged {
        json!(["nosuid", "noexec", "nodev", "relatime", "rw"])
    } else {
        json!(["nosuid", "noexec", "nodev", "relatime", "ro"])
    };
    vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_options}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": cgroup_options}),
    ]
}

/// One entry of `linux.namespaces`, or none when the host's namespace is used.
fn namespace(kind: &str, mode: &NamespaceMode) -> Option<Value> {
    match mode {
        NamespaceMode::Private => Some(json!({"type": kind})),
        NamespaceMode::Join(path) => Some(json!({"type": kind, "path": path.to_string_lossy()})),
        NamespaceMode::Host => None,
    }
}

/// The OCI runtime spec (config.json) for `spec`.
pub fn build(spec: &ContainerSpec) -> Value {
    let capabilities = effective_capabilities(spec.privileged, &spec.capabilities);
    let mut process = json!({
        "terminal": spec.terminal,
        "user": {"uid": spec.uid, "gid": spec.gid},
        "args": spec.args,
        "env": environment(spec),
        "cwd": if spec.cwd.is_empty() { "/" } else { spec.cwd.as_str() },
        "capabilities": {
            "bounding": capabilities,
            "effective": capabilities,
            "permitted": capabilities,
        },
        // Privileged containers may gain privileges (setuid binaries), as upstream.
        "noNewPrivileges": spec.no_new_privileges && !spec.privileged,
    });
    if !spec.additional_gids.is_empty() {
        process["user"]["additionalGids"] = json!(spec.additional_gids);
    }
    if let Some(adj) = spec.oom_score_adj {
        process["oomScoreAdj"] = json!(adj);
    }

    let mut mounts = default_mounts(spec.privileged);
    // A bind mount over a default mount replaces it (e.g. a volume at /dev/shm).
    mounts.retain(|m| {
        !spec
            .mounts
            .iter()
            .any(|b| m["destination"].as_str() == Some(b.destination.as_str()))
    });
    for bind in &spec.mounts {
        let access = if bind.read_only { "ro" } else { "rw" };
        mounts.push(json!({
            "destination": bind.destination,
            "type": "bind",
            "source": bind.source.to_string_lossy(),
            "options": ["rbind", "rprivate", access],
        }));
    }

    let namespaces: Vec<Value> = [
        namespace("pid", &spec.pid),
        namespace("ipc", &spec.ipc),
        namespace("uts", &spec.uts),
        namespace("mount", &NamespaceMode::Private),
        namespace("network", &spec.network),
    ]
    .into_iter()
    .flatten()
    .collect();

    let mut resources = json!({
        // Deny every device but the defaults runc always allows; privileged containers get all.
        "devices": [{"allow": spec.privileged, "access": "rwm"}],
    });
    let mut cpu = serde_json::Map::new();
    if let Some(shares) = spec.resources.cpu_shares {
        cpu.insert("shares".into(), json!(shares));
    }
    if let Some(quota) = spec.resources.cpu_quota {
        cpu.insert("quota".into(), json!(quota));
    }
    if let Some(period) = spec.resources.cpu_period {
        cpu.insert("period".into(), json!(period));
    }
    if !cpu.is_empty() {
        resources["cpu"] = Value::Object(cpu);
    }
    if let Some(limit) = spec.resources.memory_limit {
        resources["memory"] = json!({"limit": limit});
    }

    let mut linux = json!({
        "namespaces": namespaces,
        "resources": resources,
    });
    if !spec.privileged {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
    }
    if let Some(path) = &spec.cgroups_path {
        linux["cgroupsPath"] = json!(path);
    }

    let mut out = json!({
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": "rootfs", "readonly": spec.read_only_root_filesystem},
        "mounts": mounts,
        "linux": linux,
    });
    // runc refuses a hostname without a UTS namespace of the container's own (or joined).
    if let Some(hostname) = &spec.hostname
        && spec.uts != NamespaceMode::Host
    {
        out["hostname"] = json!(hostname);
    }
    if !spec.annotations.is_empty() {
        let annotations: serde_json::Map<String, Value> = spec
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        out["annotations"] = Value::Object(annotations);
    }
    out
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
