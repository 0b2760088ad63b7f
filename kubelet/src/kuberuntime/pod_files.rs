//! The files the kubelet makes for a pod's containers — /etc/hosts, /etc/resolv.conf and /etc/hostname —
//! under `<root>/pods/<uid>/` (upstream's etc-hosts there; resolv.conf and hostname are what containerd's
//! CRI plugin writes in its sandbox directory, which the kubelet owns here as there is no CRI), and the
//! bind mounts that put them in each container.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::dns::DnsConfigurer;
use crate::dns::hosts::{host_network_hosts, hostname_and_domain, managed_hosts};
use crate::runtime::spec::BindMount;
use crate::sandbox::SandboxStatus;

const ETC_HOSTS: &str = "/etc/hosts";
const RESOLV_CONF: &str = "/etc/resolv.conf";
const HOSTNAME: &str = "/etc/hostname";

/// Makes pods' hosts, resolv.conf and hostname files.
#[derive(Debug, Clone)]
pub struct PodFiles {
    dns: DnsConfigurer,
    pods_dir: PathBuf,
}

impl PodFiles {
    /// Files under `pods_dir/<uid>/`, DNS settings from `dns`.
    pub fn new(dns: DnsConfigurer, pods_dir: &Path) -> Self {
        Self {
            dns,
            pods_dir: pods_dir.to_path_buf(),
        }
    }

    fn dir(&self, uid: &str) -> PathBuf {
        self.pods_dir.join(uid)
    }

    /// Writes the pod's files for its `sandbox` (rewritten in place, so running containers that bind
    /// them see the new content); returns the warnings (event reason, message) about its DNS settings.
    pub fn write(
        &self,
        pod: &Pod,
        sandbox: &SandboxStatus,
    ) -> std::io::Result<Vec<(&'static str, String)>> {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let spec = pod.spec.clone().unwrap_or_default();
        let aliases = spec.host_aliases.clone().unwrap_or_default();
        let (hostname, domain) = hostname_and_domain(pod, &self.dns.cluster_domain);
        let hosts = if spec.host_network.unwrap_or(false) {
            host_network_hosts(&std::fs::read_to_string(ETC_HOSTS)?, &aliases)
        } else {
            let ips: Vec<String> = sandbox.ips.iter().map(ToString::to_string).collect();
            managed_hosts(&ips, &hostname, domain.as_deref(), &aliases)
        };
        let dns = self.dns.pod_dns(pod);
        let dir = self.dir(uid);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("etc-hosts"), hosts)?;
        std::fs::write(dir.join("resolv.conf"), dns.config.resolv_conf())?;
        std::fs::write(dir.join("hostname"), format!("{hostname}\n"))?;
        Ok(dns.warnings)
    }

    /// Makes the empty, world-writable file a container writes its termination message to (upstream's
    /// `<pod dir>/containers/<name>/<random>`, a new one per attempt).
    pub fn termination_message_file(&self, uid: &str, container: &str) -> std::io::Result<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.dir(uid).join("containers").join(container);
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{:08x}", rand::random::<u32>()));
        std::fs::write(&path, "")?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))?;
        Ok(path)
    }

    /// The container's mounts of the pod's files; a path the container mounts a volume at is left to the
    /// volume (upstream does so for /etc/hosts).
    pub fn mounts(&self, uid: &str, container: &Container) -> Vec<BindMount> {
        let dir = self.dir(uid);
        let taken = |path: &str| {
            container
                .volume_mounts
                .iter()
                .flatten()
                .any(|m| m.mount_path.trim_end_matches('/') == path)
        };
        [
            (ETC_HOSTS, "etc-hosts"),
            (RESOLV_CONF, "resolv.conf"),
            (HOSTNAME, "hostname"),
        ]
        .into_iter()
        .filter(|(path, _)| !taken(path))
        .map(|(path, file)| BindMount {
            source: dir.join(file),
            destination: path.to_string(),
            read_only: false,
        })
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::VolumeMount;

    use super::*;

    #[test]
    fn containers_get_the_pod_files_unless_they_mount_a_volume_there() {
        let files = PodFiles::new(DnsConfigurer::default(), Path::new("/var/lib/kubelet/pods"));
        let mut container = Container {
            name: "c".into(),
            ..Container::default()
        };
        let destinations = |mounts: Vec<BindMount>| -> Vec<String> {
            mounts.into_iter().map(|m| m.destination).collect()
        };
        let mounts = files.mounts("u1", &container);
        assert_eq!(
            mounts[0].source,
            Path::new("/var/lib/kubelet/pods/u1/etc-hosts")
        );
        assert_eq!(
            destinations(mounts),
            ["/etc/hosts", "/etc/resolv.conf", "/etc/hostname"]
        );
        container.volume_mounts = Some(vec![VolumeMount {
            name: "hosts".into(),
            mount_path: "/etc/hosts".into(),
            ..VolumeMount::default()
        }]);
        assert_eq!(
            destinations(files.mounts("u1", &container)),
            ["/etc/resolv.conf", "/etc/hostname"]
        );
    }
}
