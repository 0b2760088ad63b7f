//! VolumeBinding: places pods where their PersistentVolumeClaims can be served, and binds the claims'
//! volumes before the pod is bound (upstream `plugins/volumebinding`).
//!
//! Covered: bound claims' PV node affinity, WaitForFirstConsumer claims matched to pre-provisioned PVs or
//! dynamically provisioned (StorageClass provisioner and allowedTopologies), an assume cache across cycles,
//! and PreBind's claimRef / selected-node writes followed by waiting for the claims to be bound. Not
//! covered: CSIStorageCapacity checks, in-tree-to-CSI PV translation, and capacity scoring (behind the
//! StorageCapacityScoring gate, off in 1.36, so PreScore skips as upstream does by default).

pub mod assume_cache;
pub mod binder;
pub mod prebind;
pub mod pv_helpers;
#[cfg(test)]
mod tests;

use crate::config::VolumeBindingArgs;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Pod;

use crate::framework::{
    ActionType, ClusterEvent, Code, CycleState, EventResource, FilterPlugin, Handle, Listers,
    NodeInfo, Plugin, PodInfo, PreBindPlugin, PreFilterPlugin, PreFilterResult, PreScorePlugin,
    ReservePlugin, ScorePlugin, Snapshot, Status,
};

use assume_cache::AssumeCache;
use binder::{NodeFit, PodVolumeClaims, PodVolumes, StaticBinding};

/// The plugin's upstream name.
pub const NAME: &str = "VolumeBinding";
/// The CycleState key of [`StateData`].
pub const STATE_KEY: &str = NAME;
/// The PreFilter reason when a claim that should already be bound is not.
pub const ERR_REASON_UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";

/// The per-pod state PreFilter writes. Filter records each feasible node's bindings in `by_node`: the
/// map is shared by clones of the state (as upstream's pointer is) and locked only for pods with claims
/// still to bind.
#[derive(Clone, Default)]
pub struct StateData {
    /// The pod's claims, sorted.
    pub claims: Arc<PodVolumeClaims>,
    /// What binding takes on each node that passed Filter.
    pub by_node: Arc<Mutex<HashMap<String, PodVolumes>>>,
    /// The assumed bindings for the node Reserve chose.
    pub reserved: Option<PodVolumes>,
    /// Whether Reserve found every claim already bound (PreBind then has nothing to do).
    pub all_bound: bool,
}

/// The VolumeBinding plugin.
pub struct VolumeBinding {
    listers: Arc<dyn Listers>,
    client: Option<kube::Client>,
    cache: AssumeCache,
    bind_timeout: Duration,
}

impl VolumeBinding {
    /// Creates the plugin; a negative bind timeout is rejected as upstream's validation does.
    pub fn new(settings: &VolumeBindingArgs, handle: &Handle) -> Result<Self, String> {
        let seconds = u64::try_from(settings.bind_timeout_seconds).map_err(|_| {
            "invalid BindTimeoutSeconds, should not be a negative value".to_string()
        })?;
        Ok(Self {
            listers: handle.listers.clone(),
            client: handle.client.clone(),
            cache: AssumeCache::default(),
            bind_timeout: Duration::from_secs(seconds),
        })
    }

    fn revert(&self, volumes: &PodVolumes) {
        prebind::forget(
            &self.cache,
            &volumes.static_bindings,
            &volumes.dynamic_provisions,
        );
    }
}

impl Plugin for VolumeBinding {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEvent> {
        let add_update = ActionType::ADD.or(ActionType::UPDATE);
        vec![
            ClusterEvent::new(EventResource::StorageClass, add_update),
            ClusterEvent::new(EventResource::PersistentVolumeClaim, add_update),
            ClusterEvent::new(EventResource::PersistentVolume, add_update),
            ClusterEvent::new(
                EventResource::Node,
                ActionType::ADD.or(ActionType::UPDATE_NODE_LABEL),
            ),
            ClusterEvent::new(EventResource::CsiNode, add_update),
        ]
    }

    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
    fn as_pre_score(&self) -> Option<&dyn PreScorePlugin> {
        Some(self)
    }
    fn as_score(&self) -> Option<&dyn ScorePlugin> {
        Some(self)
    }
    fn as_reserve(&self) -> Option<&dyn ReservePlugin> {
        Some(self)
    }
    fn as_pre_bind(&self) -> Option<&dyn PreBindPlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for VolumeBinding {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _snapshot: &Snapshot,
    ) -> (Option<PreFilterResult>, Status) {
        match binder::pod_has_claims(&pod.pod, self.listers.as_ref()) {
            Err(message) => return (None, Status::unresolvable(message)),
            Ok(false) => {
                state.write(STATE_KEY, StateData::default());
                return (None, Status::skip());
            }
            Ok(true) => {}
        }
        let claims = match binder::pod_volume_claims(&pod.pod, self.listers.as_ref(), &self.cache) {
            Ok(claims) => claims,
            Err(message) => return (None, Status::error(message)),
        };
        if !claims.unbound_immediate.is_empty() {
            return (None, Status::unresolvable(ERR_REASON_UNBOUND_IMMEDIATE));
        }
        state.write(
            STATE_KEY,
            StateData {
                claims: Arc::new(claims),
                ..Default::default()
            },
        );
        (None, Status::success())
    }
}

impl FilterPlugin for VolumeBinding {
    fn filter(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(data) = state.read::<StateData>(STATE_KEY) else {
            return Status::error(format!("reading {STATE_KEY:?} from cycleState: not found"));
        };
        match binder::find_pod_volumes(&data.claims, node.name(), node.labels()) {
            Err(message) => Status::error(message),
            Ok(NodeFit::Conflicts(reasons)) => Status::new(
                Code::UnschedulableAndUnresolvable,
                reasons.into_iter().map(String::from).collect(),
            ),
            Ok(NodeFit::Fits(volumes)) => {
                // Pods whose claims are all bound have nothing to remember per node.
                if !data.claims.unbound_delay.is_empty() {
                    data.by_node
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(node.name().to_string(), volumes);
                }
                Status::success()
            }
        }
    }
}

impl PreScorePlugin for VolumeBinding {
    fn pre_score(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _nodes: &[Arc<NodeInfo>],
        _snapshot: &Snapshot,
    ) -> Status {
        // Without the StorageCapacityScoring gate (off by default in 1.36) upstream has no scorer.
        Status::skip()
    }
}

impl ScorePlugin for VolumeBinding {
    fn score(&self, _state: &CycleState, _pod: &PodInfo, _node: &NodeInfo) -> Result<i64, Status> {
        Ok(0)
    }
}

impl ReservePlugin for VolumeBinding {
    fn reserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> Status {
        let Some(data) = state.read_mut::<StateData>(STATE_KEY) else {
            return Status::error(format!("reading {STATE_KEY:?} from cycleState: not found"));
        };
        let chosen = data
            .by_node
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(node)
            .cloned();
        let Some(mut volumes) = chosen else {
            data.all_bound = true;
            return Status::success();
        };
        if binder::pod_volumes_bound(&pod.pod, self.listers.as_ref(), &self.cache) {
            data.all_bound = true;
            return Status::success();
        }
        let mut bindings = Vec::with_capacity(volumes.static_bindings.len());
        for binding in volumes.static_bindings {
            let (bound, dirty) = binder::bind_volume_to_claim(&binding.volume, &binding.claim);
            let bound = Arc::new(bound);
            if dirty {
                self.cache.assume_volume(bound.clone());
            }
            bindings.push(StaticBinding {
                claim: binding.claim,
                volume: bound,
            });
        }
        volumes.static_bindings = bindings;
        for claim in &mut volumes.dynamic_provisions {
            let annotated = Arc::new(binder::claim_with_selected_node(claim, node));
            self.cache.assume_claim(annotated.clone());
            *claim = annotated;
        }
        data.all_bound = false;
        data.reserved = Some(volumes);
        Status::success()
    }

    fn unreserve(&self, state: &mut CycleState, _pod: &PodInfo, _node: &str) {
        if let Some(data) = state.read_mut::<StateData>(STATE_KEY)
            && let Some(volumes) = data.reserved.take()
        {
            self.revert(&volumes);
        }
    }
}

impl PreBindPlugin for VolumeBinding {
    fn pre_bind<'a>(
        &'a self,
        state: &'a CycleState,
        pod: &'a Pod,
        node: &'a str,
    ) -> BoxFuture<'a, Status> {
        Box::pin(async move {
            let Some(data) = state.read::<StateData>(STATE_KEY) else {
                return Status::error(format!("reading {STATE_KEY:?} from cycleState: not found"));
            };
            if data.all_bound {
                return Status::success();
            }
            let Some(volumes) = data.reserved.clone() else {
                return Status::error(format!("no pod volumes found for node {node:?}"));
            };
            let Some(client) = &self.client else {
                return Status::error("binding volumes: no API client");
            };
            tracing::debug!(pod = %pod_key(pod), node, "binding volumes for pod");
            match prebind::bind_pod_volumes(
                client,
                self.listers.as_ref(),
                &self.cache,
                pod,
                node,
                volumes,
                self.bind_timeout,
            )
            .await
            {
                Ok(()) => Status::success(),
                Err(message) => Status::error(message),
            }
        })
    }
}

fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}
