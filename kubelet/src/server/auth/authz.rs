//! May the user do it: a SubjectAccessReview on `nodes/<subresource>` of this node (component-base's cached
//! webhook), or AlwaysAllow.

use std::time::Duration;

use component_base::serving::authn::UserInfo;
use component_base::serving::authz::SubjectAccessReviewer;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReviewSpec};
use kube::Client;

use super::attributes::Attributes;

/// How requests are authorized (`--authorization-mode`).
pub enum Authorizer {
    /// Every authenticated request is allowed.
    AlwaysAllow,
    /// The apiserver decides, through SubjectAccessReviews.
    Webhook(Box<Webhook>),
}

/// The SubjectAccessReview authorizer for this node's subresources.
pub struct Webhook {
    node_name: String,
    reviewer: SubjectAccessReviewer,
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
            node_name: node_name.to_string(),
            reviewer: SubjectAccessReviewer::new(client, allowed_ttl, denied_ttl),
        }
    }

    async fn allowed(&self, user: &UserInfo, attributes: &Attributes) -> Result<bool, kube::Error> {
        let spec = SubjectAccessReviewSpec {
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
        };
        Ok(self.reviewer.review(user, spec).await?.allowed)
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
