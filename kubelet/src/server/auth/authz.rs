//! May the user do it: SubjectAccessReview against the apiserver with upstream's allow/deny caches, or
//! AlwaysAllow.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};

use super::attributes::Attributes;
use super::authn::UserInfo;

/// How requests are authorized (`--authorization-mode`).
pub enum Authorizer {
    /// Every authenticated request is allowed.
    AlwaysAllow,
    /// The apiserver decides, through SubjectAccessReviews.
    Webhook(Box<Webhook>),
}

/// The SubjectAccessReview authorizer and its decision cache.
pub struct Webhook {
    client: Client,
    node_name: String,
    allowed_ttl: Duration,
    denied_ttl: Duration,
    decisions: Mutex<HashMap<String, (Instant, bool)>>,
}

impl Webhook {
    /// Reviews on `node_name`, caching allows for `allowed_ttl` and denials for `denied_ttl`.
    pub fn new(
        client: Client,
        node_name: &str,
        allowed_ttl: Duration,
        denied_ttl: Duration,
    ) -> Self {
        Self {
            client,
            node_name: node_name.to_string(),
            allowed_ttl,
            denied_ttl,
            decisions: Mutex::new(HashMap::new()),
        }
    }

    async fn allowed(&self, user: &UserInfo, attributes: &Attributes) -> Result<bool, kube::Error> {
        let spec = self.spec(user, attributes);
        let key = serde_json::to_string(&spec).unwrap_or_default();
        if let Some((at, allowed)) = self.lock().get(&key) {
            let ttl = if *allowed {
                self.allowed_ttl
            } else {
                self.denied_ttl
            };
            if at.elapsed() < ttl {
                return Ok(*allowed);
            }
        }
        let review = SubjectAccessReview {
            spec,
            ..Default::default()
        };
        let reviewed = Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await?;
        let allowed = reviewed
            .status
            .is_some_and(|s| s.allowed && s.denied != Some(true));
        let mut decisions = self.lock();
        let longest = self.allowed_ttl.max(self.denied_ttl);
        decisions.retain(|_, (at, _)| at.elapsed() < longest);
        decisions.insert(key, (Instant::now(), allowed));
        Ok(allowed)
    }

    fn spec(&self, user: &UserInfo, attributes: &Attributes) -> SubjectAccessReviewSpec {
        SubjectAccessReviewSpec {
            user: Some(user.name.clone()),
            uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
            groups: Some(user.groups.clone()),
            extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(String::new()),
                verb: Some(attributes.verb.to_string()),
                group: Some(String::new()),
                version: Some("v1".to_string()),
                resource: Some("nodes".to_string()),
                subresource: Some(attributes.subresource.to_string()),
                name: Some(self.node_name.clone()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, bool)>> {
        self.decisions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Authorizer {
    /// Whether `user` may do `attributes`; an error when the apiserver could not decide.
    pub async fn allowed(
        &self,
        user: &UserInfo,
        attributes: &Attributes,
    ) -> Result<bool, kube::Error> {
        match self {
            Self::AlwaysAllow => Ok(true),
            Self::Webhook(webhook) => webhook.allowed(user, attributes).await,
        }
    }
}
