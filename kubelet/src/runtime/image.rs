//! Images in containerd's store: the list the node reports and the config a container is made from.

use std::collections::BTreeMap;

use containerd_client::services::v1::content_client::ContentClient;
use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::{GetImageRequest, ListImagesRequest, ReadContentRequest};
use containerd_client::tonic::Code;
use containerd_client::types::Descriptor;
use futures::StreamExt;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::error::{Result, RuntimeError};
use super::{Runtime, reference};

/// One image as Node.status.images lists it: every name of one digest together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    /// Repository tags and digests, e.g. `docker.io/library/busybox:latest`,
    /// `docker.io/library/busybox@sha256:...`.
    pub names: Vec<String>,
    /// The digest of the image's target (its manifest or index).
    pub digest: String,
    /// The image ID (config digest).
    pub id: String,
    /// Bytes of the image's content for this platform: index, manifest, config and (compressed) layers.
    pub size: u64,
}

/// What a container is made from: the image's runtime config and its root filesystem's snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// The name it was found under (normalised).
    pub name: String,
    /// The image ID: the config's digest.
    pub id: String,
    /// The digest of the image's target (manifest or index), for `imageID` in container statuses.
    pub digest: String,
    /// Entrypoint.
    pub entrypoint: Vec<String>,
    /// Cmd.
    pub cmd: Vec<String>,
    /// Env as `NAME=value`.
    pub env: Vec<String>,
    /// WorkingDir; empty for `/`.
    pub working_dir: String,
    /// User (`uid`, `uid:gid`, or a name); empty for root.
    pub user: String,
    /// StopSignal (e.g. `SIGQUIT`); empty for SIGTERM.
    pub stop_signal: String,
    /// The chain ID of the root filesystem: the committed snapshot containers are prepared from.
    pub chain_id: String,
    /// Total size of the image's content.
    pub size: u64,
}

/// The OCI / Docker manifest and index fields we read.
#[derive(Debug, Deserialize)]
struct Manifest {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    #[serde(default)]
    config: Option<OciDescriptor>,
    #[serde(default)]
    layers: Vec<OciDescriptor>,
    #[serde(default)]
    manifests: Vec<OciDescriptor>,
}

#[derive(Debug, Deserialize)]
struct OciDescriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Debug, Deserialize)]
struct Platform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

/// The image config document (`application/vnd.oci.image.config.v1+json`).
#[derive(Debug, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    config: Option<RuntimeConfig>,
    rootfs: RootFs,
}

#[derive(Debug, Default, Deserialize)]
struct RuntimeConfig {
    #[serde(rename = "Entrypoint", default)]
    entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    cmd: Option<Vec<String>>,
    #[serde(rename = "Env", default)]
    env: Option<Vec<String>>,
    #[serde(rename = "WorkingDir", default)]
    working_dir: Option<String>,
    #[serde(rename = "User", default)]
    user: Option<String>,
    #[serde(rename = "StopSignal", default)]
    stop_signal: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

/// The chain ID of layers with `diff_ids` (OCI image spec): the first diff ID, then
/// `sha256(parent + " " + diff_id)` for each next layer.
pub fn chain_id(diff_ids: &[String]) -> Option<String> {
    let mut ids = diff_ids.iter();
    let mut chain = ids.next()?.clone();
    for diff in ids {
        let digest = Sha256::digest(format!("{chain} {diff}").as_bytes());
        chain = format!("sha256:{digest:x}");
    }
    Some(chain)
}

/// This machine's architecture in OCI's words.
fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        other => other,
    }
}

/// Whether a media type is an index (manifest list) rather than a manifest.
fn is_index(media_type: &str) -> bool {
    media_type.ends_with("image.index.v1+json") || media_type.ends_with("manifest.list.v2+json")
}

impl Runtime {
    /// Every image in the store, the names of one digest together, with its size.
    pub async fn list_images(&self) -> Result<Vec<ImageSummary>> {
        crate::metrics::runtime_operation("list_images");
        let images = ImagesClient::new(self.channel.clone())
            .list(self.request(ListImagesRequest { filters: vec![] }))
            .await
            .map_err(|s| RuntimeError::rpc("images.List", "all images", s))?
            .into_inner()
            .images;
        let mut by_digest: BTreeMap<String, (Vec<String>, Descriptor)> = BTreeMap::new();
        for image in images {
            let Some(target) = image.target else {
                continue;
            };
            let entry = by_digest
                .entry(target.digest.clone())
                .or_insert_with(|| (Vec::new(), target));
            entry.0.push(image.name);
        }
        let mut summaries = Vec::with_capacity(by_digest.len());
        for (digest, (refs, target)) in by_digest {
            let resolved = match self.resolve(&refs[0], &target).await {
                Ok(resolved) => resolved,
                // An image whose content is partly gone is left out, not an error for the whole list.
                Err(e) => {
                    tracing::warn!("skipping image {}: {e}", refs[0]);
                    continue;
                }
            };
            let mut names: Vec<String> = Vec::new();
            for name in &refs {
                // The CRI plugin also names images by their ID; those are not repository names.
                if name.starts_with("sha256:") {
                    continue;
                }
                if !names.contains(name) {
                    names.push(name.clone());
                }
                let by_digest = format!("{}@{digest}", reference::repository(name));
                if !names.contains(&by_digest) {
                    names.push(by_digest);
                }
            }
            summaries.push(ImageSummary {
                names,
                digest,
                id: resolved.id,
                size: resolved.size,
            });
        }
        Ok(summaries)
    }

    /// The image a pod names (`busybox`, `foo/bar:1`, ...), normalised as the kubelet does, with its config;
    /// `None` when it is not in the store.
    pub async fn image(&self, name: &str) -> Result<Option<ImageConfig>> {
        crate::metrics::runtime_operation("image_status");
        let normalized = reference::normalize(name).map_err(|message| RuntimeError::BadImage {
            image: name.to_string(),
            message,
        })?;
        let found = ImagesClient::new(self.channel.clone())
            .get(self.request(GetImageRequest {
                name: normalized.clone(),
            }))
            .await;
        let image = match found {
            Ok(response) => response.into_inner().image,
            Err(s) if s.code() == Code::NotFound => return Ok(None),
            Err(s) => return Err(RuntimeError::rpc("images.Get", normalized, s)),
        };
        let Some(target) = image.and_then(|i| i.target) else {
            return Ok(None);
        };
        self.resolve(&normalized, &target).await.map(Some)
    }

    /// Reads the manifest (through an index, for this platform) and config of `target`.
    async fn resolve(&self, name: &str, target: &Descriptor) -> Result<ImageConfig> {
        let bad = |message: String| RuntimeError::BadImage {
            image: name.to_string(),
            message,
        };
        let mut size = u64::try_from(target.size).unwrap_or(0);
        let mut manifest: Manifest = self.read_json(name, &target.digest).await?;
        if is_index(&target.media_type) || is_index(&manifest.media_type) {
            let arch = host_architecture();
            let chosen = manifest
                .manifests
                .iter()
                .find(|m| {
                    m.platform
                        .as_ref()
                        .is_some_and(|p| p.os == "linux" && p.architecture == arch)
                })
                .or_else(|| manifest.manifests.iter().find(|m| m.platform.is_none()))
                .ok_or_else(|| bad(format!("no manifest for linux/{arch} in the index")))?;
            size += chosen.size;
            let digest = chosen.digest.clone();
            manifest = self.read_json(name, &digest).await?;
        }
        let config_descriptor = manifest
            .config
            .as_ref()
            .ok_or_else(|| bad("the manifest has no config".to_string()))?;
        size += config_descriptor.size + manifest.layers.iter().map(|l| l.size).sum::<u64>();
        let config: ConfigFile = self.read_json(name, &config_descriptor.digest).await?;
        let chain_id = chain_id(&config.rootfs.diff_ids)
            .ok_or_else(|| bad("the image has no layers".to_string()))?;
        let runtime = config.config.unwrap_or_default();
        // Only media types we understand describe layers containerd can unpack; say so early otherwise.
        if let Some(layer) = manifest
            .layers
            .iter()
            .find(|l| !l.media_type.contains("layer") && !l.media_type.is_empty())
        {
            return Err(bad(format!(
                "unknown layer media type {}",
                layer.media_type
            )));
        }
        Ok(ImageConfig {
            name: name.to_string(),
            id: config_descriptor.digest.clone(),
            digest: target.digest.clone(),
            entrypoint: runtime.entrypoint.unwrap_or_default(),
            cmd: runtime.cmd.unwrap_or_default(),
            env: runtime.env.unwrap_or_default(),
            working_dir: runtime.working_dir.unwrap_or_default(),
            user: runtime.user.unwrap_or_default(),
            stop_signal: runtime.stop_signal.unwrap_or_default(),
            chain_id,
            size,
        })
    }

    /// Reads blob `digest` from the content store and parses it as JSON.
    async fn read_json<T: serde::de::DeserializeOwned>(
        &self,
        image: &str,
        digest: &str,
    ) -> Result<T> {
        let mut stream = ContentClient::new(self.channel.clone())
            .read(self.request(ReadContentRequest {
                digest: digest.to_string(),
                offset: 0,
                size: 0,
            }))
            .await
            .map_err(|s| RuntimeError::rpc("content.Read", format!("{image} ({digest})"), s))?
            .into_inner();
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk
                .map_err(|s| RuntimeError::rpc("content.Read", format!("{image} ({digest})"), s))?;
            bytes.extend_from_slice(&chunk.data);
        }
        serde_json::from_slice(&bytes).map_err(|e| RuntimeError::BadImage {
            image: image.to_string(),
            message: format!("{digest}: {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_id_of_one_layer_is_its_diff_id() {
        assert_eq!(chain_id(&["sha256:aa".to_string()]).unwrap(), "sha256:aa");
        assert_eq!(chain_id(&[]), None);
    }

    #[test]
    fn chain_id_hashes_parent_and_diff() {
        let a = "sha256:a".to_string();
        let b = "sha256:b".to_string();
        let expected = format!("sha256:{:x}", Sha256::digest(b"sha256:a sha256:b"));
        assert_eq!(chain_id(&[a, b]).unwrap(), expected);
    }

    #[test]
    fn index_media_types() {
        assert!(is_index("application/vnd.oci.image.index.v1+json"));
        assert!(is_index(
            "application/vnd.docker.distribution.manifest.list.v2+json"
        ));
        assert!(!is_index("application/vnd.oci.image.manifest.v1+json"));
    }
}
