//! What of each parsed log line reaches the client (cri-client pkg/logs/logs.go `logWriter`): lines older
//! than `since` skipped, the timestamp prefixed at the start of an output line, everything cut at
//! `limitBytes`.

use chrono::{DateTime, Utc};

use super::format::{LogMessage, format_fixed};

/// Whether to go on after a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// More may be written.
    More,
    /// `limitBytes` is reached: stop reading.
    LimitReached,
}

/// Turns log lines into the response body.
#[derive(Debug)]
pub struct LogWriter {
    since: Option<DateTime<Utc>>,
    timestamps: bool,
    remain: i64,
}

impl LogWriter {
    /// A writer of lines not older than `since`, with timestamps when asked, at most `limit_bytes` bytes.
    pub fn new(since: Option<DateTime<Utc>>, timestamps: bool, limit_bytes: Option<i64>) -> Self {
        Self {
            since,
            timestamps,
            remain: limit_bytes.unwrap_or(i64::MAX),
        }
    }

    /// Appends `message` to `out` (with its timestamp first when `line_start`: the previous line ended in
    /// a newline).
    pub fn write(
        &mut self,
        message: &LogMessage<'_>,
        line_start: bool,
        out: &mut Vec<u8>,
    ) -> Written {
        if self
            .since
            .is_some_and(|since| message.timestamp.with_timezone(&Utc) < since)
        {
            return Written::More;
        }
        let remain = usize::try_from(self.remain.max(0)).unwrap_or(usize::MAX);
        let before = out.len();
        if self.timestamps && line_start {
            let mut prefix = format_fixed(&message.timestamp).into_bytes();
            prefix.push(b' ');
            out.extend_from_slice(&prefix[..prefix.len().min(remain)]);
        }
        let room = remain - (out.len() - before);
        out.extend_from_slice(&message.log[..message.log.len().min(room)]);
        self.remain -= i64::try_from(out.len() - before).unwrap_or(i64::MAX);
        if self.remain <= 0 {
            Written::LimitReached
        } else {
            Written::More
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::format::{LogStream, parse_rfc3339};
    use super::*;

    fn message(at: &str, log: &'static [u8]) -> LogMessage<'static> {
        LogMessage {
            timestamp: parse_rfc3339(at).unwrap(),
            stream: LogStream::Stdout,
            log,
        }
    }

    #[test]
    fn lines_older_than_since_are_skipped() {
        let since = parse_rfc3339("2024-01-01T00:00:01Z").unwrap().to_utc();
        let mut w = LogWriter::new(Some(since), false, None);
        let mut out = Vec::new();
        w.write(
            &message("2024-01-01T00:00:00.999Z", b"old\n"),
            true,
            &mut out,
        );
        w.write(&message("2024-01-01T00:00:01Z", b"equal\n"), true, &mut out);
        w.write(
            &message("2024-01-01T01:00:01+01:00", b"same instant\n"),
            true,
            &mut out,
        );
        assert_eq!(out, b"equal\nsame instant\n");
    }

    #[test]
    fn timestamps_prefix_only_line_starts() {
        let mut w = LogWriter::new(None, true, None);
        let mut out = Vec::new();
        w.write(&message("2024-01-01T00:00:00.5Z", b"par"), true, &mut out);
        w.write(&message("2024-01-01T00:00:01Z", b"tial\n"), false, &mut out);
        assert_eq!(out, b"2024-01-01T00:00:00.500000000Z partial\n");
    }

    #[test]
    fn the_limit_cuts_the_line_that_crosses_it() {
        let mut w = LogWriter::new(None, false, Some(5));
        let mut out = Vec::new();
        assert_eq!(
            w.write(&message("2024-01-01T00:00:00Z", b"abc\n"), true, &mut out),
            Written::More
        );
        assert_eq!(
            w.write(&message("2024-01-01T00:00:00Z", b"defgh\n"), true, &mut out),
            Written::LimitReached
        );
        assert_eq!(out, b"abc\nd");
    }

    #[test]
    fn the_limit_counts_the_timestamp_and_may_cut_it() {
        let mut w = LogWriter::new(None, true, Some(10));
        let mut out = Vec::new();
        assert_eq!(
            w.write(&message("2024-01-01T00:00:00Z", b"abc\n"), true, &mut out),
            Written::LimitReached
        );
        assert_eq!(out, b"2024-01-01");
    }

    #[test]
    fn a_line_ending_exactly_at_the_limit_stops() {
        let mut w = LogWriter::new(None, false, Some(4));
        let mut out = Vec::new();
        assert_eq!(
            w.write(&message("2024-01-01T00:00:00Z", b"abc\n"), true, &mut out),
            Written::LimitReached
        );
        assert_eq!(out, b"abc\n");
    }

    #[test]
    fn skipped_lines_do_not_count_towards_the_limit() {
        let since = parse_rfc3339("2024-01-01T00:00:01Z").unwrap().to_utc();
        let mut w = LogWriter::new(Some(since), false, Some(3));
        let mut out = Vec::new();
        assert_eq!(
            w.write(&message("2024-01-01T00:00:00Z", b"old\n"), true, &mut out),
            Written::More
        );
        assert_eq!(
            w.write(&message("2024-01-01T00:00:02Z", b"new\n"), true, &mut out),
            Written::LimitReached
        );
        assert_eq!(out, b"new");
    }
}
