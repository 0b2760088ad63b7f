//! Upstream's `reconcileNodeLabels`: the deprecated beta OS and architecture labels follow the stable ones.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

/// (stable label, beta label) pairs; the beta label is added when missing.
const LABELS: [(&str, &str); 2] = [
    ("kubernetes.io/os", "beta.kubernetes.io/os"),
    ("kubernetes.io/arch", "beta.kubernetes.io/arch"),
];

/// The beta labels to set so they match the stable ones.
pub fn labels_to_update(node: &Node) -> BTreeMap<String, String> {
    let Some(labels) = node.metadata.labels.as_ref() else {
        return BTreeMap::new();
    };
    LABELS
        .iter()
        .filter_map(|(stable, beta)| {
            let value = labels.get(*stable)?;
            (labels.get(*beta) != Some(value)).then(|| (beta.to_string(), value.clone()))
        })
        .collect()
}

/// Writes the beta labels that differ.
pub async fn reconcile(client: &Client, node: &Node) -> Result<(), kube::Error> {
    let update = labels_to_update(node);
    if update.is_empty() {
        return Ok(());
    }
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let patch = json!({ "metadata": { "labels": update } });
    Api::<Node>::all(client.clone())
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beta_labels_follow_stable_ones() {
        let mut node = Node::default();
        node.metadata.labels = Some(BTreeMap::from([
            ("kubernetes.io/os".to_string(), "linux".to_string()),
            ("kubernetes.io/arch".to_string(), "amd64".to_string()),
            ("beta.kubernetes.io/arch".to_string(), "amd64".to_string()),
        ]));
        let got = labels_to_update(&node);
        assert_eq!(
            got,
            BTreeMap::from([("beta.kubernetes.io/os".to_string(), "linux".to_string())])
        );
    }
}
