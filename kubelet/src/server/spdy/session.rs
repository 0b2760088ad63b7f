//! A server-side SPDY/3.1 connection (spdystream's `Connection.Serve` as k8s.io/streaming uses it): one task
//! reads frames and routes them, one writes; each stream the client opens is answered with an empty
//! SYN_REPLY and handed to the handler as a [`Stream`] (headers, an `AsyncRead` half, an `AsyncWrite` half).
//!
//! There is no flow control, as in spdystream (WINDOW_UPDATE and SETTINGS are ignored): a stream whose
//! reader falls behind holds up the connection's reading, which is TCP's backpressure on the client.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, PollSender};

use super::frame::{FLAG_FIN, Frame, Headers, MAX_HEADER_BLOCK, rst};
use super::zlib::{HeaderCompressor, HeaderDecompressor};

/// The most bytes one data frame carries (spdystream splits writes the same way).
const MAX_DATA_CHUNK: usize = 32 * 1024;
/// Data frames buffered per stream before the connection's reading waits for the stream's reader.
const STREAM_BUFFER: usize = 16;
/// Frames queued for the writer.
const OUTGOING_BUFFER: usize = 64;
/// Streams opened by the client that the handler has not accepted yet.
const INCOMING_BUFFER: usize = 16;

/// What the writer task is asked to do.
enum Outgoing {
    Frame(Frame),
    /// Send GOAWAY and close the connection after everything queued before.
    Close,
}

/// The state of one stream the reader routes frames to.
struct StreamEntry {
    /// Where the client's data goes; `None` once the client half-closed.
    data: Option<mpsc::Sender<Vec<u8>>>,
    /// Cancelled when either side resets the stream.
    reset: CancellationToken,
}

/// What the reader, the writer and the handles share.
struct Shared {
    streams: Mutex<HashMap<u32, StreamEntry>>,
    /// The highest stream ID the client opened (GOAWAY's last-good stream).
    last_stream_id: AtomicU32,
    /// Cancelled when the connection is over: the client went away, sent GOAWAY, or we closed it.
    closed: CancellationToken,
}

impl Shared {
    fn remove(&self, id: u32) -> Option<StreamEntry> {
        self.streams.lock().ok()?.remove(&id)
    }
}

/// A SPDY server connection: the streams the client opens, in order, and control over the connection.
pub struct Session {
    incoming: mpsc::Receiver<Stream>,
    handle: SessionHandle,
}

/// A cheap, cloneable control of a session: reset streams, close the connection, notice its end.
/// The connection closes (GOAWAY) once the [`Session`], every handle and every stream writer are dropped.
#[derive(Clone)]
pub struct SessionHandle {
    outgoing: mpsc::Sender<Outgoing>,
    shared: Arc<Shared>,
}

impl Session {
    /// Serves SPDY on `io` (the upgraded connection) from a task of its own.
    pub fn start<T>(io: T) -> Session
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (outgoing, outgoing_rx) = mpsc::channel(OUTGOING_BUFFER);
        let (incoming_tx, incoming) = mpsc::channel(INCOMING_BUFFER);
        let shared = Arc::new(Shared {
            streams: Mutex::default(),
            last_stream_id: AtomicU32::new(0),
            closed: CancellationToken::new(),
        });
        let handle = SessionHandle {
            outgoing: outgoing.clone(),
            shared: shared.clone(),
        };
        let router = Router {
            shared: shared.clone(),
            outgoing: outgoing.downgrade(),
            incoming: incoming_tx,
        };
        drop(outgoing);
        tokio::spawn(async move {
            let (read, write) = tokio::io::split(io);
            tokio::select! {
                () = router.run(read) => {}
                () = write_frames(write, outgoing_rx, &shared) => {}
            }
            if let Ok(mut streams) = shared.streams.lock() {
                streams.clear();
            }
            shared.closed.cancel();
        });
        Session { incoming, handle }
    }

    /// The next stream the client opened (already replied to), or `None` once the connection is over.
    pub async fn accept(&mut self) -> Option<Stream> {
        tokio::select! {
            stream = self.incoming.recv() => stream,
            () = self.handle.shared.closed.cancelled() => self.incoming.try_recv().ok(),
        }
    }

    /// A handle on the connection; streams opened after the session is dropped are refused.
    pub fn handle(&self) -> SessionHandle {
        self.handle.clone()
    }
}

impl SessionHandle {
    /// Resets stream `id` (RST_STREAM CANCEL, as spdystream's `Stream.Reset`): its reader ends, its writer fails.
    pub async fn reset(&self, id: u32) {
        if let Some(entry) = self.shared.remove(id) {
            entry.reset.cancel();
        }
        let _ = self
            .outgoing
            .send(Outgoing::Frame(Frame::RstStream {
                stream_id: id,
                status: rst::CANCEL,
            }))
            .await;
    }

    /// Sends GOAWAY after everything already written and closes the connection; returns once it is closed.
    pub async fn close(&self) {
        let _ = self.outgoing.send(Outgoing::Close).await;
        self.shared.closed.cancelled().await;
    }

    /// Resolves when the connection is over (the client went away or sent GOAWAY, or it was closed).
    pub async fn closed(&self) {
        self.shared.closed.cancelled().await;
    }

    /// Whether the connection is over.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.is_cancelled()
    }
}

/// Reads the client's frames and routes them.
struct Router {
    shared: Arc<Shared>,
    /// Weak, so the connection closes once the handler dropped every sender.
    outgoing: mpsc::WeakSender<Outgoing>,
    incoming: mpsc::Sender<Stream>,
}

impl Router {
    async fn run<R: AsyncRead + Unpin>(self, mut read: R) {
        let mut decompressor = HeaderDecompressor::new(MAX_HEADER_BLOCK);
        loop {
            let frame = match Frame::read(&mut read, &mut decompressor).await {
                Ok(Some(frame)) => frame,
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "spdy: reading the connection");
                    return;
                }
            };
            match frame {
                Frame::SynStream {
                    stream_id,
                    flags,
                    headers,
                    ..
                } => self.open(stream_id, flags, headers).await,
                Frame::Data {
                    stream_id,
                    flags,
                    data,
                } => self.data(stream_id, flags, data).await,
                Frame::RstStream { stream_id, .. } => {
                    if let Some(entry) = self.shared.remove(stream_id) {
                        entry.reset.cancel();
                    }
                }
                // Only the client's pings (odd IDs) are echoed; even ones would be answers to ours.
                Frame::Ping { id } if !id.is_multiple_of(2) => self.send(Frame::Ping { id }).await,
                Frame::GoAway { .. } => return,
                Frame::Headers { stream_id, .. } | Frame::SynReply { stream_id, .. } => {
                    tracing::debug!(stream_id, "spdy: ignoring headers for a stream");
                }
                Frame::Ping { .. }
                | Frame::Settings { .. }
                | Frame::WindowUpdate { .. }
                | Frame::Unknown { .. } => {}
            }
        }
    }

    async fn open(&self, id: u32, flags: u8, headers: Headers) {
        let last = self.shared.last_stream_id.load(Ordering::Relaxed);
        // Client streams are odd and increasing (spdystream's validateStreamId).
        if id.is_multiple_of(2) || id <= last {
            self.send(Frame::RstStream {
                stream_id: id,
                status: rst::PROTOCOL_ERROR,
            })
            .await;
            return;
        }
        self.shared.last_stream_id.store(id, Ordering::Relaxed);
        let Some(outgoing) = self.outgoing.upgrade() else {
            return;
        };
        let (data_tx, data_rx) = mpsc::channel(STREAM_BUFFER);
        let reset = CancellationToken::new();
        let entry = StreamEntry {
            data: (flags & FLAG_FIN == 0).then_some(data_tx),
            reset: reset.clone(),
        };
        if let Ok(mut streams) = self.shared.streams.lock() {
            streams.insert(id, entry);
        }
        let handle = SessionHandle {
            outgoing: outgoing.clone(),
            shared: self.shared.clone(),
        };
        let stream = Stream {
            id,
            headers,
            reader: StreamReader {
                data: data_rx,
                pending: Vec::new(),
                offset: 0,
            },
            writer: StreamWriter {
                id,
                sender: PollSender::new(outgoing),
                reset,
                finished: false,
                session: handle,
            },
        };
        self.send(Frame::SynReply {
            stream_id: id,
            flags: 0,
            headers: Headers::new(),
        })
        .await;
        if self.incoming.send(stream).await.is_err() {
            self.shared.remove(id);
            self.send(Frame::RstStream {
                stream_id: id,
                status: rst::REFUSED_STREAM,
            })
            .await;
        }
    }

    async fn data(&self, id: u32, flags: u8, data: Vec<u8>) {
        let sender = self
            .shared
            .streams
            .lock()
            .ok()
            .and_then(|streams| streams.get(&id).and_then(|entry| entry.data.clone()));
        // Data for a stream that is gone or half-closed is dropped, as spdystream does.
        let Some(sender) = sender else {
            return;
        };
        if !data.is_empty() {
            // A handler that dropped the reader does not want the bytes.
            let _ = sender.send(data).await;
        }
        if flags & FLAG_FIN != 0
            && let Ok(mut streams) = self.shared.streams.lock()
            && let Some(entry) = streams.get_mut(&id)
        {
            entry.data = None;
        }
    }

    async fn send(&self, frame: Frame) {
        if let Some(outgoing) = self.outgoing.upgrade() {
            let _ = outgoing.send(Outgoing::Frame(frame)).await;
        }
    }
}

/// Encodes and writes queued frames in order until asked to close or every sender is gone, then sends GOAWAY.
async fn write_frames<W: AsyncWrite + Unpin>(
    mut write: W,
    mut queue: mpsc::Receiver<Outgoing>,
    shared: &Shared,
) {
    let mut compressor = HeaderCompressor::new();
    let mut closing = false;
    while !closing {
        let mut batch = Vec::new();
        let mut next = queue.recv().await;
        loop {
            match next {
                Some(Outgoing::Frame(frame)) => match frame.encode(&mut compressor) {
                    Ok(bytes) => batch.extend(bytes),
                    Err(e) => tracing::warn!(error = %e, "spdy: encoding a frame"),
                },
                Some(Outgoing::Close) | None => {
                    let goaway = Frame::GoAway {
                        last_good_stream_id: shared.last_stream_id.load(Ordering::Relaxed),
                        status: 0,
                    };
                    if let Ok(bytes) = goaway.encode(&mut compressor) {
                        batch.extend(bytes);
                    }
                    closing = true;
                    break;
                }
            }
            if batch.len() >= MAX_DATA_CHUNK {
                break;
            }
            match queue.try_recv() {
                Ok(more) => next = Some(more),
                Err(_) => break,
            }
        }
        if let Err(e) = write_all(&mut write, &batch).await {
            tracing::debug!(error = %e, "spdy: writing the connection");
            return;
        }
    }
    let _ = write.shutdown().await;
}

async fn write_all<W: AsyncWrite + Unpin>(write: &mut W, bytes: &[u8]) -> io::Result<()> {
    write.write_all(bytes).await?;
    write.flush().await
}

/// A stream the client opened.
pub struct Stream {
    id: u32,
    headers: Headers,
    reader: StreamReader,
    writer: StreamWriter,
}

impl Stream {
    /// The stream's ID.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The headers of its SYN_STREAM (e.g. `streamtype`, `port`, `requestid`).
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The client's bytes and ours, to use apart.
    pub fn split(self) -> (StreamReader, StreamWriter) {
        (self.reader, self.writer)
    }
}

/// The client's bytes on a stream; ends at its FIN, a reset, or the connection's end.
pub struct StreamReader {
    data: mpsc::Receiver<Vec<u8>>,
    pending: Vec<u8>,
    offset: usize,
}

impl AsyncRead for StreamReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        while self.offset >= self.pending.len() {
            match ready!(self.data.poll_recv(cx)) {
                Some(chunk) => {
                    self.pending = chunk;
                    self.offset = 0;
                }
                None => return Poll::Ready(Ok(())),
            }
        }
        let offset = self.offset;
        let n = buf.remaining().min(self.pending.len() - offset);
        buf.put_slice(&self.pending[offset..offset + n]);
        self.offset += n;
        Poll::Ready(Ok(()))
    }
}

/// Our bytes on a stream, one data frame per write; `shutdown` sends FIN.
pub struct StreamWriter {
    id: u32,
    sender: PollSender<Outgoing>,
    reset: CancellationToken,
    finished: bool,
    session: SessionHandle,
}

impl StreamWriter {
    /// The stream's ID.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Resets the stream (RST_STREAM CANCEL).
    pub async fn reset(&mut self) {
        self.finished = true;
        self.session.reset(self.id).await;
    }

    /// Resolves when either side reset the stream.
    pub async fn was_reset(&self) {
        self.reset.cancelled().await;
    }

    /// The session the stream belongs to.
    pub fn session(&self) -> &SessionHandle {
        &self.session
    }

    fn poll_send(&mut self, cx: &mut Context<'_>, frame: Frame) -> Poll<io::Result<()>> {
        if self.reset.is_cancelled() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "the stream was reset",
            )));
        }
        let closed = || io::Error::new(io::ErrorKind::BrokenPipe, "the connection is closed");
        ready!(self.sender.poll_reserve(cx)).map_err(|_| closed())?;
        self.sender
            .send_item(Outgoing::Frame(frame))
            .map_err(|_| closed())?;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for StreamWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.finished {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the stream was closed",
            )));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = buf.len().min(MAX_DATA_CHUNK);
        let frame = Frame::Data {
            stream_id: self.id,
            flags: 0,
            data: buf[..n].to_vec(),
        };
        ready!(self.poll_send(cx, frame))?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Frames reach the connection in order; nothing is buffered per stream.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.finished {
            return Poll::Ready(Ok(()));
        }
        let fin = Frame::Data {
            stream_id: self.id,
            flags: FLAG_FIN,
            data: Vec::new(),
        };
        ready!(self.poll_send(cx, fin))?;
        self.finished = true;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
