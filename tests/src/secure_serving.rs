//! Support for testing the scheduler's and controller-manager's secure port: HTTPS clients with a chosen
//! identity (none, a client certificate, a bearer token) that trust a chosen CA or none.

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use ferrokube_cluster::Identity;
use ferrokube_cluster::testing::shared_control_plane;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Client;
use kube::api::PostParams;
use kube::config::{AuthInfo, Kubeconfig};
use serde_json::json;

use crate::ComponentProcess;
use crate::scheduling::eventually;

/// A port on 127.0.0.1 nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `binary` as `identity` serving on 127.0.0.1:`port`, delegating to the apiserver with its own
/// kubeconfig (as kubeadm configures both), with `args` added.
pub fn start(
    binary: &'static str,
    identity: &Identity,
    name: &str,
    port: u16,
    args: &[&str],
) -> ComponentProcess {
    let kubeconfig = shared_control_plane()
        .kubeconfig(identity)
        .unwrap()
        .display()
        .to_string();
    let port = format!("--secure-port={port}");
    let authentication = format!("--authentication-kubeconfig={kubeconfig}");
    let authorization = format!("--authorization-kubeconfig={kubeconfig}");
    let mut all = vec![
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
        port.as_str(),
        authentication.as_str(),
        authorization.as_str(),
    ];
    all.extend_from_slice(args);
    ComponentProcess::spawn(binary, identity, name, &all)
}

/// Who the request is from.
pub enum Credentials {
    /// Nothing: anonymous.
    None,
    /// The client certificate of `identity`'s kubeconfig on the shared control plane.
    Certificate(Identity),
    /// The admin's client certificate (system:masters).
    Admin,
    /// `Authorization: Bearer <token>`.
    Token(String),
    /// The client certificate (chain) and key of these PEM files.
    CertificateFiles(std::path::PathBuf, std::path::PathBuf),
}

impl Credentials {
    fn auth_info(&self) -> AuthInfo {
        let control_plane = shared_control_plane();
        let of = |path: &Path| {
            Kubeconfig::read_from(path).unwrap().auth_infos[0]
                .auth_info
                .clone()
                .unwrap()
        };
        match self {
            Self::None => AuthInfo::default(),
            Self::Certificate(identity) => of(control_plane.kubeconfig(identity).unwrap()),
            Self::Admin => of(control_plane.admin_kubeconfig()),
            Self::Token(token) => AuthInfo {
                token: Some(token.clone().into()),
                ..Default::default()
            },
            Self::CertificateFiles(cert, key) => AuthInfo {
                client_certificate: Some(cert.display().to_string()),
                client_key: Some(key.display().to_string()),
                ..Default::default()
            },
        }
    }
}

/// A client of `https://127.0.0.1:<port>` sending `credentials`, trusting only the CA certificates of the
/// PEM file `ca` (which must then have signed what is served), or anything without one.
pub async fn client(port: u16, ca: Option<&Path>, credentials: &Credentials) -> Client {
    client_of(
        &format!("https://127.0.0.1:{port}"),
        shared_control_plane().admin_kubeconfig(),
        ca,
        credentials.auth_info(),
    )
    .await
}

/// A client of `url` with `kubeconfig`'s settings but `auth` as its user, trusting only the CA
/// certificates of the PEM file `ca`, or anything without one.
pub async fn client_of(url: &str, kubeconfig: &Path, ca: Option<&Path>, auth: AuthInfo) -> Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    config.cluster_url = url.parse().unwrap();
    config.auth_info = auth;
    match ca {
        Some(path) => {
            let certificates = component_base::serving::tls::read_certificates(path).unwrap();
            config.root_cert = Some(certificates.iter().map(|c| c.to_vec()).collect());
            config.accept_invalid_certs = false;
        }
        None => {
            config.root_cert = None;
            config.accept_invalid_certs = true;
        }
    }
    Client::try_from(config).unwrap()
}

/// A GET's status code, reason and body (the Status message for an error).
pub async fn get(client: &Client, path: &str) -> Result<(u16, String, String), kube::Error> {
    get_with_headers(client, path, &[]).await
}

/// A GET with `headers` added, answered as [`get`].
pub async fn get_with_headers(
    client: &Client,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String, String), kube::Error> {
    let mut request = http::Request::get(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Vec::new()).unwrap();
    match client.request_text(request).await {
        Ok(body) => Ok((200, String::new(), body)),
        Err(kube::Error::Api(status)) => Ok((status.code, status.reason, status.message)),
        Err(e) => Err(e),
    }
}

/// Waits until the server on `client` answers `/healthz` with 200.
pub async fn wait_until_serving(client: &Client) {
    let last = std::sync::Mutex::new(String::new());
    let what = "/healthz over HTTPS";
    let served = tokio::time::timeout(
        Duration::from_secs(60),
        eventually(Duration::from_secs(3600), what, || async {
            let answer = get(client, "/healthz").await;
            let ok = matches!(answer, Ok((200, _, _)));
            *last.lock().unwrap() = format!("{answer:?}");
            ok.then_some(())
        }),
    )
    .await;
    assert!(
        served.is_ok(),
        "timed out waiting for {what}; last answer: {}",
        last.lock().unwrap()
    );
}

/// Creates ServiceAccount `namespace/account` and returns a token for it (TokenRequest).
pub async fn service_account_token(client: &Client, namespace: &str, account: &str) -> String {
    let accounts: kube::Api<ServiceAccount> = kube::Api::namespaced(client.clone(), namespace);
    accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": account}})).unwrap(),
        )
        .await
        .unwrap();
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}}))
            .unwrap();
    accounts
        .create_token_request(account, &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token
        .unwrap()
}

/// What a TLS handshake with 127.0.0.1:`port` negotiates, the client trusting the CA certificates of
/// the PEM file `ca` and offering only `versions` and, if given, the one cipher suite `suite`; or why it
/// failed.
pub async fn negotiate(
    port: u16,
    ca: &Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
    suite: Option<&str>,
) -> Result<(rustls::ProtocolVersion, rustls::CipherSuite), String> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in component_base::serving::tls::read_certificates(ca).unwrap() {
        roots.add(certificate).unwrap();
    }
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(name) = suite {
        provider
            .cipher_suites
            .retain(|s| s.suite().as_str() == Some(name));
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, stream)
        .await
        .map_err(|e| e.to_string())?;
    let (_, connection) = stream.get_ref();
    Ok((
        connection.protocol_version().unwrap(),
        connection.negotiated_cipher_suite().unwrap().suite(),
    ))
}
