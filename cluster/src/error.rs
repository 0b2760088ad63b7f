//! The cluster crate's one error type; every message names what failed and, where there is one, the fix.

use std::path::{Path, PathBuf};

/// What can go wrong starting or running a local control plane.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("generating certificates: {0}")]
    Pki(String),
    #[error(
        "upstream {name} not found at {path}: run `make upstream` (or `hack/upstream/build.sh {name}`) to build it"
    )]
    MissingUpstreamBinary { name: String, path: PathBuf },
    #[error("cannot start {name}: {source}")]
    Spawn {
        name: String,
        source: std::io::Error,
    },
    #[error("{name} exited ({status}) while starting; last lines of {log}:\n{tail}")]
    Exited {
        name: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("{name} was not ready after {seconds}s; see {log}")]
    NotReady {
        name: String,
        seconds: u64,
        log: PathBuf,
    },
    #[error("port {port} on 127.0.0.1 is in use (choose another port, or stop what uses it)")]
    PortInUse { port: u16 },
    #[error(
        "a ferrokube cluster is already running (pid {pid}, state in {dir}): stop it with Ctrl-C or `ferrokube down` first"
    )]
    AlreadyRunning { pid: u32, dir: PathBuf },
    #[error("{name} was not available after {seconds}s: {reason}")]
    Unavailable {
        name: String,
        seconds: u64,
        reason: String,
    },
    #[error("{0}")]
    InvalidArgument(String),
    #[error("demo step failed: {0}")]
    Demo(String),
    #[error(
        "{name} not found at {path}: build the workspace's binaries first (`cargo build --workspace --bins`; `make up` does)"
    )]
    MissingBinary { name: String, path: PathBuf },
    #[error("the {addon} objects: {message}")]
    AddonManifest {
        addon: &'static str,
        message: String,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    CommandFailed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("applying {object}: {}", component_base::client::error_message(.source))]
    Apply { object: String, source: kube::Error },
    #[error("talking to the apiserver: {}", component_base::client::error_message(.0))]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Client(#[from] component_base::client::ClientError),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
