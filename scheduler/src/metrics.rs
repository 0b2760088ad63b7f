//! The scheduler's metrics, with upstream's names, labels, help and buckets (`pkg/scheduler/metrics`).

use std::sync::OnceLock;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
};

/// Every `scheduler_*` metric ferrokube serves, registered once in the default registry.
pub struct Metrics {
    /// scheduler_schedule_attempts_total{result, profile}.
    pub schedule_attempts: IntCounterVec,
    /// scheduler_scheduling_attempt_duration_seconds{result, profile}.
    pub scheduling_attempt_duration: HistogramVec,
    /// scheduler_pod_scheduling_sli_duration_seconds{attempts}.
    pub pod_scheduling_sli_duration: HistogramVec,
    /// scheduler_pod_scheduling_attempts.
    pub pod_scheduling_attempts: Histogram,
    /// scheduler_pending_pods{queue}.
    pub pending_pods: IntGaugeVec,
    /// scheduler_queue_incoming_pods_total{queue, event}.
    pub queue_incoming_pods: IntCounterVec,
    /// scheduler_preemption_attempts_total.
    pub preemption_attempts: IntCounter,
    /// scheduler_preemption_victims.
    pub preemption_victims: Histogram,
    /// scheduler_unschedulable_pods{plugin, profile}.
    pub unschedulable_pods: IntGaugeVec,
}

fn exponential(start: f64, factor: f64, count: usize) -> Vec<f64> {
    (0..count).map(|i| start * factor.powi(i as i32)).collect()
}

/// The metrics, created and registered on first use.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        // The definitions are constants: they fail only if this file is wrong, which every test would show.
        const VALID: &str = "static metric definition";
        let metrics = Metrics {
            schedule_attempts: IntCounterVec::new(
                Opts::new(
                    "scheduler_schedule_attempts_total",
                    "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod could not be scheduled, while 'error' means an internal scheduler problem.",
                ),
                &["result", "profile"],
            )
            .expect(VALID),
            scheduling_attempt_duration: HistogramVec::new(
                HistogramOpts::new(
                    "scheduler_scheduling_attempt_duration_seconds",
                    "Scheduling attempt latency in seconds (scheduling algorithm + binding)",
                )
                .buckets(exponential(0.001, 2.0, 15)),
                &["result", "profile"],
            )
            .expect(VALID),
            pod_scheduling_sli_duration: HistogramVec::new(
                HistogramOpts::new(
                    "scheduler_pod_scheduling_sli_duration_seconds",
                    "E2e latency for a pod being scheduled, from the time the pod enters the scheduling queue and might involve multiple scheduling attempts.",
                )
                .buckets(exponential(0.01, 2.0, 20)),
                &["attempts"],
            )
            .expect(VALID),
            pod_scheduling_attempts: Histogram::with_opts(
                HistogramOpts::new(
                    "scheduler_pod_scheduling_attempts",
                    "Number of attempts to successfully schedule a pod.",
                )
                .buckets(exponential(1.0, 2.0, 5)),
            )
            .expect(VALID),
            pending_pods: IntGaugeVec::new(
                Opts::new(
                    "scheduler_pending_pods",
                    "Number of pending pods, by the queue type. 'active' means number of pods in activeQ; 'backoff' means number of pods in backoffQ; 'unschedulable' means number of pods in unschedulablePods that the scheduler attempted to schedule and failed; 'gated' is the number of unschedulable pods that the scheduler never attempted to schedule because they are gated.",
                ),
                &["queue"],
            )
            .expect(VALID),
            queue_incoming_pods: IntCounterVec::new(
                Opts::new(
                    "scheduler_queue_incoming_pods_total",
                    "Number of pods added to scheduling queues by event and queue type.",
                ),
                &["queue", "event"],
            )
            .expect(VALID),
            preemption_attempts: IntCounter::new(
                "scheduler_preemption_attempts_total",
                "Total preemption attempts in the cluster till now",
            )
            .expect(VALID),
            preemption_victims: Histogram::with_opts(
                HistogramOpts::new("scheduler_preemption_victims", "Number of selected preemption victims")
                    .buckets(exponential(1.0, 2.0, 7)),
            )
            .expect(VALID),
            unschedulable_pods: IntGaugeVec::new(
                Opts::new(
                    "scheduler_unschedulable_pods",
                    "The number of unschedulable pods broken down by plugin name. A pod will increment the gauge for all plugins that caused it to not schedule and so this metric have meaning only when broken down by plugin.",
                ),
                &["plugin", "profile"],
            )
            .expect(VALID),
        };
        let registry = prometheus::default_registry();
        let collectors: [Box<dyn prometheus::core::Collector>; 9] = [
            Box::new(metrics.schedule_attempts.clone()),
            Box::new(metrics.scheduling_attempt_duration.clone()),
            Box::new(metrics.pod_scheduling_sli_duration.clone()),
            Box::new(metrics.pod_scheduling_attempts.clone()),
            Box::new(metrics.pending_pods.clone()),
            Box::new(metrics.queue_incoming_pods.clone()),
            Box::new(metrics.preemption_attempts.clone()),
            Box::new(metrics.preemption_victims.clone()),
            Box::new(metrics.unschedulable_pods.clone()),
        ];
        for collector in collectors {
            // A second registration only happens when tests create several schedulers in one process.
            let _ = registry.register(collector);
        }
        metrics
    })
}
