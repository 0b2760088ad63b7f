//! The remote command protocol of exec and attach over SPDY (k8s.io/cri-streaming remotecommand,
//! `channel.k8s.io` v1 to v4): the stdio the query asks for, the client's streams told apart by their
//! `streamType` header, terminal resizes, and the status on the error stream at the end.

mod serve;
mod status;

use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::spdy::{Session, SessionHandle, StreamReader, StreamWriter};
use crate::runtime::StdioOptions;

pub use serve::{Process, ProcessIo};
pub use status::Outcome;

/// The protocols served over SPDY, in upstream's order (`SupportedStreamingProtocols`).
pub const SUPPORTED_PROTOCOLS: [&str; 4] = [
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];
/// How long the client gets to open its streams (`DefaultStreamCreationTimeout`).
pub const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);

/// A version of the remote command protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `channel.k8s.io`: no resize, no error stream in practice.
    V1,
    /// `v2.channel.k8s.io`: errors as text.
    V2,
    /// `v3.channel.k8s.io`: adds terminal resizing.
    V3,
    /// `v4.channel.k8s.io`: adds a JSON status with the exit code.
    V4,
}

impl Protocol {
    /// The protocol a negotiated name stands for.
    pub fn from_name(name: &str) -> Option<Protocol> {
        match name {
            "v4.channel.k8s.io" => Some(Protocol::V4),
            "v3.channel.k8s.io" => Some(Protocol::V3),
            "v2.channel.k8s.io" => Some(Protocol::V2),
            "channel.k8s.io" | "" => Some(Protocol::V1),
            _ => None,
        }
    }

    fn supports_resize(self) -> bool {
        matches!(self, Protocol::V3 | Protocol::V4)
    }
}

/// The stdio a request asks for (`NewOptions`): `input`, `output`, `error`, `tty` set to `1`; a terminal has
/// no separate stderr. Without any of stdin, stdout, stderr the answer is upstream's 400 message.
pub fn parse_options(query: Option<&str>) -> Result<StdioOptions, &'static str> {
    // Go's FormValue reads the first value only.
    let on = |name: &str| {
        url_pairs(query.unwrap_or_default())
            .find(|(key, _)| key == name)
            .is_some_and(|(_, value)| value == "1")
    };
    let tty = on("tty");
    let options = StdioOptions {
        stdin: on("input"),
        stdout: on("output"),
        stderr: on("error") && !tty,
        tty,
    };
    if !options.stdin && !options.stdout && !options.stderr {
        return Err("you must specify at least 1 of stdin, stdout, stderr");
    }
    Ok(options)
}

/// The query's `key=value` pairs, percent-decoded.
pub fn url_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key), percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[i], escaped) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 2;
            }
            (byte, _) => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A terminal size as the client sends it (`TerminalSize`, no JSON tags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct TerminalSize {
    /// Columns.
    #[serde(rename = "Width")]
    pub width: u16,
    /// Rows.
    #[serde(rename = "Height")]
    pub height: u16,
}

/// The complete sizes at the front of `buffer` (JSON objects back to back), removed from it; a partial one
/// stays for the next read. `Err` when the stream is not JSON sizes, which ends resizing as upstream's decoder.
pub fn take_sizes(buffer: &mut Vec<u8>) -> Result<Vec<TerminalSize>, serde_json::Error> {
    let mut sizes = Vec::new();
    let mut consumed = 0;
    let mut stream = serde_json::Deserializer::from_slice(buffer).into_iter::<TerminalSize>();
    let result = loop {
        match stream.next() {
            Some(Ok(size)) => {
                sizes.push(size);
                consumed = stream.byte_offset();
            }
            Some(Err(e)) if e.is_eof() => break Ok(()),
            Some(Err(e)) => break Err(e),
            None => break Ok(()),
        }
    };
    buffer.drain(..consumed);
    result.map(|()| sizes)
}

/// Why the client's streams did not all come.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("timed out waiting for client to create streams")]
    Timeout,
    #[error("the connection ended before the client created its streams")]
    Closed,
}

/// The client's streams for one remote command.
pub struct Streams {
    protocol: Protocol,
    session: SessionHandle,
    error: Option<StreamWriter>,
    stdin: Option<StreamReader>,
    stdout: Option<StreamWriter>,
    stderr: Option<StreamWriter>,
    resize: Option<StreamReader>,
    /// The halves not used, kept so the streams stay open until the end.
    unused: Vec<StreamWriter>,
}

impl Streams {
    /// Waits up to `timeout` for the streams `options` call for (`waitForStreams`): the error stream, one per
    /// stdio, and the resize stream with a terminal from v3 on. Streams of other types are ignored.
    pub async fn collect(
        mut session: Session,
        protocol: Protocol,
        options: StdioOptions,
        timeout: Duration,
    ) -> Result<Streams, CollectError> {
        let expected = 1
            + usize::from(options.stdin)
            + usize::from(options.stdout)
            + usize::from(options.stderr)
            + usize::from(options.tty && protocol.supports_resize());
        let mut streams = Streams {
            protocol,
            session: session.handle(),
            error: None,
            stdin: None,
            stdout: None,
            stderr: None,
            resize: None,
            unused: Vec::new(),
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut received = 0;
        while received < expected {
            let stream = tokio::time::timeout_at(deadline, session.accept())
                .await
                .map_err(|_| CollectError::Timeout)?
                .ok_or(CollectError::Closed)?;
            let stream_type = stream.headers().get("streamType").unwrap_or_default();
            let stream_type = stream_type.to_string();
            let (reader, writer) = stream.split();
            match stream_type.as_str() {
                "error" => streams.error = Some(writer),
                "stdin" => {
                    streams.stdin = Some(reader);
                    streams.unused.push(writer);
                }
                "stdout" => streams.stdout = Some(writer),
                "stderr" => streams.stderr = Some(writer),
                "resize" if protocol.supports_resize() => {
                    streams.resize = Some(reader);
                    streams.unused.push(writer);
                }
                other => {
                    tracing::debug!(stream_type = other, "remotecommand: unexpected stream type");
                    streams.unused.push(writer);
                    continue;
                }
            }
            received += 1;
        }
        if protocol == Protocol::V1 {
            // v1 kubelets reset the error stream and closed their side of stdin once the streams were there.
            if let Some(mut error) = streams.error.take() {
                error.reset().await;
            }
            for writer in &mut streams.unused {
                let _ = writer.shutdown().await;
            }
        }
        Ok(streams)
    }

    /// The negotiated protocol.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The session, e.g. to notice the client going away.
    pub fn session(&self) -> &SessionHandle {
        &self.session
    }

    /// Writes `outcome` on the error stream and closes everything (status first, then FINs, then GOAWAY).
    pub async fn finish(mut self, outcome: &Outcome) {
        if let Some(mut error) = self.error.take() {
            if let Some(bytes) = outcome.error_stream_bytes(self.protocol) {
                let _ = error.write_all(&bytes).await;
            }
            let _ = error.shutdown().await;
        }
        for writer in [self.stdout.take(), self.stderr.take()]
            .into_iter()
            .flatten()
            .chain(self.unused.drain(..))
        {
            let mut writer = writer;
            let _ = writer.shutdown().await;
        }
        self.session.close().await;
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
