//! What can go wrong setting up or tearing down a pod's volumes.

use std::path::PathBuf;

/// A volume that could not be set up or torn down.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A non-optional ConfigMap the volume needs does not exist.
    #[error("configmap {name:?} not found")]
    ConfigMapNotFound {
        /// The ConfigMap's name.
        name: String,
    },
    /// A non-optional Secret the volume needs does not exist.
    #[error("secret {name:?} not found")]
    SecretNotFound {
        /// The Secret's name.
        name: String,
    },
    /// The apiserver refused or failed a read or a TokenRequest.
    #[error("{what} in namespace {namespace:?}: {}", component_base::client::error_message(.source))]
    Api {
        /// What was asked (`get configmap "x"`, `request a token for serviceaccount "default"`).
        what: String,
        /// The pod's namespace.
        namespace: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The source's content does not fit the volume (a missing key, a bad path, an unsupported source).
    #[error("{0}")]
    Invalid(String),
    /// A file system operation failed.
    #[error("{action} {path:?}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A volume of pod `pod` failed: upstream's `MountVolume.SetUp failed for volume "NAME" : ...`.
    #[error("MountVolume.SetUp failed for volume {volume:?} : {source}")]
    SetUp {
        /// `namespace/name` of the pod.
        pod: String,
        /// The volume's name.
        volume: String,
        /// Why.
        #[source]
        source: Box<VolumeError>,
    },
}

impl VolumeError {
    /// An I/O error while doing `action` at `path`.
    pub fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}
