//! Liveness, readiness and startup probes (upstream's pkg/kubelet/prober and pkg/probe): one worker per
//! container and probe type runs its probe every periodSeconds, applies the thresholds and keeps the
//! results cache current; a change wakes the pod's worker, whose sync restarts containers that failed
//! liveness or startup and whose status shows readiness.

pub mod error;
pub mod exec;
pub mod grpc;
pub mod http;
pub mod manager;
pub mod port;
pub mod probe;
pub mod results;
pub mod tcp;
mod tls;
pub mod worker;

pub use error::ProbeError;
pub use manager::ProbeManager;
pub use results::{PodProbeResults, Previous, ProbeResult};

/// Which of a container's probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeType {
    /// A failure restarts the container.
    Liveness,
    /// Success makes the container ready.
    Readiness,
    /// Until it succeeds the other probes wait and the container is not started; a failure restarts it.
    Startup,
}

impl ProbeType {
    /// Upstream's name, as events print it (`Liveness probe failed: ...`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Liveness => "Liveness",
            Self::Readiness => "Readiness",
            Self::Startup => "Startup",
        }
    }

    /// The probe of this type in `container`.
    pub fn of(
        self,
        container: &k8s_openapi::api::core::v1::Container,
    ) -> Option<&k8s_openapi::api::core::v1::Probe> {
        match self {
            Self::Liveness => container.liveness_probe.as_ref(),
            Self::Readiness => container.readiness_probe.as_ref(),
            Self::Startup => container.startup_probe.as_ref(),
        }
    }

    /// Every probe type.
    pub const ALL: [ProbeType; 3] = [Self::Startup, Self::Readiness, Self::Liveness];
}

/// What one probe run found (upstream's probe.Result), with the output events show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// Healthy.
    Success,
    /// Healthy, with something to say (an HTTP redirect not followed).
    Warning(String),
    /// Unhealthy, with why.
    Failure(String),
}
