//! The scheduling cycle of one pod (upstream `schedulingCycle` and `handleSchedulingFailure`).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;

use super::Scheduler;
use crate::framework::{
    CycleState, ExtensionPoint, PodInfo, PostFilterContext, QueuedPodInfo, Status,
};
use crate::metrics::metrics;
use crate::schedule_one::{FitError, ScheduleError, ScheduleResult};

/// How an attempt failed, for the pod's condition and the queue.
pub(super) struct Failure {
    /// Upstream's PodScheduled reason: Unschedulable or SchedulerError.
    pub reason: &'static str,
    /// The condition's and the event's message.
    pub message: String,
    /// Plugins that rejected the pod (empty for errors: the pod goes to backoff).
    pub unschedulable_plugins: BTreeSet<&'static str>,
    /// The nomination PostFilter decided: `None` leaves it as it is, `Some("")` clears it.
    pub nominated_node: Option<String>,
}

impl Failure {
    /// A failure from an internal error.
    pub fn error(status: &Status) -> Self {
        Self {
            reason: "SchedulerError",
            message: status.message(),
            unschedulable_plugins: BTreeSet::new(),
            nominated_node: None,
        }
    }
}

impl Scheduler {
    /// Schedules one popped pod: decides, assumes and reserves, then hands the binding to a task.
    pub(super) async fn schedule_one(self: &Arc<Self>, queued: QueuedPodInfo, cycle: u64) {
        let pod_info = queued.pod_info.clone();
        let Some(profile) = self.profile_of(&pod_info.pod) else {
            self.queue.done(pod_info.uid());
            return;
        };
        let framework = profile.framework.clone();
        if pod_info.pod.metadata.deletion_timestamp.is_some()
            || self.cache().is_assumed(pod_info.uid())
        {
            self.queue.done(pod_info.uid());
            return;
        }
        let started = Instant::now();
        let snapshot = self.cache().snapshot();
        let mut state = CycleState::default();
        let decision = tokio::task::block_in_place(|| {
            // Plugins that fan out in PreFilter or PreScore use the profile's pool too.
            framework.pool().install(|| {
                let mut algorithm = self.algorithm.lock().unwrap_or_else(|e| e.into_inner());
                algorithm.schedule_pod(
                    &framework,
                    &mut state,
                    &pod_info,
                    &snapshot,
                    &self.queue.nominator,
                )
            })
        });
        match decision {
            Ok(result) => {
                self.assume_and_bind(queued, cycle, state, result, started)
                    .await
            }
            Err(ScheduleError::Fit(mut fit)) => {
                let nominated_node = if framework.at(ExtensionPoint::PostFilter).is_empty() {
                    None
                } else {
                    self.preempt(&framework, &state, &pod_info, &snapshot, &mut fit)
                        .await
                };
                self.record_attempt("unschedulable", framework.profile_name(), started);
                let failure = Failure {
                    reason: "Unschedulable",
                    message: fit.message(),
                    unschedulable_plugins: fit.diagnosis.unschedulable_plugins.clone(),
                    nominated_node,
                };
                self.handle_failure(queued, cycle, failure).await;
            }
            Err(ScheduleError::Error(status)) => {
                self.record_attempt("error", framework.profile_name(), started);
                self.handle_failure(queued, cycle, Failure::error(&status))
                    .await;
            }
        }
    }

    pub(super) fn profile_of(&self, pod: &Pod) -> Option<&super::Profile> {
        let name = pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or("default-scheduler");
        self.profiles.get(name)
    }

    pub(super) fn record_attempt(&self, result: &str, profile: &str, started: Instant) {
        let metrics = metrics();
        metrics
            .schedule_attempts
            .with_label_values(&[result, profile])
            .inc();
        metrics
            .scheduling_attempt_duration
            .with_label_values(&[result, profile])
            .observe(started.elapsed().as_secs_f64());
    }

    /// Runs PostFilter; carries out a nomination (victims deleted, lower nominations cleared) and returns
    /// the nominated node. Records PostFilter's verdict in the fit error's message.
    async fn preempt(
        &self,
        framework: &crate::framework::Framework,
        state: &CycleState,
        pod: &Arc<PodInfo>,
        snapshot: &crate::framework::Snapshot,
        fit: &mut FitError,
    ) -> Option<String> {
        let (result, status) = tokio::task::block_in_place(|| {
            framework.run_post_filter(&PostFilterContext {
                framework,
                state,
                pod,
                snapshot,
                statuses: &fit.diagnosis.node_to_status,
                nominator: &self.queue.nominator,
            })
        });
        metrics().preemption_attempts.inc();
        if !status.is_success() {
            fit.diagnosis.post_filter_msg = status.message();
            // Some("") when preemption cannot help: an earlier nomination is cleared.
            return result.map(|r| r.nominated_node_name);
        }
        let result = result?;
        metrics()
            .preemption_victims
            .observe(result.victims.len() as f64);
        self.prepare_candidate(framework.profile_name(), pod, &result)
            .await;
        Some(result.nominated_node_name)
    }

    async fn assume_and_bind(
        self: &Arc<Self>,
        queued: QueuedPodInfo,
        cycle: u64,
        mut state: CycleState,
        result: ScheduleResult,
        started: Instant,
    ) {
        let Some(profile) = self.profile_of(&queued.pod_info.pod) else {
            return;
        };
        let framework = profile.framework.clone();
        let host = result.suggested_host;
        let mut assumed_pod = (*queued.pod_info.pod).clone();
        assumed_pod
            .spec
            .get_or_insert_with(Default::default)
            .node_name = Some(host.clone());
        let mut assumed = (*queued.pod_info).clone();
        assumed.pod = Arc::new(assumed_pod);
        let assumed = Arc::new(assumed);
        let assumed_result = self.cache().assume_pod(assumed.clone(), &host);
        if let Err(e) = assumed_result {
            self.record_attempt("error", framework.profile_name(), started);
            self.handle_failure(queued, cycle, Failure::error(&Status::error(e.to_string())))
                .await;
            return;
        }
        let mut status = framework.run_reserve(&mut state, &assumed, &host);
        if status.is_success() {
            status = framework.run_permit(&state, &assumed, &host);
        }
        if !status.is_success() {
            framework.run_unreserve(&mut state, &assumed, &host);
            let _ = self.cache().forget_pod(assumed.uid());
            let failure = if status.is_rejected() {
                Failure {
                    reason: "Unschedulable",
                    message: status.message(),
                    unschedulable_plugins: status.plugin().into_iter().collect(),
                    nominated_node: None,
                }
            } else {
                Failure::error(&status)
            };
            let result = if status.is_rejected() {
                "unschedulable"
            } else {
                "error"
            };
            self.record_attempt(result, framework.profile_name(), started);
            self.handle_failure(queued, cycle, failure).await;
            return;
        }
        self.queue.nominator.delete(assumed.uid());
        let scheduler = self.clone();
        tokio::spawn(async move {
            scheduler
                .binding_cycle(framework, state, queued, cycle, assumed, host, started)
                .await;
        });
    }

    /// Puts the pod back in the queue and tells the user why, as upstream: a FailedScheduling event and
    /// the PodScheduled=False condition (plus nominatedNodeName after preemption).
    pub(super) async fn handle_failure(
        &self,
        mut queued: QueuedPodInfo,
        cycle: u64,
        failure: Failure,
    ) {
        let pod = queued.pod_info.pod.clone();
        queued.unschedulable_plugins = failure.unschedulable_plugins.clone();
        // A pod deleted or bound meanwhile is not put back.
        let current = self
            .pods
            .get(&component_base::informer::ObjectKey::of(pod.as_ref()));
        let still_pending = current.as_ref().is_some_and(|p| {
            p.metadata.uid == pod.metadata.uid
                && p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .is_none_or(str::is_empty)
        });
        if still_pending {
            match failure.nominated_node.as_deref() {
                Some("") => self.queue.nominator.delete(queued.pod_info.uid()),
                Some(node) => self.queue.nominator.add(queued.pod_info.clone(), node),
                None => {}
            }
            self.queue
                .add_unschedulable_if_not_present(queued, cycle, Instant::now());
        } else {
            self.queue.done(queued.pod_info.uid());
            return;
        }
        tracing::debug!(pod = %queued_key(&pod), message = %failure.message, "unable to schedule pod");
        if let Some(profile) = self.profile_of(&pod) {
            profile.recorder.warning(
                &super::api::object_reference(&pod),
                "FailedScheduling",
                "Scheduling",
                failure.message.clone(),
            );
        }
        let current = current.unwrap_or(pod);
        self.update_pod_scheduled_condition(&current, &failure)
            .await;
    }
}

fn queued_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}
