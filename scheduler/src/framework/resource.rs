//! Resource amounts: shared with the kubelet's admission, so they live in component-base.

pub use component_base::resource::*;
