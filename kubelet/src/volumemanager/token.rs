//! Service-account tokens for projected volumes through the TokenRequest API, bound to the pod, renewed
//! at 80% of their lifetime (upstream's token manager rule).

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::PostParams;
use kube::{Api, Client};

use super::VolumeError;

/// What a projected serviceAccountToken asks for when it does not say (upstream's 1 h).
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// Tokens older than this are renewed whatever their expiry (upstream's maxTTL).
const MAX_TTL: Duration = Duration::hours(24);

/// A token the kubelet holds.
#[derive(Debug, Clone)]
pub struct Token {
    /// The JWT.
    pub token: String,
    /// When it was issued (as the kubelet saw it).
    pub issued: DateTime<Utc>,
    /// When it expires (the apiserver's answer).
    pub expires: DateTime<Utc>,
    /// The lifetime asked for, in seconds.
    pub requested_seconds: i64,
}

/// When `token` must be renewed: once less than 20% of the requested lifetime is left, or 24 h after it
/// was issued.
pub fn refresh_at(token: &Token) -> DateTime<Utc> {
    let by_expiry = token.expires - Duration::seconds(token.requested_seconds * 20 / 100);
    by_expiry.min(token.issued + MAX_TTL)
}

/// Whether `token` must be renewed at `now`.
pub fn needs_refresh(token: &Token, now: DateTime<Utc>) -> bool {
    now >= refresh_at(token)
}

/// Which token: the pod, the service account, the audience and the lifetime.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenKey {
    /// The pod's uid (tokens are bound to it).
    pub pod_uid: String,
    /// The service account.
    pub service_account: String,
    /// The audience; empty means the apiserver's.
    pub audience: String,
    /// The requested lifetime.
    pub expiration_seconds: i64,
}

/// The tokens the kubelet holds, by what they were asked for.
#[derive(Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<TokenKey, Token>>,
}

impl TokenCache {
    /// A current token for `key`, requested again when due.
    pub async fn get(
        &self,
        client: &Client,
        pod: &Pod,
        key: &TokenKey,
    ) -> Result<String, VolumeError> {
        let cached = self.lock().get(key).cloned();
        if let Some(token) = cached
            && !needs_refresh(&token, Utc::now())
        {
            return Ok(token.token);
        }
        let token = request(client, pod, key).await?;
        let value = token.token.clone();
        self.lock().insert(key.clone(), token);
        Ok(value)
    }

    /// Drops the tokens of pod `uid`.
    pub fn forget(&self, uid: &str) {
        self.lock().retain(|k, _| k.pod_uid != uid);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TokenKey, Token>> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A TokenRequest for `key`, bound to `pod`.
async fn request(client: &Client, pod: &Pod, key: &TokenKey) -> Result<Token, VolumeError> {
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &namespace);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            // No audience: the apiserver's own (what upstream's kubelet asks for).
            audiences: (!key.audience.is_empty()).then(|| vec![key.audience.clone()]),
            expiration_seconds: Some(key.expiration_seconds),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".to_string()),
                kind: Some("Pod".to_string()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        }),
        ..TokenRequest::default()
    };
    let issued = Utc::now();
    let answer = api
        .create_token_request(&key.service_account, &PostParams::default(), &request)
        .await
        .map_err(|source| VolumeError::Api {
            what: format!(
                "request a token for serviceaccount {:?}",
                key.service_account
            ),
            namespace,
            source,
        })?;
    let status = answer.status.unwrap_or_default();
    let token = status.token.filter(|t| !t.is_empty()).ok_or_else(|| {
        VolumeError::Invalid("the TokenRequest came back without a token".to_string())
    })?;
    let expires = status
        .expiration_timestamp
        .and_then(|t| DateTime::from_timestamp(t.0.as_second(), 0))
        .unwrap_or(issued + Duration::seconds(key.expiration_seconds));
    Ok(Token {
        token,
        issued,
        expires,
        requested_seconds: key.expiration_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(issued: DateTime<Utc>, seconds: i64) -> Token {
        Token {
            token: "t".to_string(),
            issued,
            expires: issued + Duration::seconds(seconds),
            requested_seconds: seconds,
        }
    }

    #[test]
    fn a_token_is_renewed_at_80_percent_of_its_lifetime() {
        let issued = Utc::now();
        let t = token(issued, 3600);
        assert_eq!(refresh_at(&t), issued + Duration::seconds(2880));
        assert!(!needs_refresh(&t, issued + Duration::seconds(2879)));
        assert!(needs_refresh(&t, issued + Duration::seconds(2880)));
    }

    #[test]
    fn a_long_lived_token_is_renewed_after_a_day() {
        let issued = Utc::now();
        let t = token(issued, 7 * 24 * 3600);
        assert_eq!(refresh_at(&t), issued + Duration::hours(24));
    }

    #[test]
    fn an_extended_expiry_still_refreshes_on_the_requested_lifetime() {
        // The apiserver may extend a 3607 s token to a year; the 20% is of what was asked for.
        let issued = Utc::now();
        let mut t = token(issued, 3607);
        t.expires = issued + Duration::days(365);
        assert_eq!(refresh_at(&t), issued + Duration::hours(24));
    }
}
