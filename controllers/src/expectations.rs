//! Controller expectations (upstream `ControllerExpectations` and `UIDTrackingControllerExpectations` in
//! pkg/controller/controller_utils.go): how many creations and deletions a controller still waits to see in
//! its informer cache after it asked the apiserver for them. While they are pending the controller must not
//! act on the (stale) cache again, or it would create or delete the same pods twice. Expectations expire
//! after [`EXPECTATIONS_TIMEOUT`] so a lost watch event cannot wedge a controller forever.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// After this long, pending expectations no longer hold a controller back (upstream `ExpectationsTimeout`).
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// What one controller (by its queue key) still expects to observe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlleeExpectations {
    /// Creations not yet observed.
    pub add: i64,
    /// Deletions not yet observed.
    pub del: i64,
    /// When the expectations were set.
    pub timestamp: Instant,
}

impl ControlleeExpectations {
    /// Whether every expected creation and deletion has been observed.
    pub fn fulfilled(&self) -> bool {
        self.add <= 0 && self.del <= 0
    }

    /// Whether the expectations are older than [`EXPECTATIONS_TIMEOUT`] at `now`.
    pub fn expired_at(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.timestamp) > EXPECTATIONS_TIMEOUT
    }
}

/// Counts of expected creations and deletions per controller key; thread-safe, shared by the event
/// handlers (which lower them) and the workers (which set them).
#[derive(Debug, Default)]
pub struct ControllerExpectations {
    entries: Mutex<HashMap<String, ControlleeExpectations>>,
}

impl ControllerExpectations {
    /// No expectations.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ControlleeExpectations>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The expectations recorded for `key`.
    pub fn get(&self, key: &str) -> Option<ControlleeExpectations> {
        self.lock().get(key).cloned()
    }

    /// Whether the controller `key` may act on its cache: true when nothing is pending, when everything
    /// pending was observed, or when the expectations expired (upstream `SatisfiedExpectations`).
    pub fn satisfied(&self, key: &str) -> bool {
        self.satisfied_at(key, Instant::now())
    }

    /// [`ControllerExpectations::satisfied`] at a given time (tests).
    pub fn satisfied_at(&self, key: &str, now: Instant) -> bool {
        match self.lock().get(key) {
            Some(exp) => exp.fulfilled() || exp.expired_at(now),
            None => true,
        }
    }

    /// Forgets `key` (the controller was deleted).
    pub fn delete(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Replaces `key`'s expectations with `add` creations and `del` deletions, timestamped now.
    pub fn set(&self, key: &str, add: i64, del: i64) {
        self.set_at(key, add, del, Instant::now());
    }

    /// [`ControllerExpectations::set`] with an explicit timestamp (tests).
    pub fn set_at(&self, key: &str, add: i64, del: i64, timestamp: Instant) {
        let exp = ControlleeExpectations {
            add,
            del,
            timestamp,
        };
        tracing::trace!(controller = key, add, del, "setting expectations");
        self.lock().insert(key.to_string(), exp);
    }

    /// Expects `adds` creations (and no deletions) for `key`.
    pub fn expect_creations(&self, key: &str, adds: i64) {
        self.set(key, adds, 0);
    }

    /// Expects `dels` deletions (and no creations) for `key`.
    pub fn expect_deletions(&self, key: &str, dels: i64) {
        self.set(key, 0, dels);
    }

    /// Lowers `key`'s pending counts, if it has expectations.
    pub fn lower(&self, key: &str, add: i64, del: i64) {
        if let Some(exp) = self.lock().get_mut(key) {
            exp.add -= add;
            exp.del -= del;
        }
    }

    /// Raises `key`'s pending counts, if it has expectations.
    pub fn raise(&self, key: &str, add: i64, del: i64) {
        if let Some(exp) = self.lock().get_mut(key) {
            exp.add += add;
            exp.del += del;
        }
    }

    /// One expected creation was observed (or will never happen).
    pub fn creation_observed(&self, key: &str) {
        self.lower(key, 1, 0);
    }

    /// One expected deletion was observed (or will never happen).
    pub fn deletion_observed(&self, key: &str) {
        self.lower(key, 0, 1);
    }
}

/// [`ControllerExpectations`] that remember which pods (by `namespace/name` key) are expected to go, so a
/// deletion is counted once however many delete events (update with deletionTimestamp, then delete) arrive
/// for the same pod (upstream `UIDTrackingControllerExpectations`).
#[derive(Debug, Default)]
pub struct UidTrackingExpectations {
    counts: ControllerExpectations,
    // Held across the count update so a key is removed and counted atomically.
    deleting: Mutex<HashMap<String, HashSet<String>>>,
}

impl UidTrackingExpectations {
    /// No expectations.
    pub fn new() -> Self {
        Self::default()
    }

    fn deleting(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashSet<String>>> {
        self.deleting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The counts underneath.
    pub fn counts(&self) -> &ControllerExpectations {
        &self.counts
    }

    /// See [`ControllerExpectations::satisfied`].
    pub fn satisfied(&self, key: &str) -> bool {
        self.counts.satisfied(key)
    }

    /// Expects `adds` creations for `key`.
    pub fn expect_creations(&self, key: &str, adds: i64) {
        self.counts.expect_creations(key, adds);
    }

    /// One expected creation was observed (or will never happen).
    pub fn creation_observed(&self, key: &str) {
        self.counts.creation_observed(key);
    }

    /// Expects the pods `pod_keys` (`namespace/name`) to be deleted for `key`.
    pub fn expect_deletions(&self, key: &str, pod_keys: impl IntoIterator<Item = String>) {
        let mut deleting = self.deleting();
        let pods: HashSet<String> = pod_keys.into_iter().collect();
        if deleting.get(key).is_some_and(|old| !old.is_empty()) {
            tracing::warn!(controller = key, "clobbering pending delete expectations");
        }
        let count = pods.len() as i64;
        deleting.insert(key.to_string(), pods);
        self.counts.expect_deletions(key, count);
    }

    /// The pod `pod_key` was seen deleted (or its deletion failed); counts only if it was expected.
    pub fn deletion_observed(&self, key: &str, pod_key: &str) {
        let mut deleting = self.deleting();
        if let Some(pods) = deleting.get_mut(key)
            && pods.remove(pod_key)
        {
            self.counts.deletion_observed(key);
        }
    }

    /// Forgets `key` entirely.
    pub fn delete(&self, key: &str) {
        let mut deleting = self.deleting();
        self.counts.delete(key);
        deleting.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_expectations_are_satisfied() {
        let e = ControllerExpectations::new();
        assert!(e.satisfied("ns/rs"));
    }

    #[test]
    fn pending_creations_hold_back_until_observed() {
        let e = ControllerExpectations::new();
        e.expect_creations("ns/rs", 2);
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(e.satisfied("ns/rs"));
        // More observations than expected keep it satisfied.
        e.creation_observed("ns/rs");
        assert!(e.satisfied("ns/rs"));
        assert!(e.satisfied("ns/other"), "per key");
    }

    #[test]
    fn expectations_expire_after_five_minutes() {
        let e = ControllerExpectations::new();
        let start = Instant::now();
        e.set_at("k", 3, 1, start);
        assert!(!e.satisfied_at("k", start + Duration::from_secs(299)));
        assert!(e.satisfied_at("k", start + Duration::from_secs(301)));
    }

    #[test]
    fn raise_lower_and_delete() {
        let e = ControllerExpectations::new();
        e.raise("k", 1, 1);
        assert!(
            e.get("k").is_none(),
            "raising without expectations does nothing"
        );
        e.set("k", 0, 0);
        e.raise("k", 1, 2);
        let exp = e.get("k").expect("set");
        assert_eq!((exp.add, exp.del), (1, 2));
        e.lower("k", 1, 2);
        assert!(e.satisfied("k"));
        e.expect_deletions("k", 1);
        e.delete("k");
        assert!(e.satisfied("k"));
    }

    #[test]
    fn deletions_count_once_per_expected_pod() {
        let e = UidTrackingExpectations::new();
        e.expect_deletions("ns/rs", ["ns/a".to_string(), "ns/b".to_string()]);
        assert!(!e.satisfied("ns/rs"));
        e.deletion_observed("ns/rs", "ns/a");
        e.deletion_observed("ns/rs", "ns/a");
        e.deletion_observed("ns/rs", "ns/unexpected");
        assert_eq!(e.counts().get("ns/rs").map(|x| x.del), Some(1));
        e.deletion_observed("ns/rs", "ns/b");
        assert!(e.satisfied("ns/rs"));
    }

    #[test]
    fn deleting_forgets_tracked_pods() {
        let e = UidTrackingExpectations::new();
        e.expect_creations("k", 1);
        e.expect_deletions("k", ["ns/a".to_string()]);
        e.delete("k");
        assert!(e.satisfied("k"));
        e.expect_creations("k", 0);
        e.deletion_observed("k", "ns/a");
        assert_eq!(e.counts().get("k").map(|x| x.del), Some(0));
    }
}
