//! The secure port each control-plane component runs: HTTPS with delegated authentication and
//! authorization, serving `/metrics` in Prometheus text format and the health endpoints `/healthz`, `/livez`
//! and `/readyz` with upstream's plain-text answers. The TLS, authentication and authorization parts are
//! shared with the kubelet's server.

pub mod authn;
pub mod authorities;
pub mod authz;
pub mod delegating;
pub mod https;
pub mod options;
pub mod requestheader;
pub mod tls;
pub mod tls_policy;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::ListenerExt;
use prometheus::{Encoder, TextEncoder};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use delegating::DelegatingAuth;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServingError {
    #[error(
        "cannot listen on {addr}: {source} (choose another --secure-port or --bind-address, or stop what uses it)"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("serving on {addr} failed: {source}")]
    Serve {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Delegation(#[from] options::DelegationError),
}

/// Named readiness checks; `/readyz` answers 200 only when every registered check passes.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    checks: Arc<Mutex<BTreeMap<String, bool>>>,
}

impl Readiness {
    /// Records whether check `name` passes, registering it on first use.
    pub fn set(&self, name: &str, ready: bool) {
        self.lock().insert(name.to_string(), ready);
    }

    /// Each check with its state, in name order.
    pub fn checks(&self) -> Vec<(String, bool)> {
        self.lock()
            .iter()
            .map(|(name, ok)| (name.clone(), *ok))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, bool>> {
        self.checks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A bound, not yet serving, server: binding first makes a port in use a start-up error.
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
}

impl Server {
    /// Binds `addr`.
    pub async fn bind(addr: SocketAddr) -> Result<Self, ServingError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServingError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ServingError::Bind { addr, source })?;
        Ok(Self { listener, addr })
    }

    /// The address actually bound (useful when binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves plain HTTP without authentication until `shutdown` is cancelled (the kubelet's
    /// `--healthz-port`, which upstream serves so).
    pub async fn serve(
        self,
        readiness: Readiness,
        shutdown: CancellationToken,
    ) -> Result<(), ServingError> {
        let addr = self.addr;
        // TCP_NODELAY as on the secure port (see `https::serve`).
        let listener = self.listener.tap_io(|stream| {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        axum::serve(listener, routes(readiness))
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .map_err(|source| ServingError::Serve { addr, source })
    }

    /// Serves HTTPS with the current `tls` until `shutdown` is cancelled, every route behind `auth` (the
    /// control-plane components' `--secure-port`).
    pub async fn serve_https(
        self,
        readiness: Readiness,
        tls: tokio::sync::watch::Receiver<tls::ServerTls>,
        auth: Arc<DelegatingAuth>,
        shutdown: CancellationToken,
    ) {
        let router = routes(readiness).layer(axum::middleware::from_fn_with_state(
            auth,
            delegating::filter,
        ));
        https::serve(self.listener, tls, router, shutdown, "secure serving").await;
    }
}

fn routes(readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(alive))
        .route("/livez", get(alive))
        .route("/readyz", get(ready))
        .with_state(readiness)
}

/// The secure port's certificate: the given files, else upstream's MaybeDefaultWithSelfSignedCerts for
/// "localhost" and 127.0.0.1 plus the bind address (or the name localhost when binding every address),
/// written as `<pair_name>.crt|key` under `--cert-dir` when it is set.
pub fn serving_certificate(
    flags: &crate::flags::ServingFlags,
    pair_name: &str,
) -> Result<tls::ServingCertificate, tls::TlsError> {
    match (&flags.tls_cert_file, &flags.tls_private_key_file) {
        (Some(cert), Some(key)) => return tls::ServingCertificate::load(cert, key),
        (None, None) => {}
        _ => {
            return Err(tls::TlsError::Config(
                "--tls-cert-file and --tls-private-key-file must be given together".to_string(),
            ));
        }
    }
    let mut alternate_dns = Vec::new();
    let mut alternate_ips = vec![std::net::IpAddr::from([127, 0, 0, 1])];
    if flags.bind_address.is_unspecified() {
        alternate_dns.push("localhost".to_string());
    } else {
        alternate_ips.push(flags.bind_address);
    }
    let files = serving_files(flags, pair_name);
    tls::ServingCertificate::self_signed_with_ca(
        "localhost",
        &alternate_dns,
        &alternate_ips,
        files.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
    )
}

/// The files the secure port's certificate is read from, and followed: the given pair, else the
/// self-signed one under `--cert-dir`; none for a certificate made in memory.
pub fn serving_files(
    flags: &crate::flags::ServingFlags,
    pair_name: &str,
) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    match (&flags.tls_cert_file, &flags.tls_private_key_file) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        _ => flags.cert_dir.as_ref().map(|dir| {
            (
                dir.join(format!("{pair_name}.crt")),
                dir.join(format!("{pair_name}.key")),
            )
        }),
    }
}

/// `/metrics`: the default registry in Prometheus text format (also the kubelet server's `/metrics`).
pub async fn metrics() -> impl IntoResponse {
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    match encoder.encode(&prometheus::gather(), &mut body) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, encoder.format_type().to_string())],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain".to_string())],
            e.to_string().into_bytes(),
        ),
    }
}

async fn alive() -> &'static str {
    "ok"
}

async fn ready(State(readiness): State<Readiness>) -> (StatusCode, String) {
    let checks = readiness.checks();
    if checks.iter().all(|(_, ok)| *ok) {
        return (StatusCode::OK, "ok".into());
    }
    // Upstream lists each check as [+] or [-] when one fails.
    let mut body: String = checks
        .iter()
        .map(|(name, ok)| {
            if *ok {
                format!("[+]{name} ok\n")
            } else {
                format!("[-]{name} failed\n")
            }
        })
        .collect();
    body.push_str("readyz check failed\n");
    (StatusCode::INTERNAL_SERVER_ERROR, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn readyz_fails_until_every_check_passes() {
        let readiness = Readiness::default();
        readiness.set("informer-sync", false);
        readiness.set("apiserver", true);
        let (status, body) = ready(State(readiness.clone())).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body,
            "[+]apiserver ok\n[-]informer-sync failed\nreadyz check failed\n"
        );
        readiness.set("informer-sync", true);
        assert_eq!(
            ready(State(readiness)).await,
            (StatusCode::OK, "ok".to_string())
        );
    }

    fn serving_flags(bind: &str, cert_dir: Option<&std::path::Path>) -> crate::flags::ServingFlags {
        crate::flags::ServingFlags {
            bind_address: bind.parse().unwrap(),
            secure_port: None,
            cert_dir: cert_dir.map(std::path::Path::to_path_buf),
            tls_cert_file: None,
            tls_private_key_file: None,
            tls_cipher_suites: Vec::new(),
            tls_min_version: String::new(),
        }
    }

    fn subject_alt_names(certificate: &tls::ServingCertificate) -> Vec<String> {
        use x509_parser::prelude::{FromDer, X509Certificate};
        let (_, leaf) = X509Certificate::from_der(certificate.chain()[0].as_ref()).unwrap();
        tls::tests::names_of(&leaf)
    }

    #[test]
    fn the_self_signed_certificate_names_the_bind_address_or_localhost() {
        let specific =
            serving_certificate(&serving_flags("10.1.2.3", None), "kube-scheduler").unwrap();
        assert_eq!(
            subject_alt_names(&specific),
            ["[127, 0, 0, 1]", "[10, 1, 2, 3]", "localhost"]
        );
        // certutil appends the alternate "localhost" after the host "localhost" without removing the repeat.
        let any = serving_certificate(&serving_flags("0.0.0.0", None), "kube-scheduler").unwrap();
        assert_eq!(
            subject_alt_names(&any),
            ["[127, 0, 0, 1]", "localhost", "localhost"]
        );
    }

    #[test]
    fn with_cert_dir_the_pair_is_named_after_the_component_and_given_files_win() {
        let dir = tempfile::tempdir().unwrap();
        let generated = serving_certificate(
            &serving_flags("0.0.0.0", Some(dir.path())),
            "kube-controller-manager",
        )
        .unwrap();
        let (cert, key) = (
            dir.path().join("kube-controller-manager.crt"),
            dir.path().join("kube-controller-manager.key"),
        );
        assert!(cert.is_file() && key.is_file());
        let mut flags = serving_flags("0.0.0.0", None);
        flags.tls_cert_file = Some(cert);
        flags.tls_private_key_file = Some(key);
        let given = serving_certificate(&flags, "ignored").unwrap();
        assert_eq!(given.chain(), generated.chain());
        flags.tls_private_key_file = None;
        let error = serving_certificate(&flags, "ignored").err().unwrap();
        assert!(
            error.to_string().contains("must be given together"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn binding_a_port_in_use_names_the_address_and_the_fix() {
        let first = Server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let error = Server::bind(first.local_addr())
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.starts_with(&format!("cannot listen on {}", first.local_addr())),
            "{error}"
        );
        assert!(error.contains("--secure-port"), "{error}");
    }
}
