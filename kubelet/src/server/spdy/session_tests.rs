use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::*;
use crate::server::spdy::test_client::Client;

async fn accept(session: &mut Session) -> Stream {
    tokio::time::timeout(Duration::from_secs(5), session.accept())
        .await
        .expect("a stream within 5 s")
        .expect("a stream")
}

fn reply(id: u32) -> Frame {
    Frame::SynReply {
        stream_id: id,
        flags: 0,
        headers: Headers::new(),
    }
}

#[tokio::test]
async fn streams_are_replied_to_and_carry_bytes_both_ways() {
    let (mut client, mut session) = Client::connect();
    client.open(1, "stdin").await;
    client.open(3, "stdout").await;
    let stdin = accept(&mut session).await;
    let stdout = accept(&mut session).await;
    assert_eq!(stdin.headers().get("streamtype"), Some("stdin"));
    assert_eq!((stdin.id(), stdout.id()), (1, 3));
    assert_eq!(client.next().await, Some(reply(1)));
    assert_eq!(client.next().await, Some(reply(3)));

    client.data(1, b"hello ", false).await;
    client.data(1, b"world", true).await;
    let (mut reader, _) = stdin.split();
    let mut input = String::new();
    reader.read_to_string(&mut input).await.unwrap();
    assert_eq!(input, "hello world");

    let (_, mut writer) = stdout.split();
    writer.write_all(b"out").await.unwrap();
    writer.shutdown().await.unwrap();
    assert!(writer.write_all(b"late").await.is_err());
    assert_eq!(
        client.next().await,
        Some(Frame::Data {
            stream_id: 3,
            flags: 0,
            data: b"out".to_vec()
        })
    );
    assert_eq!(
        client.next().await,
        Some(Frame::Data {
            stream_id: 3,
            flags: FLAG_FIN,
            data: vec![]
        })
    );
}

#[tokio::test]
async fn large_writes_are_split_into_frames() {
    let (mut client, mut session) = Client::connect();
    client.open(1, "stdout").await;
    let (_, mut writer) = accept(&mut session).await.split();
    assert_eq!(client.next().await, Some(reply(1)));
    let sent = (0..100_000u32).map(|i| i as u8).collect::<Vec<_>>();
    let expected = sent.clone();
    tokio::spawn(async move {
        writer.write_all(&sent).await.unwrap();
        writer.shutdown().await.unwrap();
    });
    let mut received = Vec::new();
    loop {
        match client.next().await {
            Some(Frame::Data { data, flags, .. }) => {
                assert!(data.len() <= MAX_DATA_CHUNK);
                received.extend(data);
                if flags & FLAG_FIN != 0 {
                    break;
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(received, expected);
}

#[tokio::test]
async fn client_pings_are_echoed() {
    let (mut client, _session) = Client::connect();
    client.send(Frame::Ping { id: 7 }).await;
    assert_eq!(client.next().await, Some(Frame::Ping { id: 7 }));
}

#[tokio::test]
async fn resets_end_the_stream_on_both_sides() {
    let (mut client, mut session) = Client::connect();
    client.open(1, "data").await;
    client.open(3, "error").await;
    let (mut reader, mut writer) = accept(&mut session).await.split();
    let (_, mut ours) = accept(&mut session).await.split();
    client.next().await;
    client.next().await;

    client
        .send(Frame::RstStream {
            stream_id: 1,
            status: rst::CANCEL,
        })
        .await;
    tokio::time::timeout(Duration::from_secs(5), writer.was_reset())
        .await
        .unwrap();
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    assert_eq!(
        writer.write_all(b"x").await.unwrap_err().kind(),
        io::ErrorKind::ConnectionReset
    );

    ours.reset().await;
    assert_eq!(
        client.next().await,
        Some(Frame::RstStream {
            stream_id: 3,
            status: rst::CANCEL
        })
    );
}

#[tokio::test]
async fn close_sends_goaway_after_queued_data() {
    let (mut client, mut session) = Client::connect();
    client.open(1, "stdout").await;
    client.open(3, "error").await;
    let (_, mut writer) = accept(&mut session).await.split();
    writer.write_all(b"last words").await.unwrap();
    session.handle().close().await;
    assert_eq!(client.next().await, Some(reply(1)));
    assert_eq!(client.next().await, Some(reply(3)));
    assert!(matches!(client.next().await, Some(Frame::Data { .. })));
    assert_eq!(
        client.next().await,
        Some(Frame::GoAway {
            last_good_stream_id: 3,
            status: 0
        })
    );
    assert_eq!(client.next().await, None);
    assert!(session.handle().is_closed());
}

#[tokio::test]
async fn a_client_going_away_ends_the_session_and_its_streams() {
    let (mut client, mut session) = Client::connect();
    client.open(1, "stdin").await;
    let (mut reader, _writer) = accept(&mut session).await.split();
    let handle = session.handle();
    drop(client);
    tokio::time::timeout(Duration::from_secs(5), handle.closed())
        .await
        .unwrap();
    let mut rest = Vec::new();
    reader.read_to_end(&mut rest).await.unwrap();
    assert!(session.accept().await.is_none());
}

#[tokio::test]
async fn invalid_stream_ids_are_refused() {
    let (mut client, _session) = Client::connect();
    client.open(2, "stdin").await;
    assert_eq!(
        client.next().await,
        Some(Frame::RstStream {
            stream_id: 2,
            status: rst::PROTOCOL_ERROR
        })
    );
}

#[tokio::test]
async fn streams_opened_after_the_session_is_dropped_are_refused() {
    let (mut client, session) = Client::connect();
    let handle = session.handle();
    drop(session);
    client.open(1, "data").await;
    assert_eq!(client.next().await, Some(reply(1)));
    assert_eq!(
        client.next().await,
        Some(Frame::RstStream {
            stream_id: 1,
            status: rst::REFUSED_STREAM
        })
    );
    drop(handle);
    assert!(matches!(client.next().await, Some(Frame::GoAway { .. })));
}
