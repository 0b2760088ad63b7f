use super::*;
use crate::serving::authn::PeerCertificates;
use crate::serving::requestheader::tests::TestCa;
use clap::Parser;
use http::HeaderMap;

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    authentication: AuthenticationFlags,
}

fn sources(args: &[String]) -> AuthoritySources {
    let mut all = vec!["x".to_string()];
    all.extend_from_slice(args);
    AuthoritySources::delegated(&Flags::parse_from(all).authentication)
}

fn configmap(client_ca: &TestCa, front_proxy: &TestCa) -> ConfigMapData {
    BTreeMap::from([
        (
            "client-ca-file".to_string(),
            client_ca.root_pem().to_string(),
        ),
        (
            "requestheader-client-ca-file".to_string(),
            front_proxy.root_pem().to_string(),
        ),
        (
            "requestheader-username-headers".to_string(),
            r#"["X-Remote-User"]"#.to_string(),
        ),
    ])
}

#[test]
fn the_configmap_gives_what_the_flags_do_not() {
    let (cluster, front_proxy) = (TestCa::new("cluster-ca"), TestCa::new("front-proxy-ca"));
    let data = configmap(&cluster, &front_proxy);

    let (from_configmap, error) = authorities(&sources(&[]), Some(&data)).unwrap();
    assert_eq!(error, None);
    assert_eq!(from_configmap.client_ca, [cluster.root()]);
    let request_header = from_configmap.request_header.clone().unwrap();
    assert_eq!(request_header.client_ca, [front_proxy.root()]);
    assert_eq!(request_header.username_headers, ["X-Remote-User"]);
    assert_eq!(
        from_configmap.all_cas(),
        [cluster.root(), front_proxy.root()]
    );

    // A CA file given wins over the ConfigMap.
    let dir = tempfile::tempdir().unwrap();
    let other = TestCa::new("other-ca");
    let file = dir.path().join("ca.crt");
    std::fs::write(&file, other.root_pem()).unwrap();
    let (from_file, _) = authorities(
        &sources(&[format!("--client-ca-file={}", file.display())]),
        Some(&data),
    )
    .unwrap();
    assert_eq!(from_file.client_ca, [other.root()]);
    assert_eq!(from_file.request_header, from_configmap.request_header);

    // Not read: nothing from it.
    assert_eq!(
        authorities(&sources(&[]), None).unwrap(),
        (Authorities::default(), None)
    );
}

#[test]
fn a_bad_front_proxy_part_is_reported_apart_from_the_client_ca() {
    let cluster = TestCa::new("cluster-ca");
    let data = BTreeMap::from([
        ("client-ca-file".to_string(), cluster.root_pem().to_string()),
        (
            "requestheader-group-headers".to_string(),
            "X-Remote-Group".to_string(),
        ),
    ]);
    let (authorities, error) = authorities(&sources(&[]), Some(&data)).unwrap();
    assert_eq!(authorities.client_ca, [cluster.root()]);
    assert_eq!(authorities.request_header, None);
    assert!(
        error.is_some_and(|e| e.starts_with("requestheader-group-headers: ")),
        "{authorities:?}"
    );
}

#[test]
fn only_changed_content_counts_as_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ca.crt");
    std::fs::write(&file, "one").unwrap();
    let mut files = WatchedFiles::new(vec![file.clone(), dir.path().join("missing")]);
    assert!(!files.changed());
    std::fs::write(&file, "one").unwrap();
    assert!(!files.changed());
    std::fs::write(&file, "two").unwrap();
    assert!(files.changed());
    assert!(!files.changed());
    std::fs::remove_file(&file).unwrap();
    assert!(files.changed());
}

async fn user_of(auth: &Authenticator, chain: Vec<CertificateDer<'static>>) -> Option<String> {
    auth.authenticate(Some(&PeerCertificates::new(chain)), &HeaderMap::new())
        .await
        .unwrap()
        .map(|user| user.name)
}

#[tokio::test]
async fn a_changed_ca_file_or_serving_pair_is_loaded_and_a_broken_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, cert_file, key_file) = (
        dir.path().join("ca.crt"),
        dir.path().join("serving.crt"),
        dir.path().join("serving.key"),
    );
    let (old_ca, new_ca) = (TestCa::new("old-ca"), TestCa::new("new-ca"));
    std::fs::write(&ca_file, old_ca.root_pem()).unwrap();
    let serving =
        ServingCertificate::self_signed_with_ca("first", &[], &[], Some((&cert_file, &key_file)))
            .unwrap();
    let sources = AuthoritySources::client_ca_file(Some(ca_file.clone()));
    let (initial, _) = authorities(&sources, None).unwrap();
    let auth = Arc::new(Authenticator::new(true, None));
    initial.install(&auth).unwrap();
    let policy = TlsPolicy::default();
    let (sender, receiver) =
        watch::channel(tls::server_config(&serving, &initial.all_cas(), &policy).unwrap());
    let mut follower = Follower {
        serving_files: Some((cert_file.clone(), key_file.clone())),
        serving,
        policy,
        sources,
        client: None,
        configmap: None,
        tls: sender,
    };
    let served = |receiver: &watch::Receiver<ServerTls>| Arc::as_ptr(&receiver.borrow().config);
    let first = served(&receiver);
    assert_eq!(
        user_of(&auth, old_ca.client("jane", &[])).await,
        Some("jane".to_string())
    );
    assert_eq!(user_of(&auth, new_ca.client("jane", &[])).await, None);

    std::fs::write(&ca_file, new_ca.root_pem()).unwrap();
    follower.reload(&auth);
    assert_eq!(
        user_of(&auth, new_ca.client("jane", &[])).await,
        Some("jane".to_string())
    );
    assert_eq!(user_of(&auth, old_ca.client("jane", &[])).await, None);
    let second = served(&receiver);
    assert_ne!(first, second);

    // A certificate whose key has not been written yet does not load: the last good pair stays.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    ServingCertificate::self_signed_with_ca(
        "second",
        &[],
        &[],
        Some((&other.join("s.crt"), &other.join("s.key"))),
    )
    .unwrap();
    std::fs::copy(other.join("s.crt"), &cert_file).unwrap();
    follower.reload(&auth);
    assert_eq!(served(&receiver), second);
    std::fs::copy(other.join("s.key"), &key_file).unwrap();
    follower.reload(&auth);
    assert_ne!(served(&receiver), second);
    assert_eq!(
        follower.serving.chain(),
        ServingCertificate::load(&other.join("s.crt"), &other.join("s.key"))
            .unwrap()
            .chain()
    );
}
