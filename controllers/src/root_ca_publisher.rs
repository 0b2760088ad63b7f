//! The root CA certificate publisher (upstream pkg/controller/certificates/rootcacertpublisher): every
//! namespace gets the ConfigMap `kube-root-ca.crt` holding the CA bundle that verifies the apiserver,
//! restored when it is deleted or changed.

use std::collections::BTreeMap;

use component_base::client::error_message;
use component_base::informer::{InformerEvent, ObjectKey, SharedInformer};
use component_base::workqueue::RateLimitingQueue;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ObjectMeta, PostParams};

use crate::context::{ControllerContext, StartError};
use crate::serviceaccount::{is_active, is_namespace_terminating};
use crate::worker::run_workers;

/// Upstream's canonical name.
pub const NAME: &str = "root-ca-certificate-publisher-controller";
/// The ServiceAccount the controller runs as.
const ACCOUNT: &str = "root-ca-cert-publisher";
/// Upstream's queue name.
const QUEUE: &str = "root_ca_cert_publisher";
/// The published ConfigMap's name.
pub const CONFIG_MAP_NAME: &str = "kube-root-ca.crt";
/// The key holding the bundle.
pub const CA_KEY: &str = "ca.crt";
/// The annotation describing the ConfigMap.
pub const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
/// Upstream's description text.
pub const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// Why a namespace could not be synced.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("creating ConfigMap {namespace}/{CONFIG_MAP_NAME}: {}", error_message(.source))]
    Create {
        namespace: String,
        source: kube::Error,
    },
    #[error("updating ConfigMap {namespace}/{CONFIG_MAP_NAME}: {}", error_message(.source))]
    Update {
        namespace: String,
        source: kube::Error,
    },
}

/// What a namespace's `kube-root-ca.crt` needs.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Nothing: it is as wanted, or the namespace is gone or terminating.
    None,
    /// It is missing: create this.
    Create(ConfigMap),
    /// Its data or description differ: replace it with this (the cached object, resourceVersion kept).
    Update(ConfigMap),
}

/// The ConfigMap's wanted data.
fn wanted_data(ca: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(CA_KEY.to_string(), ca.to_string())])
}

/// Decides what namespace `namespace_name`'s ConfigMap needs, given the cached namespace, the cached
/// ConfigMap and the CA bundle. As upstream, a ConfigMap that exists is corrected whatever the namespace's
/// phase; a missing one is created only in an active namespace (creates in terminating ones are refused).
pub fn action(
    namespace_name: &str,
    namespace: Option<&Namespace>,
    existing: Option<&ConfigMap>,
    ca: &str,
) -> Action {
    let data = wanted_data(ca);
    let Some(existing) = existing else {
        if !namespace.is_some_and(is_active) {
            return Action::None;
        }
        return Action::Create(ConfigMap {
            metadata: ObjectMeta {
                name: Some(CONFIG_MAP_NAME.to_string()),
                namespace: Some(namespace_name.to_string()),
                annotations: Some(BTreeMap::from([(
                    DESCRIPTION_ANNOTATION.to_string(),
                    DESCRIPTION.to_string(),
                )])),
                ..ObjectMeta::default()
            },
            data: Some(data),
            ..ConfigMap::default()
        });
    };
    let described = existing
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DESCRIPTION_ANNOTATION))
        .is_some_and(|d| !d.is_empty());
    if existing.data.as_ref() == Some(&data) && described {
        return Action::None;
    }
    let mut updated = existing.clone();
    updated.data = Some(data);
    updated
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(DESCRIPTION_ANNOTATION.to_string(), DESCRIPTION.to_string());
    Action::Update(updated)
}

/// The CA bundle to publish: `--root-ca-file`, else the CA of the controller-manager's kubeconfig.
fn root_ca(ctx: &ControllerContext) -> Result<String, StartError> {
    let bytes = match &ctx.flags.root_ca_file {
        Some(path) => std::fs::read(path).map_err(|e| {
            StartError::Invalid(format!(
                "error parsing root-ca-file at {}: {e}",
                path.display()
            ))
        })?,
        None => ctx.clients.root_ca().map_err(|e| {
            StartError::Invalid(format!(
                "reading the kubeconfig's certificate authority: {e}"
            ))
        })?,
    };
    String::from_utf8(bytes)
        .map_err(|_| StartError::Invalid("the root CA bundle is not PEM text".to_string()))
}

/// Runs the controller until `ctx.stop` (upstream runs one worker).
pub fn start(ctx: ControllerContext) -> BoxFuture<'static, Result<(), StartError>> {
    Box::pin(async move {
        let ca = root_ca(&ctx)?;
        let client = ctx.client(ACCOUNT).await?;
        let namespaces = ctx.informers.informer::<Namespace>();
        let config_maps = ctx.informers.informer::<ConfigMap>();
        let queue = RateLimitingQueue::<String>::with_default_rate_limiter(QUEUE);

        let mut namespace_events = namespaces.subscribe();
        let enqueue = queue.clone();
        tokio::spawn(async move {
            while let Some(event) = namespace_events.recv().await {
                match event {
                    InformerEvent::Added(ns) => {
                        enqueue.add(ns.metadata.name.clone().unwrap_or_default());
                    }
                    // As upstream: updates of namespaces that are no longer active are not queued.
                    InformerEvent::Updated { new, .. } if is_active(&new) => {
                        enqueue.add(new.metadata.name.clone().unwrap_or_default());
                    }
                    _ => {}
                }
            }
        });
        let mut config_map_events = config_maps.subscribe();
        let enqueue = queue.clone();
        tokio::spawn(async move {
            while let Some(event) = config_map_events.recv().await {
                let cm = match event {
                    InformerEvent::Updated { new, .. } => new,
                    InformerEvent::Deleted(cm) => cm,
                    InformerEvent::Added(_) => continue,
                };
                if cm.metadata.name.as_deref() == Some(CONFIG_MAP_NAME)
                    && let Some(namespace) = cm.metadata.namespace.clone()
                {
                    enqueue.add(namespace);
                }
            }
        });

        tokio::select! {
            () = ctx.stop.cancelled() => return Ok(()),
            () = async { tokio::join!(namespaces.wait_for_sync(), config_maps.wait_for_sync()); } => {}
        }
        tracing::info!("Starting root CA cert publisher controller");
        let sync = move |key: String| {
            let client = client.clone();
            let namespaces = namespaces.clone();
            let config_maps = config_maps.clone();
            let ca = ca.clone();
            async move { sync_namespace(&client, &namespaces, &config_maps, &ca, &key).await }
        };
        run_workers(NAME, queue, 1, ctx.stop.clone(), sync).await;
        tracing::info!("Shutting down root CA cert publisher controller");
        Ok(())
    })
}

/// Brings namespace `key`'s `kube-root-ca.crt` to what [`action`] wants.
async fn sync_namespace(
    client: &kube::Client,
    namespaces: &SharedInformer<Namespace>,
    config_maps: &SharedInformer<ConfigMap>,
    ca: &str,
    key: &str,
) -> Result<(), SyncError> {
    let namespace = namespaces.get(&ObjectKey::parse(key));
    let existing = config_maps.get(&ObjectKey {
        namespace: Some(key.to_string()),
        name: CONFIG_MAP_NAME.to_string(),
    });
    let api = Api::<ConfigMap>::namespaced(client.clone(), key);
    match action(key, namespace.as_deref(), existing.as_deref(), ca) {
        Action::None => Ok(()),
        Action::Create(cm) => match api.create(&PostParams::default(), &cm).await {
            Ok(_) => Ok(()),
            // The namespace is gone or going: nothing to retry.
            Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
            Err(e) if is_namespace_terminating(&e) => Ok(()),
            Err(source) => Err(SyncError::Create {
                namespace: key.to_string(),
                source,
            }),
        },
        // A replace carries the cached resourceVersion: a conflict fails the sync and it is retried.
        Action::Update(cm) => api
            .replace(CONFIG_MAP_NAME, &PostParams::default(), &cm)
            .await
            .map(|_| ())
            .map_err(|source| SyncError::Update {
                namespace: key.to_string(),
                source,
            }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n";

    fn namespace(phase: &str) -> Namespace {
        serde_json::from_value(json!({"metadata": {"name": "ns"}, "status": {"phase": phase}}))
            .unwrap()
    }

    fn config_map(data: serde_json::Value, annotations: serde_json::Value) -> ConfigMap {
        serde_json::from_value(json!({
            "metadata": {"name": CONFIG_MAP_NAME, "namespace": "ns", "resourceVersion": "7",
                         "annotations": annotations, "labels": {"keep": "me"}},
            "data": data,
        }))
        .unwrap()
    }

    #[test]
    fn a_missing_config_map_is_created_in_an_active_namespace() {
        let Action::Create(cm) = action("ns", Some(&namespace("Active")), None, CA) else {
            panic!("expected a create");
        };
        assert_eq!(cm.metadata.name.as_deref(), Some(CONFIG_MAP_NAME));
        assert_eq!(cm.data.unwrap()[CA_KEY], CA);
        assert_eq!(
            cm.metadata.annotations.unwrap()[DESCRIPTION_ANNOTATION],
            DESCRIPTION
        );
    }

    #[test]
    fn nothing_is_created_in_terminating_or_unknown_namespaces() {
        assert_eq!(
            action("ns", Some(&namespace("Terminating")), None, CA),
            Action::None
        );
        assert_eq!(action("ns", None, None, CA), Action::None);
    }

    #[test]
    fn a_correct_config_map_is_left_alone() {
        let cm = config_map(
            json!({CA_KEY: CA}),
            json!({DESCRIPTION_ANNOTATION: "anything"}),
        );
        assert_eq!(
            action("ns", Some(&namespace("Active")), Some(&cm), CA),
            Action::None
        );
    }

    #[test]
    fn changed_data_or_a_missing_description_is_restored_keeping_the_rest() {
        for cm in [
            config_map(
                json!({CA_KEY: "tampered"}),
                json!({DESCRIPTION_ANNOTATION: "x"}),
            ),
            config_map(
                json!({CA_KEY: CA, "extra": "x"}),
                json!({DESCRIPTION_ANNOTATION: "x"}),
            ),
            config_map(json!({CA_KEY: CA}), json!({"other": "y"})),
        ] {
            let Action::Update(updated) = action("ns", Some(&namespace("Active")), Some(&cm), CA)
            else {
                panic!("expected an update of {cm:?}");
            };
            assert_eq!(updated.data, Some(wanted_data(CA)));
            assert_eq!(updated.metadata.resource_version.as_deref(), Some("7"));
            assert_eq!(updated.metadata.labels.unwrap()["keep"], "me");
            let annotations = updated.metadata.annotations.unwrap();
            assert!(!annotations[DESCRIPTION_ANNOTATION].is_empty());
        }
    }
}
