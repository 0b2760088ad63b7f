//! `kubectl exec` and `kubectl cp` against ferrokube-kubelet through the apiserver, both ways kubectl 1.36
//! gets there: WebSocket v5 to the apiserver, which speaks SPDY to the kubelet, and SPDY all the way
//! (`KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`). Output, exit codes, stdin's end, a terminal and its size,
//! upstream's errors, and no process left behind by a client that went away.

use std::process::{Output, Stdio};
use std::time::Duration;

use ferrokube_cluster::testing::TestNamespace;
use ferrokube_tests::kubectl::{kubectl, kubectl_command};
use ferrokube_tests::kubelet::{TestNode, main_status};
use ferrokube_tests::scheduling::{default_service_account, eventually};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use tokio::io::AsyncWriteExt;

const NODE: &str = "node-1";
const BRIDGE: &str = "fk-exe0";
const POD_CIDR: &str = "10.245.0.0/24";
const POD: &str = "shell";

/// The two ways kubectl reaches the kubelet's exec.
#[derive(Clone, Copy, Debug)]
enum Transport {
    /// kubectl's default: WebSocket v5 to the apiserver, translated to SPDY towards the kubelet.
    WebSocket,
    /// SPDY from kubectl, proxied by the apiserver.
    Spdy,
}

impl Transport {
    fn command(self, args: &[&str]) -> tokio::process::Command {
        let mut command = kubectl_command(args);
        if let Transport::Spdy = self {
            command.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false");
        }
        command
    }

    async fn run(self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut command = self.command(args);
        if stdin.is_some() {
            command.stdin(Stdio::piped());
        }
        let mut child = command.spawn().expect("kubectl runs");
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input).await.unwrap();
            // Dropping the pipe is the input's end, which kubectl passes on as the stdin stream's FIN.
        }
        tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} ({self:?}) took over a minute"))
            .unwrap()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `args` and asserts success, returning stdout.
async fn ok(transport: Transport, args: &[&str], stdin: Option<&[u8]>) -> String {
    let output = transport.run(args, stdin).await;
    assert!(
        output.status.success(),
        "kubectl {args:?} ({transport:?}) failed ({}): {}",
        output.status,
        text(&output.stderr)
    );
    text(&output.stdout)
}

fn shell_pod() -> Pod {
    serde_json::from_value(json!({
        // The annotation spares kubectl's "Defaulted container" notice on stderr.
        "metadata": {"name": POD, "annotations": {"kubectl.kubernetes.io/default-container": "main"}},
        "spec": {
            "nodeName": NODE,
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 1,
            "initContainers": [{"name": "setup", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                                "command": ["true"]}],
            "containers": [{"name": "main", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                            "command": ["sleep", "3600"]}],
        },
    }))
    .unwrap()
}

/// The command lines of the processes running in the pod's main container, from `ps` run by exec.
async fn processes(namespace: &str) -> String {
    ok(
        Transport::WebSocket,
        &["exec", "-n", namespace, POD, "--", "ps"],
        None,
    )
    .await
}

#[tokio::test]
async fn kubectl_exec_and_cp_work_as_against_upstreams_kubelet() {
    let _node = TestNode::start(NODE, BRIDGE, POD_CIDR, &[]).await;
    let ns = TestNamespace::new("kubelet-exec").await;
    default_service_account(&ns.client, ns.name()).await;
    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), ns.name());
    pods.create(&PostParams::default(), &shell_pod())
        .await
        .unwrap();
    eventually(Duration::from_secs(60), "the pod to run", || async {
        let pod = pods.get(POD).await.ok()?;
        main_status(&pod)?.state?.running.map(|_| ())
    })
    .await;
    let n = ns.name();

    for transport in [Transport::WebSocket, Transport::Spdy] {
        // Output, and the exit code through the v4 status.
        let out = ok(transport, &["exec", "-n", n, POD, "--", "echo", "hi"], None).await;
        assert_eq!(out, "hi\n", "{transport:?}");
        let both = transport
            .run(
                &[
                    "exec",
                    "-n",
                    n,
                    POD,
                    "--",
                    "sh",
                    "-c",
                    "echo out; echo err >&2",
                ],
                None,
            )
            .await;
        assert_eq!(
            (text(&both.stdout), text(&both.stderr)),
            ("out\n".to_string(), "err\n".to_string()),
            "{transport:?}"
        );
        let failed = transport
            .run(&["exec", "-n", n, POD, "--", "sh", "-c", "exit 3"], None)
            .await;
        assert_eq!(failed.status.code(), Some(3), "{transport:?}: {failed:?}");
        assert_eq!(
            text(&failed.stderr),
            "command terminated with exit code 3\n",
            "{transport:?}"
        );

        // Stdin to its end: cat exits once the input's end reached it.
        let echoed = ok(
            transport,
            &["exec", "-i", "-n", n, POD, "--", "cat"],
            Some(b"data\nmore data\n"),
        )
        .await;
        assert_eq!(echoed, "data\nmore data\n", "{transport:?}");
        let counted = ok(
            transport,
            &["exec", "-i", "-n", n, POD, "--", "wc", "-c"],
            Some(&vec![b'x'; 300_000]),
        )
        .await;
        assert_eq!(counted.trim(), "300000", "{transport:?}");

        // A terminal, under script(1) so kubectl has one: its size reaches the process through resize.
        let script = format!(
            "stty cols 123 rows 45; {} exec -it -n {n} {POD} -- sh -c 'sleep 1; stty size; tty'",
            ferrokube_cluster::upstream::binary("kubectl")
                .unwrap()
                .display()
        );
        let command = transport.command(&[]);
        let std = command.as_std();
        let mut tty = tokio::process::Command::new("script");
        tty.args(["-qec", &script, "/dev/null"])
            .envs(std.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = tty.spawn().unwrap();
        // Kept open: the terminal's input must not end before the command does.
        let _input = child.stdin.take();
        let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("kubectl exec -it within a minute")
            .unwrap();
        let shown = text(&output.stdout);
        assert!(
            shown.contains("45 123") && shown.contains("/dev/pts/"),
            "{transport:?}: {shown:?} {}",
            text(&output.stderr)
        );
    }

    // kubectl cp is tar over exec, both ways.
    let dir = tempfile::tempdir().unwrap();
    let original: Vec<u8> = (0..500_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let local = dir.path().join("original.bin");
    std::fs::write(&local, &original).unwrap();
    let remote = format!("{n}/{POD}:/tmp/copied.bin");
    let into = kubectl(&["cp", local.to_str().unwrap(), &remote]).await;
    assert!(into.status.success(), "cp into: {}", text(&into.stderr));
    let back = dir.path().join("back.bin");
    let out_of = kubectl(&["cp", &remote, back.to_str().unwrap()]).await;
    assert!(
        out_of.status.success(),
        "cp out of: {}",
        text(&out_of.stderr)
    );
    assert!(
        std::fs::read(&back).unwrap() == original,
        "the copy differs"
    );

    // A container not in the pod is refused by kubectl; one not running by the kubelet, with upstream's text.
    let unknown = kubectl(&["exec", "-n", n, POD, "-c", "nope", "--", "true"]).await;
    assert_eq!(
        text(&unknown.stderr),
        format!("error: container nope is not valid for pod {POD} out of: main, setup (init)\n")
    );
    for transport in [Transport::WebSocket, Transport::Spdy] {
        let stopped = transport
            .run(&["exec", "-n", n, POD, "-c", "setup", "--", "true"], None)
            .await;
        assert!(!stopped.status.success());
        assert!(
            text(&stopped.stderr).contains(r#"container not found (\"setup\")"#)
                || text(&stopped.stderr).contains(r#"container not found ("setup")"#),
            "{transport:?}: {}",
            text(&stopped.stderr)
        );
    }

    // A client killed mid-command leaves no process behind.
    for transport in [Transport::WebSocket, Transport::Spdy] {
        let mut sleeper = transport
            .command(&["exec", "-n", n, POD, "--", "sleep", "1000"])
            .spawn()
            .unwrap();
        eventually(Duration::from_secs(30), "sleep 1000 to run", || async {
            processes(n).await.contains("sleep 1000").then_some(())
        })
        .await;
        sleeper.kill().await.unwrap();
        eventually(Duration::from_secs(30), "sleep 1000 to be gone", || async {
            (!processes(n).await.contains("sleep 1000")).then_some(())
        })
        .await;
    }
    ns.delete().await;
}
