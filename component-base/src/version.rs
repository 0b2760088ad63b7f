//! Versions: ferrokube's own, and the upstream releases it targets (read from hack/upstream at build time).

/// ferrokube's version.
pub const FERROKUBE_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The Kubernetes release ferrokube's components replace and are tested against.
pub const KUBERNETES_VERSION: &str = env!("FERROKUBE_KUBERNETES_VERSION");
/// The etcd release the local control plane runs.
pub const ETCD_VERSION: &str = env!("FERROKUBE_ETCD_VERSION");

/// The text every binary prints for `--version`.
pub fn long_version() -> &'static str {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (Kubernetes ",
        env!("FERROKUBE_KUBERNETES_VERSION"),
        ")"
    )
}
