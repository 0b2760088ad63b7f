//! The node's and its pods' resource usage, read from cgroups (upstream's stats provider over cadvisor):
//! what `/stats/summary` and `/metrics/resource` serve.

pub mod cgroup;
pub mod network;
pub mod provider;
pub mod resource;
pub mod summary;

use std::path::PathBuf;

pub use provider::StatsProvider;

/// Why stats could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse {path}: {text:?} is not a number")]
    Parse { path: PathBuf, text: String },
    #[error("cannot list the containers: {0}")]
    Runtime(#[from] crate::runtime::RuntimeError),
    #[error("the stats reader stopped: {0}")]
    Reader(#[from] tokio::task::JoinError),
}
