//! Pod cgroups. runc makes `/kubepods/<qos>/pod<uid>/<container>` in every hierarchy when a container
//! starts and removes only the container's level when it is deleted; the pod's level is the kubelet's to
//! remove once the pod's containers are gone (upstream's pod container manager does the same).

use std::path::{Path, PathBuf};

/// Where cgroup hierarchies are mounted.
pub const CGROUP_MOUNT: &str = "/sys/fs/cgroup";
/// The QoS levels pod cgroups live under (see `kuberuntime::start`).
pub(crate) const QOS_LEVELS: [&str; 3] = ["besteffort", "burstable", "guaranteed"];

/// A pod cgroup that could not be removed.
#[derive(Debug, thiserror::Error)]
#[error("cannot remove pod cgroup {path}: {source}")]
pub struct CgroupError {
    /// The cgroup directory.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

/// Removes pod `uid`'s cgroups in every hierarchy; already gone is fine. A cgroup still holding processes
/// cannot be removed and is an error.
pub fn remove_pod(uid: &str) -> Result<(), CgroupError> {
    for dir in pod_cgroup_dirs(&hierarchies(Path::new(CGROUP_MOUNT)), uid) {
        if dir.is_dir() {
            remove_tree(&dir)?;
        }
    }
    Ok(())
}

/// The roots of the mounted hierarchies: each controller's directory on cgroup v1 (and `unified` on a
/// hybrid host), the mount itself on cgroup v2.
pub fn hierarchies(mount: &Path) -> Vec<PathBuf> {
    let mut roots = vec![mount.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(mount) {
        roots.extend(
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path()),
        );
    }
    roots
}

/// Where pod `uid`'s cgroup would be in each of `hierarchies`. UIDs that could leave the tree give none.
pub fn pod_cgroup_dirs(hierarchies: &[PathBuf], uid: &str) -> Vec<PathBuf> {
    if uid.is_empty() || uid.contains(['/', '\0']) || uid.starts_with('.') {
        return Vec::new();
    }
    hierarchies
        .iter()
        .flat_map(|root| {
            QOS_LEVELS
                .iter()
                .map(move |qos| root.join("kubepods").join(qos).join(format!("pod{uid}")))
        })
        .collect()
}

/// rmdir of a cgroup and the cgroups below it, deepest first (the files in a cgroup are the kernel's and
/// go with it).
fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    let error = |source| CgroupError {
        path: dir.to_path_buf(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(error(e)),
    };
    for entry in entries.filter_map(Result::ok) {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pods_cgroups_are_under_each_hierarchy_and_qos_level() {
        let roots = [PathBuf::from("/cg/memory"), PathBuf::from("/cg/unified")];
        let dirs = pod_cgroup_dirs(&roots, "u-1");
        assert_eq!(dirs.len(), 6);
        assert!(dirs.contains(&PathBuf::from("/cg/memory/kubepods/besteffort/podu-1")));
        assert!(dirs.contains(&PathBuf::from("/cg/unified/kubepods/guaranteed/podu-1")));
        for bad in ["", "../x", "a/b", ".."] {
            assert!(pod_cgroup_dirs(&roots, bad).is_empty(), "{bad:?}");
        }
    }

    #[test]
    fn hierarchies_are_the_mount_and_its_directories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("memory")).unwrap();
        std::fs::write(dir.path().join("cgroup.procs"), "").unwrap();
        let mut roots = hierarchies(dir.path());
        roots.sort();
        assert_eq!(
            roots,
            vec![dir.path().to_path_buf(), dir.path().join("memory")]
        );
        assert_eq!(hierarchies(Path::new("/nonexistent")).len(), 1);
    }

    #[test]
    fn removing_a_missing_tree_is_fine_and_nested_dirs_go_first() {
        let dir = tempfile::tempdir().unwrap();
        let pod = dir.path().join("podx");
        std::fs::create_dir_all(pod.join("c1").join("deeper")).unwrap();
        remove_tree(&pod).unwrap();
        assert!(!pod.exists());
        remove_tree(&pod).unwrap();
    }
}
