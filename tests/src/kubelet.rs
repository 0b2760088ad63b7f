//! Starting ferrokube-kubelet against the shared control plane.

use ferrokube_cluster::Identity;
use ferrokube_cluster::testing::shared_control_plane;

use crate::ComponentProcess;

/// Starts ferrokube-kubelet as `node` (its credentials are made by the harness for the test nodes), with
/// its own root directory, the healthz server off, and `args` added.
pub fn start_kubelet(node: &str, args: &[&str]) -> ComponentProcess {
    let root = shared_control_plane().dir().join(format!("kubelet-{node}"));
    std::fs::create_dir_all(&root).unwrap();
    let mut all = vec![
        format!("--hostname-override={node}"),
        format!("--root-dir={}", root.display()),
        "--healthz-port=0".to_string(),
    ];
    all.extend(args.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    ComponentProcess::spawn(
        "ferrokube-kubelet",
        &Identity::node(node),
        &format!("kubelet-{node}"),
        &all,
    )
}
