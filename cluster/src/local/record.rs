//! The run record, `$FERROKUBE_HOME/up.json`: which `ferrokube up` process runs the cluster and the pid
//! and log of each component. It outlives a crash of `up`, so `down` knows what to stop.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::process::is_alive;

/// What a running (or crashed) cluster recorded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The `ferrokube up` process.
    pub pid: u32,
    /// The apiserver's URL.
    pub apiserver: String,
    /// Each component, in start order.
    pub components: Vec<ComponentRecord>,
}

/// One component.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComponentRecord {
    /// Its name, as `ferrokube logs` takes it.
    pub name: String,
    /// Its process id; `None` while it waits to be restarted.
    pub pid: Option<u32>,
    /// Its log file.
    pub log: PathBuf,
}

impl RunRecord {
    /// The record at `path`; `None` if there is none.
    pub fn load(path: &Path) -> Result<Option<Self>, Error> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path, e)),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })
    }

    /// Writes it to `path` atomically (a reader never sees half a record).
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(self).map_err(|e| {
            Error::io(
                path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })?;
        let partial = path.with_extension("json.partial");
        std::fs::write(&partial, text).map_err(|e| Error::io(&partial, e))?;
        std::fs::rename(&partial, path).map_err(|e| Error::io(path, e))
    }

    /// Whether its `ferrokube up` process still runs.
    pub fn is_running(&self) -> bool {
        self.pid != std::process::id() && is_alive(self.pid)
    }

    /// The component called `name`.
    pub fn component(&self, name: &str) -> Option<&ComponentRecord> {
        self.components.iter().find(|c| c.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("up.json");
        assert_eq!(RunRecord::load(&path).unwrap(), None);
        let record = RunRecord {
            pid: 42,
            apiserver: "https://127.0.0.1:6443".into(),
            components: vec![ComponentRecord {
                name: "kubelet-node-1".into(),
                pid: Some(7),
                log: dir.path().join("kubelet-node-1.log"),
            }],
        };
        record.save(&path).unwrap();
        assert_eq!(RunRecord::load(&path).unwrap(), Some(record.clone()));
        assert_eq!(record.component("kubelet-node-1").unwrap().pid, Some(7));
        assert!(record.component("etcd").is_none());
    }

    #[test]
    fn a_record_of_a_dead_process_is_not_running() {
        let record = RunRecord {
            pid: u32::MAX - 1,
            ..Default::default()
        };
        assert!(!record.is_running());
    }
}
