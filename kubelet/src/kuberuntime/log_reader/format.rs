//! The CRI log line format as the kubelet reads it (cri-client pkg/logs/logs.go `parseCRILog`): lenient
//! RFC 3339 timestamps in, fixed-width nanosecond timestamps out.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveTime, Offset, TimeZone};

/// Which output a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// The container's stdout.
    Stdout,
    /// The container's stderr.
    Stderr,
}

/// One parsed CRI log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogMessage<'a> {
    /// When the runtime read the output, in the offset it was written with.
    pub timestamp: DateTime<FixedOffset>,
    /// stdout or stderr.
    pub stream: LogStream,
    /// The output: a full line keeps its `\n`, a partial (`P`) line has none.
    pub log: &'a [u8],
}

/// Why a log line is not in the CRI format (upstream's texts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// No space after the timestamp.
    #[error("timestamp is not found")]
    NoTimestamp,
    /// The timestamp is not RFC 3339.
    #[error("unexpected timestamp format \"2006-01-02T15:04:05.999999999Z07:00\": {0}")]
    Timestamp(String),
    /// No space after the stream.
    #[error("stream type is not found")]
    NoStream,
    /// Neither stdout nor stderr.
    #[error("unexpected stream type {0}")]
    Stream(String),
    /// No space after the tag.
    #[error("log tag is not found")]
    NoTag,
}

/// Parses one log line (its `\n` included when it has one): `TIMESTAMP STREAM TAG CONTENT`.
pub fn parse_cri_line(line: &[u8]) -> Result<LogMessage<'_>, ParseError> {
    let idx = space(line).ok_or(ParseError::NoTimestamp)?;
    let stamp = &line[..idx];
    let timestamp = std::str::from_utf8(stamp)
        .ok()
        .and_then(parse_rfc3339)
        .ok_or_else(|| ParseError::Timestamp(format!("cannot parse {}", go_quote(stamp))))?;
    let rest = &line[idx + 1..];
    let idx = space(rest).ok_or(ParseError::NoStream)?;
    let stream = match &rest[..idx] {
        b"stdout" => LogStream::Stdout,
        b"stderr" => LogStream::Stderr,
        other => return Err(ParseError::Stream(go_quote(other))),
    };
    let mut rest = &rest[idx + 1..];
    let idx = space(rest).ok_or(ParseError::NoTag)?;
    // Tags are `:`-separated for forward compatibility; the first says whether the line is partial.
    let partial = rest[..idx].split(|&b| b == b':').next() == Some(b"P");
    if partial && rest.last() == Some(&b'\n') {
        rest = &rest[..rest.len() - 1];
    }
    Ok(LogMessage {
        timestamp,
        stream,
        log: &rest[idx + 1..],
    })
}

fn space(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b' ')
}

/// Parses an RFC 3339 time as Go's `time.Parse(time.RFC3339Nano, s)`: `T` between date and time, any
/// number of fraction digits (beyond nine ignored), `Z` or `±hh:mm`.
pub fn parse_rfc3339(s: &str) -> Option<DateTime<FixedOffset>> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' {
        return None;
    }
    let year = number(&b[0..4])?;
    let month = number(&b[5..7])?;
    let day = number(&b[8..10])?;
    let hour = number(&b[11..13])?;
    let minute = number(&b[14..16])?;
    let second = number(&b[17..19])?;
    let mut rest = &b[19..];
    let mut nanos = 0u32;
    if rest.len() >= 2 && matches!(rest[0], b'.' | b',') && rest[1].is_ascii_digit() {
        let digits = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        for i in 0..9 {
            let digit = if i < digits { rest[1 + i] - b'0' } else { 0 };
            nanos = nanos * 10 + u32::from(digit);
        }
        rest = &rest[1 + digits..];
    }
    let offset = match rest {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = number(&[*h1, *h2])?;
            let minutes = number(&[*m1, *m2])?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let seconds = i32::try_from(hours * 3600 + minutes * 60).ok()?;
            if *sign == b'-' { -seconds } else { seconds }
        }
        _ => return None,
    };
    // Go rejects a 60th second; chrono would take it as a leap second.
    if second > 59 {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    let time = NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    let zone = FixedOffset::east_opt(offset)?;
    zone.from_local_datetime(&date.and_time(time)).single()
}

fn number(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |n, &c| {
        c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
    })
}

/// Go's `2006-01-02T15:04:05.000000000Z07:00` (upstream's RFC3339NanoFixed): always nine fraction digits,
/// `Z` for UTC.
pub fn format_fixed(timestamp: &DateTime<FixedOffset>) -> String {
    let mut out = timestamp.format("%Y-%m-%dT%H:%M:%S%.9f").to_string();
    let offset = timestamp.offset().fix().local_minus_utc();
    if offset == 0 {
        out.push('Z');
    } else {
        let sign = if offset < 0 { '-' } else { '+' };
        let minutes = offset.abs() / 60;
        out.push_str(&format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60));
    }
    out
}

/// `bytes` as Go's `%q` writes them: double-quoted, escapes for quotes, backslashes, control characters
/// and invalid UTF-8.
pub fn go_quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\x07' => out.push_str("\\a"),
                '\x08' => out.push_str("\\b"),
                '\x0c' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\x0b' => out.push_str("\\v"),
                c if (c as u32) < 0x20 || c == '\x7f' => {
                    out.push_str(&format!("\\x{:02x}", c as u32));
                }
                c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<FixedOffset> {
        parse_rfc3339(s).unwrap()
    }

    #[test]
    fn cri_lines_are_parsed() {
        let m = parse_cri_line(b"2016-10-06T00:17:09.669794202Z stdout F log content 1\n").unwrap();
        assert_eq!(m.stream, LogStream::Stdout);
        assert_eq!(m.log, b"log content 1\n");
        assert_eq!(m.timestamp, at("2016-10-06T00:17:09.669794202Z"));
        let m = parse_cri_line(b"2016-10-06T00:17:09.669794203Z stderr P log content 2\n").unwrap();
        assert_eq!(m.stream, LogStream::Stderr);
        assert_eq!(m.log, b"log content 2", "a partial line loses its newline");
    }

    #[test]
    fn tags_may_carry_more_after_a_colon_and_content_may_be_empty() {
        assert_eq!(
            parse_cri_line(b"2016-10-06T00:17:09Z stdout P:x abc\n")
                .unwrap()
                .log,
            b"abc"
        );
        assert_eq!(
            parse_cri_line(b"2016-10-06T00:17:09Z stdout F \n")
                .unwrap()
                .log,
            b"\n"
        );
        assert_eq!(
            parse_cri_line(b"2016-10-06T00:17:09Z stdout P \n")
                .unwrap()
                .log,
            b""
        );
        // A last line without its newline keeps its content as it is.
        assert_eq!(
            parse_cri_line(b"2016-10-06T00:17:09Z stdout F abc")
                .unwrap()
                .log,
            b"abc"
        );
    }

    #[test]
    fn malformed_lines_say_what_is_missing() {
        assert_eq!(parse_cri_line(b"garbage"), Err(ParseError::NoTimestamp));
        assert!(matches!(
            parse_cri_line(b"2016-10-06 stdout F x"),
            Err(ParseError::Timestamp(_))
        ));
        assert_eq!(
            parse_cri_line(b"2016-10-06T00:17:09Z stdout"),
            Err(ParseError::NoStream)
        );
        assert_eq!(
            parse_cri_line(b"2016-10-06T00:17:09Z stdin F x")
                .unwrap_err()
                .to_string(),
            "unexpected stream type \"stdin\""
        );
        assert_eq!(
            parse_cri_line(b"2016-10-06T00:17:09Z stdout F"),
            Err(ParseError::NoTag)
        );
    }

    #[test]
    fn timestamps_are_read_leniently() {
        let whole = at("2016-10-06T00:17:09Z");
        assert_eq!(
            at("2016-10-06T00:17:09.5Z").timestamp_subsec_nanos(),
            500_000_000
        );
        assert_eq!(
            at("2016-10-06T00:17:09.000000001Z").timestamp_subsec_nanos(),
            1
        );
        // More than nine digits: the rest is ignored, as Go does.
        assert_eq!(
            at("2016-10-06T00:17:09.1234567891Z").timestamp_subsec_nanos(),
            123_456_789
        );
        assert_eq!(at("2016-10-06T02:17:09+02:00"), whole);
        assert_eq!(at("2016-10-05T23:17:09-01:00"), whole);
        for bad in [
            "2016-10-06t00:17:09Z",
            "2016-10-06T00:17:09",
            "2016-10-06T00:17:60Z",
            "2016-02-30T00:17:09Z",
            "2016-10-06T00:17:09+0200",
            "2016-10-06T00:17:09.Z",
            "2016-10-06T00:17:09ZZ",
            "20a6-10-06T00:17:09Z",
        ] {
            assert!(parse_rfc3339(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn timestamps_are_written_with_nine_digits_in_their_offset() {
        assert_eq!(
            format_fixed(&at("2016-10-06T00:17:09.5Z")),
            "2016-10-06T00:17:09.500000000Z"
        );
        assert_eq!(
            format_fixed(&at("2016-10-06T00:17:09Z")),
            "2016-10-06T00:17:09.000000000Z"
        );
        assert_eq!(
            format_fixed(&at("2016-10-06T00:17:09.669794202Z")),
            "2016-10-06T00:17:09.669794202Z"
        );
        assert_eq!(
            format_fixed(&at("2016-10-06T02:17:09.1+02:00")),
            "2016-10-06T02:17:09.100000000+02:00"
        );
        assert_eq!(
            format_fixed(&at("2016-10-06T02:17:09+00:00")),
            "2016-10-06T02:17:09.000000000Z"
        );
        assert_eq!(
            format_fixed(&at("2016-10-06T02:17:09-05:30")),
            "2016-10-06T02:17:09.000000000-05:30"
        );
    }

    #[test]
    fn quoting_is_gos() {
        assert_eq!(go_quote(b"a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote(b"x\n\t\x01\xff"), r#""x\n\t\x01\xff""#);
        assert_eq!(go_quote("é".as_bytes()), "\"é\"");
    }
}
