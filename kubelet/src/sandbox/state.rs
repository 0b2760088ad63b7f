//! What is recorded about a sandbox in `<state_dir>/<uid>/sandbox.json`, so a restarted kubelet neither
//! re-runs CNI ADD for a ready sandbox nor forgets how to DEL one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::sandbox::{PortMapping, SandboxError};

/// The state file's name inside a sandbox's directory.
pub const FILE: &str = "sandbox.json";

/// A sandbox as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxState {
    /// metadata.uid.
    pub uid: String,
    /// metadata.namespace.
    pub namespace: String,
    /// metadata.name.
    pub name: String,
    /// The UTS namespace's hostname.
    pub hostname: String,
    /// The network namespace.
    pub netns: PathBuf,
    /// The bound IPC namespace.
    pub ipc: PathBuf,
    /// The bound UTS namespace.
    pub uts: PathBuf,
    /// The network configuration list ADD ran with (what DEL must use).
    pub network: Value,
    /// The port mappings ADD was given (portmap's DEL needs them again).
    #[serde(default)]
    pub port_mappings: Vec<PortMapping>,
    /// ADD's final result; absent while ADD has not completed.
    #[serde(default)]
    pub result: Option<Value>,
}

/// Reads the state in `dir`; `None` when there is none.
pub fn load(dir: &Path) -> Result<Option<SandboxState>, SandboxError> {
    let path = dir.join(FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(SandboxError::io(&path, e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| SandboxError::State {
            path,
            reason: e.to_string(),
        })
}

/// Writes the state in `dir` atomically, so a crash leaves the old or the new state, never half of one.
pub fn save(dir: &Path, state: &SandboxState) -> Result<(), SandboxError> {
    let path = dir.join(FILE);
    let temporary = dir.join(format!(".{FILE}.tmp"));
    let bytes = serde_json::to_vec_pretty(state).map_err(|e| SandboxError::State {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    std::fs::write(&temporary, bytes).map_err(|e| SandboxError::io(&temporary, e))?;
    std::fs::rename(&temporary, &path).map_err(|e| SandboxError::io(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::Protocol;

    #[test]
    fn state_round_trips_and_absent_state_is_none() {
        let dir = std::env::temp_dir().join(format!("fk-sbx-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(load(&dir).unwrap(), None);
        let state = SandboxState {
            uid: "u1".into(),
            namespace: "ns".into(),
            name: "p".into(),
            hostname: "p".into(),
            netns: "/run/netns/fk-u1".into(),
            ipc: dir.join("ipc"),
            uts: dir.join("uts"),
            network: serde_json::json!({"name": "n"}),
            port_mappings: vec![PortMapping {
                host_port: 8080,
                container_port: 80,
                protocol: Protocol::Tcp,
                host_ip: None,
            }],
            result: Some(serde_json::json!({"ips": []})),
        };
        save(&dir, &state).unwrap();
        assert_eq!(load(&dir).unwrap(), Some(state));
        std::fs::write(dir.join(FILE), "{").unwrap();
        assert!(matches!(load(&dir), Err(SandboxError::State { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
