//! The work queue's metrics, with upstream's names, help and buckets, labelled by queue name
//! (k8s.io/component-base/metrics/prometheus/workqueue).

use std::sync::OnceLock;
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts,
};

/// Every `workqueue_*` metric family.
struct Families {
    depth: IntGaugeVec,
    adds: IntCounterVec,
    latency: HistogramVec,
    work_duration: HistogramVec,
    unfinished_work: GaugeVec,
    longest_running_processor: GaugeVec,
    retries: IntCounterVec,
}

/// upstream's `ExponentialBuckets(10e-9, 10, 10)`: 10 ns to 10 s.
fn duration_buckets() -> Vec<f64> {
    (0..10).map(|i| 1e-8 * 10f64.powi(i)).collect()
}

fn build() -> prometheus::Result<Families> {
    let labels = &["name"];
    let gauge = |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), labels);
    let counter = |name: &str, help: &str| IntCounterVec::new(Opts::new(name, help), labels);
    let float_gauge = |name: &str, help: &str| GaugeVec::new(Opts::new(name, help), labels);
    let histogram = |name: &str, help: &str| {
        HistogramVec::new(
            HistogramOpts::new(name, help).buckets(duration_buckets()),
            labels,
        )
    };
    Ok(Families {
        depth: gauge("workqueue_depth", "Current depth of workqueue")?,
        adds: counter(
            "workqueue_adds_total",
            "Total number of adds handled by workqueue",
        )?,
        latency: histogram(
            "workqueue_queue_duration_seconds",
            "How long in seconds an item stays in workqueue before being requested.",
        )?,
        work_duration: histogram(
            "workqueue_work_duration_seconds",
            "How long in seconds processing an item from workqueue takes.",
        )?,
        unfinished_work: float_gauge(
            "workqueue_unfinished_work_seconds",
            "How many seconds of work has done that is in progress and hasn't been observed by \
             work_duration. Large values indicate stuck threads. One can deduce the number of stuck \
             threads by observing the rate at which this increases.",
        )?,
        longest_running_processor: float_gauge(
            "workqueue_longest_running_processor_seconds",
            "How many seconds has the longest running processor for workqueue been running.",
        )?,
        retries: counter(
            "workqueue_retries_total",
            "Total number of retries handled by workqueue",
        )?,
    })
}

/// The families, built and registered in the default registry on first use; `None` if they cannot be built.
fn families() -> Option<&'static Families> {
    static FAMILIES: OnceLock<Option<Families>> = OnceLock::new();
    FAMILIES
        .get_or_init(|| {
            let families = match build() {
                Ok(families) => families,
                Err(e) => {
                    tracing::error!("workqueue metrics disabled: {e}");
                    return None;
                }
            };
            let collectors: [Box<dyn Collector>; 7] = [
                Box::new(families.depth.clone()),
                Box::new(families.adds.clone()),
                Box::new(families.latency.clone()),
                Box::new(families.work_duration.clone()),
                Box::new(families.unfinished_work.clone()),
                Box::new(families.longest_running_processor.clone()),
                Box::new(families.retries.clone()),
            ];
            for collector in collectors {
                // Upstream panics here (MustRegister); a clash with some other registrant should not take the
                // process down, the queue then just counts into metrics nobody exports.
                if let Err(e) = prometheus::default_registry().register(collector) {
                    tracing::warn!("workqueue metric not registered: {e}");
                }
            }
            Some(families)
        })
        .as_ref()
}

/// One queue's children of the families, resolved once so the hot path does no label lookups.
struct Children {
    depth: IntGauge,
    adds: IntCounter,
    latency: Histogram,
    work_duration: Histogram,
    unfinished_work: Gauge,
    longest_running_processor: Gauge,
    retries: IntCounter,
}

/// A queue's metrics; a no-op for an unnamed queue, as upstream's `noMetrics`.
pub(super) struct QueueMetrics {
    children: Option<Children>,
}

impl QueueMetrics {
    /// The metrics labelled `name="<name>"`; none at all when `name` is empty.
    pub(super) fn new(name: &str) -> Self {
        let children = (!name.is_empty())
            .then(families)
            .flatten()
            .map(|f| {
                let labels = [name];
                Children {
                    depth: f.depth.with_label_values(&labels),
                    adds: f.adds.with_label_values(&labels),
                    latency: f.latency.with_label_values(&labels),
                    work_duration: f.work_duration.with_label_values(&labels),
                    unfinished_work: f.unfinished_work.with_label_values(&labels),
                    longest_running_processor: f
                        .longest_running_processor
                        .with_label_values(&labels),
                    retries: f.retries.with_label_values(&labels),
                }
            });
        Self { children }
    }

    /// An item became dirty: counted as an add and towards the depth.
    pub(super) fn add(&self) {
        if let Some(c) = &self.children {
            c.adds.inc();
            c.depth.inc();
        }
    }

    /// An item was handed to a worker after waiting `queued_for` since it became dirty.
    pub(super) fn get(&self, queued_for: Option<Duration>) {
        if let Some(c) = &self.children {
            c.depth.dec();
            if let Some(waited) = queued_for {
                c.latency.observe(waited.as_secs_f64());
            }
        }
    }

    /// A worker finished an item it had for `worked`.
    pub(super) fn done(&self, worked: Duration) {
        if let Some(c) = &self.children {
            c.work_duration.observe(worked.as_secs_f64());
        }
    }

    /// An `add_after` (and so every `add_rate_limited`) was accepted.
    pub(super) fn retry(&self) {
        if let Some(c) = &self.children {
            c.retries.inc();
        }
    }

    /// The in-flight work: the sum and the maximum of how long each current item has been processed.
    pub(super) fn unfinished_work(&self, total: Duration, longest: Duration) {
        if let Some(c) = &self.children {
            c.unfinished_work.set(total.as_secs_f64());
            c.longest_running_processor.set(longest.as_secs_f64());
        }
    }
}
