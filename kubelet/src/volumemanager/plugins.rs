//! Setting up one volume by its kind (upstream's volume plugins): emptyDir, hostPath, configMap, secret,
//! downwardAPI and projected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    ConfigMap, DownwardAPIVolumeFile, Node, Pod, Secret, Volume, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{Api, Client};

use super::payload::{
    DEFAULT_MODE, FileProjection, Payload, downward_payload, fs_group, fs_user, keyed_payload,
    reads_resources, with_fs_group,
};
use super::token::{DEFAULT_EXPIRATION_SECONDS, TokenCache, TokenKey};
use super::{VolumeError, atomic_writer, host_path};

/// What setting up a pod's volumes needs.
pub struct Context<'a> {
    /// The node's client.
    pub client: &'a Client,
    /// The tokens held.
    pub tokens: &'a TokenCache,
    /// The pod.
    pub pod: &'a Pod,
    /// `<root>/pods/<uid>/volumes`.
    pub volumes_dir: PathBuf,
}

impl Context<'_> {
    fn namespace(&self) -> String {
        self.pod.metadata.namespace.clone().unwrap_or_default()
    }

    fn dir(&self, plugin: &str, name: &str) -> PathBuf {
        self.volumes_dir
            .join(format!("kubernetes.io~{plugin}"))
            .join(name)
    }
}

/// Sets `volume` up; returns its host path.
pub async fn set_up(context: &Context<'_>, volume: &Volume) -> Result<PathBuf, VolumeError> {
    let name = &volume.name;
    if let Some(source) = &volume.host_path {
        host_path::set_up(&source.path, source.type_.as_deref().unwrap_or_default())?;
        return Ok(PathBuf::from(&source.path));
    }
    if let Some(source) = &volume.empty_dir {
        let dir = context.dir("empty-dir", name);
        make_dir(&dir, 0o777)?;
        if source.medium.as_deref() == Some("Memory") {
            let size = source
                .size_limit
                .as_ref()
                .and_then(|q| component_base::quantity::parse_value(&q.0))
                .filter(|s| *s > 0);
            mount_tmpfs(&dir, size).await?;
        }
        if let Some(gid) = fs_group(context.pod) {
            // What containers create there belongs to the fsGroup (setgid), as upstream's.
            use std::os::unix::fs::PermissionsExt;
            std::os::unix::fs::chown(&dir, None, Some(gid))
                .map_err(VolumeError::io("chown", &dir))?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o2777))
                .map_err(VolumeError::io("chmod", &dir))?;
        }
        return Ok(dir);
    }
    if let Some(source) = &volume.config_map {
        let optional = source.optional.unwrap_or(false);
        let data = config_map_data(context, &source.name, optional).await?;
        let payload = keyed_payload(
            "configmap",
            &data.unwrap_or_default(),
            source.items.as_deref(),
            source.default_mode.unwrap_or(DEFAULT_MODE),
            optional,
        )?;
        let dir = context.dir("configmap", name);
        make_dir(&dir, 0o777)?;
        atomic_writer::write(&dir, &with_fs_group(payload, fs_group(context.pod)))?;
        return Ok(dir);
    }
    if let Some(source) = &volume.secret {
        let optional = source.optional.unwrap_or(false);
        let secret_name = source.secret_name.clone().unwrap_or_default();
        let data = secret_data(context, &secret_name, optional).await?;
        let payload = keyed_payload(
            "secret",
            &data.unwrap_or_default(),
            source.items.as_deref(),
            source.default_mode.unwrap_or(DEFAULT_MODE),
            optional,
        )?;
        // Secrets never touch the disk: their volume is a tmpfs, as upstream's.
        let dir = context.dir("secret", name);
        make_dir(&dir, 0o777)?;
        mount_tmpfs(&dir, None).await?;
        atomic_writer::write(&dir, &with_fs_group(payload, fs_group(context.pod)))?;
        return Ok(dir);
    }
    if let Some(source) = &volume.downward_api {
        let items = source.items.as_deref().unwrap_or_default();
        let payload = downward_payload(
            context.pod,
            items,
            source.default_mode.unwrap_or(DEFAULT_MODE),
            &allocatable(context, items).await,
        )?;
        let dir = context.dir("downward-api", name);
        make_dir(&dir, 0o777)?;
        atomic_writer::write(&dir, &with_fs_group(payload, fs_group(context.pod)))?;
        return Ok(dir);
    }
    if let Some(source) = &volume.projected {
        let default_mode = source.default_mode.unwrap_or(DEFAULT_MODE);
        let mut payload = Payload::new();
        for projection in source.sources.iter().flatten() {
            payload.extend(projection_payload(context, projection, default_mode).await?);
        }
        let dir = context.dir("projected", name);
        make_dir(&dir, 0o777)?;
        mount_tmpfs(&dir, None).await?;
        atomic_writer::write(&dir, &with_fs_group(payload, fs_group(context.pod)))?;
        return Ok(dir);
    }
    Err(VolumeError::Invalid(format!(
        "volume {name:?} is of a kind this kubelet does not support"
    )))
}

/// The files one source of a projected volume adds.
async fn projection_payload(
    context: &Context<'_>,
    projection: &VolumeProjection,
    default_mode: i32,
) -> Result<Payload, VolumeError> {
    if let Some(source) = &projection.config_map {
        let optional = source.optional.unwrap_or(false);
        let data = config_map_data(context, &source.name, optional).await?;
        return keyed_payload(
            "configmap",
            &data.unwrap_or_default(),
            source.items.as_deref(),
            default_mode,
            optional,
        );
    }
    if let Some(source) = &projection.secret {
        let optional = source.optional.unwrap_or(false);
        let name = source.name.clone();
        let data = secret_data(context, &name, optional).await?;
        return keyed_payload(
            "secret",
            &data.unwrap_or_default(),
            source.items.as_deref(),
            default_mode,
            optional,
        );
    }
    if let Some(source) = &projection.downward_api {
        let items = source.items.as_deref().unwrap_or_default();
        return downward_payload(
            context.pod,
            items,
            default_mode,
            &allocatable(context, items).await,
        );
    }
    if let Some(source) = &projection.service_account_token {
        let spec = context.pod.spec.as_ref();
        let key = TokenKey {
            pod_uid: context.pod.metadata.uid.clone().unwrap_or_default(),
            service_account: spec
                .and_then(|s| s.service_account_name.clone())
                .unwrap_or_else(|| "default".to_string()),
            audience: source.audience.clone().unwrap_or_default(),
            expiration_seconds: source
                .expiration_seconds
                .unwrap_or(DEFAULT_EXPIRATION_SECONDS),
        };
        let token = context
            .tokens
            .get(context.client, context.pod, &key)
            .await?;
        // A pod running as one user, or with an fsGroup, gets a token only it can read (upstream's 0600,
        // 0640 once the fsGroup is applied).
        let user = fs_user(context.pod);
        let restricted = user.is_some() || fs_group(context.pod).is_some();
        let mut payload = Payload::new();
        payload.insert(
            source.path.clone(),
            FileProjection {
                data: token.into_bytes(),
                mode: if restricted { 0o600 } else { default_mode },
                uid: user,
                gid: None,
            },
        );
        return Ok(payload);
    }
    if projection.cluster_trust_bundle.is_some() {
        return Err(VolumeError::Invalid(
            "clusterTrustBundle projections are not supported by this kubelet".to_string(),
        ));
    }
    Err(VolumeError::Invalid(
        "a projected volume source of a kind this kubelet does not support".to_string(),
    ))
}

/// The pod's node's allocatable resources, read only when `items` need them; unknown (empty) when the
/// node cannot be read.
async fn allocatable(
    context: &Context<'_>,
    items: &[DownwardAPIVolumeFile],
) -> BTreeMap<String, Quantity> {
    let node = context
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref());
    let (true, Some(node)) = (reads_resources(items), node) else {
        return BTreeMap::new();
    };
    let api: Api<Node> = Api::all(context.client.clone());
    match api.get(node).await {
        Ok(node) => node.status.and_then(|s| s.allocatable).unwrap_or_default(),
        Err(e) => {
            tracing::warn!(node, error = %e, "cannot read the node's allocatable resources");
            BTreeMap::new()
        }
    }
}

/// A ConfigMap's `data` and `binaryData` by key; `None` when it does not exist and is optional.
async fn config_map_data(
    context: &Context<'_>,
    name: &str,
    optional: bool,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, VolumeError> {
    let namespace = context.namespace();
    let api: Api<ConfigMap> = Api::namespaced(context.client.clone(), &namespace);
    let found = api.get_opt(name).await.map_err(|source| VolumeError::Api {
        what: format!("get configmap {name:?}"),
        namespace,
        source,
    })?;
    let Some(config_map) = found else {
        return if optional {
            Ok(None)
        } else {
            Err(VolumeError::ConfigMapNotFound {
                name: name.to_string(),
            })
        };
    };
    let mut data: BTreeMap<String, Vec<u8>> = config_map
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    data.extend(
        config_map
            .binary_data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0)),
    );
    Ok(Some(data))
}

/// A Secret's `data` by key; `None` when it does not exist and is optional.
async fn secret_data(
    context: &Context<'_>,
    name: &str,
    optional: bool,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, VolumeError> {
    let namespace = context.namespace();
    let api: Api<Secret> = Api::namespaced(context.client.clone(), &namespace);
    let found = api.get_opt(name).await.map_err(|source| VolumeError::Api {
        what: format!("get secret {name:?}"),
        namespace,
        source,
    })?;
    match found {
        Some(secret) => Ok(Some(
            secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect(),
        )),
        None if optional => Ok(None),
        None => Err(VolumeError::SecretNotFound {
            name: name.to_string(),
        }),
    }
}

fn make_dir(dir: &Path, mode: u32) -> Result<(), VolumeError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
        .map_err(VolumeError::io("create", dir))?;
    // The umask would narrow the mode given to mkdir.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .map_err(VolumeError::io("chmod", dir))
}

/// Mounts a tmpfs on `dir` unless one is there already.
async fn mount_tmpfs(dir: &Path, size: Option<i64>) -> Result<(), VolumeError> {
    if crate::sandbox::namespaces::is_mount_point(dir).unwrap_or(false) {
        return Ok(());
    }
    let mut options = "mode=0777".to_string();
    if let Some(size) = size {
        options.push_str(&format!(",size={size}"));
    }
    let target = dir.display().to_string();
    run("mount", &["-t", "tmpfs", "-o", &options, "tmpfs", &target]).await
}

/// Unmounts `path` (lazily, so a container still holding it does not block the pod's clean-up).
pub async fn unmount(path: &Path) -> Result<(), VolumeError> {
    let target = path.display().to_string();
    run("umount", &["-l", &target]).await
}

async fn run(program: &'static str, args: &[&str]) -> Result<(), VolumeError> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .output()
        .await
        .map_err(VolumeError::io("run", program))?;
    if output.status.success() {
        return Ok(());
    }
    Err(VolumeError::Invalid(format!(
        "{program} {}: {}: {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    )))
}
