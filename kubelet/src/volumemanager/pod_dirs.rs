//! The pods' directories, `<root>/pods/<uid>`: listed for housekeeping and removed, once their volumes are
//! torn down, when the pod is gone.

use std::path::PathBuf;

use super::{VolumeError, VolumeManager};

impl VolumeManager {
    /// `<root>/pods/<uid>`.
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.root_dir.join("pods").join(uid)
    }

    /// The UIDs that have a pod directory.
    pub fn pod_dirs(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.root_dir.join("pods")) else {
            return Vec::new();
        };
        let mut uids: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| !name.starts_with('.'))
            .collect();
        uids.sort();
        uids
    }

    /// Tears down pod `uid`'s volumes and removes its directory; already gone is fine. Anything still
    /// mounted below it keeps the directory (and is the error): removing through a mount would delete
    /// what the mount shows.
    pub async fn remove_pod(&self, uid: &str) -> Result<(), VolumeError> {
        if uid.is_empty() || uid.contains('/') || uid.starts_with('.') {
            return Err(VolumeError::Invalid(format!("invalid pod uid {uid:?}")));
        }
        self.unmount_pod(uid).await?;
        let dir = self.pod_dir(uid);
        if !dir.exists() {
            return Ok(());
        }
        let mountinfo = "/proc/self/mountinfo";
        let text =
            std::fs::read_to_string(mountinfo).map_err(VolumeError::io("read", mountinfo))?;
        if let Some(mount) = crate::sandbox::namespaces::mount_points(&text)
            .into_iter()
            .find(|m| m.starts_with(&dir))
        {
            return Err(VolumeError::Invalid(format!(
                "{} is still mounted; keeping {}",
                mount.display(),
                dir.display()
            )));
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(VolumeError::io("remove", &dir)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;
    use kube::Client;
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn pod_dirs_are_listed_and_removed_whole() {
        let dir = tempfile::tempdir().unwrap();
        let url = "http://127.0.0.1:9".parse().unwrap();
        let client = Client::try_from(kube::Config::new(url)).unwrap();
        let manager = VolumeManager::new(client, dir.path());
        assert!(manager.pod_dirs().is_empty());
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "uid-1"},
            "spec": {"containers": [{"name": "main"}], "volumes": [{"name": "s", "emptyDir": {}}]},
        }))
        .unwrap();
        manager.mount_pod(&pod).await.unwrap();
        std::fs::create_dir_all(manager.pod_dir("uid-1").join("plugins")).unwrap();
        std::fs::create_dir_all(dir.path().join("pods/.hidden")).unwrap();
        assert_eq!(manager.pod_dirs(), vec!["uid-1".to_string()]);
        manager.remove_pod("uid-1").await.unwrap();
        assert!(!manager.pod_dir("uid-1").exists());
        assert!(manager.pod_dirs().is_empty());
        manager.remove_pod("uid-1").await.unwrap();
        assert!(manager.remove_pod("../x").await.is_err());
    }
}
