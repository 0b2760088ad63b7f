//! The sandbox's one error type: every message names the pod, the plugin or the file involved.

use std::path::PathBuf;

use super::cni::result::PluginError;

/// What can go wrong setting up or tearing down a pod sandbox.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The pod UID cannot name a namespace or a directory (it would escape the state directory).
    #[error("invalid pod UID {uid:?}: only letters, digits, '-', '_' and '.' are allowed")]
    InvalidUid { uid: String },
    /// No usable network configuration: the node is not network-ready.
    #[error("no network config found in {dir}: cni plugin not initialized")]
    NotInitialized { dir: PathBuf },
    /// A network configuration file that libcni would refuse.
    #[error("invalid CNI config {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    /// A plugin named by the configuration is in none of the binary directories.
    #[error("failed to find plugin {plugin:?} in path {dirs:?} (pod {pod})")]
    PluginNotFound {
        pod: String,
        plugin: String,
        dirs: Vec<PathBuf>,
    },
    /// A plugin answered with a CNI error (or exited non-zero): its `code`, `msg` and `details`.
    #[error("plugin type={plugin:?} name={network:?} failed ({command}) for pod {pod}: {error}")]
    Plugin {
        pod: String,
        plugin: String,
        network: String,
        command: &'static str,
        error: Box<PluginError>,
    },
    /// A plugin succeeded but its result is not a CNI result.
    #[error(
        "plugin type={plugin:?} ({command}) for pod {pod} returned an invalid result: {reason}"
    )]
    PluginResult {
        pod: String,
        plugin: String,
        command: &'static str,
        reason: String,
    },
    /// A plugin did not answer in time.
    #[error("plugin type={plugin:?} ({command}) for pod {pod} timed out after {seconds}s")]
    PluginTimeout {
        pod: String,
        plugin: String,
        command: &'static str,
        seconds: u64,
    },
    /// A helper program (ip, unshare, umount) could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    /// A helper program failed.
    #[error("{command} failed for pod {pod} ({status}): {stderr}")]
    Command {
        pod: String,
        command: String,
        status: String,
        stderr: String,
    },
    /// Reading or writing a file of the sandbox's state.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A recorded sandbox state file that cannot be read back.
    #[error("corrupt sandbox state {path}: {reason}")]
    State { path: PathBuf, reason: String },
}

impl SandboxError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
