//! The binding cycle (upstream `bindingCycle`), in a task of its own so the next pod's scheduling cycle
//! need not wait for the apiserver.

use std::sync::Arc;
use std::time::Instant;

use super::Scheduler;
use super::cycle::Failure;
use crate::framework::{
    ActionType, ClusterEvent, CycleState, EventResource, Framework, PodInfo, QueuedPodInfo,
};
use crate::metrics::metrics;

impl Scheduler {
    /// PreBind, Bind and PostBind for a pod assumed on `host`; on failure the assumption is undone and the
    /// pod goes back to the queue.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn binding_cycle(
        self: Arc<Self>,
        framework: Arc<Framework>,
        mut state: CycleState,
        queued: QueuedPodInfo,
        cycle: u64,
        assumed: Arc<PodInfo>,
        host: String,
        started: Instant,
    ) {
        let pod = &assumed.pod;
        let mut status = framework.run_pre_bind(&state, pod, &host).await;
        if status.is_success() {
            status = framework.run_bind(&state, pod, &host).await;
        }
        if !status.is_success() {
            framework.run_unreserve(&mut state, &assumed, &host);
            let _ = self.cache().forget_pod(assumed.uid());
            // The freed room may let other pods fit.
            self.queue.move_all_to_active_or_backoff(
                ClusterEvent::new(EventResource::AssignedPod, ActionType::DELETE),
                Instant::now(),
            );
            self.record_attempt("error", framework.profile_name(), started);
            self.handle_failure(queued, cycle, Failure::error(&status))
                .await;
            return;
        }
        self.cache().finish_binding(assumed.uid(), Instant::now());
        self.record_attempt("scheduled", framework.profile_name(), started);
        let metrics = metrics();
        metrics
            .pod_scheduling_attempts
            .observe(f64::from(queued.attempts));
        if let Some(first) = queued.initial_attempt_timestamp {
            metrics
                .pod_scheduling_sli_duration
                .with_label_values(&[&queued.attempts.to_string()])
                .observe(first.elapsed().as_secs_f64());
        }
        self.queue.done(assumed.uid());
        if let Some(profile) = self.profile_of(pod) {
            profile.recorder.normal(
                &super::api::object_reference(pod),
                "Scheduled",
                "Binding",
                format!(
                    "Successfully assigned {}/{} to {host}",
                    assumed.namespace(),
                    assumed.name()
                ),
            );
        }
        framework.run_post_bind(&state, pod, &host);
    }
}
