//! The scheduling framework: the types plugins see and the runtime that runs a profile's plugins
//! (upstream `pkg/scheduler/framework`).

pub mod cycle_state;
pub mod events;
pub mod handle;
pub mod interface;
pub mod listers;
pub mod node_info;
pub mod pod_info;
pub mod resource;
pub mod runtime;
pub mod snapshot;
pub mod status;

pub use cycle_state::CycleState;
pub use events::{ActionType, ClusterEvent, EventResource};
pub use handle::Handle;
pub use interface::*;
pub use listers::{Listers, StaticListers};
pub use node_info::NodeInfo;
pub use pod_info::PodInfo;
pub use resource::Resource;
pub use runtime::{ExtensionPoint, Framework};
pub use snapshot::Snapshot;
pub use status::{Code, Status};
