//! NodeAffinity args validation: what component-helpers' nodeaffinity.NewNodeSelector and
//! NewPreferredSchedulingTerms refuse when ValidateNodeAffinityArgs parses the added affinity (operators, label
//! keys and values, value counts; labels.NewRequirement's checks for matchExpressions).

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm};
use serde_json::json;

use super::args::NodeAffinityArgs;
use super::field::FieldError;
use super::names::{label_value_errors, qualified_name_errors};
use component_base::config::decode::{child, index};

/// ValidateNodeAffinityArgs: the added affinity must parse as a node selector.
pub fn validate_node_affinity(a: &NodeAffinityArgs, path: &str) -> Vec<FieldError> {
    let Some(affinity) = &a.added_affinity else {
        return Vec::new();
    };
    let mut errs = Vec::new();
    let base = child(path, "addedAffinity");
    if let Some(selector) = &affinity.required_during_scheduling_ignored_during_execution {
        let terms = child(
            &child(&base, "requiredDuringSchedulingIgnoredDuringExecution"),
            "nodeSelectorTerms",
        );
        for (i, term) in selector.node_selector_terms.iter().enumerate() {
            errs.extend(selector_term(term, &index(&terms, i)));
        }
    }
    let preferred = child(&base, "preferredDuringSchedulingIgnoredDuringExecution");
    for (i, term) in affinity
        .preferred_during_scheduling_ignored_during_execution
        .iter()
        .flatten()
        .enumerate()
    {
        // Upstream skips terms it would never use: zero weight, or no requirement at all.
        let empty = term
            .preference
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty)
            && term
                .preference
                .match_fields
                .as_ref()
                .is_none_or(Vec::is_empty);
        if term.weight != 0 && !empty {
            errs.extend(selector_term(
                &term.preference,
                &child(&index(&preferred, i), "preference"),
            ));
        }
    }
    errs
}

const SELECTOR_OPERATORS: [&str; 6] = ["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"];

fn selector_term(term: &NodeSelectorTerm, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, expr) in term.match_expressions.iter().flatten().enumerate() {
        errs.extend(label_requirement(
            expr,
            &index(&child(path, "matchExpressions"), i),
        ));
    }
    for (i, expr) in term.match_fields.iter().flatten().enumerate() {
        let p = index(&child(path, "matchFields"), i);
        let values = expr.values.as_deref().unwrap_or_default();
        match expr.operator.as_str() {
            "In" | "NotIn" if values.len() != 1 => {
                errs.push(FieldError::invalid(
                    &child(&p, "values"),
                    json!(values),
                    "must have one element",
                ));
            }
            "In" | "NotIn" => {}
            other => errs.push(FieldError::not_supported(
                &child(&p, "operator"),
                other,
                &["In", "NotIn"],
            )),
        }
    }
    errs
}

/// labels.NewRequirement's checks for one matchExpressions entry.
fn label_requirement(expr: &NodeSelectorRequirement, path: &str) -> Vec<FieldError> {
    let op = expr.operator.as_str();
    if !SELECTOR_OPERATORS.contains(&op) {
        return vec![FieldError::not_supported(
            &child(path, "operator"),
            op,
            &SELECTOR_OPERATORS,
        )];
    }
    let mut errs = Vec::new();
    let key_errors = qualified_name_errors(&expr.key);
    if !key_errors.is_empty() {
        errs.push(FieldError::invalid(
            &child(path, "key"),
            &expr.key,
            key_errors.join("; "),
        ));
    }
    let values = expr.values.as_deref().unwrap_or_default();
    let values_path = child(path, "values");
    match op {
        "In" | "NotIn" if values.is_empty() => {
            errs.push(FieldError::invalid(
                &values_path,
                json!(values),
                "for 'in', 'notin' operators, values set can't be empty",
            ));
        }
        "Exists" | "DoesNotExist" if !values.is_empty() => {
            errs.push(FieldError::invalid(
                &values_path,
                json!(values),
                "values set must be empty for exists and does not exist",
            ));
        }
        "Gt" | "Lt" => {
            if values.len() != 1 {
                errs.push(FieldError::invalid(
                    &values_path,
                    json!(values),
                    "for 'Gt', 'Lt' operators, exactly one value is required",
                ));
            }
            for (i, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    errs.push(FieldError::invalid(
                        &index(&values_path, i),
                        v,
                        "for 'Gt', 'Lt' operators, the value must be an integer",
                    ));
                }
            }
        }
        _ => {}
    }
    for (i, v) in values.iter().enumerate() {
        let value_errors = label_value_errors(v);
        if !value_errors.is_empty() {
            let p = format!("{}[{}]", index(&values_path, i), expr.key);
            errs.push(FieldError::invalid(&p, v, value_errors.join("; ")));
        }
    }
    errs
}
