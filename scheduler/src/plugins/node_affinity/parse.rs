//! Upstream's parsing rules for node selector terms (component-helpers `nodeaffinity`, apimachinery
//! `labels.NewRequirement`): a term upstream cannot parse never matches, and in plugin arguments or
//! preferred terms it is an error. The matching itself is `plugins::helper`'s.

use k8s_openapi::api::core::v1::{
    NodeSelectorRequirement, NodeSelectorTerm, PreferredSchedulingTerm,
};

/// Whether the term has no requirement at all (upstream skips such terms: they select nothing).
pub(super) fn is_empty_term(term: &NodeSelectorTerm) -> bool {
    term.match_expressions
        .as_deref()
        .unwrap_or_default()
        .is_empty()
        && term.match_fields.as_deref().unwrap_or_default().is_empty()
}

/// Why upstream would refuse to parse `term`, if it would.
pub(super) fn term_error(term: &NodeSelectorTerm) -> Option<String> {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    let expression = expressions
        .iter()
        .enumerate()
        .find_map(|(i, r)| expression_error(r).map(|e| format!("matchExpressions[{i}].{e}")));
    expression.or_else(|| {
        fields
            .iter()
            .enumerate()
            .find_map(|(i, r)| field_error(r).map(|e| format!("matchFields[{i}].{e}")))
    })
}

/// The preferred terms upstream scores (non-zero weight, non-empty preference), by index, or the first
/// parse error among them.
pub(super) fn scored_terms(terms: &[PreferredSchedulingTerm]) -> Result<Vec<usize>, String> {
    let mut scored = Vec::new();
    for (i, term) in terms.iter().enumerate() {
        if term.weight == 0 || is_empty_term(&term.preference) {
            continue;
        }
        if let Some(error) = term_error(&term.preference) {
            return Err(format!("[{i}].preference.{error}"));
        }
        scored.push(i);
    }
    Ok(scored)
}

fn expression_error(r: &NodeSelectorRequirement) -> Option<String> {
    if let Some(error) = label_key_error(&r.key) {
        return Some(format!("key: Invalid value: {:?}: {error}", r.key));
    }
    let values = r.values.as_deref().unwrap_or_default();
    let operator_error = match r.operator.as_str() {
        "In" | "NotIn" if values.is_empty() => {
            Some("values: Required value: for 'in', 'notin' operators, values set can't be empty")
        }
        "Exists" | "DoesNotExist" if !values.is_empty() => {
            Some("values: Forbidden: values set must be empty for exists and does not exist")
        }
        "Gt" | "Lt" if values.len() != 1 => {
            Some("values: Required value: for 'Gt', 'Lt' operators, exactly one value is required")
        }
        "Gt" | "Lt" if values[0].parse::<i64>().is_err() => {
            Some("values[0]: Invalid value: for 'Gt', 'Lt' operators, the value must be an integer")
        }
        "In" | "NotIn" | "Exists" | "DoesNotExist" | "Gt" | "Lt" => None,
        other => return Some(format!("operator: Unsupported value: {other:?}")),
    };
    if let Some(error) = operator_error {
        return Some(error.to_string());
    }
    values.iter().enumerate().find_map(|(i, v)| {
        (!is_label_value(v)).then(|| {
            format!(
                "values[{i}]: Invalid value: {v:?}: a valid label must be an empty string or consist \
                 of alphanumeric characters, '-', '_' or '.', and must start and end with an \
                 alphanumeric character"
            )
        })
    })
}

fn field_error(r: &NodeSelectorRequirement) -> Option<String> {
    match r.operator.as_str() {
        "In" | "NotIn" => {
            let count = r.values.as_deref().unwrap_or_default().len();
            (count != 1).then(|| "values: Invalid value: must have one element".to_string())
        }
        other => Some(format!(
            "operator: Unsupported value: {other:?}: supported values: \"In\", \"NotIn\""
        )),
    }
}

/// A qualified name's error (`prefix/name` with a DNS-1123 subdomain prefix), as upstream's
/// `IsQualifiedName`.
fn label_key_error(key: &str) -> Option<&'static str> {
    let name = match key.split_once('/') {
        None => key,
        Some((prefix, name)) => {
            if prefix.is_empty() {
                return Some("prefix part must be non-empty");
            }
            if !is_dns1123_subdomain(prefix) {
                return Some("prefix part must be a lowercase RFC 1123 subdomain");
            }
            if name.contains('/') {
                return Some("a qualified name must have at most one '/'");
            }
            name
        }
    };
    if name.is_empty() {
        return Some("name part must be non-empty");
    }
    (!is_name_part(name)).then_some(
        "name part must consist of at most 63 alphanumeric characters, '-', '_' or '.', and must \
         start and end with an alphanumeric character",
    )
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, at most 63 characters.
fn is_name_part(s: &str) -> bool {
    let bytes = s.as_bytes();
    matches!((bytes.first(), bytes.last()), (Some(a), Some(b)) if a.is_ascii_alphanumeric() && b.is_ascii_alphanumeric())
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_name_part(s)
}

fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            let bytes = label.as_bytes();
            let edge =
                |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
            edge(bytes.first())
                && edge(bytes.last())
                && bytes
                    .iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requirement(key: &str, operator: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn expressions_parse_as_upstream_label_requirements() {
        let cases = [
            (requirement("foo", "In", &["bar", "value2"]), true),
            (requirement("example.com/foo", "NotIn", &["a"]), true),
            (requirement("kernel-version", "Gt", &["0204"]), true),
            (requirement("GPU", "Exists", &[]), true),
            (
                requirement("foo", "NotIn", &["invalid value: ___@#$%^"]),
                false,
            ),
            (requirement("foo", "In", &[]), false),
            (requirement("foo", "Exists", &["x"]), false),
            (requirement("foo", "Gt", &["1", "2"]), false),
            (requirement("foo", "Lt", &["x"]), false),
            (requirement("foo", "Gt", &["-1"]), false),
            (requirement("foo", "Equals", &["x"]), false),
            (requirement("-foo", "In", &["x"]), false),
            (requirement("Example.com/foo", "In", &["x"]), false),
            (requirement("/foo", "In", &["x"]), false),
            (requirement("a/b/c", "In", &["x"]), false),
            (requirement(&"k".repeat(64), "In", &["x"]), false),
            (requirement("foo", "In", &[""]), true),
        ];
        for (r, valid) in cases {
            let term = NodeSelectorTerm {
                match_expressions: Some(vec![r.clone()]),
                ..Default::default()
            };
            assert_eq!(
                term_error(&term).is_none(),
                valid,
                "{r:?}: {:?}",
                term_error(&term)
            );
        }
    }

    #[test]
    fn fields_need_one_value_and_in_or_not_in() {
        let cases = [
            (requirement("metadata.name", "In", &["n1"]), true),
            (requirement("metadata.name", "NotIn", &["n1"]), true),
            (requirement("metadata.name", "In", &["n1", "n2"]), false),
            (requirement("metadata.name", "Exists", &[]), false),
        ];
        for (r, valid) in cases {
            let term = NodeSelectorTerm {
                match_fields: Some(vec![r.clone()]),
                ..Default::default()
            };
            assert_eq!(term_error(&term).is_none(), valid, "{r:?}");
        }
    }

    #[test]
    fn scored_terms_skip_zero_weights_and_empty_terms_and_report_errors() {
        let term = |weight: i32, r: Option<NodeSelectorRequirement>| PreferredSchedulingTerm {
            weight,
            preference: NodeSelectorTerm {
                match_expressions: r.map(|r| vec![r]),
                ..Default::default()
            },
        };
        let ok = requirement("foo", "In", &["bar"]);
        let terms = [
            term(0, Some(ok.clone())),
            term(3, None),
            term(2, Some(ok.clone())),
        ];
        assert_eq!(scored_terms(&terms), Ok(vec![2]));
        let bad = [term(1, Some(requirement("foo", "In", &[])))];
        assert!(
            scored_terms(&bad)
                .unwrap_err()
                .starts_with("[0].preference.matchExpressions[0]")
        );
    }
}
