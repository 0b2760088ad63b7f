use super::*;
use clap::Parser;

/// A CA for client certificates, and certificates it signs for client authentication.
pub(crate) struct TestCa {
    root: CertificateDer<'static>,
    root_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub(crate) fn new(name: &str) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyCertSign,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let root = params.self_signed(&key).unwrap();
        Self {
            root: root.der().clone(),
            root_pem: root.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    pub(crate) fn root(&self) -> CertificateDer<'static> {
        self.root.clone()
    }

    pub(crate) fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// A client certificate for `common_name` in `organizations`, as its chain (leaf only).
    pub(crate) fn client(
        &self,
        common_name: &str,
        organizations: &[&str],
    ) -> Vec<CertificateDer<'static>> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        for organization in organizations {
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationName, *organization);
        }
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate().unwrap();
        vec![params.signed_by(&key, &self.issuer).unwrap().der().clone()]
    }
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    headers
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(ToString::to_string).collect()
}

fn config(ca: &TestCa, allowed_names: &[&str]) -> RequestHeaderConfig {
    RequestHeaderConfig {
        client_ca: vec![ca.root()],
        allowed_names: strings(allowed_names),
        username_headers: strings(&["X-Remote-User"]),
        uid_headers: strings(&["X-Remote-Uid"]),
        group_headers: strings(&["X-Remote-Group"]),
        extra_header_prefixes: strings(&["X-Remote-Extra-"]),
    }
}

#[test]
fn the_headers_name_the_user_its_groups_and_extra_attributes() {
    let config = RequestHeaderConfig {
        username_headers: strings(&["X-Remote-User", "X-Other-User"]),
        group_headers: strings(&["X-Remote-Group", "X-Other-Group"]),
        extra_header_prefixes: strings(&["X-Remote-Extra-", "X-Other-Extra-"]),
        ..config(&TestCa::new("front-proxy-ca"), &[])
    };
    let user = user_of_headers(
        &config,
        &headers(&[
            ("x-remote-user", ""),
            ("X-Other-User", "jane"),
            ("X-Remote-Uid", "uid-1"),
            ("X-Remote-Group", "one"),
            ("X-Remote-Group", ""),
            ("X-Remote-Group", "two, three"),
            ("X-Other-Group", "four"),
            ("X-Remote-Extra-Scopes", "a"),
            ("x-remote-extra-scopes", "b"),
            ("X-Other-Extra-Acme.com%2Fproject", "p"),
            ("X-Remote-Extra-Bad%zzKey", "v"),
            ("X-Unrelated", "x"),
        ]),
    )
    .unwrap();
    assert_eq!(user.name, "jane");
    assert_eq!(user.uid, "uid-1");
    // Values are not split on commas; empty ones are dropped.
    assert_eq!(user.groups, ["one", "two, three", "four"]);
    assert_eq!(
        user.extra,
        BTreeMap::from([
            ("scopes".to_string(), strings(&["a", "b"])),
            ("acme.com/project".to_string(), strings(&["p"])),
            ("bad%zzkey".to_string(), strings(&["v"])),
        ])
    );
}

#[test]
fn without_a_user_name_the_headers_name_no_one() {
    let config = config(&TestCa::new("front-proxy-ca"), &[]);
    assert_eq!(
        user_of_headers(&config, &headers(&[("X-Remote-Group", "g")])),
        None
    );
    assert_eq!(
        user_of_headers(&config, &headers(&[("X-Remote-User", "")])),
        None
    );
}

#[test]
fn only_an_allowed_certificate_of_the_request_header_ca_vouches() {
    let front_proxy = TestCa::new("front-proxy-ca");
    let other = TestCa::new("cluster-ca");
    let named = headers(&[("X-Remote-User", "jane"), ("X-Remote-Group", "dev")]);
    let authenticator =
        RequestHeaderAuthenticator::new(config(&front_proxy, &["front-proxy-client"])).unwrap();

    let user = authenticator
        .authenticate(&front_proxy.client("front-proxy-client", &[]), &named)
        .unwrap()
        .unwrap();
    assert_eq!(
        (user.name.as_str(), user.groups.as_slice()),
        ("jane", &["dev".to_string()][..])
    );

    assert_eq!(
        authenticator.authenticate(&front_proxy.client("someone-else", &[]), &named),
        Err("x509: subject with cn=someone-else is not in the allowed list".to_string())
    );
    let untrusted = authenticator.authenticate(&other.client("front-proxy-client", &[]), &named);
    assert!(untrusted.is_err(), "{untrusted:?}");
    // No certificate, or a trusted one without a user header: nothing to say, not an error.
    assert_eq!(authenticator.authenticate(&[], &named), Ok(None));
    assert_eq!(
        authenticator.authenticate(
            &front_proxy.client("front-proxy-client", &[]),
            &HeaderMap::new()
        ),
        Ok(None)
    );

    // No allowed names: any certificate of the CA vouches.
    let any = RequestHeaderAuthenticator::new(config(&front_proxy, &[])).unwrap();
    assert!(matches!(
        any.authenticate(&front_proxy.client("someone-else", &[]), &named),
        Ok(Some(_))
    ));
}

#[test]
fn without_a_ca_no_certificate_vouches() {
    let front_proxy = TestCa::new("front-proxy-ca");
    let authenticator = RequestHeaderAuthenticator::new(RequestHeaderConfig {
        client_ca: Vec::new(),
        ..config(&front_proxy, &[])
    })
    .unwrap();
    assert_eq!(
        authenticator.authenticate(
            &front_proxy.client("front-proxy-client", &[]),
            &headers(&[("X-Remote-User", "jane")])
        ),
        Ok(None)
    );
}

#[test]
fn the_configmap_gives_json_lists_and_the_ca() {
    let ca = rcgen::generate_simple_self_signed(vec!["front-proxy-ca".to_string()]).unwrap();
    let data = BTreeMap::from([
        ("requestheader-client-ca-file".to_string(), ca.cert.pem()),
        (
            "requestheader-allowed-names".to_string(),
            r#"["front-proxy-client"]"#.to_string(),
        ),
        (
            "requestheader-username-headers".to_string(),
            r#"["X-Remote-User"]"#.to_string(),
        ),
        (
            "requestheader-group-headers".to_string(),
            r#"["X-Remote-Group"]"#.to_string(),
        ),
        (
            "requestheader-extra-headers-prefix".to_string(),
            r#"["X-Remote-Extra-"]"#.to_string(),
        ),
        // Kept by the apiserver as an empty value when it has none.
        ("requestheader-uid-headers".to_string(), String::new()),
    ]);
    let config = RequestHeaderConfig::from_configmap(&data).unwrap();
    assert_eq!(config.client_ca, [ca.cert.der().clone()]);
    assert_eq!(config.allowed_names, ["front-proxy-client"]);
    assert_eq!(config.username_headers, ["X-Remote-User"]);
    assert_eq!(config.group_headers, ["X-Remote-Group"]);
    assert_eq!(config.extra_header_prefixes, ["X-Remote-Extra-"]);
    assert!(config.uid_headers.is_empty());

    let no_ca = RequestHeaderConfig::from_configmap(&BTreeMap::new()).unwrap();
    assert_eq!(no_ca, RequestHeaderConfig::default());

    let malformed = BTreeMap::from([(
        "requestheader-username-headers".to_string(),
        "X-Remote-User".to_string(),
    )]);
    let error = RequestHeaderConfig::from_configmap(&malformed).unwrap_err();
    assert!(
        error.starts_with("requestheader-username-headers: "),
        "{error}"
    );
}

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    request_header: RequestHeaderFlags,
}

#[test]
fn defaults_are_upstreams_and_a_ca_file_makes_a_configuration() {
    let flags = Flags::parse_from(["x"]).request_header;
    assert_eq!(flags.requestheader_username_headers, ["x-remote-user"]);
    assert_eq!(flags.requestheader_group_headers, ["x-remote-group"]);
    assert_eq!(
        flags.requestheader_extra_headers_prefix,
        ["x-remote-extra-"]
    );
    assert!(flags.requestheader_uid_headers.is_empty());
    assert!(flags.requestheader_allowed_names.is_empty());
    assert_eq!(flags.requestheader_client_ca_file, None);
    assert_eq!(flags.validate(), Ok(()));
    assert_eq!(RequestHeaderConfig::from_flags(&flags).unwrap(), None);

    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("front-proxy-ca.crt");
    let ca = rcgen::generate_simple_self_signed(vec!["front-proxy-ca".to_string()]).unwrap();
    std::fs::write(&ca_file, ca.cert.pem()).unwrap();
    let flags = Flags::parse_from([
        "x".to_string(),
        format!("--requestheader-client-ca-file={}", ca_file.display()),
        "--requestheader-allowed-names=front-proxy-client,aggregator".to_string(),
        "--requestheader-username-headers= X-Remote-User ,X-User".to_string(),
        "--requestheader-uid-headers=X-Remote-Uid".to_string(),
        "--requestheader-extra-headers-prefix=".to_string(),
    ])
    .request_header;
    assert_eq!(flags.validate(), Ok(()));
    let config = RequestHeaderConfig::from_flags(&flags).unwrap().unwrap();
    assert_eq!(config.client_ca, [ca.cert.der().clone()]);
    assert_eq!(config.allowed_names, ["front-proxy-client", "aggregator"]);
    assert_eq!(config.username_headers, ["X-Remote-User", "X-User"]);
    assert_eq!(config.uid_headers, ["X-Remote-Uid"]);
    assert_eq!(config.group_headers, ["x-remote-group"]);
    // `--flag=` is an empty list, as pflag reads it.
    assert!(config.extra_header_prefixes.is_empty());
}

#[test]
fn invalid_flags_are_refused_with_upstreams_messages() {
    let refused = |args: &[&str]| {
        let mut all = vec!["x"];
        all.extend_from_slice(args);
        Flags::parse_from(all)
            .request_header
            .validate()
            .unwrap_err()
    };
    assert_eq!(
        refused(&["--requestheader-username-headers=X-Remote-User, "]),
        r#"empty value in "requestheader-username-headers""#
    );
    assert_eq!(
        refused(&["--requestheader-uid-headers=X-Uid"]),
        "--requestheader-uid-headers is set without specifying the standard X-Remote-Uid header - API aggregation will not work"
    );
    assert_eq!(
        refused(&[
            "--requestheader-allowed-names=a,,b",
            "--requestheader-group-headers=,X-Remote-Group"
        ]),
        r#"[empty value in "requestheader-group-headers", empty value in "requestheader-allowed-names"]"#
    );
}
