//! Client construction as client-go does it: kubeconfig loading, and a client-side token bucket in front of
//! every request so `--kube-api-qps`/`--kube-api-burst` mean what they mean upstream, and client-go's
//! `rest_client_*` metrics behind it.

mod bearer;
mod metrics;
mod transport;
mod user_agent;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::Request;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

use crate::ratelimit::TokenBucket;

pub use bearer::{BearerToken, WithBearerToken};
pub use metrics::{RestClientMetrics, RestClientMetricsLayer};
pub use transport::TransportError;
pub use user_agent::{add_user_agent, default_user_agent};

/// `error` as one line: an apiserver refusal as its message and reason, where kube's own message appends
/// the whole `Status` in debug form.
pub fn error_message(error: &kube::Error) -> impl std::fmt::Display + '_ {
    ErrorMessage(error)
}

struct ErrorMessage<'a>(&'a kube::Error);

impl std::fmt::Display for ErrorMessage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            kube::Error::Api(status) if status.message.is_empty() => {
                write!(f, "{} {}", status.code, status.reason)
            }
            kube::Error::Api(status) => write!(f, "{}: {}", status.message, status.reason),
            other => other.fmt(f),
        }
    }
}

/// Why a client could not be made or could not reach the apiserver; each message names the fix.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot read kubeconfig {path}: {source} (pass --kubeconfig with the path of a readable kubeconfig)"
    )]
    ReadKubeconfig {
        path: PathBuf,
        source: kube::config::KubeconfigError,
    },
    #[error("kubeconfig {path} is not usable: {source}")]
    BadKubeconfig {
        path: PathBuf,
        source: kube::config::KubeconfigError,
    },
    #[error("no kubeconfig found: {0} (pass --kubeconfig, or run inside a cluster)")]
    Infer(kube::config::InferConfigError),
    #[error("cannot build a client for {url}: {source}")]
    Build { url: String, source: TransportError },
    #[error(
        "cannot reach the apiserver at {url}: {reason} (is it running, and does --kubeconfig point at it?)"
    )]
    Unreachable { url: String, reason: String },
}

/// What a component needs to talk to the apiserver.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Path of the kubeconfig; `None` infers it (in-cluster, then `$KUBECONFIG`, then `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// Sustained requests per second; zero or less means unlimited, as in client-go.
    pub qps: f32,
    /// Requests allowed at once before the qps limit applies.
    pub burst: u32,
}

/// Loads the kubeconfig named by `options` into a kube `Config`.
pub async fn load_config(kubeconfig: Option<&Path>) -> Result<Config, ClientError> {
    let Some(path) = kubeconfig else {
        return Config::infer().await.map_err(ClientError::Infer);
    };
    let kubeconfig = Kubeconfig::read_from(path).map_err(|source| ClientError::ReadKubeconfig {
        path: path.to_path_buf(),
        source,
    })?;
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|source| ClientError::BadKubeconfig {
            path: path.to_path_buf(),
            source,
        })
}

/// Builds a client from `options` with the client-side rate limit in front of it. It does not contact the
/// apiserver; see [`connect`] for that.
pub async fn build_client(options: &ClientOptions) -> Result<Client, ClientError> {
    let config = load_config(options.kubeconfig.as_deref()).await?;
    client_from_config(config, options.qps, options.burst)
}

/// Wraps `config` in a client whose requests pass through a `qps`/`burst` token bucket and are recorded in
/// the `rest_client_*` metrics, with the default user agent unless `config` has one ([`add_user_agent`]).
pub fn client_from_config(config: Config, qps: f32, burst: u32) -> Result<Client, ClientError> {
    layered_client(config, None, qps, burst)
}

/// Like [`client_from_config`], but authenticating with `token` (kept current by its owner) instead of
/// `config`'s credentials; the server and its CA stay `config`'s.
pub fn client_with_token(
    mut config: Config,
    token: &BearerToken,
    qps: f32,
    burst: u32,
) -> Result<Client, ClientError> {
    config.auth_info = Default::default();
    layered_client(config, Some(token), qps, burst)
}

fn layered_client(
    mut config: Config,
    token: Option<&BearerToken>,
    qps: f32,
    burst: u32,
) -> Result<Client, ClientError> {
    user_agent::ensure_user_agent(&mut config);
    let url = config.cluster_url.to_string();
    let metrics = RestClientMetricsLayer::new(&config.cluster_url);
    let builder =
        transport::builder(&config).map_err(|source| ClientError::Build { url, source })?;
    // Each layer wraps the ones before it: the limiter goes outermost so the metrics see its wait.
    Ok(builder
        .with_layer(&tower::util::option_layer(token.cloned()))
        .with_layer(&metrics)
        .with_layer(&RateLimitLayer::new(qps, burst))
        .build())
}

/// Builds a client and checks that the apiserver answers, so a wrong kubeconfig or a stopped apiserver is
/// reported at start-up in one line instead of as endless retries.
pub async fn connect(options: &ClientOptions) -> Result<Client, ClientError> {
    Ok(connect_with_config(options).await?.0)
}

/// [`connect`], also returning the loaded configuration for components that build more clients from it.
pub async fn connect_with_config(options: &ClientOptions) -> Result<(Client, Config), ClientError> {
    let config = load_config(options.kubeconfig.as_deref()).await?;
    let url = config.cluster_url.to_string();
    let client = client_from_config(config.clone(), options.qps, options.burst)?;
    let probe = tokio::time::timeout(Duration::from_secs(10), client.apiserver_version()).await;
    match probe {
        Ok(Ok(_)) => Ok((client, config)),
        Ok(Err(e)) => Err(ClientError::Unreachable {
            url,
            reason: one_line(&e),
        }),
        Err(_) => Err(ClientError::Unreachable {
            url,
            reason: "no answer within 10s".into(),
        }),
    }
}

/// The innermost cause of an error, which is the part that tells a user what went wrong.
fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// A tower layer that makes every request wait for a token, as client-go's rate-limited REST client does.
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    bucket: Arc<TokenBucket>,
}

impl RateLimitLayer {
    /// A layer allowing `qps` requests per second with bursts of `burst`.
    pub fn new(qps: f32, burst: u32) -> Self {
        Self {
            bucket: Arc::new(TokenBucket::new(qps, burst)),
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimited<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimited {
            inner,
            bucket: self.bucket.clone(),
            wait: None,
            reserved: false,
            waited: Duration::ZERO,
        }
    }
}

/// The service made by [`RateLimitLayer`]. kube drives it from a single buffer worker, so waiting in
/// `poll_ready` holds back every later request too: exactly a client-wide limit.
pub struct RateLimited<S> {
    inner: S,
    bucket: Arc<TokenBucket>,
    /// The pending sleep and when it began.
    wait: Option<(Pin<Box<Sleep>>, Instant)>,
    reserved: bool,
    /// How long the reservation made the next request wait, for `rest_client_rate_limiter_duration_seconds`.
    waited: Duration,
}

impl<S, B> Service<Request<B>> for RateLimited<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if !self.reserved {
            self.reserved = true;
            self.waited = Duration::ZERO;
            let wait = self.bucket.reserve();
            if !wait.is_zero() {
                self.wait = Some((Box::pin(tokio::time::sleep(wait)), Instant::now()));
            }
        }
        if let Some((wait, started)) = self.wait.as_mut() {
            ready!(wait.as_mut().poll(cx));
            // The time actually spent, as client-go measures it, not the wait the bucket asked for.
            self.waited = started.elapsed();
            self.wait = None;
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        self.reserved = false;
        // client-go observes the limiter for every request, so an unthrottled one records zero.
        request
            .extensions_mut()
            .insert(metrics::Throttled(self.waited));
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use kube::core::Status;

    use super::*;

    #[test]
    fn an_apiserver_refusal_is_its_message_and_reason_on_one_line() {
        let conflict = kube::Error::Api(Box::new(Status {
            message: "Operation cannot be fulfilled on deployments.apps \"web\"".into(),
            reason: "Conflict".into(),
            code: 409,
            ..Status::default()
        }));
        assert_eq!(
            error_message(&conflict).to_string(),
            "Operation cannot be fulfilled on deployments.apps \"web\": Conflict"
        );
        assert!(
            conflict.to_string().contains("Status {"),
            "kube's own message"
        );

        let bare = kube::Error::Api(Box::new(Status {
            reason: "NotFound".into(),
            code: 404,
            ..Status::default()
        }));
        assert_eq!(error_message(&bare).to_string(), "404 NotFound");
    }
}
