//! The ServiceAccount controller (upstream pkg/controller/serviceaccount, ServiceAccountsController):
//! every active namespace gets a `default` ServiceAccount, created again when it is deleted.

use component_base::client::error_message;
use component_base::informer::{InformerEvent, ObjectKey, SharedInformer};
use component_base::workqueue::RateLimitingQueue;
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, ObjectMeta, PostParams};

use crate::context::{ControllerContext, StartError};
use crate::worker::run_workers;

/// Upstream's canonical name.
pub const NAME: &str = "serviceaccount-controller";
/// The ServiceAccount the controller runs as.
const ACCOUNT: &str = "service-account-controller";
/// Upstream's queue name.
const QUEUE: &str = "serviceaccount";
/// The ServiceAccounts every namespace gets (upstream's DefaultServiceAccountsControllerOptions).
pub const ENSURED: &[&str] = &["default"];
/// The status cause the apiserver gives for a create refused in a terminating namespace.
const NAMESPACE_TERMINATING_CAUSE: &str = "NamespaceTerminating";

/// Why a namespace could not be synced.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("creating ServiceAccount {namespace}/{name}: {}", error_message(.source))]
    Create {
        namespace: String,
        name: String,
        source: kube::Error,
    },
}

/// Whether `namespace` is Active: upstream creates nothing in a namespace in any other phase.
pub fn is_active(namespace: &Namespace) -> bool {
    let phase = namespace.status.as_ref().and_then(|s| s.phase.as_deref());
    phase == Some("Active")
}

/// The ServiceAccounts of [`ENSURED`] missing from `namespace` (none if it is not active), given whether
/// one named so exists.
pub fn missing_service_accounts(
    namespace: &Namespace,
    exists: impl Fn(&str) -> bool,
) -> Vec<&'static str> {
    if !is_active(namespace) {
        return Vec::new();
    }
    ENSURED
        .iter()
        .copied()
        .filter(|name| !exists(name))
        .collect()
}

/// Whether the apiserver refused a create because the namespace is terminating (upstream ignores these:
/// the namespace is going away).
pub fn is_namespace_terminating(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.details.as_ref().is_some_and(|details| {
            details
                .causes
                .iter()
                .any(|cause| cause.reason == NAMESPACE_TERMINATING_CAUSE)
        }),
        _ => false,
    }
}

/// Runs the controller until `ctx.stop` (upstream runs one worker).
pub fn start(ctx: ControllerContext) -> BoxFuture<'static, Result<(), StartError>> {
    Box::pin(async move {
        let client = ctx.client(ACCOUNT).await?;
        let namespaces = ctx.informers.informer::<Namespace>();
        let accounts = ctx.informers.informer::<ServiceAccount>();
        let queue = RateLimitingQueue::<String>::with_default_rate_limiter(QUEUE);

        let mut namespace_events = namespaces.subscribe();
        let enqueue = queue.clone();
        tokio::spawn(async move {
            while let Some(event) = namespace_events.recv().await {
                match event {
                    InformerEvent::Added(ns) | InformerEvent::Updated { new: ns, .. } => {
                        enqueue.add(ns.metadata.name.clone().unwrap_or_default());
                    }
                    InformerEvent::Deleted(_) => {}
                }
            }
        });
        let mut account_events = accounts.subscribe();
        let enqueue = queue.clone();
        tokio::spawn(async move {
            while let Some(event) = account_events.recv().await {
                // Only a deletion can leave a namespace without its ServiceAccount.
                if let InformerEvent::Deleted(sa) = event
                    && let Some(namespace) = sa.metadata.namespace.clone()
                {
                    enqueue.add(namespace);
                }
            }
        });

        tokio::select! {
            () = ctx.stop.cancelled() => return Ok(()),
            () = async { tokio::join!(namespaces.wait_for_sync(), accounts.wait_for_sync()); } => {}
        }
        tracing::info!("Starting service account controller");
        let sync = move |key: String| {
            let client = client.clone();
            let namespaces = namespaces.clone();
            let accounts = accounts.clone();
            async move { sync_namespace(&client, &namespaces, &accounts, &key).await }
        };
        run_workers(NAME, queue, 1, ctx.stop.clone(), sync).await;
        tracing::info!("Shutting down service account controller");
        Ok(())
    })
}

/// Creates the ServiceAccounts namespace `key` lacks.
async fn sync_namespace(
    client: &kube::Client,
    namespaces: &SharedInformer<Namespace>,
    accounts: &SharedInformer<ServiceAccount>,
    key: &str,
) -> Result<(), SyncError> {
    let Some(namespace) = namespaces.get(&ObjectKey::parse(key)) else {
        return Ok(());
    };
    let exists = |name: &str| {
        accounts
            .get(&ObjectKey {
                namespace: Some(key.to_string()),
                name: name.to_string(),
            })
            .is_some()
    };
    let missing = missing_service_accounts(&namespace, exists);
    let api = Api::<ServiceAccount>::namespaced(client.clone(), key);
    let mut first_error = None;
    for name in missing {
        let wanted = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(key.to_string()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        };
        match api.create(&PostParams::default(), &wanted).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.is_already_exists() => {}
            Err(e) if is_namespace_terminating(&e) => {}
            Err(source) => {
                first_error.get_or_insert(SyncError::Create {
                    namespace: key.to_string(),
                    name: name.to_string(),
                    source,
                });
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn namespace(phase: Option<&str>) -> Namespace {
        serde_json::from_value(json!({"metadata": {"name": "ns"}, "status": {"phase": phase}}))
            .unwrap()
    }

    #[test]
    fn an_active_namespace_without_default_needs_it() {
        assert_eq!(
            missing_service_accounts(&namespace(Some("Active")), |_| false),
            ["default"]
        );
    }

    #[test]
    fn an_active_namespace_with_default_needs_nothing() {
        assert!(
            missing_service_accounts(&namespace(Some("Active")), |n| n == "default").is_empty()
        );
    }

    #[test]
    fn terminating_or_phaseless_namespaces_get_nothing() {
        assert!(missing_service_accounts(&namespace(Some("Terminating")), |_| false).is_empty());
        assert!(missing_service_accounts(&namespace(None), |_| false).is_empty());
    }

    #[test]
    fn namespace_terminating_cause_is_recognised() {
        let status: kube::core::Status = serde_json::from_value(json!({
            "code": 403, "reason": "Forbidden", "message": "namespace is terminating",
            "details": {"causes": [{"reason": "NamespaceTerminating", "message": "ns", "field": "metadata.namespace"}]}
        }))
        .unwrap();
        assert!(is_namespace_terminating(&kube::Error::Api(Box::new(
            status
        ))));
        let other: kube::core::Status =
            serde_json::from_value(json!({"code": 403, "reason": "Forbidden"})).unwrap();
        assert!(!is_namespace_terminating(&kube::Error::Api(Box::new(
            other
        ))));
    }
}
