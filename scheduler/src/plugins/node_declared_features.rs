//! NodeDeclaredFeatures (upstream `plugins/nodedeclaredfeatures`, beta and on by default in 1.36): matches
//! the features a pod needs against those its node declares in `status.declaredFeatures`. ferrokube infers
//! no feature requirements from pod specs yet, so every pod passes; the plugin exists so the default
//! profile is upstream's.

use crate::framework::{
    CycleState, Plugin, PodInfo, PreFilterPlugin, PreFilterResult, Snapshot, Status,
};

/// The plugin's name.
pub const NAME: &str = "NodeDeclaredFeatures";

/// Requires nothing of nodes until feature inference exists.
#[derive(Default)]
pub struct NodeDeclaredFeatures;

impl Plugin for NodeDeclaredFeatures {
    fn name(&self) -> &'static str {
        NAME
    }
    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for NodeDeclaredFeatures {
    fn pre_filter(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _snapshot: &Snapshot,
    ) -> (Option<PreFilterResult>, Status) {
        (None, Status::skip())
    }
}
