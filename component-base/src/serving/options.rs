//! Upstream's DelegatingAuthenticationOptions and DelegatingAuthorizationOptions: the flags, and what they
//! build — the front-proxy and client-certificate authenticators with their CAs, the TokenReview
//! authenticator and the delegating authorizer of the secure port.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use rustls::pki_types::CertificateDer;

use super::authn::Authenticator;
use super::authz::SubjectAccessReviewer;
use super::delegating::{DelegatingAuth, DelegatingAuthorizer, PathAllowList};
use super::requestheader::{RequestHeaderAuthenticator, RequestHeaderConfig, RequestHeaderFlags};
use super::tls::{self, ClientCa, TlsError};
use crate::flags::parse_duration;

/// Where the apiserver publishes the client CA and the front proxy's configuration for delegated
/// authentication.
const AUTHENTICATION_CONFIGMAP: (&str, &str) =
    ("kube-system", "extension-apiserver-authentication");

/// The groups upstream's delegating authorizer always allows.
const ALWAYS_ALLOW_GROUPS: &[&str] = &["system:masters"];

/// Why delegated authentication or authorization cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum DelegationError {
    #[error("failed to get delegated {purpose} kubeconfig: {reason}")]
    Kubeconfig {
        purpose: &'static str,
        reason: String,
    },
    #[error(
        "unable to load configmap based request-header-client-ca-file: {0} (or set --authentication-tolerate-lookup-failure, or --requestheader-client-ca-file)"
    )]
    Lookup(String),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("invalid --authorization-always-allow-paths: {0}")]
    AlwaysAllowPaths(String),
}

/// Upstream's delegated authentication flags.
#[derive(Args, Clone, Debug)]
pub struct AuthenticationFlags {
    /// kubeconfig file pointing at the 'core' kubernetes server with enough rights to create
    /// tokenreviews.authentication.k8s.io. This is optional. If empty, all token requests are considered
    /// to be anonymous and no client CA is looked up in the cluster.
    #[arg(long)]
    pub authentication_kubeconfig: Option<PathBuf>,
    /// If set, any request presenting a client certificate signed by one of the authorities in the
    /// client-ca-file is authenticated with an identity corresponding to the CommonName of the client
    /// certificate.
    #[arg(long)]
    pub client_ca_file: Option<PathBuf>,
    /// If false, the authentication-kubeconfig will be used to lookup missing authentication configuration
    /// from the cluster.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", require_equals = true)]
    pub authentication_skip_lookup: bool,
    /// The duration to cache responses from the webhook token authenticator.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub authentication_token_webhook_cache_ttl: Duration,
    /// If true, failures to look up missing authentication configuration from the cluster are not
    /// considered fatal. Note that this can result in authentication that treats all requests as
    /// anonymous.
    #[arg(long, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", require_equals = true)]
    pub authentication_tolerate_lookup_failure: Option<bool>,
    /// The front proxy's flags.
    #[command(flatten)]
    pub request_header: RequestHeaderFlags,
}

/// Upstream's delegated authorization flags.
#[derive(Args, Clone, Debug)]
pub struct AuthorizationFlags {
    /// kubeconfig file pointing at the 'core' kubernetes server with enough rights to create
    /// subjectaccessreviews.authorization.k8s.io. This is optional. If empty, all requests not skipped by
    /// authorization are forbidden.
    #[arg(long)]
    pub authorization_kubeconfig: Option<PathBuf>,
    /// A list of HTTP paths to skip during authorization, i.e. these are authorized without contacting
    /// the 'core' kubernetes server.
    #[arg(long, value_delimiter = ',', default_value = "/healthz,/readyz,/livez")]
    pub authorization_always_allow_paths: Vec<String>,
    /// The duration to cache 'authorized' responses from the webhook authorizer.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub authorization_webhook_cache_authorized_ttl: Duration,
    /// The duration to cache 'unauthorized' responses from the webhook authorizer.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub authorization_webhook_cache_unauthorized_ttl: Duration,
}

/// What the secure port's TLS and filter need: the CAs to name in the handshake, and the filter.
pub struct Delegation {
    /// Every CA an authenticator trusts (empty: no client certificate asked for).
    pub client_cas: Vec<CertificateDer<'static>>,
    /// Authentication and authorization of each request.
    pub auth: DelegatingAuth,
}

/// Builds delegated authentication and authorization as upstream's ApplyTo does; `tolerate_default` is the
/// component's `--authentication-tolerate-lookup-failure` default.
pub async fn delegation(
    authentication: &AuthenticationFlags,
    authorization: &AuthorizationFlags,
    tolerate_default: bool,
) -> Result<Delegation, DelegationError> {
    let authn_client = remote_client(
        authentication.authentication_kubeconfig.as_deref(),
        "authentication",
    )
    .await?;
    let tolerate = authentication
        .authentication_tolerate_lookup_failure
        .unwrap_or(tolerate_default);
    let (client_ca, request_header) =
        certificate_authorities(authentication, authn_client.as_ref(), tolerate).await?;
    let mut client_cas = client_ca.clone();
    let mut authenticator = Authenticator::new(
        true,
        (!client_ca.is_empty())
            .then(|| ClientCa::new(&client_ca))
            .transpose()?,
        authn_client.map(|c| (c, authentication.authentication_token_webhook_cache_ttl)),
    );
    if let Some(config) = request_header {
        client_cas.extend(config.client_ca.iter().cloned());
        authenticator = authenticator.with_request_header(RequestHeaderAuthenticator::new(config)?);
    }

    let authz_client = remote_client(
        authorization.authorization_kubeconfig.as_deref(),
        "authorization",
    )
    .await?;
    if authz_client.is_none() {
        tracing::warn!(
            "No authorization-kubeconfig provided, so SubjectAccessReview of authorization tokens won't work."
        );
    }
    let authorizer = DelegatingAuthorizer {
        always_allow_groups: ALWAYS_ALLOW_GROUPS
            .iter()
            .map(ToString::to_string)
            .collect(),
        always_allow_paths: PathAllowList::new(&authorization.authorization_always_allow_paths)
            .map_err(DelegationError::AlwaysAllowPaths)?,
        webhook: authz_client.map(|client| {
            SubjectAccessReviewer::new(
                client,
                authorization.authorization_webhook_cache_authorized_ttl,
                authorization.authorization_webhook_cache_unauthorized_ttl,
            )
        }),
    };
    Ok(Delegation {
        client_cas,
        auth: DelegatingAuth {
            authenticator,
            authorizer,
        },
    })
}

/// The client of `--authentication-kubeconfig`/`--authorization-kubeconfig`; without one, the in-cluster
/// configuration when running in a pod, else none (both are optional for these components).
async fn remote_client(
    kubeconfig: Option<&Path>,
    purpose: &'static str,
) -> Result<Option<Client>, DelegationError> {
    let error = |reason: String| DelegationError::Kubeconfig { purpose, reason };
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|e| error(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| error(format!("{}: {e}", path.display())))?
        }
        None => match kube::Config::incluster() {
            Ok(config) => config,
            Err(e) => {
                if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
                    tracing::warn!(error = %e, "failed to read in-cluster kubeconfig for delegated {purpose}");
                }
                return Ok(None);
            }
        },
    };
    Client::try_from(config)
        .map(Some)
        .map_err(|e| error(e.to_string()))
}

/// The client CA and the front proxy's configuration: from the flags, else (unless
/// `--authentication-skip-lookup`) from the apiserver's ConfigMap, read once at start. As upstream's, only a
/// failure to read the front proxy's part is fatal, and only without `tolerate`.
async fn certificate_authorities(
    flags: &AuthenticationFlags,
    client: Option<&Client>,
    tolerate: bool,
) -> Result<(Vec<CertificateDer<'static>>, Option<RequestHeaderConfig>), DelegationError> {
    let client_ca = flags
        .client_ca_file
        .as_deref()
        .map(tls::read_certificates)
        .transpose()?;
    let request_header = RequestHeaderConfig::from_flags(&flags.request_header)?;
    if flags.authentication_skip_lookup || (client_ca.is_some() && request_header.is_some()) {
        return Ok((client_ca.unwrap_or_default(), request_header));
    }
    let (namespace, name) = AUTHENTICATION_CONFIGMAP;
    let Some(client) = client else {
        for (missing, key, kind) in [
            (client_ca.is_none(), "client-ca-file", "client certificate"),
            (
                request_header.is_none(),
                "requestheader-client-ca-file",
                "request-header client certificate",
            ),
        ] {
            if missing {
                tracing::warn!(
                    "No authentication-kubeconfig provided in order to lookup {key} in configmap/{name} in {namespace}, so {kind} authentication won't work."
                );
            }
        }
        return Ok((client_ca.unwrap_or_default(), request_header));
    };
    let only_client_ca = request_header.is_some();
    let lookup_failed = |reason: String| -> Result<(), DelegationError> {
        if only_client_ca {
            // Only the client CA was looked up, which upstream's ConfigMapCAController never fails on.
            tracing::warn!(%reason, "Unable to load the client CA of configmap/{name} in {namespace}");
            Ok(())
        } else if tolerate {
            tracing::warn!("Error looking up in-cluster authentication configuration: {reason}");
            tracing::warn!(
                "Continuing without authentication configuration. This may treat all requests as anonymous."
            );
            tracing::warn!(
                "To require authentication configuration lookup to succeed, set --authentication-tolerate-lookup-failure=false"
            );
            Ok(())
        } else {
            Err(DelegationError::Lookup(reason))
        }
    };
    let data = match Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
    {
        Ok(configmap) => configmap.and_then(|c| c.data),
        Err(e) => {
            if matches!(&e, kube::Error::Api(status) if status.code == 403) {
                tracing::warn!(
                    "Unable to get configmap/{name} in {namespace}.  Usually fixed by 'kubectl create rolebinding -n {namespace} ROLEBINDING_NAME --role=extension-apiserver-authentication-reader --serviceaccount=YOUR_NS:YOUR_SA'"
                );
            }
            lookup_failed(crate::client::error_message(&e).to_string())?;
            None
        }
    };
    let data = data.unwrap_or_default();
    let client_ca = client_ca.unwrap_or_else(|| match data.get("client-ca-file") {
        Some(pem) => tls::parse_certificates(pem).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "ignoring the client CA of configmap/{name} in {namespace}");
            Vec::new()
        }),
        None => Vec::new(),
    });
    let request_header = match request_header {
        Some(config) => Some(config),
        None => match RequestHeaderConfig::from_configmap(&data) {
            Ok(config) => Some(config),
            Err(reason) => {
                lookup_failed(reason)?;
                None
            }
        },
    };
    Ok((client_ca, request_header))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        authentication: AuthenticationFlags,
        #[command(flatten)]
        authorization: AuthorizationFlags,
    }

    #[test]
    fn defaults_are_upstreams() {
        let flags = Flags::parse_from(["x"]);
        let (authn, authz) = (flags.authentication, flags.authorization);
        assert_eq!(authn.authentication_kubeconfig, None);
        assert_eq!(authn.client_ca_file, None);
        assert!(!authn.authentication_skip_lookup);
        assert_eq!(
            authn.authentication_token_webhook_cache_ttl,
            Duration::from_secs(10)
        );
        assert_eq!(authn.authentication_tolerate_lookup_failure, None);
        assert_eq!(authz.authorization_kubeconfig, None);
        assert_eq!(
            authz.authorization_always_allow_paths,
            ["/healthz", "/readyz", "/livez"]
        );
        assert_eq!(
            authz.authorization_webhook_cache_authorized_ttl,
            Duration::from_secs(10)
        );
        assert_eq!(
            authz.authorization_webhook_cache_unauthorized_ttl,
            Duration::from_secs(10)
        );
    }

    #[test]
    fn flags_parse_as_upstreams() {
        let flags = Flags::parse_from([
            "x",
            "--authentication-skip-lookup",
            "--authentication-tolerate-lookup-failure=false",
            "--authentication-token-webhook-cache-ttl=1m",
            "--authorization-always-allow-paths=/healthz,/metrics/*",
            "--authorization-webhook-cache-unauthorized-ttl=0",
        ]);
        assert!(flags.authentication.authentication_skip_lookup);
        assert_eq!(
            flags.authentication.authentication_tolerate_lookup_failure,
            Some(false)
        );
        assert_eq!(
            flags.authentication.authentication_token_webhook_cache_ttl,
            Duration::from_secs(60)
        );
        assert_eq!(
            flags.authorization.authorization_always_allow_paths,
            ["/healthz", "/metrics/*"]
        );
        assert_eq!(
            flags
                .authorization
                .authorization_webhook_cache_unauthorized_ttl,
            Duration::ZERO
        );
    }
}
