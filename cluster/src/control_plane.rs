//! A real control plane for tests and `ferrokube up`: upstream etcd and kube-apiserver as child processes on
//! loopback, with a freshly generated PKI and a kubeconfig per identity.

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kube::Client;

use crate::cleanup::{self, Registration, STATE_DIR_PREFIX};
use crate::pki::{Identity, Pki, PkiPaths, apiserver_sans};
use crate::process::ManagedProcess;
use crate::{Error, kubeconfig, upstream};

/// The Service CIDR, as kubeadm's default; its first address is the `kubernetes` Service.
pub const SERVICE_CLUSTER_IP_RANGE: &str = "10.96.0.0/12";
const FIRST_SERVICE_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 96, 0, 1));
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Starts tried in all: a port seen free can be taken (by another process's outgoing connection, say)
/// before etcd or the apiserver binds it.
const PORT_RACE_ATTEMPTS: usize = 3;

/// How to start a control plane.
#[derive(Clone, Debug, Default)]
pub struct ControlPlaneConfig {
    /// The apiserver's port on 127.0.0.1; 0 picks a free one.
    pub apiserver_port: u16,
    /// Nodes to make kubelet credentials for (`system:node:NAME`).
    pub node_names: Vec<String>,
    /// Addresses of those nodes, which their kubelet serving certificates must cover.
    pub node_ips: Vec<(String, IpAddr)>,
    /// An address of this host that pods can reach: the apiserver then listens on every address (not only
    /// loopback) and advertises this one as the `kubernetes` Service's endpoint.
    pub advertise_address: Option<IpAddr>,
}

/// A running etcd and kube-apiserver. Dropping it stops both and removes its state directory.
pub struct ControlPlane {
    // Field order is drop order: the apiserver stops before etcd, then the directory goes.
    apiserver: ManagedProcess,
    etcd: ManagedProcess,
    dir: tempfile::TempDir,
    url: String,
    address: std::net::SocketAddr,
    pki: PkiPaths,
    kubeconfigs: Vec<(Identity, PathBuf)>,
    _registration: Registration,
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // A kubelet killed mid-test leaves its volume and namespace mounts in the directory.
        crate::sys::detach_mounts_under(self.dir.path());
    }
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver and waits until the apiserver's `/readyz` says ok.
    pub async fn start(config: ControlPlaneConfig) -> Result<Self, Error> {
        let mut attempt = 1;
        loop {
            match Self::start_once(&config).await {
                Err(e) if attempt < PORT_RACE_ATTEMPTS && lost_a_port_race(&e) => {
                    attempt += 1;
                    tracing::warn!(
                        "a port chosen for the control plane was taken before it was bound; starting again on \
                         other ports (attempt {attempt} of {PORT_RACE_ATTEMPTS})"
                    );
                }
                result => return result,
            }
        }
    }

    async fn start_once(config: &ControlPlaneConfig) -> Result<Self, Error> {
        let etcd_bin = upstream::binary("etcd")?;
        let apiserver_bin = upstream::binary("kube-apiserver")?;
        let apiserver_port = match config.apiserver_port {
            0 => free_port()?,
            port => ensure_free(port)?,
        };
        let (etcd_port, etcd_peer_port) = (free_port()?, free_port()?);

        let tmp = std::env::temp_dir();
        cleanup::sweep_stale_dirs(&tmp);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{STATE_DIR_PREFIX}{}-", std::process::id()))
            .tempdir_in(&tmp)
            .map_err(|e| Error::io(&tmp, e))?;

        let mut identities = vec![
            Identity::admin(),
            Identity::scheduler(),
            Identity::controller_manager(),
            Identity::apiserver_kubelet_client(),
            Identity::kube_proxy(),
        ];
        identities.extend(config.node_names.iter().map(|n| Identity::node(n)));
        let advertised: Vec<IpAddr> = config.advertise_address.into_iter().collect();
        let pki = Pki::generate(
            apiserver_sans(&advertised, FIRST_SERVICE_IP),
            &identities,
            &config.node_ips,
        )?;
        let pki_paths = pki.write(&dir.path().join("pki"))?;

        let url = format!("https://127.0.0.1:{apiserver_port}");
        let kubeconfigs = write_kubeconfigs(dir.path(), &url, &pki, &identities)?;

        let etcd = ManagedProcess::spawn(
            "etcd",
            etcd_command(
                &etcd_bin,
                &dir.path().join("etcd"),
                etcd_port,
                etcd_peer_port,
            ),
            &dir.path().join("etcd.log"),
        )?;
        let registration = cleanup::register(vec![etcd.pid()], Some(dir.path().to_path_buf()));
        let apiserver = ManagedProcess::spawn(
            "kube-apiserver",
            apiserver_command(
                &apiserver_bin,
                &pki_paths,
                ApiserverAddress {
                    port: apiserver_port,
                    advertise: config.advertise_address,
                },
                etcd_port,
            ),
            &dir.path().join("kube-apiserver.log"),
        )?;
        drop(registration);
        let registration = cleanup::register(
            vec![apiserver.pid(), etcd.pid()],
            Some(dir.path().to_path_buf()),
        );

        let mut control_plane = Self {
            apiserver,
            etcd,
            dir,
            url,
            address: (Ipv4Addr::LOCALHOST, apiserver_port).into(),
            pki: pki_paths,
            kubeconfigs,
            _registration: registration,
        };
        control_plane.wait_ready().await?;
        Ok(control_plane)
    }

    async fn wait_ready(&mut self) -> Result<(), Error> {
        let client = self.client(&Identity::admin()).await?;
        let started = Instant::now();
        loop {
            self.etcd.check_running()?;
            self.apiserver.check_running()?;
            // Asking before the port is open only makes the client log connection errors.
            if std::net::TcpStream::connect(self.address).is_ok() {
                let request = http::Request::get("/readyz")
                    .body(Vec::new())
                    .map_err(kube::Error::HttpError)?;
                if matches!(client.request_text(request).await.as_deref(), Ok("ok")) {
                    return Ok(());
                }
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(Error::NotReady {
                    name: "kube-apiserver".into(),
                    seconds: READY_TIMEOUT.as_secs(),
                    log: self.apiserver.log().to_path_buf(),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The apiserver's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The state directory (PKI, kubeconfigs, etcd data, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The PKI files the apiserver uses.
    pub fn pki(&self) -> &PkiPaths {
        &self.pki
    }

    /// The serving certificate and key made for `node`'s kubelet, when it is one of the configured nodes.
    pub fn kubelet_serving(&self, node: &str) -> Option<(&Path, &Path)> {
        self.pki
            .kubelet_serving
            .iter()
            .find(|(name, _, _)| name == node)
            .map(|(_, cert, key)| (cert.as_path(), key.as_path()))
    }

    /// The kubeconfig of `identity`, if the control plane made credentials for it.
    pub fn kubeconfig(&self, identity: &Identity) -> Option<&Path> {
        self.kubeconfigs
            .iter()
            .find(|(id, _)| id == identity)
            .map(|(_, path)| path.as_path())
    }

    /// The cluster administrator's kubeconfig.
    pub fn admin_kubeconfig(&self) -> &Path {
        // `start` always writes the admin's; the fallback path only exists to avoid a panic path.
        self.kubeconfig(&Identity::admin())
            .unwrap_or_else(|| self.kubeconfigs[0].1.as_path())
    }

    /// A client acting as `identity`, without client-side rate limiting.
    pub async fn client(&self, identity: &Identity) -> Result<Client, Error> {
        let path = self
            .kubeconfig(identity)
            .ok_or_else(|| Error::Pki(format!("no credentials were made for {}", identity.user)))?;
        let config = component_base::client::load_config(Some(path)).await?;
        Ok(component_base::client::client_from_config(config, 0.0, 0)?)
    }

    /// Process ids of the apiserver and etcd.
    pub fn pids(&self) -> Vec<u32> {
        vec![self.apiserver_pid(), self.etcd_pid()]
    }

    /// The apiserver's process id.
    pub fn apiserver_pid(&self) -> u32 {
        self.apiserver.pid()
    }

    /// etcd's process id.
    pub fn etcd_pid(&self) -> u32 {
        self.etcd.pid()
    }

    /// The apiserver's log file.
    pub fn apiserver_log(&self) -> &Path {
        self.apiserver.log()
    }
}

fn write_kubeconfigs(
    dir: &Path,
    url: &str,
    pki: &Pki,
    identities: &[Identity],
) -> Result<Vec<(Identity, PathBuf)>, Error> {
    identities
        .iter()
        .map(|identity| {
            let cert = pki
                .client(identity)
                .ok_or_else(|| Error::Pki(format!("no certificate for {}", identity.user)))?;
            let path = dir.join(format!("{}.kubeconfig", identity.file_stem()));
            kubeconfig::write(
                &path,
                &kubeconfig::render(url, &pki.ca.cert_pem, &identity.user, cert),
            )?;
            Ok((identity.clone(), path))
        })
        .collect()
}

fn etcd_command(bin: &Path, data_dir: &Path, port: u16, peer_port: u16) -> Command {
    let client_url = format!("http://127.0.0.1:{port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let mut command = Command::new(bin);
    command
        .arg("--name=default")
        .arg(format!("--data-dir={}", data_dir.display()))
        .arg(format!("--listen-client-urls={client_url}"))
        .arg(format!("--advertise-client-urls={client_url}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster=default={peer_url}"))
        // A throwaway single-member cluster: durability buys nothing and fsync costs seconds per test run.
        .arg("--unsafe-no-fsync")
        .arg("--log-level=warn");
    command
}

/// Where the apiserver serves and what it advertises.
struct ApiserverAddress {
    port: u16,
    advertise: Option<IpAddr>,
}

fn apiserver_command(
    bin: &Path,
    pki: &PkiPaths,
    address: ApiserverAddress,
    etcd_port: u16,
) -> Command {
    let path = |p: &Path| p.display().to_string();
    let (bind, advertise) = match address.advertise {
        Some(ip) => ("0.0.0.0".to_string(), ip.to_string()),
        None => ("127.0.0.1".to_string(), "127.0.0.1".to_string()),
    };
    let mut command = Command::new(bin);
    command.args([
        format!("--etcd-servers=http://127.0.0.1:{etcd_port}"),
        format!("--bind-address={bind}"),
        format!("--advertise-address={advertise}"),
        format!("--secure-port={}", address.port),
        format!("--tls-cert-file={}", path(&pki.apiserver_cert)),
        format!("--tls-private-key-file={}", path(&pki.apiserver_key)),
        format!("--client-ca-file={}", path(&pki.ca_cert)),
        format!("--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}"),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        format!(
            "--service-account-key-file={}",
            path(&pki.service_account_public_key)
        ),
        format!(
            "--service-account-signing-key-file={}",
            path(&pki.service_account_key)
        ),
        "--authorization-mode=Node,RBAC".into(),
        // The defaults (ServiceAccount among them) stay on; NodeRestriction is what kubeadm adds.
        "--enable-admission-plugins=NodeRestriction".into(),
        "--allow-privileged=true".into(),
        format!(
            "--requestheader-client-ca-file={}",
            path(&pki.front_proxy_ca_cert)
        ),
        "--requestheader-allowed-names=front-proxy-client".into(),
        "--requestheader-username-headers=X-Remote-User".into(),
        "--requestheader-group-headers=X-Remote-Group".into(),
        "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
        format!(
            "--proxy-client-cert-file={}",
            path(&pki.front_proxy_client_cert)
        ),
        format!(
            "--proxy-client-key-file={}",
            path(&pki.front_proxy_client_key)
        ),
        // Aggregated APIs (metrics-server) are dialled at their Service's endpoint addresses, not its
        // ClusterIP: no kube-proxy runs on the apiserver's host.
        "--enable-aggregator-routing=true".into(),
        format!(
            "--kubelet-client-certificate={}",
            path(&pki.kubelet_client_cert)
        ),
        format!("--kubelet-client-key={}", path(&pki.kubelet_client_key)),
        // Kubelets serve certificates from the cluster CA (see Pki::kubelet_serving), so the apiserver
        // verifies them as a kubeadm cluster with serverTLSBootstrap does.
        format!("--kubelet-certificate-authority={}", path(&pki.ca_cert)),
        "--kubelet-preferred-address-types=InternalIP,Hostname".into(),
    ]);
    command
}

/// A port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| Error::io(Path::new("127.0.0.1:0"), e))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|e| Error::io(Path::new("127.0.0.1:0"), e))
}

/// Whether a start failed only because a port chosen as free was taken before the process bound it.
fn lost_a_port_race(error: &Error) -> bool {
    matches!(error, Error::Exited { tail, .. } if tail.contains("address already in use"))
}

fn ensure_free(port: u16) -> Result<u16, Error> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port))
        .map(|_| port)
        .map_err(|_| Error::PortInUse { port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(tail: &str) -> Error {
        Error::Exited {
            name: "etcd".into(),
            status: "exit status: 1".into(),
            log: PathBuf::from("etcd.log"),
            tail: tail.into(),
        }
    }

    #[test]
    fn only_a_bind_conflict_while_starting_is_retried() {
        let etcd = r#"{"level":"fatal","msg":"discovery failed","error":"listen tcp 127.0.0.1:33313: bind: address already in use"}"#;
        assert!(lost_a_port_race(&exited(etcd)));
        let apiserver = "E1201 failed to listen on 127.0.0.1:6443: listen tcp 127.0.0.1:6443: bind: address already in use";
        assert!(lost_a_port_race(&exited(apiserver)));
        assert!(!lost_a_port_race(&exited(
            "open /etc/kubernetes/pki/ca.crt: no such file or directory"
        )));
        assert!(!lost_a_port_race(&Error::PortInUse { port: 6443 }));
    }
}
