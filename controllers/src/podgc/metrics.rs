//! The pod garbage collector's metrics, with upstream's names, help and labels.

use std::sync::OnceLock;

use prometheus::{IntCounterVec, Opts};

/// Why a pod was force-deleted: upstream's `reason` label values.
#[derive(Debug, Clone, Copy)]
pub enum Reason {
    /// Beyond --terminated-pod-gc-threshold.
    Terminated,
    /// Terminating on an out-of-service node.
    OutOfService,
    /// Bound to a node that no longer exists.
    Orphaned,
    /// Terminating and never bound.
    Unscheduled,
}

impl Reason {
    fn label(self) -> &'static str {
        match self {
            Self::Terminated => "terminated",
            Self::OutOfService => "out-of-service",
            Self::Orphaned => "orphaned",
            Self::Unscheduled => "unscheduled",
        }
    }
}

struct Metrics {
    deleting: IntCounterVec,
    errors: IntCounterVec,
}

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        // Constant definitions: they fail only if this file is wrong, which every test would show.
        const VALID: &str = "static metric definition";
        let counter = |name: &str, help: &str| {
            IntCounterVec::new(Opts::new(name, help), &["namespace", "reason"]).expect(VALID)
        };
        let metrics = Metrics {
            deleting: counter(
                "pod_gc_collector_force_delete_pods_total",
                "[ALPHA] Number of pods that are being forcefully deleted since the Pod GC Controller \
                 started.",
            ),
            errors: counter(
                "pod_gc_collector_force_delete_pod_errors_total",
                "[ALPHA] Number of errors encountered when forcefully deleting the pods since the Pod GC \
                 Controller started.",
            ),
        };
        let registry = prometheus::default_registry();
        for collector in [metrics.deleting.clone(), metrics.errors.clone()] {
            if let Err(e) = registry.register(Box::new(collector)) {
                tracing::warn!("podgc metric not registered: {e}");
            }
        }
        metrics
    })
}

/// Counts a force deletion, and its failure if `failed`.
pub fn record(namespace: &str, reason: Reason, failed: bool) {
    let metrics = metrics();
    let labels = [namespace, reason.label()];
    metrics.deleting.with_label_values(&labels).inc();
    if failed {
        metrics.errors.with_label_values(&labels).inc();
    }
}
