use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::TimeZone;
use tokio::sync::mpsc;

use super::*;
use crate::runtime::logs::{LineSplitter, MAX_LINE, Stream, Tag, format_line};

/// A container that runs until told otherwise.
#[derive(Clone, Default)]
struct Container(Arc<AtomicBool>);

impl Container {
    fn running() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }
    fn stop(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl ContainerState for Container {
    fn is_running(&self) -> impl Future<Output = Result<bool, String>> + Send {
        let running = self.0.load(Ordering::SeqCst);
        async move { Ok(running) }
    }
}

fn at(second: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, second).unwrap()
}

/// A log file under a fresh temp dir holding `lines` as the runtime writes them.
fn log_file(lines: &[(u32, Tag, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("main").join("0.log");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut file = std::fs::File::create(&path).unwrap();
    for (second, tag, text) in lines {
        file.write_all(&format_line(
            at(*second),
            Stream::Stdout,
            *tag,
            text.as_bytes(),
        ))
        .unwrap();
    }
    (dir, path)
}

fn numbered(n: u32) -> Vec<(u32, Tag, String)> {
    (1..=n)
        .map(|i| (i, Tag::Full, format!("line {i}")))
        .collect()
}

fn as_refs(lines: &[(u32, Tag, String)]) -> Vec<(u32, Tag, &str)> {
    lines.iter().map(|(s, t, l)| (*s, *t, l.as_str())).collect()
}

/// Everything `read_logs` sends for a stopped container.
async fn read(path: &Path, options: LogOptions) -> Result<String, ReadLogsError> {
    let container = Container::default();
    let (tx, mut rx) = mpsc::channel(4);
    let reader = async move { read_logs(path, &options, &container, &tx).await };
    let collect = async move {
        let mut out = Vec::new();
        while let Some(chunk) = rx.recv().await {
            out.extend(chunk);
        }
        out
    };
    let (result, out) = tokio::join!(reader, collect);
    result.map(|()| String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn the_whole_log_without_options() {
    let (_dir, path) = log_file(&as_refs(&numbered(3)));
    assert_eq!(
        read(&path, LogOptions::default()).await.unwrap(),
        "line 1\nline 2\nline 3\n"
    );
}

#[tokio::test]
async fn tail_gives_the_last_lines() {
    let (_dir, path) = log_file(&as_refs(&numbered(5)));
    let tail = |n| LogOptions {
        tail_lines: Some(n),
        ..LogOptions::default()
    };
    assert_eq!(read(&path, tail(2)).await.unwrap(), "line 4\nline 5\n");
    assert_eq!(read(&path, tail(0)).await.unwrap(), "");
    assert_eq!(read(&path, tail(9)).await.unwrap().lines().count(), 5);
}

#[tokio::test]
async fn tail_without_a_final_newline_leaves_the_incomplete_line_out() {
    let (_dir, path) = log_file(&as_refs(&numbered(3)));
    // A line still being written: no newline yet.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"2024-05-01T10:00:09Z stdout F incomp")
        .unwrap();
    let tail = LogOptions {
        tail_lines: Some(1),
        ..LogOptions::default()
    };
    assert_eq!(read(&path, tail).await.unwrap(), "line 3\n");
    // Without tail the incomplete line is read as it is.
    assert_eq!(
        read(&path, LogOptions::default()).await.unwrap(),
        "line 1\nline 2\nline 3\nincomp"
    );
}

#[tokio::test]
async fn partial_lines_are_joined_and_count_each_for_tail() {
    let (_dir, path) = log_file(&[
        (1, Tag::Full, "before"),
        (2, Tag::Partial, "par"),
        (3, Tag::Partial, "ti"),
        (4, Tag::Full, "al"),
    ]);
    assert_eq!(
        read(&path, LogOptions::default()).await.unwrap(),
        "before\npartial\n"
    );
    let tail = LogOptions {
        tail_lines: Some(2),
        ..LogOptions::default()
    };
    assert_eq!(read(&path, tail).await.unwrap(), "tial\n");
    // Timestamps only where an output line starts.
    let stamped = LogOptions {
        timestamps: true,
        ..LogOptions::default()
    };
    assert_eq!(
        read(&path, stamped).await.unwrap(),
        "2024-05-01T10:00:01.000000000Z before\n2024-05-01T10:00:02.000000000Z partial\n"
    );
}

#[tokio::test]
async fn output_ending_without_a_newline_stays_without_one() {
    let (_dir, path) = log_file(&[(1, Tag::Full, "a"), (2, Tag::Partial, "no newline")]);
    assert_eq!(
        read(&path, LogOptions::default()).await.unwrap(),
        "a\nno newline"
    );
}

#[tokio::test]
async fn since_skips_older_lines() {
    let (_dir, path) = log_file(&as_refs(&numbered(5)));
    let since = |s| LogOptions {
        since: Some(s),
        ..LogOptions::default()
    };
    assert_eq!(read(&path, since(at(4))).await.unwrap(), "line 4\nline 5\n");
    assert_eq!(read(&path, since(at(59))).await.unwrap(), "");
    // Skipped lines still count for tail.
    let both = LogOptions {
        since: Some(at(5)),
        tail_lines: Some(2),
        ..LogOptions::default()
    };
    assert_eq!(read(&path, both).await.unwrap(), "line 5\n");
}

#[tokio::test]
async fn limit_bytes_cuts_in_the_middle_of_a_line() {
    let (_dir, path) = log_file(&as_refs(&numbered(3)));
    let limit = |n| LogOptions {
        limit_bytes: Some(n),
        ..LogOptions::default()
    };
    assert_eq!(read(&path, limit(5)).await.unwrap(), "line ");
    assert_eq!(read(&path, limit(9)).await.unwrap(), "line 1\nli");
    assert_eq!(read(&path, limit(1000)).await.unwrap().len(), 21);
}

#[tokio::test]
async fn timestamps_are_fixed_width() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    std::fs::write(
        &path,
        "2024-05-01T10:00:01.5Z stdout F a\n2024-05-01T10:00:02.123456789Z stderr F b\n2024-05-01T12:00:03+02:00 stdout F c\n",
    )
    .unwrap();
    let stamped = LogOptions {
        timestamps: true,
        ..LogOptions::default()
    };
    assert_eq!(
        read(&path, stamped).await.unwrap(),
        "2024-05-01T10:00:01.500000000Z a\n2024-05-01T10:00:02.123456789Z b\n2024-05-01T12:00:03.000000000+02:00 c\n"
    );
}

#[tokio::test]
async fn a_one_mebibyte_line_is_read_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    let mut file = std::fs::File::create(&path).unwrap();
    let big: Vec<u8> = (0..1024 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
    let mut splitter = LineSplitter::new(MAX_LINE);
    let mut pieces = splitter.push(&big);
    pieces.extend(splitter.push(b"\nafter\n"));
    assert_eq!(pieces.len(), 65);
    for (tag, piece) in pieces {
        file.write_all(&format_line(at(1), Stream::Stdout, tag, &piece))
            .unwrap();
    }
    drop(file);
    let out = read(&path, LogOptions::default()).await.unwrap();
    assert_eq!(out.len(), big.len() + 7);
    assert!(out.as_bytes().starts_with(&big));
    assert!(out.ends_with("\nafter\n"));
    let limited = LogOptions {
        limit_bytes: Some(100_000),
        ..LogOptions::default()
    };
    assert_eq!(
        read(&path, limited).await.unwrap().as_bytes(),
        &big[..100_000]
    );
}

#[tokio::test]
async fn an_absent_log_says_so_as_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns_p_uid").join("main").join("0.log");
    let error = read(&path, LogOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        format!(
            "failed to try resolving symlinks in path \"{}\": lstat {}: no such file or directory",
            path.display(),
            dir.path().join("ns_p_uid").display()
        )
    );
}

#[tokio::test]
async fn a_file_in_another_format_is_refused_and_bad_lines_later_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("0.log");
    std::fs::write(&path, "not a log line\n").unwrap();
    assert_eq!(
        read(&path, LogOptions::default())
            .await
            .unwrap_err()
            .to_string(),
        "failed to get parse function: unsupported log format: \"not a log line\\n\""
    );
    std::fs::write(
        &path,
        "2024-05-01T10:00:01Z stdout F a\ngarbage\n2024-05-01T10:00:02Z stdout F b\n",
    )
    .unwrap();
    assert_eq!(read(&path, LogOptions::default()).await.unwrap(), "a\nb\n");
}

/// Appends log lines to `path` as the runtime does.
fn append(path: &Path, second: u32, tag: Tag, text: &str) {
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(&format_line(
            at(second),
            Stream::Stdout,
            tag,
            text.as_bytes(),
        ))
        .unwrap();
}

/// Follows `path`; returns the receiver of its output and the reader's task.
fn follow(
    path: &Path,
    options: LogOptions,
    container: &Container,
) -> (
    mpsc::Receiver<Vec<u8>>,
    tokio::task::JoinHandle<Result<(), ReadLogsError>>,
) {
    let (tx, rx) = mpsc::channel(4);
    let path = path.to_path_buf();
    let container = container.clone();
    let options = LogOptions {
        follow: true,
        ..options
    };
    let task = tokio::spawn(async move { read_logs(&path, &options, &container, &tx).await });
    (rx, task)
}

/// Receives until `want` has been seen in full (or fails after a few seconds).
async fn receive_until(rx: &mut mpsc::Receiver<Vec<u8>>, seen: &mut String, want: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !seen.contains(want) {
        let chunk = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("{want:?} not seen; got {seen:?}"))
            .expect("the reader ended early");
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test]
async fn follow_sends_new_lines_and_ends_when_the_container_stops() {
    let (_dir, path) = log_file(&as_refs(&numbered(3)));
    let container = Container::running();
    let tail = LogOptions {
        tail_lines: Some(1),
        ..LogOptions::default()
    };
    let (mut rx, task) = follow(&path, tail, &container);
    let mut seen = String::new();
    receive_until(&mut rx, &mut seen, "line 3\n").await;
    assert_eq!(seen, "line 3\n", "tail applies to where following starts");
    append(&path, 4, Tag::Full, "line 4");
    receive_until(&mut rx, &mut seen, "line 4\n").await;
    // Lines written after the stop but before the end of the file are still sent.
    append(&path, 5, Tag::Full, "line 5");
    container.stop();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("follow ends once the container stopped")
        .unwrap()
        .unwrap();
    while let Some(chunk) = rx.recv().await {
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert_eq!(seen, "line 3\nline 4\nline 5\n");
}

#[tokio::test]
async fn follow_completes_a_line_written_in_two_writes() {
    let (_dir, path) = log_file(&[(1, Tag::Full, "first")]);
    let container = Container::running();
    let (mut rx, task) = follow(&path, LogOptions::default(), &container);
    let mut seen = String::new();
    receive_until(&mut rx, &mut seen, "first\n").await;
    let line = format_line(at(2), Stream::Stdout, Tag::Full, b"second");
    let (head, rest) = line.split_at(15);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(head).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    file.write_all(rest).unwrap();
    receive_until(&mut rx, &mut seen, "second\n").await;
    assert_eq!(seen, "first\nsecond\n");
    container.stop();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn follow_goes_on_in_a_recreated_log() {
    let (_dir, path) = log_file(&[(1, Tag::Full, "old")]);
    let container = Container::running();
    let (mut rx, task) = follow(&path, LogOptions::default(), &container);
    let mut seen = String::new();
    receive_until(&mut rx, &mut seen, "old\n").await;
    // Rotation: the file moves away and a new one takes its name.
    std::fs::rename(&path, path.with_extension("log.20240501-100000")).unwrap();
    std::fs::write(&path, format_line(at(2), Stream::Stdout, Tag::Full, b"new")).unwrap();
    receive_until(&mut rx, &mut seen, "new\n").await;
    assert_eq!(seen, "old\nnew\n");
    container.stop();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn follow_stops_when_the_client_goes_away() {
    let (_dir, path) = log_file(&[(1, Tag::Full, "a")]);
    let container = Container::running();
    let (mut rx, task) = follow(&path, LogOptions::default(), &container);
    let mut seen = String::new();
    receive_until(&mut rx, &mut seen, "a\n").await;
    drop(rx);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the reader notices the client is gone")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn follow_with_limit_bytes_ends_at_the_limit() {
    let (_dir, path) = log_file(&[(1, Tag::Full, "abc")]);
    let container = Container::running();
    let limit = LogOptions {
        limit_bytes: Some(6),
        ..LogOptions::default()
    };
    let (mut rx, task) = follow(&path, limit, &container);
    let mut seen = String::new();
    receive_until(&mut rx, &mut seen, "abc\n").await;
    append(&path, 2, Tag::Full, "defgh");
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the limit ends following")
        .unwrap()
        .unwrap();
    while let Some(chunk) = rx.recv().await {
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert_eq!(seen, "abc\nde");
}

#[tokio::test]
async fn follow_of_a_stopped_container_reads_to_the_end_and_stops() {
    let (_dir, path) = log_file(&as_refs(&numbered(2)));
    let container = Container::default();
    let (mut rx, task) = follow(&path, LogOptions::default(), &container);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let mut seen = String::new();
    while let Some(chunk) = rx.recv().await {
        seen.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert_eq!(seen, "line 1\nline 2\n");
}

#[test]
fn go_errors_read_like_gos() {
    let e = GoError::new(
        "open",
        Path::new("/x"),
        std::io::Error::from_raw_os_error(libc::EACCES),
    );
    assert_eq!(e.to_string(), "open /x: permission denied");
}
