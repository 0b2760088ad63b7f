//! The elector's configuration and upstream's validation of it.

use std::time::Duration;

use super::Error;
use crate::flags::LeaderElectionFlags;

/// Upstream's `JitterFactor`: acquire attempts wait between 1 and 1+1.2 retry periods.
pub const JITTER_FACTOR: f64 = 1.2;

/// Which Lease to compete for, as whom, and how fast (client-go's `LeaderElectionConfig` with a `LeaseLock`).
#[derive(Clone, Debug, PartialEq)]
pub struct LeaderElectionConfig {
    /// Name of the Lease object.
    pub lease_name: String,
    /// Namespace of the Lease object.
    pub lease_namespace: String,
    /// This candidate's identity, written to `spec.holderIdentity`; unique among candidates.
    pub identity: String,
    /// How long non-leaders wait after observing a change of the Lease before taking it over.
    pub lease_duration: Duration,
    /// How long the leader keeps retrying a renewal before it gives up leading.
    pub renew_deadline: Duration,
    /// How long candidates wait between attempts to acquire or renew.
    pub retry_period: Duration,
    /// Whether to empty the Lease when leading ends, so a successor need not wait out the lease duration.
    pub release_on_cancel: bool,
}

impl Default for LeaderElectionConfig {
    /// Upstream's default timings, with empty names and identity (invalid until set).
    fn default() -> Self {
        Self {
            lease_name: String::new(),
            lease_namespace: String::new(),
            identity: String::new(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            release_on_cancel: false,
        }
    }
}

impl LeaderElectionConfig {
    /// A config for Lease `namespace/name` and `identity` with upstream's default timings.
    pub fn new(
        lease_namespace: impl Into<String>,
        lease_name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            lease_name: lease_name.into(),
            lease_namespace: lease_namespace.into(),
            identity: identity.into(),
            ..Self::default()
        }
    }

    /// A config from the `--leader-elect-*` flags; the Lease is named after the component unless the flags say otherwise.
    pub fn from_flags(
        flags: &LeaderElectionFlags,
        component_name: &str,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            lease_name: flags
                .leader_elect_resource_name
                .clone()
                .unwrap_or_else(|| component_name.to_string()),
            lease_namespace: flags.leader_elect_resource_namespace.clone(),
            identity: identity.into(),
            lease_duration: flags.leader_elect_lease_duration,
            renew_deadline: flags.leader_elect_renew_deadline,
            retry_period: flags.leader_elect_retry_period,
            release_on_cancel: false,
        }
    }

    /// Checks upstream's constraints: leaseDuration > renewDeadline > retryPeriod × JitterFactor, all positive,
    /// and names present.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |field, reason: String| Err(Error::InvalidConfig { field, reason });
        for (field, value) in [
            ("lease_name", &self.lease_name),
            ("lease_namespace", &self.lease_namespace),
            ("identity", &self.identity),
        ] {
            if value.is_empty() {
                return invalid(field, "must not be empty".into());
            }
        }
        for (field, value) in [
            ("lease_duration", self.lease_duration),
            ("renew_deadline", self.renew_deadline),
            ("retry_period", self.retry_period),
        ] {
            if value.is_zero() {
                return invalid(field, "must be greater than zero".into());
            }
        }
        if self.lease_duration <= self.renew_deadline {
            return invalid(
                "lease_duration",
                format!(
                    "must be greater than renew_deadline ({:?} <= {:?})",
                    self.lease_duration, self.renew_deadline
                ),
            );
        }
        let jittered_retry = self.retry_period.mul_f64(JITTER_FACTOR);
        if self.renew_deadline <= jittered_retry {
            return invalid(
                "renew_deadline",
                format!(
                    "must be greater than retry_period * JitterFactor ({:?} <= {:?} * {JITTER_FACTOR})",
                    self.renew_deadline, self.retry_period
                ),
            );
        }
        // The Lease stores whole seconds; a shorter duration would be written as 0 and read as already expired.
        if self.lease_duration < Duration::from_secs(1) {
            return invalid(
                "lease_duration",
                format!(
                    "must be at least 1s, as the Lease stores whole seconds (got {:?})",
                    self.lease_duration
                ),
            );
        }
        Ok(())
    }

    /// `namespace/name`, the form upstream's log lines describe the lock with.
    pub fn describe(&self) -> String {
        format!("{}/{}", self.lease_namespace, self.lease_name)
    }

    /// `spec.leaseDurationSeconds` to write: the lease duration truncated to whole seconds, as upstream does.
    pub fn lease_duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }
}

/// Upstream components' identity: the hostname, `_`, and a random UUID, so restarts on one host never
/// mistake the previous incarnation's Lease for their own.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "localhost".to_string());
    format!("{host}_{}", random_uuid())
}

/// A version-4 UUID in its canonical text form.
fn random_uuid() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> LeaderElectionConfig {
        LeaderElectionConfig::new("kube-system", "kube-scheduler", "me")
    }

    fn invalid_field(config: &LeaderElectionConfig) -> &'static str {
        match config.validate() {
            Err(Error::InvalidConfig { field, reason }) => {
                let message = config
                    .validate()
                    .map_err(|e| e.to_string())
                    .expect_err("invalid");
                assert!(message.contains(field), "{message}");
                assert!(message.contains(&reason), "{message}");
                field
            }
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_upstreams_and_valid() {
        let config = valid();
        assert_eq!(config.lease_duration, Duration::from_secs(15));
        assert_eq!(config.renew_deadline, Duration::from_secs(10));
        assert_eq!(config.retry_period, Duration::from_secs(2));
        assert!(!config.release_on_cancel);
        config.validate().expect("defaults are valid");
        assert_eq!(config.describe(), "kube-system/kube-scheduler");
        assert_eq!(config.lease_duration_seconds(), 15);
    }

    #[test]
    fn validation_errors_name_the_field() {
        type Mutation = fn(&mut LeaderElectionConfig);
        let cases: Vec<(&str, Mutation)> = vec![
            ("identity", |c| c.identity.clear()),
            ("lease_name", |c| c.lease_name.clear()),
            ("lease_namespace", |c| c.lease_namespace.clear()),
            ("retry_period", |c| c.retry_period = Duration::ZERO),
            ("renew_deadline", |c| c.renew_deadline = Duration::ZERO),
            ("lease_duration", |c| c.lease_duration = Duration::ZERO),
            // leaseDuration must exceed renewDeadline, equality included.
            ("lease_duration", |c| c.lease_duration = c.renew_deadline),
            // renewDeadline must exceed retryPeriod * 1.2: 10s vs 8.4s passes, 10s vs 9s × 1.2 fails.
            ("renew_deadline", |c| {
                c.retry_period = Duration::from_secs(9)
            }),
            ("lease_duration", |c| {
                c.lease_duration = Duration::from_millis(900);
                c.renew_deadline = Duration::from_millis(800);
                c.retry_period = Duration::from_millis(100);
            }),
        ];
        for (field, mutate) in cases {
            let mut config = valid();
            mutate(&mut config);
            assert_eq!(invalid_field(&config), field, "{config:?}");
        }
    }

    #[test]
    fn renew_deadline_just_above_jittered_retry_is_valid() {
        let mut config = valid();
        config.retry_period = Duration::from_secs(8);
        config.renew_deadline = Duration::from_millis(9_601);
        config.validate().expect("9.601s > 8s * 1.2");
        config.renew_deadline = Duration::from_millis(9_600);
        assert_eq!(invalid_field(&config), "renew_deadline");
    }

    #[test]
    fn default_identity_is_host_and_uuid() {
        let a = default_identity();
        let b = default_identity();
        assert_ne!(a, b);
        let (host, uuid) = a.rsplit_once('_').expect("host_uuid");
        assert!(!host.is_empty());
        assert_eq!(uuid.len(), 36);
        assert_eq!(uuid.as_bytes()[14], b'4');
    }
}
