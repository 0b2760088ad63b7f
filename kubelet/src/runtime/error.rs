//! The runtime module's one error type: every variant names the object and carries containerd's message.

use std::path::PathBuf;

/// What can go wrong talking to containerd.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The socket does not answer.
    #[error("cannot connect to containerd at {socket}: {message}")]
    Connect { socket: PathBuf, message: String },
    /// containerd refused or failed a call.
    #[error("containerd {call} failed for {object}: {message}")]
    Rpc {
        /// The gRPC call, e.g. `tasks.Create`.
        call: &'static str,
        /// The container, image or content the call was about.
        object: String,
        /// The gRPC status message.
        message: String,
        /// The gRPC status code.
        code: containerd_client::tonic::Code,
    },
    /// An image reference or an image's content that cannot be used.
    #[error("image {image}: {message}")]
    BadImage { image: String, message: String },
    /// The image's layers are not unpacked into the snapshotter containers are made from.
    #[error(
        "image {image} is not unpacked into the {snapshotter} snapshotter (snapshot {chain_id} missing)"
    )]
    NotUnpacked {
        image: String,
        snapshotter: String,
        chain_id: String,
    },
    /// Something about a container that is not a containerd error.
    #[error("container {container}: {message}")]
    Container { container: String, message: String },
    /// A local file of a container (log, FIFO) cannot be used.
    #[error("container {container}: {path}: {source}")]
    Io {
        container: String,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A command run in a container outlived its timeout and was killed (upstream's ExecSync message).
    #[error("command timed out: {command:?} timed out after {timeout}")]
    ExecTimeout { command: String, timeout: String },
    /// The event subscription failed or ended.
    #[error("the containerd event stream ended: {message}")]
    Events { message: String },
}

impl RuntimeError {
    /// Whether containerd said the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Rpc { code, .. } if *code == containerd_client::tonic::Code::NotFound)
    }

    /// A failed gRPC call about `object`.
    pub(crate) fn rpc(
        call: &'static str,
        object: impl Into<String>,
        status: containerd_client::tonic::Status,
    ) -> Self {
        Self::Rpc {
            call,
            object: object.into(),
            message: status.message().to_string(),
            code: status.code(),
        }
    }
}

/// The runtime module's result type.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
