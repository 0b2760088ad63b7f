//! The HTTPS accept loop shared by the kubelet's server and the secure port: TLS handshake with the TLS
//! configuration current when the connection came, the client's certificates handed to the router as a
//! request extension, HTTP/1.1 with upgrades.

use axum::Router;
use axum::extract::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::tls::ServerTls;

/// Upstream's MaxHeaderBytes (1 MiB).
const MAX_HEADER_BYTES: usize = 1 << 20;

/// Serves `router` on `listener` until `stop`; `server` names it in logs.
pub async fn serve(
    listener: TcpListener,
    tls: watch::Receiver<ServerTls>,
    router: Router,
    stop: CancellationToken,
    server: &'static str,
) {
    loop {
        let (stream, peer) = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "{server}: accept failed");
                    continue;
                }
            },
        };
        // As Go's listeners do: a response's headers and body are separate TLS records, and without
        // TCP_NODELAY the body waits for the client's delayed ACK of the headers.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "{server}: cannot set TCP_NODELAY");
        }
        let tls = tls.borrow().clone();
        let acceptor = TlsAcceptor::from(tls.config.clone());
        let router = router.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let stream = match acceptor.accept(stream).await {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "{server}: TLS handshake failed");
                    return;
                }
            };
            let client = tls.peer_certificates(stream.get_ref().1);
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
                        tracing::debug!(%peer, error = %e, "{server}: connection ended");
                    }
                }
                () = stop.cancelled() => connection.as_mut().graceful_shutdown(),
            }
        });
    }
}
