//! One controller-manager benchmark run: a fresh control plane, the controller-manager as a process (the
//! deployment, replicaset and garbage-collector controllers, each as its own ServiceAccount as kubeadm runs
//! them), then a Deployment scaled up, rolled and deleted in the foreground, each phase timed. No kubelet
//! runs: a helper marks every pod Running and Ready as soon as it appears.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::measure::{self, ProcessUsage};
use super::scheduler::{NAMESPACE, create_namespace};
use crate::process::{ManagedProcess, is_alive};
use crate::{ControlPlane, ControlPlaneConfig, Identity};

/// The measured Deployment.
const DEPLOYMENT: &str = "bench";
/// A one-replica Deployment rolled through first: the controller-manager is ready when it is available.
const PROBE: &str = "probe";
/// Status patches in flight at once in the pod-readiness helper.
const READY_CONCURRENCY: usize = 64;
const POLL: Duration = Duration::from_millis(100);
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// What every run is given.
#[derive(Clone, Debug)]
pub struct Settings {
    pub replicas: usize,
    pub qps: f64,
    pub burst: u32,
    /// Limit of each phase.
    pub timeout: Duration,
    /// Where the controller-manager's log goes.
    pub out: PathBuf,
}

/// The measurements of one run; a phase that did not finish, and the ones after it, are `None`.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub scale_up: Option<Duration>,
    pub rollout: Option<Duration>,
    pub delete: Option<Duration>,
    pub usage: ProcessUsage,
    /// What serving the phases cost the control plane.
    pub control_plane: ControlPlaneWork,
    /// Why the run ended early, for the report.
    pub note: Option<String>,
}

/// The control plane's work, as running totals or as the difference of two: with the apiserver the
/// bottleneck, this is where a controller-manager's requests cost time.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ControlPlaneWork {
    /// kube-apiserver's CPU time (user + system), seconds.
    pub apiserver_cpu_seconds: Option<f64>,
    /// etcd's CPU time, seconds.
    pub etcd_cpu_seconds: Option<f64>,
    /// Requests that changed state, from every client: the controller-manager's and the readiness helper's.
    pub apiserver_writes: Option<u64>,
    /// Watches the apiserver closed because their client fell behind, every client's.
    pub terminated_watches: Option<u64>,
}

impl ControlPlaneWork {
    /// The work done since the totals `earlier`.
    fn since(self, earlier: Self) -> Self {
        Self {
            apiserver_cpu_seconds: seconds_since(
                self.apiserver_cpu_seconds,
                earlier.apiserver_cpu_seconds,
            ),
            etcd_cpu_seconds: seconds_since(self.etcd_cpu_seconds, earlier.etcd_cpu_seconds),
            apiserver_writes: count_since(self.apiserver_writes, earlier.apiserver_writes),
            terminated_watches: count_since(self.terminated_watches, earlier.terminated_watches),
        }
    }
}

fn seconds_since(now: Option<f64>, then: Option<f64>) -> Option<f64> {
    now.zip(then).map(|(now, then)| now - then)
}

fn count_since(now: Option<u64>, then: Option<u64>) -> Option<u64> {
    now.zip(then).map(|(now, then)| now.saturating_sub(then))
}

/// Reads the control plane's running totals: its processes' CPU time and what its apiserver counted.
struct ControlPlaneMeter {
    admin: kube::Client,
    apiserver_pid: u32,
    etcd_pid: u32,
}

impl ControlPlaneMeter {
    async fn totals(&self) -> ControlPlaneWork {
        let metrics = match http::Request::get("/metrics").body(Vec::new()) {
            Ok(request) => self.admin.request_text(request).await.ok(),
            Err(_) => None,
        };
        ControlPlaneWork {
            apiserver_cpu_seconds: measure::process_usage(self.apiserver_pid).cpu_seconds,
            etcd_cpu_seconds: measure::process_usage(self.etcd_pid).cpu_seconds,
            apiserver_writes: metrics.as_deref().and_then(measure::parse_apiserver_writes),
            terminated_watches: metrics.as_deref().map(measure::parse_terminated_watches),
        }
    }
}

/// The controller-manager's command line: the same flags for every implementation.
pub fn controller_manager_command(
    binary: &Path,
    kubeconfig: &Path,
    qps: f64,
    burst: u32,
) -> Command {
    let mut command = Command::new(binary);
    command
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .arg(format!("--kube-api-qps={qps}"))
        .arg(format!("--kube-api-burst={burst}"))
        .arg("--controllers=deployment,replicaset,garbagecollector")
        .arg("--use-service-account-credentials=true")
        .arg("--leader-elect=false")
        .arg("--secure-port=0");
    command
}

fn progress(name: &str, message: impl std::fmt::Display) {
    eprintln!("{name}: {message}");
}

/// The Deployment `name` of `replicas` pause pods, its template stamped with `revision`.
fn deployment(name: &str, replicas: usize, revision: u32) -> anyhow::Result<Deployment> {
    let object = json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": {"bench/revision": revision.to_string()}},
                "spec": {"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10"}]},
            },
        },
    });
    serde_json::from_value(object).context("building the Deployment")
}

/// Whether `deployment` has rolled out its current generation to `replicas` available pods and no others.
fn rolled_out(deployment: &Deployment, replicas: usize) -> bool {
    let generation = deployment.metadata.generation.unwrap_or(0);
    let Some(status) = &deployment.status else {
        return false;
    };
    let want = i32::try_from(replicas).unwrap_or(i32::MAX);
    status.observed_generation.unwrap_or(0) >= generation
        && status.updated_replicas == Some(want)
        && status.available_replicas == Some(want)
        && status.replicas == Some(want)
}

/// Runs the benchmark for controller-manager `binary`, called `name` in the output.
pub async fn run(name: &str, binary: &Path, settings: &Settings) -> anyhow::Result<Outcome> {
    progress(name, "starting etcd and kube-apiserver");
    let control_plane = ControlPlane::start(ControlPlaneConfig::default())
        .await
        .context("starting the control plane")?;
    let admin = control_plane
        .client(&Identity::admin())
        .await
        .context("making the admin client")?;
    create_namespace(&admin).await?;
    let kubeconfig = control_plane
        .kubeconfig(&Identity::controller_manager())
        .ok_or_else(|| {
            anyhow!("the control plane made no kubeconfig for the controller-manager")
        })?;
    let log = settings.out.join(format!("{name}-controller-manager.log"));
    let command = controller_manager_command(binary, kubeconfig, settings.qps, settings.burst);
    let mut manager = ManagedProcess::spawn(&format!("{name} controller-manager"), command, &log)?;
    progress(
        name,
        format_args!(
            "controller-manager started (pid {}, log {})",
            manager.pid(),
            log.display()
        ),
    );

    let stop_ready = CancellationToken::new();
    let pods = Api::<Pod>::namespaced(admin.clone(), NAMESPACE);
    tokio::spawn(mark_pods_ready(pods.clone(), stop_ready.clone()));
    let deployments = Api::<Deployment>::namespaced(admin.clone(), NAMESPACE);
    let meter = ControlPlaneMeter {
        admin: admin.clone(),
        apiserver_pid: control_plane.apiserver_pid(),
        etcd_pid: control_plane.etcd_pid(),
    };
    let outcome = phases(name, &deployments, &pods, &manager, &meter, settings).await;
    stop_ready.cancel();
    let outcome = outcome?;
    progress(
        name,
        "stopping the controller-manager and the control plane",
    );
    manager.stop(Duration::from_secs(5));
    drop((pods, deployments, meter, admin));
    drop(control_plane);
    Ok(outcome)
}

/// The probe, then the three measured phases; stops at the first phase that does not finish.
async fn phases(
    name: &str,
    deployments: &Api<Deployment>,
    pods: &Api<Pod>,
    manager: &ManagedProcess,
    meter: &ControlPlaneMeter,
    settings: &Settings,
) -> anyhow::Result<Outcome> {
    let mut outcome = Outcome::default();
    let pid = manager.pid();
    let limit = settings.timeout;
    let alive = || is_alive(pid);

    deployments
        .create(&PostParams::default(), &deployment(PROBE, 1, 1)?)
        .await
        .context("creating the probe Deployment")?;
    let probe = timed(name, "probe available", limit, alive, || async {
        Ok(rolled_out(&deployments.get(PROBE).await?, 1))
    })
    .await?;
    let Some(after) = probe else {
        outcome.note = Some(format!(
            "the probe Deployment was not available within {} s",
            limit.as_secs()
        ));
        outcome.usage = measure::process_usage(pid);
        return Ok(outcome);
    };
    progress(
        name,
        format_args!(
            "controller-manager ready after {:.1} s",
            after.as_secs_f64()
        ),
    );
    delete_foreground(deployments, PROBE).await?;
    let probe_gone = timed(name, "probe deleted", limit, alive, || async {
        Ok(pods
            .list(&ListParams::default().limit(1))
            .await?
            .items
            .is_empty())
    })
    .await?;
    if probe_gone.is_none() {
        outcome.note = Some("the probe Deployment's pods were not deleted".into());
        outcome.usage = measure::process_usage(pid);
        return Ok(outcome);
    }

    let replicas = settings.replicas;
    let before = meter.totals().await;
    deployments
        .create(
            &PostParams::default(),
            &deployment(DEPLOYMENT, replicas, 1)?,
        )
        .await
        .context("creating the Deployment")?;
    outcome.scale_up = timed(name, "scale up", limit, alive, || async {
        Ok(rolled_out(&deployments.get(DEPLOYMENT).await?, replicas))
    })
    .await?;

    if outcome.scale_up.is_some() {
        let patch =
            json!({"spec": {"template": {"metadata": {"annotations": {"bench/revision": "2"}}}}});
        deployments
            .patch(DEPLOYMENT, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .context("starting the rolling update")?;
        outcome.rollout = timed(name, "rolling update", limit, alive, || async {
            Ok(rolled_out(&deployments.get(DEPLOYMENT).await?, replicas))
        })
        .await?;
    }

    if outcome.rollout.is_some() {
        delete_foreground(deployments, DEPLOYMENT).await?;
        outcome.delete = timed(name, "foreground delete", limit, alive, || async {
            let pods_left = !pods
                .list(&ListParams::default().limit(1))
                .await?
                .items
                .is_empty();
            Ok(!pods_left && deployments.get_opt(DEPLOYMENT).await?.is_none())
        })
        .await?;
    }
    outcome.usage = measure::process_usage(pid);
    outcome.control_plane = meter.totals().await.since(before);
    if outcome.delete.is_none() {
        outcome.note = Some(match is_alive(pid) {
            true => format!("a phase did not finish within {} s", limit.as_secs()),
            false => "the controller-manager exited during the run".into(),
        });
    }
    Ok(outcome)
}

async fn delete_foreground(deployments: &Api<Deployment>, name: &str) -> anyhow::Result<()> {
    deployments
        .delete(name, &DeleteParams::foreground())
        .await
        .with_context(|| format!("deleting Deployment {name}"))?;
    Ok(())
}

/// Polls `done` until it holds (the time taken), `limit` passes or the process is gone (`None`).
async fn timed<F, Fut>(
    name: &str,
    phase: &str,
    limit: Duration,
    alive: impl Fn() -> bool,
    done: F,
) -> anyhow::Result<Option<Duration>>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<bool, kube::Error>>,
{
    let started = Instant::now();
    let mut reported = Instant::now();
    loop {
        match done().await {
            Ok(true) => {
                let took = started.elapsed();
                progress(name, format_args!("{phase}: {:.2} s", took.as_secs_f64()));
                return Ok(Some(took));
            }
            Ok(false) => {}
            Err(e) => progress(name, format_args!("{phase}: {e} (retrying)")),
        }
        if !alive() || started.elapsed() > limit {
            progress(name, format_args!("{phase}: did not finish"));
            return Ok(None);
        }
        if reported.elapsed() > PROGRESS_EVERY {
            progress(
                name,
                format_args!("{phase}: {:.0} s so far", started.elapsed().as_secs_f64()),
            );
            reported = Instant::now();
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Whether a pod still needs the readiness a kubelet would report.
fn needs_ready(pod: &Pod) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let ready = pod
        .status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        });
    !ready
}

/// The status a kubelet would write for a started pause container.
fn ready_status() -> serde_json::Value {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let condition = |kind: &str| json!({"type": kind, "status": "True", "lastTransitionTime": now});
    json!({"status": {
        "phase": "Running",
        "startTime": now,
        "conditions": [condition("Initialized"), condition("ContainersReady"), condition("Ready")],
    }})
}

/// Stands in for the kubelets: marks every new pod Running and Ready until `stop`.
async fn mark_pods_ready(pods: Api<Pod>, stop: CancellationToken) {
    let marking = watcher::watcher(pods.clone(), watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .filter_map(|pod| async move { pod.ok().filter(needs_ready)?.metadata.name })
        .map(|name| {
            let pods = pods.clone();
            async move {
                let patch = ready_status();
                // A pod deleted meanwhile is fine; anything else shows up as a phase that never finishes.
                if let Err(e) = pods
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    tracing::debug!(pod = %name, "marking ready: {e}");
                }
            }
        })
        .buffer_unordered(READY_CONCURRENCY)
        .for_each(|()| async {});
    tokio::select! {
        () = stop.cancelled() => {}
        () = marking => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_status(status: serde_json::Value, generation: i64) -> Deployment {
        serde_json::from_value(
            json!({"metadata": {"name": "d", "generation": generation}, "status": status}),
        )
        .unwrap()
    }

    #[test]
    fn rolled_out_needs_the_current_generation_fully_available() {
        let done = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3});
        assert!(rolled_out(&with_status(done.clone(), 2), 3));
        assert!(
            !rolled_out(&with_status(done, 3), 3),
            "generation not observed"
        );
        let surging = json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3});
        assert!(!rolled_out(&with_status(surging, 2), 3), "old pods left");
        assert!(!rolled_out(&with_status(json!({}), 1), 3));
    }

    #[test]
    fn only_live_pods_not_yet_ready_are_marked() {
        let pod = |value: serde_json::Value| serde_json::from_value::<Pod>(value).unwrap();
        assert!(needs_ready(&pod(json!({"metadata": {"name": "p"}}))));
        let ready = json!({"metadata": {"name": "p"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        assert!(!needs_ready(&pod(ready)));
        let deleting =
            json!({"metadata": {"name": "p", "deletionTimestamp": "2026-01-01T00:00:00Z"}});
        assert!(!needs_ready(&pod(deleting)));
    }

    #[test]
    fn control_plane_work_is_the_difference_of_totals() {
        let before = ControlPlaneWork {
            apiserver_cpu_seconds: Some(10.0),
            etcd_cpu_seconds: Some(2.0),
            apiserver_writes: Some(100),
            terminated_watches: Some(3),
        };
        let after = ControlPlaneWork {
            apiserver_cpu_seconds: Some(25.5),
            etcd_cpu_seconds: None,
            apiserver_writes: Some(3300),
            terminated_watches: None,
        };
        let work = after.since(before);
        assert_eq!(work.apiserver_cpu_seconds, Some(15.5));
        assert_eq!(work.etcd_cpu_seconds, None, "unreadable at the end");
        assert_eq!(work.apiserver_writes, Some(3200));
        assert_eq!(work.terminated_watches, None);
    }

    #[test]
    fn both_implementations_get_the_same_flags() {
        let command = controller_manager_command(Path::new("/bin/kcm"), Path::new("/k"), 20.0, 30);
        let args: Vec<_> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(args.contains(&"--kube-api-qps=20".to_string()), "{args:?}");
        assert!(args.contains(&"--kube-api-burst=30".to_string()));
        assert!(args.contains(&"--use-service-account-credentials=true".to_string()));
    }
}
