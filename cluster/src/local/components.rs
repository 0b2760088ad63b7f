//! The command lines of a local cluster's components: ferrokube's scheduler, controller-manager and one
//! kubelet per node, each configured as kubeadm would configure upstream's on a node of its own.

use std::path::{Path, PathBuf};

use super::plan::{CLUSTER_DNS, CLUSTER_DOMAIN, CONTROL_PLANE_IP, KUBELET_PORT, NodePlan};
use crate::Error;

/// The scheduler's serving port, upstream's default.
pub const SCHEDULER_PORT: u16 = 10259;
/// The controller-manager's serving port, upstream's default.
pub const CONTROLLER_MANAGER_PORT: u16 = 10257;
/// The kubelets' healthz port, upstream's default.
pub const KUBELET_HEALTHZ_PORT: u16 = 10248;

/// A ferrokube binary beside the running `ferrokube` (cargo puts a workspace's binaries together).
pub fn sibling_binary(name: &str) -> Result<PathBuf, Error> {
    let exe = std::env::current_exe().map_err(|e| Error::io(Path::new("/proc/self/exe"), e))?;
    let path = exe.with_file_name(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::MissingBinary {
            name: name.into(),
            path,
        })
    }
}

/// Delegated authentication and authorization with the component's own kubeconfig, as kubeadm configures
/// the secure port of both components.
fn delegation_args(kubeconfig: &Path) -> [String; 2] {
    [
        format!("--authentication-kubeconfig={}", kubeconfig.display()),
        format!("--authorization-kubeconfig={}", kubeconfig.display()),
    ]
}

/// ferrokube-scheduler's flags: leader election on (the default), serving HTTPS on the control plane's
/// address with delegated authentication and authorization.
pub fn scheduler_args(kubeconfig: &Path) -> Vec<String> {
    let [authentication, authorization] = delegation_args(kubeconfig);
    vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        authentication,
        authorization,
        format!("--bind-address={CONTROL_PLANE_IP}"),
        format!("--secure-port={SCHEDULER_PORT}"),
        "--leader-elect=true".into(),
        "-v=1".into(),
    ]
}

/// ferrokube-controller-manager's flags, as kubeadm's: each controller with its own ServiceAccount's
/// credentials, the cluster CA published to every namespace, and the secure port as the scheduler's.
pub fn controller_manager_args(kubeconfig: &Path, ca: &Path) -> Vec<String> {
    let [authentication, authorization] = delegation_args(kubeconfig);
    vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        authentication,
        authorization,
        format!("--bind-address={CONTROL_PLANE_IP}"),
        format!("--secure-port={CONTROLLER_MANAGER_PORT}"),
        "--leader-elect=true".into(),
        "--use-service-account-credentials=true".into(),
        format!("--root-ca-file={}", ca.display()),
        "-v=1".into(),
    ]
}

/// The files a node's kubelet is given.
#[derive(Clone, Debug)]
pub struct KubeletFiles {
    /// Its kubeconfig (`system:node:NAME`).
    pub kubeconfig: PathBuf,
    /// Its --root-dir.
    pub root_dir: PathBuf,
    /// The node's containerd socket.
    pub containerd_socket: PathBuf,
    /// Its CNI configuration directory.
    pub cni_conf_dir: PathBuf,
    /// Its --pod-logs-dir.
    pub pod_logs_dir: PathBuf,
    /// The serving certificate and key the cluster CA signed for the node.
    pub serving: Option<(PathBuf, PathBuf)>,
    /// The cluster CA, which client certificates (the apiserver's) are checked against.
    pub client_ca: PathBuf,
}

/// A node's kubelet flags: its own address, pod CIDR and directories; cluster DNS; serving on the node's
/// address with webhook authentication and authorization, as kubeadm configures kubelets.
pub fn kubelet_args(node: &NodePlan, files: &KubeletFiles) -> Vec<String> {
    let mut args = vec![
        format!("--kubeconfig={}", files.kubeconfig.display()),
        format!("--hostname-override={}", node.name),
        format!("--node-ip={}", node.ip),
        format!("--root-dir={}", files.root_dir.display()),
        format!(
            "--container-runtime-endpoint=unix://{}",
            files.containerd_socket.display()
        ),
        format!("--cni-conf-dir={}", files.cni_conf_dir.display()),
        format!("--pod-cidr={}", node.pod_cidr),
        format!("--pod-logs-dir={}", files.pod_logs_dir.display()),
        format!("--cluster-dns={CLUSTER_DNS}"),
        format!("--cluster-domain={CLUSTER_DOMAIN}"),
        format!("--address={}", node.ip),
        format!("--port={KUBELET_PORT}"),
        format!("--healthz-bind-address={}", node.ip),
        format!("--healthz-port={KUBELET_HEALTHZ_PORT}"),
        format!("--cert-dir={}", files.root_dir.join("pki").display()),
        format!("--client-ca-file={}", files.client_ca.display()),
        "--anonymous-auth=false".into(),
        "--authentication-token-webhook=true".into(),
        "--authorization-mode=Webhook".into(),
        "-v=1".into(),
    ];
    if let Some((cert, key)) = &files.serving {
        args.push(format!("--tls-cert-file={}", cert.display()));
        args.push(format!("--tls-private-key-file={}", key.display()));
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::plan::ClusterPlan;

    #[test]
    fn a_kubelet_serves_and_registers_on_its_own_node_address_and_pod_cidr() {
        let plan = ClusterPlan::new(2).unwrap();
        let files = KubeletFiles {
            kubeconfig: "/h/node-2.kubeconfig".into(),
            root_dir: "/h/nodes/node-2/kubelet".into(),
            containerd_socket: "/h/nodes/node-2/containerd/containerd.sock".into(),
            cni_conf_dir: "/h/nodes/node-2/cni".into(),
            pod_logs_dir: "/h/nodes/node-2/pod-logs".into(),
            serving: Some(("/p/node-2.crt".into(), "/p/node-2.key".into())),
            client_ca: "/p/ca.crt".into(),
        };
        let args = kubelet_args(&plan.nodes[1], &files);
        for want in [
            "--hostname-override=node-2",
            "--node-ip=10.200.0.12",
            "--address=10.200.0.12",
            "--healthz-bind-address=10.200.0.12",
            "--pod-cidr=10.244.2.0/24",
            "--cluster-dns=10.96.0.10",
            "--cluster-domain=cluster.local",
            "--container-runtime-endpoint=unix:///h/nodes/node-2/containerd/containerd.sock",
            "--tls-cert-file=/p/node-2.crt",
            "--anonymous-auth=false",
            "--authorization-mode=Webhook",
        ] {
            assert!(
                args.iter().any(|a| a == want),
                "{want} missing from {args:?}"
            );
        }
    }

    #[test]
    fn the_controller_manager_uses_service_account_credentials_and_publishes_the_ca() {
        let args = controller_manager_args(Path::new("/k"), Path::new("/p/ca.crt"));
        assert!(args.contains(&"--use-service-account-credentials=true".to_string()));
        assert!(args.contains(&"--root-ca-file=/p/ca.crt".to_string()));
        assert!(args.contains(&"--leader-elect=true".to_string()));
        assert!(scheduler_args(Path::new("/k")).contains(&"--leader-elect=true".to_string()));
    }

    #[test]
    fn both_components_delegate_authentication_and_authorization_with_their_own_kubeconfig() {
        for args in [
            scheduler_args(Path::new("/k/scheduler.conf")),
            controller_manager_args(Path::new("/k/controller-manager.conf"), Path::new("/ca")),
        ] {
            let kubeconfig = args[0].strip_prefix("--kubeconfig=").unwrap();
            for flag in ["--authentication-kubeconfig", "--authorization-kubeconfig"] {
                assert!(
                    args.contains(&format!("{flag}={kubeconfig}")),
                    "{flag} missing from {args:?}"
                );
            }
        }
    }
}
