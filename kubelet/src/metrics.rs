//! The kubelet's own metrics (pkg/kubelet/metrics/metrics.go), with upstream's names, help, labels and
//! buckets, in the default registry the kubelet server's `/metrics` encodes. The rest of the kubelet calls
//! the small functions here at upstream's hook points.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use prometheus::core::Collector;
use prometheus::{Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter};
use prometheus::{IntCounterVec, Opts};

use crate::kuberuntime::record::{PodRuntimeStatus, RecordState};

/// podStartupDurationBuckets (metrics.go:216).
const POD_STARTUP_BUCKETS: [f64; 25] = [
    0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 180.0, 240.0,
    300.0, 360.0, 480.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0,
];

/// The pod worker's operation, upstream's `operation_type` label (SyncPodType.String and "terminated").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncType {
    /// The pod's first sync.
    Create,
    /// A sync after the pod changed in the apiserver.
    Update,
    /// A periodic or runtime-triggered sync.
    Sync,
    /// Terminating the pod.
    Kill,
}

impl SyncType {
    fn label(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Sync => "sync",
            Self::Kill => "kill",
        }
    }
}

struct Metrics {
    node_name: GaugeVec,
    running_pods: Gauge,
    running_containers: GaugeVec,
    pod_start_duration: Histogram,
    pod_worker_duration: HistogramVec,
    pod_worker_start_duration: Histogram,
    started_pods: IntCounter,
    started_containers: IntCounterVec,
    runtime_operations: IntCounterVec,
    /// Per pod UID: whether its sandbox runs, and its containers by state (what the PLEG relist counts).
    pods: Mutex<HashMap<String, PodCounts>>,
}

#[derive(Debug, Default, Clone, PartialEq)]
struct PodCounts {
    sandbox_running: bool,
    containers: BTreeMap<&'static str, usize>,
}

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        // Constant definitions: they fail only if this file is wrong, which every test would show.
        const VALID: &str = "static metric definition";
        let opts = |name: &str, help: &str| Opts::new(name, format!("[ALPHA] {help}"));
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            HistogramOpts::new(name, format!("[ALPHA] {help}")).buckets(buckets.to_vec())
        };
        let metrics = Metrics {
            node_name: GaugeVec::new(
                opts(
                    "kubelet_node_name",
                    "The node's name. The count is always 1.",
                ),
                &["node"],
            )
            .expect(VALID),
            running_pods: Gauge::with_opts(opts(
                "kubelet_running_pods",
                "Number of pods that have a running pod sandbox",
            ))
            .expect(VALID),
            running_containers: GaugeVec::new(
                opts(
                    "kubelet_running_containers",
                    "Number of containers currently running",
                ),
                &["container_state"],
            )
            .expect(VALID),
            pod_start_duration: Histogram::with_opts(histogram(
                "kubelet_pod_start_duration_seconds",
                "Duration in seconds from kubelet seeing a pod for the first time to the pod starting \
                 to run",
                &POD_STARTUP_BUCKETS,
            ))
            .expect(VALID),
            pod_worker_duration: HistogramVec::new(
                histogram(
                    "kubelet_pod_worker_duration_seconds",
                    "Duration in seconds to sync a single pod. Broken down by operation type: create, \
                     update, or sync",
                    prometheus::DEFAULT_BUCKETS,
                ),
                &["operation_type"],
            )
            .expect(VALID),
            pod_worker_start_duration: Histogram::with_opts(histogram(
                "kubelet_pod_worker_start_duration_seconds",
                "Duration in seconds from kubelet seeing a pod to starting a worker.",
                prometheus::DEFAULT_BUCKETS,
            ))
            .expect(VALID),
            started_pods: IntCounter::with_opts(opts(
                "kubelet_started_pods_total",
                "Cumulative number of pods started",
            ))
            .expect(VALID),
            started_containers: IntCounterVec::new(
                opts(
                    "kubelet_started_containers_total",
                    "Cumulative number of containers started",
                ),
                &["container_type"],
            )
            .expect(VALID),
            runtime_operations: IntCounterVec::new(
                opts(
                    "kubelet_runtime_operations_total",
                    "Cumulative number of runtime operations by operation type.",
                ),
                &["operation_type"],
            )
            .expect(VALID),
            pods: Mutex::default(),
        };
        let collectors: [Box<dyn Collector>; 9] = [
            Box::new(metrics.node_name.clone()),
            Box::new(metrics.running_pods.clone()),
            Box::new(metrics.running_containers.clone()),
            Box::new(metrics.pod_start_duration.clone()),
            Box::new(metrics.pod_worker_duration.clone()),
            Box::new(metrics.pod_worker_start_duration.clone()),
            Box::new(metrics.started_pods.clone()),
            Box::new(metrics.started_containers.clone()),
            Box::new(metrics.runtime_operations.clone()),
        ];
        let registry = prometheus::default_registry();
        for collector in collectors {
            if let Err(e) = registry.register(collector) {
                tracing::warn!("kubelet metric not registered: {e}");
            }
        }
        metrics
    })
}

/// Registers the metrics (upstream registers them all at start, so unobserved histograms show too) and
/// sets `kubelet_node_name{node}` to 1.
pub fn register(node_name: &str) {
    metrics().node_name.with_label_values(&[node_name]).set(1.0);
}

/// A pod worker finished an operation that began at `start`.
pub fn pod_worker_done(operation: SyncType, start: Instant) {
    metrics()
        .pod_worker_duration
        .with_label_values(&[operation.label()])
        .observe(start.elapsed().as_secs_f64());
}

/// A pod's first sync begins: how long after the kubelet first saw the pod.
pub fn pod_worker_started(first_seen: Instant) {
    metrics()
        .pod_worker_start_duration
        .observe(first_seen.elapsed().as_secs_f64());
}

/// Whether `kubelet_pod_start_duration_seconds` observes this sync: upstream's condition
/// (kubelet.go:2096) is `!ok || existing == Pending && new == Running`, so it observes the first sync (no
/// status yet) as well as the Pending → Running transition.
pub fn observes_pod_start(previous_phase: Option<&str>, phase: Option<&str>) -> bool {
    match previous_phase {
        None => true,
        Some(previous) => previous == "Pending" && phase == Some("Running"),
    }
}

/// Observes `kubelet_pod_start_duration_seconds` from when the kubelet first saw the pod.
pub fn pod_started(first_seen: Instant) {
    metrics()
        .pod_start_duration
        .observe(first_seen.elapsed().as_secs_f64());
}

/// A pod sandbox is being created (`kubelet_started_pods_total`).
pub fn sandbox_creating() {
    metrics().started_pods.inc();
}

/// A container is being started; `init` for init containers (upstream's `container_type` label).
pub fn container_starting(init: bool) {
    let label = if init { "init_container" } else { "container" };
    metrics()
        .started_containers
        .with_label_values(&[label])
        .inc();
}

/// One call to the container runtime, by upstream's CRI operation name (`list_containers`, ...).
pub fn runtime_operation(operation: &str) {
    metrics()
        .runtime_operations
        .with_label_values(&[operation])
        .inc();
}

/// Pod `uid`'s containers and sandbox as the runtime has them now, for `kubelet_running_pods` and
/// `kubelet_running_containers`; `None` once the pod is gone from the runtime.
pub fn pod_runtime_observed(uid: &str, status: Option<&PodRuntimeStatus>) {
    let metrics = metrics();
    let mut pods = metrics.pods.lock().unwrap_or_else(|e| e.into_inner());
    match status {
        Some(status) => {
            pods.insert(uid.to_string(), pod_counts(status));
        }
        None => {
            pods.remove(uid);
        }
    }
    let (running, states) = totals(pods.values());
    metrics.running_pods.set(running as f64);
    for (state, count) in states {
        metrics
            .running_containers
            .with_label_values(&[state])
            .set(count as f64);
    }
}

fn pod_counts(status: &PodRuntimeStatus) -> PodCounts {
    let mut containers = BTreeMap::new();
    for container in &status.containers {
        *containers
            .entry(container_state(&container.state))
            .or_insert(0) += 1;
    }
    PodCounts {
        sandbox_running: status.sandbox_ready,
        containers,
    }
}

/// Upstream's ContainerState strings (container/runtime.go:297-304).
fn container_state(state: &RecordState) -> &'static str {
    match state {
        RecordState::Created => "created",
        RecordState::Running { .. } => "running",
        RecordState::Exited { .. } => "exited",
    }
}

/// Pods with a running sandbox, and containers per state. Every state gets a value, 0 included: upstream
/// sets only the states it saw in a relist and so keeps a stale count once the last container of a state
/// is gone.
fn totals<'a>(pods: impl Iterator<Item = &'a PodCounts>) -> (usize, BTreeMap<&'static str, usize>) {
    let mut running = 0;
    let mut states: BTreeMap<&'static str, usize> = ["created", "exited", "running", "unknown"]
        .into_iter()
        .map(|s| (s, 0))
        .collect();
    for pod in pods {
        running += usize::from(pod.sandbox_running);
        for (state, count) in &pod.containers {
            *states.entry(state).or_insert(0) += count;
        }
    }
    (running, states)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kuberuntime::record::ContainerRecord;
    use k8s_openapi::jiff::Timestamp;

    fn record(state: RecordState) -> ContainerRecord {
        ContainerRecord {
            id: "c".into(),
            name: "c".into(),
            attempt: 0,
            image: String::new(),
            image_id: String::new(),
            state,
        }
    }

    #[test]
    fn running_pods_count_sandboxes_and_containers_count_by_state() {
        let running = RecordState::Running {
            started_at: Timestamp::UNIX_EPOCH,
        };
        let a = pod_counts(&PodRuntimeStatus {
            containers: vec![record(running.clone()), record(RecordState::Created)],
            ips: Vec::new(),
            sandbox_ready: true,
        });
        let b = pod_counts(&PodRuntimeStatus {
            containers: vec![record(running)],
            ips: Vec::new(),
            sandbox_ready: false,
        });
        let (pods, states) = totals([&a, &b].into_iter());
        assert_eq!(pods, 1);
        assert_eq!(states["running"], 2);
        assert_eq!(states["created"], 1);
        assert_eq!(states["exited"], 0);
        assert_eq!(states["unknown"], 0);
    }

    #[test]
    fn pod_start_is_observed_on_the_first_sync_and_when_pending_becomes_running() {
        assert!(observes_pod_start(None, Some("Pending")));
        assert!(observes_pod_start(Some("Pending"), Some("Running")));
        assert!(!observes_pod_start(Some("Running"), Some("Running")));
        assert!(!observes_pod_start(Some("Pending"), Some("Pending")));
        assert!(!observes_pod_start(Some("Running"), Some("Succeeded")));
    }

    #[test]
    fn metrics_are_in_the_default_registry_with_upstream_names() {
        register("node-a");
        sandbox_creating();
        container_starting(true);
        let names: Vec<String> = prometheus::gather()
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        for name in [
            "kubelet_node_name",
            "kubelet_running_pods",
            "kubelet_pod_start_duration_seconds",
            "kubelet_pod_worker_start_duration_seconds",
            "kubelet_started_pods_total",
            "kubelet_started_containers_total",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} missing: {names:?}");
        }
    }
}
