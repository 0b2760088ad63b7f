//! The work queue's metrics, with upstream's names and help, labelled by queue name.

use std::sync::OnceLock;

use prometheus::{GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};

/// Every `workqueue_*` metric, registered once in the default registry.
pub(crate) struct Metrics {
    pub depth: IntGaugeVec,
    pub adds: IntCounterVec,
    pub queue_duration: HistogramVec,
    pub work_duration: HistogramVec,
    pub unfinished_work: GaugeVec,
    pub longest_running_processor: GaugeVec,
    pub retries: IntCounterVec,
}

/// upstream's `ExponentialBuckets(10e-9, 10, 10)`: 10 ns to 10 s.
fn duration_buckets() -> Vec<f64> {
    (0..10).map(|i| 1e-8 * 10f64.powi(i)).collect()
}

pub(crate) fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        // The definitions are constants: they fail only if this file is wrong, which every test would show.
        const VALID: &str = "static metric definition";
        let labels = &["name"];
        let gauge = |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), labels).expect(VALID);
        let counter = |name: &str, help: &str| IntCounterVec::new(Opts::new(name, help), labels).expect(VALID);
        let float_gauge = |name: &str, help: &str| GaugeVec::new(Opts::new(name, help), labels).expect(VALID);
        let histogram = |name: &str, help: &str| {
            HistogramVec::new(HistogramOpts::new(name, help).buckets(duration_buckets()), labels).expect(VALID)
        };
        let metrics = Metrics {
            depth: gauge("workqueue_depth", "Current depth of workqueue"),
            adds: counter("workqueue_adds_total", "Total number of adds handled by workqueue"),
            queue_duration: histogram(
                "workqueue_queue_duration_seconds",
                "How long in seconds an item stays in workqueue before being requested.",
            ),
            work_duration: histogram(
                "workqueue_work_duration_seconds",
                "How long in seconds processing an item from workqueue takes.",
            ),
            unfinished_work: float_gauge(
                "workqueue_unfinished_work_seconds",
                "How many seconds of work has done that is in progress and hasn't been observed by \
                 work_duration. Large values indicate stuck threads. One can deduce the number of stuck \
                 threads by observing the rate at which this increases.",
            ),
            longest_running_processor: float_gauge(
                "workqueue_longest_running_processor_seconds",
                "How many seconds has the longest running processor for workqueue been running.",
            ),
            retries: counter("workqueue_retries_total", "Total number of retries handled by workqueue"),
        };
        let registry = prometheus::default_registry();
        let collectors: [Box<dyn prometheus::core::Collector>; 7] = [
            Box::new(metrics.depth.clone()),
            Box::new(metrics.adds.clone()),
            Box::new(metrics.queue_duration.clone()),
            Box::new(metrics.work_duration.clone()),
            Box::new(metrics.unfinished_work.clone()),
            Box::new(metrics.longest_running_processor.clone()),
            Box::new(metrics.retries.clone()),
        ];
        for collector in collectors {
            if let Err(e) = registry.register(collector) {
                tracing::warn!("workqueue metric not registered: {e}");
            }
        }
        metrics
    })
}
