//! What happens when a container's image is not on the node (upstream's image manager, without a registry
//! to pull from): `ErrImageNeverPull` under pull policy Never; otherwise the pull fails (`ErrImagePull`) and
//! further attempts back off per pod and image, 10 s doubling to 5 min (`ImagePullBackOff`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::actions::{INITIAL_BACKOFF, MAX_BACKOFF};

/// A pod whose sync failed is synced again after this (upstream's pod-worker backOffPeriod), so a user sees
/// ErrImagePull, then ImagePullBackOff while the pull backs off, as with upstream's kubelet.
const RESYNC_AFTER_FAILURE: Duration = Duration::from_secs(10);

/// The container's waiting state and the events for one missing image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingImage {
    /// The waiting reason: `ErrImageNeverPull`, `ErrImagePull` or `ImagePullBackOff`.
    pub reason: &'static str,
    /// The waiting message.
    pub message: String,
    /// Events as (warning, reason, message).
    pub events: Vec<(bool, &'static str, String)>,
    /// When to sync the pod again.
    pub retry_after: Duration,
}

/// Pull backoff per `POD-UID_IMAGE`, as upstream's.
#[derive(Debug, Default)]
pub struct PullBackOff {
    entries: HashMap<String, Attempt>,
}

#[derive(Debug)]
struct Attempt {
    retry_at: Instant,
    delay: Duration,
    error: String,
}

impl PullBackOff {
    /// What to report for `image` (as the pod spells it) of pod `pod_uid`, which is not on the node, at `now`.
    pub fn missing(
        &mut self,
        pod_uid: &str,
        image: &str,
        policy: &str,
        now: Instant,
    ) -> MissingImage {
        if policy == "Never" {
            let message =
                format!("Container image \"{image}\" is not present with pull policy of Never");
            return MissingImage {
                reason: "ErrImageNeverPull",
                message: message.clone(),
                events: vec![(true, "ErrImageNeverPull", message)],
                retry_after: MAX_BACKOFF,
            };
        }
        let key = format!("{pod_uid}_{image}");
        if let Some(attempt) = self.entries.get(&key)
            && now < attempt.retry_at
        {
            let message = format!("Back-off pulling image \"{image}\": {}", attempt.error);
            return MissingImage {
                reason: "ImagePullBackOff",
                message,
                events: vec![(
                    false,
                    "BackOff",
                    format!("Back-off pulling image \"{image}\""),
                )],
                retry_after: RESYNC_AFTER_FAILURE,
            };
        }
        let error = format!(
            "failed to pull and unpack image \"{image}\": no registry is reachable from this node; import the image into containerd (namespace k8s.io)"
        );
        let delay = self
            .entries
            .get(&key)
            .map_or(INITIAL_BACKOFF, |a| (a.delay * 2).min(MAX_BACKOFF));
        self.entries.insert(
            key,
            Attempt {
                retry_at: now + delay,
                delay,
                error: error.clone(),
            },
        );
        let message = format!("Failed to pull image \"{image}\": {error}");
        MissingImage {
            reason: "ErrImagePull",
            message: message.clone(),
            events: vec![
                (false, "Pulling", format!("Pulling image \"{image}\"")),
                (true, "Failed", message),
            ],
            retry_after: RESYNC_AFTER_FAILURE,
        }
    }

    /// Forgets a pod's attempts (the image turned up, or the pod is gone).
    pub fn forget(&mut self, pod_uid: &str) {
        self.entries
            .retain(|key, _| !key.starts_with(&format!("{pod_uid}_")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_pull_is_reported_at_once() {
        let mut backoff = PullBackOff::default();
        let missing = backoff.missing("uid", "nginx", "Never", Instant::now());
        assert_eq!(missing.reason, "ErrImageNeverPull");
        assert_eq!(
            missing.message,
            "Container image \"nginx\" is not present with pull policy of Never"
        );
    }

    #[test]
    fn failed_pulls_back_off_doubling() {
        let mut backoff = PullBackOff::default();
        let start = Instant::now();
        let first = backoff.missing("uid", "nginx", "IfNotPresent", start);
        assert_eq!(first.reason, "ErrImagePull");
        assert!(
            first
                .message
                .starts_with("Failed to pull image \"nginx\": ")
        );
        let during = backoff.missing(
            "uid",
            "nginx",
            "IfNotPresent",
            start + Duration::from_secs(4),
        );
        assert_eq!(during.reason, "ImagePullBackOff");
        assert!(
            during
                .message
                .starts_with("Back-off pulling image \"nginx\": failed to pull")
        );
        // The second failure backs off 20 s.
        let second = backoff.missing(
            "uid",
            "nginx",
            "IfNotPresent",
            start + Duration::from_secs(10),
        );
        assert_eq!(second.reason, "ErrImagePull");
        let later = backoff.missing(
            "uid",
            "nginx",
            "IfNotPresent",
            start + Duration::from_secs(29),
        );
        assert_eq!(later.reason, "ImagePullBackOff");
        let third = backoff.missing(
            "uid",
            "nginx",
            "IfNotPresent",
            start + Duration::from_secs(30),
        );
        assert_eq!(third.reason, "ErrImagePull");
        backoff.forget("uid");
        let fresh = backoff.missing(
            "uid",
            "nginx",
            "IfNotPresent",
            start + Duration::from_secs(11),
        );
        assert_eq!(fresh.retry_after, Duration::from_secs(10));
    }
}
