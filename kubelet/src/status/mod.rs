//! Pod status: what the kubelet reports about its pods, and posting it to the apiserver.

pub mod generate;
pub mod manager;
pub mod qos;
