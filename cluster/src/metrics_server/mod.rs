//! metrics-server (sigs.k8s.io/metrics-server), which serves `metrics.k8s.io` for `kubectl top` from what it
//! scrapes off each kubelet's `/metrics/resource`: its image, made from the binary hack/upstream builds, and
//! its objects, upstream's manifest of the pinned release with the image, flags and networking a ferrokube
//! cluster needs.

use std::path::Path;
use std::time::Duration;

use component_base::version::METRICS_SERVER_VERSION;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::EnvVar;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::Client;
use kube::api::Api;
use serde::Deserialize;
use serde_json::Value;

use crate::binary_image::import_binary_image;
use crate::{Error, addons, upstream};

/// Where the objects live, as upstream's manifest has it.
pub const NAMESPACE: &str = "kube-system";
/// The name of the ServiceAccount, Service and Deployment.
pub const NAME: &str = "metrics-server";
/// The APIService that sends `metrics.k8s.io/v1beta1` to metrics-server.
pub const API_SERVICE: &str = "v1beta1.metrics.k8s.io";
/// The image's repository; the tag is the release.
pub const IMAGE_REPOSITORY: &str = "ferrokube.local/metrics-server";
/// The add-on's name in errors.
const ADDON: &str = "metrics-server";
const MANIFEST: &str = include_str!("manifest.yaml");

/// The image ferrokube builds from the upstream binary, e.g. `ferrokube.local/metrics-server:v0.8.0`.
pub fn image() -> String {
    format!("{IMAGE_REPOSITORY}:{METRICS_SERVER_VERSION}")
}

/// Builds the image from upstream's binary (hack/upstream builds it; a static Go program, so the binary
/// alone, run as `/metrics-server` as in upstream's image) and imports it into the containerd at `socket`.
pub fn import_image(socket: &Path) -> Result<(), Error> {
    import_binary_image(socket, &image(), &upstream::binary("metrics-server")?)
}

/// How metrics-server runs in a cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// `--secure-port`, the container port the Service's `https` targets.
    pub secure_port: u16,
    /// Runs the pod in its node's network namespace: the apiserver reaches it at the node's address, and it
    /// reaches kubelets and an apiserver bound to the node's loopback without a pod network or kube-proxy.
    /// The port must then be free on the node.
    pub host_network: bool,
    /// The apiserver address (host, port) for its in-cluster client, when the `kubernetes` Service's
    /// ClusterIP does not reach the apiserver (no kube-proxy); `None` keeps the Service.
    pub apiserver: Option<(String, u16)>,
}

impl Default for Config {
    /// Upstream's: port 10250 in a pod network, the apiserver through the `kubernetes` Service.
    fn default() -> Self {
        Self {
            secure_port: 10250,
            host_network: false,
            apiserver: None,
        }
    }
}

/// metrics-server's flags: upstream's manifest's, with its test overlay's `--kubelet-insecure-tls` (kubelets'
/// serving certificates are not checked) and only InternalIP addresses, so each node is scraped at the
/// address and port (`--kubelet-use-node-status-port`) its kubelet reports.
pub fn args(config: &Config) -> Vec<String> {
    vec![
        "--cert-dir=/tmp".to_string(),
        format!("--secure-port={}", config.secure_port),
        "--kubelet-preferred-address-types=InternalIP".to_string(),
        "--kubelet-use-node-status-port".to_string(),
        "--metric-resolution=15s".to_string(),
        "--kubelet-insecure-tls".to_string(),
    ]
}

/// Upstream's objects with `config` applied, in the order they are applied (the APIService last, once its
/// backend exists).
pub fn objects(config: &Config) -> Result<Vec<Value>, Error> {
    let mut objects = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(MANIFEST) {
        let mut object = Value::deserialize(document).map_err(manifest_error)?;
        if object["kind"] == "Deployment" {
            object = customize(object, config)?;
        }
        objects.push(object);
    }
    Ok(objects)
}

fn manifest_error(error: impl std::fmt::Display) -> Error {
    addons::manifest_error(ADDON, error)
}

/// Sets the Deployment's image (local only, so never pulled), flags, port and networking.
fn customize(deployment: Value, config: &Config) -> Result<Value, Error> {
    let mut deployment: Deployment = serde_json::from_value(deployment).map_err(manifest_error)?;
    let pod = deployment
        .spec
        .as_mut()
        .and_then(|s| s.template.spec.as_mut())
        .ok_or_else(|| manifest_error("the Deployment has no pod spec"))?;
    if config.host_network {
        pod.host_network = Some(true);
        // Upstream's choice for host-network pods that still resolve cluster names.
        pod.dns_policy = Some("ClusterFirstWithHostNet".into());
    }
    let container = pod
        .containers
        .iter_mut()
        .find(|c| c.name == NAME)
        .ok_or_else(|| manifest_error(format!("the Deployment has no container {NAME}")))?;
    container.image = Some(image());
    container.image_pull_policy = Some("Never".into());
    // Upstream's image has it as its ENTRYPOINT; the binary image only as its CMD, which args replace.
    container.command = Some(vec![format!("/{NAME}")]);
    container.args = Some(args(config));
    for port in container.ports.iter_mut().flatten() {
        if port.name.as_deref() == Some("https") {
            port.container_port = i32::from(config.secure_port);
        }
    }
    if let Some((host, port)) = &config.apiserver {
        let env = |name: &str, value: String| EnvVar {
            name: name.to_string(),
            value: Some(value),
            ..EnvVar::default()
        };
        // What client-go's in-cluster config reads.
        container.env = Some(vec![
            env("KUBERNETES_SERVICE_HOST", host.clone()),
            env("KUBERNETES_SERVICE_PORT", port.to_string()),
        ]);
    }
    serde_json::to_value(&deployment).map_err(manifest_error)
}

/// Creates or updates metrics-server's objects (server-side apply, so running it again converges). The
/// image must be on the nodes ([`import_image`]); controllers schedule and start the pod.
pub async fn deploy(client: &Client, config: &Config) -> Result<(), Error> {
    addons::apply(client, ADDON, objects(config)?).await
}

/// Why the APIService is not Available (its condition's reason and message), or `None` when it is.
pub fn unavailable_reason(api_service: &APIService) -> Option<String> {
    let conditions = api_service
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref());
    let available = conditions.and_then(|cs| cs.iter().find(|c| c.type_ == "Available"));
    match available {
        Some(c) if c.status == "True" => None,
        Some(c) => Some(format!(
            "{}: {}",
            c.reason.as_deref().unwrap_or("no reason"),
            c.message.as_deref().unwrap_or("")
        )),
        None => Some("no Available condition yet".into()),
    }
}

/// Waits up to `limit` for the APIService to be Available: metrics-server is up, reachable from the
/// apiserver, and ready (it has scraped every node twice).
pub async fn wait_available(client: &Client, limit: Duration) -> Result<(), Error> {
    let api: Api<APIService> = Api::all(client.clone());
    let what = format!("APIService {API_SERVICE}");
    addons::wait_available(&api, API_SERVICE, &what, limit, unavailable_reason).await
}

#[cfg(test)]
mod tests;
