//! Upstream kubectl (pinned in hack/upstream) against the shared control plane, or a cluster of
//! `ferrokube up`, as a user runs it.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use ferrokube_cluster::testing::shared_control_plane;
use ferrokube_cluster::upstream;

/// How long one kubectl command may take before the test fails.
const KUBECTL_TIMEOUT: Duration = Duration::from_secs(60);

/// A kubectl command with the admin kubeconfig, not yet run.
pub fn kubectl_command(args: &[&str]) -> tokio::process::Command {
    kubectl_command_with(shared_control_plane().admin_kubeconfig(), args)
}

/// A kubectl command with `kubeconfig`, not yet run.
pub fn kubectl_command_with(kubeconfig: &Path, args: &[&str]) -> tokio::process::Command {
    let binary = upstream::binary("kubectl").expect("kubectl is built by hack/upstream");
    let mut command = Command::new(binary);
    command
        .env("KUBECONFIG", kubeconfig)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut command = tokio::process::Command::from(command);
    command.kill_on_drop(true);
    command
}

/// Runs kubectl with `args` to completion (at most a minute) and returns what it printed and its status.
pub async fn kubectl(args: &[&str]) -> Output {
    run(kubectl_command(args), args).await
}

/// Runs kubectl with `kubeconfig` and `args` to completion (at most a minute).
pub async fn kubectl_with(kubeconfig: &Path, args: &[&str]) -> Output {
    run(kubectl_command_with(kubeconfig, args), args).await
}

async fn run(mut command: tokio::process::Command, args: &[&str]) -> Output {
    let output = command.output();
    tokio::time::timeout(KUBECTL_TIMEOUT, output)
        .await
        .unwrap_or_else(|_| panic!("kubectl {args:?} took over {KUBECTL_TIMEOUT:?}"))
        .expect("kubectl runs")
}

/// Runs kubectl with `args`, asserts it succeeded, and returns its standard output.
pub async fn kubectl_ok(args: &[&str]) -> String {
    succeeded(kubectl(args).await, args)
}

/// Runs kubectl with `kubeconfig` and `args`, asserts it succeeded, and returns its standard output.
pub async fn kubectl_ok_with(kubeconfig: &Path, args: &[&str]) -> String {
    succeeded(kubectl_with(kubeconfig, args).await, args)
}

fn succeeded(output: Output, args: &[&str]) -> String {
    assert!(
        output.status.success(),
        "kubectl {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
