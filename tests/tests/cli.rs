//! Every binary answers --help and --version, and bad input gets one line naming the problem and the fix,
//! a non-zero exit, and nothing left running.

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use ferrokube_cluster::Identity;
use ferrokube_cluster::testing::shared_control_plane;
use ferrokube_tests::secure_serving::{Credentials, client, free_port, get, wait_until_serving};
use ferrokube_tests::{binary, wait_with_limit};

const COMPONENTS: [&str; 3] = [
    "ferrokube-scheduler",
    "ferrokube-controller-manager",
    "ferrokube-kubelet",
];

/// Runs `name args`, which must end by itself within 60 s.
fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(binary(name));
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().unwrap();
    wait_with_limit(&mut child, Duration::from_secs(60));
    child.wait_with_output().unwrap()
}

/// `--kubeconfig=` with the scheduler's credentials on the shared control plane.
fn scheduler_kubeconfig_flag() -> String {
    let path = shared_control_plane()
        .kubeconfig(&Identity::scheduler())
        .unwrap();
    format!("--kubeconfig={}", path.display())
}

/// Asserts a failed run printed exactly one line on stderr, containing each of `wanted`.
fn assert_one_line_error(output: &Output, wanted: &[&str]) {
    assert!(
        !output.status.success(),
        "expected failure, got {:?}",
        output.status
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got: {stderr}");
    for want in wanted {
        assert!(lines[0].contains(want), "{want:?} not in {:?}", lines[0]);
    }
}

#[test]
fn every_binary_answers_help_and_version() {
    let version = format!(
        "{} (Kubernetes {})",
        component_base::version::FERROKUBE_VERSION,
        component_base::version::KUBERNETES_VERSION
    );
    for name in COMPONENTS.iter().chain(&["ferrokube"]) {
        let help = run(name, &["--help"], &[]);
        assert!(help.status.success(), "{name} --help failed");
        assert!(
            String::from_utf8_lossy(&help.stdout).contains("Usage:"),
            "{name} --help"
        );
        let output = run(name, &["--version"], &[]);
        assert!(output.status.success(), "{name} --version failed");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            format!("{name} {version}")
        );
    }
}

#[test]
fn an_invalid_flag_is_one_line_and_exit_code_2() {
    for name in COMPONENTS {
        let output = run(name, &["--no-such-flag"], &[]);
        assert_eq!(output.status.code(), Some(2), "{name}");
        assert_one_line_error(&output, &["--no-such-flag", "--help"]);
    }
    let output = run(
        "ferrokube-scheduler",
        &["--leader-elect-lease-duration=15 seconds"],
        &[],
    );
    assert_one_line_error(&output, &["--leader-elect-lease-duration", "15 seconds"]);
}

#[test]
fn a_missing_kubeconfig_is_named_with_the_fix() {
    for name in COMPONENTS {
        let no_serving = if name == "ferrokube-kubelet" {
            "--healthz-port=0"
        } else {
            "--secure-port=0"
        };
        let output = run(
            name,
            &["--kubeconfig=/nonexistent/kubeconfig", no_serving],
            &[],
        );
        assert_one_line_error(&output, &["/nonexistent/kubeconfig", "--kubeconfig"]);
    }
}

#[test]
fn a_kubelet_with_invalid_configuration_or_labels_refuses_to_start() {
    let config = std::env::temp_dir().join(format!("kubelet-{}.yaml", std::process::id()));
    std::fs::write(
        &config,
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nmaxPods: -1\n",
    )
    .unwrap();
    let config_flag = format!("--config={}", config.display());
    let output = run(
        "ferrokube-kubelet",
        &[&config_flag, "--healthz-port=0"],
        &[],
    );
    assert_one_line_error(
        &output,
        &[
            "failed to validate kubelet configuration",
            "maxPods (--max-pods) -1 must not be a negative number",
        ],
    );
    let output = run(
        "ferrokube-kubelet",
        &[
            "--node-labels=node-role.kubernetes.io/worker=",
            "--healthz-port=0",
        ],
        &[],
    );
    assert_one_line_error(
        &output,
        &["node-role.kubernetes.io/worker", "--node-labels"],
    );
    let _ = std::fs::remove_file(config);
}

#[test]
fn an_unreachable_apiserver_is_named_with_the_fix() {
    let admin = shared_control_plane()
        .kubeconfig(&Identity::admin())
        .unwrap();
    let text = std::fs::read_to_string(admin).unwrap();
    let dead_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let unreachable = text.replace(
        shared_control_plane().url(),
        &format!("https://127.0.0.1:{dead_port}"),
    );
    let path = std::env::temp_dir().join(format!("unreachable-{}.kubeconfig", std::process::id()));
    std::fs::write(&path, unreachable).unwrap();
    let kubeconfig = format!("--kubeconfig={}", path.display());
    let output = run(
        "ferrokube-scheduler",
        &[&kubeconfig, "--secure-port=0"],
        &[],
    );
    assert_one_line_error(
        &output,
        &[
            "cannot reach the apiserver",
            &format!("127.0.0.1:{dead_port}"),
            "--kubeconfig",
        ],
    );
    let _ = std::fs::remove_file(path);
}

#[test]
fn a_port_in_use_is_named_with_the_fix() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let kubeconfig = scheduler_kubeconfig_flag();
    let output = run(
        "ferrokube-scheduler",
        &[
            &kubeconfig,
            "--bind-address=127.0.0.1",
            &format!("--secure-port={port}"),
        ],
        &[],
    );
    assert_one_line_error(&output, &[&format!("127.0.0.1:{port}"), "--secure-port"]);

    let home = std::env::temp_dir().join(format!("ferrokube-home-port-{}", std::process::id()));
    let output = run(
        "ferrokube",
        &["up", &format!("--apiserver-port={port}")],
        &[("FERROKUBE_HOME", home.to_str().unwrap())],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("port {port} on 127.0.0.1 is in use")),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(home);
}

#[test]
fn an_unknown_tls_version_or_cipher_suite_is_refused_with_upstreams_message() {
    let secure_port = format!("--secure-port={}", free_port());
    let output = run(
        "ferrokube-scheduler",
        &[
            &scheduler_kubeconfig_flag(),
            "--bind-address=127.0.0.1",
            &secure_port,
            "--tls-min-version=TLS1.3",
        ],
        &[],
    );
    assert_one_line_error(&output, &["unknown tls version \"TLS1.3\""]);

    let kubeconfig = shared_control_plane()
        .kubeconfig(&Identity::controller_manager())
        .unwrap();
    let output = run(
        "ferrokube-controller-manager",
        &[
            &format!("--kubeconfig={}", kubeconfig.display()),
            "--bind-address=127.0.0.1",
            &secure_port,
            "--tls-cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_MADE_UP",
        ],
        &[],
    );
    assert_one_line_error(
        &output,
        &["Cipher suite TLS_MADE_UP not supported or doesn't exist"],
    );

    let cert_dir = tempfile::tempdir().unwrap();
    let output = run(
        "ferrokube-kubelet",
        &[
            "--healthz-port=0",
            &format!("--port={}", free_port()),
            &format!("--cert-dir={}", cert_dir.path().display()),
            "--tls-min-version=bogus",
        ],
        &[],
    );
    assert_one_line_error(
        &output,
        &["failed to construct kubelet dependencies: unknown tls version \"bogus\""],
    );
}

#[test]
fn an_invalid_request_header_flag_is_refused_with_upstreams_message() {
    let output = run(
        "ferrokube-scheduler",
        &[
            &scheduler_kubeconfig_flag(),
            "--bind-address=127.0.0.1",
            &format!("--secure-port={}", free_port()),
            "--requestheader-uid-headers=X-Uid",
        ],
        &[],
    );
    assert_one_line_error(
        &output,
        &[
            "--requestheader-uid-headers is set without specifying the standard X-Remote-Uid header - API aggregation will not work",
        ],
    );
}

#[test]
fn a_missing_upstream_binary_names_the_build_command() {
    let home = std::env::temp_dir().join(format!("ferrokube-home-missing-{}", std::process::id()));
    let output = run(
        "ferrokube",
        &["up", "--apiserver-port=0"],
        &[
            ("FERROKUBE_CACHE", "/nonexistent/cache"),
            ("FERROKUBE_HOME", home.to_str().unwrap()),
        ],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("ferrokube:"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("/nonexistent/cache/upstream/"),
        "{stderr}"
    );
    assert!(errors[0].contains("make upstream"), "{stderr}");
    let _ = std::fs::remove_dir_all(home);
}

#[tokio::test]
async fn a_component_with_valid_credentials_serves_health_and_metrics_over_https_until_sigterm() {
    let kubeconfig = scheduler_kubeconfig_flag();
    let delegation = kubeconfig.replace("--kubeconfig=", "");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(binary("ferrokube-scheduler"))
        .args([
            &kubeconfig,
            "--bind-address=127.0.0.1",
            &format!("--secure-port={port}"),
            &format!("--authentication-kubeconfig={delegation}"),
            &format!("--authorization-kubeconfig={delegation}"),
            "--leader-elect=false",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let anonymous = client(port, None, &Credentials::None).await;
    wait_until_serving(&anonymous).await;
    assert_eq!(
        get(&anonymous, "/healthz").await.unwrap(),
        (200, String::new(), "ok".to_string())
    );
    assert_eq!(get(&anonymous, "/readyz").await.unwrap().0, 200);
    let (code, reason, _) = get(&anonymous, "/metrics").await.unwrap();
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    let admin = client(port, None, &Credentials::Admin).await;
    let (code, _, metrics) = get(&admin, "/metrics").await.unwrap();
    assert_eq!(code, 200, "{metrics}");
    assert!(metrics.contains("# TYPE "), "{metrics:.300}");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(wait_with_limit(&mut child, Duration::from_secs(20)).success());
}
