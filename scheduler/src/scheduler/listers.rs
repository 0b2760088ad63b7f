//! The plugins' listers served from the scheduler's shared informers.

use std::collections::BTreeMap;
use std::sync::Arc;

use component_base::informer::{ObjectKey, SharedInformer, SharedInformerFactory, Watched, index};
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{
    Namespace, PersistentVolume, PersistentVolumeClaim, ReplicationController, Service,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::{CSINode, StorageClass};

use crate::framework::Listers;

/// Informers for every kind the plugins look up.
#[derive(Clone)]
pub struct InformerListers {
    /// Namespaces.
    pub namespaces: SharedInformer<Namespace>,
    /// PersistentVolumeClaims.
    pub claims: SharedInformer<PersistentVolumeClaim>,
    /// PersistentVolumes.
    pub volumes: SharedInformer<PersistentVolume>,
    /// StorageClasses.
    pub storage_classes: SharedInformer<StorageClass>,
    /// CSINodes.
    pub csi_nodes: SharedInformer<CSINode>,
    services: SharedInformer<Service>,
    replica_sets: SharedInformer<ReplicaSet>,
    stateful_sets: SharedInformer<StatefulSet>,
    replication_controllers: SharedInformer<ReplicationController>,
    pod_disruption_budgets: SharedInformer<PodDisruptionBudget>,
}

fn namespaced<K: Watched>(factory: &SharedInformerFactory) -> SharedInformer<K> {
    let informer = factory.informer::<K>();
    informer.add_index(index::NAMESPACE, index::by_namespace());
    informer
}

impl InformerListers {
    /// Registers the informers with `factory` (they start with it).
    pub fn new(factory: &SharedInformerFactory) -> Self {
        Self {
            namespaces: factory.informer(),
            claims: namespaced(factory),
            volumes: factory.informer(),
            storage_classes: factory.informer(),
            csi_nodes: factory.informer(),
            services: namespaced(factory),
            replica_sets: namespaced(factory),
            stateful_sets: namespaced(factory),
            replication_controllers: namespaced(factory),
            pod_disruption_budgets: namespaced(factory),
        }
    }

    /// Waits until every informer has listed once.
    pub async fn wait_for_sync(&self) {
        self.namespaces.wait_for_sync().await;
        self.claims.wait_for_sync().await;
        self.volumes.wait_for_sync().await;
        self.storage_classes.wait_for_sync().await;
        self.csi_nodes.wait_for_sync().await;
        self.services.wait_for_sync().await;
        self.replica_sets.wait_for_sync().await;
        self.stateful_sets.wait_for_sync().await;
        self.replication_controllers.wait_for_sync().await;
        self.pod_disruption_budgets.wait_for_sync().await;
    }
}

fn key(namespace: Option<&str>, name: &str) -> ObjectKey {
    ObjectKey {
        namespace: namespace.map(String::from),
        name: name.to_string(),
    }
}

impl Listers for InformerListers {
    fn namespace_labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self.namespaces
            .get(&key(None, namespace))
            .map(|n| n.metadata.labels.clone().unwrap_or_default())
    }
    fn persistent_volume_claim(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<PersistentVolumeClaim>> {
        self.claims.get(&key(Some(namespace), name))
    }
    fn persistent_volume(&self, name: &str) -> Option<Arc<PersistentVolume>> {
        self.volumes.get(&key(None, name))
    }
    fn persistent_volumes(&self) -> Vec<Arc<PersistentVolume>> {
        self.volumes.list()
    }
    fn storage_class(&self, name: &str) -> Option<Arc<StorageClass>> {
        self.storage_classes.get(&key(None, name))
    }
    fn csi_node(&self, name: &str) -> Option<Arc<CSINode>> {
        self.csi_nodes.get(&key(None, name))
    }
    fn services(&self, namespace: &str) -> Vec<Arc<Service>> {
        self.services.by_index(index::NAMESPACE, namespace)
    }
    fn replica_sets(&self, namespace: &str) -> Vec<Arc<ReplicaSet>> {
        self.replica_sets.by_index(index::NAMESPACE, namespace)
    }
    fn stateful_sets(&self, namespace: &str) -> Vec<Arc<StatefulSet>> {
        self.stateful_sets.by_index(index::NAMESPACE, namespace)
    }
    fn replication_controllers(&self, namespace: &str) -> Vec<Arc<ReplicationController>> {
        self.replication_controllers
            .by_index(index::NAMESPACE, namespace)
    }
    fn pod_disruption_budgets(&self, namespace: &str) -> Vec<Arc<PodDisruptionBudget>> {
        self.pod_disruption_budgets
            .by_index(index::NAMESPACE, namespace)
    }
}
