//! Serving certificates and the TLS configuration shared by the kubelet's server and the control-plane
//! components' secure port: a given pair (`--tls-cert-file`), or a self-signed one as upstream makes, and
//! client certificates asked for but not required.

use super::tls_policy::TlsPolicy;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

use super::authn::PeerCertificates;

/// Why a server cannot serve TLS.
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
    #[error("{0}")]
    InvalidFlag(String),
}

/// A serving certificate chain and its key.
pub struct ServingCertificate {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// How long upstream's generated serving certificates are valid (certutil's one year).
const SELF_SIGNED_VALIDITY: std::time::Duration = std::time::Duration::from_secs(365 * 24 * 3600);

impl ServingCertificate {
    /// Reads PEM files (`--tls-cert-file`, `--tls-private-key-file`).
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Self, TlsError> {
        let chain = read_certificates(cert_file)?;
        if chain.is_empty() {
            return Err(read_error(cert_file, "no certificate in it".to_string()));
        }
        let key = PrivateKeyDer::from_pem_file(key_file)
            .map_err(|e| read_error(key_file, e.to_string()))?;
        Ok(Self { chain, key })
    }

    /// `cert_dir/kubelet.crt|key`, made self-signed for `hostname` and `ips` when they do not exist yet
    /// (the kubelet's behaviour without `--tls-cert-file`).
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
            write_pair(
                cert_dir,
                (&cert_file, certificate.pem()),
                (&key_file, key.serialize_pem()),
            )?;
        }
        Self::load(&cert_file, &key_file)
    }

    /// Upstream's MaybeDefaultWithSelfSignedCerts: a CA `host-ca@<time>` and a serving certificate
    /// `host@<time>` it signed, for `host` plus `alternate_dns` and `alternate_ips`. With `files`, they are
    /// read from there when both exist, else written there (certificate then CA in one file).
    pub fn self_signed_with_ca(
        host: &str,
        alternate_dns: &[String],
        alternate_ips: &[IpAddr],
        files: Option<(&Path, &Path)>,
    ) -> Result<Self, TlsError> {
        if let Some((cert_file, key_file)) = files
            && cert_file.exists()
            && key_file.exists()
        {
            return Self::load(cert_file, key_file);
        }
        let (certificate_pem, key_pem) = generate_with_ca(host, alternate_dns, alternate_ips)?;
        if let Some((cert_file, key_file)) = files {
            let dir = cert_file.parent().unwrap_or(Path::new("."));
            write_pair(dir, (cert_file, certificate_pem), (key_file, key_pem))?;
            tracing::info!(cert = %cert_file.display(), key = %key_file.display(), "Generated self-signed cert");
            return Self::load(cert_file, key_file);
        }
        tracing::info!("Generated self-signed cert in-memory");
        let chain = CertificateDer::pem_slice_iter(certificate_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| TlsError::Config(e.to_string()))?;
        Ok(Self { chain, key })
    }

    /// The served chain, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }
}

/// certutil.GenerateSelfSignedCertKeyWithFixtures: the PEM of the serving certificate followed by its CA,
/// and the serving key.
fn generate_with_ca(
    host: &str,
    alternate_dns: &[String],
    alternate_ips: &[IpAddr],
) -> Result<(String, String), TlsError> {
    let now = time::OffsetDateTime::now_utc();
    let stamp = now.unix_timestamp();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{host}-ca@{stamp}"));
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyEncipherment,
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyCertSign,
    ];
    ca_params.not_before = now;
    ca_params.not_after = now + SELF_SIGNED_VALIDITY;
    let ca_key = rcgen::KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{host}@{stamp}"));
    params.subject_alt_names = subject_alt_names(host, alternate_dns, alternate_ips)?;
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyEncipherment,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = now;
    params.not_after = now + SELF_SIGNED_VALIDITY;
    let key = rcgen::KeyPair::generate()?;
    let certificate = params.signed_by(&key, &issuer)?;
    Ok((
        format!("{}{}", certificate.pem(), ca.pem()),
        key.serialize_pem(),
    ))
}

/// The host (an IP or a DNS name) first, then the alternates, as certutil orders them.
fn subject_alt_names(
    host: &str,
    alternate_dns: &[String],
    alternate_ips: &[IpAddr],
) -> Result<Vec<rcgen::SanType>, TlsError> {
    let mut ips: Vec<IpAddr> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    match host.parse::<IpAddr>() {
        Ok(ip) => ips.push(ip),
        Err(_) => names.push(host.to_string()),
    }
    ips.extend_from_slice(alternate_ips);
    names.extend_from_slice(alternate_dns);
    let mut sans: Vec<rcgen::SanType> = ips.into_iter().map(rcgen::SanType::IpAddress).collect();
    for name in names {
        sans.push(rcgen::SanType::DnsName(name.try_into()?));
    }
    Ok(sans)
}

fn write_pair(
    dir: &Path,
    (cert_file, cert): (&Path, String),
    (key_file, key): (&Path, String),
) -> Result<(), TlsError> {
    let write = |path: &Path, text: String| {
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(path, text))
            .map_err(|source| TlsError::Write {
                path: path.to_path_buf(),
                source,
            })
    };
    write(cert_file, cert)?;
    write(key_file, key)
}

fn read_error(path: &Path, reason: String) -> TlsError {
    TlsError::Read {
        path: path.to_path_buf(),
        reason,
    }
}

/// Every certificate of a PEM file (a client CA bundle, a serving chain).
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| read_error(path, e.to_string()))
}

/// Every certificate of PEM text (the `client-ca-file` key of extension-apiserver-authentication).
pub fn parse_certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Config(format!("invalid client CA: {e}")))
}

/// A server's TLS configuration.
#[derive(Clone)]
pub struct ServerTls {
    /// The rustls configuration.
    pub config: Arc<rustls::ServerConfig>,
}

impl ServerTls {
    /// The certificate chain the client of `connection` presented, not yet judged: as upstream's, each
    /// authenticator verifies it against its own CA, so that a chain none trusts still completes the
    /// handshake and the request is answered 401 rather than the connection reset.
    pub fn peer_certificates(&self, connection: &rustls::ServerConnection) -> PeerCertificates {
        PeerCertificates::new(
            connection
                .peer_certificates()
                .unwrap_or_default()
                .iter()
                .map(|c| c.clone().into_owned())
                .collect(),
        )
    }
}

/// Client certificates this CA bundle signed for client authentication (upstream's VerifyOptions of a CA
/// content provider).
#[derive(Clone)]
pub struct ClientCa(Arc<dyn ClientCertVerifier>);

impl ClientCa {
    /// Trusts the certificates of `roots`; `None` when there are none, since then nothing is trusted.
    pub fn of(roots: &[CertificateDer<'static>]) -> Result<Option<Self>, TlsError> {
        if roots.is_empty() {
            return Ok(None);
        }
        let verifier = client_verifier(roots, rustls::crypto::ring::default_provider().into())?;
        Ok(Some(Self(verifier)))
    }

    /// Whether `chain` (leaf first, then intermediates) leads to one of the roots, now.
    pub fn verify(&self, chain: &[CertificateDer<'static>]) -> Result<(), String> {
        let (leaf, intermediates) = chain
            .split_first()
            .ok_or_else(|| "no client certificate".to_string())?;
        self.0
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

fn client_verifier(
    roots: &[CertificateDer<'static>],
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let config_error = |e: &dyn std::fmt::Display| TlsError::Config(e.to_string());
    let mut store = RootCertStore::empty();
    for certificate in roots {
        store
            .add(certificate.clone())
            .map_err(|e| config_error(&e))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider)
        .allow_unauthenticated()
        .build()
        .map_err(|e| config_error(&e))
}

/// Asks for a client certificate and checks the client holds its key, leaving the chain's trust to the
/// authenticators (see [`ServerTls::peer_certificates`]).
#[derive(Debug)]
struct RequestClientCertificate(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for RequestClientCertificate {
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0
            .verify_tls12_signature(message, certificate, signature)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0
            .verify_tls13_signature(message, certificate, signature)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The server's TLS: HTTP/1.1 only (streaming upgrades need it); client certificates asked for when
/// `client_cas` (every CA an authenticator trusts, named to the client as acceptable issuers) has any, and
/// optional, since tokens and anonymous requests come without.
pub fn server_config(
    certificate: &ServingCertificate,
    client_cas: &[CertificateDer<'static>],
    policy: &TlsPolicy,
) -> Result<ServerTls, TlsError> {
    let config_error = |e: &dyn std::fmt::Display| TlsError::Config(e.to_string());
    let provider = policy.provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(policy.versions())
        .map_err(|e| config_error(&e))?;
    let builder = if client_cas.is_empty() {
        builder.with_no_client_auth()
    } else {
        let hints = client_verifier(client_cas, provider)?;
        builder.with_client_cert_verifier(Arc::new(RequestClientCertificate(hints)))
    };
    let mut config = builder
        .with_single_cert(certificate.chain.clone(), certificate.key.clone_key())
        .map_err(|e| config_error(&e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(ServerTls {
        config: Arc::new(config),
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

    /// The subject alternative names of `leaf`, DNS names as written and IPs as octet lists.
    pub(in crate::serving) fn names_of(leaf: &X509Certificate<'_>) -> Vec<String> {
        leaf.subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|name| match name {
                GeneralName::DNSName(dns) => dns.to_string(),
                GeneralName::IPAddress(ip) => format!("{ip:?}"),
                other => format!("{other:?}"),
            })
            .collect()
    }

    fn parsed<'a>(der: &'a CertificateDer<'_>) -> X509Certificate<'a> {
        X509Certificate::from_der(der.as_ref()).unwrap().1
    }

    #[test]
    fn self_signed_with_ca_is_a_leaf_for_the_names_then_its_ca() {
        let certificate = ServingCertificate::self_signed_with_ca(
            "localhost",
            &[],
            &["127.0.0.1".parse().unwrap(), "10.0.0.5".parse().unwrap()],
            None,
        )
        .unwrap();
        let [leaf, ca] = certificate.chain() else {
            panic!("want leaf and CA, got {}", certificate.chain().len());
        };
        let (leaf, ca) = (parsed(leaf), parsed(ca));
        let cn = |c: &X509Certificate<'_>| {
            c.subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        };
        assert!(cn(&leaf).starts_with("localhost@"), "{}", cn(&leaf));
        assert!(cn(&ca).starts_with("localhost-ca@"), "{}", cn(&ca));
        assert_eq!(leaf.issuer(), ca.subject());
        assert!(ca.is_ca());
        assert!(!leaf.is_ca());
        assert_eq!(
            names_of(&leaf),
            ["[127, 0, 0, 1]", "[10, 0, 0, 5]", "localhost"]
        );
        server_config(&certificate, &[], &TlsPolicy::default()).unwrap();
    }

    #[test]
    fn self_signed_with_ca_is_written_once_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (
            dir.path().join("kube-scheduler.crt"),
            dir.path().join("kube-scheduler.key"),
        );
        let first = ServingCertificate::self_signed_with_ca(
            "localhost",
            &["localhost".to_string()],
            &[],
            Some((&cert, &key)),
        )
        .unwrap();
        assert_eq!(read_certificates(&cert).unwrap().len(), 2);
        let second =
            ServingCertificate::self_signed_with_ca("localhost", &[], &[], Some((&cert, &key)))
                .unwrap();
        assert_eq!(first.chain(), second.chain());
    }
}
