//! Versions: ferrokube's own, and the upstream releases it targets (read from hack/upstream at build time).

/// ferrokube's version.
pub const FERROKUBE_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The Kubernetes release ferrokube's components replace and are tested against.
pub const KUBERNETES_VERSION: &str = env!("FERROKUBE_KUBERNETES_VERSION");
/// The etcd release the local control plane runs.
pub const ETCD_VERSION: &str = env!("FERROKUBE_ETCD_VERSION");
/// The metrics-server release that serves `metrics.k8s.io` (`kubectl top`) in ferrokube's clusters.
pub const METRICS_SERVER_VERSION: &str = env!("FERROKUBE_METRICS_SERVER_VERSION");
/// The CoreDNS release ferrokube's clusters run, the one kubeadm of the targeted Kubernetes deploys.
pub const COREDNS_VERSION: &str = env!("FERROKUBE_COREDNS_VERSION");

/// This machine's architecture as Go names it (GOARCH): the spelling of node labels, nodeInfo and
/// client-go's user agent.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The text every binary prints for `--version`.
pub fn long_version() -> &'static str {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (Kubernetes ",
        env!("FERROKUBE_KUBERNETES_VERSION"),
        ")"
    )
}
