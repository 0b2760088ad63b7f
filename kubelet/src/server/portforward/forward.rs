//! Serving one port-forward connection (k8s.io/cri-streaming portforward/httpstream.go `httpStreamHandler`
//! with containerd's `portForward` as the forwarder): pair the client's streams, dial the pod's port for
//! each complete pair and copy both ways; failures go to the pair's error stream.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::dial::{Network, dial};
use super::pairs::{Added, Pairs, StreamType, stream_info};
use crate::server::spdy::{Session, StreamReader, StreamWriter};

/// How long a pair's second stream may take (cri-streaming's `DefaultConfig.StreamCreationTimeout`).
pub const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the other direction may go on once one has ended (containerd: "as socat", 1 s).
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// One stream of a pair, split.
struct Half {
    reader: StreamReader,
    writer: StreamWriter,
}

/// What is forwarded where, for messages and dialing.
#[derive(Debug, Clone)]
pub struct Forwarding {
    /// Where the pod's ports are reached.
    pub network: Network,
    /// The pod's sandbox as messages name it (ferrokube's sandboxes are named by the pod UID).
    pub sandbox: String,
}

/// Serves `session` until the client goes away, forwarding each complete pair's connection.
pub async fn serve(mut session: Session, forwarding: Forwarding) {
    let mut pairs: Pairs<Half> = Pairs::default();
    let (expired_tx, mut expired) = mpsc::unbounded_channel::<String>();
    loop {
        tokio::select! {
            stream = session.accept() => {
                let Some(stream) = stream else { break };
                let id = stream.id();
                let info = stream_info(stream.headers(), id);
                let (reader, mut writer) = stream.split();
                let info = match info {
                    Ok(info) => info,
                    Err(message) => {
                        // Upstream rejects such a stream with a reset.
                        tracing::debug!(stream = id, "port-forward: stream rejected: {message}");
                        writer.reset().await;
                        continue;
                    }
                };
                match pairs.add(&info.request_id, info.kind, Half { reader, writer }) {
                    Added::Created => {
                        let expired_tx = expired_tx.clone();
                        let request_id = info.request_id.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(STREAM_CREATION_TIMEOUT).await;
                            let _ = expired_tx.send(request_id);
                        });
                    }
                    Added::Duplicate(mut extra) => {
                        let which = match info.kind {
                            StreamType::Data => "data",
                            StreamType::Error => "error",
                        };
                        let message = format!(
                            "error processing stream for request {}: {which} stream already assigned",
                            info.request_id
                        );
                        if let Some(error) = pairs.error_stream(&info.request_id) {
                            let _ = error.writer.write_all(message.as_bytes()).await;
                        }
                        extra.writer.reset().await;
                    }
                    Added::Complete(data, error) => {
                        tokio::spawn(forward(data, error, forwarding.clone(), info.port));
                    }
                }
            }
            Some(request_id) = expired.recv() => {
                if let Some(error) = pairs.expire(&request_id)
                    && let Some(mut error) = error
                {
                    let message = format!("(request={request_id}) timed out waiting for streams");
                    let _ = error.writer.write_all(message.as_bytes()).await;
                    let _ = error.writer.shutdown().await;
                }
            }
        }
    }
}

/// Forwards one connection to `port`; on failure, upstream's message on the error stream and both reset.
async fn forward(data: Half, mut error: Half, forwarding: Forwarding, port: u16) {
    let Half {
        reader: mut from_client,
        writer: mut to_client,
    } = data;
    match dial(&forwarding.network, &forwarding.sandbox, port).await {
        Err(e) => {
            let message = format!(
                "error forwarding port {port} to pod {}, uid : {e}",
                forwarding.sandbox
            );
            tracing::debug!("port-forward: {message}");
            let _ = error.writer.write_all(message.as_bytes()).await;
            to_client.reset().await;
            error.writer.reset().await;
        }
        Ok(connection) => {
            let (mut from_pod, mut to_pod) = connection.into_split();
            {
                let upstream = tokio::io::copy(&mut from_client, &mut to_pod);
                let downstream = tokio::io::copy(&mut from_pod, &mut to_client);
                tokio::pin!(upstream, downstream);
                tokio::select! {
                    _ = &mut upstream => {
                        let _ = tokio::time::timeout(CLOSE_GRACE, &mut downstream).await;
                    }
                    _ = &mut downstream => {
                        let _ = tokio::time::timeout(CLOSE_GRACE, &mut upstream).await;
                    }
                }
            }
            let _ = to_client.shutdown().await;
            let _ = error.writer.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::spdy::frame::{FLAG_FIN, MAX_HEADER_BLOCK};
    use crate::server::spdy::{Frame, HeaderCompressor, HeaderDecompressor, Headers};
    use tokio::io::{AsyncReadExt, DuplexStream, ReadHalf, WriteHalf};

    /// A port-forward client speaking raw SPDY frames to [`serve`] over an in-memory connection.
    struct Client {
        read: ReadHalf<DuplexStream>,
        write: WriteHalf<DuplexStream>,
        compressor: HeaderCompressor,
        decompressor: HeaderDecompressor,
    }

    impl Client {
        fn start() -> Client {
            let (ours, theirs) = tokio::io::duplex(1 << 16);
            let forwarding = Forwarding {
                network: Network::Host,
                sandbox: "uid-1".to_string(),
            };
            tokio::spawn(serve(Session::start(theirs), forwarding));
            let (read, write) = tokio::io::split(ours);
            Client {
                read,
                write,
                compressor: HeaderCompressor::new(),
                decompressor: HeaderDecompressor::new(MAX_HEADER_BLOCK),
            }
        }

        async fn send(&mut self, frame: Frame) {
            let bytes = frame.encode(&mut self.compressor).unwrap();
            self.write.write_all(&bytes).await.unwrap();
        }

        async fn open(&mut self, id: u32, kind: &str, port: u16, request: &str) {
            let headers = Headers::new()
                .with("streamType", kind)
                .with("port", &port.to_string())
                .with("requestID", request);
            self.send(Frame::SynStream {
                stream_id: id,
                associated_to: 0,
                priority: 0,
                flags: 0,
                headers,
            })
            .await;
        }

        async fn next(&mut self) -> Frame {
            tokio::time::timeout(
                Duration::from_secs(5),
                Frame::read(&mut self.read, &mut self.decompressor),
            )
            .await
            .expect("a frame within 5 s")
            .unwrap()
            .expect("the connection is open")
        }

        /// Frames until `done` says stop, SYN_REPLYs skipped.
        async fn collect(&mut self, mut done: impl FnMut(&[Frame]) -> bool) -> Vec<Frame> {
            let mut frames = Vec::new();
            while !done(&frames) {
                let frame = self.next().await;
                if !matches!(frame, Frame::SynReply { .. }) {
                    frames.push(frame);
                }
            }
            frames
        }
    }

    fn data_of(frames: &[Frame], stream: u32) -> Vec<u8> {
        frames
            .iter()
            .filter_map(|f| match f {
                Frame::Data {
                    stream_id, data, ..
                } if *stream_id == stream => Some(data.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    #[tokio::test]
    async fn a_pair_is_forwarded_both_ways_and_finished() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4];
            socket.read_exact(&mut request).await.unwrap();
            socket.write_all(b"pong:").await.unwrap();
            socket.write_all(&request).await.unwrap();
        });
        let mut client = Client::start();
        client.open(1, "error", port, "0").await;
        client.open(3, "data", port, "0").await;
        client
            .send(Frame::Data {
                stream_id: 3,
                flags: 0,
                data: b"ping".to_vec(),
            })
            .await;
        let frames = client
            .collect(|frames| {
                frames.iter().any(|f| {
                    matches!(f, Frame::Data { stream_id: 3, flags, .. } if flags & FLAG_FIN != 0)
                })
            })
            .await;
        assert_eq!(data_of(&frames, 3), b"pong:ping");
        assert!(data_of(&frames, 1).is_empty(), "{frames:?}");
    }

    #[tokio::test]
    async fn a_refused_port_is_reported_on_the_error_stream_and_both_are_reset() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut client = Client::start();
        client.open(1, "data", port, "7").await;
        client.open(3, "error", port, "7").await;
        let frames = client
            .collect(|frames| {
                frames
                    .iter()
                    .filter(|f| matches!(f, Frame::RstStream { .. }))
                    .count()
                    == 2
            })
            .await;
        let message = String::from_utf8(data_of(&frames, 3)).unwrap();
        assert!(
            message.starts_with(&format!(
                "error forwarding port {port} to pod uid-1, uid : failed to execute portforward in \
                 network namespace \"host\": failed to connect to localhost:{port} inside namespace \
                 \"uid-1\", IPv4: dial tcp4 127.0.0.1:{port}: connect: connection refused IPv6 "
            )),
            "{message}"
        );
    }

    #[tokio::test]
    async fn a_stream_without_a_port_is_reset() {
        let mut client = Client::start();
        client
            .send(Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 0,
                flags: 0,
                headers: Headers::new().with("streamType", "data"),
            })
            .await;
        let frames = client.collect(|frames| !frames.is_empty()).await;
        assert!(
            matches!(frames[0], Frame::RstStream { stream_id: 1, .. }),
            "{frames:?}"
        );
    }
}
