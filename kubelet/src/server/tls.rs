//! The serving certificate (`--tls-cert-file`, or a self-signed pair under `--cert-dir` as upstream makes)
//! and the TLS configuration that asks for, but does not require, a client certificate.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

/// Why the kubelet cannot serve TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("cannot write the self-signed serving certificate to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make a self-signed serving certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("invalid TLS configuration: {0}")]
    Config(String),
}

/// A serving certificate chain and its key.
pub struct ServingCertificate {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl ServingCertificate {
    /// Reads PEM files (`--tls-cert-file`, `--tls-private-key-file`).
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Self, TlsError> {
        let read_error = |path: &Path, reason: String| TlsError::Read {
            path: path.to_path_buf(),
            reason,
        };
        let chain = CertificateDer::pem_file_iter(cert_file)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| read_error(cert_file, e.to_string()))?;
        if chain.is_empty() {
            return Err(read_error(cert_file, "no certificate in it".to_string()));
        }
        let key = PrivateKeyDer::from_pem_file(key_file)
            .map_err(|e| read_error(key_file, e.to_string()))?;
        Ok(Self { chain, key })
    }

    /// `cert_dir/kubelet.crt|key`, made self-signed for `hostname` and `ips` when they do not exist yet
    /// (upstream's behaviour without `--tls-cert-file`).
    pub fn self_signed(cert_dir: &Path, hostname: &str, ips: &[IpAddr]) -> Result<Self, TlsError> {
        let (cert_file, key_file) = (cert_dir.join("kubelet.crt"), cert_dir.join("kubelet.key"));
        if !cert_file.exists() || !key_file.exists() {
            let mut names = vec![hostname.to_string()];
            names.extend(ips.iter().map(ToString::to_string));
            let mut params = rcgen::CertificateParams::new(names)?;
            params.distinguished_name.push(
                rcgen::DnType::CommonName,
                format!("{hostname}@{}", chrono::Utc::now().timestamp()),
            );
            let key = rcgen::KeyPair::generate()?;
            let certificate = params.self_signed(&key)?;
            let write = |path: &Path, text: String| {
                std::fs::create_dir_all(cert_dir)
                    .and_then(|()| std::fs::write(path, text))
                    .map_err(|source| TlsError::Write {
                        path: path.to_path_buf(),
                        source,
                    })
            };
            write(&cert_file, certificate.pem())?;
            write(&key_file, key.serialize_pem())?;
        }
        Self::load(&cert_file, &key_file)
    }
}

/// The server's TLS: HTTP/1.1 only (streaming upgrades need it); client certificates verified against
/// `client_ca` when one is configured, and optional, since tokens and anonymous requests come without.
pub fn server_config(
    certificate: &ServingCertificate,
    client_ca: Option<&Path>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let config_error = |e: &dyn std::fmt::Display| TlsError::Config(e.to_string());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| config_error(&e))?;
    let builder = match client_ca {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for certificate in CertificateDer::pem_file_iter(path).map_err(|e| TlsError::Read {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })? {
                let certificate = certificate.map_err(|e| TlsError::Read {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
                roots.add(certificate).map_err(|e| config_error(&e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                Arc::new(rustls::crypto::ring::default_provider()),
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| config_error(&e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certificate.chain.clone(), certificate.key.clone_key())
        .map_err(|e| config_error(&e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
