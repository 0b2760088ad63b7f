//! The I/O half of leader election: reading and writing the Lease, and upstream's timing around it
//! (`acquire` with `JitterUntil`, `renew` with `PollUntilContextTimeout`, `release`).

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::time::{Instant, sleep, sleep_until, timeout, timeout_at};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, trace, warn};

use super::Error;
use super::config::{JITTER_FACTOR, LeaderElectionConfig};
use super::metrics;
use super::record::{Decision, LeaderElectionRecord, ObservedRecord, wall_now};

/// One candidate for one Lease. Create it with [`LeaderElector::new`], take a [`LeaderStatus`] with
/// [`LeaderElector::status`] if anything needs to observe it, then [`LeaderElector::run`] it.
pub struct LeaderElector {
    config: LeaderElectionConfig,
    leases: Api<Lease>,
    /// The Lease as last read or written: its resourceVersion makes our next update fail with 409
    /// Conflict if anyone wrote in between.
    lease: Option<Lease>,
    observed: Option<ObservedRecord>,
    state: watch::Sender<LeaderElectionState>,
    describe: Arc<str>,
}

/// An elector's state as others may observe it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderElectionState {
    /// Whether this elector leads: true from acquiring the Lease until renewal fails or leading ends.
    pub is_leader: bool,
    /// The holder last seen in the Lease, by anyone (upstream's `GetLeader`); `None` before the first read
    /// or while the Lease is released.
    pub leader: Option<String>,
    /// Local time of this elector's last successful acquire or renew.
    pub renewed_at: Option<Instant>,
}

/// A cheap, cloneable view of one elector's state, for readiness checks, metrics and tests.
#[derive(Clone, Debug)]
pub struct LeaderStatus {
    state: watch::Receiver<LeaderElectionState>,
    lease: Arc<str>,
    lease_duration: Duration,
}

impl LeaderStatus {
    /// Whether the elector currently leads.
    pub fn is_leader(&self) -> bool {
        self.state.borrow().is_leader
    }

    /// The holder last seen in the Lease (which may be this elector or another).
    pub fn leader(&self) -> Option<String> {
        self.state.borrow().leader.clone()
    }

    /// A snapshot of the whole state.
    pub fn state(&self) -> LeaderElectionState {
        self.state.borrow().clone()
    }

    /// A receiver notified whenever leading starts or stops or the observed holder changes.
    pub fn subscribe(&self) -> watch::Receiver<LeaderElectionState> {
        self.state.clone()
    }

    /// Waits until leading is `leading`; returns at once if it already is, or when the elector is gone.
    pub async fn wait_for(&self, leading: bool) {
        let mut state = self.state.clone();
        // An error only means the elector was dropped; its last state is all there will be.
        let _ = state.wait_for(|s| s.is_leader == leading).await;
    }

    /// Upstream's leader-election health check (`HealthzAdaptor.Check`): fails when this elector leads but
    /// has not renewed for longer than the lease duration plus `max_tolerable_expired_lease`, i.e. it is
    /// stuck and another candidate may already lead.
    pub fn check(&self, max_tolerable_expired_lease: Duration) -> Result<(), Error> {
        let state = self.state.borrow();
        match state.renewed_at {
            Some(renewed_at) if state.is_leader => {
                let since = renewed_at.elapsed();
                if since
                    > self
                        .lease_duration
                        .saturating_add(max_tolerable_expired_lease)
                {
                    return Err(Error::LeaseNotRenewed {
                        lease: self.lease.to_string(),
                        since,
                    });
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// Why the leader stopped renewing.
enum StopReason {
    Shutdown,
    RenewFailed,
    WorkFinished,
}

impl LeaderElector {
    /// An elector for `config` (validated) talking to the apiserver through `client`.
    pub fn new(client: Client, config: LeaderElectionConfig) -> Result<Self, Error> {
        config.validate()?;
        metrics::set_leading(&config.lease_name, false);
        let leases = Api::namespaced(client, &config.lease_namespace);
        let describe = config.describe().into();
        Ok(Self {
            config,
            leases,
            lease: None,
            observed: None,
            state: watch::Sender::new(LeaderElectionState::default()),
            describe,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &LeaderElectionConfig {
        &self.config
    }

    /// A handle observing this elector, valid after `run` has consumed it.
    pub fn status(&self) -> LeaderStatus {
        LeaderStatus {
            state: self.state.subscribe(),
            lease: self.describe.clone(),
            lease_duration: self.config.lease_duration,
        }
    }

    /// Campaigns until this elector leads, then runs `on_started_leading(leading)` while renewing the Lease.
    ///
    /// `leading` is cancelled when leadership is lost or `shutdown` is cancelled; the leader work must then
    /// return promptly, since `run` waits for it before releasing the Lease (so two leaders never overlap
    /// through us). Returns `Ok(())` when `shutdown` ends the campaign or the leadership, or when the leader
    /// work returns on its own (which ends leading too), and `Err(LeaderElectionLost)` when a renewal did not
    /// succeed within the renew deadline (upstream components treat that as fatal).
    pub async fn run<F, Fut>(
        mut self,
        shutdown: CancellationToken,
        on_started_leading: F,
    ) -> Result<(), Error>
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = ()>,
    {
        if !self.acquire(&shutdown).await {
            return Ok(());
        }
        let reason = if shutdown.is_cancelled() {
            // Acquired just as shutdown came: never start the work.
            self.stop_leading();
            StopReason::Shutdown
        } else {
            let leading = shutdown.child_token();
            let mut work = pin!(on_started_leading(leading.clone()));
            let reason = tokio::select! {
                reason = self.renew(&shutdown) => reason,
                () = &mut work => StopReason::WorkFinished,
            };
            self.stop_leading();
            leading.cancel();
            if !matches!(reason, StopReason::WorkFinished) {
                work.await;
            }
            reason
        };
        if self.config.release_on_cancel {
            self.release().await;
        }
        match reason {
            StopReason::RenewFailed => Err(Error::LeaderElectionLost {
                lease: self.describe.to_string(),
            }),
            StopReason::Shutdown | StopReason::WorkFinished => Ok(()),
        }
    }

    /// Tries every retry period (jittered) until the Lease is ours; false if `shutdown` came first.
    async fn acquire(&mut self, shutdown: &CancellationToken) -> bool {
        info!(lease = %self.describe, "attempting to acquire leader lease {}...", self.describe);
        loop {
            let period = jittered(self.config.retry_period, JITTER_FACTOR);
            let attempt = timeout(self.config.renew_deadline, self.try_acquire_or_renew());
            let succeeded = tokio::select! {
                () = shutdown.cancelled() => return false,
                result = attempt => result.unwrap_or_else(|_| {
                    warn!(lease = %self.describe, "attempt to acquire lease timed out");
                    false
                }),
            };
            self.report_transition();
            if succeeded {
                self.start_leading();
                info!(lease = %self.describe, "successfully acquired lease {}", self.describe);
                return true;
            }
            debug!(lease = %self.describe, "failed to acquire lease {}", self.describe);
            tokio::select! {
                () = shutdown.cancelled() => return false,
                () = sleep(period) => {}
            }
        }
    }

    /// Renews every retry period; leading ends when a renewal has not succeeded within the renew deadline.
    async fn renew(&mut self, shutdown: &CancellationToken) -> StopReason {
        loop {
            let deadline = Instant::now() + self.config.renew_deadline;
            let renewed = tokio::select! {
                () = shutdown.cancelled() => return StopReason::Shutdown,
                renewed = self.renew_until(deadline) => renewed,
            };
            self.report_transition();
            if !renewed {
                metrics::set_leading(&self.config.lease_name, false);
                info!(
                    lease = %self.describe,
                    "failed to renew lease {}: timed out waiting for the condition", self.describe
                );
                return StopReason::RenewFailed;
            }
            trace!(lease = %self.describe, "successfully renewed lease {}", self.describe);
            tokio::select! {
                () = shutdown.cancelled() => return StopReason::Shutdown,
                () = sleep(self.config.retry_period) => {}
            }
        }
    }

    /// Retries `try_acquire_or_renew` every retry period until it succeeds or `deadline` passes, the
    /// deadline also cutting short a hung request.
    async fn renew_until(&mut self, deadline: Instant) -> bool {
        loop {
            match timeout_at(deadline, self.try_acquire_or_renew()).await {
                Ok(true) => return true,
                Ok(false) => {}
                Err(_) => return false,
            }
            let next = Instant::now() + self.config.retry_period;
            if next >= deadline {
                sleep_until(deadline).await;
                return false;
            }
            sleep_until(next).await;
        }
    }

    /// One round of upstream's `tryAcquireOrRenew`; true if the Lease now names us.
    async fn try_acquire_or_renew(&mut self) -> bool {
        // Taken before any request, so our view of our own lease's expiry errs on the early side.
        let now = Instant::now();
        let wall_now = wall_now();

        // Fast path: a leader renews on the strength of its cached Lease; a conflict sends it the slow way.
        if let (Some(observed), Some(lease)) = (&self.observed, &self.lease)
            && let Some(record) = self.config.fast_path_renewal(observed, now, wall_now)
        {
            match self.update(lease.clone(), &record).await {
                Ok(lease) => {
                    self.remember(lease, now);
                    return true;
                }
                Err(error) => {
                    debug!(lease = %self.describe, %error, "failed to update lease optimistically, falling back to slow path");
                }
            }
        }

        let current = match self.leases.get_opt(&self.config.lease_name).await {
            Ok(current) => current,
            Err(source) => {
                let error = self.api_error("get", source);
                error!(lease = %self.describe, %error, "error retrieving lease lock");
                return false;
            }
        };
        let decision = match &current {
            Some(lease) => {
                self.lease = Some(lease.clone());
                let record = LeaderElectionRecord::from_lease(lease);
                let observed = ObservedRecord::observe(self.observed.take(), record, now);
                let decision = self.config.decide(Some(&observed), now, wall_now);
                self.observed = Some(observed);
                decision
            }
            None => self.config.decide(None, now, wall_now),
        };
        let record = match decision {
            Decision::Wait { holder, remaining } => {
                debug!(lease = %self.describe, %holder, ?remaining, "lease is held and has not yet expired");
                return false;
            }
            Decision::Renew(record) => {
                metrics::slowpath_exercised(&self.config.lease_name);
                record
            }
            Decision::Create(record) | Decision::Acquire(record) => record,
        };
        // decide() answers Create exactly when there is no Lease, so the write follows `current`.
        let (written, action) = match current {
            Some(lease) => (self.update(lease, &record).await, "failed to update lease"),
            None => (
                self.create(&record).await,
                "error initially creating lease lock",
            ),
        };
        match written {
            Ok(lease) => {
                self.remember(lease, now);
                true
            }
            // A conflict (or AlreadyExists) only means another candidate wrote first; retry next period.
            Err(error) if is_conflict(&error) => {
                debug!(lease = %self.describe, %error, "lease changed concurrently");
                false
            }
            Err(error) => {
                error!(lease = %self.describe, %error, "{action}");
                false
            }
        }
    }

    /// Empties the Lease if it still names us (upstream's `release`), so a successor need not wait.
    async fn release(&mut self) {
        match timeout(self.config.renew_deadline, self.try_release()).await {
            Ok(Ok(true)) => info!(lease = %self.describe, "released lease {}", self.describe),
            Ok(Ok(false)) => {}
            Ok(Err(error)) => error!(lease = %self.describe, %error, "failed to release lease"),
            Err(_) => error!(lease = %self.describe, "failed to release lease: timed out"),
        }
    }

    async fn try_release(&mut self) -> Result<bool, Error> {
        let Some(lease) = self
            .leases
            .get_opt(&self.config.lease_name)
            .await
            .map_err(|source| self.api_error("get", source))?
        else {
            info!(lease = %self.describe, "lease lock not found");
            return Ok(false);
        };
        // Checked on the fresh read, not our last observation: after a failed renewal someone else may
        // hold the Lease now, and releasing theirs would hand it to a third candidate early.
        let current = LeaderElectionRecord::from_lease(&lease);
        if current.holder_identity != self.config.identity {
            return Ok(false);
        }
        let now = Instant::now();
        let record = LeaderElectionRecord::released(current.leader_transitions, wall_now());
        let lease = self.update(lease, &record).await?;
        self.remember(lease, now);
        self.report_transition();
        Ok(true)
    }

    async fn create(&self, record: &LeaderElectionRecord) -> Result<Lease, Error> {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.config.lease_name.clone()),
                namespace: Some(self.config.lease_namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(record.to_lease_spec()),
        };
        self.leases
            .create(&PostParams::default(), &lease)
            .await
            .map_err(|source| self.api_error("create", source))
    }

    /// Writes `record` over `lease`, guarded by the resourceVersion `lease` was read with.
    async fn update(
        &self,
        mut lease: Lease,
        record: &LeaderElectionRecord,
    ) -> Result<Lease, Error> {
        lease.spec = Some(record.to_lease_spec());
        self.leases
            .replace(&self.config.lease_name, &PostParams::default(), &lease)
            .await
            .map_err(|source| self.api_error("update", source))
    }

    /// Adopts the Lease the apiserver returned after our write: its record (at the server's precision) is
    /// what the next read will be compared with.
    fn remember(&mut self, lease: Lease, now: Instant) {
        let record = LeaderElectionRecord::from_lease(&lease);
        if record.holder_identity == self.config.identity {
            // Not a notification: only changes of leading or holder should wake subscribers.
            self.state.send_if_modified(|s| {
                s.renewed_at = Some(now);
                false
            });
        }
        self.observed = Some(ObservedRecord {
            record,
            observed_time: now,
        });
        self.lease = Some(lease);
    }

    /// Publishes the observed holder when it changed (upstream's `maybeReportTransition`/`OnNewLeader`).
    fn report_transition(&mut self) {
        let holder = self
            .observed
            .as_ref()
            .map(|o| o.record.holder_identity.clone())
            .filter(|h| !h.is_empty());
        let describe = &self.describe;
        self.state.send_if_modified(|s| {
            if s.leader == holder {
                return false;
            }
            match &holder {
                Some(holder) => info!(lease = %describe, %holder, "new leader observed"),
                None => info!(lease = %describe, "lease released, no leader"),
            }
            s.leader = holder;
            true
        });
    }

    fn start_leading(&mut self) {
        metrics::set_leading(&self.config.lease_name, true);
        self.state
            .send_if_modified(|s| !std::mem::replace(&mut s.is_leader, true));
    }

    fn stop_leading(&mut self) {
        metrics::set_leading(&self.config.lease_name, false);
        if self
            .state
            .send_if_modified(|s| std::mem::replace(&mut s.is_leader, false))
        {
            info!(lease = %self.describe, "stopped leading");
        }
    }

    fn api_error(&self, action: &'static str, source: kube::Error) -> Error {
        Error::Api {
            action,
            lease: self.describe.to_string(),
            source,
        }
    }
}

fn is_conflict(error: &Error) -> bool {
    matches!(
        error,
        Error::Api { source: kube::Error::Api(status), .. } if status.is_conflict() || status.is_already_exists()
    )
}

/// Upstream's `wait.Jitter`: `duration` plus a random fraction of up to `max_factor` × `duration`.
fn jittered(duration: Duration, max_factor: f64) -> Duration {
    duration + duration.mul_f64(rand::random::<f64>() * max_factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_upstreams_bounds() {
        let base = Duration::from_secs(2);
        for _ in 0..1_000 {
            let period = jittered(base, JITTER_FACTOR);
            assert!(
                period >= base && period < base.mul_f64(1.0 + JITTER_FACTOR),
                "{period:?}"
            );
        }
    }
}
