//! What the add-ons ferrokube deploys into its clusters (CoreDNS, metrics-server) share: applying their
//! objects by server-side apply, so deploying again converges, and waiting for them to be available.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use std::fmt::Debug;
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Error;

/// Server-side apply's field manager for what ferrokube deploys.
pub const FIELD_MANAGER: &str = "ferrokube";

/// An error in add-on `addon`'s objects.
pub fn manifest_error(addon: &'static str, error: impl std::fmt::Display) -> Error {
    Error::AddonManifest {
        addon,
        message: error.to_string(),
    }
}

/// The API resource of each kind the add-ons' objects have.
pub(crate) fn api_resource(kind: &str) -> Option<ApiResource> {
    Some(match kind {
        "ConfigMap" => ApiResource::erase::<ConfigMap>(&()),
        "ServiceAccount" => ApiResource::erase::<ServiceAccount>(&()),
        "Service" => ApiResource::erase::<Service>(&()),
        "ClusterRole" => ApiResource::erase::<ClusterRole>(&()),
        "ClusterRoleBinding" => ApiResource::erase::<ClusterRoleBinding>(&()),
        "RoleBinding" => ApiResource::erase::<RoleBinding>(&()),
        "Deployment" => ApiResource::erase::<Deployment>(&()),
        "APIService" => ApiResource::erase::<APIService>(&()),
        _ => return None,
    })
}

/// Creates or updates add-on `addon`'s `objects`, in order, by server-side apply.
pub async fn apply(client: &Client, addon: &'static str, objects: Vec<Value>) -> Result<(), Error> {
    for object in objects {
        let object: DynamicObject =
            serde_json::from_value(object).map_err(|e| manifest_error(addon, e))?;
        let kind = object.types.as_ref().map_or("", |t| t.kind.as_str());
        let resource = api_resource(kind)
            .ok_or_else(|| manifest_error(addon, format!("unexpected kind {kind}")))?;
        let name = object.metadata.name.clone().unwrap_or_default();
        let api: Api<DynamicObject> = match object.metadata.namespace.as_deref() {
            Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&object),
        )
        .await
        .map_err(|source| Error::Apply {
            object: format!("{kind} {name}"),
            source,
        })?;
    }
    Ok(())
}

/// Waits up to `limit` for object `name` of `api`, described as `what` in the error, to be available:
/// `unavailable` says why it is not yet, or `None` once it is.
pub async fn wait_available<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    limit: Duration,
    unavailable: impl Fn(&K) -> Option<String>,
) -> Result<(), Error>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug,
{
    let started = Instant::now();
    loop {
        let reason = match api.get_opt(name).await? {
            Some(object) => unavailable(&object),
            None => Some("it does not exist".into()),
        };
        let Some(reason) = reason else {
            return Ok(());
        };
        if started.elapsed() > limit {
            return Err(Error::Unavailable {
                name: what.to_string(),
                seconds: limit.as_secs(),
                reason,
            });
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
