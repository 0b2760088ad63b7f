//! The pod lifecycle on the container runtime (upstream's kuberuntime): what to do to a pod, and doing it.

pub mod actions;
mod adopt;
pub mod container_gc;
pub mod container_spec;
pub mod env;
pub mod image_pull;
mod lifecycle;
pub mod log_reader;
pub mod manager;
pub mod pod_files;
pub mod pod_logs;
pub mod record;
mod start;
pub mod start_time;
pub mod stop;
mod termination_message;
