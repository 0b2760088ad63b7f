//! One scheduler benchmark run: a fresh control plane, the nodes and namespace, the scheduler as a process
//! with a KubeSchedulerConfiguration, then the measured pods, watched until all are bound or time runs out.

use std::collections::HashMap;
use std::fmt::Debug;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use futures::{StreamExt, TryStreamExt, future};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::measure::{self, PodTimings, ProcessUsage};
use super::workload::{self, POD_PREFIX, PROBE_POD};
use crate::process::{ManagedProcess, is_alive};
use crate::{ControlPlane, ControlPlaneConfig, Error, Identity};

/// The namespace the benchmark's pods go in.
pub const NAMESPACE: &str = "bench";
/// Nodes created at once.
const NODE_CONCURRENCY: usize = 32;
/// Pods created at once: enough to keep the apiserver busy, well under its in-flight limit.
const CREATE_CONCURRENCY: usize = 64;
/// How long a scheduler may take to bind the probe pod before it is counted as not working.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the pod watch may take to list before the pods are created.
const WATCH_START_TIMEOUT: Duration = Duration::from_secs(60);
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// Attempts per create when the apiserver answers 429/5xx or the connection fails.
const CREATE_ATTEMPTS: u32 = 6;

/// What every run is given.
#[derive(Clone, Debug)]
pub struct Settings {
    pub nodes: usize,
    pub pods: usize,
    pub qps: f64,
    pub burst: u32,
    /// From the first pod created until the run gives up waiting for bindings.
    pub timeout: Duration,
    /// Where the scheduler's configuration and log go.
    pub out: PathBuf,
}

/// The measurements of one run.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub timings: PodTimings,
    pub usage: ProcessUsage,
    /// Why the run ended early (scheduler exited, not ready, timed out), for the report.
    pub note: Option<String>,
    /// Wall time of the whole run, control plane start to stop.
    pub wall: Duration,
}

/// The KubeSchedulerConfiguration both schedulers are started with.
pub fn render_config(
    kubeconfig: &Path,
    qps: f64,
    burst: u32,
) -> Result<String, serde_yaml_ng::Error> {
    let config = serde_json::json!({
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {
            "kubeconfig": kubeconfig.display().to_string(),
            "qps": qps,
            "burst": burst,
        },
        "leaderElection": { "leaderElect": false },
    });
    serde_yaml_ng::to_string(&config)
}

/// The scheduler's command line: the same flags for every implementation.
pub fn scheduler_command(binary: &Path, config: &Path, port: u16) -> Command {
    let mut command = Command::new(binary);
    command
        .arg(format!("--config={}", config.display()))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--secure-port={port}"));
    command
}

fn progress(name: &str, message: impl std::fmt::Display) {
    eprintln!("{name}: {message}");
}

/// Runs the benchmark for scheduler `binary`, called `name` in the output.
pub async fn run(name: &str, binary: &Path, settings: &Settings) -> anyhow::Result<Outcome> {
    let wall = Instant::now();
    progress(name, "starting etcd and kube-apiserver");
    let control_plane = ControlPlane::start(ControlPlaneConfig::default())
        .await
        .context("starting the control plane")?;
    progress(
        name,
        format_args!(
            "control plane ready ({:.1} s)",
            wall.elapsed().as_secs_f64()
        ),
    );
    let admin = control_plane
        .client(&Identity::admin())
        .await
        .context("making the admin client")?;

    let started = Instant::now();
    create_nodes(&admin, settings.nodes).await?;
    progress(
        name,
        format_args!(
            "{} nodes created ({:.1} s)",
            settings.nodes,
            started.elapsed().as_secs_f64()
        ),
    );
    create_namespace(&admin).await?;

    let kubeconfig = control_plane
        .kubeconfig(&Identity::scheduler())
        .ok_or_else(|| anyhow!("the control plane made no kubeconfig for system:kube-scheduler"))?;
    let config_path = settings.out.join(format!("{name}-scheduler-config.yaml"));
    let config = render_config(kubeconfig, settings.qps, settings.burst)
        .context("rendering the KubeSchedulerConfiguration")?;
    std::fs::write(&config_path, config)
        .with_context(|| format!("writing {}", config_path.display()))?;
    let log = settings.out.join(format!("{name}-scheduler.log"));
    match std::fs::remove_file(&log) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing the old {}", log.display()));
        }
        _ => {}
    }
    let port = free_port()?;
    let mut scheduler = ManagedProcess::spawn(
        &format!("{name} scheduler"),
        scheduler_command(binary, &config_path, port),
        &log,
    )?;
    progress(
        name,
        format_args!(
            "scheduler started (pid {}, log {})",
            scheduler.pid(),
            log.display()
        ),
    );

    let pods = Api::<Pod>::namespaced(admin.clone(), NAMESPACE);
    let ready_limit = READY_TIMEOUT.min(settings.timeout);
    let outcome = match wait_ready(&pods, &mut scheduler, ready_limit).await? {
        Readiness::Ready(after) => {
            progress(
                name,
                format_args!(
                    "scheduler ready: probe pod bound after {:.1} s",
                    after.as_secs_f64()
                ),
            );
            let measured = measure(name, &pods, settings, &mut scheduler, &log).await?;
            let usage = measured
                .usage
                .unwrap_or_else(|| measure::process_usage(scheduler.pid()));
            Outcome {
                timings: measure::summarize(&measured.created, &measured.bound),
                usage,
                note: measured.note,
                wall: Duration::ZERO,
            }
        }
        Readiness::NotReady { why, usage } => {
            let note = format!("{why}; no pods were created (see {})", log.display());
            progress(name, format_args!("{note}; reporting 0 bound"));
            Outcome {
                timings: measure::summarize(&HashMap::new(), &HashMap::new()),
                usage,
                note: Some(note),
                wall: Duration::ZERO,
            }
        }
    };
    progress(name, "stopping the scheduler and the control plane");
    // Scheduler first, then our connections, so the apiserver has no clients left when it is stopped.
    drop(scheduler);
    drop(pods);
    drop(admin);
    drop(control_plane);
    Ok(Outcome {
        wall: wall.elapsed(),
        ..outcome
    })
}

/// A port on 127.0.0.1 nothing listens on right now, for the scheduler's health and metrics server.
fn free_port() -> anyhow::Result<u16> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port on 127.0.0.1")?;
    Ok(listener
        .local_addr()
        .context("finding a free port on 127.0.0.1")?
        .port())
}

/// Whether an error is worth retrying: the apiserver shedding load, or a connection failing.
fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => matches!(status.code, 429 | 500 | 502 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// Creates `object`, retrying transient failures; returns what the apiserver stored and when the successful
/// create was issued. A conflict after a failed attempt means that attempt did create it.
async fn create_with_retry<K>(api: &Api<K>, object: &K) -> Result<(K, Instant), kube::Error>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned,
{
    let mut attempt = 0;
    let mut first_issued = None;
    loop {
        let issued = Instant::now();
        let first = *first_issued.get_or_insert(issued);
        match api.create(&PostParams::default(), object).await {
            Ok(created) => return Ok((created, issued)),
            Err(kube::Error::Api(status)) if status.code == 409 && attempt > 0 => {
                let name = object.meta().name.clone().unwrap_or_default();
                return Ok((api.get(&name).await?, first));
            }
            Err(e) if attempt + 1 < CREATE_ATTEMPTS && is_transient(&e) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 << attempt.min(5))).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Creates `count` Ready, untainted nodes, setting their status through the status subresource where create
/// dropped it (kube-apiserver 1.36 keeps a node's status on create; the fallback costs nothing when it does).
async fn create_nodes(admin: &Client, count: usize) -> anyhow::Result<()> {
    let nodes = Api::<Node>::all(admin.clone());
    futures::stream::iter(1..=count)
        .map(|index| {
            let nodes = nodes.clone();
            async move {
                let name = workload::node_name(index);
                let (created, _) = create_with_retry(&nodes, &workload::node(&name))
                    .await
                    .with_context(|| format!("creating node {name}"))?;
                if let Some(patch) = workload::untaint_patch(&created) {
                    nodes
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .with_context(|| format!("removing the admission taints of node {name}"))?;
                }
                if !workload::node_status_is_set(&created) {
                    let patch = serde_json::json!({ "status": workload::node_status() });
                    nodes
                        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .with_context(|| format!("setting the status of node {name}"))?;
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(NODE_CONCURRENCY)
        .try_collect::<()>()
        .await
}

/// The benchmark namespace and its `default` ServiceAccount (no serviceaccount controller runs).
pub(super) async fn create_namespace(admin: &Client) -> anyhow::Result<()> {
    Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &workload::namespace(NAMESPACE))
        .await
        .with_context(|| format!("creating namespace {NAMESPACE}"))?;
    create_in_namespace(
        admin,
        &workload::default_service_account(NAMESPACE),
        "the default ServiceAccount",
    )
    .await
}

async fn create_in_namespace<K>(admin: &Client, object: &K, what: &str) -> anyhow::Result<()>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + Debug + Serialize + DeserializeOwned,
    K::DynamicType: Default,
{
    Api::<K>::namespaced(admin.clone(), NAMESPACE)
        .create(&PostParams::default(), object)
        .await
        .with_context(|| format!("creating {what} in namespace {NAMESPACE}"))?;
    Ok(())
}

enum Readiness {
    /// The probe pod was bound this long after it was created.
    Ready(Duration),
    /// The scheduler exited or bound nothing in time.
    NotReady { why: String, usage: ProcessUsage },
}

/// How a scheduler process ended: its exit status and the last line it logged.
struct Exit {
    /// Its usage, read before it was reaped.
    usage: ProcessUsage,
    status: String,
    last_line: String,
}

impl Exit {
    /// "the scheduler exited (STATUS) WHEN: LAST LINE".
    fn describe(&self, when: &str) -> String {
        let mut text = format!("the scheduler exited ({}) {when}", self.status);
        if !self.last_line.is_empty() {
            text.push_str(": ");
            text.push_str(&self.last_line);
        }
        text
    }
}

/// `Some` if the scheduler has exited.
fn exited(scheduler: &mut ManagedProcess) -> Option<Exit> {
    if is_alive(scheduler.pid()) {
        return None;
    }
    let usage = measure::process_usage(scheduler.pid());
    let (status, last_line) = match scheduler.check_running() {
        Err(Error::Exited { status, tail, .. }) => {
            let last = tail.lines().last().unwrap_or("").trim().to_string();
            (status, last)
        }
        Err(e) => ("gone".into(), e.to_string()),
        Ok(()) => ("gone".into(), String::new()),
    };
    Some(Exit {
        usage,
        status,
        last_line,
    })
}

/// Waits until the scheduler binds a probe pod, then deletes it. Binding a pod is the one readiness signal
/// that means the same for every implementation: caches synced, a profile running, bindings allowed.
async fn wait_ready(
    pods: &Api<Pod>,
    scheduler: &mut ManagedProcess,
    limit: Duration,
) -> anyhow::Result<Readiness> {
    let started = Instant::now();
    pods.create(&PostParams::default(), &workload::pod(PROBE_POD))
        .await
        .context("creating the probe pod")?;
    loop {
        if let Some(exit) = exited(scheduler) {
            return Ok(Readiness::NotReady {
                why: exit.describe("before it bound the probe pod"),
                usage: exit.usage,
            });
        }
        let probe = pods.get(PROBE_POD).await.context("reading the probe pod")?;
        if workload::bound_node(&probe).is_some() {
            break;
        }
        if started.elapsed() > limit {
            return Ok(Readiness::NotReady {
                why: format!(
                    "the scheduler did not bind the probe pod within {} s",
                    limit.as_secs()
                ),
                usage: measure::process_usage(scheduler.pid()),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = started.elapsed();
    // No kubelet confirms a graceful deletion, so delete at once, as `kubectl delete --force` does.
    pods.delete(PROBE_POD, &DeleteParams::default().grace_period(0))
        .await
        .context("deleting the probe pod")?;
    let deleted = Instant::now();
    while pods
        .get_opt(PROBE_POD)
        .await
        .context("reading the probe pod")?
        .is_some()
    {
        if deleted.elapsed() > Duration::from_secs(30) {
            bail!("the probe pod was still there 30 s after it was deleted");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Readiness::Ready(after))
}

/// What the measured phase saw.
struct Measured {
    created: HashMap<String, Instant>,
    bound: HashMap<String, Instant>,
    note: Option<String>,
    /// The scheduler's usage if it exited during the run (read before it was reaped).
    usage: Option<ProcessUsage>,
}

/// Records the first sighting of each measured pod with a node.
fn observe(event: Event<Pod>, bound: &mut HashMap<String, Instant>) {
    let seen = Instant::now();
    let (Event::Apply(pod) | Event::InitApply(pod)) = event else {
        return;
    };
    let Some(name) = pod.metadata.name.as_deref() else {
        return;
    };
    if name.starts_with(POD_PREFIX)
        && workload::bound_node(&pod).is_some()
        && !bound.contains_key(name)
    {
        bound.insert(name.to_string(), seen);
    }
}

/// Starts the watch, creates the pods and waits for their bindings.
async fn measure(
    name: &str,
    pods: &Api<Pod>,
    settings: &Settings,
    scheduler: &mut ManagedProcess,
    log: &Path,
) -> anyhow::Result<Measured> {
    let mut bound = HashMap::with_capacity(settings.pods);
    // Only bound pods pass the selector; the scheduler's own informer of assigned pods uses the same one.
    let config = watcher::Config::default().fields("spec.nodeName!=");
    let mut events = watcher::watcher(pods.clone(), config)
        .default_backoff()
        .boxed();
    let watch_deadline = tokio::time::Instant::now() + WATCH_START_TIMEOUT;
    loop {
        match tokio::time::timeout_at(watch_deadline, events.next()).await {
            Err(_) => bail!(
                "the pod watch did not start within {} s",
                WATCH_START_TIMEOUT.as_secs()
            ),
            Ok(None) => bail!("the pod watch ended before it started"),
            Ok(Some(Ok(Event::InitDone))) => break,
            Ok(Some(Ok(event))) => observe(event, &mut bound),
            Ok(Some(Err(e))) => progress(name, format_args!("pod watch: {e} (retrying)")),
        }
    }

    let created = Arc::new(Mutex::new(HashMap::with_capacity(settings.pods)));
    let created_count = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut creating = tokio::spawn(create_pods(
        pods.clone(),
        settings.pods,
        created.clone(),
        created_count.clone(),
    ));
    let mut creation_done = false;
    let deadline = tokio::time::Instant::now() + settings.timeout;
    let mut ticker = tokio::time::interval(PROGRESS_EVERY);
    ticker.tick().await;
    let mut note = None;
    let mut usage = None;
    let mut watch_errors = 0usize;

    while bound.len() < settings.pods {
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(event)) => observe(event, &mut bound),
                Some(Err(e)) => {
                    watch_errors += 1;
                    if watch_errors <= 3 {
                        progress(name, format_args!("pod watch: {e} (retrying)"));
                    }
                }
                None => bail!("the pod watch ended"),
            },
            joined = &mut creating, if !creation_done => {
                creation_done = true;
                joined.context("the pod-creating task failed")??;
                progress(name, format_args!(
                    "{} pods created ({:.1} s)", settings.pods, started.elapsed().as_secs_f64()
                ));
            }
            _ = ticker.tick() => {
                progress(name, format_args!(
                    "{}/{} bound, {} created ({:.1} s)",
                    bound.len(), settings.pods, created_count.load(Ordering::Relaxed),
                    started.elapsed().as_secs_f64()
                ));
                if let Some(exit) = exited(scheduler) {
                    let when = format!("after {} of {} pods were bound", bound.len(), settings.pods);
                    let text = format!("{} (see {})", exit.describe(&when), log.display());
                    progress(name, format_args!("{text}; reporting what was bound"));
                    note = Some(text);
                    usage = Some(exit.usage);
                    break;
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                let text = format!(
                    "timed out after {} s with {} of {} pods bound",
                    settings.timeout.as_secs(), bound.len(), settings.pods
                );
                progress(name, format_args!("{text}; reporting what was bound"));
                note = Some(text);
                break;
            }
        }
    }
    if !creation_done {
        creating.abort();
    }
    progress(
        name,
        format_args!(
            "{}/{} bound ({:.1} s)",
            bound.len(),
            settings.pods,
            started.elapsed().as_secs_f64()
        ),
    );
    let created = std::mem::take(&mut *created.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(Measured {
        created,
        bound,
        note,
        usage,
    })
}

/// Creates pods `pod-00001`.. concurrently, recording when each successful create was issued.
async fn create_pods(
    pods: Api<Pod>,
    count: usize,
    created: Arc<Mutex<HashMap<String, Instant>>>,
    created_count: Arc<AtomicUsize>,
) -> anyhow::Result<()> {
    futures::stream::iter(1..=count)
        .map(|index| {
            let pods = pods.clone();
            async move {
                let name = workload::pod_name(index);
                let (_, issued) = create_with_retry(&pods, &workload::pod(&name))
                    .await
                    .with_context(|| format!("creating pod {name}"))?;
                anyhow::Ok((name, issued))
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_for_each(|(name, issued)| {
            created
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name, issued);
            created_count.fetch_add(1, Ordering::Relaxed);
            future::ready(Ok(()))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_a_kube_scheduler_configuration() {
        let yaml =
            render_config(Path::new("/tmp/a dir/scheduler.kubeconfig"), 5000.0, 5000).unwrap();
        let value: serde_json::Value = serde_yaml_ng::from_str(&yaml).unwrap();
        assert_eq!(value["apiVersion"], "kubescheduler.config.k8s.io/v1");
        assert_eq!(value["kind"], "KubeSchedulerConfiguration");
        assert_eq!(
            value["clientConnection"]["kubeconfig"],
            "/tmp/a dir/scheduler.kubeconfig"
        );
        assert_eq!(value["clientConnection"]["qps"], 5000.0);
        assert_eq!(value["clientConnection"]["burst"], 5000);
        assert_eq!(value["leaderElection"]["leaderElect"], false);
    }

    #[test]
    fn both_schedulers_get_the_same_flags() {
        let command = scheduler_command(Path::new("/bin/x"), Path::new("/out/c.yaml"), 12345);
        let args: Vec<String> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "--config=/out/c.yaml",
                "--bind-address=127.0.0.1",
                "--secure-port=12345"
            ]
        );
    }

    #[test]
    fn only_measured_pods_with_a_node_count_as_bound() {
        let mut bound = HashMap::new();
        let mut pod = workload::pod(&workload::pod_name(1));
        observe(Event::Apply(pod.clone()), &mut bound);
        assert!(bound.is_empty(), "not bound yet");
        if let Some(spec) = pod.spec.as_mut() {
            spec.node_name = Some("node-00001".into());
        }
        observe(Event::Apply(pod.clone()), &mut bound);
        let first = bound[&workload::pod_name(1)];
        observe(Event::InitApply(pod.clone()), &mut bound);
        assert_eq!(bound[&workload::pod_name(1)], first, "first sighting wins");
        let mut probe = pod.clone();
        probe.metadata.name = Some(PROBE_POD.into());
        observe(Event::Apply(probe), &mut bound);
        observe(Event::Delete(pod), &mut bound);
        assert_eq!(bound.len(), 1);
    }

    #[test]
    fn exits_are_described_in_one_line() {
        let exit = Exit {
            usage: ProcessUsage::default(),
            status: "exit status: 2".into(),
            last_line: "error: unexpected argument '--config' found".into(),
        };
        assert_eq!(
            exit.describe("before it bound the probe pod"),
            "the scheduler exited (exit status: 2) before it bound the probe pod: \
             error: unexpected argument '--config' found"
        );
        let silent = Exit {
            last_line: String::new(),
            ..exit
        };
        assert_eq!(
            silent.describe("early"),
            "the scheduler exited (exit status: 2) early"
        );
    }

    #[test]
    fn transient_errors_are_retried() {
        let status = |code| {
            kube::Error::Api(Box::new(kube::core::Status {
                code,
                ..kube::core::Status::default()
            }))
        };
        assert!(is_transient(&status(429)));
        assert!(is_transient(&status(503)));
        assert!(!is_transient(&status(409)));
        assert!(!is_transient(&status(422)));
    }
}
