//! The query of `/containerLogs`: decoded into PodLogOptions as the kubelet's parameter codec does
//! (server.go getContainerLogs, apimachinery's string conversions) and validated as ValidatePodLogOptions.

use chrono::{DateTime, TimeDelta, Utc};

use crate::kuberuntime::log_reader::LogOptions;
use crate::kuberuntime::log_reader::format::parse_rfc3339;

/// `sinceTime` as given: empty (or `null`) decodes to Go's zero time, which is set but selects nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinceTime {
    /// The zero time.
    Zero,
    /// A time.
    At(DateTime<Utc>),
}

/// The options of a log request (v1.PodLogOptions as the kubelet uses them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodLogOptions {
    /// `follow`.
    pub follow: bool,
    /// `previous`: the last terminated attempt instead of the current one.
    pub previous: bool,
    /// `timestamps`.
    pub timestamps: bool,
    /// `sinceSeconds`.
    pub since_seconds: Option<i64>,
    /// `sinceTime`.
    pub since_time: Option<SinceTime>,
    /// `tailLines` (or the legacy `tail`).
    pub tail_lines: Option<i64>,
    /// `limitBytes`.
    pub limit_bytes: Option<i64>,
    /// `stream` (All, Stdout, Stderr).
    pub stream: Option<String>,
}

/// A query the kubelet refuses, with upstream's status and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A value that does not convert (400).
    #[error(r#"{{"message": "Unable to decode query."}}"#)]
    Decode,
    /// Options that fail validation (422).
    #[error(r#"{{"message": "Invalid request."}}"#)]
    Invalid,
}

impl QueryError {
    /// The HTTP status upstream answers with.
    pub fn status(self) -> http::StatusCode {
        match self {
            Self::Decode => http::StatusCode::BAD_REQUEST,
            Self::Invalid => http::StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

/// The stream values ValidatePodLogOptions accepts.
const STREAMS: [&str; 3] = ["Stdout", "Stderr", "All"];

/// Decodes and validates the query's `pairs` (in order; the first value of a key counts, as Go's
/// `url.Values`).
pub fn decode(pairs: &[(String, String)]) -> Result<PodLogOptions, QueryError> {
    let first = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    // The legacy `tail` replaces `tailLines`; `all` means no limit.
    let tail_lines = match first("tail") {
        Some("all") => None,
        Some(tail) if !tail.is_empty() => Some(tail),
        _ => first("tailLines"),
    };
    let options = PodLogOptions {
        follow: first("follow").is_some_and(truthy),
        previous: first("previous").is_some_and(truthy),
        timestamps: first("timestamps").is_some_and(truthy),
        since_seconds: first("sinceSeconds").map(integer).transpose()?,
        since_time: first("sinceTime").map(since_time).transpose()?,
        tail_lines: tail_lines.map(integer).transpose()?,
        limit_bytes: first("limitBytes").map(integer).transpose()?,
        stream: first("stream").map(str::to_string),
    };
    validate(&options)?;
    Ok(options)
}

/// Go's string-to-bool for query parameters: only `0` and `false` (any case) are false.
fn truthy(value: &str) -> bool {
    !(value == "0" || value.eq_ignore_ascii_case("false"))
}

fn integer(value: &str) -> Result<i64, QueryError> {
    value.parse().map_err(|_| QueryError::Decode)
}

fn since_time(value: &str) -> Result<SinceTime, QueryError> {
    if value.is_empty() || value == "null" {
        return Ok(SinceTime::Zero);
    }
    parse_rfc3339(value)
        .map(|t| SinceTime::At(t.to_utc()))
        .ok_or(QueryError::Decode)
}

fn validate(options: &PodLogOptions) -> Result<(), QueryError> {
    let invalid = options.tail_lines.is_some_and(|n| n < 0)
        || options.limit_bytes.is_some_and(|n| n < 1)
        || (options.since_seconds.is_some() && options.since_time.is_some())
        || options.since_seconds.is_some_and(|n| n < 1)
        || options.stream.as_deref().is_some_and(|stream| {
            !STREAMS.contains(&stream) || (stream != "All" && options.tail_lines.is_some())
        });
    if invalid {
        Err(QueryError::Invalid)
    } else {
        Ok(())
    }
}

impl PodLogOptions {
    /// What the log reader needs, `since` taken at `now` (the later of `now - sinceSeconds` and
    /// `sinceTime`, as upstream's ReadLogs).
    pub fn reader_options(&self, now: DateTime<Utc>) -> LogOptions {
        let mut since = self
            .since_seconds
            .and_then(TimeDelta::try_seconds)
            .and_then(|ago| now.checked_sub_signed(ago));
        if let Some(SinceTime::At(at)) = self.since_time
            && since.is_none_or(|since| at > since)
        {
            since = Some(at);
        }
        LogOptions {
            tail_lines: self.tail_lines,
            limit_bytes: self.limit_bytes,
            since,
            follow: self.follow,
            timestamps: self.timestamps,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(q: &str) -> Result<PodLogOptions, QueryError> {
        let pairs: Vec<(String, String)> = q
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_string(), v.to_string())
            })
            .collect();
        decode(&pairs)
    }

    #[test]
    fn an_empty_query_is_the_defaults() {
        assert_eq!(query(""), Ok(PodLogOptions::default()));
    }

    #[test]
    fn the_apiservers_parameters_are_decoded() {
        let options = query(
            "follow=true&previous=true&timestamps=true&sinceSeconds=60&tailLines=2&limitBytes=5",
        )
        .unwrap();
        assert!(options.follow && options.previous && options.timestamps);
        assert_eq!(options.since_seconds, Some(60));
        assert_eq!(options.tail_lines, Some(2));
        assert_eq!(options.limit_bytes, Some(5));
        let at = query("sinceTime=2024-05-01T10:00:00Z").unwrap().since_time;
        assert_eq!(
            at,
            Some(SinceTime::At(
                parse_rfc3339("2024-05-01T10:00:00Z").unwrap().to_utc()
            ))
        );
    }

    #[test]
    fn booleans_are_false_only_for_0_and_false() {
        for (value, expected) in [
            ("true", true),
            ("1", true),
            ("", true),
            ("yes", true),
            ("0", false),
            ("false", false),
            ("FALSE", false),
        ] {
            assert_eq!(
                query(&format!("follow={value}")).unwrap().follow,
                expected,
                "{value}"
            );
        }
    }

    #[test]
    fn the_first_value_counts() {
        assert_eq!(
            query("tailLines=1&tailLines=x").unwrap().tail_lines,
            Some(1)
        );
    }

    #[test]
    fn legacy_tail_replaces_tail_lines() {
        assert_eq!(query("tail=3").unwrap().tail_lines, Some(3));
        assert_eq!(query("tail=3&tailLines=7").unwrap().tail_lines, Some(3));
        assert_eq!(query("tail=all&tailLines=7").unwrap().tail_lines, None);
        assert_eq!(query("tail=&tailLines=7").unwrap().tail_lines, Some(7));
        assert_eq!(query("tail=x"), Err(QueryError::Decode));
    }

    #[test]
    fn undecodable_values_are_400() {
        for q in [
            "tailLines=x",
            "tailLines=",
            "limitBytes=1.5",
            "sinceSeconds=1h",
            "sinceTime=yesterday",
            "sinceTime=2024-05-01",
        ] {
            assert_eq!(query(q), Err(QueryError::Decode), "{q}");
        }
        assert_eq!(QueryError::Decode.status(), 400);
        assert_eq!(
            QueryError::Decode.to_string(),
            r#"{"message": "Unable to decode query."}"#
        );
    }

    #[test]
    fn invalid_options_are_422() {
        for q in [
            "tailLines=-1",
            "limitBytes=0",
            "sinceSeconds=0",
            "sinceSeconds=5&sinceTime=2024-05-01T10:00:00Z",
            "sinceSeconds=5&sinceTime=",
            "stream=Both",
            "stream=Stdout&tailLines=1",
        ] {
            assert_eq!(query(q), Err(QueryError::Invalid), "{q}");
        }
        assert_eq!(QueryError::Invalid.status(), 422);
        assert_eq!(
            QueryError::Invalid.to_string(),
            r#"{"message": "Invalid request."}"#
        );
        assert_eq!(query("tailLines=0").unwrap().tail_lines, Some(0));
        assert_eq!(
            query("stream=All&tailLines=1").unwrap().stream.as_deref(),
            Some("All")
        );
        assert_eq!(
            query("stream=Stderr").unwrap().stream.as_deref(),
            Some("Stderr")
        );
    }

    #[test]
    fn since_is_the_later_of_seconds_and_time() {
        let now = parse_rfc3339("2024-05-01T10:00:00Z").unwrap().to_utc();
        let since = |q: &str| query(q).unwrap().reader_options(now).since;
        assert_eq!(since(""), None);
        assert_eq!(
            since("sinceSeconds=3600"),
            Some(parse_rfc3339("2024-05-01T09:00:00Z").unwrap().to_utc())
        );
        assert_eq!(
            since(
                "sinceTime=2024-05-01T09:30:00%2B00:00"
                    .replace("%2B", "+")
                    .as_str()
            ),
            Some(parse_rfc3339("2024-05-01T09:30:00Z").unwrap().to_utc())
        );
        assert_eq!(since("sinceTime="), None);
        assert_eq!(since(&format!("sinceSeconds={}", i64::MAX)), None);
    }
}
