//! One kubelet benchmark run, as upstream's pod-startup-latency test: on a node of its own, 30 pods created
//! one per second, then 100 at once, each timed from the local create request to the first watch event that
//! shows it Running; then the kubelet's peak memory and CPU time, and the pods deleted before the next run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::Implementation;
use super::kubelet_node::{BenchNode, NodeSpec};
use super::measure::{self, PodTimings, ProcessUsage};
use super::scheduler::NAMESPACE;
use crate::images::BUSYBOX_IMAGE;
use crate::process::{is_alive, tail};

/// Pods of the steady phase, created one per [`STEADY_INTERVAL`] (upstream's pod-startup-latency: 30).
pub const STEADY_PODS: usize = 30;
/// The gap between the steady phase's creates.
pub const STEADY_INTERVAL: Duration = Duration::from_secs(1);
/// Pods of the burst, all created at once after the steady ones run.
pub const BURST_PODS: usize = 100;
/// How long a kubelet has to make its node Ready.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the pods of a run may take to go once deleted.
const DELETE_TIMEOUT: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_millis(200);

/// What every run is given.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Limit of each phase.
    pub timeout: Duration,
    /// Where the kubelets' logs and configurations go.
    pub out: PathBuf,
}

/// The measurements of one run.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The 30 pods created one per second.
    pub steady: PodTimings,
    /// The 100 pods created at once.
    pub burst: PodTimings,
    /// The kubelet's peak memory and CPU time.
    pub usage: ProcessUsage,
    /// containerd's, which does the runtime work for either kubelet.
    pub containerd: ProcessUsage,
    /// Why the run ended early, for the report.
    pub note: Option<String>,
}

/// The node of `implementation`'s kubelet.
pub fn node_name(implementation: Implementation) -> String {
    format!("bench-{}", implementation.name())
}

/// `steady-001` / `burst-001`.
pub fn pod_name(phase: &str, index: usize) -> String {
    format!("{phase}-{index:03}")
}

/// A benchmark pod on `node`: busybox sleeping, tiny requests, restartPolicy Always, bound by spec.nodeName
/// (no scheduler runs), no service-account token (no controller makes the namespace's root CA ConfigMap).
pub fn pod(name: &str, node: &str) -> anyhow::Result<Pod> {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "bench-kubelet"}},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Always",
            "automountServiceAccountToken": false,
            // busybox's sleep as PID 1 ignores SIGTERM; a short grace keeps the clean-up short.
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "sleep",
                "image": BUSYBOX_IMAGE,
                "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "3600"],
                "resources": {"requests": {"cpu": "5m", "memory": "8Mi"}},
            }],
        },
    }))
    .context("building the benchmark pod")
}

fn progress(name: &str, message: impl std::fmt::Display) {
    eprintln!("{name}: {message}");
}

/// Runs the benchmark for `implementation`'s kubelet `binary` on the control plane `admin` talks to, its
/// node's credentials in `kubeconfig`.
pub async fn run(
    implementation: Implementation,
    binary: &Path,
    admin: &Client,
    kubeconfig: &Path,
    settings: &Settings,
) -> anyhow::Result<Outcome> {
    let name = implementation.name();
    let node_name = node_name(implementation);
    let work = tempfile::Builder::new()
        .prefix(&format!("ferrokube-bench-kubelet-{name}-"))
        .tempdir()
        .context("making the node's directory")?;
    let spec = NodeSpec {
        implementation,
        binary,
        name: &node_name,
        kubeconfig,
        dir: work.path(),
        out: &settings.out,
    };
    let node = BenchNode::start(&spec)?;
    progress(
        name,
        format_args!(
            "kubelet started (pid {}, log {})",
            node.kubelet().pid(),
            node.kubelet().log().display()
        ),
    );
    let outcome = measure_node(name, &node_name, &node, admin, settings).await;
    let containerd_log = settings.out.join(format!("{name}-containerd.log"));
    if let Err(e) = std::fs::copy(node.containerd_log(), &containerd_log) {
        progress(name, format_args!("copying containerd's log: {e}"));
    }
    progress(name, "stopping the kubelet and containerd");
    drop(node);
    drop(work);
    outcome
}

/// The phases on a started node, then the pods deleted.
async fn measure_node(
    name: &str,
    node_name: &str,
    node: &BenchNode,
    admin: &Client,
    settings: &Settings,
) -> anyhow::Result<Outcome> {
    let pid = node.kubelet().pid();
    let mut outcome = Outcome {
        steady: measure::summarize(&HashMap::new(), &HashMap::new()),
        burst: measure::summarize(&HashMap::new(), &HashMap::new()),
        usage: ProcessUsage::default(),
        containerd: ProcessUsage::default(),
        note: None,
    };
    let started = Instant::now();
    if let Err(why) =
        wait_node_ready(admin, node_name, pid, READY_TIMEOUT.min(settings.timeout)).await
    {
        let last = last_line(node.kubelet().log());
        outcome.note = Some(format!("{why}; the kubelet's last log line: {last}"));
        outcome.usage = measure::process_usage(pid);
        outcome.containerd = measure::process_usage(node.containerd_pid());
        return Ok(outcome);
    }
    progress(
        name,
        format_args!("node Ready after {:.1} s", started.elapsed().as_secs_f64()),
    );

    let pods = Api::<Pod>::namespaced(admin.clone(), NAMESPACE);
    let (running_tx, mut running) = mpsc::unbounded_channel();
    let (synced_tx, synced) = oneshot::channel();
    let watch = tokio::spawn(watch_running(
        pods.clone(),
        node_name.to_string(),
        running_tx,
        synced_tx,
    ));
    synced
        .await
        .map_err(|_| anyhow!("the pod watch ended before its first list"))?;

    let mut seen = HashMap::new();
    let steady_created = create_steady(&pods, node_name).await?;
    let steady_done = wait_running(
        name,
        "steady",
        &steady_created,
        &mut running,
        &mut seen,
        pid,
        settings.timeout,
    )
    .await;
    outcome.steady = measure::summarize(&steady_created, &only(&seen, &steady_created));
    report_phase(name, "steady", &outcome.steady, STEADY_PODS);
    if steady_done {
        let burst_created = create_burst(&pods, node_name).await?;
        let burst_done = wait_running(
            name,
            "burst",
            &burst_created,
            &mut running,
            &mut seen,
            pid,
            settings.timeout,
        )
        .await;
        outcome.burst = measure::summarize(&burst_created, &only(&seen, &burst_created));
        report_phase(name, "burst", &outcome.burst, BURST_PODS);
        if !burst_done {
            outcome.note = Some(phase_note(
                "burst",
                BURST_PODS,
                &outcome.burst,
                pid,
                settings.timeout,
            ));
        }
    } else {
        outcome.note = Some(phase_note(
            "steady",
            STEADY_PODS,
            &outcome.steady,
            pid,
            settings.timeout,
        ));
    }
    outcome.usage = measure::process_usage(pid);
    outcome.containerd = measure::process_usage(node.containerd_pid());
    watch.abort();

    delete_all(name, &pods, node_name, pid).await?;
    Ok(outcome)
}

/// The entries of `seen` for the pods in `created`.
fn only(
    seen: &HashMap<String, Instant>,
    created: &HashMap<String, Instant>,
) -> HashMap<String, Instant> {
    seen.iter()
        .filter(|(pod, _)| created.contains_key(*pod))
        .map(|(pod, at)| (pod.clone(), *at))
        .collect()
}

fn report_phase(name: &str, phase: &str, timings: &PodTimings, of: usize) {
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.0}"));
    progress(
        name,
        format_args!(
            "{phase}: {} of {of} Running, create→Running p50 {} ms, p99 {} ms",
            timings.bound,
            ms(timings.p50_ms),
            ms(timings.p99_ms)
        ),
    );
}

fn phase_note(phase: &str, of: usize, timings: &PodTimings, pid: u32, timeout: Duration) -> String {
    match is_alive(pid) {
        true => format!(
            "{phase}: {} of {of} pods Running within {} s",
            timings.bound,
            timeout.as_secs()
        ),
        false => format!(
            "{phase}: the kubelet exited with {} of {of} pods Running",
            timings.bound
        ),
    }
}

/// The last non-empty line of `log`.
fn last_line(log: &Path) -> String {
    tail(log, 5)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("(empty log)")
        .to_string()
}

/// Waits until node `node` is Ready, the kubelet `pid` exits, or `limit` passes.
async fn wait_node_ready(
    admin: &Client,
    node: &str,
    pid: u32,
    limit: Duration,
) -> Result<(), String> {
    let nodes = Api::<Node>::all(admin.clone());
    let started = Instant::now();
    loop {
        let ready = nodes.get_opt(node).await.ok().flatten().is_some_and(|n| {
            n.status
                .and_then(|s| s.conditions)
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        });
        if ready {
            return Ok(());
        }
        if !is_alive(pid) {
            return Err("the kubelet exited before its node was Ready".into());
        }
        if started.elapsed() > limit {
            return Err(format!(
                "node {node} was not Ready within {} s",
                limit.as_secs()
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether `pod` is Running.
pub fn is_running(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// Sends the name of each pod on `node` when it is first seen Running, with the local time the event came;
/// `synced` fires once the initial list is done, so no later change is missed.
async fn watch_running(
    pods: Api<Pod>,
    node: String,
    running: mpsc::UnboundedSender<(String, Instant)>,
    synced: oneshot::Sender<()>,
) {
    let config = watcher::Config::default().fields(&format!("spec.nodeName={node}"));
    let mut synced = Some(synced);
    let mut events = std::pin::pin!(watcher::watcher(pods, config));
    loop {
        let event = match events.try_next().await {
            Ok(Some(event)) => event,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!("pod watch: {e} (retrying)");
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        let at = Instant::now();
        let pod = match event {
            watcher::Event::InitDone => {
                if let Some(synced) = synced.take() {
                    let _ = synced.send(());
                }
                continue;
            }
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => pod,
            _ => continue,
        };
        // The receiver is gone once the run is over.
        if is_running(&pod) && running.send((pod.name_any(), at)).is_err() {
            return;
        }
    }
}

/// Creates one pod, returning the local time its request was issued.
async fn create(pods: &Api<Pod>, name: String, node: &str) -> anyhow::Result<(String, Instant)> {
    let object = pod(&name, node)?;
    let issued = Instant::now();
    pods.create(&PostParams::default(), &object)
        .await
        .with_context(|| format!("creating pod {name}"))?;
    Ok((name, issued))
}

/// The steady phase's pods, one per [`STEADY_INTERVAL`].
async fn create_steady(pods: &Api<Pod>, node: &str) -> anyhow::Result<HashMap<String, Instant>> {
    let mut created = HashMap::new();
    let mut ticks = tokio::time::interval(STEADY_INTERVAL);
    for index in 1..=STEADY_PODS {
        ticks.tick().await;
        let (name, at) = create(pods, pod_name("steady", index), node).await?;
        created.insert(name, at);
    }
    Ok(created)
}

/// The burst's pods, all requests in flight at once.
async fn create_burst(pods: &Api<Pod>, node: &str) -> anyhow::Result<HashMap<String, Instant>> {
    futures::stream::iter(
        (1..=BURST_PODS).map(|index| create(pods, pod_name("burst", index), node)),
    )
    .buffer_unordered(BURST_PODS)
    .try_collect()
    .await
}

/// Collects Running times into `seen` until every pod of `created` is Running (true), or the kubelet exits
/// or `limit` passes (false).
async fn wait_running(
    name: &str,
    phase: &str,
    created: &HashMap<String, Instant>,
    running: &mut mpsc::UnboundedReceiver<(String, Instant)>,
    seen: &mut HashMap<String, Instant>,
    pid: u32,
    limit: Duration,
) -> bool {
    let started = Instant::now();
    let mut reported = Instant::now();
    loop {
        if created.keys().all(|pod| seen.contains_key(pod)) {
            return true;
        }
        if !is_alive(pid) || started.elapsed() > limit {
            return false;
        }
        match tokio::time::timeout(POLL, running.recv()).await {
            Ok(Some((pod, at))) => {
                seen.entry(pod).or_insert(at);
            }
            Ok(None) => return false,
            Err(_) => {}
        }
        if reported.elapsed() > Duration::from_secs(5) {
            let done = created.keys().filter(|pod| seen.contains_key(*pod)).count();
            progress(
                name,
                format_args!("{phase}: {done} of {} Running", created.len()),
            );
            reported = Instant::now();
        }
    }
}

/// Deletes every pod of the namespace and waits until the kubelet has stopped them and they are gone;
/// force-deletes what is left after [`DELETE_TIMEOUT`] (or once the kubelet is gone).
async fn delete_all(name: &str, pods: &Api<Pod>, node: &str, pid: u32) -> anyhow::Result<()> {
    progress(name, "deleting the pods");
    let on_node = ListParams::default().fields(&format!("spec.nodeName={node}"));
    pods.delete_collection(&DeleteParams::default(), &on_node)
        .await
        .context("deleting the benchmark pods")?;
    let started = Instant::now();
    loop {
        let left = pods
            .list(&on_node)
            .await
            .context("listing the pods left")?
            .items
            .len();
        if left == 0 {
            progress(
                name,
                format_args!("pods gone after {:.1} s", started.elapsed().as_secs_f64()),
            );
            return Ok(());
        }
        if started.elapsed() > DELETE_TIMEOUT || !is_alive(pid) {
            progress(
                name,
                format_args!("{left} pods still there; deleting them forcibly"),
            );
            pods.delete_collection(&DeleteParams::default().grace_period(0), &on_node)
                .await
                .context("force-deleting the benchmark pods")?;
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_are_bound_busybox_sleepers() {
        let pod = pod(&pod_name("steady", 7), "bench-ferrokube").unwrap();
        assert_eq!(pod.metadata.name.as_deref(), Some("steady-007"));
        let spec = pod.spec.unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("bench-ferrokube"));
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        let container = &spec.containers[0];
        assert_eq!(container.image.as_deref(), Some(BUSYBOX_IMAGE));
        assert_eq!(
            container.command.as_deref(),
            Some(&["sleep".to_string(), "3600".to_string()][..])
        );
        assert!(
            container
                .resources
                .as_ref()
                .unwrap()
                .requests
                .as_ref()
                .unwrap()
                .contains_key("cpu")
        );
        assert_eq!(node_name(Implementation::Upstream), "bench-upstream");
    }

    #[test]
    fn running_is_the_phase() {
        let pod = |phase: &str| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "p"}, "status": {"phase": phase}}))
                .unwrap()
        };
        assert!(is_running(&pod("Running")));
        assert!(!is_running(&pod("Pending")));
        assert!(!is_running(&Pod::default()));
    }

    #[test]
    fn only_keeps_the_phase_pods() {
        let now = Instant::now();
        let seen = HashMap::from([("a".to_string(), now), ("b".to_string(), now)]);
        let created = HashMap::from([("a".to_string(), now)]);
        assert_eq!(only(&seen, &created).len(), 1);
    }
}
