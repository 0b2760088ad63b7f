//! The kubelet's volume manager: sets up a pod's volumes under
//! `<root>/pods/<uid>/volumes/kubernetes.io~<plugin>/<name>` before its containers start, keeps
//! configMap/secret contents and service-account tokens current on every sync, and tears them down when
//! the pod is gone.

pub mod atomic_writer;
mod error;
pub mod host_path;
pub mod payload;
mod plugins;
mod pod_dirs;
pub mod subpath;
pub mod token;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::Pod;
use kube::Client;

pub use error::VolumeError;
use token::TokenCache;

/// Where each of a pod's volumes is on the host, by volume name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodVolumes {
    paths: BTreeMap<String, PathBuf>,
    /// Volumes every mount gets read-only whatever the volumeMount says (upstream's
    /// `GetAttributes().ReadOnly`: configMap, secret, downwardAPI, projected).
    read_only: BTreeSet<String>,
}

impl PodVolumes {
    /// The host path of volume `name`.
    pub fn get(&self, name: &str) -> Option<&Path> {
        self.paths.get(name).map(PathBuf::as_path)
    }

    /// Records volume `name` at `path`.
    pub fn insert(&mut self, name: impl Into<String>, path: impl Into<PathBuf>) {
        self.paths.insert(name.into(), path.into());
    }

    /// Records volume `name` at `path`, mounted read-only into every container.
    pub fn insert_read_only(&mut self, name: impl Into<String>, path: impl Into<PathBuf>) {
        let name = name.into();
        self.read_only.insert(name.clone());
        self.paths.insert(name, path.into());
    }

    /// Whether volume `name` is always mounted read-only.
    pub fn is_read_only(&self, name: &str) -> bool {
        self.read_only.contains(name)
    }

    /// Every volume and its host path.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Path)> {
        self.paths.iter().map(|(n, p)| (n.as_str(), p.as_path()))
    }
}

/// Sets up and tears down pods' volumes.
pub struct VolumeManager {
    client: Client,
    root_dir: PathBuf,
    tokens: TokenCache,
    /// The volumes of each pod as last set up in full, by pod uid.
    mounted: Mutex<HashMap<String, PodVolumes>>,
}

impl VolumeManager {
    /// A manager reading sources with `client` (the node's credentials) and keeping volumes under
    /// `root_dir/pods`.
    pub fn new(client: Client, root_dir: &Path) -> Self {
        // Mount points in /proc/self/mountinfo are canonical paths: compare like with like.
        let root_dir = root_dir
            .canonicalize()
            .unwrap_or_else(|_| root_dir.to_path_buf());
        Self {
            client,
            root_dir,
            tokens: TokenCache::default(),
            mounted: Mutex::default(),
        }
    }

    /// `<root>/pods/<uid>/volumes`.
    pub fn volumes_dir(&self, uid: &str) -> PathBuf {
        self.root_dir.join("pods").join(uid).join("volumes")
    }

    /// Sets up every volume of `pod` (idempotent: contents that did not change are left alone, tokens are
    /// renewed only when due). The first volume that fails is the error, as upstream's
    /// `MountVolume.SetUp failed for volume ...`.
    pub async fn mount_pod(&self, pod: &Pod) -> Result<PodVolumes, VolumeError> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut volumes = PodVolumes::default();
        let Some(spec) = pod.spec.as_ref() else {
            return Ok(volumes);
        };
        let context = plugins::Context {
            client: &self.client,
            tokens: &self.tokens,
            pod,
            volumes_dir: self.volumes_dir(&uid),
        };
        for volume in spec.volumes.iter().flatten() {
            let path =
                plugins::set_up(&context, volume)
                    .await
                    .map_err(|source| VolumeError::SetUp {
                        pod: format!(
                            "{}/{}",
                            pod.metadata.namespace.as_deref().unwrap_or_default(),
                            pod.metadata.name.as_deref().unwrap_or_default()
                        ),
                        volume: volume.name.clone(),
                        source: Box::new(source),
                    })?;
            let read_only = volume.config_map.is_some()
                || volume.secret.is_some()
                || volume.downward_api.is_some()
                || volume.projected.is_some();
            if read_only {
                volumes.insert_read_only(volume.name.clone(), path);
            } else {
                volumes.insert(volume.name.clone(), path);
            }
        }
        self.lock_mounted().insert(uid, volumes.clone());
        Ok(volumes)
    }

    /// The volumes of pod `uid` as last set up in full: a refresh that fails (an API hiccup, a deleted
    /// ConfigMap) leaves running containers their volumes, as upstream's remount does.
    pub fn mounted(&self, uid: &str) -> Option<PodVolumes> {
        self.lock_mounted().get(uid).cloned()
    }

    fn lock_mounted(&self) -> std::sync::MutexGuard<'_, HashMap<String, PodVolumes>> {
        self.mounted.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rewrites configMap/secret contents that changed and renews tokens that are due: the pod worker
    /// calls it on each sync.
    pub async fn refresh(&self, pod: &Pod) -> Result<(), VolumeError> {
        self.mount_pod(pod).await.map(|_| ())
    }

    /// Removes everything under `<root>/pods/<uid>/volumes`, unmounting tmpfs first; already gone is fine.
    pub async fn unmount_pod(&self, uid: &str) -> Result<(), VolumeError> {
        self.tokens.forget(uid);
        self.lock_mounted().remove(uid);
        let dir = self.volumes_dir(uid);
        if !dir.exists() {
            return Ok(());
        }
        let mountinfo = "/proc/self/mountinfo";
        let text =
            std::fs::read_to_string(mountinfo).map_err(VolumeError::io("read", mountinfo))?;
        let mut mounts: Vec<PathBuf> = crate::sandbox::namespaces::mount_points(&text)
            .into_iter()
            .filter(|m| m.starts_with(&dir))
            .collect();
        // Deepest first, so nested mounts go before their parents.
        mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
        for mount in mounts {
            plugins::unmount(&mount).await?;
        }
        std::fs::remove_dir_all(&dir).map_err(VolumeError::io("remove", &dir))
    }
}

#[cfg(test)]
#[path = "mod_tests.rs"]
mod tests;
