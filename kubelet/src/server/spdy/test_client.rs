//! A raw-frame SPDY client over an in-memory connection, for the tests of the session and its users.

use std::time::Duration;

use tokio::io::{AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};

use super::Session;
use super::frame::{FLAG_FIN, Frame, Headers, MAX_HEADER_BLOCK};
use super::zlib::{HeaderCompressor, HeaderDecompressor};

/// A SPDY client speaking raw frames to a session over an in-memory connection.
pub struct Client {
    read: ReadHalf<DuplexStream>,
    write: WriteHalf<DuplexStream>,
    compressor: HeaderCompressor,
    decompressor: HeaderDecompressor,
}

impl Client {
    pub fn connect() -> (Client, Session) {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let (read, write) = tokio::io::split(ours);
        let client = Client {
            read,
            write,
            compressor: HeaderCompressor::new(),
            decompressor: HeaderDecompressor::new(MAX_HEADER_BLOCK),
        };
        (client, Session::start(theirs))
    }

    pub async fn send(&mut self, frame: Frame) {
        let bytes = frame.encode(&mut self.compressor).unwrap();
        self.write.write_all(&bytes).await.unwrap();
    }

    pub async fn open(&mut self, id: u32, stream_type: &str) {
        self.send(Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            flags: 0,
            headers: Headers::new().with("streamType", stream_type),
        })
        .await;
    }

    pub async fn data(&mut self, id: u32, data: &[u8], fin: bool) {
        self.send(Frame::Data {
            stream_id: id,
            flags: if fin { FLAG_FIN } else { 0 },
            data: data.to_vec(),
        })
        .await;
    }

    pub async fn next(&mut self) -> Option<Frame> {
        tokio::time::timeout(
            Duration::from_secs(5),
            Frame::read(&mut self.read, &mut self.decompressor),
        )
        .await
        .expect("a frame within 5 s")
        .unwrap()
    }

    /// The data the server sends on `id` until its FIN, skipping other frames; `None` at a connection end.
    pub async fn read_stream(&mut self, id: u32) -> Option<Vec<u8>> {
        let mut received = Vec::new();
        loop {
            match self.next().await? {
                Frame::Data {
                    stream_id,
                    flags,
                    data,
                } if stream_id == id => {
                    received.extend(data);
                    if flags & FLAG_FIN != 0 {
                        return Some(received);
                    }
                }
                _ => {}
            }
        }
    }
}
