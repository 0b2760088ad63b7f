//! Upstream's `--tls-min-version` and `--tls-cipher-suites` (component-base `cli/flag/ciphersuites_flag.go`):
//! the names Go's crypto/tls knows, mapped onto what rustls implements.
//!
//! rustls implements TLS 1.2 and 1.3 only, and for TLS 1.2 only the ECDHE suites with AES-GCM or ChaCha20.
//! A name Go knows but rustls lacks (CBC, RC4, 3DES, RSA key exchange) is accepted as upstream accepts it
//! and never offered, with a warning: refusing it would break command lines copied from hardening guides,
//! whose lists mix both. As in Go, TLS 1.3 suites are not configurable: their names are accepted and all
//! three stay on.

use std::sync::Arc;

use rustls::SupportedProtocolVersion;
use rustls::crypto::CryptoProvider;

use super::tls::TlsError;

/// Every cipher suite name upstream accepts: Go's `tls.CipherSuites()` and `tls.InsecureCipherSuites()`.
const GO_CIPHER_SUITES: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// The legacy names upstream keeps for backward compatibility, and the suite each stands for.
const LEGACY_NAMES: &[(&str, &str)] = &[
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
];

/// `--tls-min-version=VersionTLS13`.
const TLS13_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// The protocol versions and cipher suites a server offers.
#[derive(Clone, Debug)]
pub struct TlsPolicy {
    versions: &'static [&'static SupportedProtocolVersion],
    /// The suites allowed, by Go's (IANA) names; `None` for all. Only TLS 1.2's are restricted.
    allowed_suites: Option<Vec<String>>,
}

impl Default for TlsPolicy {
    /// Upstream's default: TLS 1.2 and later, every suite.
    fn default() -> Self {
        Self {
            versions: rustls::DEFAULT_VERSIONS,
            allowed_suites: None,
        }
    }
}

impl TlsPolicy {
    /// The policy `--tls-min-version` (empty for the default) and `--tls-cipher-suites` ask for, with
    /// upstream's messages for names it does not know.
    pub fn new(min_version: &str, cipher_suites: &[String]) -> Result<Self, TlsError> {
        let versions: &'static [&'static SupportedProtocolVersion] = match min_version {
            "" | "VersionTLS12" => rustls::DEFAULT_VERSIONS,
            "VersionTLS10" | "VersionTLS11" => {
                tracing::warn!(
                    "--tls-min-version={min_version}: TLS 1.0 and 1.1 are not implemented, the minimum is TLS 1.2"
                );
                rustls::DEFAULT_VERSIONS
            }
            "VersionTLS13" => TLS13_ONLY,
            other => {
                return Err(TlsError::InvalidFlag(format!(
                    "unknown tls version {other:?}"
                )));
            }
        };
        let names: Vec<&str> = cipher_suites
            .iter()
            .map(|name| name.trim())
            .filter(|name| !name.is_empty())
            .collect();
        if names.is_empty() {
            return Ok(Self {
                versions,
                allowed_suites: None,
            });
        }
        let mut suites = Vec::new();
        for name in names {
            let name = LEGACY_NAMES
                .iter()
                .find(|(legacy, _)| *legacy == name)
                .map_or(name, |(_, current)| current);
            if !GO_CIPHER_SUITES.contains(&name) {
                return Err(TlsError::InvalidFlag(format!(
                    "Cipher suite {name} not supported or doesn't exist"
                )));
            }
            suites.push(name.to_string());
        }
        let unimplemented: Vec<&str> = suites
            .iter()
            .map(String::as_str)
            .filter(|name| !is_tls13(name) && !implemented_allowed_suites().any(|s| s == *name))
            .collect();
        if !unimplemented.is_empty() {
            tracing::warn!(
                "--tls-cipher-suites: not implemented by ferrokube's TLS library (rustls), never offered: {}",
                unimplemented.join(", ")
            );
        }
        if versions == TLS13_ONLY {
            tracing::warn!(
                "Warning: TLS 1.3 cipher suites are not configurable, ignoring --tls-cipher-suites"
            );
        }
        Ok(Self {
            versions,
            allowed_suites: Some(suites),
        })
    }

    /// The protocol versions offered.
    pub fn versions(&self) -> &'static [&'static SupportedProtocolVersion] {
        self.versions
    }

    /// ring's provider with only the allowed TLS 1.2 suites; TLS 1.3's all stay.
    pub fn provider(&self) -> Arc<CryptoProvider> {
        let mut provider = rustls::crypto::ring::default_provider();
        if let Some(allowed) = &self.allowed_suites {
            provider.cipher_suites.retain(|suite| {
                suite.version() == &rustls::version::TLS13
                    || suite
                        .suite()
                        .as_str()
                        .is_some_and(|name| allowed.iter().any(|a| a == name))
            });
        }
        Arc::new(provider)
    }
}

/// Whether Go's suite `name` is a TLS 1.3 one.
fn is_tls13(name: &str) -> bool {
    name.starts_with("TLS_AES_") || name.starts_with("TLS_CHACHA20_")
}

/// The IANA names of the TLS 1.2 suites rustls implements.
fn implemented_allowed_suites() -> impl Iterator<Item = &'static str> {
    rustls::crypto::ring::DEFAULT_CIPHER_SUITES
        .iter()
        .filter(|suite| suite.version() == &rustls::version::TLS12)
        .filter_map(|suite| suite.suite().as_str())
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::ServerName;
    use rustls::{CipherSuite, ProtocolVersion, RootCertStore};

    use super::super::tls::{ServingCertificate, server_config};
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn offered(policy: &TlsPolicy) -> Vec<&'static str> {
        policy
            .provider()
            .cipher_suites
            .iter()
            .filter_map(|s| s.suite().as_str())
            .collect()
    }

    #[test]
    fn the_default_offers_tls_1_2_and_1_3_with_every_suite() {
        let policy = TlsPolicy::new("", &[]).unwrap();
        assert_eq!(policy.versions().len(), 2);
        assert_eq!(
            offered(&policy).len(),
            rustls::crypto::ring::DEFAULT_CIPHER_SUITES.len()
        );
    }

    #[test]
    fn versions_are_upstream_names_and_tls_1_3_alone_can_be_required() {
        assert_eq!(
            TlsPolicy::new("VersionTLS13", &[]).unwrap().versions(),
            &[&rustls::version::TLS13]
        );
        assert_eq!(
            TlsPolicy::new("VersionTLS10", &[])
                .unwrap()
                .versions()
                .len(),
            2,
            "below TLS 1.2 is not implemented; 1.2 is the floor"
        );
        let error = TlsPolicy::new("TLS1.3", &[]).unwrap_err();
        assert_eq!(error.to_string(), "unknown tls version \"TLS1.3\"");
    }

    #[test]
    fn cipher_suites_restrict_tls_1_2_only_and_unknown_names_are_refused() {
        let policy = TlsPolicy::new(
            "",
            &names(&[
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                // Known to Go, not implemented by rustls: accepted, never offered.
                "TLS_RSA_WITH_AES_256_GCM_SHA384",
                // Upstream's legacy name.
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
            ]),
        )
        .unwrap();
        let offered = offered(&policy);
        let mut tls12: Vec<&str> = offered
            .iter()
            .copied()
            .filter(|name| name.starts_with("TLS_ECDHE_"))
            .collect();
        tls12.sort_unstable();
        assert_eq!(
            tls12,
            [
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
            ]
        );
        assert!(offered.contains(&"TLS13_AES_128_GCM_SHA256"), "{offered:?}");

        let error = TlsPolicy::new("", &names(&["TLS_MADE_UP"])).unwrap_err();
        assert_eq!(
            error.to_string(),
            "Cipher suite TLS_MADE_UP not supported or doesn't exist"
        );
    }

    /// A handshake with a server of `policy` by a client offering `versions` and, if given, one suite:
    /// what was negotiated, or why not.
    async fn handshake(
        policy: &TlsPolicy,
        versions: &[&'static SupportedProtocolVersion],
        suite: Option<&str>,
    ) -> Result<(ProtocolVersion, CipherSuite), String> {
        // rcgen's keys are ECDSA P-256, so the TLS 1.2 suites that can serve it are the ECDSA ones.
        let certificate =
            ServingCertificate::self_signed_with_ca("localhost", &["localhost".into()], &[], None)
                .unwrap();
        let server = server_config(&certificate, &[], policy).unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(certificate.chain()[1].clone()).unwrap();
        let mut provider = rustls::crypto::ring::default_provider();
        if let Some(name) = suite {
            provider
                .cipher_suites
                .retain(|s| s.suite().as_str() == Some(name));
        }
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(server.config.clone());
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let name = ServerName::try_from("localhost").unwrap();
        let (_server, client) = tokio::join!(
            acceptor.accept(server_io),
            connector.connect(name, client_io)
        );
        let client = client.map_err(|e| e.to_string())?;
        let (_, connection) = client.get_ref();
        Ok((
            connection.protocol_version().unwrap(),
            connection.negotiated_cipher_suite().unwrap().suite(),
        ))
    }

    #[tokio::test]
    async fn a_tls_1_3_minimum_refuses_tls_1_2_clients() {
        let policy = TlsPolicy::new("VersionTLS13", &[]).unwrap();
        let refused = handshake(&policy, &[&rustls::version::TLS12], None).await;
        assert!(refused.is_err(), "{refused:?}");
        let (version, _) = handshake(&policy, rustls::ALL_VERSIONS, None)
            .await
            .unwrap();
        assert_eq!(version, ProtocolVersion::TLSv1_3);
        let (version, _) = handshake(&TlsPolicy::default(), &[&rustls::version::TLS12], None)
            .await
            .unwrap();
        assert_eq!(version, ProtocolVersion::TLSv1_2, "the default takes 1.2");
    }

    #[tokio::test]
    async fn a_tls_1_2_client_gets_only_the_listed_suites() {
        let policy =
            TlsPolicy::new("", &names(&["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"])).unwrap();
        let tls12 = &[&rustls::version::TLS12];
        let refused = handshake(
            &policy,
            tls12,
            Some("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
        )
        .await;
        assert!(refused.is_err(), "{refused:?}");
        let negotiated = handshake(
            &policy,
            tls12,
            Some("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
        )
        .await
        .unwrap();
        assert_eq!(
            negotiated,
            (
                ProtocolVersion::TLSv1_2,
                CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            )
        );
        let (version, _) = handshake(&policy, &[&rustls::version::TLS13], None)
            .await
            .unwrap();
        assert_eq!(
            version,
            ProtocolVersion::TLSv1_3,
            "TLS 1.3 is not restricted"
        );
    }
}
