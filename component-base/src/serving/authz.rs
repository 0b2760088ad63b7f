//! May the user do it: SubjectAccessReviews against the apiserver with upstream's allow and deny caches
//! (the webhook authorizer that both the kubelet and the delegating authorizer use).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::{SubjectAccessReview, SubjectAccessReviewSpec};
use kube::api::PostParams;
use kube::{Api, Client};

use super::authn::UserInfo;

/// The apiserver's answer to one review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Allowed and not explicitly denied.
    pub allowed: bool,
    /// Why, as the apiserver said (empty when it said nothing).
    pub reason: String,
}

/// The SubjectAccessReview webhook and its decision cache.
pub struct SubjectAccessReviewer {
    client: Client,
    allowed_ttl: Duration,
    denied_ttl: Duration,
    decisions: Mutex<HashMap<String, (Instant, Decision)>>,
}

impl SubjectAccessReviewer {
    /// Caches allows for `allowed_ttl` and denials for `denied_ttl`.
    pub fn new(client: Client, allowed_ttl: Duration, denied_ttl: Duration) -> Self {
        Self {
            client,
            allowed_ttl,
            denied_ttl,
            decisions: Mutex::new(HashMap::new()),
        }
    }

    /// The review of `spec` (its user fields are filled from `user`), from the cache while fresh.
    pub async fn review(
        &self,
        user: &UserInfo,
        mut spec: SubjectAccessReviewSpec,
    ) -> Result<Decision, kube::Error> {
        spec.user = Some(user.name.clone());
        spec.uid = (!user.uid.is_empty()).then(|| user.uid.clone());
        spec.groups = Some(user.groups.clone());
        spec.extra = (!user.extra.is_empty()).then(|| user.extra.clone());
        let key = serde_json::to_string(&spec).unwrap_or_default();
        if let Some((at, decision)) = self.lock().get(&key) {
            let ttl = if decision.allowed {
                self.allowed_ttl
            } else {
                self.denied_ttl
            };
            if at.elapsed() < ttl {
                return Ok(decision.clone());
            }
        }
        let review = SubjectAccessReview {
            spec,
            ..Default::default()
        };
        let reviewed = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await?;
        let decision = reviewed.status.map_or(
            Decision {
                allowed: false,
                reason: String::new(),
            },
            |s| Decision {
                allowed: s.allowed && s.denied != Some(true),
                reason: s.reason.unwrap_or_default(),
            },
        );
        let mut decisions = self.lock();
        let longest = self.allowed_ttl.max(self.denied_ttl);
        decisions.retain(|_, (at, _)| at.elapsed() < longest);
        decisions.insert(key, (Instant::now(), decision.clone()));
        Ok(decision)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Decision)>> {
        self.decisions.lock().unwrap_or_else(|e| e.into_inner())
    }
}
