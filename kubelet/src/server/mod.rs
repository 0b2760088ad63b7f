//! The kubelet's HTTPS server on `--port` (10250): what users reach through the apiserver's node and pod
//! proxies — pods, logs, exec, attach, port-forward, metrics and stats — behind upstream's authentication
//! and authorization (pkg/kubelet/server/server.go).

pub mod auth;
mod pods;
mod stats;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use component_base::informer::{ObjectKey, SharedInformer};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::runtime::Runtime;
pub use auth::{Auth, Authenticator, Authorizer, Webhook};
pub use tls::{ServingCertificate, TlsError};

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
    acceptor: TlsAcceptor,
}

impl KubeletServer {
    /// Binds `addr` with the serving certificate, so a port in use is a start-up error.
    /// Client certificates are verified against `client_ca` when given.
    pub async fn bind(
        addr: SocketAddr,
        certificate: &ServingCertificate,
        client_ca: Option<&std::path::Path>,
    ) -> Result<Self, ServerError> {
        let acceptor = TlsAcceptor::from(tls::server_config(certificate, client_ca)?);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        Ok(Self { listener, acceptor })
    }

    /// The bound address (the port when 0 was asked for).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `router` until `stop`; each connection's client certificate goes to the authenticator.
    pub async fn serve(self, router: Router, stop: CancellationToken) {
        loop {
            let (stream, peer) = tokio::select! {
                () = stop.cancelled() => return,
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "kubelet server: accept failed");
                        continue;
                    }
                },
            };
            let acceptor = self.acceptor.clone();
            let router = router.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let stream = match acceptor.accept(stream).await {
                    Ok(stream) => stream,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "kubelet server: TLS handshake failed");
                        return;
                    }
                };
                let client = auth::PeerCertificates::of(&stream);
                let service = hyper::service::service_fn(
                    move |mut request: hyper::Request<hyper::body::Incoming>| {
                        request.extensions_mut().insert(client.clone());
                        router
                            .clone()
                            .oneshot(Request::from(request.map(axum::body::Body::new)))
                    },
                );
                let connection = hyper::server::conn::http1::Builder::new()
                    .max_buf_size(MAX_HEADER_BYTES)
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades();
                tokio::pin!(connection);
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(%peer, error = %e, "kubelet server: connection ended");
                        }
                    }
                    () = stop.cancelled() => connection.as_mut().graceful_shutdown(),
                }
            });
        }
    }
}

/// Upstream's MaxHeaderBytes (server.go).
const MAX_HEADER_BYTES: usize = 1 << 20;
