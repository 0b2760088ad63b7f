//! `ferrokube up`'s cluster: upstream etcd, kube-apiserver and kube-proxy, CoreDNS and metrics-server as
//! Deployments, and ferrokube's scheduler, controller-manager and one kubelet (with a containerd of its
//! own) per node, all on this host. Its pieces: the [`plan`], the host [`network`], the [`components`]'
//! command lines, their [`supervisor`], the files' [`layout`], the run [`record`] and the [`teardown`].

pub mod components;
pub mod layout;
pub mod lock;
pub mod network;
pub mod plan;
pub mod record;
pub mod supervisor;
pub mod teardown;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

use self::components::{KubeletFiles, sibling_binary};
use self::layout::Layout;
use self::lock::HostLock;
use self::plan::{CLUSTER_CIDR, CLUSTER_DNS, CLUSTER_DOMAIN, CONTROL_PLANE_IP, ClusterPlan};
use self::record::{ComponentRecord, RunRecord};
use self::supervisor::{CommandFn, Supervised};
use crate::containerd::Containerd;
use crate::{
    ControlPlane, ControlPlaneConfig, Error, Identity, component_images, coredns, images,
    kube_proxy, metrics_server, upstream,
};

/// The upstream binaries a cluster runs (hack/upstream builds them).
pub const UPSTREAM_BINARIES: [&str; 5] = [
    "etcd",
    "kube-apiserver",
    kube_proxy::NAME,
    "coredns",
    "metrics-server",
];
/// ferrokube's binaries a cluster runs.
const FERROKUBE_BINARIES: [&str; 3] = [
    "ferrokube-scheduler",
    "ferrokube-controller-manager",
    "ferrokube-kubelet",
];

/// How long the nodes get to become Ready, and the add-ons to become available.
const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// A running local cluster. Dropping it without [`LocalCluster::stop`] still stops every process, but
/// leaves the pods' network state for `ferrokube down`.
pub struct LocalCluster {
    // Field order is drop order: components, then the containerds, then the control plane.
    components: Vec<Supervised>,
    containerds: Vec<Containerd>,
    control_plane: ControlPlane,
    layout: Layout,
    plan: ClusterPlan,
    record: RunRecord,
    // Released last, once everything host-wide is gone.
    lock: HostLock,
}

impl LocalCluster {
    /// Starts a cluster of `plan` with its files in `layout`, the apiserver on `apiserver_port`; `progress`
    /// hears what it is doing.
    pub async fn start(
        layout: Layout,
        plan: ClusterPlan,
        apiserver_port: u16,
        progress: &dyn Fn(&str),
    ) -> Result<Self, Error> {
        let lock = HostLock::acquire(layout.home())?;
        check_binaries()?;
        // What a crashed cluster left would collide with this one (links, addresses, stale sandboxes).
        teardown::clean_up(&layout, &mut teardown::Removed::default()).await;
        for dir in [layout.logs(), layout.nodes()] {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }

        progress(&format!(
            "Starting etcd and kube-apiserver (Kubernetes {}), advertised at {CONTROL_PLANE_IP}",
            component_base::version::KUBERNETES_VERSION
        ));
        let control_plane = ControlPlane::start(ControlPlaneConfig {
            apiserver_port,
            node_names: plan.node_names(),
            node_ips: plan.node_ips(),
            advertise_address: Some(IpAddr::V4(CONTROL_PLANE_IP)),
        })
        .await?;
        network::set_up(&plan)?;
        let mut cluster = Self {
            components: Vec::new(),
            containerds: Vec::new(),
            control_plane,
            layout,
            plan,
            record: RunRecord {
                pid: std::process::id(),
                ..Default::default()
            },
            lock,
        };
        cluster.record.apiserver = cluster.control_plane.url().to_string();
        cluster.record_control_plane();
        cluster.save_record()?;
        cluster.start_control_plane_components()?;
        cluster.start_nodes(progress)?;
        cluster.start_kube_proxy()?;
        progress("Waiting for the nodes to be Ready");
        cluster.wait_nodes_ready().await?;
        cluster.start_add_ons(progress).await?;
        Ok(cluster)
    }

    /// The control plane.
    pub fn control_plane(&self) -> &ControlPlane {
        &self.control_plane
    }

    /// The cluster's shape.
    pub fn plan(&self) -> &ClusterPlan {
        &self.plan
    }

    /// The run record (components, pids, logs).
    pub fn record(&self) -> &RunRecord {
        &self.record
    }

    /// Restarts components that exited (after their back-off); returns a status line per change.
    pub fn supervise(&mut self) -> Vec<String> {
        let lines: Vec<String> = self
            .components
            .iter_mut()
            .filter_map(Supervised::poll)
            .collect();
        if !lines.is_empty() {
            self.sync_record();
            if let Err(e) = self.save_record() {
                tracing::warn!("cannot update the run record: {e}");
            }
        }
        lines
    }

    /// Stops everything and removes what the nodes made; returns what teardown could not remove.
    pub async fn stop(mut self) -> Vec<String> {
        // Kube-proxy first, as kubeadm's `reset`: nothing puts its rules back while they are removed.
        for component in self.components.iter_mut().rev() {
            component.stop(Duration::from_secs(10));
        }
        let Self {
            components,
            containerds,
            control_plane,
            layout,
            lock,
            ..
        } = self;
        drop(components);
        drop(containerds);
        drop(control_plane);
        let mut removed = teardown::Removed::default();
        teardown::clean_up(&layout, &mut removed).await;
        drop(lock);
        removed.problems
    }

    fn start_control_plane_components(&mut self) -> Result<(), Error> {
        let scheduler_kubeconfig = self.kubeconfig(&Identity::scheduler())?;
        let scheduler = sibling_binary("ferrokube-scheduler")?;
        self.supervise_new(
            "ferrokube-scheduler",
            Box::new(move || {
                let mut command = std::process::Command::new(&scheduler);
                command.args(components::scheduler_args(&scheduler_kubeconfig));
                command
            }),
        )?;
        let kcm_kubeconfig = self.kubeconfig(&Identity::controller_manager())?;
        let ca = self.control_plane.pki().ca_cert.clone();
        let kcm = sibling_binary("ferrokube-controller-manager")?;
        self.supervise_new(
            "ferrokube-controller-manager",
            Box::new(move || {
                let mut command = std::process::Command::new(&kcm);
                command.args(components::controller_manager_args(&kcm_kubeconfig, &ca));
                command
            }),
        )
    }

    fn start_nodes(&mut self, progress: &dyn Fn(&str)) -> Result<(), Error> {
        let kubelet = sibling_binary("ferrokube-kubelet")?;
        for node in self.plan.nodes.clone() {
            progress(&format!(
                "Starting {}: containerd, images, ferrokube-kubelet at {} with pods in {}",
                node.name, node.ip, node.pod_cidr
            ));
            let dirs = self.layout.node(&node.name);
            let containerd_dir = dirs.containerd();
            std::fs::create_dir_all(&containerd_dir).map_err(|e| Error::io(&containerd_dir, e))?;
            let containerd = Containerd::start(&containerd_dir)?;
            images::import_busybox(containerd.socket())?;
            // A second name for the same image, so the demo has an image to roll to and back.
            images::tag(
                containerd.socket(),
                images::BUSYBOX_IMAGE,
                &format!("docker.io/library/{}", crate::demo::FIRST_IMAGE),
            )?;
            coredns::import_image(containerd.socket())?;
            metrics_server::import_image(containerd.socket())?;
            component_images::import_images(containerd.socket())?;
            crate::cni::write_bridge_conflist(&dirs.cni(), &node.bridge, &node.pod_cidr)?;
            self.record.components.push(ComponentRecord {
                name: format!("containerd-{}", node.name),
                pid: Some(containerd.pid()),
                log: containerd.dir().join("containerd.log"),
            });
            let files = KubeletFiles {
                kubeconfig: self.kubeconfig(&Identity::node(&node.name))?,
                root_dir: dirs.kubelet_root(),
                containerd_socket: containerd.socket().to_path_buf(),
                cni_conf_dir: dirs.cni(),
                pod_logs_dir: dirs.pod_logs(),
                serving: self
                    .control_plane
                    .kubelet_serving(&node.name)
                    .map(|(cert, key)| (cert.to_path_buf(), key.to_path_buf())),
                client_ca: self.control_plane.pki().ca_cert.clone(),
            };
            self.containerds.push(containerd);
            let kubelet = kubelet.clone();
            let args = components::kubelet_args(&node, &files);
            self.supervise_new(
                &format!("kubelet-{}", node.name),
                Box::new(move || {
                    let mut command = std::process::Command::new(&kubelet);
                    command.args(&args);
                    command
                }),
            )?;
        }
        Ok(())
    }

    /// One kube-proxy for the host: every node shares its network namespace, so one set of rules serves
    /// them all (a kube-proxy per node would fight over the same chains).
    fn start_kube_proxy(&mut self) -> Result<(), Error> {
        let bin = upstream::binary(kube_proxy::NAME)?;
        let mut config = kube_proxy::Config::new(
            self.kubeconfig(&Identity::kube_proxy())?,
            &self.plan.nodes[0].name,
            CLUSTER_CIDR,
        );
        config.metrics_bind_address = SocketAddr::from((CONTROL_PLANE_IP, 10249));
        let path = self.layout.nodes().join("kube-proxy.yaml");
        std::fs::write(&path, kube_proxy::config_file(&config)).map_err(|e| Error::io(&path, e))?;
        self.supervise_new(
            kube_proxy::NAME,
            Box::new(move || kube_proxy::command(&bin, &path)),
        )
    }

    async fn start_add_ons(&mut self, progress: &dyn Fn(&str)) -> Result<(), Error> {
        let admin = self.control_plane.client(&Identity::admin()).await?;
        progress("Deploying CoreDNS (kube-dns at 10.96.0.10) and metrics-server");
        let dns = coredns::Config {
            cluster_ip: IpAddr::V4(CLUSTER_DNS),
            cluster_domain: CLUSTER_DOMAIN.to_string(),
            ..Default::default()
        };
        coredns::deploy(&admin, &dns).await?;
        metrics_server::deploy(&admin, &metrics_server::Config::default()).await?;
        progress("Waiting for CoreDNS and metrics-server to be available");
        coredns::wait_available(&admin, READY_TIMEOUT).await?;
        metrics_server::wait_available(&admin, READY_TIMEOUT).await
    }

    async fn wait_nodes_ready(&mut self) -> Result<(), Error> {
        let nodes: Api<Node> = Api::all(self.control_plane.client(&Identity::admin()).await?);
        let started = Instant::now();
        loop {
            for component in &mut self.components {
                component.check_running()?;
            }
            let ready = nodes
                .list(&ListParams::default())
                .await
                .map(|list| list.items.iter().filter(|n| is_ready(n)).count())
                .unwrap_or(0);
            if ready == self.plan.nodes.len() {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(Error::Unavailable {
                    name: "the nodes".into(),
                    seconds: READY_TIMEOUT.as_secs(),
                    reason: format!(
                        "{ready} of {} Ready; see the kubelets' logs in {}",
                        self.plan.nodes.len(),
                        self.layout.logs().display()
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn supervise_new(&mut self, name: &str, command: CommandFn) -> Result<(), Error> {
        let component = Supervised::start(name, command, &self.layout.log(name))?;
        self.components.push(component);
        self.sync_record();
        self.save_record()
    }

    fn kubeconfig(&self, identity: &Identity) -> Result<std::path::PathBuf, Error> {
        self.control_plane
            .kubeconfig(identity)
            .map(std::path::Path::to_path_buf)
            .ok_or_else(|| Error::Pki(format!("no kubeconfig for {}", identity.user)))
    }

    fn record_control_plane(&mut self) {
        let pids = self.control_plane.pids();
        let logs = [
            (
                "kube-apiserver",
                self.control_plane.apiserver_log().to_path_buf(),
            ),
            ("etcd", self.control_plane.dir().join("etcd.log")),
        ];
        for ((name, log), pid) in logs.into_iter().zip(pids) {
            self.record.components.push(ComponentRecord {
                name: name.to_string(),
                pid: Some(pid),
                log,
            });
        }
    }

    /// Brings the supervised components' pids into the record.
    fn sync_record(&mut self) {
        for component in &self.components {
            let entry = ComponentRecord {
                name: component.name().to_string(),
                pid: component.pid(),
                log: component.log().to_path_buf(),
            };
            match self
                .record
                .components
                .iter_mut()
                .find(|c| c.name == entry.name)
            {
                Some(existing) => *existing = entry,
                None => self.record.components.push(entry),
            }
        }
    }

    fn save_record(&self) -> Result<(), Error> {
        self.record.save(&self.layout.record())
    }
}

/// Fails with the build command for the first binary that is missing, before anything starts.
fn check_binaries() -> Result<(), Error> {
    for name in UPSTREAM_BINARIES {
        upstream::binary(name)?;
    }
    for name in FERROKUBE_BINARIES {
        sibling_binary(name)?;
    }
    Ok(())
}

fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
