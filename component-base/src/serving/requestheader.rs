//! Upstream's front-proxy (request-header) authentication: a client certificate signed by the request-header
//! CA, with an allowed common name, vouches for the user its request names in headers (`X-Remote-User`,
//! `X-Remote-Group`, `X-Remote-Extra-*`), as the apiserver does when it proxies to an aggregated server.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use http::HeaderMap;
use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::authn::UserInfo;
use super::tls::{self, ClientCa, TlsError};

/// The ConfigMap keys the apiserver publishes its request-header configuration under.
const CONFIGMAP_CA: &str = "requestheader-client-ca-file";
const CONFIGMAP_USERNAME_HEADERS: &str = "requestheader-username-headers";
const CONFIGMAP_UID_HEADERS: &str = "requestheader-uid-headers";
const CONFIGMAP_GROUP_HEADERS: &str = "requestheader-group-headers";
const CONFIGMAP_EXTRA_HEADERS_PREFIX: &str = "requestheader-extra-headers-prefix";
const CONFIGMAP_ALLOWED_NAMES: &str = "requestheader-allowed-names";

/// Upstream's RequestHeaderAuthenticationOptions flags.
#[derive(Args, Clone, Debug)]
pub struct RequestHeaderFlags {
    /// List of request headers to inspect for usernames. X-Remote-User is common.
    #[arg(long, value_delimiter = ',', default_value = "x-remote-user")]
    pub requestheader_username_headers: Vec<String>,
    /// List of request headers to inspect for UIDs. X-Remote-Uid is suggested. Requires the
    /// RemoteRequestHeaderUID feature to be enabled.
    #[arg(long, value_delimiter = ',')]
    pub requestheader_uid_headers: Vec<String>,
    /// List of request headers to inspect for groups. X-Remote-Group is suggested.
    #[arg(long, value_delimiter = ',', default_value = "x-remote-group")]
    pub requestheader_group_headers: Vec<String>,
    /// List of request header prefixes to inspect. X-Remote-Extra- is suggested.
    #[arg(long, value_delimiter = ',', default_value = "x-remote-extra-")]
    pub requestheader_extra_headers_prefix: Vec<String>,
    /// Root certificate bundle to use to verify client certificates on incoming requests before trusting
    /// usernames in headers specified by --requestheader-username-headers. WARNING: generally do not
    /// depend on authorization being already done for incoming requests.
    #[arg(long)]
    pub requestheader_client_ca_file: Option<PathBuf>,
    /// List of client certificate common names to allow to provide usernames in headers specified by
    /// --requestheader-username-headers. If empty, any client certificate validated by the authorities in
    /// --requestheader-client-ca-file is allowed.
    #[arg(long, value_delimiter = ',')]
    pub requestheader_allowed_names: Vec<String>,
}

/// pflag reads `--flag=` as an empty list, clap as one empty value.
fn listed(values: &[String]) -> Vec<String> {
    match values {
        [only] if only.is_empty() => Vec::new(),
        values => values.to_vec(),
    }
}

impl RequestHeaderFlags {
    /// Upstream's Validate: one error for all problems (Go's aggregate), warnings for missing standard
    /// headers.
    pub fn validate(&self) -> Result<(), String> {
        let mut errors = Vec::new();
        for (flag, values) in [
            (
                "requestheader-username-headers",
                &self.requestheader_username_headers,
            ),
            (
                "requestheader-group-headers",
                &self.requestheader_group_headers,
            ),
            (
                "requestheader-extra-headers-prefix",
                &self.requestheader_extra_headers_prefix,
            ),
            (
                "requestheader-allowed-names",
                &self.requestheader_allowed_names,
            ),
            ("requestheader-uid-headers", &self.requestheader_uid_headers),
        ] {
            if listed(values).iter().any(|v| v.trim().is_empty()) {
                errors.push(format!("empty value in {flag:?}"));
            }
        }
        for (flag, values, standard, what) in [
            (
                "--requestheader-username-headers",
                &self.requestheader_username_headers,
                "X-Remote-User",
                "header",
            ),
            (
                "--requestheader-group-headers",
                &self.requestheader_group_headers,
                "X-Remote-Group",
                "header",
            ),
            (
                "--requestheader-extra-headers-prefix",
                &self.requestheader_extra_headers_prefix,
                "X-Remote-Extra-",
                "header prefix",
            ),
        ] {
            let values = listed(values);
            if !values.is_empty() && !contains_ignoring_case(&values, standard) {
                tracing::warn!(
                    "{flag} is set without specifying the standard {standard} {what} - API aggregation will not work"
                );
            }
        }
        let uid_headers = listed(&self.requestheader_uid_headers);
        if !uid_headers.is_empty() && !contains_ignoring_case(&uid_headers, "X-Remote-Uid") {
            // Upstream errs here, not warns: the flag came later, so no one depends on it being lax.
            errors.push(
                "--requestheader-uid-headers is set without specifying the standard X-Remote-Uid header - API aggregation will not work"
                    .to_string(),
            );
        }
        match errors.as_slice() {
            [] => Ok(()),
            [one] => Err(one.clone()),
            many => Err(format!("[{}]", many.join(", "))),
        }
    }
}

fn contains_ignoring_case(values: &[String], wanted: &str) -> bool {
    values.iter().any(|v| v.eq_ignore_ascii_case(wanted))
}

/// Who may vouch for users and the headers that name them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestHeaderConfig {
    /// Certificates of the front proxy verify against these.
    pub client_ca: Vec<CertificateDer<'static>>,
    /// The common names a front proxy's certificate may have; empty for any.
    pub allowed_names: Vec<String>,
    /// Headers naming the user, first non-empty wins.
    pub username_headers: Vec<String>,
    /// Headers giving the user's uid, first non-empty wins.
    pub uid_headers: Vec<String>,
    /// Headers whose every value is a group.
    pub group_headers: Vec<String>,
    /// Prefixes of headers whose rest names an extra attribute.
    pub extra_header_prefixes: Vec<String>,
}

impl RequestHeaderConfig {
    /// From the flags, when `--requestheader-client-ca-file` is given (upstream's
    /// ToAuthenticationRequestHeaderConfig).
    pub fn from_flags(flags: &RequestHeaderFlags) -> Result<Option<Self>, TlsError> {
        let Some(path) = &flags.requestheader_client_ca_file else {
            return Ok(None);
        };
        Ok(Some(Self {
            client_ca: tls::read_certificates(path)?,
            allowed_names: listed(&flags.requestheader_allowed_names),
            username_headers: trimmed(&flags.requestheader_username_headers),
            uid_headers: trimmed(&flags.requestheader_uid_headers),
            group_headers: trimmed(&flags.requestheader_group_headers),
            extra_header_prefixes: trimmed(&flags.requestheader_extra_headers_prefix),
        }))
    }

    /// From the apiserver's extension-apiserver-authentication ConfigMap, whose header lists are JSON
    /// arrays. A ConfigMap without the CA key gives a configuration that authenticates no one.
    pub fn from_configmap(data: &BTreeMap<String, String>) -> Result<Self, String> {
        let list = |key: &str| -> Result<Vec<String>, String> {
            match data.get(key).map(String::as_str) {
                None | Some("") => Ok(Vec::new()),
                Some(json) => serde_json::from_str(json).map_err(|e| format!("{key}: {e}")),
            }
        };
        let client_ca = match data.get(CONFIGMAP_CA).filter(|pem| !pem.is_empty()) {
            // As upstream's ConfigMapCAController, an unreadable bundle leaves the authenticator without a
            // CA rather than failing the component.
            Some(pem) => tls::parse_certificates(pem).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "ignoring the request-header client CA of the ConfigMap");
                Vec::new()
            }),
            None => Vec::new(),
        };
        Ok(Self {
            client_ca,
            allowed_names: list(CONFIGMAP_ALLOWED_NAMES)?,
            username_headers: list(CONFIGMAP_USERNAME_HEADERS)?,
            uid_headers: list(CONFIGMAP_UID_HEADERS)?,
            group_headers: list(CONFIGMAP_GROUP_HEADERS)?,
            extra_header_prefixes: list(CONFIGMAP_EXTRA_HEADERS_PREFIX)?,
        })
    }
}

fn trimmed(values: &[String]) -> Vec<String> {
    listed(values)
        .iter()
        .map(|v| v.trim().to_string())
        .collect()
}

/// Upstream's request-header authenticator behind its x509 CA verifier.
pub struct RequestHeaderAuthenticator {
    /// `None` when the configuration has no CA: nothing is then trusted.
    ca: Option<ClientCa>,
    config: RequestHeaderConfig,
}

impl RequestHeaderAuthenticator {
    /// Trusts certificates of `config`'s CA.
    pub fn new(config: RequestHeaderConfig) -> Result<Self, TlsError> {
        let ca = ClientCa::of(&config.client_ca)?;
        Ok(Self { ca, config })
    }

    /// `Ok(None)` when this authenticator has nothing to say (no certificate, no CA, no user named); an
    /// error when the certificate may not vouch for anyone, which the union remembers but does not stop on.
    pub fn authenticate(
        &self,
        chain: &[CertificateDer<'static>],
        headers: &HeaderMap,
    ) -> Result<Option<UserInfo>, String> {
        let (Some(ca), Some(leaf)) = (&self.ca, chain.first()) else {
            return Ok(None);
        };
        ca.verify(chain)?;
        self.verify_common_name(leaf)?;
        Ok(user_of_headers(&self.config, headers))
    }

    fn verify_common_name(&self, leaf: &CertificateDer<'_>) -> Result<(), String> {
        if self.config.allowed_names.is_empty() {
            return Ok(());
        }
        let common_name = X509Certificate::from_der(leaf.as_ref())
            .ok()
            .and_then(|(_, parsed)| {
                let name = parsed.subject().iter_common_name().next()?;
                name.as_str().ok().map(str::to_string)
            })
            .unwrap_or_default();
        if self.config.allowed_names.contains(&common_name) {
            Ok(())
        } else {
            Err(format!(
                "x509: subject with cn={common_name} is not in the allowed list"
            ))
        }
    }
}

/// The user the headers name, `None` without a name (upstream's requestHeaderAuthRequestHandler).
fn user_of_headers(config: &RequestHeaderConfig, headers: &HeaderMap) -> Option<UserInfo> {
    let name = first_value(headers, &config.username_headers)?;
    let groups = config
        .group_headers
        .iter()
        .flat_map(|header| headers.get_all(header.as_str()))
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .filter(|value| !value.is_empty())
        .collect();
    Some(UserInfo {
        name,
        uid: first_value(headers, &config.uid_headers).unwrap_or_default(),
        groups,
        extra: extra_of_headers(headers, &config.extra_header_prefixes),
    })
}

/// The first non-empty value among `names`, each header's first value as Go's `Header.Get`.
fn first_value(headers: &HeaderMap, names: &[String]) -> Option<String> {
    names
        .iter()
        .filter_map(|name| headers.get(name.as_str()))
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .find(|value| !value.is_empty())
}

/// Every header under one of `prefixes`, keyed by the rest of its (lower-case) name, %-decoded.
fn extra_of_headers(headers: &HeaderMap, prefixes: &[String]) -> BTreeMap<String, Vec<String>> {
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for prefix in prefixes {
        for name in headers.keys() {
            let name = name.as_str();
            let Some(rest) = name
                .get(..prefix.len())
                .filter(|head| head.eq_ignore_ascii_case(prefix))
                .map(|_| &name[prefix.len()..])
            else {
                continue;
            };
            extra.entry(path_unescape(rest)).or_default().extend(
                headers
                    .get_all(name)
                    .iter()
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
            );
        }
    }
    extra
}

/// Go's url.PathUnescape, keeping the text as it is when an escape is malformed (as upstream does).
fn path_unescape(encoded: &str) -> String {
    let bytes = encoded.as_bytes();
    let well_formed = bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if !well_formed {
        return encoded.to_string();
    }
    percent_encoding::percent_decode_str(encoded)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
pub(crate) mod tests;
