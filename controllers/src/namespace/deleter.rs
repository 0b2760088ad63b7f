//! Deleting a terminating namespace's content (upstream deletion/namespaced_resources_deleter.go): every
//! namespaced resource that can be deleted is emptied (deletecollection where served, else list and delete
//! each), pods first; conditions report the pass; once nothing remains the `kubernetes` finalizer is
//! removed through namespaces/finalize and the apiserver deletes the namespace.

use std::collections::{BTreeMap, BTreeSet};

use component_base::client::error_message;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Client;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, PartialObjectMeta, PostParams, PropagationPolicy,
};
use kube::core::discovery::Scope;
use kube::discovery::{ApiResource, Discovery, verbs};

use super::conditions::{ConditionUpdater, ContentTotals};
use crate::pod::Pod;

/// The finalizer the namespace controller owns.
pub const FINALIZER: &str = "kubernetes";
/// The estimate for content held only by finalizers (upstream finalizerEstimateSeconds).
const FINALIZER_ESTIMATE_SECONDS: i64 = 15;

/// Why a sync did not finish the namespace.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    /// Content remains; look again in about half the estimate.
    #[error("some content remains in the namespace, estimate {0} seconds before it is removed")]
    ResourcesRemaining(i64),
    #[error("{0}")]
    Content(String),
    #[error("{action} namespace {name}: {}", error_message(.source))]
    Api {
        action: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("namespace uid has changed across retries")]
    UidChanged,
}

fn code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// One namespaced, deletable resource at its preferred version.
#[derive(Clone, Debug)]
pub struct Resource {
    pub api: ApiResource,
    pub list: bool,
    pub delete_collection: bool,
}

/// Upstream ServerPreferredNamespacedResources filtered by the delete verb.
pub fn deletable_namespaced_resources(discovery: &Discovery) -> Vec<Resource> {
    let mut resources = Vec::new();
    for group in discovery.groups() {
        for (api, capabilities) in group.recommended_resources() {
            if capabilities.scope == Scope::Namespaced
                && capabilities.supports_operation(verbs::DELETE)
            {
                resources.push(Resource {
                    api,
                    list: capabilities.supports_operation(verbs::LIST),
                    delete_collection: capabilities.supports_operation(verbs::DELETE_COLLECTION),
                });
            }
        }
    }
    resources
}

/// What is left of one resource after a deletion pass.
#[derive(Debug, Default)]
struct Remaining {
    estimate: i64,
    count: usize,
    finalizers: BTreeMap<String, usize>,
}

/// The finalizers of `finalizers` other than ours, sorted and deduplicated as upstream's set.
pub fn finalizers_without_ours(finalizers: &[String]) -> Vec<String> {
    finalizers
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The longest grace period of `pods` not yet terminal, or 0 once the namespace has been terminating
/// that long (upstream estimateGracefulTermination for pods).
pub fn estimate_for_pods(pods: &[Pod], seconds_since_deletion: i64) -> i64 {
    let estimate = pods
        .iter()
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Succeeded" | "Failed"))
        })
        .filter_map(|p| p.spec.as_ref()?.termination_grace_period_seconds)
        .max()
        .unwrap_or(0)
        .max(0);
    if seconds_since_deletion >= estimate {
        0
    } else {
        estimate
    }
}

/// Deletes namespaces' content through the namespace controller's client.
#[derive(Clone)]
pub struct Deleter {
    pub client: Client,
}

impl Deleter {
    fn namespaces(&self) -> Api<Namespace> {
        Api::all(self.client.clone())
    }

    /// One pass over namespace `name` (upstream Delete).
    pub async fn delete(&self, name: &str) -> Result<(), DeleteError> {
        let api = self.namespaces();
        let api_error = |action| {
            move |source| DeleteError::Api {
                action,
                name: name.to_string(),
                source,
            }
        };
        let Some(mut namespace) = api.get_opt(name).await.map_err(api_error("get"))? else {
            return Ok(());
        };
        if namespace.metadata.deletion_timestamp.is_none() {
            return Ok(());
        }
        // The apiserver sets Terminating itself; this only catches a namespace it has not.
        if namespace.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating") {
            namespace = match self
                .retry_on_conflict(namespace, |ns| async move {
                    let mut ns = ns;
                    ns.status.get_or_insert_with(Default::default).phase =
                        Some("Terminating".into());
                    self.namespaces()
                        .replace_status(name, &PostParams::default(), &ns)
                        .await
                })
                .await
            {
                Ok(namespace) => namespace,
                Err(DeleteError::Api { source, .. }) if code(&source) == Some(404) => {
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
        }
        let finalizers = namespace
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.clone())
            .unwrap_or_default();
        if finalizers.is_empty() {
            return Ok(());
        }
        let estimate = self.delete_all_content(&mut namespace).await?;
        if estimate > 0 {
            return Err(DeleteError::ResourcesRemaining(estimate));
        }
        match self
            .retry_on_conflict(namespace, |ns| async move {
                let mut ns = ns;
                let spec = ns.spec.get_or_insert_with(Default::default);
                spec.finalizers = Some(finalizers_without_ours(
                    spec.finalizers.as_deref().unwrap_or_default(),
                ));
                self.namespaces()
                    .replace_subresource("finalize", name, &PostParams::default(), &ns)
                    .await
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(DeleteError::Api { source, .. }) if code(&source) == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Runs `update` on the namespace, re-reading it after a conflict (upstream retryOnConflictError).
    async fn retry_on_conflict<F, Fut>(
        &self,
        namespace: Namespace,
        update: F,
    ) -> Result<Namespace, DeleteError>
    where
        F: Fn(Namespace) -> Fut,
        Fut: std::future::Future<Output = Result<Namespace, kube::Error>>,
    {
        let name = namespace.metadata.name.clone().unwrap_or_default();
        let mut latest = namespace;
        loop {
            let uid = latest.metadata.uid.clone();
            match update(latest).await {
                Ok(updated) => return Ok(updated),
                Err(e) if code(&e) == Some(409) => {}
                Err(source) => {
                    return Err(DeleteError::Api {
                        action: "update",
                        name,
                        source,
                    });
                }
            }
            latest = self
                .namespaces()
                .get(&name)
                .await
                .map_err(|source| DeleteError::Api {
                    action: "get",
                    name: name.clone(),
                    source,
                })?;
            if latest.metadata.uid != uid {
                return Err(DeleteError::UidChanged);
            }
        }
    }

    /// Deletes everything in the namespace, pods first, records the pass in the conditions, and returns
    /// the estimated seconds until what remains is gone (upstream deleteAllContent).
    async fn delete_all_content(&self, namespace: &mut Namespace) -> Result<i64, DeleteError> {
        let name = namespace.metadata.name.clone().unwrap_or_default();
        let deleted_at = namespace
            .metadata
            .deletion_timestamp
            .clone()
            .map(|t| t.0)
            .unwrap_or_else(k8s_openapi::jiff::Timestamp::now);
        let since_deletion =
            (k8s_openapi::jiff::Timestamp::now().as_second() - deleted_at.as_second()).max(0);
        let mut conditions = ConditionUpdater::default();
        let mut errors = Vec::new();
        let resources = match crate::garbagecollector::discover(&self.client).await {
            Ok(discovery) => deletable_namespaced_resources(&discovery),
            Err(e) => {
                errors.push(e.to_string());
                conditions.discovery_failed(e.to_string());
                Vec::new()
            }
        };
        let mut totals = ContentTotals::default();
        let mut estimate = 0;
        let is_pods = |r: &Resource| r.api.group.is_empty() && r.api.plural == "pods";
        // OrderedNamespaceDeletion (GA, locked on): pods go first, nothing else while any remain.
        let (pods, others): (Vec<_>, Vec<_>) = resources.into_iter().partition(is_pods);
        let mut pods_remain = false;
        for (pass, group) in [pods, others].into_iter().enumerate() {
            if pass == 1 && pods_remain {
                break;
            }
            for resource in group {
                let outcome = self
                    .delete_resource_content(&resource, &name, since_deletion)
                    .await;
                let remaining = match outcome {
                    Ok(remaining) => remaining,
                    Err((remaining, message)) => {
                        errors.push(if pass == 0 {
                            format!("failed to delete pods for namespace: {name}, err: {message}")
                        } else {
                            message.clone()
                        });
                        conditions.delete_content_failed(message);
                        remaining
                    }
                };
                estimate = estimate.max(remaining.estimate);
                if remaining.count > 0 {
                    pods_remain |= pass == 0;
                    totals.by_resource.insert(
                        (resource.api.plural.clone(), resource.api.group.clone()),
                        remaining.count,
                    );
                    for (finalizer, n) in remaining.finalizers {
                        *totals.by_finalizer.entry(finalizer).or_default() += n;
                    }
                }
            }
        }
        // Upstream records totals only after a full pass; an early stop for pods leaves them out.
        if !pods_remain {
            conditions.content_totals(&totals);
        }
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let status = namespace.status.get_or_insert_with(Default::default);
        if conditions.update(status, &now) {
            match self
                .namespaces()
                .replace_status(&name, &PostParams::default(), namespace)
                .await
            {
                Ok(updated) => *namespace = updated,
                // Like upstream: a failed condition update does not fail the pass.
                Err(e) => {
                    tracing::warn!(namespace = name, "couldn't update status conditions: {e}")
                }
            }
        }
        if errors.is_empty() {
            Ok(estimate)
        } else {
            Err(DeleteError::Content(errors.join(", ")))
        }
    }

    /// Empties one resource in the namespace (upstream deleteAllContentForGroupVersionResource); an error
    /// still carries the estimate.
    async fn delete_resource_content(
        &self,
        resource: &Resource,
        namespace: &str,
        since_deletion: i64,
    ) -> Result<Remaining, (Remaining, String)> {
        let mut estimate = 0;
        if resource.api.group.is_empty() && resource.api.plural == "pods" {
            let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
            match pods.list(&ListParams::default()).await {
                Ok(list) => estimate = estimate_for_pods(&list.items, since_deletion),
                Err(e) => return Err((Remaining::default(), e.to_string())),
            }
        }
        let failed = |message: String| {
            (
                Remaining {
                    estimate,
                    ..Remaining::default()
                },
                message,
            )
        };
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &resource.api);
        let background = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        let mut collection_deleted = false;
        if resource.delete_collection {
            match api
                .delete_collection(&background, &ListParams::default())
                .await
            {
                Ok(_) => collection_deleted = true,
                Err(e) if matches!(code(&e), Some(404 | 405)) => {}
                Err(e) => return Err(failed(e.to_string())),
            }
        }
        let metadata: Api<PartialObjectMeta<DynamicObject>> =
            Api::namespaced_with(self.client.clone(), namespace, &resource.api);
        if !collection_deleted && resource.list {
            let items = match metadata.list(&ListParams::default()).await {
                Ok(list) => list.items,
                Err(e) if matches!(code(&e), Some(404 | 405)) => Vec::new(),
                Err(e) => return Err(failed(e.to_string())),
            };
            for item in items {
                let item_name = item.metadata.name.unwrap_or_default();
                match api.delete(&item_name, &background).await {
                    Ok(_) => {}
                    Err(e) if matches!(code(&e), Some(404 | 405)) => {}
                    Err(e) => return Err(failed(e.to_string())),
                }
            }
        }
        if !resource.list {
            return Ok(Remaining {
                estimate,
                ..Remaining::default()
            });
        }
        let items = match metadata.list(&ListParams::default()).await {
            Ok(list) => list.items,
            Err(e) if matches!(code(&e), Some(404 | 405)) => {
                return Ok(Remaining {
                    estimate,
                    ..Remaining::default()
                });
            }
            Err(e) => return Err(failed(e.to_string())),
        };
        if items.is_empty() {
            return Ok(Remaining::default());
        }
        let mut finalizers = BTreeMap::new();
        for item in &items {
            for finalizer in item.metadata.finalizers.iter().flatten() {
                *finalizers.entry(finalizer.clone()).or_default() += 1;
            }
        }
        let count = items.len();
        if estimate != 0 {
            return Ok(Remaining {
                estimate,
                count,
                finalizers,
            });
        }
        if !finalizers.is_empty() {
            return Ok(Remaining {
                estimate: FINALIZER_ESTIMATE_SECONDS,
                count,
                finalizers,
            });
        }
        Err((
            Remaining {
                estimate,
                count,
                finalizers,
            },
            format!(
                "unexpected items still remain in namespace: {namespace} for gvr: {}/{}, Resource={}",
                resource.api.group, resource.api.version, resource.api.plural
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use crate::pod::{PodSpec, PodStatus};

    use super::*;

    fn pod(grace: i64, phase: &str) -> Pod {
        Pod {
            spec: Some(PodSpec {
                termination_grace_period_seconds: Some(grace),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..PodStatus::default()
            }),
            ..Pod::default()
        }
    }

    #[test]
    fn pods_estimate_is_the_longest_grace_period_of_live_pods() {
        let pods = [
            pod(30, "Running"),
            pod(60, "Pending"),
            pod(600, "Succeeded"),
        ];
        assert_eq!(estimate_for_pods(&pods, 0), 60);
        assert_eq!(estimate_for_pods(&pods, 59), 60);
        assert_eq!(estimate_for_pods(&pods, 60), 0, "waited long enough");
        assert_eq!(estimate_for_pods(&[], 0), 0);
    }

    #[test]
    fn finalizing_drops_only_ours() {
        let finalizers = vec!["kubernetes".into(), "z.io/x".into(), "a.io/y".into()];
        assert_eq!(finalizers_without_ours(&finalizers), ["a.io/y", "z.io/x"]);
    }
}
