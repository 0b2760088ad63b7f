//! Running one probe of a container (upstream's prober.probe): the handler the probe names, up to three
//! tries when it cannot run at all, and the events upstream records — Warning `Unhealthy` for failures
//! and errors, Warning `ProbeWarning` for warnings.

use std::collections::HashMap;
use std::time::Duration;

use component_base::events::EventRecorder;
use k8s_openapi::api::core::v1::{Container, ObjectReference, Pod, Probe};

use super::{ProbeError, ProbeOutcome, ProbeResult, ProbeType, exec, grpc, http, port, tcp};
use crate::kuberuntime::env::expand;
use crate::runtime::Runtime;

/// Upstream's maxProbeRetries: a probe that cannot run is tried this often before its result is dropped.
const MAX_TRIES: usize = 3;

/// What a probe is run against.
pub struct ProbeTarget<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// The container's spec.
    pub container: &'a Container,
    /// The runtime's container id.
    pub container_id: &'a str,
    /// The pod's IP (empty when it has none).
    pub pod_ip: &'a str,
}

/// Runs probes and records their events.
#[derive(Clone)]
pub struct Prober {
    runtime: Runtime,
    recorder: EventRecorder,
}

impl Prober {
    /// A prober exec-ing through `runtime` and recording through `recorder`.
    pub fn new(runtime: Runtime, recorder: EventRecorder) -> Self {
        Self { runtime, recorder }
    }

    /// Runs `probe` (of type `kind`) once against `target`; `None` when it could not run, which leaves
    /// the worker's state as it was.
    pub async fn probe(
        &self,
        kind: ProbeType,
        probe: &Probe,
        target: &ProbeTarget<'_>,
    ) -> Option<ProbeResult> {
        let mut outcome = self.run(probe, target).await;
        for _ in 1..MAX_TRIES {
            if outcome.is_ok() {
                break;
            }
            outcome = self.run(probe, target).await;
        }
        let kind = kind.as_str();
        match outcome {
            Ok(ProbeOutcome::Success) => Some(ProbeResult::Success),
            Ok(ProbeOutcome::Warning(output)) => {
                self.event(
                    target,
                    "ProbeWarning",
                    format!("{kind} probe warning: {output}"),
                );
                Some(ProbeResult::Success)
            }
            Ok(ProbeOutcome::Failure(output)) => {
                self.event(
                    target,
                    "Unhealthy",
                    format!("{kind} probe failed: {output}"),
                );
                Some(ProbeResult::Failure)
            }
            Err(e) => {
                tracing::debug!(container = %target.container.name, error = %e, "{kind} probe errored");
                self.event(
                    target,
                    "Unhealthy",
                    format!("{kind} probe errored and resulted in unknown state: {e}"),
                );
                None
            }
        }
    }

    async fn run(
        &self,
        probe: &Probe,
        target: &ProbeTarget<'_>,
    ) -> Result<ProbeOutcome, ProbeError> {
        let timeout = Duration::from_secs(
            u64::try_from(probe.timeout_seconds.unwrap_or(1))
                .unwrap_or(1)
                .max(1),
        );
        let container = target.container;
        if let Some(action) = &probe.exec {
            // Only the container's literal env values expand, as upstream's ExpandContainerCommandOnlyStatic.
            let values: HashMap<&str, &str> = container
                .env
                .iter()
                .flatten()
                .filter_map(|e| Some((e.name.as_str(), e.value.as_deref()?)))
                .collect();
            let argv: Vec<String> = action
                .command
                .iter()
                .flatten()
                .map(|c| expand(c, &values))
                .collect();
            return exec::probe(&self.runtime, target.container_id, &argv, timeout).await;
        }
        if let Some(action) = &probe.http_get {
            let request = http::probe_request(action, container, target.pod_ip)?;
            return Ok(http::probe(&request, timeout).await);
        }
        if let Some(action) = &probe.tcp_socket {
            let port = port::resolve_port(&action.port, container)?;
            let host = match action.host.as_deref() {
                Some(host) if !host.is_empty() => host,
                _ if target.pod_ip.is_empty() => return Err(ProbeError::NoPodIp),
                _ => target.pod_ip,
            };
            return Ok(tcp::probe(host, port, timeout).await);
        }
        if let Some(action) = &probe.grpc {
            if target.pod_ip.is_empty() {
                return Err(ProbeError::NoPodIp);
            }
            let port = u16::try_from(action.port)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| ProbeError::Port(format!("invalid port number: {}", action.port)))?;
            let service = action.service.as_deref().unwrap_or_default();
            return Ok(grpc::probe(target.pod_ip, port, service, timeout).await);
        }
        Err(ProbeError::NoHandler {
            pod: format!(
                "{}_{}({})",
                target.pod.metadata.name.as_deref().unwrap_or_default(),
                target.pod.metadata.namespace.as_deref().unwrap_or_default(),
                target.pod.metadata.uid.as_deref().unwrap_or_default()
            ),
            container: container.name.clone(),
        })
    }

    fn event(&self, target: &ProbeTarget<'_>, reason: &str, note: String) {
        let pod = target.pod;
        let regarding = ObjectReference {
            api_version: Some("v1".to_string()),
            kind: Some("Pod".to_string()),
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            field_path: pod
                .spec
                .as_ref()
                .map(|spec| crate::pod_spec::field_path(spec, &target.container.name)),
            ..ObjectReference::default()
        };
        self.recorder.warning(&regarding, reason, reason, note);
    }
}
