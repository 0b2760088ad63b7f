//! ferrokube-kubelet's port-forward and run through the real apiserver, as with upstream's kubelet:
//! `kubectl port-forward` (WebSocket tunnel and plain SPDY) to a test server pod, a port nothing listens on
//! giving kubectl's error, `POST /run` through the apiserver's node proxy, and `kubectl attach` (live output;
//! stdin to a `stdinOnce` container).

use std::time::Duration;

use ferrokube_cluster::Identity;
use ferrokube_cluster::testing::{TestNamespace, shared_control_plane};
use ferrokube_tests::kubectl::kubectl_command;
use ferrokube_tests::kubelet::{TESTSERVER_IMAGE, TestNode, main_status};
use ferrokube_tests::scheduling::{default_service_account, eventually};
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const NODE: &str = "node-1";
const BRIDGE: &str = "fk-pfw0";
const POD_CIDR: &str = "10.243.0.0/24";

fn pod(name: &str, container: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "nodeName": NODE,
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 1,
            "containers": [container],
        },
    }))
    .unwrap()
}

async fn running(pods: &Api<Pod>, name: &str) {
    eventually(
        Duration::from_secs(60),
        &format!("{name} to run"),
        || async {
            let pod = pods.get(name).await.ok()?;
            main_status(&pod)?.state?.running.map(|_| ())
        },
    )
    .await;
}

/// A `kubectl port-forward` running in the background, with the local port it listens on.
struct PortForward {
    child: tokio::process::Child,
    stderr: tokio::process::ChildStderr,
    local_port: u16,
}

impl PortForward {
    /// Starts `kubectl port-forward pod/POD :REMOTE` with `env` and waits for its `Forwarding from` line.
    async fn start(namespace: &str, pod: &str, remote: u16, env: &[(&str, &str)]) -> Self {
        let ports = format!(":{remote}");
        let mut command = kubectl_command(&[
            "port-forward",
            "-n",
            namespace,
            &format!("pod/{pod}"),
            &ports,
            "--address=127.0.0.1",
        ]);
        command.envs(env.iter().copied());
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let local_port = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                // "Forwarding from 127.0.0.1:PORT -> REMOTE"
                if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") {
                    return rest.split(' ').next().unwrap().parse::<u16>().unwrap();
                }
            }
            panic!("kubectl port-forward ended without forwarding");
        })
        .await
        .expect("kubectl port-forward listens within 30 s");
        // Keep reading stdout ("Handling connection for ...") so kubectl never blocks on it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            child,
            stderr,
            local_port,
        }
    }

    /// Sends an HTTP/1.0 GET for `path` through the forward and returns the whole answer.
    async fn get(&self, path: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.local_port))
            .await
            .unwrap();
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(20), stream.read_to_string(&mut answer))
            .await
            .expect("an answer within 20 s")
            .unwrap();
        answer
    }

    /// What kubectl printed on stderr once it ended (killed after `limit`).
    async fn stderr_after(mut self, limit: Duration) -> String {
        let mut text = String::new();
        let _ = tokio::time::timeout(limit, self.stderr.read_to_string(&mut text)).await;
        let _ = self.child.kill().await;
        text
    }
}

async fn forwarding_reaches_the_pods_http_server(namespace: &str, env: &[(&str, &str)]) {
    let forward = PortForward::start(namespace, "web", 8080, env).await;
    for path in ["/hello", "/again"] {
        let answer = forward.get(path).await;
        assert!(
            answer.starts_with("HTTP/1.0 200 OK\r\n"),
            "{env:?}: {answer}"
        );
        assert!(answer.ends_with(path), "{env:?}: {answer}");
    }
    let mut child = forward.child;
    let _ = child.kill().await;
}

/// POSTs `path` through the admin client and returns the status code and body.
async fn post(client: &Client, path: &str) -> (u16, String) {
    let request = http::Request::post(path).body(Vec::new()).unwrap();
    match client.request_text(request).await {
        Ok(body) => (200, body),
        Err(kube::Error::Api(status)) => (status.code, status.message),
        Err(e) => panic!("POST {path}: {e}"),
    }
}

#[tokio::test]
async fn port_forward_and_run_through_the_apiserver() {
    let node = TestNode::start(NODE, BRIDGE, POD_CIDR, &[]).await;
    node.import_testserver();
    let ns = TestNamespace::new("kubelet-portforward").await;
    default_service_account(&ns.client, ns.name()).await;
    let pods: Api<Pod> = Api::namespaced(ns.client.clone(), ns.name());
    let web = pod(
        "web",
        json!({"name": "main", "image": TESTSERVER_IMAGE, "imagePullPolicy": "Never",
               "command": ["/testserver", "--http-port=8080"]}),
    );
    let ticker = pod(
        "ticker",
        json!({"name": "main", "image": "busybox", "imagePullPolicy": "IfNotPresent",
               "command": ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done"]}),
    );
    // stdin: true with stdinOnce: `cat` echoes what an attacher sends and ends when that attach's input ends.
    let echoer = pod(
        "echoer",
        json!({"name": "main", "image": "busybox", "imagePullPolicy": "IfNotPresent",
               "command": ["cat"], "stdin": true, "stdinOnce": true}),
    );
    for pod in [&web, &ticker, &echoer] {
        pods.create(&PostParams::default(), pod).await.unwrap();
    }
    running(&pods, "web").await;
    running(&pods, "ticker").await;

    // kubectl 1.36 tunnels SPDY through a WebSocket (the apiserver unwraps it); the fallback is plain SPDY.
    forwarding_reaches_the_pods_http_server(ns.name(), &[]).await;
    forwarding_reaches_the_pods_http_server(
        ns.name(),
        &[("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")],
    )
    .await;

    // Nothing listens on 9999: the kubelet's error comes back through kubectl.
    let forward = PortForward::start(ns.name(), "web", 9999, &[]).await;
    let mut local = TcpStream::connect(("127.0.0.1", forward.local_port))
        .await
        .unwrap();
    let _ = local.write_all(b"GET / HTTP/1.0\r\n\r\n").await;
    let mut ignored = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), local.read_to_end(&mut ignored)).await;
    let stderr = forward.stderr_after(Duration::from_secs(10)).await;
    let uid = pods.get("web").await.unwrap().metadata.uid.unwrap();
    assert!(
        stderr.contains(&format!(
            "error forwarding port 9999 to pod {uid}, uid : failed to execute portforward in network \
             namespace \\\"/run/netns/fk-{uid}\\\": failed to connect to localhost:9999 inside namespace \
             \\\"{uid}\\\", IPv4: dial tcp4 127.0.0.1:9999: connect: connection refused"
        )),
        "{stderr}"
    );

    // /run through the apiserver's node proxy.
    let admin = shared_control_plane()
        .client(&Identity::admin())
        .await
        .unwrap();
    let run = |rest: &str| format!("/api/v1/nodes/{NODE}/proxy/run/{}/{rest}", ns.name());
    assert_eq!(
        post(&admin, &run("ticker/main?cmd=echo+hi+there")).await,
        (200, "hi there\n".to_string())
    );
    let ticker_uid = pods.get("ticker").await.unwrap().metadata.uid.unwrap();
    assert_eq!(
        post(
            &admin,
            &run(&format!("ticker/{ticker_uid}/main?cmd=hostname"))
        )
        .await,
        (200, "ticker\n".to_string())
    );
    let (code, message) = post(&admin, &run("ticker/main?cmd=false")).await;
    assert_eq!(code, 500);
    assert!(
        message.starts_with("command 'false' exited with 1"),
        "{message}"
    );
    assert_eq!(
        post(&admin, &run("nothere/main?cmd=true")).await,
        (404, "pod does not exist".to_string())
    );
    assert_eq!(
        post(&admin, &run("ticker/other?cmd=true")).await,
        (500, "container not found (\"other\")".to_string())
    );

    attach_sees_live_output_and_sends_stdin(&pods, ns.name()).await;
    ns.delete().await;
    drop(node);
}

/// `kubectl attach` shows what the ticker prints from now on; `kubectl attach -i` sends its stdin to `cat`,
/// whose echo comes back, and closing it (stdinOnce) ends the container.
async fn attach_sees_live_output_and_sends_stdin(pods: &Api<Pod>, namespace: &str) {
    running(pods, "echoer").await;
    let mut attach = kubectl_command(&["attach", "-n", namespace, "ticker", "-c", "main"]);
    let mut child = attach.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut ticks = Vec::new();
    while ticks.len() < 2 {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .expect("kubectl attach prints the ticker's lines")
            .unwrap()
            .expect("kubectl attach keeps running");
        if line.starts_with("tick ") {
            ticks.push(line);
        }
    }
    assert_ne!(ticks[0], ticks[1], "consecutive live lines: {ticks:?}");
    child.kill().await.unwrap();

    let mut attach = kubectl_command(&["attach", "-i", "-n", namespace, "echoer", "-c", "main"]);
    attach.stdin(std::process::Stdio::piped());
    let mut child = attach.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello through attach\n").await.unwrap();
    drop(stdin);
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("kubectl attach -i ends when cat ends")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("hello through attach"),
        "stdout {stdout:?}, stderr {:?}",
        String::from_utf8_lossy(&output.stderr)
    );
    eventually(Duration::from_secs(30), "echoer's cat to exit", || async {
        let pod = pods.get("echoer").await.ok()?;
        let status = main_status(&pod)?;
        (status.restart_count > 0
            || status.last_state.and_then(|s| s.terminated).is_some()
            || status.state.and_then(|s| s.terminated).is_some())
        .then_some(())
    })
    .await;
}
