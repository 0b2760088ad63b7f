use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::ReadBuf;

use super::*;

/// What github.com/moby/spdystream@v0.5.1's Framer writes for: SYN_STREAM 1 `streamType: error`,
/// SYN_STREAM 3 `streamType: stdout`, DATA 3 "hi\n" FIN, PING 1, SYN_REPLY 1 with no headers,
/// RST_STREAM 3 CANCEL, GOAWAY 3 OK (generated with Go against the module in the Go module cache).
const SPDYSTREAM_BYTES: &[u8] = &[
    0x80, 0x3, 0x0, 0x1, 0x0, 0x0, 0x0, 0x29, 0x0, 0x0, 0x0, 0x1, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0,
    0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2, 0x62, 0x60, 0x60, 0x60, 0x4, 0xa7, 0xb3, 0x92, 0xa2, 0xd4,
    0xc4, 0x5c, 0x68, 0x51, 0xc2, 0x9a, 0xa, 0xa, 0x68, 0x0, 0x0, 0x0, 0x0, 0xff, 0xff, 0x80, 0x3,
    0x0, 0x1, 0x0, 0x0, 0x0, 0x19, 0x0, 0x0, 0x0, 0x3, 0x0, 0x0, 0x0, 0x0, 0x0, 0x0, 0xc2, 0x2a,
    0xc5, 0x56, 0x5c, 0x92, 0x92, 0x5f, 0x5a, 0x2, 0x0, 0x0, 0x0, 0xff, 0xff, 0x0, 0x0, 0x0, 0x3,
    0x1, 0x0, 0x0, 0x3, 0x68, 0x69, 0xa, 0x80, 0x3, 0x0, 0x6, 0x0, 0x0, 0x0, 0x4, 0x0, 0x0, 0x0,
    0x1, 0x80, 0x3, 0x0, 0x2, 0x0, 0x0, 0x0, 0xe, 0x0, 0x0, 0x0, 0x1, 0x62, 0x60, 0x60, 0x60, 0x0,
    0x0, 0x0, 0x0, 0xff, 0xff, 0x80, 0x3, 0x0, 0x3, 0x0, 0x0, 0x0, 0x8, 0x0, 0x0, 0x0, 0x3, 0x0,
    0x0, 0x0, 0x5, 0x80, 0x3, 0x0, 0x7, 0x0, 0x0, 0x0, 0x8, 0x0, 0x0, 0x0, 0x3, 0x0, 0x0, 0x0, 0x0,
];

fn spdystream_frames() -> Vec<Frame> {
    vec![
        Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 0,
            flags: 0,
            headers: Headers::new().with("streamtype", "error"),
        },
        Frame::SynStream {
            stream_id: 3,
            associated_to: 0,
            priority: 0,
            flags: 0,
            headers: Headers::new().with("streamtype", "stdout"),
        },
        Frame::Data {
            stream_id: 3,
            flags: FLAG_FIN,
            data: b"hi\n".to_vec(),
        },
        Frame::Ping { id: 1 },
        Frame::SynReply {
            stream_id: 1,
            flags: 0,
            headers: Headers::new(),
        },
        Frame::RstStream {
            stream_id: 3,
            status: rst::CANCEL,
        },
        Frame::GoAway {
            last_good_stream_id: 3,
            status: 0,
        },
    ]
}

async fn read_all<R: AsyncRead + Unpin>(mut reader: R) -> Vec<Frame> {
    let mut decompressor = HeaderDecompressor::new(MAX_HEADER_BLOCK);
    let mut frames = Vec::new();
    while let Some(frame) = Frame::read(&mut reader, &mut decompressor).await.unwrap() {
        frames.push(frame);
    }
    frames
}

/// Hands out one byte per read, as a slow connection may.
struct OneByteAtATime<'a>(&'a [u8]);

impl AsyncRead for OneByteAtATime<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some((first, rest)) = self.0.split_first() {
            buf.put_slice(&[*first]);
            self.0 = rest;
        }
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn spdystreams_frames_decode() {
    assert_eq!(read_all(SPDYSTREAM_BYTES).await, spdystream_frames());
}

#[tokio::test]
async fn frames_decode_from_one_byte_reads() {
    assert_eq!(
        read_all(OneByteAtATime(SPDYSTREAM_BYTES)).await,
        spdystream_frames()
    );
}

#[tokio::test]
async fn frames_round_trip() {
    let mut frames = spdystream_frames();
    frames.extend([
        Frame::SynStream {
            stream_id: 5,
            associated_to: 0,
            priority: 7,
            flags: FLAG_FIN | FLAG_UNIDIRECTIONAL,
            headers: Headers::new()
                .with("streamtype", "data")
                .with("port", "8080")
                .with("requestid", "0"),
        },
        Frame::Headers {
            stream_id: 5,
            flags: FLAG_FIN,
            headers: Headers::new().with("a", "1").with("a", "2"),
        },
        Frame::Settings {
            flags: 1,
            entries: vec![(1, 7, 65536), (0, 4, 100)],
        },
        Frame::WindowUpdate {
            stream_id: 5,
            delta: 1000,
        },
        Frame::Data {
            stream_id: 7,
            flags: 0,
            data: vec![0xab; 70_000],
        },
    ]);
    let mut compressor = HeaderCompressor::new();
    let mut bytes = Vec::new();
    for frame in &frames {
        bytes.extend(frame.encode(&mut compressor).unwrap());
    }
    assert_eq!(read_all(bytes.as_slice()).await, frames);
}

#[tokio::test]
async fn our_frames_are_spdystreams_bytes() {
    let mut compressor = HeaderCompressor::new();
    let mut bytes = Vec::new();
    for frame in &spdystream_frames() {
        bytes.extend(frame.encode(&mut compressor).unwrap());
    }
    // Byte for byte but the zlib header's level hint: spdystream asks Go for best compression, whose
    // deflate output for these blocks is zlib's default level's.
    const ZLIB_FLG: usize = 19;
    assert_eq!(bytes[ZLIB_FLG], 0xbb);
    bytes[ZLIB_FLG] = 0xf9;
    assert_eq!(bytes, SPDYSTREAM_BYTES);
}

#[tokio::test]
async fn a_connection_cut_mid_frame_is_an_error_and_between_frames_an_end() {
    let mut decompressor = HeaderDecompressor::new(MAX_HEADER_BLOCK);
    let mut cut = &SPDYSTREAM_BYTES[..20];
    assert!(matches!(
        Frame::read(&mut cut, &mut decompressor).await,
        Err(FrameError::Io(_))
    ));
    let mut empty: &[u8] = &[];
    assert!(
        Frame::read(&mut empty, &mut decompressor)
            .await
            .unwrap()
            .is_none()
    );
}

#[test]
fn other_versions_and_short_frames_are_refused() {
    let mut decompressor = HeaderDecompressor::new(MAX_HEADER_BLOCK);
    let spdy2 = [0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4];
    assert!(matches!(
        Frame::parse(spdy2, vec![0, 0, 0, 1], &mut decompressor),
        Err(FrameError::Version(2))
    ));
    let short_rst = [0x80, 0x03, 0x00, 0x03, 0, 0, 0, 4];
    assert!(matches!(
        Frame::parse(short_rst, vec![0, 0, 0, 1], &mut decompressor),
        Err(FrameError::Malformed(_))
    ));
    let unknown = [0x80, 0x03, 0x00, 0x0a, 0, 0, 0, 0];
    assert_eq!(
        Frame::parse(unknown, vec![], &mut decompressor).unwrap(),
        Frame::Unknown { frame_type: 10 }
    );
}

#[test]
fn header_values_split_on_nul_and_names_compare_without_case() {
    let headers = Headers::decode(b"\0\0\0\x01\0\0\0\x01a\0\0\0\x031\x002").unwrap();
    assert_eq!(headers.iter().collect::<Vec<_>>(), [("a", "1"), ("a", "2")]);
    let headers = Headers::new().with("streamType", "stdin");
    assert_eq!(headers.get("STREAMTYPE"), Some("stdin"));
    assert_eq!(headers.get("port"), None);
}
