//! The serving side of `KubeletConfiguration`: `authentication`, `authorization` and the TLS files.

use component_base::config::GoDuration;
use serde::{Deserialize, Serialize};

/// How requests to the kubelet's server are authenticated.
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct KubeletAuthentication {
    /// Client certificates.
    pub x509: KubeletX509Authentication,
    /// Bearer tokens through TokenReview.
    pub webhook: KubeletWebhookAuthentication,
    /// Requests nothing else authenticates.
    pub anonymous: KubeletAnonymousAuthentication,
}

/// `authentication.x509`.
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct KubeletX509Authentication {
    /// The CA bundle client certificates are verified against; none means no certificate authentication.
    #[serde(rename = "clientCAFile")]
    pub client_ca_file: String,
}

/// `authentication.webhook`.
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct KubeletWebhookAuthentication {
    /// Bearer tokens are reviewed by the apiserver; default true.
    pub enabled: Option<bool>,
    /// How long a review is cached; default 2m.
    #[serde(rename = "cacheTTL")]
    pub cache_ttl: GoDuration,
}

/// `authentication.anonymous`.
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct KubeletAnonymousAuthentication {
    /// Unauthenticated requests are served as `system:anonymous`; default false.
    pub enabled: Option<bool>,
}

/// How authenticated requests are authorized.
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct KubeletAuthorization {
    /// `AlwaysAllow` or `Webhook`; default Webhook.
    pub mode: String,
    /// The SubjectAccessReview caches.
    pub webhook: KubeletWebhookAuthorization,
}

/// `authorization.webhook`.
#[derive(Deserialize, Serialize, Debug, Clone, Default, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct KubeletWebhookAuthorization {
    /// How long an allow is cached; default 5m.
    #[serde(rename = "cacheAuthorizedTTL")]
    pub cache_authorized_ttl: GoDuration,
    /// How long a denial is cached; default 30s.
    #[serde(rename = "cacheUnauthorizedTTL")]
    pub cache_unauthorized_ttl: GoDuration,
}

/// The authorization modes the kubelet knows.
pub const AUTHORIZATION_MODES: [&str; 2] = ["AlwaysAllow", "Webhook"];

impl KubeletAuthentication {
    /// Upstream's defaults for a configuration file (v1beta1): no anonymous requests, tokens reviewed.
    pub fn apply_defaults(&mut self) {
        self.anonymous.enabled.get_or_insert(false);
        self.webhook.enabled.get_or_insert(true);
        if self.webhook.cache_ttl.is_zero() {
            self.webhook.cache_ttl = GoDuration::from_secs(120);
        }
    }

    /// Upstream's command-line defaults without `--config` (applyLegacyDefaults): anonymous requests
    /// allowed, no token webhook.
    pub fn legacy() -> Self {
        let mut legacy = Self::default();
        legacy.anonymous.enabled = Some(true);
        legacy.webhook.enabled = Some(false);
        legacy
    }
}

impl KubeletAuthorization {
    /// Upstream's v1beta1 defaults.
    pub fn apply_defaults(&mut self) {
        if self.mode.is_empty() {
            self.mode = "Webhook".to_string();
        }
        if self.webhook.cache_authorized_ttl.is_zero() {
            self.webhook.cache_authorized_ttl = GoDuration::from_secs(300);
        }
        if self.webhook.cache_unauthorized_ttl.is_zero() {
            self.webhook.cache_unauthorized_ttl = GoDuration::from_secs(30);
        }
    }

    /// AlwaysAllow, upstream's command-line default without `--config`.
    pub fn legacy() -> Self {
        Self {
            mode: "AlwaysAllow".to_string(),
            ..Default::default()
        }
    }
}
