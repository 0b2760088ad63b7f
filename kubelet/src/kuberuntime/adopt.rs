//! Taking over the containers a previous kubelet left running: they keep running untouched (the pod
//! workers find them Running and start nothing), but their output FIFOs need a reader again (a container
//! blocks once the pipe is full) and their start times come from /proc.

use super::manager::RuntimeManager;
use super::pod_logs::labelled_log_path;
use crate::runtime::{RuntimeError, TaskStatus};

impl RuntimeManager {
    /// Once at start-up, before any pod worker: reads the running containers' output into their log
    /// files again and learns when they started. Returns how many were adopted.
    pub async fn adopt_running_containers(&self) -> Result<usize, RuntimeError> {
        let mut adopted = 0;
        for summary in self.runtime.list_containers().await? {
            let Some(task) = self.runtime.task_state(&summary.id).await? else {
                continue;
            };
            if !matches!(task.status, TaskStatus::Running | TaskStatus::Paused) {
                continue;
            }
            let Some(log) = labelled_log_path(&self.pod_logs_dir, &summary.labels) else {
                continue;
            };
            if let Some(started) = super::start_time::process_start_time(task.pid) {
                self.started
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(summary.id.clone(), started);
            }
            match self.runtime.reopen_logs(&summary.id, &log).await {
                Ok(()) => adopted += 1,
                Err(e) => {
                    tracing::warn!(container = %summary.id, error = %e, "cannot read the container's output again")
                }
            }
        }
        Ok(adopted)
    }
}
