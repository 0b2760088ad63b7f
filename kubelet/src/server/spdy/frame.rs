//! SPDY/3.1 frames on the wire (spdystream's spdy/types.go, read.go, write.go): a control frame is
//! `1|version(15)|type(16)|flags(8)|length(24)` and its payload, a data frame `0|stream(31)|flags(8)|length(24)`
//! and its bytes. Header blocks are zlib-compressed with one stream per direction ([`super::zlib`]).

use tokio::io::{AsyncRead, AsyncReadExt};

use super::zlib::{HeaderCompressor, HeaderDecompressor, ZlibError};

/// The protocol version every control frame carries.
pub const VERSION: u16 = 3;
/// The FIN flag of data frames, SYN_STREAM, SYN_REPLY and HEADERS: the sender sends nothing more.
pub const FLAG_FIN: u8 = 0x01;
/// The UNIDIRECTIONAL flag of SYN_STREAM: the receiver must not send on the stream.
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;
/// The largest payload a frame's 24-bit length can say.
pub const MAX_FRAME_LENGTH: usize = 0x00ff_ffff;
/// The most decompressed header bytes accepted in one block (spdystream allows 1000 fields of 16 MiB;
/// streaming headers are a few short fields).
pub const MAX_HEADER_BLOCK: usize = 1 << 20;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status codes (SPDY/3 §2.4.2).
pub mod rst {
    /// A malformed frame or a stream in the wrong state.
    pub const PROTOCOL_ERROR: u32 = 1;
    /// A frame for a stream that is not open.
    pub const INVALID_STREAM: u32 = 2;
    /// The stream was refused before any processing.
    pub const REFUSED_STREAM: u32 = 3;
    /// The stream is no longer needed (what spdystream's `Reset` sends).
    pub const CANCEL: u32 = 5;
    /// Something failed on the sender's side.
    pub const INTERNAL_ERROR: u32 = 6;
    /// The receiver's buffer for the stream overflowed.
    pub const FLOW_CONTROL_ERROR: u32 = 7;
    /// A SYN_STREAM for a stream ID already open.
    pub const STREAM_IN_USE: u32 = 8;
}

/// A stream's header fields: names lower-cased as on the wire, values split on NUL as spdystream does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// Empty headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `value` under `name` (lower-cased).
    pub fn add(&mut self, name: &str, value: &str) {
        self.0.push((name.to_ascii_lowercase(), value.to_string()));
    }

    /// `self` with `name: value` added.
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.add(name, value);
        self
    }

    /// The first value of `name` (case-insensitive, as Go's `http.Header.Get`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every `(name, value)` pair in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The uncompressed block: a count, then each name with its values joined by NUL.
    fn encode(&self) -> Vec<u8> {
        let mut names: Vec<&str> = Vec::new();
        for (name, _) in &self.0 {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
        let mut block = Vec::new();
        push_u32(&mut block, names.len());
        for name in names {
            let values: Vec<&str> = self
                .0
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect();
            push_bytes(&mut block, name.as_bytes());
            push_bytes(&mut block, values.join("\0").as_bytes());
        }
        block
    }

    fn decode(block: &[u8]) -> Result<Self, FrameError> {
        let mut cursor = Cursor(block);
        let count = cursor.u32()?;
        let mut headers = Headers::new();
        for _ in 0..count {
            let name = cursor.string()?;
            let value = cursor.string()?;
            for value in value.split('\0') {
                headers.add(&name, value);
            }
        }
        if !cursor.0.is_empty() {
            return Err(FrameError::Malformed("bytes after the header block"));
        }
        Ok(headers)
    }
}

/// One SPDY/3.1 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Opens stream `stream_id` (odd from the client).
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        flags: u8,
        headers: Headers,
    },
    /// Accepts stream `stream_id`.
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    /// Aborts a stream.
    RstStream { stream_id: u32, status: u32 },
    /// Connection settings (ignored here, as by spdystream).
    Settings {
        flags: u8,
        entries: Vec<(u8, u32, u32)>,
    },
    /// A liveness check the receiver echoes.
    Ping { id: u32 },
    /// The sender accepts no new streams.
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    /// More headers for a stream.
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    /// Flow control credit (ignored, as by spdystream).
    WindowUpdate { stream_id: u32, delta: u32 },
    /// Stream bytes; `FLAG_FIN` in `flags` half-closes the stream.
    Data {
        stream_id: u32,
        flags: u8,
        data: Vec<u8>,
    },
    /// A control frame of a type SPDY/3.1 does not define, skipped.
    Unknown { frame_type: u16 },
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("reading a frame: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    #[error("a {length}-byte frame is larger than {MAX_FRAME_LENGTH} bytes")]
    TooLong { length: usize },
    #[error("unsupported SPDY version {0}")]
    Version(u16),
    #[error(transparent)]
    Zlib(#[from] ZlibError),
}

impl Frame {
    /// The frame's bytes; header blocks go through `compressor`, so frames must be written in this order.
    pub fn encode(&self, compressor: &mut HeaderCompressor) -> Result<Vec<u8>, FrameError> {
        let mut payload = Vec::new();
        let (frame_type, flags) = match self {
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                check_length(data.len())?;
                let mut out = Vec::with_capacity(8 + data.len());
                push_u32(&mut out, (*stream_id & 0x7fff_ffff) as usize);
                out.extend_from_slice(&flags_and_length(*flags, data.len()));
                out.extend_from_slice(data);
                return Ok(out);
            }
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                flags,
                headers,
            } => {
                push_u32(&mut payload, (*stream_id & 0x7fff_ffff) as usize);
                push_u32(&mut payload, (*associated_to & 0x7fff_ffff) as usize);
                payload.push((*priority & 0x07) << 5);
                payload.push(0); // slot
                payload.extend(compressor.compress(&headers.encode())?);
                (TYPE_SYN_STREAM, *flags)
            }
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            }
            | Frame::Headers {
                stream_id,
                flags,
                headers,
            } => {
                push_u32(&mut payload, (*stream_id & 0x7fff_ffff) as usize);
                payload.extend(compressor.compress(&headers.encode())?);
                let kind = if matches!(self, Frame::SynReply { .. }) {
                    TYPE_SYN_REPLY
                } else {
                    TYPE_HEADERS
                };
                (kind, *flags)
            }
            Frame::RstStream { stream_id, status } => {
                push_u32(&mut payload, (*stream_id & 0x7fff_ffff) as usize);
                push_u32(&mut payload, *status as usize);
                (TYPE_RST_STREAM, 0)
            }
            Frame::Settings { flags, entries } => {
                push_u32(&mut payload, entries.len());
                for (entry_flags, id, value) in entries {
                    push_u32(
                        &mut payload,
                        ((u32::from(*entry_flags) << 24) | (id & 0x00ff_ffff)) as usize,
                    );
                    push_u32(&mut payload, *value as usize);
                }
                (TYPE_SETTINGS, *flags)
            }
            Frame::Ping { id } => {
                push_u32(&mut payload, *id as usize);
                (TYPE_PING, 0)
            }
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                push_u32(&mut payload, (*last_good_stream_id & 0x7fff_ffff) as usize);
                push_u32(&mut payload, *status as usize);
                (TYPE_GOAWAY, 0)
            }
            Frame::WindowUpdate { stream_id, delta } => {
                push_u32(&mut payload, (*stream_id & 0x7fff_ffff) as usize);
                push_u32(&mut payload, (*delta & 0x7fff_ffff) as usize);
                (TYPE_WINDOW_UPDATE, 0)
            }
            Frame::Unknown { .. } => {
                return Err(FrameError::Malformed("unknown frames are not sent"));
            }
        };
        check_length(payload.len())?;
        let mut out = Vec::with_capacity(8 + payload.len());
        out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
        out.extend_from_slice(&frame_type.to_be_bytes());
        out.extend_from_slice(&flags_and_length(flags, payload.len()));
        out.extend(payload);
        Ok(out)
    }

    /// Reads the next frame; header blocks go through `decompressor`, shared by all frames of the connection.
    /// `Ok(None)` is a clean end of the connection between frames.
    pub async fn read<R: AsyncRead + Unpin>(
        reader: &mut R,
        decompressor: &mut HeaderDecompressor,
    ) -> Result<Option<Frame>, FrameError> {
        let mut head = [0u8; 8];
        match reader.read(&mut head[..1]).await? {
            0 => return Ok(None),
            _ => reader.read_exact(&mut head[1..]).await?,
        };
        let length = usize::from(head[5]) << 16 | usize::from(head[6]) << 8 | usize::from(head[7]);
        check_length(length)?;
        let mut payload = vec![0u8; length];
        reader.read_exact(&mut payload).await?;
        Frame::parse(head, payload, decompressor).map(Some)
    }

    /// The frame with 8-byte `head` and its `payload`.
    pub fn parse(
        head: [u8; 8],
        payload: Vec<u8>,
        decompressor: &mut HeaderDecompressor,
    ) -> Result<Frame, FrameError> {
        let flags = head[4];
        if head[0] & 0x80 == 0 {
            let stream_id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            return Ok(Frame::Data {
                stream_id,
                flags,
                data: payload,
            });
        }
        let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
        if version != VERSION {
            return Err(FrameError::Version(version));
        }
        let frame_type = u16::from_be_bytes([head[2], head[3]]);
        let mut cursor = Cursor(&payload);
        let frame = match frame_type {
            TYPE_SYN_STREAM => {
                let stream_id = cursor.stream_id()?;
                let associated_to = cursor.stream_id()?;
                let priority = cursor.take(2)?[0] >> 5;
                Frame::SynStream {
                    stream_id,
                    associated_to,
                    priority,
                    flags,
                    headers: Headers::decode(&decompressor.decompress(cursor.0)?)?,
                }
            }
            TYPE_SYN_REPLY => Frame::SynReply {
                stream_id: cursor.stream_id()?,
                flags,
                headers: Headers::decode(&decompressor.decompress(cursor.rest())?)?,
            },
            TYPE_HEADERS => Frame::Headers {
                stream_id: cursor.stream_id()?,
                flags,
                headers: Headers::decode(&decompressor.decompress(cursor.rest())?)?,
            },
            TYPE_RST_STREAM => Frame::RstStream {
                stream_id: cursor.stream_id()?,
                status: cursor.u32()?,
            },
            TYPE_SETTINGS => {
                let count = cursor.u32()?;
                let mut entries = Vec::new();
                for _ in 0..count {
                    let flag_id = cursor.u32()?;
                    let value = cursor.u32()?;
                    entries.push(((flag_id >> 24) as u8, flag_id & 0x00ff_ffff, value));
                }
                Frame::Settings { flags, entries }
            }
            TYPE_PING => Frame::Ping { id: cursor.u32()? },
            TYPE_GOAWAY => Frame::GoAway {
                last_good_stream_id: cursor.stream_id()?,
                status: cursor.u32()?,
            },
            TYPE_WINDOW_UPDATE => Frame::WindowUpdate {
                stream_id: cursor.stream_id()?,
                delta: cursor.u32()? & 0x7fff_ffff,
            },
            frame_type => return Ok(Frame::Unknown { frame_type }),
        };
        Ok(frame)
    }
}

fn check_length(length: usize) -> Result<(), FrameError> {
    if length > MAX_FRAME_LENGTH {
        return Err(FrameError::TooLong { length });
    }
    Ok(())
}

fn flags_and_length(flags: u8, length: usize) -> [u8; 4] {
    let length = length.to_be_bytes();
    let n = length.len();
    [flags, length[n - 3], length[n - 2], length[n - 1]]
}

/// Appends the low 32 bits of `value` big-endian (callers pass u32 values or checked lengths).
fn push_u32(out: &mut Vec<u8>, value: usize) {
    out.extend_from_slice(&((value & 0xffff_ffff) as u32).to_be_bytes());
}

fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    push_u32(out, bytes.len());
    out.extend_from_slice(bytes);
}

/// Reads big-endian fields off a payload.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        if self.0.len() < n {
            return Err(FrameError::Malformed(
                "the frame is shorter than its fields",
            ));
        }
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }

    fn u32(&mut self) -> Result<u32, FrameError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn stream_id(&mut self) -> Result<u32, FrameError> {
        Ok(self.u32()? & 0x7fff_ffff)
    }

    fn string(&mut self) -> Result<String, FrameError> {
        let length = self.u32()? as usize;
        let bytes = self.take(length)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| FrameError::Malformed("a header field is not UTF-8"))
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.0)
    }
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
