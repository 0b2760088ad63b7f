//! The HTTP transport under every client: HTTP/2 when the apiserver offers it (ALPN), as client-go's
//! transport uses, so one TLS connection carries all of a client's requests and watches. kube's default
//! stack speaks HTTP/1.1 only and so opens a connection per request in flight: hundreds during a burst of
//! pod creations, each with its own TLS handshake, session and buffers, most of a controller-manager's
//! memory. The layers above the connection are kube's own (base URI, retries, credentials, headers).

use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::Config;
use kube::client::retry::RetryPolicy;
use kube::client::{Body, ClientBuilder, ConfigExt, DynBody};
use tower::retry::RetryLayer;
use tower::util::BoxService;
use tower::{BoxError, ServiceBuilder, ServiceExt};

/// client-go's HTTP/2 health check (`ReadIdleTimeout`): a ping after this long without a frame, so a
/// dead connection under long watches is noticed.
const PING_INTERVAL: Duration = Duration::from_secs(30);
/// client-go's `PingTimeout`: an unanswered ping closes the connection and fails its requests and watches.
const PING_TIMEOUT: Duration = Duration::from_secs(15);

/// The service a client's layers wrap: requests to responses with kube's boxed body.
pub type TransportService = BoxService<Request<Body>, Response<Box<DynBody>>, BoxError>;

/// Why the transport could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("tls-server-name {name:?} is not a valid server name: {source}")]
    ServerName {
        name: String,
        source: rustls::pki_types::InvalidDnsNameError,
    },
}

/// A client builder for `config` over HTTP/2 (HTTP/1.1 if the server does not offer HTTP/2), with kube's
/// default layers and none of its tracing spans.
pub fn builder(config: &Config) -> Result<ClientBuilder<TransportService>, TransportError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(config.connect_timeout);
    // Go sets TCP_NODELAY on every connection. Without it a write whose headers and body leave as two TLS
    // records holds the second back until the first is acknowledged, and the apiserver delays that ACK by
    // up to 40 ms: every request with a body took 40 ms longer than client-go's.
    http.set_nodelay(true);
    let tls = config.rustls_client_config()?;
    let mut https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    if let Some(name) = &config.tls_server_name {
        let server_name =
            rustls::pki_types::ServerName::try_from(name.clone()).map_err(|source| {
                TransportError::ServerName {
                    name: name.clone(),
                    source,
                }
            })?;
        https = https
            .with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(server_name));
    }
    let connector = https.enable_all_versions().wrap_connector(http);
    let client: HyperClient<_, Body> = HyperClient::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .http2_keep_alive_interval(PING_INTERVAL)
        .http2_keep_alive_timeout(PING_TIMEOUT)
        .build(connector);
    let retry = config
        .default_retry
        .then(|| RetryLayer::new(RetryPolicy::server_retry()));
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(retry)
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(client)
        .map_response(|response: Response<Incoming>| {
            response.map(|body| Box::new(body.map_err(BoxError::from)) as Box<DynBody>)
        })
        .boxed();
    Ok(ClientBuilder::new(
        service,
        config.default_namespace.clone(),
    ))
}
