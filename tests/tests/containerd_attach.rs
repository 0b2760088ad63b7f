//! Attaching to a container's own process through ferrokube-kubelet's runtime layer against a real
//! containerd (started by the harness, as root): live output, a stdin FIFO, closing stdin, and a terminal
//! with its size.

use std::collections::HashMap;
use std::time::Duration;

use ferrokube_kubelet::runtime::spec::{self, ContainerSpec, NamespaceMode};
use ferrokube_kubelet::runtime::{Attachment, Stdio};
use ferrokube_tests::runtime::{RuntimeFixture, unique};
use tokio::sync::broadcast::error::RecvError;

/// Creates and starts container `id` running `args` with `stdio`.
async fn run(f: &RuntimeFixture, id: &str, args: &[&str], stdio: Stdio) {
    let spec = spec::build(&ContainerSpec {
        args: args.iter().map(|a| a.to_string()).collect(),
        terminal: stdio.tty,
        env: f.image.env.clone(),
        hostname: Some(id.to_string()),
        network: NamespaceMode::Private,
        no_new_privileges: true,
        ..ContainerSpec::default()
    });
    f.runtime
        .create_container(id, &f.image, &spec, HashMap::new())
        .await
        .unwrap();
    f.runtime.start(id, &f.log(id), stdio).await.unwrap();
}

/// Reads the attachment's stdout until it holds `wanted`, failing after 20 s.
async fn read_until(attachment: &mut Attachment, wanted: &str) -> String {
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while !seen.contains(wanted) {
            match attachment.stdout.recv().await {
                Ok(chunk) => seen.push_str(&String::from_utf8_lossy(&chunk)),
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return false,
            }
        }
        true
    })
    .await;
    assert_eq!(found, Ok(true), "{wanted:?} not in the output: {seen:?}");
    seen
}

#[tokio::test]
async fn an_attacher_sees_live_output_writes_stdin_and_closing_stdin_ends_cat() {
    let f = RuntimeFixture::start("ferrokube-attach-").await;
    let id = unique("cat");
    run(
        &f,
        &id,
        &["cat"],
        Stdio {
            stdin: true,
            tty: false,
        },
    )
    .await;
    let mut attachment = f.runtime.attach(&id).unwrap();
    let stdin = attachment.stdin.clone().expect("created with a stdin");
    stdin.write(b"hello from stdin\n").await.unwrap();
    read_until(&mut attachment, "hello from stdin\n").await;
    // A second attacher gets what comes after it attached.
    let mut second = f.runtime.attach(&id).unwrap();
    stdin.write(b"again\n").await.unwrap();
    read_until(&mut second, "again\n").await;
    f.runtime.close_stdin(&id, &stdin).await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), f.runtime.wait(&id))
        .await
        .expect("cat ends once its stdin is closed")
        .unwrap();
    assert_eq!(exit.code, 0);
    let log = std::fs::read_to_string(f.log(&id)).unwrap();
    assert!(log.contains(" stdout F hello from stdin\n"), "{log}");
    f.runtime.delete(&id).await.unwrap();
    assert!(
        f.runtime.attach(&id).is_err(),
        "a deleted container cannot be attached"
    );
}

#[tokio::test]
async fn a_container_without_stdin_offers_none_and_its_output_is_live() {
    let f = RuntimeFixture::start("ferrokube-attach-").await;
    let id = unique("ticker");
    run(
        &f,
        &id,
        &[
            "sh",
            "-c",
            "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done",
        ],
        Stdio::default(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut attachment = f.runtime.attach(&id).unwrap();
    assert!(attachment.stdin.is_none());
    let seen = read_until(&mut attachment, "tick").await;
    // The attacher gets what comes after it attached, not the output's beginning.
    assert!(!seen.contains("tick 0\n"), "{seen}");
    f.runtime.delete(&id).await.unwrap();
}

#[tokio::test]
async fn a_terminal_container_is_resized_and_echoes_through_its_terminal() {
    let f = RuntimeFixture::start("ferrokube-attach-").await;
    let id = unique("tty");
    run(
        &f,
        &id,
        &["sh"],
        Stdio {
            stdin: true,
            tty: true,
        },
    )
    .await;
    let mut attachment = f.runtime.attach(&id).unwrap();
    let stdin = attachment.stdin.clone().unwrap();
    f.runtime.resize_pty(&id, "", 123, 45).await.unwrap();
    stdin.write(b"stty size; tty\n").await.unwrap();
    let seen = read_until(&mut attachment, "/dev/pts/").await;
    assert!(seen.contains("45 123\r\n"), "{seen:?}");
    stdin.write(b"exit 4\n").await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), f.runtime.wait(&id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(exit.code, 4);
    f.runtime.delete(&id).await.unwrap();
}
