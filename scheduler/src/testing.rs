//! Builders for the pods and nodes unit tests need (upstream `st.MakePod()` / `st.MakeNode()`).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Node, NodeSpec, NodeStatus, Pod, PodSpec, ResourceRequirements,
    Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::framework::{NodeInfo, PodInfo};

/// Builds a Pod.
#[derive(Clone, Debug, Default)]
pub struct MakePod(pub Pod);

/// A pod named `name` in namespace `default` with UID `name`.
pub fn make_pod(name: &str) -> MakePod {
    MakePod(Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(name.into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
        .collect()
}

impl MakePod {
    fn spec(&mut self) -> &mut PodSpec {
        self.0.spec.get_or_insert_with(Default::default)
    }

    /// Sets the namespace.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.0.metadata.namespace = Some(namespace.into());
        self
    }

    /// Adds a label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.0
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(key.into(), value.into());
        self
    }

    /// Sets the priority.
    pub fn priority(mut self, priority: i32) -> Self {
        self.spec().priority = Some(priority);
        self
    }

    /// Binds the pod to `node`.
    pub fn node(mut self, node: &str) -> Self {
        self.spec().node_name = Some(node.into());
        self
    }

    /// Sets the first container's requests, e.g. `&[("cpu", "100m"), ("memory", "1Gi")]`.
    pub fn req(mut self, requests: &[(&str, &str)]) -> Self {
        self.spec().containers[0].resources = Some(ResourceRequirements {
            requests: Some(quantities(requests)),
            ..Default::default()
        });
        self
    }

    /// Adds a container with `requests`.
    pub fn container(mut self, image: &str, requests: &[(&str, &str)]) -> Self {
        let index = self.spec().containers.len();
        self.spec().containers.push(Container {
            name: format!("c{index}"),
            image: Some(image.into()),
            resources: Some(ResourceRequirements {
                requests: Some(quantities(requests)),
                ..Default::default()
            }),
            ..Default::default()
        });
        self
    }

    /// Adds a host port on the first container.
    pub fn host_port(mut self, ip: &str, protocol: &str, port: i32) -> Self {
        self.spec().containers[0]
            .ports
            .get_or_insert_with(Default::default)
            .push(ContainerPort {
                container_port: port,
                host_port: Some(port),
                host_ip: (!ip.is_empty()).then(|| ip.into()),
                protocol: (!protocol.is_empty()).then(|| protocol.into()),
                ..Default::default()
            });
        self
    }

    /// Adds a nodeSelector entry.
    pub fn node_selector(mut self, key: &str, value: &str) -> Self {
        self.spec()
            .node_selector
            .get_or_insert_with(Default::default)
            .insert(key.into(), value.into());
        self
    }

    /// Adds a toleration.
    pub fn toleration(mut self, toleration: Toleration) -> Self {
        self.spec()
            .tolerations
            .get_or_insert_with(Default::default)
            .push(toleration);
        self
    }

    /// Changes the spec with `edit`.
    pub fn with_spec(mut self, edit: impl FnOnce(&mut PodSpec)) -> Self {
        edit(self.spec());
        self
    }

    /// The pod.
    pub fn obj(self) -> Pod {
        self.0
    }

    /// The pod as a PodInfo.
    pub fn info(self) -> Arc<PodInfo> {
        Arc::new(PodInfo::new(Arc::new(self.0)))
    }
}

/// Builds a Node.
#[derive(Clone, Debug, Default)]
pub struct MakeNode(pub Node);

/// A node named `name` with label kubernetes.io/hostname=`name` and nothing allocatable.
pub fn make_node(name: &str) -> MakeNode {
    MakeNode(Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(BTreeMap::from([(
                "kubernetes.io/hostname".into(),
                name.into(),
            )])),
            ..Default::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus::default()),
    })
}

impl MakeNode {
    /// Adds a label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.0
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(key.into(), value.into());
        self
    }

    /// Sets capacity and allocatable, e.g. `&[("cpu", "4"), ("memory", "32Gi"), ("pods", "110")]`.
    pub fn capacity(mut self, resources: &[(&str, &str)]) -> Self {
        let status = self.0.status.get_or_insert_with(Default::default);
        status.capacity = Some(quantities(resources));
        status.allocatable = Some(quantities(resources));
        self
    }

    /// Adds a taint.
    pub fn taint(mut self, key: &str, value: &str, effect: &str) -> Self {
        self.0
            .spec
            .get_or_insert_with(Default::default)
            .taints
            .get_or_insert_with(Default::default)
            .push(Taint {
                key: key.into(),
                value: (!value.is_empty()).then(|| value.into()),
                effect: effect.into(),
                ..Default::default()
            });
        self
    }

    /// Marks the node unschedulable (cordoned).
    pub fn unschedulable(mut self) -> Self {
        self.0
            .spec
            .get_or_insert_with(Default::default)
            .unschedulable = Some(true);
        self
    }

    /// The node.
    pub fn obj(self) -> Node {
        self.0
    }

    /// A NodeInfo for the node holding `pods`.
    pub fn info(self, pods: Vec<Pod>) -> NodeInfo {
        let mut info = NodeInfo::new(Arc::new(self.0));
        for pod in pods {
            info.add_pod(Arc::new(PodInfo::new(Arc::new(pod))));
        }
        info
    }
}
