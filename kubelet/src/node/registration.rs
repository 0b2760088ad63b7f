//! Registering the Node, as upstream's registerWithAPIServer: create it; if it exists already, bring its
//! default labels and the attach/detach annotation up to date and carry on with it.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeSpec, Taint};
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

use component_base::version::go_arch;

/// The annotation saying the attach/detach controller attaches this node's volumes.
const CONTROLLER_MANAGED_ATTACH: &str = "volumes.kubernetes.io/controller-managed-attach-detach";

/// Labels the kubelet owns and keeps current on an existing node (upstream's updateDefaultLabels).
const DEFAULT_LABELS: [&str; 12] = [
    "kubernetes.io/hostname",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "node.kubernetes.io/instance-type",
    "beta.kubernetes.io/instance-type",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "node.kubernetes.io/windows-build",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
];

/// The Node object a first registration creates, without status (the status setters fill it).
pub fn initial_node(
    name: &str,
    hostname: &str,
    node_labels: &BTreeMap<String, String>,
    taints: &[Taint],
) -> Node {
    let mut labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), hostname.to_string()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), go_arch().to_string()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        ("beta.kubernetes.io/arch".to_string(), go_arch().to_string()),
    ]);
    labels.extend(node_labels.clone());
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                CONTROLLER_MANAGED_ATTACH.to_string(),
                "true".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            taints: (!taints.is_empty()).then(|| taints.to_vec()),
            ..NodeSpec::default()
        }),
        status: None,
    }
}

/// Brings an existing node's default labels and attach/detach annotation to what `initial` says; returns
/// the metadata patch to send, if anything differs.
pub fn reconcile_existing(initial: &Node, existing: &Node) -> Option<serde_json::Value> {
    let wanted = initial.metadata.labels.clone().unwrap_or_default();
    let current = existing.metadata.labels.clone().unwrap_or_default();
    let mut labels = serde_json::Map::new();
    for label in DEFAULT_LABELS {
        if let Some(value) = wanted.get(label)
            && current.get(label) != Some(value)
        {
            labels.insert(label.to_string(), value.clone().into());
        }
    }
    let annotation = |node: &Node| {
        node.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CONTROLLER_MANAGED_ATTACH).cloned())
    };
    let mut metadata = serde_json::Map::new();
    if !labels.is_empty() {
        metadata.insert("labels".into(), labels.into());
    }
    if annotation(initial) != annotation(existing) {
        metadata.insert(
            "annotations".into(),
            serde_json::json!({ CONTROLLER_MANAGED_ATTACH: annotation(initial) }),
        );
    }
    (!metadata.is_empty()).then(|| serde_json::json!({ "metadata": metadata }))
}

/// Kubelets may only set labels in `kubernetes.io`/`k8s.io` that NodeRestriction lets them set; upstream
/// refuses to start with others. Returns the offending labels.
pub fn forbidden_node_labels(labels: &BTreeMap<String, String>) -> Vec<String> {
    let allowed_exact = [
        "kubernetes.io/hostname",
        "kubernetes.io/os",
        "kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
    ];
    let in_domain =
        |domain: &str, suffix: &str| domain == suffix || domain.ends_with(&format!(".{suffix}"));
    labels
        .keys()
        .filter(|key| {
            let Some((domain, _)) = key.split_once('/') else {
                return false;
            };
            let restricted = in_domain(domain, "kubernetes.io") || in_domain(domain, "k8s.io");
            let allowed = allowed_exact.contains(&key.as_str())
                || in_domain(domain, "kubelet.kubernetes.io")
                || in_domain(domain, "node.kubernetes.io");
            restricted && !allowed
        })
        .cloned()
        .collect()
}

/// Registers `node` until it succeeds or `stop` is cancelled, backing off from 100 ms to 7 s as upstream.
pub async fn register(client: &Client, node: &Node, stop: &CancellationToken) -> bool {
    let api: Api<Node> = Api::all(client.clone());
    let name = node.metadata.name.clone().unwrap_or_default();
    let mut step = Duration::from_millis(100);
    loop {
        tokio::select! {
            () = stop.cancelled() => return false,
            () = tokio::time::sleep(step) => {}
        }
        step = (step * 2).min(Duration::from_secs(7));
        tracing::info!(node = %name, "Attempting to register node");
        match try_register(&api, node, &name).await {
            Ok(()) => {
                tracing::info!(node = %name, "Successfully registered node");
                return true;
            }
            Err(e) => {
                tracing::error!(node = %name, error = %e, "Unable to register node with API server")
            }
        }
    }
}

async fn try_register(api: &Api<Node>, node: &Node, name: &str) -> Result<(), kube::Error> {
    match api.create(&PostParams::default(), node).await {
        Ok(_) => return Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 || status.code == 403 => {}
        Err(e) => return Err(e),
    }
    let existing = api.get(name).await?;
    tracing::info!(node = %name, "Node was previously registered");
    if let Some(patch) = reconcile_existing(node, &existing) {
        api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_initial_node_has_upstreams_labels_annotation_and_taints() {
        let taint = Taint {
            key: "k".into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        };
        let node = initial_node("node-1", "host-1", &labels(&[("tier", "a")]), &[taint]);
        let l = node.metadata.labels.as_ref().expect("labels");
        assert_eq!(
            l.get("kubernetes.io/hostname").map(String::as_str),
            Some("host-1")
        );
        assert_eq!(l.get("kubernetes.io/os").map(String::as_str), Some("linux"));
        assert_eq!(l.get("tier").map(String::as_str), Some("a"));
        assert!(
            node.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(CONTROLLER_MANAGED_ATTACH))
        );
        assert_eq!(node.spec.and_then(|s| s.taints).map(|t| t.len()), Some(1));
    }

    #[test]
    fn an_existing_node_gets_only_default_labels_and_the_annotation_back() {
        let initial = initial_node("node-1", "node-1", &BTreeMap::new(), &[]);
        assert_eq!(reconcile_existing(&initial, &initial), None);
        let mut existing = initial.clone();
        existing.metadata.annotations = None;
        let labels = existing.metadata.labels.get_or_insert_with(BTreeMap::new);
        labels.insert("kubernetes.io/hostname".into(), "old".into());
        labels.insert("user-label".into(), "kept".into());
        let patch = reconcile_existing(&initial, &existing).expect("a patch");
        assert_eq!(
            patch,
            serde_json::json!({"metadata": {
                "labels": {"kubernetes.io/hostname": "node-1"},
                "annotations": {CONTROLLER_MANAGED_ATTACH: "true"},
            }})
        );
    }

    #[test]
    fn kubelets_may_not_set_restricted_labels() {
        let forbidden = forbidden_node_labels(&labels(&[
            ("node-role.kubernetes.io/worker", ""),
            ("node.kubernetes.io/pool", "a"),
            ("example.k8s.io/x", "y"),
            ("topology.kubernetes.io/zone", "z"),
            ("team", "a"),
        ]));
        assert_eq!(
            forbidden,
            vec!["example.k8s.io/x", "node-role.kubernetes.io/worker"]
        );
    }
}
