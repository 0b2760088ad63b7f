//! Container output to the CRI log format (`2016-10-06T00:17:09.669794202Z stdout F line`), as containerd's
//! CRI plugin writes it (`pkg/cri/io/logger.go`) and the kubelet's log reader parses it.
//!
//! The shim writes the container's stdout and stderr into two FIFOs; the kubelet reads them and appends the
//! lines to the log file. Lines longer than [`MAX_LINE`] bytes are cut into partial (`P`) lines, the last
//! piece full (`F`); output that ends without a newline is a partial line.
//!
//! Across a kubelet restart: the FIFOs stay in the FIFO directory and the shim keeps its end (and a read end
//! of its own, so the container never gets SIGPIPE). While no kubelet reads, output waits in the pipe (64 KiB;
//! a container writing more blocks until it is read). [`super::Runtime::reopen_logs`] reads the FIFOs again
//! and goes on appending to the same file; lines buffered meanwhile get the time they were read.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::broadcast;

use super::attach::Chunk;
use super::error::{Result, RuntimeError};

/// The longest line written as one log line (containerd's default `max_container_log_line_size`).
pub const MAX_LINE: usize = 16 * 1024;

/// Which output a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The container's stdout.
    Stdout,
    /// The container's stderr.
    Stderr,
}

impl Stream {
    /// The stream's name in the log format.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// Whether a log line ends a line of output (`F`) or is a piece of a longer one (`P`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// A full line, or the last piece of a long one.
    Full,
    /// A piece of a line that goes on in the next log line.
    Partial,
}

impl Tag {
    /// The tag's letter in the log format.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "F",
            Self::Partial => "P",
        }
    }
}

/// Cuts a byte stream into log lines: at each newline (dropping `\n` or `\r\n`), and every `max_len` bytes.
#[derive(Debug)]
pub struct LineSplitter {
    max_len: usize,
    pending: Vec<u8>,
}

impl LineSplitter {
    /// A splitter cutting lines longer than `max_len` bytes (at least 1).
    pub fn new(max_len: usize) -> Self {
        Self {
            max_len: max_len.max(1),
            pending: Vec::new(),
        }
    }

    /// Feeds `bytes`; returns the log lines they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<(Tag, Vec<u8>)> {
        let mut lines = Vec::new();
        for &byte in bytes {
            if byte == b'\n' {
                let mut line = std::mem::take(&mut self.pending);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                lines.push((Tag::Full, line));
                continue;
            }
            // Cut before the byte that would exceed the limit, keeping a `\r` that may start `\r\n`.
            if self.pending.len() == self.max_len {
                let carry_cr = self.pending.last() == Some(&b'\r');
                if carry_cr {
                    self.pending.pop();
                }
                lines.push((Tag::Partial, std::mem::take(&mut self.pending)));
                if carry_cr {
                    self.pending.push(b'\r');
                }
            }
            self.pending.push(byte);
        }
        lines
    }

    /// At the end of the stream: what is left, as a partial line (it had no newline).
    pub fn finish(&mut self) -> Option<(Tag, Vec<u8>)> {
        if self.pending.is_empty() {
            None
        } else {
            Some((Tag::Partial, std::mem::take(&mut self.pending)))
        }
    }
}

/// One log line in the CRI format, newline included.
pub fn format_line(
    timestamp: chrono::DateTime<chrono::Utc>,
    stream: Stream,
    tag: Tag,
    line: &[u8],
) -> Vec<u8> {
    // RFC 3339 with nanoseconds and trailing zeros dropped, as Go's time.RFC3339Nano.
    let mut stamp = timestamp.format("%Y-%m-%dT%H:%M:%S%.9f").to_string();
    while stamp.ends_with('0') {
        stamp.pop();
    }
    if stamp.ends_with('.') {
        stamp.pop();
    }
    let mut out = Vec::with_capacity(stamp.len() + line.len() + 12);
    out.extend_from_slice(stamp.as_bytes());
    out.extend_from_slice(b"Z ");
    out.extend_from_slice(stream.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(tag.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(line);
    out.push(b'\n');
    out
}

/// The log file both streams of a container append to; each line is written with one `write`.
#[derive(Debug, Clone)]
pub struct LogFile {
    path: PathBuf,
    file: Arc<Mutex<File>>,
}

impl LogFile {
    /// Opens (creating) `path` for appending, with its parent directories.
    pub fn open(container: &str, path: &Path) -> Result<Self> {
        let io = |source| RuntimeError::Io {
            container: container.to_string(),
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        // 0640 as containerd's CRI plugin makes log files.
        let file = File::options()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(path)
            .map_err(io)?;
        Ok(Self {
            path: path.to_path_buf(),
            file: Arc::new(Mutex::new(file)),
        })
    }

    fn write_line(&self, stream: Stream, tag: Tag, line: &[u8]) {
        let data = format_line(chrono::Utc::now(), stream, tag, line);
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        // As containerd: a failed write is logged and the stream still drained, so the container never blocks.
        if let Err(e) = file.write_all(&data) {
            tracing::warn!(path = %self.path.display(), "cannot write container log: {e}");
        }
    }
}

/// The FIFO paths of a container's stdout and stderr under `dir`.
pub fn fifo_paths(dir: &Path, container: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{container}-stdout")),
        dir.join(format!("{container}-stderr")),
    )
}

/// Creates the FIFO at `path` unless it exists.
pub fn make_fifo(container: &str, path: &Path) -> Result<()> {
    let io = |source| RuntimeError::Io {
        container: container.to_string(),
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    if path.exists() {
        return Ok(());
    }
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
    #[allow(unsafe_code)]
    // SAFETY: mkfifo reads a NUL-terminated path that lives across the call.
    let rc = unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) };
    if rc != 0 {
        return Err(io(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Opens a FIFO's read end without waiting for a writer (the shim opens the other end when the task is
/// created, and blocks until a reader is there).
pub fn open_fifo(container: &str, path: &Path) -> Result<pipe::Receiver> {
    pipe::OpenOptions::new()
        .open_receiver(path)
        .map_err(|source| RuntimeError::Io {
            container: container.to_string(),
            path: path.to_path_buf(),
            source,
        })
}

/// Copies one stream from its FIFO into the log file until every writer has closed it (the shim does when
/// the container's output ends), broadcasting what it reads to the container's attachers on `live`.
pub async fn copy_stream(
    mut fifo: pipe::Receiver,
    stream: Stream,
    log: LogFile,
    live: broadcast::Sender<Chunk>,
) {
    let mut splitter = LineSplitter::new(MAX_LINE);
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match fifo.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                // No attacher is not an error.
                let _ = live.send(Chunk::from(&buf[..n]));
                for (tag, line) in splitter.push(&buf[..n]) {
                    log.write_line(stream, tag, &line);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!(path = %log.path.display(), "reading container {}: {e}", stream.as_str());
                break;
            }
        }
    }
    if let Some((tag, line)) = splitter.finish() {
        log.write_line(stream, tag, &line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(lines: Vec<(Tag, Vec<u8>)>) -> Vec<(Tag, String)> {
        lines
            .into_iter()
            .map(|(t, l)| (t, String::from_utf8(l).unwrap()))
            .collect()
    }

    #[test]
    fn full_lines_drop_their_newline_and_carriage_return() {
        let mut s = LineSplitter::new(MAX_LINE);
        assert_eq!(
            text(s.push(b"one\ntwo\r\n\nthr")),
            [
                (Tag::Full, "one".into()),
                (Tag::Full, "two".into()),
                (Tag::Full, String::new())
            ]
        );
        assert_eq!(text(s.push(b"ee\n")), [(Tag::Full, "three".into())]);
        assert!(s.finish().is_none());
    }

    #[test]
    fn output_without_a_final_newline_is_a_partial_line() {
        let mut s = LineSplitter::new(MAX_LINE);
        assert!(s.push(b"no newline").is_empty());
        assert_eq!(s.finish(), Some((Tag::Partial, b"no newline".to_vec())));
    }

    #[test]
    fn a_line_longer_than_the_limit_is_cut_into_partial_lines() {
        let mut s = LineSplitter::new(4);
        assert_eq!(
            text(s.push(b"abcdefghij\nxy\n")),
            [
                (Tag::Partial, "abcd".into()),
                (Tag::Partial, "efgh".into()),
                (Tag::Full, "ij".into()),
                (Tag::Full, "xy".into())
            ]
        );
        // Exactly the limit is one full line.
        assert_eq!(text(s.push(b"abcd\n")), [(Tag::Full, "abcd".into())]);
    }

    #[test]
    fn a_long_line_arriving_in_pieces_larger_than_the_read_buffer() {
        let mut s = LineSplitter::new(MAX_LINE);
        let line = vec![b'x'; MAX_LINE * 2 + 100];
        let mut out = Vec::new();
        for chunk in line.chunks(4096) {
            out.extend(s.push(chunk));
        }
        out.extend(s.push(b"\n"));
        let tags: Vec<Tag> = out.iter().map(|(t, _)| *t).collect();
        assert_eq!(tags, [Tag::Partial, Tag::Partial, Tag::Full]);
        assert_eq!(out[0].1.len(), MAX_LINE);
        assert_eq!(out[1].1.len(), MAX_LINE);
        assert_eq!(out[2].1.len(), 100);
    }

    #[test]
    fn crlf_across_the_cut_is_one_line_end() {
        let mut s = LineSplitter::new(4);
        assert_eq!(text(s.push(b"abc\r\n")), [(Tag::Full, "abc".into())]);
        assert_eq!(
            text(s.push(b"abcd\r\n")),
            [(Tag::Partial, "abcd".into()), (Tag::Full, String::new())]
        );
    }

    #[test]
    fn lines_are_formatted_as_cri_logs() {
        let at = chrono::DateTime::parse_from_rfc3339("2016-10-06T00:17:09.669794202Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            format_line(at, Stream::Stdout, Tag::Full, b"hello"),
            b"2016-10-06T00:17:09.669794202Z stdout F hello\n"
        );
        let round = chrono::DateTime::parse_from_rfc3339("2016-10-06T00:17:09.5Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            format_line(round, Stream::Stderr, Tag::Partial, b"x"),
            b"2016-10-06T00:17:09.5Z stderr P x\n"
        );
        let whole = chrono::DateTime::parse_from_rfc3339("2016-10-06T00:17:09Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            format_line(whole, Stream::Stdout, Tag::Full, b""),
            b"2016-10-06T00:17:09Z stdout F \n"
        );
    }

    #[tokio::test]
    async fn a_fifo_is_copied_into_the_log_until_the_writer_closes() {
        let dir = tempfile::tempdir().unwrap();
        let (stdout, _) = fifo_paths(dir.path(), "c1");
        make_fifo("c1", &stdout).unwrap();
        let reader = open_fifo("c1", &stdout).unwrap();
        let log_path = dir.path().join("logs/0.log");
        let log = LogFile::open("c1", &log_path).unwrap();
        let writer = pipe::OpenOptions::new().open_sender(&stdout).unwrap();
        let live = super::super::attach::live_stream();
        let mut attached = live.subscribe();
        let copier = tokio::spawn(copy_stream(reader, Stream::Stdout, log, live));
        writer.writable().await.unwrap();
        writer.try_write(b"first\nsecond\nlast").unwrap();
        drop(writer);
        copier.await.unwrap();
        let mut seen = Vec::new();
        while let Ok(chunk) = attached.recv().await {
            seen.extend_from_slice(&chunk);
        }
        assert_eq!(
            seen, b"first\nsecond\nlast",
            "attachers get the raw output, then the end"
        );
        let written = std::fs::read_to_string(&log_path).unwrap();
        let lines: Vec<&str> = written.lines().collect();
        assert_eq!(lines.len(), 3, "{written}");
        assert!(lines[0].ends_with(" stdout F first"), "{written}");
        assert!(lines[1].ends_with(" stdout F second"), "{written}");
        assert!(lines[2].ends_with(" stdout P last"), "{written}");
    }
}
