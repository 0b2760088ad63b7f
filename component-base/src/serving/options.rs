//! Upstream's DelegatingAuthenticationOptions and DelegatingAuthorizationOptions: the flags, and what they
//! build — the front-proxy and client-certificate authenticators with their CAs, the TokenReview
//! authenticator and the delegating authorizer of the secure port.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::authn::Authenticator;
use super::authorities::{self, Authorities, AuthoritySources, ConfigMapData};
use super::authz::SubjectAccessReviewer;
use super::delegating::{DelegatingAuth, DelegatingAuthorizer, PathAllowList};
use super::requestheader::RequestHeaderFlags;
use super::tls::TlsError;
use crate::flags::parse_duration;

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

/// What the secure port's TLS and filter need, and what keeps them current.
pub struct Delegation {
    /// The CAs of the certificate authenticators, as loaded at start.
    pub authorities: Authorities,
    /// The authentication ConfigMap's data, when it was read.
    pub configmap: Option<ConfigMapData>,
    /// The client that reads it (and reviews tokens).
    pub authentication_client: Option<Client>,
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
    let (authorities, configmap) = authorities::initial(
        &AuthoritySources::delegated(authentication),
        authn_client.as_ref(),
        tolerate,
    )
    .await?;
    let authenticator = Authenticator::new(
        true,
        authn_client
            .clone()
            .map(|c| (c, authentication.authentication_token_webhook_cache_ttl)),
    );
    authorities.install(&authenticator)?;
    let authenticator = std::sync::Arc::new(authenticator);

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
        authorities,
        configmap,
        authentication_client: authn_client,
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
