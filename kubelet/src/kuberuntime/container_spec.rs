//! A container's runtime spec from its pod, its image and its sandbox (upstream's generateContainerConfig):
//! the command line, the environment with `$(VAR)` references expanded, the user, namespaces, cgroup and
//! resource limits.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use component_base::quantity::{parse_milli, parse_value};

use crate::runtime::ImageConfig;
use crate::runtime::spec::{
    BindMount, Capabilities, ContainerSpec, NamespaceMode, Resources, resolve_args,
};
use crate::volumemanager::{PodVolumes, VolumeError, subpath};

use super::env::{EnvSources, environment, expand};

/// The namespaces a pod's containers share.
#[derive(Debug, Clone, Default)]
pub struct SandboxNamespaces {
    /// The network namespace (`Host` for hostNetwork pods).
    pub network: NamespaceMode,
    /// The IPC namespace.
    pub ipc: NamespaceMode,
    /// The UTS namespace.
    pub uts: NamespaceMode,
    /// The hostname, for pods with their own UTS namespace.
    pub hostname: Option<String>,
}

/// Why a container's configuration cannot be made (upstream's CreateContainerConfigError).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A volume mount cannot be made.
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// An environment source is missing.
    #[error("{0}")]
    Env(String),
    /// The security context cannot be honoured (runAsNonRoot).
    #[error("{0}")]
    Security(String),
}

/// The CFS period upstream uses.
const CPU_PERIOD: u64 = 100_000;
/// cgroup v1's smallest cpu.shares, what upstream gives containers without a CPU request.
const MIN_SHARES: u64 = 2;

/// What a container's spec is made from besides its pod and itself.
pub struct SpecInputs<'a> {
    /// The image's configuration.
    pub image: &'a ImageConfig,
    /// The pod's namespaces.
    pub sandbox: &'a SandboxNamespaces,
    /// The pod's volumes, for the volumeMounts.
    pub volumes: &'a PodVolumes,
    /// The ConfigMaps and Secrets the environment reads.
    pub env_sources: &'a EnvSources,
    /// The pod's cgroup.
    pub cgroup_parent: &'a str,
    /// The new container's id.
    pub id: &'a str,
}

/// The spec of `container` of `pod`.
pub fn container_spec(
    pod: &Pod,
    container: &Container,
    inputs: &SpecInputs,
) -> Result<ContainerSpec, ConfigError> {
    let SpecInputs {
        image,
        sandbox,
        volumes,
        env_sources,
        cgroup_parent,
        id,
    } = inputs;
    let env = environment(pod, container, image, env_sources).map_err(ConfigError::Env)?;
    let values: HashMap<&str, &str> = env.iter().filter_map(|e| e.split_once('=')).collect();
    let mounts = container_mounts(container, volumes, &values)?;
    let expand_all = |list: &Option<Vec<String>>| -> Vec<String> {
        list.iter().flatten().map(|s| expand(s, &values)).collect()
    };
    let args = resolve_args(
        &image.entrypoint,
        &image.cmd,
        &expand_all(&container.command),
        &expand_all(&container.args),
    );
    let pod_security = pod.spec.as_ref().and_then(|s| s.security_context.clone());
    let security = container.security_context.clone().unwrap_or_default();
    let (image_uid, image_gid) = image_user(&image.user);
    let run_as_user = security
        .run_as_user
        .or(pod_security.as_ref().and_then(|p| p.run_as_user));
    let run_as_non_root = security
        .run_as_non_root
        .or(pod_security.as_ref().and_then(|p| p.run_as_non_root));
    if run_as_non_root == Some(true) {
        verify_run_as_non_root(pod, container, run_as_user, &image.user)
            .map_err(ConfigError::Security)?;
    }
    let uid = run_as_user.map_or(image_uid, |u| u32::try_from(u).unwrap_or(0));
    let gid = security
        .run_as_group
        .or(pod_security.as_ref().and_then(|p| p.run_as_group))
        .map_or(image_gid, |g| u32::try_from(g).unwrap_or(0));
    let additional_gids = pod_security
        .as_ref()
        .and_then(|p| p.supplemental_groups.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|g| u32::try_from(g).ok())
        .collect();
    let privileged = security.privileged.unwrap_or(false);
    let capabilities = security.capabilities.clone().unwrap_or_default();
    Ok(ContainerSpec {
        args,
        terminal: container.tty.unwrap_or(false),
        env,
        cwd: container
            .working_dir
            .clone()
            .unwrap_or_else(|| image.working_dir.clone()),
        uid,
        gid,
        additional_gids,
        hostname: sandbox.hostname.clone(),
        network: sandbox.network.clone(),
        ipc: sandbox.ipc.clone(),
        uts: sandbox.uts.clone(),
        pid: NamespaceMode::Private,
        mounts,
        cgroups_path: Some(format!("{cgroup_parent}/{id}")),
        resources: resources(container),
        capabilities: Capabilities {
            add: capabilities.add.unwrap_or_default(),
            drop: capabilities.drop.unwrap_or_default(),
        },
        privileged,
        read_only_root_filesystem: security.read_only_root_filesystem.unwrap_or(false),
        no_new_privileges: !privileged && security.allow_privilege_escalation == Some(false),
        oom_score_adj: None,
        annotations: Vec::new(),
    })
}

/// The container's volumeMounts as bind mounts of its pod's volumes; a subPath (or an expanded
/// subPathExpr) must stay inside its volume.
pub fn container_mounts(
    container: &Container,
    volumes: &PodVolumes,
    env: &HashMap<&str, &str>,
) -> Result<Vec<BindMount>, VolumeError> {
    let mut mounts = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let volume = volumes.get(&mount.name).ok_or_else(|| {
            VolumeError::Invalid(format!(
                "cannot find volume {:?} to mount into container {:?}",
                mount.name, container.name
            ))
        })?;
        let sub_path = match (&mount.sub_path, &mount.sub_path_expr) {
            (Some(path), _) if !path.is_empty() => path.clone(),
            (_, Some(expr)) if !expr.is_empty() => expand(expr, env),
            _ => String::new(),
        };
        let source = if sub_path.is_empty() {
            volume.to_path_buf()
        } else {
            subpath::resolve(volume, &sub_path)?
        };
        mounts.push(BindMount {
            source,
            destination: mount.mount_path.clone(),
            read_only: mount.read_only.unwrap_or(false) || volumes.is_read_only(&mount.name),
        });
    }
    Ok(mounts)
}

/// Upstream's verifyRunAsNonRoot: the user the container would run as must be provably non-root.
fn verify_run_as_non_root(
    pod: &Pod,
    container: &Container,
    run_as_user: Option<i64>,
    image_user: &str,
) -> Result<(), String> {
    let pod_name = format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default()
    );
    let name = &container.name;
    let user = image_user.split_once(':').map_or(image_user, |(u, _)| u);
    match (run_as_user, user.parse::<i64>()) {
        (Some(0), _) => Err(format!(
            "container's runAsUser breaks non-root policy (pod: {pod_name:?}, container: {name})"
        )),
        (Some(_), _) => Ok(()),
        (None, Err(_)) if !user.is_empty() => Err(format!(
            "container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root (pod: {pod_name:?}, container: {name})"
        )),
        (None, Ok(uid)) if uid != 0 => Ok(()),
        (None, _) => Err(format!(
            "container has runAsNonRoot and image will run as root (pod: {pod_name:?}, container: {name})"
        )),
    }
}

/// The image's `User` when numeric (`uid` or `uid:gid`); names are not resolved yet and run as root.
fn image_user(user: &str) -> (u32, u32) {
    let (uid, gid) = user.split_once(':').unwrap_or((user, ""));
    (uid.parse().unwrap_or(0), gid.parse().unwrap_or(0))
}

/// cgroup limits from the container's requests and limits, as upstream's for cgroup v1.
fn resources(container: &Container) -> Resources {
    let resources = container.resources.clone().unwrap_or_default();
    let requests = resources.requests.unwrap_or_default();
    let limits = resources.limits.unwrap_or_default();
    let milli = |list: &BTreeMap<String, Quantity>, name: &str| {
        list.get(name).and_then(|q| parse_milli(&q.0))
    };
    let cpu_request = milli(&requests, "cpu").or(milli(&limits, "cpu"));
    let cpu_limit = milli(&limits, "cpu");
    Resources {
        cpu_shares: Some(cpu_request.map_or(MIN_SHARES, |m| {
            (u64::try_from(m).unwrap_or(0) * 1024 / 1000).max(MIN_SHARES)
        })),
        cpu_quota: cpu_limit.map(|m| (m * CPU_PERIOD as i64 / 1000).max(1000)),
        cpu_period: cpu_limit.map(|_| CPU_PERIOD),
        memory_limit: limits.get("memory").and_then(|q| parse_value(&q.0)),
    }
}

#[cfg(test)]
#[path = "container_spec_tests.rs"]
mod tests;
