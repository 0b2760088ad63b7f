//! Resource quantities (`100m`, `1.5Gi`, `1e3`) read as numbers, as apimachinery's `resource.Quantity` does.

/// A quantity's value in base units, rounded up (upstream `Quantity.Value()`).
pub fn parse_value(quantity: &str) -> Option<i64> {
    scaled(quantity, 1)
}

/// A quantity's value in thousandths, rounded up (upstream `Quantity.MilliValue()`).
pub fn parse_milli(quantity: &str) -> Option<i64> {
    scaled(quantity, 1000)
}

/// Parses `quantity` and returns `ceil(value * factor)`, saturating at i64's range.
fn scaled(quantity: &str, factor: i128) -> Option<i64> {
    let text = quantity.trim();
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_end);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let digits = format!("{whole}{fraction}");
    let mut numerator: i128 = digits.parse().ok()?;
    let mut denominator: i128 = 10i128.checked_pow(u32::try_from(fraction.len()).ok()?)?;
    let (multiplier, exponent) = match suffix {
        "" => (1, 0),
        "Ki" => (1 << 10, 0),
        "Mi" => (1 << 20, 0),
        "Gi" => (1 << 30, 0),
        "Ti" => (1 << 40, 0),
        "Pi" => (1 << 50, 0),
        "Ei" => (1 << 60, 0),
        "n" => (1, -9),
        "u" => (1, -6),
        "m" => (1, -3),
        "k" => (1, 3),
        "M" => (1, 6),
        "G" => (1, 9),
        "T" => (1, 12),
        "P" => (1, 15),
        "E" => (1, 18),
        other => {
            let exponent = other.strip_prefix(['e', 'E'])?;
            (1, exponent.parse::<i32>().ok()?)
        }
    };
    numerator = numerator.checked_mul(multiplier)?.checked_mul(factor)?;
    if exponent >= 0 {
        numerator = numerator.checked_mul(10i128.checked_pow(exponent.unsigned_abs())?)?;
    } else {
        denominator = denominator.checked_mul(10i128.checked_pow(exponent.unsigned_abs())?)?;
    }
    let value = if negative {
        -(numerator / denominator)
    } else {
        (numerator + denominator - 1) / denominator
    };
    Some(value.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
}

/// `bytes` in canonical binary-SI form (`24095172Ki`, `100Mi`, `1000`), as a BinarySI `Quantity` prints.
pub fn format_binary(bytes: i64) -> String {
    with_largest_suffix(bytes, 1024, ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"])
}

/// `milli` thousandths in canonical decimal-SI form (`1900m`, `2`, `110`, `1k`), as a DecimalSI `Quantity`
/// prints.
pub fn format_decimal_milli(milli: i64) -> String {
    if milli % 1000 != 0 {
        return format!("{milli}m");
    }
    with_largest_suffix(milli / 1000, 1000, ["k", "M", "G", "T", "P", "E"])
}

/// `value` divided by `base` as often as it divides exactly, with the matching suffix.
fn with_largest_suffix(mut value: i64, base: i64, suffixes: [&str; 6]) -> String {
    let mut suffix = "";
    for next in suffixes {
        if value == 0 || value % base != 0 {
            break;
        }
        value /= base;
        suffix = next;
    }
    format!("{value}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_as_upstream() {
        let cases = [
            ("100m", Some(1), Some(100)),
            ("1", Some(1), Some(1000)),
            ("1.5", Some(2), Some(1500)),
            ("500Mi", Some(500 << 20), Some((500i64 << 20) * 1000)),
            ("32Gi", Some(32 << 30), Some((32i64 << 30) * 1000)),
            ("1k", Some(1000), Some(1_000_000)),
            ("1e3", Some(1000), Some(1_000_000)),
            ("1M", Some(1_000_000), Some(1_000_000_000)),
            ("0.1", Some(1), Some(100)),
            ("1u", Some(1), Some(1)),
            ("", None, None),
            ("abc", None, None),
            ("1Zi", None, None),
        ];
        for (text, value, milli) in cases {
            assert_eq!(parse_value(text), value, "value of {text:?}");
            assert_eq!(parse_milli(text), milli, "milli of {text:?}");
        }
    }

    #[test]
    fn quantities_print_in_canonical_form() {
        assert_eq!(format_binary(24_673_456_128), "24095172Ki");
        assert_eq!(format_binary(100 << 20), "100Mi");
        assert_eq!(format_binary(1000), "1000");
        assert_eq!(format_binary(0), "0");
        assert_eq!(format_decimal_milli(1900), "1900m");
        assert_eq!(format_decimal_milli(2000), "2");
        assert_eq!(format_decimal_milli(110_000), "110");
        assert_eq!(format_decimal_milli(1_000_000), "1k");
    }
}
