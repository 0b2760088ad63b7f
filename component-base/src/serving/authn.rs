//! Who is asking (upstream's DelegatingAuthenticatorConfig): an x509 client certificate verified against the
//! client CA, else a bearer token reviewed by the apiserver (TokenReview, cached), else anonymous when
//! allowed. As upstream's union fails on error, a token the apiserver rejects is not treated as anonymous.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::HeaderMap;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::PostParams;
use kube::{Api, Client};
use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

/// An authenticated user, as the authorizer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name.
    pub name: String,
    /// The user's uid, when the token review gave one.
    pub uid: String,
    /// The user's groups.
    pub groups: Vec<String>,
    /// Extra attributes from the token review.
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The client certificate chain of a connection, as judged against the client CA.
#[derive(Debug, Clone, Default)]
pub enum PeerCertificates {
    /// None was presented (or none asked for).
    #[default]
    None,
    /// The client CA signed it.
    Verified(Arc<Vec<CertificateDer<'static>>>),
    /// It does not verify, for this reason.
    Rejected(Arc<str>),
}

/// Upstream's union of request authenticators, in its order.
pub struct Authenticator {
    anonymous: bool,
    webhook: Option<(Client, Duration)>,
    tokens: Mutex<HashMap<String, (Instant, Option<UserInfo>)>>,
}

/// The group every authenticated user is in.
const AUTHENTICATED: &str = "system:authenticated";

impl Authenticator {
    /// Certificates are checked by TLS; `webhook` is the client for TokenReviews and their cache TTL,
    /// `None` without the webhook.
    pub fn new(anonymous: bool, webhook: Option<(Client, Duration)>) -> Self {
        Self {
            anonymous,
            webhook,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The request's user, or `None` for a 401; an error reaching the apiserver is logged and answered 401
    /// too, as upstream's authentication filter does.
    pub async fn authenticated_user(
        &self,
        certificates: Option<&PeerCertificates>,
        headers: &HeaderMap,
    ) -> Option<UserInfo> {
        match self.authenticate(certificates, headers).await {
            Ok(user) => user,
            Err(e) => {
                tracing::error!(error = %e, "Unable to authenticate the request due to an error");
                None
            }
        }
    }

    /// The request's user, `Ok(None)` when nothing authenticates it or the apiserver rejects its token.
    pub async fn authenticate(
        &self,
        certificates: Option<&PeerCertificates>,
        headers: &HeaderMap,
    ) -> Result<Option<UserInfo>, kube::Error> {
        let mut rejected = None;
        match certificates {
            Some(PeerCertificates::Verified(chain)) => {
                if let Some(user) = chain.first().and_then(|leaf| user_of_certificate(leaf)) {
                    return Ok(Some(user));
                }
            }
            Some(PeerCertificates::Rejected(reason)) => rejected = Some(reason),
            Some(PeerCertificates::None) | None => {}
        }
        if let (Some((client, ttl)), Some(token)) = (&self.webhook, bearer_token(headers)) {
            return self.review(client, token, *ttl).await;
        }
        // Upstream's union fails on the certificate's error before anonymous is tried.
        if let Some(reason) = rejected {
            tracing::debug!(%reason, "client certificate rejected");
            return Ok(None);
        }
        Ok(self.anonymous.then(|| UserInfo {
            name: "system:anonymous".to_string(),
            uid: String::new(),
            groups: vec!["system:unauthenticated".to_string()],
            extra: BTreeMap::new(),
        }))
    }

    async fn review(
        &self,
        client: &Client,
        token: &str,
        ttl: Duration,
    ) -> Result<Option<UserInfo>, kube::Error> {
        if let Some((at, user)) = self.lock().get(token)
            && at.elapsed() < ttl
        {
            return Ok(user.clone());
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                audiences: None,
            },
            ..Default::default()
        };
        let reviewed = Api::<TokenReview>::all(client.clone())
            .create(&PostParams::default(), &review)
            .await?;
        let user = reviewed
            .status
            .filter(|s| s.authenticated == Some(true))
            .and_then(|s| s.user)
            .map(|u| UserInfo {
                name: u.username.unwrap_or_default(),
                uid: u.uid.unwrap_or_default(),
                groups: with_authenticated(u.groups.unwrap_or_default()),
                extra: u.extra.unwrap_or_default(),
            });
        let mut tokens = self.lock();
        tokens.retain(|_, (at, _)| at.elapsed() < ttl);
        tokens.insert(token.to_string(), (Instant::now(), user.clone()));
        Ok(user)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Option<UserInfo>)>> {
        self.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The token of an `Authorization: Bearer` header (upstream's bearertoken authenticator).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// User = the subject's CN, groups = its O values (upstream's CommonNameUserConversion).
fn user_of_certificate(certificate: &CertificateDer<'_>) -> Option<UserInfo> {
    let (_, parsed) = X509Certificate::from_der(certificate.as_ref()).ok()?;
    let subject = parsed.subject();
    let name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some(UserInfo {
        name,
        uid: String::new(),
        groups: with_authenticated(groups),
        extra: BTreeMap::new(),
    })
}

fn with_authenticated(mut groups: Vec<String>) -> Vec<String> {
    if !groups.iter().any(|g| g == AUTHENTICATED) {
        groups.push(AUTHENTICATED.to_string());
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, "bearer abc".parse().unwrap());
        assert_eq!(bearer_token(&headers), Some("abc"));
        headers.insert(http::header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer_token(&headers), None);
        headers.insert(http::header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer_token(&headers), None);
    }

    #[test]
    fn certificate_subject_gives_user_and_groups() {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kube-apiserver-kubelet-client");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "system:masters");
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        let user = user_of_certificate(certificate.der()).unwrap();
        assert_eq!(user.name, "kube-apiserver-kubelet-client");
        assert_eq!(user.groups, ["system:masters", "system:authenticated"]);
    }
}
