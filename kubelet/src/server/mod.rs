//! The kubelet's HTTPS server on `--port` (10250): what users reach through the apiserver's node and pod
//! proxies — pods, logs, exec, attach, port-forward, metrics and stats — behind upstream's authentication
//! and authorization (pkg/kubelet/server/server.go).

mod attach;
pub mod auth;
pub mod containers;
mod exec;
pub mod logs;
mod pods;
pub mod portforward;
pub mod remotecommand;
mod run;
pub mod spdy;
mod stats;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use component_base::informer::{ObjectKey, SharedInformer};
use component_base::serving::authorities::{self, AuthoritySources, Follower};
use component_base::serving::tls_policy::TlsPolicy;
use component_base::serving::{https, tls};
use k8s_openapi::api::core::v1::Pod;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::runtime::Runtime;
pub use auth::{Auth, Authenticator, Authorizer, Webhook};
pub use component_base::serving::tls::{ServingCertificate, TlsError};

/// What the handlers read: the node's pods as the apiserver has them, and the container runtime.
pub struct ServerContext {
    /// This node's name (the authorizer's `nodes/<name>`).
    pub node_name: String,
    /// The pods bound to this node.
    pub pods: SharedInformer<Pod>,
    /// containerd.
    pub runtime: Runtime,
    /// Where container logs are written (`podLogsDir`).
    pub pod_logs_dir: PathBuf,
    /// The node's and pods' CPU and memory.
    pub stats: Arc<crate::stats::StatsProvider>,
}

impl ServerContext {
    /// The pod `namespace/name` bound to this node.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<Arc<Pod>> {
        self.pods.get(&ObjectKey {
            namespace: Some(namespace.to_string()),
            name: name.to_string(),
        })
    }
}

/// An answer with upstream's status code and plain-text body.
pub fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (status, body.into()).into_response()
}

/// The routes, each behind authentication and authorization.
pub fn router(context: Arc<ServerContext>, auth: Arc<auth::Auth>) -> Router {
    Router::new()
        .route("/healthz", get(pods::healthz))
        .route("/pods", get(pods::pods))
        .route("/runningpods/", get(pods::running_pods))
        .route("/metrics", get(component_base::serving::metrics))
        .route("/metrics/resource", get(stats::resource_metrics))
        .route(
            "/stats/summary",
            get(stats::stats_summary).post(stats::stats_summary),
        )
        .route(
            "/containerLogs/{namespace}/{pod}/{container}",
            get(logs::container_logs),
        )
        .route(
            "/portForward/{namespace}/{pod}",
            get(portforward::port_forward).post(portforward::port_forward),
        )
        .route(
            "/portForward/{namespace}/{pod}/{uid}",
            get(portforward::port_forward_uid).post(portforward::port_forward_uid),
        )
        .route("/run/{namespace}/{pod}/{container}", post(run::run))
        .route(
            "/run/{namespace}/{pod}/{uid}/{container}",
            post(run::run_uid),
        )
        .route(
            "/attach/{namespace}/{pod}/{container}",
            get(attach::attach).post(attach::attach),
        )
        .route(
            "/attach/{namespace}/{pod}/{uid}/{container}",
            get(attach::attach_with_uid).post(attach::attach_with_uid),
        )
        .route(
            "/exec/{namespace}/{pod}/{container}",
            get(exec::exec).post(exec::exec),
        )
        .route(
            "/exec/{namespace}/{pod}/{uid}/{container}",
            get(exec::exec_with_uid).post(exec::exec_with_uid),
        )
        .with_state(context)
        .layer(axum::middleware::from_fn_with_state(auth, auth::filter))
}

/// Why the server stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(
        "cannot listen on {addr}: {source} (choose another --port or --address, or stop what uses it)"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// The kubelet's server, bound and ready to serve.
pub struct KubeletServer {
    listener: TcpListener,
    tls: watch::Receiver<tls::ServerTls>,
    client_ca: Option<tls::ClientCa>,
    follower: Follower,
}

impl KubeletServer {
    /// Binds `addr` with the serving certificate, so a port in use is a start-up error. The certificate
    /// is followed in `serving_files` when read from there (upstream's ReloadKubeletServerCertificateFile,
    /// on by default), client certificates are authenticated against `client_ca` (followed too), and
    /// `policy` is the protocol versions and cipher suites offered.
    pub async fn bind(
        addr: SocketAddr,
        certificate: ServingCertificate,
        serving_files: Option<(PathBuf, PathBuf)>,
        client_ca: Option<PathBuf>,
        policy: TlsPolicy,
    ) -> Result<Self, ServerError> {
        let sources = AuthoritySources::client_ca_file(client_ca);
        let (authorities, _) = authorities::authorities(&sources, None)?;
        let tls = tls::server_config(&certificate, &authorities.all_cas(), &policy)?;
        let (sender, tls) = watch::channel(tls);
        let client_ca = tls::ClientCa::of(&authorities.client_ca)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let follower = Follower {
            serving_files,
            serving: certificate,
            policy,
            sources,
            client: None,
            configmap: None,
            tls: sender,
        };
        Ok(Self {
            listener,
            tls,
            client_ca,
            follower,
        })
    }

    /// The bound address (the port when 0 was asked for).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `router` until `stop`; each connection's client certificate goes to `authenticator` (the
    /// router's), which judges it by the client CA.
    pub async fn serve(
        self,
        router: Router,
        authenticator: Arc<Authenticator>,
        stop: CancellationToken,
    ) {
        authenticator.set_certificate_authenticators(self.client_ca, None);
        tokio::spawn(self.follower.run(authenticator, stop.clone()));
        https::serve(self.listener, self.tls, router, stop, "kubelet server").await;
    }
}

#[cfg(test)]
mod tests;
