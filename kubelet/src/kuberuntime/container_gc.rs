//! Container garbage collection (upstream's containerGC with its default policy: one dead container kept
//! per pod and container name). Each restart of a container makes a new attempt; only the newest and the
//! one before it matter (state, lastState), so older ones — dead by then, as a new attempt starts only
//! after the previous one exited — are removed with their snapshot and log file.

use std::collections::HashMap;

use super::manager::RuntimeManager;
use super::pod_logs::labelled_log_path;
use super::record::{LABEL_ATTEMPT, LABEL_CONTAINER_NAME, LABEL_POD_UID};
use crate::runtime::{ContainerSummary, RuntimeError};

/// The attempts of each pod's containers that are older than the newest two, oldest first.
pub fn evictable(containers: &[ContainerSummary]) -> Vec<&ContainerSummary> {
    let mut units: HashMap<(&str, &str), Vec<(i32, &ContainerSummary)>> = HashMap::new();
    for container in containers {
        let label = |name| container.labels.get(name).map(String::as_str);
        let (Some(uid), Some(name), Some(attempt)) = (
            label(LABEL_POD_UID),
            label(LABEL_CONTAINER_NAME),
            label(LABEL_ATTEMPT).and_then(|a| a.parse::<i32>().ok()),
        ) else {
            continue;
        };
        units
            .entry((uid, name))
            .or_default()
            .push((attempt, container));
    }
    let mut old: Vec<(i32, &ContainerSummary)> = Vec::new();
    for mut attempts in units.into_values() {
        attempts.sort_by_key(|(attempt, _)| std::cmp::Reverse(*attempt));
        old.extend(attempts.into_iter().skip(2));
    }
    old.sort_by_key(|(attempt, c)| (*attempt, c.id.clone()));
    old.into_iter().map(|(_, c)| c).collect()
}

impl RuntimeManager {
    /// Removes the containers [`evictable`] picks among `containers` (what the runtime listed).
    pub async fn collect_garbage(
        &self,
        containers: &[ContainerSummary],
    ) -> Result<(), RuntimeError> {
        for container in evictable(containers) {
            tracing::debug!(container = %container.id, "removing an old container attempt");
            self.runtime.delete(&container.id).await?;
            self.forget_container(&container.id);
            if let Some(log) = labelled_log_path(&self.pod_logs_dir, &container.labels)
                && let Err(e) = std::fs::remove_file(&log)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(log = %log.display(), error = %e, "cannot remove an old container log");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kuberuntime::record::container_labels;

    fn summary(uid: &str, name: &str, attempt: i32) -> ContainerSummary {
        ContainerSummary {
            id: format!("{uid}-{name}-{attempt}"),
            image: "busybox".into(),
            labels: container_labels(uid, "p", "ns", name, attempt),
            created_at: None,
        }
    }

    #[test]
    fn all_but_the_newest_two_attempts_per_pod_container_are_evictable() {
        let containers = vec![
            summary("u1", "main", 0),
            summary("u1", "main", 3),
            summary("u1", "main", 1),
            summary("u1", "main", 2),
            summary("u1", "side", 0),
            summary("u1", "side", 1),
            summary("u2", "main", 0),
            ContainerSummary {
                id: "not-ours".into(),
                image: "busybox".into(),
                labels: HashMap::new(),
                created_at: None,
            },
        ];
        let ids: Vec<&str> = evictable(&containers)
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(ids, ["u1-main-0", "u1-main-1"]);
        assert!(evictable(&[]).is_empty());
    }
}
