use std::sync::{Arc, Mutex};

use tokio::io::DuplexStream;
use tokio::sync::Notify;

use super::*;
use crate::server::spdy::frame::{FLAG_FIN, Frame, rst};
use crate::server::spdy::test_client::Client;

#[test]
fn options_come_from_the_query() {
    let options = parse_options(Some("command=sh&input=1&output=1&error=1&tty=1")).unwrap();
    assert_eq!(
        options,
        StdioOptions {
            stdin: true,
            stdout: true,
            stderr: false,
            tty: true
        }
    );
    let options = parse_options(Some("output=1&error=true")).unwrap();
    assert!(options.stdout && !options.stderr && !options.stdin && !options.tty);
    assert_eq!(
        parse_options(Some("command=ls&tty=1")).unwrap_err(),
        "you must specify at least 1 of stdin, stdout, stderr"
    );
    assert!(parse_options(None).is_err());
    // The first value counts, as Go's FormValue.
    assert!(parse_options(Some("output=0&output=1")).is_err());
}

#[test]
fn query_pairs_are_percent_decoded() {
    let pairs: Vec<_> = url_pairs("command=sh&command=-c&command=exit%203&x=a+b&bad=%zz").collect();
    assert_eq!(pairs[2], ("command".to_string(), "exit 3".to_string()));
    assert_eq!(pairs[3].1, "a b");
    assert_eq!(pairs[4].1, "%zz");
}

#[test]
fn resize_events_are_json_objects_back_to_back() {
    let mut buffer = br#"{"Width":80,"Height":24}{"Width":100,"#.to_vec();
    assert_eq!(
        take_sizes(&mut buffer).unwrap(),
        [TerminalSize {
            width: 80,
            height: 24
        }]
    );
    buffer.extend_from_slice(br#""Height":50}"#);
    assert_eq!(
        take_sizes(&mut buffer).unwrap(),
        [TerminalSize {
            width: 100,
            height: 50
        }]
    );
    assert!(buffer.is_empty());
    assert!(take_sizes(&mut b"not json".to_vec()).is_err());
}

#[test]
fn protocols_by_name() {
    assert_eq!(Protocol::from_name("v4.channel.k8s.io"), Some(Protocol::V4));
    assert_eq!(Protocol::from_name("channel.k8s.io"), Some(Protocol::V1));
    assert_eq!(Protocol::from_name("v5.channel.k8s.io"), None);
}

/// A process that echoes its stdin to stdout and exits with `code` once stdin closed.
#[derive(Clone)]
struct Echo {
    code: u32,
    stdin_closed: Arc<Notify>,
    resizes: Arc<Mutex<Vec<TerminalSize>>>,
    aborted: Arc<Notify>,
}

impl Echo {
    fn new(code: u32) -> Self {
        Echo {
            code,
            stdin_closed: Arc::default(),
            resizes: Arc::default(),
            aborted: Arc::default(),
        }
    }

    /// The process's stdio: stdin → (pipe) → stdout, stderr says "err".
    fn io(&self) -> ProcessIo {
        let (stdin, stdout): (DuplexStream, DuplexStream) = tokio::io::duplex(1024);
        ProcessIo {
            stdin: Some(Box::new(stdin)),
            stdout: Some(Box::new(stdout)),
            stderr: Some(Box::new(&b"err"[..])),
        }
    }
}

impl Process for Echo {
    async fn resize(&self, size: TerminalSize) {
        self.resizes.lock().unwrap().push(size);
    }

    async fn close_stdin(&self) {
        self.stdin_closed.notify_one();
    }

    async fn wait(&self) -> Outcome {
        self.stdin_closed.notified().await;
        Outcome::Exited {
            code: self.code,
            command: vec!["cat".to_string()],
        }
    }

    async fn abort(&self) {
        self.aborted.notify_one();
    }
}

fn all_stdio() -> StdioOptions {
    StdioOptions {
        stdin: true,
        stdout: true,
        stderr: true,
        tty: false,
    }
}

async fn open_exec_streams(client: &mut Client) {
    for (id, stream_type) in [(1, "error"), (3, "stdin"), (5, "stdout"), (7, "stderr")] {
        client.open(id, stream_type).await;
    }
}

#[tokio::test]
async fn v4_runs_the_streams_and_ends_with_the_exit_status() {
    let (mut client, session) = Client::connect();
    open_exec_streams(&mut client).await;
    let streams = Streams::collect(session, Protocol::V4, all_stdio(), STREAM_CREATION_TIMEOUT)
        .await
        .unwrap();
    let process = Echo::new(3);
    let server = tokio::spawn(streams.serve(process.io(), process.clone()));
    client.data(3, b"hello", true).await;

    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut error = Vec::new();
    let mut events = Vec::new();
    let mut goaway = false;
    while let Some(frame) = client.next().await {
        match frame {
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                if !data.is_empty() {
                    events.push(("data", stream_id));
                }
                match stream_id {
                    5 => stdout.extend(data),
                    7 => stderr.extend(data),
                    1 => error.extend(data),
                    3 => assert!(data.is_empty(), "data on stdin"),
                    other => panic!("data on stream {other}"),
                }
                if flags & FLAG_FIN != 0 {
                    events.push(("fin", stream_id));
                }
            }
            Frame::GoAway { .. } => goaway = true,
            _ => {}
        }
    }
    assert_eq!(stdout, b"hello");
    assert_eq!(stderr, b"err");
    let status: serde_json::Value = serde_json::from_slice(&error).unwrap();
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "3");
    // The output ends before the status is written (the client reads it to the end first), and every
    // stream is finished before GOAWAY.
    let at = |event| events.iter().position(|e| *e == event).unwrap();
    assert!(at(("fin", 5)) < at(("data", 1)));
    assert!(at(("fin", 7)) < at(("data", 1)));
    assert!(at(("data", 1)) < at(("fin", 1)));
    at(("fin", 3));
    assert!(goaway);
    assert!(matches!(
        server.await.unwrap(),
        Some(Outcome::Exited { code: 3, .. })
    ));
}

#[tokio::test]
async fn a_terminal_gets_the_resize_stream_and_its_sizes() {
    let (mut client, session) = Client::connect();
    for (id, stream_type) in [(1, "error"), (3, "stdin"), (5, "stdout"), (7, "resize")] {
        client.open(id, stream_type).await;
    }
    let options = StdioOptions {
        stdin: true,
        stdout: true,
        stderr: false,
        tty: true,
    };
    let streams = Streams::collect(session, Protocol::V4, options, STREAM_CREATION_TIMEOUT)
        .await
        .unwrap();
    let process = Echo::new(0);
    let server = tokio::spawn(streams.serve(process.io(), process.clone()));
    client
        .data(
            7,
            br#"{"Width":120,"Height":40}{"Width":80,"Height":24}"#,
            false,
        )
        .await;
    // The resizes are applied before stdin is closed, since the stdin FIN comes after them.
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.data(3, b"", true).await;
    let status = client.read_stream(1).await.unwrap();
    assert_eq!(status, br#"{"status":"Success"}"#);
    server.await.unwrap();
    assert_eq!(
        *process.resizes.lock().unwrap(),
        [
            TerminalSize {
                width: 120,
                height: 40
            },
            TerminalSize {
                width: 80,
                height: 24
            }
        ]
    );
}

#[tokio::test]
async fn a_client_going_away_aborts_the_process() {
    let (mut client, session) = Client::connect();
    open_exec_streams(&mut client).await;
    let streams = Streams::collect(session, Protocol::V4, all_stdio(), STREAM_CREATION_TIMEOUT)
        .await
        .unwrap();
    let process = Echo::new(0);
    let aborted = process.aborted.clone();
    let server = tokio::spawn(streams.serve(process.io(), process.clone()));
    drop(client);
    tokio::time::timeout(Duration::from_secs(5), aborted.notified())
        .await
        .expect("aborted");
    assert_eq!(server.await.unwrap(), None);
}

#[tokio::test]
async fn missing_streams_time_out() {
    let (mut client, session) = Client::connect();
    client.open(1, "error").await;
    let collected = Streams::collect(
        session,
        Protocol::V4,
        all_stdio(),
        Duration::from_millis(200),
    );
    assert!(matches!(collected.await, Err(CollectError::Timeout)));
}

#[tokio::test]
async fn v1_resets_the_error_stream_and_v2_sends_failures_as_text() {
    let (mut client, session) = Client::connect();
    client.open(1, "error").await;
    client.open(3, "stdout").await;
    let options = StdioOptions {
        stdout: true,
        ..StdioOptions::default()
    };
    let streams = Streams::collect(session, Protocol::V1, options, STREAM_CREATION_TIMEOUT)
        .await
        .unwrap();
    let mut reset = false;
    while let Some(frame) = client.next().await {
        if frame
            == (Frame::RstStream {
                stream_id: 1,
                status: rst::CANCEL,
            })
        {
            reset = true;
            break;
        }
    }
    assert!(reset);
    drop(streams);

    let (mut client, session) = Client::connect();
    client.open(1, "error").await;
    client.open(3, "stdout").await;
    let streams = Streams::collect(session, Protocol::V2, options, STREAM_CREATION_TIMEOUT)
        .await
        .unwrap();
    streams
        .finish(&Outcome::Failed("no such process".to_string()))
        .await;
    assert_eq!(
        client.read_stream(1).await.unwrap(),
        b"Internal error occurred: error executing command in container: no such process"
    );
}
