//! The collector's API calls (upstream operations.go and patch.go) on any resource, through a REST mapper
//! built from discovery: metadata GET, DELETE with preconditions, owner-reference and finalizer patches.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use component_base::client::error_message;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;
use kube::api::{
    Api, DeleteParams, DynamicObject, PartialObjectMeta, Patch, PatchParams, Preconditions,
    PropagationPolicy,
};
use kube::core::discovery::Scope;
use kube::discovery::{ApiResource, Discovery, verbs};
use serde_json::json;

use super::decision::Propagation;
use super::graph::Identity;

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    /// The kind is not (yet) known to discovery: retried, a CRD may just have been created.
    #[error("unable to map {api_version} {kind} to a resource")]
    RestMapping { api_version: String, kind: String },
    #[error("{action} {identity}: {}", error_message(.source))]
    Api {
        action: &'static str,
        identity: String,
        #[source]
        source: kube::Error,
    },
}

/// Kinds to resources, from the last discovery (every served version, not only the preferred one, since
/// owner references may name any).
#[derive(Debug, Default)]
pub struct RestMapper {
    by_kind: HashMap<(String, String), (ApiResource, bool)>,
}

impl RestMapper {
    /// The mapper of everything `discovery` found.
    pub fn from_discovery(discovery: &Discovery) -> Self {
        let mut by_kind = HashMap::new();
        for group in discovery.groups() {
            for version in group.versions() {
                for (resource, capabilities) in group.versioned_resources(version) {
                    let namespaced = capabilities.scope == Scope::Namespaced;
                    by_kind.insert(
                        (resource.api_version.clone(), resource.kind.clone()),
                        (resource, namespaced),
                    );
                }
            }
        }
        Self { by_kind }
    }

    /// The resource of `kind` in `api_version` and whether it is namespaced.
    pub fn resource(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<(ApiResource, bool), OperationError> {
        self.by_kind
            .get(&(api_version.to_string(), kind.to_string()))
            .cloned()
            .ok_or_else(|| OperationError::RestMapping {
                api_version: api_version.to_string(),
                kind: kind.to_string(),
            })
    }
}

/// Discovers the server's resources: aggregated discovery (two requests), or group by group where the
/// server does not serve it.
pub async fn discover(client: &Client) -> Result<Discovery, kube::Error> {
    match Discovery::new(client.clone()).run_aggregated().await {
        Ok(discovery) => Ok(discovery),
        Err(e) => {
            tracing::debug!("aggregated discovery failed, discovering group by group: {e}");
            Discovery::new(client.clone()).run().await
        }
    }
}

/// Resources upstream's collector never watches: events are never owned and are many.
fn ignored(resource: &ApiResource) -> bool {
    resource.plural == "events" && (resource.group.is_empty() || resource.group == "events.k8s.io")
}

/// The preferred version of every resource that can be listed, watched and deleted (upstream
/// GetDeletableResources), keyed by `group/version/plural`.
pub fn deletable_resources(discovery: &Discovery) -> BTreeMap<String, ApiResource> {
    let mut resources = BTreeMap::new();
    for group in discovery.groups() {
        for (resource, capabilities) in group.recommended_resources() {
            let usable = [verbs::LIST, verbs::WATCH, verbs::DELETE]
                .iter()
                .all(|verb| capabilities.supports_operation(verb));
            if usable && !ignored(&resource) {
                resources.insert(resource_key(&resource), resource);
            }
        }
    }
    resources
}

/// How resources are keyed: `group/version/plural`.
pub fn resource_key(resource: &ApiResource) -> String {
    format!("{}/{}", resource.api_version, resource.plural)
}

/// Whether `error` is the apiserver's 404.
pub fn is_not_found(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 404)
}

fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

/// The collector's client and REST mapper.
#[derive(Clone)]
pub struct Operations {
    pub client: Client,
    pub mapper: Arc<RwLock<RestMapper>>,
}

impl Operations {
    /// The API of `identity`'s resource in its namespace; `None` when a namespaced kind is addressed
    /// without a namespace (a cluster-scoped object naming a namespaced owner: it cannot exist).
    fn api(&self, identity: &Identity) -> Result<Option<Api<DynamicObject>>, OperationError> {
        let (resource, namespaced) = self
            .mapper
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .resource(&identity.api_version, &identity.kind)?;
        Ok(match (namespaced, identity.namespace.as_str()) {
            (true, "") => None,
            (true, namespace) => Some(Api::namespaced_with(
                self.client.clone(),
                namespace,
                &resource,
            )),
            (false, _) => Some(Api::all_with(self.client.clone(), &resource)),
        })
    }

    /// Whether `api_version`/`kind` is namespaced.
    pub fn namespaced(&self, api_version: &str, kind: &str) -> Result<bool, OperationError> {
        let mapper = self.mapper.read().unwrap_or_else(|e| e.into_inner());
        Ok(mapper.resource(api_version, kind)?.1)
    }

    /// The live object's metadata, `None` when it does not exist.
    pub async fn get(
        &self,
        identity: &Identity,
    ) -> Result<Option<PartialObjectMeta<DynamicObject>>, OperationError> {
        let Some(api) = self.api(identity)? else {
            return Ok(None);
        };
        api.get_metadata_opt(&identity.name)
            .await
            .map_err(|source| OperationError::Api {
                action: "get",
                identity: identity.to_string(),
                source,
            })
    }

    /// Deletes the object if it still has `resource_version`; a conflict caused by an update that left
    /// the owner references alone is retried without the version, so busy objects are still collected.
    pub async fn delete(
        &self,
        identity: &Identity,
        resource_version: Option<String>,
        owners_at_version: &[OwnerReference],
        propagation: Propagation,
    ) -> Result<(), OperationError> {
        let Some(api) = self.api(identity)? else {
            return Ok(());
        };
        let params = |resource_version: Option<String>| DeleteParams {
            propagation_policy: Some(match propagation {
                Propagation::Orphan => PropagationPolicy::Orphan,
                Propagation::Background => PropagationPolicy::Background,
                Propagation::Foreground => PropagationPolicy::Foreground,
            }),
            preconditions: Some(Preconditions {
                uid: Some(identity.uid.clone()),
                resource_version,
            }),
            ..DeleteParams::default()
        };
        let error = |source| OperationError::Api {
            action: "delete",
            identity: identity.to_string(),
            source,
        };
        match api
            .delete(&identity.name, &params(resource_version.clone()))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) if is_conflict(&e) && resource_version.is_some() => {
                let live = match api.get_metadata_opt(&identity.name).await {
                    Ok(None) => return Ok(()),
                    Ok(Some(live)) => live,
                    Err(_) => return Err(error(e)),
                };
                let unchanged_owners = live.metadata.uid.as_deref() == Some(identity.uid.as_str())
                    && live.metadata.resource_version != resource_version
                    && live
                        .metadata
                        .owner_references
                        .as_deref()
                        .unwrap_or_default()
                        == owners_at_version;
                if !unchanged_owners {
                    return Err(error(e));
                }
                match api.delete(&identity.name, &params(None)).await {
                    Ok(_) => Ok(()),
                    Err(e) if is_not_found(&e) => Ok(()),
                    Err(e) => Err(error(e)),
                }
            }
            Err(e) => Err(error(e)),
        }
    }

    /// Removes the references to `owner_uids` from the object: a strategic merge patch (guarded by the
    /// object's UID) where the type supports it, else a JSON merge patch of the whole list guarded by
    /// the resourceVersion just read (custom resources).
    pub async fn remove_owner_references(
        &self,
        identity: &Identity,
        owner_uids: &[String],
    ) -> Result<(), OperationError> {
        let Some(api) = self.api(identity)? else {
            return Ok(());
        };
        let error = |source| OperationError::Api {
            action: "patch",
            identity: identity.to_string(),
            source,
        };
        let deletes: Vec<_> = owner_uids
            .iter()
            .map(|uid| json!({"$patch": "delete", "uid": uid}))
            .collect();
        let strategic = json!({"metadata": {"ownerReferences": deletes, "uid": identity.uid}});
        match api
            .patch_metadata(
                &identity.name,
                &PatchParams::default(),
                &Patch::Strategic(strategic),
            )
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(kube::Error::Api(status)) if status.code == 415 => {}
            Err(e) => return Err(error(e)),
        }
        let Some(live) = api.get_metadata_opt(&identity.name).await.map_err(error)? else {
            return Ok(());
        };
        if live.metadata.uid.as_deref() != Some(identity.uid.as_str()) {
            return Ok(());
        }
        let kept: Vec<OwnerReference> = live
            .metadata
            .owner_references
            .unwrap_or_default()
            .into_iter()
            .filter(|r| !owner_uids.contains(&r.uid))
            .collect();
        let kept = (!kept.is_empty()).then_some(kept);
        let merge = json!({"metadata": {
            "resourceVersion": live.metadata.resource_version,
            "ownerReferences": kept,
        }});
        match api
            .patch_metadata(
                &identity.name,
                &PatchParams::default(),
                &Patch::Merge(merge),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(error(e)),
        }
    }

    /// Sets blockOwnerDeletion=false on every blocking reference of the object (breaking a possible
    /// foreground-deletion cycle), guarded by the resourceVersion just read.
    pub async fn unblock_owner_references(
        &self,
        identity: &Identity,
    ) -> Result<(), OperationError> {
        let Some(api) = self.api(identity)? else {
            return Ok(());
        };
        let error = |source| OperationError::Api {
            action: "patch",
            identity: identity.to_string(),
            source,
        };
        let Some(live) = api.get_metadata_opt(&identity.name).await.map_err(error)? else {
            return Ok(());
        };
        let references: Vec<OwnerReference> = live
            .metadata
            .owner_references
            .unwrap_or_default()
            .into_iter()
            .map(|mut r| {
                if r.block_owner_deletion == Some(true) {
                    r.block_owner_deletion = Some(false);
                }
                r
            })
            .collect();
        let merge = json!({"metadata": {
            "resourceVersion": live.metadata.resource_version,
            "ownerReferences": references,
        }});
        match api
            .patch_metadata(
                &identity.name,
                &PatchParams::default(),
                &Patch::Merge(merge),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(error(e)),
        }
    }

    /// Removes `finalizer` from the object, re-reading and retrying on conflicts (client-go's
    /// RetryOnConflict with its default five steps).
    pub async fn remove_finalizer(
        &self,
        identity: &Identity,
        finalizer: &str,
    ) -> Result<(), OperationError> {
        let Some(api) = self.api(identity)? else {
            return Ok(());
        };
        let error = |source| OperationError::Api {
            action: "remove finalizer from",
            identity: identity.to_string(),
            source,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some(live) = api.get_metadata_opt(&identity.name).await.map_err(error)? else {
                return Ok(());
            };
            // Another object by that name is not the one to finalize.
            if live.metadata.uid.as_deref() != Some(identity.uid.as_str()) {
                return Ok(());
            }
            let finalizers = live.metadata.finalizers.unwrap_or_default();
            if !finalizers.iter().any(|f| f == finalizer) {
                return Ok(());
            }
            let kept: Vec<&String> = finalizers.iter().filter(|f| *f != finalizer).collect();
            let kept = (!kept.is_empty()).then_some(kept);
            let merge = json!({"metadata": {
                "resourceVersion": live.metadata.resource_version,
                "finalizers": kept,
            }});
            match api
                .patch_metadata(
                    &identity.name,
                    &PatchParams::default(),
                    &Patch::Merge(merge),
                )
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if is_not_found(&e) => return Ok(()),
                Err(e) if is_conflict(&e) && attempt < 5 => continue,
                Err(e) => return Err(error(e)),
            }
        }
    }
}
