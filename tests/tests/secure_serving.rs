//! The scheduler's and controller-manager's secure port, as upstream's: HTTPS with a self-signed certificate
//! (written under --cert-dir) or the given one; health endpoints open to anonymous requests; `/metrics` only
//! for identities the apiserver authorizes (SubjectAccessReview), `system:masters` always; client certificates
//! checked against the client CA published in kube-system/extension-apiserver-authentication; bearer tokens
//! by TokenReview, an invalid one 401; a front proxy's headers trusted only from its CA's allowed names.

use std::path::Path;

use ferrokube_cluster::Identity;
use ferrokube_cluster::testing::TestNamespace;
use ferrokube_tests::ComponentProcess;
use ferrokube_tests::secure_serving::{
    Credentials, client, free_port, get, get_with_headers, negotiate, service_account_token, start,
    wait_until_serving,
};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use rustls::version::{TLS12, TLS13};
use rustls::{CipherSuite, ProtocolVersion};
use serde_json::json;

/// Every answer the secure port of the component on `port` owes to each kind of client. `own` is the
/// component's identity, `cert_file` the certificate it serves (certificate then CA).
async fn assert_delegated_serving(port: u16, own: &Identity, cert_file: &Path, namespace: &str) {
    let anonymous = client(port, Some(cert_file), &Credentials::None).await;
    wait_until_serving(&anonymous).await;
    for path in ["/healthz", "/livez"] {
        assert_eq!(
            get(&anonymous, path).await.unwrap(),
            (200, String::new(), "ok".to_string()),
            "{path}"
        );
    }
    let (code, reason, message) = get(&anonymous, "/metrics").await.unwrap();
    assert_eq!((code, reason.as_str()), (403, "Forbidden"), "{message}");
    assert_eq!(
        message,
        "forbidden: User \"system:anonymous\" cannot get path \"/metrics\""
    );

    // The component's own certificate authenticates it (client CA from the ConfigMap), but its role has
    // no `get /metrics` (upstream's bootstrap policy).
    let itself = client(
        port,
        Some(cert_file),
        &Credentials::Certificate(own.clone()),
    )
    .await;
    let (code, _, message) = get(&itself, "/metrics").await.unwrap();
    assert_eq!(code, 403, "{message}");
    assert_eq!(
        message,
        format!(
            "forbidden: User {:?} cannot get path \"/metrics\"",
            own.user
        )
    );

    let admin = client(port, Some(cert_file), &Credentials::Admin).await;
    let (code, _, body) = get(&admin, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(
        body.contains("# TYPE rest_client_requests_total"),
        "{body:.300}"
    );

    let invalid = client(
        port,
        Some(cert_file),
        &Credentials::Token("not-a-token".into()),
    )
    .await;
    let (code, reason, message) = get(&invalid, "/healthz").await.unwrap();
    assert_eq!(
        (code, reason.as_str(), message.as_str()),
        (401, "Unauthorized", "Unauthorized")
    );

    // A ServiceAccount's token: forbidden until bound to system:monitoring, which grants `get /metrics`.
    let admin_api = ferrokube_tests::scheduling::admin().await;
    let token = service_account_token(&admin_api, namespace, "scraper").await;
    let scraper = client(port, Some(cert_file), &Credentials::Token(token)).await;
    let (code, _, message) = get(&scraper, "/metrics").await.unwrap();
    assert_eq!(code, 403, "{message}");
    assert_eq!(
        message,
        format!(
            "forbidden: User \"system:serviceaccount:{namespace}:scraper\" cannot get path \"/metrics\""
        )
    );
    let bindings: Api<ClusterRoleBinding> = Api::all(admin_api.clone());
    let binding_name = format!("{namespace}-monitoring");
    bindings
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": binding_name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                            "name": "system:monitoring"},
                "subjects": [{"kind": "ServiceAccount", "name": "scraper", "namespace": namespace}]
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    // The denial above is cached for --authorization-webhook-cache-unauthorized-ttl (1 s here).
    let (code, _, body) = ferrokube_tests::scheduling::eventually(
        std::time::Duration::from_secs(30),
        "the scraper's /metrics allowed",
        || async {
            let answer = get(&scraper, "/metrics").await.unwrap();
            (answer.0 == 200).then_some(answer)
        },
    )
    .await;
    assert_eq!(code, 200);
    assert!(body.contains("# TYPE "), "{body:.300}");
    bindings
        .delete(&binding_name, &DeleteParams::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn the_scheduler_serves_https_with_delegated_authentication_and_authorization() {
    let namespace = TestNamespace::new("secure-scheduler").await;
    let cert_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cert_dir_flag = format!("--cert-dir={}", cert_dir.path().display());
    let _scheduler = start(
        "ferrokube-scheduler",
        &Identity::scheduler(),
        "secure-scheduler",
        port,
        &[
            &cert_dir_flag,
            "--authorization-webhook-cache-unauthorized-ttl=1s",
        ],
    );
    // Without --tls-cert-file the self-signed pair is written as kube-scheduler.crt|key under --cert-dir,
    // and what is served verifies against its CA for 127.0.0.1.
    let cert_file = cert_dir.path().join("kube-scheduler.crt");
    let anonymous = client(port, None, &Credentials::None).await;
    wait_until_serving(&anonymous).await;
    assert!(cert_dir.path().join("kube-scheduler.key").is_file());
    assert_delegated_serving(port, &Identity::scheduler(), &cert_file, &namespace.name).await;
    namespace.delete().await;
}

#[tokio::test]
async fn the_controller_manager_serves_https_with_delegated_authentication_and_authorization() {
    let namespace = TestNamespace::new("secure-kcm").await;
    let cert_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cert_dir_flag = format!("--cert-dir={}", cert_dir.path().display());
    let _manager = start(
        "ferrokube-controller-manager",
        &Identity::controller_manager(),
        "secure-kcm",
        port,
        &[
            "--controllers=serviceaccount",
            &cert_dir_flag,
            "--authorization-webhook-cache-unauthorized-ttl=1s",
        ],
    );
    let cert_file = cert_dir.path().join("kube-controller-manager.crt");
    let anonymous = client(port, None, &Credentials::None).await;
    wait_until_serving(&anonymous).await;
    assert_delegated_serving(
        port,
        &Identity::controller_manager(),
        &cert_file,
        &namespace.name,
    )
    .await;
    namespace.delete().await;
}

#[tokio::test]
async fn the_given_certificate_is_served_and_no_authorization_kubeconfig_forbids_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = given_certificate(dir.path());
    let port = free_port();
    let (cert_flag, key_flag) = (
        format!("--tls-cert-file={}", cert.display()),
        format!("--tls-private-key-file={}", key.display()),
    );
    let kubeconfig = ferrokube_cluster::testing::shared_control_plane()
        .kubeconfig(&Identity::scheduler())
        .unwrap()
        .display()
        .to_string();
    let _scheduler = ComponentProcess::spawn(
        "ferrokube-scheduler",
        &Identity::scheduler(),
        "given-cert-scheduler",
        &[
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            &format!("--secure-port={port}"),
            &cert_flag,
            &key_flag,
            // Authentication only: without an authorization kubeconfig (nor in-cluster credentials) only
            // the always-allowed paths and system:masters pass.
            &format!("--authentication-kubeconfig={kubeconfig}"),
        ],
    );
    let anonymous = client(port, Some(&cert), &Credentials::None).await;
    wait_until_serving(&anonymous).await;
    let (code, _, message) = get(&anonymous, "/metrics").await.unwrap();
    assert_eq!(code, 403, "{message}");
    let itself = client(
        port,
        Some(&cert),
        &Credentials::Certificate(Identity::scheduler()),
    )
    .await;
    let (code, _, message) = get(&itself, "/metrics").await.unwrap();
    assert_eq!(code, 403, "{message}");
    let admin = client(port, Some(&cert), &Credentials::Admin).await;
    assert_eq!(get(&admin, "/metrics").await.unwrap().0, 200);

    // A client certificate the client CA did not sign completes the handshake and is answered 401, as
    // upstream's x509 authenticator answers it.
    let (stranger_cert, stranger_key) = (
        dir.path().join("stranger.crt"),
        dir.path().join("stranger.key"),
    );
    component_base::serving::tls::ServingCertificate::self_signed_with_ca(
        "stranger",
        &[],
        &[],
        Some((&stranger_cert, &stranger_key)),
    )
    .unwrap();
    let stranger = client(
        port,
        Some(&cert),
        &Credentials::CertificateFiles(stranger_cert, stranger_key),
    )
    .await;
    let (code, reason, message) = get(&stranger, "/healthz").await.unwrap();
    assert_eq!(
        (code, reason.as_str(), message.as_str()),
        (401, "Unauthorized", "Unauthorized")
    );

    // A client trusting another CA (the cluster's) refuses the served certificate.
    let ca = ferrokube_cluster::testing::shared_control_plane()
        .pki()
        .ca_cert
        .clone();
    let distrusting = client(port, Some(&ca), &Credentials::None).await;
    let refused = get(&distrusting, "/healthz").await;
    assert!(refused.is_err(), "{refused:?}");
}

/// A certificate for 127.0.0.1 and its CA, written under `dir`: the certificate file (then the CA) and
/// the key file.
fn given_certificate(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("given.crt"), dir.join("given.key"));
    component_base::serving::tls::ServingCertificate::self_signed_with_ca(
        "given.example",
        &[],
        &["127.0.0.1".parse().unwrap()],
        Some((&cert, &key)),
    )
    .unwrap();
    (cert, key)
}

#[tokio::test]
async fn tls_min_version_and_cipher_suites_bound_what_the_secure_port_negotiates() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = given_certificate(dir.path());
    let files = [
        format!("--tls-cert-file={}", cert.display()),
        format!("--tls-private-key-file={}", key.display()),
    ];

    // TLS 1.3 only: a TLS 1.2 client is refused, a TLS 1.3 one served.
    let port = free_port();
    let _controller_manager = start(
        "ferrokube-controller-manager",
        &Identity::controller_manager(),
        "tls13-controller-manager",
        port,
        &[
            &files[0],
            &files[1],
            "--tls-min-version=VersionTLS13",
            "--controllers=serviceaccount",
        ],
    );
    wait_until_serving(&client(port, Some(&cert), &Credentials::None).await).await;
    let refused = negotiate(port, &cert, &[&TLS12], None).await;
    assert!(refused.is_err(), "{refused:?}");
    let (version, _) = negotiate(port, &cert, &[&TLS12, &TLS13], None)
        .await
        .unwrap();
    assert_eq!(version, ProtocolVersion::TLSv1_3);

    // One TLS 1.2 suite (the certificate's key is ECDSA): a TLS 1.2 client gets it or nothing.
    let port = free_port();
    let _scheduler = start(
        "ferrokube-scheduler",
        &Identity::scheduler(),
        "cipher-scheduler",
        port,
        &[
            &files[0],
            &files[1],
            "--tls-cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,TLS_RSA_WITH_AES_128_GCM_SHA256",
        ],
    );
    wait_until_serving(&client(port, Some(&cert), &Credentials::None).await).await;
    let refused = negotiate(
        port,
        &cert,
        &[&TLS12],
        Some("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
    )
    .await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(
        negotiate(port, &cert, &[&TLS12], None).await.unwrap(),
        (
            ProtocolVersion::TLSv1_2,
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        )
    );
}

#[tokio::test]
async fn the_front_proxy_vouches_for_the_user_its_headers_name() {
    let pki = ferrokube_cluster::testing::shared_control_plane().pki();
    let proxy = Credentials::CertificateFiles(
        pki.front_proxy_client_cert.clone(),
        pki.front_proxy_client_key.clone(),
    );
    let jane = [("X-Remote-User", "jane"), ("X-Remote-Extra-Scopes", "view")];
    let jane_master = [
        ("X-Remote-User", "jane"),
        ("X-Remote-Group", "system:masters"),
    ];

    // The request-header CA and headers come from the apiserver's extension-apiserver-authentication.
    let port = free_port();
    let _scheduler = start(
        "ferrokube-scheduler",
        &Identity::scheduler(),
        "front-proxy-scheduler",
        port,
        &[],
    );
    let anonymous = client(port, None, &Credentials::None).await;
    wait_until_serving(&anonymous).await;
    let front_proxy = client(port, None, &proxy).await;
    // The name comes from the header and the SubjectAccessReview is about it.
    assert_eq!(
        get_with_headers(&front_proxy, "/metrics", &jane)
            .await
            .unwrap(),
        (
            403,
            "Forbidden".to_string(),
            "forbidden: User \"jane\" cannot get path \"/metrics\"".to_string()
        )
    );
    let (code, _, body) = get_with_headers(&front_proxy, "/metrics", &jane_master)
        .await
        .unwrap();
    assert_eq!(code, 200, "{body:.300}");
    // Without a name the proxy's certificate is no client certificate of the cluster CA: 401, as upstream.
    let (code, _, message) = get(&front_proxy, "/healthz").await.unwrap();
    assert_eq!((code, message.as_str()), (401, "Unauthorized"));
    // Headers vouched for by no one are ignored: the component's own certificate, and no certificate.
    let itself = client(port, None, &Credentials::Certificate(Identity::scheduler())).await;
    let (code, _, message) = get_with_headers(&itself, "/metrics", &jane_master)
        .await
        .unwrap();
    assert_eq!(
        (code, message.as_str()),
        (
            403,
            "forbidden: User \"system:kube-scheduler\" cannot get path \"/metrics\""
        )
    );
    let (code, _, message) = get_with_headers(&anonymous, "/metrics", &jane_master)
        .await
        .unwrap();
    assert_eq!(
        (code, message.as_str()),
        (
            403,
            "forbidden: User \"system:anonymous\" cannot get path \"/metrics\""
        )
    );

    // From the flags: only the allowed common names may vouch.
    let port = free_port();
    let ca_flag = format!(
        "--requestheader-client-ca-file={}",
        pki.front_proxy_ca_cert.display()
    );
    let _controller_manager = start(
        "ferrokube-controller-manager",
        &Identity::controller_manager(),
        "front-proxy-controller-manager",
        port,
        &[
            "--controllers=serviceaccount",
            &ca_flag,
            "--requestheader-allowed-names=aggregator",
            "--requestheader-username-headers=X-Remote-User",
        ],
    );
    wait_until_serving(&client(port, None, &Credentials::None).await).await;
    let front_proxy = client(port, None, &proxy).await;
    let (code, _, message) = get_with_headers(&front_proxy, "/metrics", &jane_master)
        .await
        .unwrap();
    assert_eq!((code, message.as_str()), (401, "Unauthorized"));
}

/// Replaces `path` with `content` at once, as tools that rotate certificates do.
fn replace_file(path: &Path, content: &[u8]) {
    let next = path.with_extension("next");
    std::fs::write(&next, content).unwrap();
    std::fs::rename(&next, path).unwrap();
}

#[tokio::test]
async fn a_rotated_serving_certificate_and_client_ca_are_used_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = given_certificate(dir.path());
    let pki = ferrokube_cluster::testing::shared_control_plane().pki();
    // At first the client CA is one that did not sign the admin's certificate.
    let client_ca = dir.path().join("client-ca.crt");
    std::fs::copy(&pki.front_proxy_ca_cert, &client_ca).unwrap();
    let port = free_port();
    let _scheduler = start(
        "ferrokube-scheduler",
        &Identity::scheduler(),
        "rotating-scheduler",
        port,
        &[
            &format!("--tls-cert-file={}", cert.display()),
            &format!("--tls-private-key-file={}", key.display()),
            &format!("--client-ca-file={}", client_ca.display()),
            "--authentication-skip-lookup",
        ],
    );
    wait_until_serving(&client(port, Some(&cert), &Credentials::None).await).await;
    let admin = client(port, Some(&cert), &Credentials::Admin).await;
    let (code, _, message) = get(&admin, "/metrics").await.unwrap();
    assert_eq!((code, message.as_str()), (401, "Unauthorized"));

    replace_file(&client_ca, &std::fs::read(&pki.ca_cert).unwrap());
    ferrokube_tests::scheduling::eventually(
        std::time::Duration::from_secs(30),
        "the admin's certificate authenticated by the new client CA",
        || async { (get(&admin, "/metrics").await.unwrap().0 == 200).then_some(()) },
    )
    .await;

    // A new serving pair from another CA: a client trusting only that CA is served.
    let next = dir.path().join("next");
    std::fs::create_dir(&next).unwrap();
    let (next_cert, next_key) = given_certificate(&next);
    let first_cert = dir.path().join("first.crt");
    std::fs::copy(&cert, &first_cert).unwrap();
    replace_file(&key, &std::fs::read(&next_key).unwrap());
    replace_file(&cert, &std::fs::read(&next_cert).unwrap());
    ferrokube_tests::scheduling::eventually(
        std::time::Duration::from_secs(30),
        "the new serving certificate served",
        || async {
            let trusting_next = client(port, Some(&next_cert), &Credentials::None).await;
            matches!(get(&trusting_next, "/healthz").await, Ok((200, _, _))).then_some(())
        },
    )
    .await;
    let trusting_first = client(port, Some(&first_cert), &Credentials::None).await;
    let refused = get(&trusting_first, "/healthz").await;
    assert!(refused.is_err(), "{refused:?}");
}
