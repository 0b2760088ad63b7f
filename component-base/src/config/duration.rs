//! Go's `time.Duration` as upstream's config files write it (metav1.Duration).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A Go `time.Duration` as metav1.Duration writes it (`"15s"`, `"1m30s"`, `"-2s"`), kept in nanoseconds because
/// Go allows negative values that validation then refuses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoDuration(pub i64);

impl GoDuration {
    /// Whole seconds.
    pub const fn from_secs(secs: i64) -> Self {
        Self(secs.saturating_mul(1_000_000_000))
    }

    /// From a std duration, saturating.
    pub fn from_std(d: std::time::Duration) -> Self {
        Self(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
    }

    /// As a std duration; negative values become zero.
    pub fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_nanos(u64::try_from(self.0).unwrap_or(0))
    }

    /// Zero means "not set" for the non-pointer durations of upstream's types.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Parses Go's duration syntax, sign included.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (negative, magnitude) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let d = crate::flags::parse_duration(magnitude).map_err(|_| {
            format!("invalid duration {text:?} (use Go's form, e.g. 15s, 1m30s, 500ms)")
        })?;
        let nanos = Self::from_std(d).0;
        Ok(Self(if negative { -nanos } else { nanos }))
    }
}

impl fmt::Display for GoDuration {
    /// Go's `Duration.String()`: `0s`, `300ms`, `1.5s`, `1m30s`, `1h0m0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let n = self.0.unsigned_abs();
        if n == 0 {
            return f.write_str("0s");
        }
        let frac = |value: u64, unit: u64| {
            let whole = value / unit;
            let rest = value % unit;
            if rest == 0 {
                whole.to_string()
            } else {
                let digits = unit.ilog10() as usize;
                let text = format!("{whole}.{rest:0digits$}");
                text.trim_end_matches('0').to_owned()
            }
        };
        if n < 1_000 {
            return write!(f, "{sign}{n}ns");
        }
        if n < 1_000_000 {
            return write!(f, "{sign}{}µs", frac(n, 1_000));
        }
        if n < 1_000_000_000 {
            return write!(f, "{sign}{}ms", frac(n, 1_000_000));
        }
        let secs = n / 1_000_000_000;
        let seconds = frac(n % 60_000_000_000, 1_000_000_000);
        let (hours, minutes) = (secs / 3600, (secs / 60) % 60);
        if hours > 0 {
            write!(f, "{sign}{hours}h{minutes}m{seconds}s")
        } else if minutes > 0 {
            write!(f, "{sign}{minutes}m{seconds}s")
        } else {
            write!(f, "{sign}{seconds}s")
        }
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        // An empty string is the zero value, as when the field is absent.
        if text.is_empty() {
            return Ok(Self(0));
        }
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse_and_print_as_go_does() {
        let cases = [
            ("15s", 15_000_000_000, "15s"),
            ("1m30s", 90_000_000_000, "1m30s"),
            ("1h", 3_600_000_000_000, "1h0m0s"),
            ("1.5s", 1_500_000_000, "1.5s"),
            ("300ms", 300_000_000, "300ms"),
            ("-2s", -2_000_000_000, "-2s"),
            ("0", 0, "0s"),
        ];
        for (text, nanos, printed) in cases {
            let d = GoDuration::parse(text).expect(text);
            assert_eq!(d.0, nanos, "{text}");
            assert_eq!(d.to_string(), printed, "{text}");
        }
        assert!(GoDuration::parse("15").is_err());
        assert!(GoDuration::parse("fast").is_err());
    }
}
