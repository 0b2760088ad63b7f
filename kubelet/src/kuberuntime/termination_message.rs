//! A finished container's termination message (upstream's getTerminationMessage): what it wrote to its
//! terminationMessagePath (the last 4 KiB), or with FallbackToLogsOnError and a failure, the end of its log
//! (the last 80 lines, at most 2 KiB).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The most of the message file that is read (MaxContainerTerminationMessageLength).
pub const MAX_MESSAGE: u64 = 4 * 1024;
/// The most of the log a fallback message holds (MaxContainerTerminationMessageLogLength).
pub const MAX_LOG_MESSAGE: usize = 2 * 1024;
/// The most log lines a fallback message holds (MaxContainerTerminationMessageLogLines).
pub const MAX_LOG_LINES: usize = 80;

/// The message of a container that exited with `exit_code`, its message file at `file` (if it had one)
/// and its CRI log at `log`.
pub fn termination_message(
    file: Option<&Path>,
    fallback_to_logs: bool,
    exit_code: i32,
    log: &Path,
) -> Option<String> {
    let fallback = fallback_to_logs && exit_code != 0;
    let written = match file.map(|f| read_tail(f, MAX_MESSAGE)) {
        Some(Ok(data)) => data,
        Some(Err(e)) if e.kind() != std::io::ErrorKind::NotFound => {
            let path = file.map(Path::display);
            return path.map(|p| format!("Error on reading termination log {p}: {e}"));
        }
        _ => Vec::new(),
    };
    if !written.is_empty() {
        return Some(String::from_utf8_lossy(&written).into_owned());
    }
    if !fallback {
        return None;
    }
    let message = match std::fs::read_to_string(log) {
        Ok(text) => log_tail(&text),
        Err(e) => format!("Error on reading termination message from logs: {e}"),
    };
    (!message.is_empty()).then_some(message)
}

/// The last `max` bytes of `path`.
fn read_tail(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let length = file.metadata()?.len();
    file.seek(SeekFrom::Start(length.saturating_sub(max)))?;
    let mut data = Vec::new();
    file.read_to_end(&mut data)?;
    Ok(data)
}

/// The content of the last [`MAX_LOG_LINES`] lines of a CRI log (`TIME STREAM TAG content`; partial
/// lines joined), cut to its last [`MAX_LOG_MESSAGE`] bytes.
pub fn log_tail(cri_log: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut partial = String::new();
    for line in cri_log.lines() {
        let mut fields = line.splitn(4, ' ');
        let (Some(_time), Some(_stream), Some(tag)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        partial.push_str(fields.next().unwrap_or_default());
        if tag != "P" {
            lines.push(std::mem::take(&mut partial) + "\n");
        }
    }
    let start = lines.len().saturating_sub(MAX_LOG_LINES);
    let text: String = lines[start..].concat();
    let mut cut = text.len().saturating_sub(MAX_LOG_MESSAGE);
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    text[cut..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_file_wins_and_logs_are_the_fallback_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("message");
        let log = dir.path().join("0.log");
        std::fs::write(
            &log,
            "2026-11-30T00:00:00Z stdout F first\n2026-11-30T00:00:01Z stderr P par\n\
             2026-11-30T00:00:01Z stderr F tial\n",
        )
        .unwrap();
        std::fs::write(&file, "").unwrap();
        assert_eq!(termination_message(Some(&file), false, 1, &log), None);
        assert_eq!(termination_message(Some(&file), true, 0, &log), None);
        assert_eq!(
            termination_message(Some(&file), true, 1, &log).as_deref(),
            Some("first\npartial\n")
        );
        std::fs::write(&file, "written by the app").unwrap();
        assert_eq!(
            termination_message(Some(&file), true, 1, &log).as_deref(),
            Some("written by the app")
        );
        // Only the last 4 KiB.
        std::fs::write(&file, format!("{}end", "x".repeat(5000))).unwrap();
        let message = termination_message(Some(&file), false, 0, &log).unwrap();
        assert_eq!(message.len(), 4096);
        assert!(message.ends_with("end"));
        // No file (terminationMessagePath "") falls back too.
        assert_eq!(
            termination_message(None, true, 2, &log).as_deref(),
            Some("first\npartial\n")
        );
    }

    #[test]
    fn log_tails_keep_80_lines_and_2_kib() {
        let log: String = (0..100)
            .map(|i| format!("2026-11-30T00:00:00Z stdout F line {i}\n"))
            .collect();
        let tail = log_tail(&log);
        assert!(
            tail.starts_with("line 20\n") && tail.ends_with("line 99\n"),
            "{tail}"
        );
        let long: String = (0..10)
            .map(|i| format!("2026-11-30T00:00:00Z stdout F {i}{}\n", "y".repeat(500)))
            .collect();
        let tail = log_tail(&long);
        assert_eq!(tail.len(), MAX_LOG_MESSAGE);
        assert!(tail.ends_with("y\n"));
    }
}
