//! A container's environment as upstream's makeEnvironmentVariables builds it: the image's, then `envFrom`
//! (ConfigMaps and Secrets, with prefixes), then `env` (literal values with `$(VAR)` expansion, the downward
//! API, ConfigMap and Secret keys), then the Services' variables the container does not set itself. Pure:
//! the ConfigMaps, Secrets and Service variables are read beforehand.

use std::collections::{BTreeMap, HashMap, HashSet};

use component_base::informer::{SharedInformer, index};
use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVar, Node, Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{Api, Client};

use crate::envvars::{MASTER_NAMESPACE, ServiceEnvError, service_env_map};
use crate::runtime::ImageConfig;
use crate::volumemanager::payload::resource_value;

/// The ConfigMaps and Secrets a container's environment reads, by name, with their data as text.
#[derive(Debug, Clone, Default)]
pub struct EnvSources {
    /// ConfigMap data by ConfigMap name; absent when the ConfigMap does not exist.
    pub config_maps: HashMap<String, BTreeMap<String, String>>,
    /// Secret data by Secret name; absent when the Secret does not exist.
    pub secrets: HashMap<String, BTreeMap<String, String>>,
    /// The node's allocatable resources, which a `resourceFieldRef` to an unset limit reads; read only
    /// when the container has one.
    pub allocatable: BTreeMap<String, Quantity>,
    /// The Services' variables for the pod ([`crate::envvars::service_env_map`]).
    pub services: BTreeMap<String, String>,
}

/// Which object kind a source is, for lookups and upstream's messages.
#[derive(Clone, Copy)]
enum Kind {
    ConfigMap,
    Secret,
}

impl EnvSources {
    fn get(&self, kind: Kind, name: &str) -> Option<&BTreeMap<String, String>> {
        match kind {
            Kind::ConfigMap => self.config_maps.get(name),
            Kind::Secret => self.secrets.get(name),
        }
    }
}

/// Reads the ConfigMaps and Secrets `container` refers to in `env`/`envFrom` (the kubelet's node identity
/// may read only those of its own pods), and the node's allocatable resources when a variable reads a
/// container resource.
pub async fn fetch_env_sources(
    client: &Client,
    pod: &Pod,
    container: &Container,
) -> Result<EnvSources, kube::Error> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut sources = EnvSources::default();
    for (kind, name) in referenced(container) {
        match kind {
            Kind::ConfigMap if !sources.config_maps.contains_key(&name) => {
                if let Some(map) = config_maps.get_opt(&name).await? {
                    sources
                        .config_maps
                        .insert(name, map.data.unwrap_or_default());
                }
            }
            Kind::Secret if !sources.secrets.contains_key(&name) => {
                if let Some(secret) = secrets.get_opt(&name).await? {
                    let data = secret
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                        .collect();
                    sources.secrets.insert(name, data);
                }
            }
            _ => {}
        }
    }
    let reads_resources = container.env.iter().flatten().any(|v| {
        v.value_from
            .as_ref()
            .is_some_and(|f| f.resource_field_ref.is_some())
    });
    let node_name = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
    if let (true, Some(node_name)) = (reads_resources, node_name) {
        let node = Api::<Node>::all(client.clone()).get(node_name).await?;
        sources.allocatable = node.status.and_then(|s| s.allocatable).unwrap_or_default();
    }
    Ok(sources)
}

/// The Services' variables for `pod` from the kubelet's Service cache (upstream's getServiceEnvVarMap):
/// refused until the cache has been filled once, as a pod started before would miss the apiserver's
/// `KUBERNETES_SERVICE_HOST`.
pub fn service_env(
    services: &SharedInformer<Service>,
    pod: &Pod,
) -> Result<BTreeMap<String, String>, ServiceEnvError> {
    let enable_service_links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .ok_or(ServiceEnvError::NoServiceLinksSetting)?;
    if !services.has_synced() {
        return Err(ServiceEnvError::NotSynced);
    }
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let mut candidates = services.by_index(index::NAMESPACE, MASTER_NAMESPACE);
    if namespace != MASTER_NAMESPACE {
        candidates.extend(services.by_index(index::NAMESPACE, namespace));
    }
    Ok(service_env_map(
        namespace,
        enable_service_links,
        candidates.iter().map(AsRef::as_ref),
    ))
}

/// Every ConfigMap and Secret the container's environment names.
fn referenced(container: &Container) -> Vec<(Kind, String)> {
    let mut names = Vec::new();
    for source in container.env_from.iter().flatten() {
        if let Some(r) = &source.config_map_ref {
            names.push((Kind::ConfigMap, r.name.clone()));
        }
        if let Some(r) = &source.secret_ref {
            names.push((Kind::Secret, r.name.clone()));
        }
    }
    for var in container.env.iter().flatten() {
        let Some(from) = &var.value_from else {
            continue;
        };
        if let Some(r) = &from.config_map_key_ref {
            names.push((Kind::ConfigMap, r.name.clone()));
        }
        if let Some(r) = &from.secret_key_ref {
            names.push((Kind::Secret, r.name.clone()));
        }
    }
    names
}

/// `NAME=value` for the image's env, then `envFrom`, then `env`, then the Service variables that neither
/// set; later entries win when read by a process. `$(VAR)` references see the container's own variables
/// before the Services'. Errors are upstream's CreateContainerConfigError messages.
pub fn environment(
    pod: &Pod,
    container: &Container,
    image: &ImageConfig,
    sources: &EnvSources,
) -> Result<Vec<String>, String> {
    let mut env: Vec<String> = image.env.clone();
    let mut defined: HashMap<String, String> = env
        .iter()
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain(sources.services.clone())
        .collect();
    let image_len = env.len();
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.as_deref().unwrap_or_default();
        let (kind, name, optional) = match (&source.config_map_ref, &source.secret_ref) {
            (Some(r), _) => (Kind::ConfigMap, &r.name, r.optional),
            (None, Some(r)) => (Kind::Secret, &r.name, r.optional),
            (None, None) => continue,
        };
        match sources.get(kind, name) {
            Some(data) => {
                for (key, value) in data {
                    define(
                        &mut env,
                        &mut defined,
                        format!("{prefix}{key}"),
                        value.clone(),
                    );
                }
            }
            None if optional == Some(true) => {}
            None => return Err(not_found(kind, name)),
        }
    }
    for var in container.env.iter().flatten() {
        let values: HashMap<&str, &str> = defined
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        if let Some(value) = env_value(pod, container, var, &values, sources)? {
            define(&mut env, &mut defined, var.name.clone(), value);
        }
    }
    let own: HashSet<&str> = env[image_len..]
        .iter()
        .filter_map(|e| e.split_once('=').map(|(name, _)| name))
        .collect();
    let services: Vec<String> = sources
        .services
        .iter()
        .filter(|(name, _)| !own.contains(name.as_str()))
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    env.extend(services);
    Ok(env)
}

fn define(
    env: &mut Vec<String>,
    defined: &mut HashMap<String, String>,
    name: String,
    value: String,
) {
    env.push(format!("{name}={value}"));
    defined.insert(name, value);
}

/// One variable's value; `None` for an optional key that is missing (the variable is left out).
fn env_value(
    pod: &Pod,
    container: &Container,
    var: &EnvVar,
    defined: &HashMap<&str, &str>,
    sources: &EnvSources,
) -> Result<Option<String>, String> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let Some(from) = &var.value_from else {
        return Ok(Some(expand(
            var.value.as_deref().unwrap_or_default(),
            defined,
        )));
    };
    if let Some(field) = &from.field_ref {
        return Ok(Some(
            field_value(pod, &field.field_path).unwrap_or_default(),
        ));
    }
    let (kind, name, key, optional) = match (&from.config_map_key_ref, &from.secret_key_ref) {
        (Some(r), _) => (Kind::ConfigMap, &r.name, &r.key, r.optional),
        (None, Some(r)) => (Kind::Secret, &r.name, &r.key, r.optional),
        (None, None) => {
            let Some(resource) = &from.resource_field_ref else {
                return Ok(None);
            };
            // In the environment the container defaults to the one being started (upstream's
            // containerResourceRuntimeValue).
            let of = resource.container_name.as_deref().filter(|n| !n.is_empty());
            return resource_value(
                pod,
                of.unwrap_or(&container.name),
                &resource.resource,
                resource.divisor.as_ref(),
                &sources.allocatable,
            )
            .map(Some)
            .map_err(|e| e.to_string());
        }
    };
    let Some(data) = sources.get(kind, name) else {
        return if optional == Some(true) {
            Ok(None)
        } else {
            Err(not_found(kind, name))
        };
    };
    match data.get(key) {
        Some(value) => Ok(Some(value.clone())),
        None if optional == Some(true) => Ok(None),
        None => {
            let kind = match kind {
                Kind::ConfigMap => "ConfigMap",
                Kind::Secret => "Secret",
            };
            Err(format!(
                "couldn't find key {key} in {kind} {namespace}/{name}"
            ))
        }
    }
}

fn not_found(kind: Kind, name: &str) -> String {
    match kind {
        Kind::ConfigMap => format!("configmap \"{name}\" not found"),
        Kind::Secret => format!("secret \"{name}\" not found"),
    }
}

/// The downward API's pod fields, as upstream's podFieldSelectorRuntimeValue.
pub fn field_value(pod: &Pod, path: &str) -> Option<String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let status = pod.status.as_ref();
    let keyed = |prefix: &str, map: Option<&BTreeMap<String, String>>| {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        map?.get(key).cloned()
    };
    match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => spec?.node_name.clone(),
        "spec.serviceAccountName" => spec?.service_account_name.clone(),
        "status.hostIP" => status?.host_ip.clone(),
        "status.podIP" => status?.pod_ip.clone(),
        _ if path.starts_with("metadata.labels['") => {
            keyed("metadata.labels['", meta.labels.as_ref())
        }
        _ if path.starts_with("metadata.annotations['") => {
            keyed("metadata.annotations['", meta.annotations.as_ref())
        }
        _ => None,
    }
}

/// Expands `$(NAME)` references to defined variables; `$$` escapes; unknown references stay as written
/// (upstream's expansion.Expand).
pub fn expand(input: &str, values: &HashMap<&str, &str>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match values.get(name) {
                Some(value) => out.push_str(value),
                None => out.push_str(&format!("$({name})")),
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
#[path = "env_tests.rs"]
mod tests;
