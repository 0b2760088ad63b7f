//! Posting pod statuses (upstream's status manager): a `pods/status` patch whenever what the kubelet would
//! report differs from what it last reported.

use std::collections::HashMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

/// Remembers the last status posted per pod and posts changes.
pub struct StatusManager {
    client: Client,
    posted: Mutex<HashMap<String, PodStatus>>,
}

impl StatusManager {
    /// A status manager writing through `client`.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            posted: Mutex::default(),
        }
    }

    /// Posts `status` for `pod` unless it is what was posted last.
    pub async fn set(&self, pod: &Pod, status: PodStatus) -> Result<(), kube::Error> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if self.lock().get(&uid) == Some(&status) {
            return Ok(());
        }
        let api: Api<Pod> = Api::namespaced(
            self.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let patch = serde_json::json!({ "metadata": { "uid": uid }, "status": status });
        api.patch_status(
            pod.metadata.name.as_deref().unwrap_or_default(),
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await?;
        self.lock().insert(uid, status);
        Ok(())
    }

    /// Forgets a pod that is gone.
    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PodStatus>> {
        self.posted.lock().unwrap_or_else(|e| e.into_inner())
    }
}
