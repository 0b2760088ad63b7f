//! Pod sandboxes without a pause container: per pod a network namespace wired by the CNI plugins of
//! `--cni-conf-dir`, and IPC and UTS namespaces the pod's containers join. `hostNetwork` pods get none.
//!
//! The pod worker of a pod is the only caller for that pod, so calls for one UID never overlap.

pub mod cni;
mod error;
pub mod namespaces;
pub mod state;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use error::SandboxError;

use cni::{NetworkConfigList, PodRef};
use state::SandboxState;

/// The sandbox module's result type.
pub type Result<T, E = SandboxError> = std::result::Result<T, E>;

/// What the node's Ready condition reports while no network configuration is usable (upstream's text).
pub const NETWORK_NOT_READY: &str = "container runtime network not ready: NetworkReady=false \
     reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized";

/// A port protocol of a container port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    /// TCP, the API's default.
    #[default]
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// The API's spelling (`TCP`, `UDP`, `SCTP`); `None` for anything else.
    pub fn from_api(protocol: &str) -> Option<Self> {
        match protocol {
            "TCP" => Some(Self::Tcp),
            "UDP" => Some(Self::Udp),
            "SCTP" => Some(Self::Sctp),
            _ => None,
        }
    }

    /// The spelling CNI's portmap expects (lower case, as containerd sends it).
    pub fn as_cni(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }
}

/// A container port published on the node (`hostPort`), done by the portmap plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// The node's port; 0 means not published (such mappings are skipped).
    pub host_port: u16,
    /// The container's port.
    pub container_port: u16,
    /// The protocol.
    pub protocol: Protocol,
    /// The node address to publish on; `None` for all.
    #[serde(default)]
    pub host_ip: Option<IpAddr>,
}

/// What the pod worker asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxRequest {
    /// metadata.uid.
    pub uid: String,
    /// metadata.namespace.
    pub namespace: String,
    /// metadata.name.
    pub name: String,
    /// spec.hostname; empty means the pod name (see [`namespaces::pod_hostname`]).
    pub hostname: String,
    /// spec.hostNetwork.
    pub host_network: bool,
    /// The hostPorts of every container.
    pub port_mappings: Vec<PortMapping>,
}

/// A ready sandbox: the namespace files containers join, and the pod's IPs (IPv4 first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxStatus {
    /// The network namespace; `None` for hostNetwork pods.
    pub netns_path: Option<PathBuf>,
    /// The IPC namespace; `None` for hostNetwork pods.
    pub ipc_path: Option<PathBuf>,
    /// The UTS namespace; `None` for hostNetwork pods.
    pub uts_path: Option<PathBuf>,
    /// The pod IPs from CNI; empty for hostNetwork pods (their IPs are the node's).
    pub ips: Vec<IpAddr>,
}

/// Pod sandboxes of one kubelet.
#[derive(Debug, Clone)]
pub struct Sandbox {
    conf_dir: PathBuf,
    bin_dirs: Vec<PathBuf>,
    state_dir: PathBuf,
}

impl Sandbox {
    /// Sandboxes configured by `cni_conf_dir`, plugins from `cni_bin_dirs`, state under `state_dir`.
    pub fn new(
        cni_conf_dir: impl Into<PathBuf>,
        cni_bin_dirs: Vec<PathBuf>,
        state_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            conf_dir: cni_conf_dir.into(),
            bin_dirs: cni_bin_dirs,
            state_dir: state_dir.into(),
        }
    }

    /// Makes the pod's sandbox ready and returns it; for a ready one, the recorded status without running
    /// CNI again.
    pub async fn ensure(&self, pod: &SandboxRequest) -> Result<SandboxStatus> {
        crate::metrics::runtime_operation("run_podsandbox");
        validate_uid(&pod.uid)?;
        if pod.host_network {
            return Ok(SandboxStatus::default());
        }
        let dir = self.state_dir.join(&pod.uid);
        let recorded = state::load(&dir)?;
        if let Some(ready) = recorded.as_ref().filter(|s| is_ready(s)) {
            return Ok(status_of(ready));
        }
        let list = cni::config::load_from_dir(&self.conf_dir)?;
        let describe = PodRef {
            uid: &pod.uid,
            namespace: &pod.namespace,
            name: &pod.name,
        }
        .describe();
        std::fs::create_dir_all(&dir).map_err(|e| SandboxError::io(&dir, e))?;
        let netns = namespaces::create_network(&pod.uid, &describe).await?;
        let hostname = namespaces::pod_hostname(&pod.name, Some(&pod.hostname));
        let (ipc, uts) = (dir.join("ipc"), dir.join("uts"));
        namespaces::create_ipc_uts(&ipc, &uts, &hostname, &describe).await?;
        if let Some(previous) = &recorded {
            // An ADD that did not complete, or a sandbox whose namespace vanished, may still hold an IP.
            self.release(&dir, previous).await?;
        }
        let mut record = SandboxState {
            uid: pod.uid.clone(),
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            hostname,
            netns,
            ipc,
            uts,
            network: list.to_json(),
            port_mappings: pod.port_mappings.clone(),
            result: None,
        };
        // Recorded before ADD so that a crash during ADD still leaves what DEL needs.
        state::save(&dir, &record)?;
        let pod_ref = pod_ref(&record);
        let added = cni::add(
            &list,
            &pod_ref,
            &record.netns,
            &self.bin_dirs,
            &record.port_mappings,
        )
        .await;
        match added {
            Ok(result) => {
                record.result = Some(result);
                state::save(&dir, &record)?;
                tracing::info!(pod = %describe, ips = ?status_of(&record).ips, "pod sandbox ready");
                Ok(status_of(&record))
            }
            Err(error) => {
                // As containerd: undo the partial attachment now rather than keep an IP for a failed pod.
                if let Err(undo) = self.del(&dir, &record).await {
                    tracing::warn!(pod = %describe, error = %undo, "CNI DEL after a failed ADD failed");
                }
                Err(error)
            }
        }
    }

    /// Removes the pod's sandbox: CNI DEL with the recorded configuration, then its namespaces and state.
    /// Nothing recorded, or already removed, is fine.
    pub async fn remove(&self, uid: &str) -> Result<()> {
        crate::metrics::runtime_operation("remove_podsandbox");
        validate_uid(uid)?;
        let dir = self.state_dir.join(uid);
        let recorded = match state::load(&dir) {
            Ok(recorded) => recorded,
            Err(error @ SandboxError::State { .. }) => {
                // Nothing to DEL with; still free what can be freed.
                tracing::warn!(uid, %error, "removing a sandbox whose state cannot be read");
                None
            }
            Err(error) => return Err(error),
        };
        let describe = match &recorded {
            Some(record) => pod_ref(record).describe(),
            None => uid.to_string(),
        };
        if let Some(record) = &recorded {
            self.release(&dir, record).await?;
        }
        namespaces::remove_network(uid, &describe).await?;
        namespaces::remove_bound(&dir.join("ipc"), &describe).await?;
        namespaces::remove_bound(&dir.join("uts"), &describe).await?;
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SandboxError::io(&dir, e)),
        }
    }

    /// Whether pods can get a network: Err with upstream's message while no usable configuration exists.
    pub fn network_ready(&self) -> Result<(), String> {
        match cni::config::load_from_dir(&self.conf_dir) {
            Ok(_) => Ok(()),
            Err(error) => {
                tracing::debug!(%error, "network not ready");
                Err(NETWORK_NOT_READY.to_string())
            }
        }
    }

    /// The UIDs that have sandbox state, so sandboxes of pods that are gone can be removed.
    pub fn list(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.state_dir) else {
            return Vec::new();
        };
        let mut uids: Vec<String> = entries
            .filter_map(std::result::Result::ok)
            .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter(|name| validate_uid(name).is_ok())
            .collect();
        uids.sort();
        uids
    }

    /// CNI DEL of a recorded sandbox. When its ADD never completed, ensure already ran DEL after the
    /// failure, so a DEL failing now (say, the plugin is missing) is logged rather than keeping the pod
    /// from being retried or going away.
    async fn release(&self, dir: &Path, record: &SandboxState) -> Result<()> {
        match self.del(dir, record).await {
            Err(error) if record.result.is_none() => {
                let pod = pod_ref(record).describe();
                tracing::warn!(%pod, %error, "CNI DEL of an incomplete sandbox failed");
                Ok(())
            }
            done => done,
        }
    }

    /// CNI DEL of a recorded sandbox, with the netns if it still exists (plugins free IPs without it).
    async fn del(&self, dir: &Path, record: &SandboxState) -> Result<()> {
        let list = NetworkConfigList::from_json(&record.network, &dir.join(state::FILE))?;
        let netns = namespaces::is_mount_point(&record.netns)?.then_some(record.netns.as_path());
        cni::del(
            &list,
            &pod_ref(record),
            netns,
            &self.bin_dirs,
            &record.port_mappings,
            record.result.as_ref(),
        )
        .await
    }
}

fn pod_ref(record: &SandboxState) -> PodRef<'_> {
    PodRef {
        uid: &record.uid,
        namespace: &record.namespace,
        name: &record.name,
    }
}

/// Whether a recorded sandbox completed ADD and its namespaces still exist.
fn is_ready(record: &SandboxState) -> bool {
    record.result.is_some()
        && [&record.netns, &record.ipc, &record.uts]
            .into_iter()
            .all(|path| namespaces::is_mount_point(path).unwrap_or(false))
}

fn status_of(record: &SandboxState) -> SandboxStatus {
    SandboxStatus {
        netns_path: Some(record.netns.clone()),
        ipc_path: Some(record.ipc.clone()),
        uts_path: Some(record.uts.clone()),
        ips: record
            .result
            .as_ref()
            .map(cni::result::pod_ips)
            .unwrap_or_default(),
    }
}

/// UIDs name directories and namespaces, so only the characters of UUIDs and static-pod hashes pass.
fn validate_uid(uid: &str) -> Result<()> {
    let valid = !uid.is_empty()
        && uid.len() <= 128
        && !uid.starts_with('.')
        && uid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(SandboxError::InvalidUid {
            uid: uid.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_that_could_escape_the_state_dir_are_refused() {
        assert!(validate_uid("0b8c6c1e-2f4a-4a8e-9b7d-3c2e1f0a9b8c").is_ok());
        assert!(validate_uid("4f1c0e6d5b2a").is_ok());
        for bad in ["", "..", "../x", "a/b", ".hidden", "a b"] {
            assert!(validate_uid(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn api_protocols_map_to_cni_spelling() {
        assert_eq!(Protocol::from_api("UDP").map(Protocol::as_cni), Some("udp"));
        assert_eq!(Protocol::from_api("tcp"), None);
    }

    #[tokio::test]
    async fn host_network_pods_get_no_namespaces() {
        let sandbox = Sandbox::new("/nonexistent", vec![], "/nonexistent");
        let request = SandboxRequest {
            uid: "u1".into(),
            name: "p".into(),
            namespace: "ns".into(),
            host_network: true,
            ..Default::default()
        };
        assert_eq!(
            sandbox.ensure(&request).await.unwrap(),
            SandboxStatus::default()
        );
        assert_eq!(sandbox.network_ready(), Err(NETWORK_NOT_READY.to_string()));
        assert!(sandbox.list().is_empty());
    }
}
