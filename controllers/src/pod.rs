//! The pod as the controller-manager reads and caches it: only the fields its controllers read.
//!
//! The pod informer holds every pod in the cluster, and k8s-openapi's `Pod` costs about 2.4 KiB before any
//! field is set and its `Container` 2.1 KiB more, most of it options no controller here looks at (probes,
//! security contexts, volumes, lifecycle hooks). These types keep the names and shapes of k8s-openapi's, so
//! code reads `pod.spec`, `pod.status.conditions` as before, and serde drops every other field while the
//! pod is decoded. A controller that comes to need another field adds it here; the compiler finds every
//! place that reads one that is not here.
//!
//! They are read-only on purpose: they are not `Serialize`, so a pod decoded this way can never be written
//! back (that would erase the fields it lacks). Pods are created from `PodTemplateSpec`s and changed by patches.

use std::sync::Arc;

use component_base::informer::IndexFunc;
use k8s_openapi::api::core::v1 as api;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Deserializer};

/// A pod (`core/v1` Pod), reduced to what the controllers read.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Pod {
    /// Standard object metadata.
    #[serde(default, deserialize_with = "compact_metadata")]
    pub metadata: ObjectMeta,
    /// What the pod asks for.
    pub spec: Option<PodSpec>,
    /// What the kubelet last reported.
    pub status: Option<PodStatus>,
}

/// The part of `PodSpec` the controllers read.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// The node the pod is bound to.
    pub node_name: Option<String>,
    /// The regular containers.
    #[serde(default, deserialize_with = "shrunk_vec")]
    pub containers: Vec<Container>,
    /// The init containers, sidecars among them.
    #[serde(default, deserialize_with = "shrunk")]
    pub init_containers: Option<Vec<Container>>,
    /// The taints the pod tolerates.
    #[serde(default, deserialize_with = "shrunk")]
    pub tolerations: Option<Vec<api::Toleration>>,
    /// The pod's hostname, for EndpointSlices.
    pub hostname: Option<String>,
    /// The pod's subdomain, for EndpointSlices.
    pub subdomain: Option<String>,
    /// How long the pod's containers get to stop, for the namespace controller's estimate.
    pub termination_grace_period_seconds: Option<i64>,
}

/// The part of a `Container` the controllers read.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// The container's name.
    pub name: String,
    /// Its ports, for resolving a Service's named target ports.
    #[serde(default, deserialize_with = "shrunk")]
    pub ports: Option<Vec<api::ContainerPort>>,
    /// `Always` for a sidecar (an init container that keeps running).
    pub restart_policy: Option<String>,
}

/// The part of `PodStatus` the controllers read.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    /// Pending, Running, Succeeded, Failed or Unknown.
    pub phase: Option<String>,
    /// Why the pod is in its phase (`Evicted`, ...).
    pub reason: Option<String>,
    /// Ready, ContainersReady, PodScheduled, ...
    #[serde(default, deserialize_with = "shrunk")]
    pub conditions: Option<Vec<api::PodCondition>>,
    /// The pod's primary IP.
    #[serde(rename = "podIP")]
    pub pod_ip: Option<String>,
    /// All of the pod's IPs, one per family.
    #[serde(rename = "podIPs", default, deserialize_with = "shrunk")]
    pub pod_ips: Option<Vec<api::PodIP>>,
    /// The regular containers' states.
    #[serde(default, deserialize_with = "shrunk")]
    pub container_statuses: Option<Vec<ContainerStatus>>,
    /// The init containers' states.
    #[serde(default, deserialize_with = "shrunk")]
    pub init_container_statuses: Option<Vec<ContainerStatus>>,
}

/// The part of a `ContainerStatus` the controllers read.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    /// The container's name.
    pub name: String,
    /// How often the container has restarted.
    #[serde(default)]
    pub restart_count: i32,
}

impl k8s_openapi::Resource for Pod {
    const API_VERSION: &'static str = <api::Pod as k8s_openapi::Resource>::API_VERSION;
    const GROUP: &'static str = <api::Pod as k8s_openapi::Resource>::GROUP;
    const KIND: &'static str = <api::Pod as k8s_openapi::Resource>::KIND;
    const VERSION: &'static str = <api::Pod as k8s_openapi::Resource>::VERSION;
    const URL_PATH_SEGMENT: &'static str = <api::Pod as k8s_openapi::Resource>::URL_PATH_SEGMENT;
    type Scope = <api::Pod as k8s_openapi::Resource>::Scope;
}

impl k8s_openapi::Metadata for Pod {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Decodes a list without the spare room a growing `Vec` keeps (a list of one has room for four): cached
/// pods live long, and there are many.
fn shrunk<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Vec<T>>, D::Error> {
    let mut list = Option::<Vec<T>>::deserialize(deserializer)?;
    if let Some(list) = list.as_mut() {
        list.shrink_to_fit();
    }
    Ok(list)
}

/// [`shrunk`] for a list that is always there.
fn shrunk_vec<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Vec<T>, D::Error> {
    Ok(shrunk(deserializer)?.unwrap_or_default())
}

/// Decodes metadata with its lists [`shrunk`] (the informer drops managedFields).
fn compact_metadata<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ObjectMeta, D::Error> {
    let mut meta = ObjectMeta::deserialize(deserializer)?;
    if let Some(owners) = meta.owner_references.as_mut() {
        owners.shrink_to_fit();
    }
    if let Some(finalizers) = meta.finalizers.as_mut() {
        finalizers.shrink_to_fit();
    }
    Ok(meta)
}

/// Pods by the node they are bound to (index `component_base::informer::index::NODE_NAME`); unbound pods
/// are not indexed.
pub fn by_node_name() -> IndexFunc<Pod> {
    Arc::new(|pod: &Pod| {
        let node = pod.spec.as_ref().and_then(|spec| spec.node_name.clone());
        node.into_iter().filter(|n| !n.is_empty()).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_controllers_read_and_drops_the_rest() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "a"}},
            "spec": {
                "nodeName": "n",
                "hostname": "h",
                "subdomain": "s",
                "tolerations": [{"key": "k", "operator": "Exists"}],
                "volumes": [{"name": "v", "emptyDir": {}}],
                "initContainers": [{"name": "i", "restartPolicy": "Always",
                    "volumeMounts": [{"name": "v", "mountPath": "/v"}]}],
                "containers": [{"name": "c", "image": "busybox",
                    "ports": [{"name": "http", "containerPort": 80}],
                    "livenessProbe": {"httpGet": {"port": 80}}}],
            },
            "status": {
                "phase": "Running",
                "podIP": "10.0.0.1",
                "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}],
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "c", "restartCount": 3, "ready": true,
                    "image": "busybox", "imageID": "", "state": {"running": {}}}],
                "initContainerStatuses": [{"name": "i", "restartCount": 1, "ready": true,
                    "image": "busybox", "imageID": ""}],
            },
        }))
        .unwrap();

        assert_eq!(pod.metadata.name.as_deref(), Some("p"));
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("n"));
        assert_eq!(
            (spec.hostname.as_deref(), spec.subdomain.as_deref()),
            (Some("h"), Some("s"))
        );
        assert_eq!(
            spec.tolerations.as_ref().unwrap()[0].key.as_deref(),
            Some("k")
        );
        let init = &spec.init_containers.as_ref().unwrap()[0];
        assert_eq!(
            (init.name.as_str(), init.restart_policy.as_deref()),
            ("i", Some("Always"))
        );
        let port = &spec.containers[0].ports.as_ref().unwrap()[0];
        assert_eq!(
            (port.name.as_deref(), port.container_port),
            (Some("http"), 80)
        );

        let status = pod.status.as_ref().unwrap();
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(status.pod_ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(status.pod_ips.as_ref().unwrap()[1].ip, "fd00::1");
        assert_eq!(status.conditions.as_ref().unwrap()[0].type_, "Ready");
        assert_eq!(
            status.container_statuses.as_ref().unwrap()[0].restart_count,
            3
        );
        assert_eq!(
            status.init_container_statuses.as_ref().unwrap()[0].restart_count,
            1
        );
    }

    #[test]
    fn lists_keep_no_spare_room() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u"}]},
            "spec": {"containers": [{"name": "c"}], "tolerations": [{"key": "a"}, {"key": "b"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        }))
        .unwrap();
        let spec = pod.spec.as_ref().unwrap();
        let status = pod.status.as_ref().unwrap();
        assert_eq!(
            pod.metadata.owner_references.as_ref().unwrap().capacity(),
            1
        );
        assert_eq!(spec.containers.capacity(), 1);
        assert_eq!(spec.tolerations.as_ref().unwrap().capacity(), 2);
        assert_eq!(status.conditions.as_ref().unwrap().capacity(), 1);
    }

    #[test]
    fn a_pod_decoded_so_is_a_small_fraction_of_k8s_openapis() {
        let ours = size_of::<Pod>() + size_of::<Container>();
        let theirs = size_of::<api::Pod>() + size_of::<api::Container>();
        assert!(ours * 4 < theirs, "{ours} bytes vs {theirs}");
    }

    #[test]
    fn kube_sees_a_core_v1_pod() {
        use kube::Resource;
        assert_eq!(Pod::api_version(&()), "v1");
        assert_eq!(Pod::kind(&()), "Pod");
        assert_eq!(Pod::plural(&()), "pods");
        assert_eq!(Pod::url_path(&(), Some("ns")), "/api/v1/namespaces/ns/pods");
    }
}
