//! apimachinery's field errors (k8s.io/apimachinery/pkg/util/validation/field), printed the same way, so a
//! refused configuration reads as upstream's: `profiles[0].schedulerName: Required value`.

use std::collections::BTreeSet;
use std::fmt;

use super::types::GoDuration;

/// One validation failure, as apimachinery's field.Error prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field path, e.g. `profiles[0].pluginConfig[1].args.hardPodAffinityWeight`.
    pub field: String,
    /// What kind of failure, with the offending value where upstream shows one.
    pub kind: ErrorKind,
    /// The explanation, possibly empty.
    pub detail: String,
}

/// apimachinery's field error types that this validation uses; the string is the rendered bad value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// `Invalid value: <v>`.
    Invalid(String),
    /// `Required value`.
    Required,
    /// `Duplicate value: <v>`.
    Duplicate(String),
    /// `Unsupported value: <v>`.
    NotSupported(String),
    /// `Forbidden`.
    Forbidden,
    /// `Not found: <v>`.
    NotFound(String),
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.field)?;
        match &self.kind {
            ErrorKind::Invalid(v) => write!(f, "Invalid value: {v}")?,
            ErrorKind::Required => f.write_str("Required value")?,
            ErrorKind::Duplicate(v) => write!(f, "Duplicate value: {v}")?,
            ErrorKind::NotSupported(v) => write!(f, "Unsupported value: {v}")?,
            ErrorKind::Forbidden => f.write_str("Forbidden")?,
            ErrorKind::NotFound(v) => write!(f, "Not found: {v}")?,
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// A value shown in an error the way Go's field errors show it: numbers bare, strings quoted, the rest as JSON.
pub trait BadValue {
    /// The rendering.
    fn render(&self) -> String;
}

macro_rules! bare {
    ($($t:ty),*) => { $(impl BadValue for $t { fn render(&self) -> String { self.to_string() } })* };
}
bare!(i32, i64, u32, usize, f32, bool);

impl BadValue for str {
    fn render(&self) -> String {
        format!("{self:?}")
    }
}

impl BadValue for String {
    fn render(&self) -> String {
        self.as_str().render()
    }
}

impl BadValue for GoDuration {
    fn render(&self) -> String {
        self.to_string().render()
    }
}

impl BadValue for serde_json::Value {
    fn render(&self) -> String {
        self.to_string()
    }
}

impl<T: BadValue + ?Sized> BadValue for &T {
    fn render(&self) -> String {
        (**self).render()
    }
}

impl FieldError {
    fn new(field: &str, kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            kind,
            detail: detail.into(),
        }
    }

    /// field.Invalid.
    pub fn invalid(field: &str, value: impl BadValue, detail: impl Into<String>) -> Self {
        Self::new(field, ErrorKind::Invalid(value.render()), detail)
    }

    /// field.Required.
    pub fn required(field: &str, detail: impl Into<String>) -> Self {
        Self::new(field, ErrorKind::Required, detail)
    }

    /// field.Duplicate.
    pub fn duplicate(field: &str, value: impl BadValue) -> Self {
        Self::new(field, ErrorKind::Duplicate(value.render()), "")
    }

    /// field.NotSupported, listing the supported values quoted.
    pub fn not_supported(field: &str, value: impl BadValue, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|v| format!("{v:?}")).collect();
        Self::new(
            field,
            ErrorKind::NotSupported(value.render()),
            format!("supported values: {}", list.join(", ")),
        )
    }

    /// field.Forbidden.
    pub fn forbidden(field: &str, detail: impl Into<String>) -> Self {
        Self::new(field, ErrorKind::Forbidden, detail)
    }

    /// field.NotFound.
    pub fn not_found(field: &str, value: impl BadValue, detail: impl Into<String>) -> Self {
        Self::new(field, ErrorKind::NotFound(value.render()), detail)
    }
}

/// Joins errors as apimachinery's aggregate does: one alone, several as `[a, b]`, duplicates once.
pub fn join(errors: &[FieldError]) -> String {
    let mut seen = BTreeSet::new();
    let texts: Vec<String> = errors
        .iter()
        .map(ToString::to_string)
        .filter(|t| seen.insert(t.clone()))
        .collect();
    match texts.as_slice() {
        [one] => one.clone(),
        _ => format!("[{}]", texts.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_errors_print_as_apimachinery_does() {
        let cases = [
            (
                FieldError::invalid(
                    "parallelism",
                    0,
                    "should be an integer value greater than zero",
                ),
                "parallelism: Invalid value: 0: should be an integer value greater than zero",
            ),
            (
                FieldError::required("profiles[0].schedulerName", ""),
                "profiles[0].schedulerName: Required value",
            ),
            (
                FieldError::duplicate("profiles[1].pluginConfig[2]", "NodeAffinity"),
                r#"profiles[1].pluginConfig[2]: Duplicate value: "NodeAffinity""#,
            ),
            (
                FieldError::not_supported("x.type", "Foo", &["A", "B"]),
                r#"x.type: Unsupported value: "Foo": supported values: "A", "B""#,
            ),
            (FieldError::forbidden("x", "no"), "x: Forbidden: no"),
            (
                FieldError::invalid("d", GoDuration::from_secs(5), "short"),
                r#"d: Invalid value: "5s": short"#,
            ),
        ];
        for (error, want) in cases {
            assert_eq!(error.to_string(), want);
        }
        let two = [
            FieldError::required("a", ""),
            FieldError::required("b", ""),
            FieldError::required("a", ""),
        ];
        assert_eq!(join(&two), "[a: Required value, b: Required value]");
    }
}
