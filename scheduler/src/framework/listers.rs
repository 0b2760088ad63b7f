//! Read access to the cluster objects plugins consult besides nodes and pods (upstream's informer
//! listers). The scheduler serves them from its informers; unit tests from [`StaticListers`].

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{
    PersistentVolume, PersistentVolumeClaim, ReplicationController, Service,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::{CSINode, StorageClass};
use kube::ResourceExt;

/// What plugins may look up.
pub trait Listers: Send + Sync {
    /// A namespace's labels (for namespaceSelector), if the namespace is known.
    fn namespace_labels(&self, namespace: &str) -> Option<BTreeMap<String, String>>;
    /// A PersistentVolumeClaim.
    fn persistent_volume_claim(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<PersistentVolumeClaim>>;
    /// A PersistentVolume.
    fn persistent_volume(&self, name: &str) -> Option<Arc<PersistentVolume>>;
    /// All PersistentVolumes.
    fn persistent_volumes(&self) -> Vec<Arc<PersistentVolume>>;
    /// A StorageClass.
    fn storage_class(&self, name: &str) -> Option<Arc<StorageClass>>;
    /// A node's CSINode.
    fn csi_node(&self, name: &str) -> Option<Arc<CSINode>>;
    /// Services in a namespace.
    fn services(&self, namespace: &str) -> Vec<Arc<Service>>;
    /// ReplicaSets in a namespace.
    fn replica_sets(&self, namespace: &str) -> Vec<Arc<ReplicaSet>>;
    /// StatefulSets in a namespace.
    fn stateful_sets(&self, namespace: &str) -> Vec<Arc<StatefulSet>>;
    /// ReplicationControllers in a namespace.
    fn replication_controllers(&self, namespace: &str) -> Vec<Arc<ReplicationController>>;
    /// PodDisruptionBudgets in a namespace.
    fn pod_disruption_budgets(&self, namespace: &str) -> Vec<Arc<PodDisruptionBudget>>;
}

/// Listers over fixed object lists, for unit tests and tools.
#[derive(Clone, Debug, Default)]
pub struct StaticListers {
    /// Namespace labels by namespace name.
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// Claims.
    pub claims: Vec<Arc<PersistentVolumeClaim>>,
    /// Volumes.
    pub volumes: Vec<Arc<PersistentVolume>>,
    /// Storage classes.
    pub storage_classes: Vec<Arc<StorageClass>>,
    /// CSINodes.
    pub csi_nodes: Vec<Arc<CSINode>>,
    /// Services.
    pub services: Vec<Arc<Service>>,
    /// ReplicaSets.
    pub replica_sets: Vec<Arc<ReplicaSet>>,
    /// StatefulSets.
    pub stateful_sets: Vec<Arc<StatefulSet>>,
    /// ReplicationControllers.
    pub replication_controllers: Vec<Arc<ReplicationController>>,
    /// PodDisruptionBudgets.
    pub pod_disruption_budgets: Vec<Arc<PodDisruptionBudget>>,
}

fn in_namespace<K: ResourceExt>(objects: &[Arc<K>], namespace: &str) -> Vec<Arc<K>> {
    objects
        .iter()
        .filter(|o| o.namespace().as_deref() == Some(namespace))
        .cloned()
        .collect()
}

fn named<K: ResourceExt>(
    objects: &[Arc<K>],
    namespace: Option<&str>,
    name: &str,
) -> Option<Arc<K>> {
    objects
        .iter()
        .find(|o| o.name_any() == name && o.namespace().as_deref() == namespace)
        .cloned()
}

impl Listers for StaticListers {
    fn namespace_labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.namespaces.get(namespace).cloned()
    }
    fn persistent_volume_claim(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<PersistentVolumeClaim>> {
        named(&self.claims, Some(namespace), name)
    }
    fn persistent_volume(&self, name: &str) -> Option<Arc<PersistentVolume>> {
        named(&self.volumes, None, name)
    }
    fn persistent_volumes(&self) -> Vec<Arc<PersistentVolume>> {
        self.volumes.clone()
    }
    fn storage_class(&self, name: &str) -> Option<Arc<StorageClass>> {
        named(&self.storage_classes, None, name)
    }
    fn csi_node(&self, name: &str) -> Option<Arc<CSINode>> {
        named(&self.csi_nodes, None, name)
    }
    fn services(&self, namespace: &str) -> Vec<Arc<Service>> {
        in_namespace(&self.services, namespace)
    }
    fn replica_sets(&self, namespace: &str) -> Vec<Arc<ReplicaSet>> {
        in_namespace(&self.replica_sets, namespace)
    }
    fn stateful_sets(&self, namespace: &str) -> Vec<Arc<StatefulSet>> {
        in_namespace(&self.stateful_sets, namespace)
    }
    fn replication_controllers(&self, namespace: &str) -> Vec<Arc<ReplicationController>> {
        in_namespace(&self.replication_controllers, namespace)
    }
    fn pod_disruption_budgets(&self, namespace: &str) -> Vec<Arc<PodDisruptionBudget>> {
        in_namespace(&self.pod_disruption_budgets, namespace)
    }
}
