//! Volumes and claims the scheduler has decided on but not yet written (upstream `PVAssumeCache` and
//! `PVCAssumeCache`): later scheduling cycles must see a chosen PV as taken and a claim as provisioning on
//! its selected node before the informers catch up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::framework::Listers;

use super::pv_helpers::volume_class;

/// Assumed PVs by name and PVCs by `namespace/name`. Only PreFilter, Reserve, Unreserve and PreBind touch
/// it, never Filter, so the locks stay off the hot path.
#[derive(Default)]
pub struct AssumeCache {
    volumes: Mutex<HashMap<String, Arc<PersistentVolume>>>,
    claims: Mutex<HashMap<String, Arc<PersistentVolumeClaim>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn version(meta: &ObjectMeta) -> Option<u64> {
    meta.resource_version.as_deref()?.parse().ok()
}

/// Whether the informer's object is newer than the one an assumption was made from (upstream compares
/// resource versions as etcd revisions).
pub fn is_newer(informer: &ObjectMeta, assumed: &ObjectMeta) -> bool {
    match (version(informer), version(assumed)) {
        (Some(informer), Some(assumed)) => informer > assumed,
        _ => informer.resource_version != assumed.resource_version,
    }
}

/// The claim key `namespace/name`.
pub fn claim_key(claim: &PersistentVolumeClaim) -> String {
    format!(
        "{}/{}",
        claim.metadata.namespace.as_deref().unwrap_or_default(),
        claim.metadata.name.as_deref().unwrap_or_default()
    )
}

impl AssumeCache {
    /// The volume as the scheduler sees it: the assumed copy until the informer has a newer one.
    pub fn volume(&self, listers: &dyn Listers, name: &str) -> Option<Arc<PersistentVolume>> {
        let listed = listers.persistent_volume(name);
        self.resolve_volume(&mut lock(&self.volumes), name, listed)
    }

    fn resolve_volume(
        &self,
        assumed: &mut HashMap<String, Arc<PersistentVolume>>,
        name: &str,
        listed: Option<Arc<PersistentVolume>>,
    ) -> Option<Arc<PersistentVolume>> {
        let Some(listed) = listed else {
            assumed.remove(name);
            return None;
        };
        match assumed.get(name) {
            Some(mine) if !is_newer(&listed.metadata, &mine.metadata) => Some(mine.clone()),
            Some(_) => {
                assumed.remove(name);
                Some(listed)
            }
            None => Some(listed),
        }
    }

    /// All volumes of a StorageClass, assumptions applied.
    pub fn volumes_of_class(
        &self,
        listers: &dyn Listers,
        class: &str,
    ) -> Vec<Arc<PersistentVolume>> {
        let mut assumed = lock(&self.volumes);
        listers
            .persistent_volumes()
            .into_iter()
            .filter_map(|listed| {
                let name = listed.metadata.name.clone().unwrap_or_default();
                self.resolve_volume(&mut assumed, &name, Some(listed))
            })
            .filter(|pv| volume_class(pv) == class)
            .collect()
    }

    /// The claim as the scheduler sees it: the assumed copy until the informer has a newer one.
    pub fn claim(
        &self,
        listers: &dyn Listers,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<PersistentVolumeClaim>> {
        let listed = listers.persistent_volume_claim(namespace, name);
        let key = format!("{namespace}/{name}");
        let mut assumed = lock(&self.claims);
        let Some(listed) = listed else {
            assumed.remove(&key);
            return None;
        };
        match assumed.get(&key) {
            Some(mine) if !is_newer(&listed.metadata, &mine.metadata) => Some(mine.clone()),
            Some(_) => {
                assumed.remove(&key);
                Some(listed)
            }
            None => Some(listed),
        }
    }

    /// Records a volume the scheduler has bound in memory.
    pub fn assume_volume(&self, volume: Arc<PersistentVolume>) {
        let name = volume.metadata.name.clone().unwrap_or_default();
        lock(&self.volumes).insert(name, volume);
    }

    /// Records a claim the scheduler has annotated in memory.
    pub fn assume_claim(&self, claim: Arc<PersistentVolumeClaim>) {
        lock(&self.claims).insert(claim_key(&claim), claim);
    }

    /// Forgets an assumed volume.
    pub fn restore_volume(&self, name: &str) {
        lock(&self.volumes).remove(name);
    }

    /// Forgets an assumed claim.
    pub fn restore_claim(&self, key: &str) {
        lock(&self.claims).remove(key);
    }
}
