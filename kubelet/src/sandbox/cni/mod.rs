//! The CNI client: runs a network configuration list's plugins for ADD and DEL, as libcni does.

pub mod config;
pub mod request;
pub mod result;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

pub use config::NetworkConfigList;
pub use request::{Command, PodRef};

use crate::sandbox::{PortMapping, SandboxError};

/// How long one plugin may run; bridge and host-local answer in milliseconds, so this only bounds a hang.
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(120);

/// The binary for plugin `plugin` (needed for `pod`): the first directory of `dirs` holding it.
pub fn find_plugin(plugin: &str, dirs: &[PathBuf], pod: &str) -> Result<PathBuf, SandboxError> {
    // A type with a separator would name a binary outside the plugin directories.
    if !plugin.contains('/')
        && !plugin.is_empty()
        && let Some(path) = dirs.iter().map(|d| d.join(plugin)).find(|p| p.is_file())
    {
        return Ok(path);
    }
    Err(SandboxError::PluginNotFound {
        pod: pod.to_string(),
        plugin: plugin.to_string(),
        dirs: dirs.to_vec(),
    })
}

/// Runs every plugin of `list` for ADD in order, each given the previous one's result; returns the last.
pub async fn add(
    list: &NetworkConfigList,
    pod: &PodRef<'_>,
    netns: &Path,
    bin_dirs: &[PathBuf],
    port_mappings: &[PortMapping],
) -> Result<Value, SandboxError> {
    let mut prev: Option<Value> = None;
    for plugin in &list.plugins {
        let stdin = request::plugin_stdin(list, plugin, prev.as_ref(), port_mappings);
        let plugin_type = NetworkConfigList::plugin_type(plugin);
        let stdout = run(
            list,
            plugin_type,
            Command::Add,
            pod,
            Some(netns),
            bin_dirs,
            &stdin,
        )
        .await?;
        let parsed =
            result::parse_result(&stdout).map_err(|reason| SandboxError::PluginResult {
                pod: pod.describe(),
                plugin: plugin_type.to_string(),
                command: Command::Add.as_str(),
                reason,
            })?;
        prev = Some(parsed);
    }
    prev.ok_or_else(|| SandboxError::Config {
        path: list.source.clone(),
        reason: "CNI config list has no networks".to_string(),
    })
}

/// Runs every plugin of `list` for DEL in reverse order, each given ADD's final result (spec 0.4.0+), so
/// portmap and bridge can find what they set up.
pub async fn del(
    list: &NetworkConfigList,
    pod: &PodRef<'_>,
    netns: Option<&Path>,
    bin_dirs: &[PathBuf],
    port_mappings: &[PortMapping],
    prev_result: Option<&Value>,
) -> Result<(), SandboxError> {
    for plugin in list.plugins.iter().rev() {
        let stdin = request::plugin_stdin(list, plugin, prev_result, port_mappings);
        let plugin_type = NetworkConfigList::plugin_type(plugin);
        run(
            list,
            plugin_type,
            Command::Del,
            pod,
            netns,
            bin_dirs,
            &stdin,
        )
        .await?;
    }
    Ok(())
}

/// Runs one plugin; its stdout on success, its CNI error otherwise.
async fn run(
    list: &NetworkConfigList,
    plugin_type: &str,
    command: Command,
    pod: &PodRef<'_>,
    netns: Option<&Path>,
    bin_dirs: &[PathBuf],
    stdin: &Value,
) -> Result<Vec<u8>, SandboxError> {
    let binary = find_plugin(plugin_type, bin_dirs, &pod.describe())?;
    let input = serde_json::to_vec(stdin).map_err(|e| SandboxError::PluginResult {
        pod: pod.describe(),
        plugin: plugin_type.to_string(),
        command: command.as_str(),
        reason: format!("cannot encode its configuration: {e}"),
    })?;
    let mut child = tokio::process::Command::new(&binary)
        .envs(request::environment(command, pod, netns, bin_dirs))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| SandboxError::Spawn {
            program: binary.display().to_string(),
            source,
        })?;
    if let Some(mut pipe) = child.stdin.take() {
        // A plugin that exits before reading its stdin reports why on stdout; the write error adds nothing.
        let _ = pipe.write_all(&input).await;
    }
    let output = match tokio::time::timeout(PLUGIN_TIMEOUT, child.wait_with_output()).await {
        Ok(output) => output.map_err(|source| SandboxError::Spawn {
            program: binary.display().to_string(),
            source,
        })?,
        Err(_) => {
            return Err(SandboxError::PluginTimeout {
                pod: pod.describe(),
                plugin: plugin_type.to_string(),
                command: command.as_str(),
                seconds: PLUGIN_TIMEOUT.as_secs(),
            });
        }
    };
    if output.status.success() {
        return Ok(output.stdout);
    }
    let error = result::parse_error(&output.stdout, &output.stderr, &output.status.to_string());
    Err(SandboxError::Plugin {
        pod: pod.describe(),
        plugin: plugin_type.to_string(),
        network: list.name.clone(),
        command: command.as_str(),
        error: Box::new(error),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugins_are_found_in_the_first_directory_holding_them() {
        let base = std::env::temp_dir().join(format!("fk-cni-bin-{}", std::process::id()));
        let (a, b) = (base.join("a"), base.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(b.join("bridge"), "").unwrap();
        std::fs::write(a.join("portmap"), "").unwrap();
        std::fs::write(b.join("portmap"), "").unwrap();
        let dirs = [a.clone(), b.clone()];
        assert_eq!(find_plugin("bridge", &dirs, "p").unwrap(), b.join("bridge"));
        assert_eq!(
            find_plugin("portmap", &dirs, "p").unwrap(),
            a.join("portmap")
        );
        let missing = find_plugin("flannel", &dirs, "ns/p").unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("failed to find plugin \"flannel\""),
            "{missing}"
        );
        assert!(missing.to_string().contains("pod ns/p"), "{missing}");
        assert!(find_plugin("../b/bridge", &dirs, "p").is_err());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
