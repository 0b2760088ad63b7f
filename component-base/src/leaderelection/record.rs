//! The pure half of leader election: the Lease's contents as upstream's `LeaderElectionRecord`, when the
//! local clock last saw them change, and what a candidate should do about them. No I/O, so every rule of
//! upstream's `tryAcquireOrRenew` is unit-tested here.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use tokio::time::Instant;

use super::LeaderElectionConfig;

/// What a Lease says about its holder (client-go's `resourcelock.LeaderElectionRecord`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeaderElectionRecord {
    /// `spec.holderIdentity`; empty when nobody holds the Lease (e.g. after a release).
    pub holder_identity: String,
    /// `spec.leaseDurationSeconds`, as the holder configured it.
    pub lease_duration_seconds: i32,
    /// `spec.acquireTime`: when the current holder took the Lease.
    pub acquire_time: Option<Timestamp>,
    /// `spec.renewTime`: the holder's clock at its last renewal; informational only, never used for expiry.
    pub renew_time: Option<Timestamp>,
    /// `spec.leaseTransitions`: how many times the holder changed.
    pub leader_transitions: i32,
}

impl LeaderElectionRecord {
    /// Reads the record from a Lease spec (upstream's `LeaseSpecToLeaderElectionRecord`).
    pub fn from_lease_spec(spec: &LeaseSpec) -> Self {
        Self {
            holder_identity: spec.holder_identity.clone().unwrap_or_default(),
            lease_duration_seconds: spec.lease_duration_seconds.unwrap_or_default(),
            acquire_time: spec.acquire_time.as_ref().map(|t| t.0),
            renew_time: spec.renew_time.as_ref().map(|t| t.0),
            leader_transitions: spec.lease_transitions.unwrap_or_default(),
        }
    }

    /// Reads the record from a Lease; a Lease without spec reads as free.
    pub fn from_lease(lease: &Lease) -> Self {
        lease
            .spec
            .as_ref()
            .map(Self::from_lease_spec)
            .unwrap_or_default()
    }

    /// The Lease spec holding this record (upstream's `LeaderElectionRecordToLeaseSpec`).
    pub fn to_lease_spec(&self) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.holder_identity.clone()),
            lease_duration_seconds: Some(self.lease_duration_seconds),
            acquire_time: self.acquire_time.map(MicroTime),
            renew_time: self.renew_time.map(MicroTime),
            lease_transitions: Some(self.leader_transitions),
            ..LeaseSpec::default()
        }
    }

    /// What a leader writes to give the Lease up: no holder, a 1-second duration so candidates need not
    /// wait out the old one, and the transition count kept (upstream's `release`).
    pub fn released(leader_transitions: i32, wall_now: Timestamp) -> Self {
        Self {
            holder_identity: String::new(),
            lease_duration_seconds: 1,
            acquire_time: Some(wall_now),
            renew_time: Some(wall_now),
            leader_transitions,
        }
    }

    /// The lease duration this record grants its holder; negative values count as zero.
    pub fn lease_duration(&self) -> Duration {
        Duration::from_secs(u64::try_from(self.lease_duration_seconds).unwrap_or(0))
    }
}

/// A record together with the local time it was first seen in this form (upstream's `observedRecord` and
/// `observedTime`). Expiry is judged from `observed_time`, so clock skew between machines cannot matter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedRecord {
    /// The record as last read or written.
    pub record: LeaderElectionRecord,
    /// Local monotonic time at which `record` was first observed.
    pub observed_time: Instant,
}

impl ObservedRecord {
    /// Records having seen `record` at `now`, keeping the earlier observation time if it has not changed
    /// since: only a change proves its holder is alive.
    pub fn observe(
        previous: Option<ObservedRecord>,
        record: LeaderElectionRecord,
        now: Instant,
    ) -> Self {
        match previous {
            Some(previous) if previous.record == record => previous,
            _ => Self {
                record,
                observed_time: now,
            },
        }
    }

    /// How long the lease stays valid after `now` (upstream's `isLeaseValid`: observedTime + duration is
    /// strictly after now); `None` once expired.
    pub fn remaining(&self, now: Instant) -> Option<Duration> {
        match self.observed_time.checked_add(self.record.lease_duration()) {
            Some(expiry) if expiry > now => Some(expiry - now),
            Some(_) => None,
            // Unrepresentably far in the future: valid for as long as anyone will wait.
            None => Some(Duration::MAX),
        }
    }
}

/// What a candidate should do about the Lease as it now stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No Lease exists: create it with this record.
    Create(LeaderElectionRecord),
    /// The Lease is free or expired: take it over by writing this record.
    Acquire(LeaderElectionRecord),
    /// The Lease names us: renew it by writing this record.
    Renew(LeaderElectionRecord),
    /// Another candidate holds an unexpired Lease: try again later.
    Wait {
        /// Who holds it.
        holder: String,
        /// How long until it expires unless renewed, by our clock.
        remaining: Duration,
    },
}

impl LeaderElectionConfig {
    /// Upstream's `tryAcquireOrRenew` slow path: what to do given the Lease just read (`None` when it does
    /// not exist) and observed per [`ObservedRecord::observe`], at local time `now` and wall time `wall_now`.
    pub fn decide(
        &self,
        observed: Option<&ObservedRecord>,
        now: Instant,
        wall_now: Timestamp,
    ) -> Decision {
        let Some(observed) = observed else {
            return Decision::Create(self.acquired_record(0, wall_now));
        };
        let current = &observed.record;
        if current.holder_identity == self.identity {
            return Decision::Renew(self.renewed_record(current, wall_now));
        }
        if !current.holder_identity.is_empty()
            && let Some(remaining) = observed.remaining(now)
        {
            return Decision::Wait {
                holder: current.holder_identity.clone(),
                remaining,
            };
        }
        Decision::Acquire(
            self.acquired_record(current.leader_transitions.saturating_add(1), wall_now),
        )
    }

    /// Upstream's fast path: while we lead and our own last observation is still valid, renew on the
    /// strength of the cached Lease without reading it first. `None` means read it (slow path).
    pub fn fast_path_renewal(
        &self,
        observed: &ObservedRecord,
        now: Instant,
        wall_now: Timestamp,
    ) -> Option<LeaderElectionRecord> {
        (observed.record.holder_identity == self.identity && observed.remaining(now).is_some())
            .then(|| self.renewed_record(&observed.record, wall_now))
    }

    fn acquired_record(
        &self,
        leader_transitions: i32,
        wall_now: Timestamp,
    ) -> LeaderElectionRecord {
        LeaderElectionRecord {
            holder_identity: self.identity.clone(),
            lease_duration_seconds: self.lease_duration_seconds(),
            acquire_time: Some(wall_now),
            renew_time: Some(wall_now),
            leader_transitions,
        }
    }

    fn renewed_record(
        &self,
        current: &LeaderElectionRecord,
        wall_now: Timestamp,
    ) -> LeaderElectionRecord {
        LeaderElectionRecord {
            acquire_time: current.acquire_time,
            ..self.acquired_record(current.leader_transitions, wall_now)
        }
    }
}

/// The wall-clock time to write into `acquireTime`/`renewTime`, at the Lease's microsecond precision.
pub(crate) fn wall_now() -> Timestamp {
    // chrono's clock is always inside jiff's range (years -9999..=9999); the fallback is unreachable.
    Timestamp::from_microsecond(chrono::Utc::now().timestamp_micros())
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn config() -> LeaderElectionConfig {
        LeaderElectionConfig::new("kube-system", "lease", "me")
    }

    fn ts(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).expect("in range")
    }

    fn held_by(holder: &str, transitions: i32) -> LeaderElectionRecord {
        LeaderElectionRecord {
            holder_identity: holder.into(),
            lease_duration_seconds: 15,
            acquire_time: Some(ts(1_000)),
            renew_time: Some(ts(1_010)),
            leader_transitions: transitions,
        }
    }

    fn observed(record: LeaderElectionRecord, at: Instant) -> ObservedRecord {
        ObservedRecord {
            record,
            observed_time: at,
        }
    }

    #[test]
    fn missing_lease_is_created_naming_us() {
        let now = Instant::now();
        let Decision::Create(record) = config().decide(None, now, ts(2_000)) else {
            panic!("expected Create")
        };
        assert_eq!(record.holder_identity, "me");
        assert_eq!(record.lease_duration_seconds, 15);
        assert_eq!(record.leader_transitions, 0);
        assert_eq!(record.acquire_time, Some(ts(2_000)));
        assert_eq!(record.renew_time, Some(ts(2_000)));
    }

    #[test]
    fn free_lease_is_acquired_even_when_just_released() {
        let now = Instant::now();
        let free = observed(LeaderElectionRecord::released(4, ts(1_000)), now);
        assert!(
            free.remaining(now).is_some(),
            "a just-released lease is still 'valid' for 1s"
        );
        let decision = config().decide(Some(&free), now, ts(2_000));
        let Decision::Acquire(record) = decision else {
            panic!("expected Acquire, got {decision:?}")
        };
        assert_eq!(record.holder_identity, "me");
        assert_eq!(record.leader_transitions, 5);
        assert_eq!(record.acquire_time, Some(ts(2_000)));
    }

    #[test]
    fn own_lease_is_renewed_keeping_acquire_time_and_transitions() {
        let now = Instant::now();
        let mine = observed(held_by("me", 3), now);
        let decision = config().decide(Some(&mine), now + SECOND, ts(2_000));
        let Decision::Renew(record) = decision else {
            panic!("expected Renew, got {decision:?}")
        };
        assert_eq!(record.holder_identity, "me");
        assert_eq!(record.leader_transitions, 3);
        assert_eq!(record.acquire_time, Some(ts(1_000)));
        assert_eq!(record.renew_time, Some(ts(2_000)));
        assert_eq!(record.lease_duration_seconds, 15);
    }

    #[test]
    fn own_expired_lease_is_still_renewed_not_reacquired() {
        // Upstream: IsLeader() wins over expiry, so a restarted candidate with the same identity keeps
        // acquireTime and the transition count.
        let now = Instant::now();
        let mine = observed(held_by("me", 3), now);
        let decision = config().decide(Some(&mine), now + 60 * SECOND, ts(2_000));
        assert!(
            matches!(decision, Decision::Renew(ref r) if r.leader_transitions == 3),
            "{decision:?}"
        );
    }

    #[test]
    fn anothers_unexpired_lease_means_wait() {
        let now = Instant::now();
        let theirs = observed(held_by("other", 2), now);
        let decision = config().decide(Some(&theirs), now + 5 * SECOND, ts(2_000));
        assert_eq!(
            decision,
            Decision::Wait {
                holder: "other".into(),
                remaining: 10 * SECOND
            }
        );
    }

    #[test]
    fn anothers_lease_expired_by_observed_time_is_acquired_with_one_more_transition() {
        let now = Instant::now();
        let theirs = observed(held_by("other", 2), now);
        let decision = config().decide(Some(&theirs), now + 16 * SECOND, ts(2_000));
        let Decision::Acquire(record) = decision else {
            panic!("expected Acquire, got {decision:?}")
        };
        assert_eq!(record.holder_identity, "me");
        assert_eq!(record.leader_transitions, 3);
        assert_eq!(record.acquire_time, Some(ts(2_000)));
        assert_eq!(record.renew_time, Some(ts(2_000)));
    }

    #[test]
    fn expiry_is_strict_like_upstream() {
        let now = Instant::now();
        let theirs = observed(held_by("other", 0), now);
        let at_expiry = config().decide(Some(&theirs), now + 15 * SECOND, ts(2_000));
        assert!(matches!(at_expiry, Decision::Acquire(_)), "{at_expiry:?}");
        let just_before = config().decide(
            Some(&theirs),
            now + 15 * SECOND - Duration::from_millis(1),
            ts(2_000),
        );
        assert!(
            matches!(just_before, Decision::Wait { .. }),
            "{just_before:?}"
        );
    }

    #[test]
    fn remote_renew_time_is_ignored_only_observed_time_counts() {
        let now = Instant::now();
        // The holder's clock is far ahead: its renewTime is in our future, yet it stopped renewing long ago.
        let mut ahead = held_by("other", 1);
        ahead.renew_time = Some(ts(4_000_000_000));
        let stale = observed(ahead, now);
        let decision = config().decide(Some(&stale), now + 20 * SECOND, ts(2_000));
        assert!(matches!(decision, Decision::Acquire(_)), "{decision:?}");

        // The holder's clock is far behind: its renewTime looks ancient, yet we just saw it change.
        let mut behind = held_by("other", 1);
        behind.renew_time = Some(ts(1));
        let fresh = observed(behind, now);
        let decision = config().decide(Some(&fresh), now + SECOND, ts(2_000));
        assert!(matches!(decision, Decision::Wait { .. }), "{decision:?}");
    }

    #[test]
    fn observation_time_only_moves_when_the_record_changes() {
        let t0 = Instant::now();
        let first = ObservedRecord::observe(None, held_by("other", 1), t0);
        assert_eq!(first.observed_time, t0);

        // Same record read again later: the holder has not proven it is alive, so the clock keeps running.
        let again =
            ObservedRecord::observe(Some(first.clone()), held_by("other", 1), t0 + 10 * SECOND);
        assert_eq!(again.observed_time, t0);
        let decision = config().decide(Some(&again), t0 + 16 * SECOND, ts(2_000));
        assert!(matches!(decision, Decision::Acquire(_)), "{decision:?}");

        // A renewal (any change) restarts it.
        let mut renewed = held_by("other", 1);
        renewed.renew_time = Some(ts(1_012));
        let changed = ObservedRecord::observe(Some(again), renewed, t0 + 12 * SECOND);
        assert_eq!(changed.observed_time, t0 + 12 * SECOND);
        let decision = config().decide(Some(&changed), t0 + 16 * SECOND, ts(2_000));
        assert!(matches!(decision, Decision::Wait { .. }), "{decision:?}");
    }

    #[test]
    fn lease_without_duration_counts_as_expired() {
        let now = Instant::now();
        let mut record = held_by("other", 0);
        record.lease_duration_seconds = 0;
        let decision = config().decide(Some(&observed(record, now)), now, ts(2_000));
        assert!(matches!(decision, Decision::Acquire(_)), "{decision:?}");
    }

    #[test]
    fn fast_path_only_for_our_own_valid_lease() {
        let now = Instant::now();
        let config = config();
        let mine = observed(held_by("me", 2), now);
        let record = config
            .fast_path_renewal(&mine, now + SECOND, ts(2_000))
            .expect("fast path");
        assert_eq!(record.acquire_time, Some(ts(1_000)));
        assert_eq!(record.leader_transitions, 2);
        assert_eq!(record.renew_time, Some(ts(2_000)));
        assert_eq!(
            config.fast_path_renewal(&mine, now + 15 * SECOND, ts(2_000)),
            None
        );
        let theirs = observed(held_by("other", 2), now);
        assert_eq!(config.fast_path_renewal(&theirs, now, ts(2_000)), None);
    }

    #[test]
    fn record_round_trips_through_the_lease_spec() {
        let record = held_by("me", 7);
        let spec = record.to_lease_spec();
        assert_eq!(spec.holder_identity.as_deref(), Some("me"));
        assert_eq!(spec.lease_duration_seconds, Some(15));
        assert_eq!(spec.lease_transitions, Some(7));
        assert_eq!(LeaderElectionRecord::from_lease_spec(&spec), record);

        let json = serde_json::to_value(&spec).expect("serialize");
        assert_eq!(json["renewTime"], "1970-01-01T00:16:50.000000Z");
        assert_eq!(json["holderIdentity"], "me");

        let released = LeaderElectionRecord::released(7, ts(2_000)).to_lease_spec();
        assert_eq!(released.holder_identity.as_deref(), Some(""));
        assert_eq!(released.lease_duration_seconds, Some(1));
        assert_eq!(released.lease_transitions, Some(7));
        assert_eq!(
            LeaderElectionRecord::from_lease(&Lease::default()),
            LeaderElectionRecord::default()
        );
    }

    #[test]
    fn wall_now_has_microsecond_precision() {
        let now = wall_now();
        assert_eq!(now.subsec_nanosecond() % 1_000, 0);
        assert!(now > ts(1_700_000_000));
    }
}
