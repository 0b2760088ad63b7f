//! Support for the controller-manager's end-to-end tests: a ferrokube-controller-manager process on the
//! shared control plane, running as kubeadm runs kube-controller-manager (each controller as its own
//! ServiceAccount), and no kubelets: tests set pod status themselves where readiness matters.

use ferrokube_cluster::Identity;

use crate::ComponentProcess;

/// Starts ferrokube-controller-manager.
pub struct ControllerManagerProcess;

impl ControllerManagerProcess {
    /// Starts ferrokube-controller-manager as system:kube-controller-manager with per-controller
    /// ServiceAccount credentials, no leader election, only `controllers` (upstream `--controllers` syntax)
    /// and `args` added.
    pub fn start(name: &str, controllers: &str, args: &[&str]) -> ComponentProcess {
        let controllers = format!("--controllers={controllers}");
        let mut all = vec![
            "--use-service-account-credentials=true",
            "--leader-elect=false",
            controllers.as_str(),
        ];
        all.extend_from_slice(args);
        ComponentProcess::start(
            "ferrokube-controller-manager",
            &Identity::controller_manager(),
            name,
            &all,
        )
    }
}
