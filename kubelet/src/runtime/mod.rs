//! The container runtime: containerd through its native gRPC API (no CRI), every request in the `k8s.io`
//! namespace. Images come from containerd's image store, containers are runc tasks started by the
//! `io.containerd.runc.v2` shim on an overlayfs snapshot, their output goes to CRI-format log files, and
//! containerd's event stream reports task exits.

mod container;
mod error;
mod events;
mod exec;
mod image;
pub mod logs;
pub mod reference;
pub mod spec;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use containerd_client::services::v1::GetImageRequest;
use containerd_client::services::v1::version_client::VersionClient;
use containerd_client::tonic::Request;
use containerd_client::tonic::metadata::MetadataValue;
use containerd_client::tonic::transport::Channel;
use tokio::task::JoinHandle;

pub use container::{ContainerSummary, ExitStatus, TaskState, TaskStatus};
pub use error::{Result, RuntimeError};
pub use events::{RuntimeEvent, TaskExit};
pub use exec::{ExecOutput, MAX_EXEC_OUTPUT};
pub use image::{ImageConfig, ImageSummary, chain_id};

/// The containerd namespace the kubelet's containers and images live in (the CRI plugin's).
pub const NAMESPACE: &str = "k8s.io";
/// The snapshotter containers' root filesystems come from (works on ext4 and xfs hosts, as here).
pub const DEFAULT_SNAPSHOTTER: &str = "overlayfs";
/// The shim that runs containers with runc.
pub const RUNC_RUNTIME: &str = "io.containerd.runc.v2";
/// Where the stdout/stderr FIFOs of containers are made unless [`Runtime::with_fifo_dir`] says otherwise.
pub const DEFAULT_FIFO_DIR: &str = "/run/ferrokube-kubelet/fifo";

/// A connection to containerd. Cheap to clone; clones share the log copiers.
#[derive(Clone, Debug)]
pub struct Runtime {
    channel: Channel,
    snapshotter: String,
    fifo_dir: PathBuf,
    /// The log copiers of each container, awaited when its output must be complete.
    copiers: Arc<Mutex<HashMap<String, Vec<JoinHandle<()>>>>>,
}

impl Runtime {
    /// Connects to containerd's gRPC socket.
    pub async fn connect(socket: &Path) -> Result<Self> {
        let channel =
            containerd_client::connect(socket)
                .await
                .map_err(|e| RuntimeError::Connect {
                    socket: socket.to_path_buf(),
                    message: error_chain(&e),
                })?;
        Ok(Self {
            channel,
            snapshotter: DEFAULT_SNAPSHOTTER.to_string(),
            fifo_dir: PathBuf::from(DEFAULT_FIFO_DIR),
            copiers: Arc::default(),
        })
    }

    /// Uses `dir` for the containers' output FIFOs (it must survive kubelet restarts, e.g. under /run).
    pub fn with_fifo_dir(mut self, dir: &Path) -> Self {
        self.fifo_dir = dir.to_path_buf();
        self
    }

    /// Uses snapshotter `name` instead of overlayfs.
    pub fn with_snapshotter(mut self, name: &str) -> Self {
        self.snapshotter = name.to_string();
        self
    }

    /// The snapshotter containers' root filesystems come from.
    pub fn snapshotter(&self) -> &str {
        &self.snapshotter
    }

    /// containerd's version, e.g. `1.6.20` (a Debian build's `~ds1` suffix dropped); the node reports
    /// `containerd://VERSION`.
    pub async fn version(&self) -> Result<String> {
        crate::metrics::runtime_operation("version");
        let response = VersionClient::new(self.channel.clone())
            .version(self.request(()))
            .await
            .map_err(|s| RuntimeError::rpc("version.Version", "containerd", s))?
            .into_inner();
        Ok(clean_version(&response.version))
    }

    /// Whether image `name` (fully qualified) is in the store.
    pub async fn has_image(&self, name: &str) -> Result<bool> {
        crate::metrics::runtime_operation("image_status");
        let found =
            containerd_client::services::v1::images_client::ImagesClient::new(self.channel.clone())
                .get(self.request(GetImageRequest {
                    name: name.to_string(),
                }))
                .await;
        match found {
            Ok(_) => Ok(true),
            Err(s) if s.code() == containerd_client::tonic::Code::NotFound => Ok(false),
            Err(s) => Err(RuntimeError::rpc("images.Get", name, s)),
        }
    }

    /// `message` as a request in the kubelet's containerd namespace.
    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.metadata_mut().insert(
            "containerd-namespace",
            MetadataValue::from_static(NAMESPACE),
        );
        request
    }
}

/// `1.6.20~ds1` → `1.6.20`; `v1.7.0` → `1.7.0`.
fn clean_version(raw: &str) -> String {
    let trimmed = raw.trim().trim_start_matches('v');
    trimmed
        .split(['~', '+'])
        .next()
        .unwrap_or(trimmed)
        .to_string()
}

/// An error with its sources, for messages (tonic's transport errors say little at the top).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_lose_distribution_suffixes() {
        assert_eq!(clean_version("1.6.20~ds1"), "1.6.20");
        assert_eq!(clean_version("v1.7.2"), "1.7.2");
        assert_eq!(clean_version("2.0.0+unknown"), "2.0.0");
    }
}
