//! CoreDNS, the cluster's DNS (`kube-dns` Service): its image, made from the binary hack/upstream builds, and
//! its objects, those kubeadm installs, with the image, cluster IP, domain and replica count of a ferrokube
//! cluster.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use component_base::version::COREDNS_VERSION;
use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use kube::api::Api;
use serde::Deserialize;
use serde_json::Value;

use crate::binary_image::import_binary_image;
use crate::{Error, addons, upstream};

/// Where the objects live, as kubeadm has it.
pub const NAMESPACE: &str = "kube-system";
/// The name of the Deployment, ConfigMap and ServiceAccount (kubeadm's CoreDNSDeploymentName).
pub const NAME: &str = "coredns";
/// The Service's name, kept from kube-dns for compatibility, as kubeadm does.
pub const SERVICE: &str = "kube-dns";
/// The `k8s-app` label of the pods and the Service.
pub const APP_LABEL: &str = "kube-dns";
/// The image's repository; the tag is the release.
pub const IMAGE_REPOSITORY: &str = "ferrokube.local/coredns";
/// The add-on's name in errors.
const ADDON: &str = "CoreDNS";
const MANIFEST: &str = include_str!("manifest.yaml");

/// The image ferrokube builds from the upstream binary, e.g. `ferrokube.local/coredns:v1.14.2`.
pub fn image() -> String {
    format!("{IMAGE_REPOSITORY}:{COREDNS_VERSION}")
}

/// Builds the image from upstream's binary (hack/upstream builds it; a static Go program, so the binary
/// alone, at `/coredns` as in upstream's image) and imports it into the containerd at `socket`.
pub fn import_image(socket: &Path) -> Result<(), Error> {
    import_binary_image(socket, &image(), &upstream::binary(NAME)?)
}

/// How CoreDNS runs in a cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The `kube-dns` Service's ClusterIP, the nameserver kubelets give pods (`--cluster-dns`).
    pub cluster_ip: IpAddr,
    /// The cluster's DNS domain (kubelets' `--cluster-domain`).
    pub cluster_domain: String,
    /// The Deployment's replicas.
    pub replicas: i32,
}

impl Default for Config {
    /// kubeadm's: the tenth address of the default Service CIDR 10.96.0.0/12, `cluster.local`, 2 replicas.
    fn default() -> Self {
        Self {
            cluster_ip: IpAddr::from([10, 96, 0, 10]),
            cluster_domain: "cluster.local".into(),
            replicas: 2,
        }
    }
}

/// kubeadm's Corefile for `cluster_domain`: cluster names from the `kubernetes` plugin, the rest forwarded
/// to the node's resolvers, positive and negative answers for the cluster domain not cached.
pub fn corefile(cluster_domain: &str) -> String {
    let cache = if cluster_domain.is_empty() {
        "cache 30".to_string()
    } else {
        format!(
            "cache 30 {{\n       disable success {cluster_domain}\n       \
             disable denial {cluster_domain}\n    }}"
        )
    };
    format!(
        ".:53 {{\n    errors\n    health {{\n       lameduck 5s\n    }}\n    ready\n    \
         kubernetes {cluster_domain} in-addr.arpa ip6.arpa {{\n       pods insecure\n       \
         fallthrough in-addr.arpa ip6.arpa\n       ttl 30\n    }}\n    prometheus :9153\n    \
         forward . /etc/resolv.conf {{\n       max_concurrent 1000\n    }}\n    {cache}\n    loop\n    \
         reload\n    loadbalance\n}}\n"
    )
}

/// kubeadm's objects with `config` applied, in the order kubeadm creates them (the Service last).
pub fn objects(config: &Config) -> Result<Vec<Value>, Error> {
    let mut objects = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(MANIFEST) {
        let mut object = Value::deserialize(document).map_err(manifest_error)?;
        match object["kind"].as_str() {
            Some("ConfigMap") => {
                object["data"]["Corefile"] = Value::from(corefile(&config.cluster_domain));
            }
            Some("Service") => {
                object["spec"]["clusterIP"] = Value::from(config.cluster_ip.to_string())
            }
            Some("Deployment") => object = customize(object, config)?,
            _ => {}
        }
        objects.push(object);
    }
    Ok(objects)
}

fn manifest_error(error: impl std::fmt::Display) -> Error {
    addons::manifest_error(ADDON, error)
}

/// Sets the Deployment's replicas and image (local only, so never pulled).
fn customize(deployment: Value, config: &Config) -> Result<Value, Error> {
    let mut deployment: Deployment = serde_json::from_value(deployment).map_err(manifest_error)?;
    let spec = deployment
        .spec
        .as_mut()
        .ok_or_else(|| manifest_error("the Deployment has no spec"))?;
    spec.replicas = Some(config.replicas);
    let container = spec
        .template
        .spec
        .as_mut()
        .and_then(|pod| pod.containers.iter_mut().find(|c| c.name == NAME))
        .ok_or_else(|| manifest_error(format!("the Deployment has no container {NAME}")))?;
    container.image = Some(image());
    container.image_pull_policy = Some("Never".into());
    // Upstream's image has /coredns as its ENTRYPOINT; the binary image only as its CMD, which args replace.
    container.command = Some(vec![format!("/{NAME}")]);
    serde_json::to_value(&deployment).map_err(manifest_error)
}

/// Creates or updates CoreDNS's objects (server-side apply, so running it again converges). The image must
/// be on the nodes ([`import_image`]); controllers schedule and start the pods.
pub async fn deploy(client: &Client, config: &Config) -> Result<(), Error> {
    addons::apply(client, ADDON, objects(config)?).await
}

/// Why the Deployment is not fully available (its current spec rolled out and every replica available),
/// or `None` when it is.
pub fn unavailable_reason(deployment: &Deployment) -> Option<String> {
    let wanted = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let generation = deployment.metadata.generation.unwrap_or(0);
    let Some(status) = deployment.status.as_ref() else {
        return Some("no status yet".into());
    };
    if status.observed_generation.unwrap_or(0) < generation {
        return Some(format!(
            "generation {generation} not observed yet (at {})",
            status.observed_generation.unwrap_or(0)
        ));
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < wanted || available < wanted {
        return Some(format!(
            "{available} of {wanted} replicas available, {updated} updated"
        ));
    }
    None
}

/// Waits up to `limit` for the Deployment to have every replica available (ready: CoreDNS's `/ready` says
/// its plugins, the `kubernetes` one synced with the apiserver, are ready).
pub async fn wait_available(client: &Client, limit: Duration) -> Result<(), Error> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
    let what = format!("Deployment {NAMESPACE}/{NAME}");
    addons::wait_available(&api, NAME, &what, limit, unavailable_reason).await
}

#[cfg(test)]
mod tests;
