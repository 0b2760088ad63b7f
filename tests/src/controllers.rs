//! Support for the controller-manager's end-to-end tests: a ferrokube-controller-manager process on the
//! shared control plane, running as kubeadm runs kube-controller-manager (each controller as its own
//! ServiceAccount), and no kubelets: tests set pod status themselves where readiness matters.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrokube_cluster::Identity;
use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::serde::de::DeserializeOwned;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::ComponentProcess;

/// Starts ferrokube-controller-manager.
pub struct ControllerManagerProcess;

impl ControllerManagerProcess {
    /// Starts ferrokube-controller-manager as system:kube-controller-manager with per-controller
    /// ServiceAccount credentials, no leader election, only `controllers` (upstream `--controllers` syntax)
    /// and `args` added.
    pub fn start(name: &str, controllers: &str, args: &[&str]) -> ComponentProcess {
        let mut all = vec!["--leader-elect=false"];
        all.extend_from_slice(args);
        Self::start_electing(name, controllers, &all)
    }

    /// Like [`ControllerManagerProcess::start`] but with leader election as `args` configure it (on by
    /// default, as upstream).
    pub fn start_electing(name: &str, controllers: &str, args: &[&str]) -> ComponentProcess {
        let controllers = format!("--controllers={controllers}");
        let mut all = vec![
            "--use-service-account-credentials=true",
            controllers.as_str(),
        ];
        all.extend_from_slice(args);
        ComponentProcess::start(
            "ferrokube-controller-manager",
            &Identity::controller_manager(),
            name,
            &all,
        )
    }
}

/// Plays the kubelets' part: marks every pod of `namespace` Running and Ready once it exists, until aborted.
pub fn mark_pods_ready(client: &Client, namespace: &str) -> JoinHandle<()> {
    mark_pods_ready_if(client, namespace, |_| true)
}

/// Marks the pods `start` accepts Running and Ready; the others never start.
pub fn mark_pods_ready_if(
    client: &Client,
    namespace: &str,
    start: impl Fn(&Pod) -> bool + Send + 'static,
) -> JoinHandle<()> {
    let pods = Api::<Pod>::namespaced(client.clone(), namespace);
    tokio::spawn(async move {
        loop {
            if let Ok(list) = pods.list(&ListParams::default()).await {
                for pod in list.items {
                    if pod.metadata.deletion_timestamp.is_some() || is_ready(&pod) || !start(&pod) {
                        continue;
                    }
                    let now = k8s_openapi::jiff::Timestamp::now().to_string();
                    let status = json!({"status": {"phase": "Running", "conditions": [
                        {"type": "Ready", "status": "True", "lastTransitionTime": now},
                        {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}
                    ]}});
                    let name = pod.metadata.name.unwrap_or_default();
                    let _ = pods
                        .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
                        .await;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// Whether the pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Watches `K` in `namespace` and calls `check` with every object after each change once the first list is
/// in; `check`'s complaints are collected in the returned list.
pub fn watch_all<K>(
    client: &Client,
    namespace: &str,
    check: impl Fn(&BTreeMap<String, K>) -> Option<String> + Send + 'static,
) -> (JoinHandle<()>, Arc<Mutex<Vec<String>>>)
where
    K: kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let violations = Arc::new(Mutex::new(Vec::new()));
    let found = violations.clone();
    let api = Api::<K>::namespaced(client.clone(), namespace);
    let task = tokio::spawn(async move {
        let mut objects: BTreeMap<String, K> = BTreeMap::new();
        let mut init: BTreeMap<String, K> = BTreeMap::new();
        let mut stream = std::pin::pin!(watcher::watcher(api, watcher::Config::default()));
        let mut listed = false;
        while let Some(event) = stream.next().await {
            let name = |o: &K| o.meta().name.clone().unwrap_or_default();
            match event {
                Ok(Event::Init) => init.clear(),
                Ok(Event::InitApply(o)) => {
                    init.insert(name(&o), o);
                    continue;
                }
                Ok(Event::InitDone) => {
                    objects = std::mem::take(&mut init);
                    listed = true;
                }
                Ok(Event::Apply(o)) => {
                    objects.insert(name(&o), o);
                }
                Ok(Event::Delete(o)) => {
                    objects.remove(&name(&o));
                }
                Err(_) => continue,
            }
            if !listed {
                continue;
            }
            if let Some(v) = check(&objects) {
                found.lock().unwrap().push(v);
            }
        }
    });
    (task, violations)
}
