//! Where containers' logs go, `DIR/NAMESPACE_NAME_UID/CONTAINER/ATTEMPT.log` (upstream's
//! BuildContainerLogsDirectory), and removing a pod's logs once the pod is gone (upstream's container GC
//! evicts the log directories of deleted pods).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::record::{
    LABEL_ATTEMPT, LABEL_CONTAINER_NAME, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID,
};

/// The log file of attempt `attempt` of `container` of the pod `[namespace, name, uid]`.
pub fn log_path(
    dir: &Path,
    [namespace, name, uid]: [&str; 3],
    container: &str,
    attempt: i32,
) -> PathBuf {
    dir.join(format!("{namespace}_{name}_{uid}"))
        .join(container)
        .join(format!("{attempt}.log"))
}

/// The log file of the container with `labels` (as the kubelet labels its containers); `None` for a
/// container without them.
pub fn labelled_log_path(dir: &Path, labels: &HashMap<String, String>) -> Option<PathBuf> {
    let label = |name: &str| labels.get(name).map(String::as_str);
    Some(log_path(
        dir,
        [
            label(LABEL_POD_NAMESPACE)?,
            label(LABEL_POD_NAME)?,
            label(LABEL_POD_UID)?,
        ],
        label(LABEL_CONTAINER_NAME)?,
        label(LABEL_ATTEMPT)?.parse().ok()?,
    ))
}

/// Whether `name` is the log directory of pod `uid` (namespaces and pod names hold no `_`).
pub fn is_pod_log_dir(name: &str, uid: &str) -> bool {
    !uid.is_empty()
        && name
            .strip_suffix(uid)
            .and_then(|rest| rest.strip_suffix('_'))
            .is_some_and(|rest| rest.split('_').count() == 2)
}

/// Removes the log directories of pod `uid` under `dir`; none is fine.
pub fn remove_pod_logs(dir: &Path, uid: &str) -> Result<(), String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot read {}: {e}", dir.display())),
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name();
        if !is_pod_log_dir(&name.to_string_lossy(), uid) {
            continue;
        }
        let path = entry.path();
        match std::fs::remove_dir_all(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot remove {}: {e}", path.display())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_paths_are_upstreams() {
        assert_eq!(
            log_path(Path::new("/var/log/pods"), ["ns", "web", "u1"], "main", 2),
            PathBuf::from("/var/log/pods/ns_web_u1/main/2.log")
        );
    }

    #[test]
    fn a_pods_log_dirs_are_found_by_uid() {
        assert!(is_pod_log_dir("ns_web_u-1", "u-1"));
        assert!(!is_pod_log_dir("ns_web_u-12", "u-1"));
        assert!(!is_pod_log_dir("ns_web_xu-1", "u-1"));
        assert!(!is_pod_log_dir("web_u-1", "u-1"));
        assert!(!is_pod_log_dir("ns_web_", ""));
    }

    #[test]
    fn only_the_pods_log_dirs_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mine = log_path(dir.path(), ["ns", "a", "u1"], "main", 0);
        let other = log_path(dir.path(), ["ns", "b", "u2"], "main", 0);
        for log in [&mine, &other] {
            std::fs::create_dir_all(log.parent().unwrap()).unwrap();
            std::fs::write(log, "line\n").unwrap();
        }
        remove_pod_logs(dir.path(), "u1").unwrap();
        assert!(!dir.path().join("ns_a_u1").exists());
        assert!(other.exists());
        remove_pod_logs(dir.path(), "u1").unwrap();
        remove_pod_logs(&dir.path().join("absent"), "u1").unwrap();
    }
}
