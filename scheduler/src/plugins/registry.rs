//! The in-tree plugins by name (upstream `plugins/registry.go`), created with their configured args.

use std::sync::Arc;

use super::*;
use crate::config::PluginArgs;
use crate::framework::{Handle, Plugin};

/// Creates plugin `name`, or `None` if no such plugin exists.
pub fn new_plugin(
    name: &str,
    args: &PluginArgs,
    handle: &Handle,
) -> Option<Result<Arc<dyn Plugin>, String>> {
    fn shared<P: Plugin>(plugin: Result<P, String>) -> Result<Arc<dyn Plugin>, String> {
        plugin.map(|p| Arc::new(p) as Arc<dyn Plugin>)
    }
    let plugin = match name {
        scheduling_gates::NAME => shared(scheduling_gates::SchedulingGates::new(handle)),
        queue_sort::NAME => shared(queue_sort::PrioritySort::new(handle)),
        node_unschedulable::NAME => shared(node_unschedulable::NodeUnschedulable::new(handle)),
        node_name::NAME => shared(node_name::NodeName::new(handle)),
        node_ports::NAME => shared(node_ports::NodePorts::new(handle)),
        taint_toleration::NAME => shared(taint_toleration::TaintToleration::new(handle)),
        node_affinity::NAME => shared(node_affinity::NodeAffinity::new(
            &args.node_affinity,
            handle,
        )),
        node_resources::fit::NAME => {
            shared(node_resources::Fit::new(&args.node_resources_fit, handle))
        }
        node_resources::balanced_allocation::NAME => {
            shared(node_resources::BalancedAllocation::new(
                &args.node_resources_balanced_allocation,
                handle,
            ))
        }
        inter_pod_affinity::NAME => shared(inter_pod_affinity::InterPodAffinity::new(
            &args.inter_pod_affinity,
            handle,
        )),
        image_locality::NAME => shared(image_locality::ImageLocality::new(handle)),
        default_binder::NAME => shared(default_binder::DefaultBinder::new(handle)),
        default_preemption::NAME => shared(default_preemption::DefaultPreemption::new(
            &args.default_preemption,
            handle,
        )),
        pod_topology_spread::NAME => shared(pod_topology_spread::PodTopologySpread::new(
            args.pod_topology_spread.clone(),
            handle,
        )),
        volume_binding::NAME => shared(volume_binding::VolumeBinding::new(
            &args.volume_binding,
            handle,
        )),
        volume_zone::NAME => shared(volume_zone::VolumeZone::new(handle)),
        volume_restrictions::NAME => shared(volume_restrictions::VolumeRestrictions::new(handle)),
        node_volume_limits::NAME => shared(node_volume_limits::NodeVolumeLimits::new(handle)),
        dynamic_resources::NAME => shared(Ok(dynamic_resources::DynamicResources)),
        node_declared_features::NAME => shared(Ok(node_declared_features::NodeDeclaredFeatures)),
        _ => return None,
    };
    Some(plugin)
}
