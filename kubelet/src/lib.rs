//! ferrokube-kubelet: a drop-in replacement for the kubelet. It registers its Node, keeps the node's status
//! and Lease current, runs the pods bound to it on containerd, and serves the health endpoints on
//! upstream's healthz port.

pub mod admission;
pub mod cgroups;
pub mod config;
pub mod dns;
pub mod envvars;
pub mod housekeeping;
pub mod kuberuntime;
pub mod metrics;
pub mod node;
pub mod options;
pub mod pod_spec;
pub mod pod_workers;
pub mod prober;
pub mod runtime;
pub mod sandbox;
pub mod server;
pub mod stats;
pub mod status;
mod sys;
pub mod volumemanager;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use component_base::client::{self, ClientOptions};
use component_base::events::EventRecorder;
use component_base::informer::{InformerEvent, SharedInformerFactory, index};
use component_base::serving::{Readiness, Server};
use component_base::{logging, shutdown};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Client;
use kube::runtime::watcher;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use config::KubeletConfiguration;
use dns::DnsConfigurer;
use kuberuntime::manager::RuntimeManager;
use kuberuntime::pod_files::PodFiles;
use node::machine::MachineInfo;
use node::runtime_state::{self, RUNTIME_CHECK_PERIOD, RuntimeState};
use node::{NodeIdentity, NodeStatusManager};
pub use options::Flags;
use pod_workers::{PodWorkers, WorkerContext};
use runtime::{Runtime, RuntimeEvent};
use sandbox::Sandbox;
use status::manager::StatusManager;

/// Runs the kubelet until SIGTERM/SIGINT.
pub async fn run(flags: Flags) -> anyhow::Result<()> {
    logging::init(flags.logging.verbosity);
    let config = Arc::new(config::resolve(&flags)?);
    let identity = node_identity(&flags).await?;
    metrics::register(&identity.name);
    let shutdown = shutdown::on_signal()?;
    let server = match config.healthz_port.unwrap_or(0) {
        0 => None,
        port => {
            let address: IpAddr = config.healthz_bind_address.parse().with_context(|| {
                format!(
                    "invalid healthzBindAddress {:?}",
                    config.healthz_bind_address
                )
            })?;
            let port = u16::try_from(port).context("healthzPort out of range")?;
            Some(Server::bind(SocketAddr::new(address, port)).await?)
        }
    };
    let kubelet_server = bind_kubelet_server(&config, &flags, &identity).await?;
    let options = ClientOptions {
        kubeconfig: flags.kubeconfig.clone(),
        qps: config.kube_api_qps.unwrap_or(50.0),
        burst: u32::try_from(config.kube_api_burst).unwrap_or(100),
    };
    let client = client::connect(&options).await?;
    let recorder = EventRecorder::new(client.clone(), "kubelet", &identity.name);
    let machine = MachineInfo::read(&flags.root_dir);
    let (runtime_state, runtime_watch) = watch::channel(RuntimeState::default());
    let host_ips: Vec<String> = identity.ips.iter().map(ToString::to_string).collect();
    let node_name = identity.name.clone();
    let node_status = NodeStatusManager::new(
        client.clone(),
        identity,
        config.clone(),
        machine,
        runtime_watch,
        recorder.clone(),
    );
    let serving =
        server.map(|server| tokio::spawn(server.serve(Readiness::default(), shutdown.clone())));
    tokio::spawn(node_status.run(shutdown.clone()));

    let sandbox = Sandbox::new(
        &flags.cni_conf_dir,
        flags.cni_bin_dir.clone(),
        flags.root_dir.join("sandboxes"),
    );
    // Until containerd answers the node stays NotReady, as upstream's does while its runtime is down.
    if let Some(runtime) = connect_runtime(&config, &flags, &shutdown).await {
        tokio::spawn(runtime_state::watch_runtime(
            runtime.clone(),
            sandbox.clone(),
            runtime_state,
            shutdown.clone(),
        ));
        let factory = SharedInformerFactory::new(client.clone());
        // Every Service, as upstream's kubelet: the containers' Service variables read them.
        let services = factory.informer::<Service>();
        services.add_index(index::NAMESPACE, index::by_namespace());
        let workers = PodWorkers::new(WorkerContext {
            manager: RuntimeManager::new(
                runtime.clone(),
                sandbox,
                client.clone(),
                Path::new(&config.pod_logs_dir),
                PodFiles::new(dns_configurer(&config), &flags.root_dir.join("pods")),
                services,
            ),
            statuses: StatusManager::new(client.clone()),
            recorder: recorder.clone(),
            client: client.clone(),
            node_name: node_name.clone(),
            host_ips,
            resync: config.sync_frequency.as_std(),
            volumes: volumemanager::VolumeManager::new(client.clone(), &flags.root_dir),
            probes: prober::ProbeManager::new(runtime.clone(), recorder.clone()),
        });
        match workers.context().manager.adopt_running_containers().await {
            Ok(0) => {}
            Ok(adopted) => tracing::info!(adopted, "adopted the running containers"),
            Err(e) => tracing::warn!(error = %e, "cannot adopt the running containers"),
        }
        tokio::spawn(follow_container_exits(
            runtime.clone(),
            workers.clone(),
            shutdown.clone(),
        ));
        let pods = factory.informer_with::<Pod>(
            watcher::Config::default().fields(&format!("spec.nodeName={node_name}")),
        );
        let stats = Arc::new(stats::StatsProvider::new(Path::new(cgroups::CGROUP_MOUNT)));
        tokio::spawn(stats.clone().run(shutdown.clone()));
        let context = Arc::new(server::ServerContext {
            node_name: node_name.clone(),
            pods: pods.clone(),
            runtime,
            pod_logs_dir: PathBuf::from(&config.pod_logs_dir),
            stats,
        });
        let auth = Arc::new(server_auth(&config, client, &node_name));
        tokio::spawn(kubelet_server.serve(
            server::router(context, auth.clone()),
            auth.authenticator.clone(),
            shutdown.clone(),
        ));
        run_pods(factory, pods, workers, shutdown.clone()).await;
    }
    shutdown.cancelled().await;
    if let Some(serving) = serving {
        serving.await??;
    }
    Ok(())
}

/// Pods' DNS settings from clusterDNS, clusterDomain and resolvConf (read once, as upstream does).
fn dns_configurer(config: &KubeletConfiguration) -> DnsConfigurer {
    let host = match config.resolv_conf.as_deref().unwrap_or_default() {
        "" => None,
        path => match std::fs::read_to_string(path) {
            Ok(text) => Some(dns::parse_resolv_conf(&text)),
            Err(e) => {
                tracing::warn!(path, error = %e, "cannot read resolvConf; pods get no host DNS settings");
                Some(dns::DnsConfig::default())
            }
        },
    };
    DnsConfigurer {
        cluster_dns: config.cluster_dns.clone(),
        cluster_domain: config.cluster_domain.clone(),
        host,
    }
}

/// Connects to containerd, retrying every 5 s until it answers or the kubelet stops.
async fn connect_runtime(
    config: &KubeletConfiguration,
    flags: &Flags,
    stop: &CancellationToken,
) -> Option<Runtime> {
    let endpoint = &config.container_runtime_endpoint;
    let socket = PathBuf::from(endpoint.strip_prefix("unix://").unwrap_or(endpoint));
    loop {
        match Runtime::connect(&socket).await {
            Ok(runtime) => return Some(runtime.with_fifo_dir(&flags.root_dir.join("fifo"))),
            Err(e) => {
                tracing::warn!(error = %e, "cannot connect to the container runtime, retrying")
            }
        }
        tokio::select! {
            () = stop.cancelled() => return None,
            () = tokio::time::sleep(RUNTIME_CHECK_PERIOD) => {}
        }
    }
}

/// Binds the kubelet's server on `address:port` with its serving certificate: the configured files, or
/// a self-signed pair under `--cert-dir`.
async fn bind_kubelet_server(
    config: &KubeletConfiguration,
    flags: &Flags,
    identity: &NodeIdentity,
) -> anyhow::Result<server::KubeletServer> {
    let policy = component_base::serving::tls_policy::TlsPolicy::new(
        &config.tls_min_version,
        &config.tls_cipher_suites,
    )
    .context("failed to construct kubelet dependencies")?;
    let certificate = if config.tls_cert_file.is_empty() {
        server::ServingCertificate::self_signed(&flags.cert_dir, &identity.hostname, &identity.ips)?
    } else {
        server::ServingCertificate::load(
            Path::new(&config.tls_cert_file),
            Path::new(&config.tls_private_key_file),
        )?
    };
    // Upstream points its options at the self-signed pair it writes, so that pair is followed too.
    let serving_files = if config.tls_cert_file.is_empty() {
        (
            flags.cert_dir.join("kubelet.crt"),
            flags.cert_dir.join("kubelet.key"),
        )
    } else {
        (
            PathBuf::from(&config.tls_cert_file),
            PathBuf::from(&config.tls_private_key_file),
        )
    };
    let address: IpAddr = config
        .address
        .parse()
        .with_context(|| format!("invalid address {:?}", config.address))?;
    let port = u16::try_from(config.port).context("port out of range")?;
    let client_ca = &config.authentication.x509.client_ca_file;
    let client_ca = (!client_ca.is_empty()).then(|| PathBuf::from(client_ca));
    Ok(server::KubeletServer::bind(
        SocketAddr::new(address, port),
        certificate,
        Some(serving_files),
        client_ca,
        policy,
    )
    .await?)
}

/// The server's authenticator and authorizer from `authentication` and `authorization`; the server gives
/// the authenticator its client CA.
fn server_auth(config: &KubeletConfiguration, client: Client, node_name: &str) -> server::Auth {
    let authentication = &config.authentication;
    let webhook = authentication
        .webhook
        .enabled
        .unwrap_or_default()
        .then(|| authentication.webhook.cache_ttl.as_std());
    let authorization = &config.authorization;
    let authorizer = if authorization.mode == "Webhook" {
        server::Authorizer::Webhook(Box::new(server::Webhook::new(
            client.clone(),
            node_name,
            authorization.webhook.cache_authorized_ttl.as_std(),
            authorization.webhook.cache_unauthorized_ttl.as_std(),
        )))
    } else {
        server::Authorizer::AlwaysAllow
    };
    server::Auth {
        authenticator: Arc::new(server::Authenticator::new(
            authentication.anonymous.enabled.unwrap_or_default(),
            webhook.map(|ttl| (client, ttl)),
        )),
        authorizer,
    }
}

/// Feeds the pod workers the pods bound to this node until `stop`.
async fn run_pods(
    factory: SharedInformerFactory,
    pods: component_base::informer::SharedInformer<Pod>,
    workers: PodWorkers,
    stop: CancellationToken,
) {
    let mut events = pods.subscribe();
    factory.start(stop.clone());
    tokio::spawn(housekeeping::run(workers.clone(), pods, stop.clone()));
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return,
            event = events.recv() => event,
        };
        match event {
            Some(InformerEvent::Added(pod) | InformerEvent::Updated { new: pod, .. }) => {
                metrics::pod_observed_on_watch(&pod);
                workers.update(pod).await;
            }
            Some(InformerEvent::Deleted(pod)) => {
                metrics::pod_deleted(pod.metadata.uid.as_deref().unwrap_or_default());
                workers.removed(pod.metadata.uid.as_deref().unwrap_or_default());
            }
            None => return,
        }
    }
}

/// Container exits and OOM kills from containerd's event stream wake their pod's worker within
/// milliseconds; resubscribes when the stream breaks.
async fn follow_container_exits(runtime: Runtime, workers: PodWorkers, stop: CancellationToken) {
    use futures::StreamExt;
    while !stop.is_cancelled() {
        match runtime.events().await {
            Ok(events) => {
                let mut events = std::pin::pin!(events);
                loop {
                    let event = tokio::select! {
                        () = stop.cancelled() => return,
                        event = events.next() => event,
                    };
                    match event {
                        // Exec'd processes (probes) exit on the same topic; only the init process's
                        // exit is the container's.
                        Some(Ok(RuntimeEvent::Exit(exit))) => {
                            if exit.process_id == exit.container_id {
                                workers.container_exited(&exit.container_id);
                            }
                        }
                        Some(Ok(RuntimeEvent::Oom { container_id })) => {
                            workers.context().manager.oom_killed(&container_id).await;
                            workers.container_exited(&container_id);
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "containerd's event stream broke");
                            break;
                        }
                        None => break,
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot subscribe to containerd's events"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(RUNTIME_CHECK_PERIOD) => {}
        }
    }
}

/// The node's name (`--hostname-override` or the host name, lower-cased as upstream), addresses and labels.
async fn node_identity(flags: &Flags) -> anyhow::Result<NodeIdentity> {
    let hostname = match &flags.hostname_override {
        Some(name) => name.trim().to_lowercase(),
        None => std::fs::read_to_string("/proc/sys/kernel/hostname")
            .context("cannot read the host name")?
            .trim()
            .to_lowercase(),
    };
    anyhow::ensure!(!hostname.is_empty(), "empty hostname is invalid");
    let labels: std::collections::BTreeMap<String, String> =
        flags.node_labels.iter().cloned().collect();
    let forbidden = node::registration::forbidden_node_labels(&labels);
    anyhow::ensure!(
        forbidden.is_empty(),
        "unknown 'kubernetes.io' or 'k8s.io' labels specified with --node-labels: {forbidden:?}; \
         --node-labels in the 'kubernetes.io' namespace must begin with an allowed prefix \
         (kubelet.kubernetes.io, node.kubernetes.io) or be in the specifically allowed set"
    );
    Ok(NodeIdentity {
        ips: node::address::node_ips(&flags.node_ip, &hostname).await,
        name: hostname.clone(),
        hostname,
        labels,
    })
}
