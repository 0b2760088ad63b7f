//! Who is asking (upstream's DelegatingAuthenticatorConfig): the front proxy's request headers when its
//! certificate verifies against the request-header CA, else an x509 client certificate verified against the
//! client CA, else a bearer token reviewed by the apiserver (TokenReview, cached), else anonymous when
//! allowed. As upstream's union fails on error, a certificate no CA trusts or a token the apiserver rejects
//! is not treated as anonymous.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use http::HeaderMap;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::PostParams;
use kube::{Api, Client};
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use x509_parser::der_parser::oid;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::requestheader::RequestHeaderAuthenticator;
use super::tls::ClientCa;

/// An authenticated user, as the authorizer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    /// The user name.
    pub name: String,
    /// The user's uid, when the token review or the front proxy gave one.
    pub uid: String,
    /// The user's groups.
    pub groups: Vec<String>,
    /// Extra attributes from the token review or the front proxy.
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The client certificate chain a connection presented (leaf first), empty when none; each authenticator
/// judges it against its own CA.
#[derive(Debug, Clone, Default)]
pub struct PeerCertificates(Arc<[CertificateDer<'static>]>);

impl PeerCertificates {
    /// The chain `certificates`.
    pub fn new(certificates: Vec<CertificateDer<'static>>) -> Self {
        Self(certificates.into())
    }

    /// The chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.0
    }
}

/// Upstream's union of request authenticators, in its order.
pub struct Authenticator {
    anonymous: bool,
    certificates: RwLock<CertificateAuthenticators>,
    webhook: Option<(Client, Duration)>,
    tokens: Mutex<HashMap<String, (Instant, Option<UserInfo>)>>,
}

/// The authenticators that judge client certificates, replaced whole when their CAs change.
#[derive(Clone, Default)]
struct CertificateAuthenticators {
    request_header: Option<Arc<RequestHeaderAuthenticator>>,
    client_ca: Option<ClientCa>,
}

/// The group every authenticated user is in.
const AUTHENTICATED: &str = "system:authenticated";
/// The anonymous user and its group.
const ANONYMOUS: &str = "system:anonymous";
const UNAUTHENTICATED: &str = "system:unauthenticated";
/// The extra attribute naming the credential a user authenticated with.
const CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";

impl Authenticator {
    /// Authenticates no certificate until [`Self::set_certificate_authenticators`]; `webhook` is the
    /// client for TokenReviews and their cache TTL, `None` without the webhook.
    pub fn new(anonymous: bool, webhook: Option<(Client, Duration)>) -> Self {
        Self {
            anonymous,
            certificates: RwLock::default(),
            webhook,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Judges client certificates by `client_ca` and, first (as upstream's delegating authenticator),
    /// by the front proxy's `request_header` from now on.
    pub fn set_certificate_authenticators(
        &self,
        client_ca: Option<ClientCa>,
        request_header: Option<RequestHeaderAuthenticator>,
    ) {
        *self.certificates.write().unwrap_or_else(|e| e.into_inner()) = CertificateAuthenticators {
            request_header: request_header.map(Arc::new),
            client_ca,
        };
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

    /// The request's user, `Ok(None)` when nothing authenticates it, a certificate is not trusted or the
    /// apiserver rejects its token.
    pub async fn authenticate(
        &self,
        certificates: Option<&PeerCertificates>,
        headers: &HeaderMap,
    ) -> Result<Option<UserInfo>, kube::Error> {
        let chain = certificates.map_or(&[][..], PeerCertificates::chain);
        let authenticators = self
            .certificates
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut errors = Vec::new();
        if let Some(request_header) = &authenticators.request_header {
            match request_header.authenticate(chain, headers) {
                Ok(Some(user)) => return Ok(Some(with_authenticated(user))),
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        if let (Some(client_ca), false) = (&authenticators.client_ca, chain.is_empty()) {
            match client_ca
                .verify(chain)
                .and_then(|()| user_of_certificate(&chain[0]))
            {
                Ok(Some(user)) => return Ok(Some(with_authenticated(user))),
                Ok(None) => {}
                Err(e) => errors.push(e),
            }
        }
        if let (Some((client, ttl)), Some(token)) = (&self.webhook, bearer_token(headers)) {
            return self.review(client, token, *ttl).await;
        }
        // Upstream's union fails on an authenticator's error before anonymous is tried.
        if !errors.is_empty() {
            tracing::debug!(?errors, "client certificate rejected");
            return Ok(None);
        }
        Ok(self.anonymous.then(|| UserInfo {
            name: ANONYMOUS.to_string(),
            uid: String::new(),
            groups: vec![UNAUTHENTICATED.to_string()],
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
                groups: u.groups.unwrap_or_default(),
                extra: u.extra.unwrap_or_default(),
            })
            .map(with_authenticated);
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

/// User = the subject's CN, groups = its O values, uid = its uid attribute (upstream's
/// CommonNameUserConversion with AllowParsingUserUIDFromCertAuth, on by default); `Ok(None)` without a CN.
/// The certificate's fingerprint is the user's credential id, which authorizers see.
fn user_of_certificate(certificate: &CertificateDer<'_>) -> Result<Option<UserInfo>, String> {
    let (_, parsed) = X509Certificate::from_der(certificate.as_ref()).map_err(|e| e.to_string())?;
    let subject = parsed.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default();
    if name.is_empty() {
        return Ok(None);
    }
    let uids = subject
        .iter_by_oid(&oid!(1.3.6.1.4.1.57683.2))
        .map(|uid| {
            uid.as_str()
                .map_err(|_| "unable to parse UID into a string".to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let uid = match uids.as_slice() {
        [] => "",
        [""] => return Err("UID cannot be an empty string".to_string()),
        [uid] => uid,
        many => {
            return Err(format!(
                "expected 1 UID, but found multiple: [{}]",
                many.join(" ")
            ));
        }
    };
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    let credential_id = format!("X509SHA256={:x}", Sha256::digest(certificate.as_ref()));
    Ok(Some(UserInfo {
        name: name.to_string(),
        uid: uid.to_string(),
        groups,
        extra: BTreeMap::from([(CREDENTIAL_ID.to_string(), vec![credential_id])]),
    }))
}

/// Upstream's AuthenticatedGroupAdder: `system:authenticated` joins the groups unless the user is anonymous
/// or already in it or in `system:unauthenticated` (a front proxy may say so).
fn with_authenticated(mut user: UserInfo) -> UserInfo {
    let classified = user
        .groups
        .iter()
        .any(|g| g == AUTHENTICATED || g == UNAUTHENTICATED);
    if user.name != ANONYMOUS && !classified {
        user.groups.push(AUTHENTICATED.to_string());
    }
    user
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

    #[tokio::test]
    async fn the_front_proxy_is_tried_first_then_the_client_certificate_then_anonymous() {
        use crate::serving::requestheader::tests::TestCa;
        use crate::serving::requestheader::{RequestHeaderAuthenticator, RequestHeaderConfig};

        let (cluster, front_proxy) = (TestCa::new("cluster-ca"), TestCa::new("front-proxy-ca"));
        let request_header = RequestHeaderAuthenticator::new(RequestHeaderConfig {
            client_ca: vec![front_proxy.root()],
            allowed_names: vec!["front-proxy-client".into()],
            username_headers: vec!["X-Remote-User".into()],
            group_headers: vec!["X-Remote-Group".into()],
            ..RequestHeaderConfig::default()
        })
        .unwrap();
        let authenticator = Authenticator::new(true, None);
        authenticator.set_certificate_authenticators(
            ClientCa::of(&[cluster.root()]).unwrap(),
            Some(request_header),
        );
        let user = |chain: Vec<CertificateDer<'static>>, pairs: &[(&'static str, &'static str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.append(*name, value.parse().unwrap());
            }
            let authenticator = &authenticator;
            async move {
                authenticator
                    .authenticate(Some(&PeerCertificates::new(chain)), &headers)
                    .await
                    .unwrap()
                    .map(|u| (u.name, u.groups))
            }
        };
        let proxy = || front_proxy.client("front-proxy-client", &[]);
        let named = [("x-remote-user", "jane"), ("x-remote-group", "dev")];

        assert_eq!(
            user(proxy(), &named).await,
            Some(("jane".into(), vec!["dev".into(), AUTHENTICATED.into()]))
        );
        // A front proxy may vouch for an unauthenticated user, who then gets no system:authenticated.
        assert_eq!(
            user(
                proxy(),
                &[
                    ("x-remote-user", "jane"),
                    ("x-remote-group", UNAUTHENTICATED)
                ]
            )
            .await,
            Some(("jane".into(), vec![UNAUTHENTICATED.into()]))
        );
        // The cluster CA's certificate is the client certificate authenticator's; its headers are ignored.
        assert_eq!(
            user(cluster.client("admin", &["system:masters"]), &named).await,
            Some((
                "admin".into(),
                vec!["system:masters".into(), AUTHENTICATED.into()]
            ))
        );
        // The proxy's certificate without a user header is no client certificate of the cluster CA: 401.
        assert_eq!(user(proxy(), &[]).await, None);
        assert_eq!(
            user(
                TestCa::new("stranger").client("front-proxy-client", &[]),
                &named
            )
            .await,
            None
        );
        // Headers alone prove nothing: anonymous.
        assert_eq!(
            user(Vec::new(), &named).await,
            Some((ANONYMOUS.into(), vec![UNAUTHENTICATED.into()]))
        );
    }

    #[test]
    fn the_certificates_uid_attribute_is_the_users_uid() {
        let with_uid = |uid: &str| {
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "jane");
            params.distinguished_name.push(
                rcgen::DnType::CustomDnType(vec![1, 3, 6, 1, 4, 1, 57683, 2]),
                uid,
            );
            let key = rcgen::KeyPair::generate().unwrap();
            params.self_signed(&key).unwrap()
        };
        let user = user_of_certificate(with_uid("uid-1").der())
            .unwrap()
            .unwrap();
        assert_eq!((user.name.as_str(), user.uid.as_str()), ("jane", "uid-1"));
        assert_eq!(
            user_of_certificate(with_uid("").der()),
            Err("UID cannot be an empty string".to_string())
        );
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
        let user = with_authenticated(user_of_certificate(certificate.der()).unwrap().unwrap());
        assert_eq!(user.name, "kube-apiserver-kubelet-client");
        assert_eq!(user.uid, "");
        assert_eq!(user.groups, ["system:masters", "system:authenticated"]);
        let fingerprint = Sha256::digest(certificate.der().as_ref());
        assert_eq!(
            user.extra,
            BTreeMap::from([(
                CREDENTIAL_ID.to_string(),
                vec![format!("X509SHA256={fingerprint:x}")]
            )])
        );
        assert_eq!(user.extra[CREDENTIAL_ID][0].len(), "X509SHA256=".len() + 64);
    }
}
