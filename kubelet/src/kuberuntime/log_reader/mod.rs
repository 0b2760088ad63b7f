//! Reading a container's CRI log file for `kubectl logs` (upstream's kuberuntime ReadLogs over cri-client
//! pkg/logs): the last `tailLines` lines, lines since a time, at most `limitBytes` bytes, with timestamps,
//! and in follow mode new lines as they are written until the container is no longer running.

pub mod format;
pub mod tail;
pub mod watch;
pub mod writer;

use std::future::Future;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc::Sender;

use self::format::{go_quote, parse_cri_line};
use self::watch::{Change, DirWatcher};
use self::writer::{LogWriter, Written};

/// How a follower waits for the log to change when no write wakes it (upstream's logForceCheckPeriod).
const FORCE_CHECK_PERIOD: Duration = Duration::from_secs(1);
/// Output is handed to the client in chunks of about this size (and whenever the end of the file is
/// reached), so a large log is not one write per line.
const CHUNK: usize = 32 * 1024;

/// What to read (upstream's LogOptions).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Only the last lines (log file lines: each piece of a cut line counts); all when `None`.
    pub tail_lines: Option<i64>,
    /// At most this many bytes.
    pub limit_bytes: Option<i64>,
    /// Only lines logged at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Keep reading new lines until the container stops.
    pub follow: bool,
    /// Prefix each line with the time it was logged.
    pub timestamps: bool,
}

/// Whether the container whose log is followed still runs.
pub trait ContainerState: Send + Sync {
    /// `Ok(false)` ends the follow once the log is read to its end; an error ends it with the message.
    fn is_running(&self) -> impl Future<Output = Result<bool, String>> + Send;
}

/// Why the log cannot be read (upstream's texts: they become the response body).
#[derive(Debug, thiserror::Error)]
pub enum ReadLogsError {
    /// The log file (or a directory above it) is missing.
    #[error("failed to try resolving symlinks in path {}: {source}", go_quote(path.as_os_str().as_encoded_bytes()))]
    Resolve { path: PathBuf, source: GoError },
    /// The log file cannot be opened.
    #[error("failed to open log file {}: {source}", go_quote(path.as_os_str().as_encoded_bytes()))]
    Open { path: PathBuf, source: GoError },
    /// The log file cannot be read backwards for its last lines.
    #[error("failed to tail {tail} lines of log file {}: {source}", go_quote(path.as_os_str().as_encoded_bytes()))]
    Tail {
        tail: i64,
        path: PathBuf,
        source: GoError,
    },
    /// The log file cannot be read.
    #[error("failed to read log file {}: {source}", go_quote(path.as_os_str().as_encoded_bytes()))]
    Read { path: PathBuf, source: GoError },
    /// The first line is not a CRI log line.
    #[error("failed to get parse function: unsupported log format: {0}")]
    Format(String),
    /// The log's directory cannot be watched for changes.
    #[error("failed to watch directory {}: {source}", go_quote(dir.as_os_str().as_encoded_bytes()))]
    Watch { dir: PathBuf, source: GoError },
    /// The runtime could not say whether the container still runs.
    #[error("{0}")]
    Runtime(String),
}

/// An I/O error worded as Go's `*PathError`: `op path: no such file or directory`.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}: {}", path.display(), errno_text(source))]
pub struct GoError {
    op: &'static str,
    path: PathBuf,
    source: std::io::Error,
}

impl GoError {
    fn new(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// An OS error as Go's syscall.Errno prints it (lower case, no "(os error N)").
fn errno_text(error: &std::io::Error) -> String {
    let text = error.to_string();
    let text = match text.rfind(" (os error ") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Streams the log at `path` into `sink` as `options` say; `container` is asked whether to go on
/// following. A client that goes away (the sink closed) ends the read without an error.
pub async fn read_logs(
    path: &Path,
    options: &LogOptions,
    container: &impl ContainerState,
    sink: &Sender<Vec<u8>>,
) -> Result<(), ReadLogsError> {
    let (file, path) = open_at_tail(path.to_path_buf(), options.tail_lines).await?;
    let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let base_name = path
        .file_name()
        .map(|n| n.as_encoded_bytes().to_vec())
        .unwrap_or_default();
    let mut reader = BufReader::with_capacity(CHUNK, tokio::fs::File::from_std(file));
    // Without follow, the tail is counted in lines read from its start.
    let limited = options.tail_lines.is_some() && !options.follow;
    let mut limited_num = options.tail_lines.unwrap_or(-1);
    let mut writer = LogWriter::new(options.since, options.timestamps, options.limit_bytes);
    let mut out = Output::new(sink);
    let mut watcher: Option<DirWatcher> = None;
    let mut format_checked = false;
    let mut stop = false;
    let mut running = true;
    let mut line_start = true;
    let mut line = Vec::new();
    loop {
        if stop || (limited && limited_num == 0) {
            out.flush().await;
            return Ok(());
        }
        reader
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| ReadLogsError::Read {
                path: path.clone(),
                source: GoError::new("read", &path, e),
            })?;
        if line.last() != Some(&b'\n') {
            if options.follow {
                // An incomplete line stays in `line` and is completed by the next read.
                if !running || !out.flush().await {
                    return Ok(());
                }
                let Some(watcher) = watcher.as_mut() else {
                    watcher = Some(DirWatcher::new(&dir).map_err(|e| ReadLogsError::Watch {
                        dir: dir.clone(),
                        source: GoError::new("inotify_add_watch", &dir, e),
                    })?);
                    // Read again: a write may have come before the watch.
                    continue;
                };
                let Some(waited) = wait_logs(container, &base_name, watcher, sink).await? else {
                    return Ok(());
                };
                running = waited.running;
                if waited.recreated {
                    match std::fs::File::open(&path) {
                        Ok(file) => {
                            reader =
                                BufReader::with_capacity(CHUNK, tokio::fs::File::from_std(file));
                            line.clear();
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(ReadLogsError::Open {
                                source: GoError::new("open", &path, e),
                                path,
                            });
                        }
                    }
                }
                continue;
            }
            stop = true;
            if line.is_empty() {
                continue;
            }
        }
        if !format_checked {
            // Upstream picks the parser by the first line; the CRI format is the only one written here.
            parse_cri_line(&line).map_err(|_| ReadLogsError::Format(go_quote(&line)))?;
            format_checked = true;
        }
        let message = match parse_cri_line(&line) {
            Ok(message) => message,
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "skipping a malformed log line");
                line.clear();
                continue;
            }
        };
        let written = writer.write(&message, line_start, &mut out.buf);
        line_start = message.log.last().is_none_or(|&b| b == b'\n');
        if written == Written::LimitReached {
            out.flush().await;
            return Ok(());
        }
        if limited {
            limited_num -= 1;
        }
        line.clear();
        if out.buf.len() >= CHUNK && !out.flush().await {
            return Ok(());
        }
    }
}

/// Resolves `path`, opens it and places it at the start of the last `tail` lines.
async fn open_at_tail(
    path: PathBuf,
    tail: Option<i64>,
) -> Result<(std::fs::File, PathBuf), ReadLogsError> {
    let blocking = tokio::task::spawn_blocking(move || {
        let resolved = std::fs::canonicalize(&path).map_err(|e| ReadLogsError::Resolve {
            source: GoError::new("lstat", &first_missing(&path), e),
            path: path.clone(),
        })?;
        let mut file = std::fs::File::open(&resolved).map_err(|e| ReadLogsError::Open {
            source: GoError::new("open", &resolved, e),
            path: resolved.clone(),
        })?;
        let tail_error = |e| ReadLogsError::Tail {
            tail: tail.unwrap_or(-1),
            source: GoError::new("read", &resolved, e),
            path: resolved.clone(),
        };
        let lines = tail.and_then(|n| u64::try_from(n).ok());
        let start = tail::tail_start(&mut file, lines).map_err(tail_error)?;
        file.seek(SeekFrom::Start(start)).map_err(tail_error)?;
        Ok((file, resolved))
    });
    blocking
        .await
        .map_err(|e| ReadLogsError::Runtime(format!("reading the log failed: {e}")))?
}

/// The first part of `path` that is not there (what Go's EvalSymlinks names in its error).
fn first_missing(path: &Path) -> PathBuf {
    let mut prefix = PathBuf::new();
    for part in path.components() {
        prefix.push(part);
        if std::fs::symlink_metadata(&prefix).is_err() {
            return prefix;
        }
    }
    path.to_path_buf()
}

/// What woke a follower.
struct Waited {
    running: bool,
    recreated: bool,
}

/// Waits until the log's directory changes or a second passes (upstream's waitLogs); `None` when the
/// client went away meanwhile.
async fn wait_logs(
    container: &impl ContainerState,
    base_name: &[u8],
    watcher: &mut DirWatcher,
    sink: &Sender<Vec<u8>>,
) -> Result<Option<Waited>, ReadLogsError> {
    if !container
        .is_running()
        .await
        .map_err(ReadLogsError::Runtime)?
    {
        return Ok(Some(Waited {
            running: false,
            recreated: false,
        }));
    }
    let deadline = tokio::time::sleep(FORCE_CHECK_PERIOD);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = sink.closed() => return Ok(None),
            () = &mut deadline => return Ok(Some(Waited { running: true, recreated: false })),
            events = watcher.next() => {
                let events = events.map_err(|e| ReadLogsError::Runtime(format!("fsnotify watch error: {e}")))?;
                if events.is_empty() {
                    continue;
                }
                let recreated = events
                    .iter()
                    .any(|e| e.change == Change::Create && e.name == base_name);
                return Ok(Some(Waited { running: true, recreated }));
            }
        }
    }
}

/// The bytes read so far, handed to the client in chunks.
struct Output<'a> {
    sink: &'a Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl<'a> Output<'a> {
    fn new(sink: &'a Sender<Vec<u8>>) -> Self {
        Self {
            sink,
            buf: Vec::new(),
        }
    }

    /// Sends what is buffered; false when the client is gone.
    async fn flush(&mut self) -> bool {
        if self.buf.is_empty() {
            return !self.sink.is_closed();
        }
        self.sink.send(std::mem::take(&mut self.buf)).await.is_ok()
    }
}

#[cfg(test)]
mod tests;
