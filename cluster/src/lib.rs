//! The `ferrokube` CLI's library: local control planes (real upstream etcd and kube-apiserver) for tests and
//! `ferrokube up`, their PKI and kubeconfigs, and the process supervision that keeps nothing running after us.

pub mod addons;
pub mod bench;
pub mod binary_image;
pub mod cleanup;
pub mod cni;
pub mod component_images;
pub mod containerd;
pub mod control_plane;
pub mod coredns;
pub mod demo;
mod error;
pub mod images;
pub mod kube_proxy;
pub mod kubeconfig;
pub mod local;
pub mod metrics_server;
pub mod pki;
pub mod process;
pub mod sys;
pub mod testing;
pub mod upstream;

pub use containerd::Containerd;
pub use control_plane::{ControlPlane, ControlPlaneConfig};
pub use error::Error;
pub use pki::Identity;
