use super::*;
use component_base::serving::authn::PeerCertificates;
use rustls::pki_types::{CertificateDer, ServerName};
use std::path::Path;
use std::time::Duration;

/// A CA's PEM and a client certificate it signed for `user`.
fn ca_and_client(user: &str) -> (String, CertificateDer<'static>) {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, format!("{user}-ca"));
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let mut client = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    client
        .distinguished_name
        .push(rcgen::DnType::CommonName, user);
    client.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = client.signed_by(&key, &issuer).unwrap().der().clone();
    (ca_pem, leaf)
}

async fn user_of(authenticator: &Authenticator, leaf: &CertificateDer<'static>) -> Option<String> {
    let presented = PeerCertificates::new(vec![leaf.clone()]);
    authenticator
        .authenticate(Some(&presented), &http::HeaderMap::new())
        .await
        .unwrap()
        .map(|user| user.name)
}

/// Whether a client trusting only the CA at the end of `cert_file` completes a handshake with `addr`.
async fn handshake_trusting(addr: SocketAddr, cert_file: &Path) -> bool {
    let chain = tls::read_certificates(cert_file).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(chain.last().unwrap().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(
        rustls::crypto::ring::default_provider().into(),
    )
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::IpAddress(addr.ip().into());
    connector.connect(name, stream).await.is_ok()
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn the_server_follows_its_certificate_and_client_ca_files() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca_file) = (
        dir.path().join("kubelet.crt"),
        dir.path().join("kubelet.key"),
        dir.path().join("ca.crt"),
    );
    let localhost = [std::net::IpAddr::from([127, 0, 0, 1])];
    let certificate =
        ServingCertificate::self_signed_with_ca("first", &[], &localhost, Some((&cert, &key)))
            .unwrap();
    let (old_ca, old_client) = ca_and_client("old");
    let (new_ca, new_client) = ca_and_client("new");
    std::fs::write(&ca_file, &old_ca).unwrap();
    let server = KubeletServer::bind(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        certificate,
        Some((cert.clone(), key.clone())),
        Some(ca_file.clone()),
        TlsPolicy::default(),
    )
    .await
    .unwrap();
    let addr = server.local_addr().unwrap();
    let authenticator = Arc::new(Authenticator::new(false, None));
    let stop = CancellationToken::new();
    let _stop_on_drop = stop.clone().drop_guard();
    tokio::spawn(server.serve(Router::new(), authenticator.clone(), stop));

    // Served, so the server has given the authenticator its client CA.
    assert!(handshake_trusting(addr, &cert).await);
    assert_eq!(
        user_of(&authenticator, &old_client).await.as_deref(),
        Some("old")
    );
    assert_eq!(user_of(&authenticator, &new_client).await, None);

    std::fs::write(&ca_file, &new_ca).unwrap();
    eventually("the new client CA", async || {
        user_of(&authenticator, &new_client).await.is_some()
    })
    .await;
    assert_eq!(user_of(&authenticator, &old_client).await, None);

    let first = dir.path().join("first.crt");
    std::fs::copy(&cert, &first).unwrap();
    let next = dir.path().join("next");
    std::fs::create_dir(&next).unwrap();
    let (next_cert, next_key) = (next.join("kubelet.crt"), next.join("kubelet.key"));
    ServingCertificate::self_signed_with_ca(
        "second",
        &[],
        &localhost,
        Some((&next_cert, &next_key)),
    )
    .unwrap();
    std::fs::copy(&next_key, &key).unwrap();
    std::fs::copy(&next_cert, &cert).unwrap();
    eventually("the new serving certificate", async || {
        handshake_trusting(addr, &next_cert).await
    })
    .await;
    assert!(!handshake_trusting(addr, &first).await);
}
