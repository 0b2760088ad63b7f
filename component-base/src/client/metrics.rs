//! client-go's REST client metrics (component-base/metrics/prometheus/restclient), registered in the default
//! registry on first use so every binary's `/metrics` shows them under upstream's names, help and buckets.

use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use http::{Request, Response, Uri};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};
use tokio::time::Instant;
use tower::{Layer, Service};

/// upstream's buckets for both latency histograms, 5 ms to 60 s.
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0,
];

/// client-go's code label for a request that got no HTTP response: error texts would be unbounded labels.
const ERROR_CODE: &str = "<error>";

struct Metrics {
    requests: IntCounterVec,
    request_duration: HistogramVec,
    rate_limiter_duration: HistogramVec,
}

static METRICS: LazyLock<Option<Metrics>> = LazyLock::new(|| match register() {
    Ok(metrics) => Some(metrics),
    Err(error) => {
        // Metrics are diagnostics: failing to register them must not stop a component talking to the apiserver.
        tracing::warn!(%error, "cannot register rest client metrics");
        None
    }
});

fn register() -> prometheus::Result<Metrics> {
    let requests = IntCounterVec::new(
        Opts::new(
            "rest_client_requests_total",
            "Number of HTTP requests, partitioned by status code, method, and host.",
        ),
        &["code", "method", "host"],
    )?;
    let histogram = |name: &str, help: &str| {
        HistogramVec::new(
            HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
            &["verb", "host"],
        )
    };
    let request_duration = histogram(
        "rest_client_request_duration_seconds",
        "Request latency in seconds. Broken down by verb, and host.",
    )?;
    let rate_limiter_duration = histogram(
        "rest_client_rate_limiter_duration_seconds",
        "Client side rate limiter latency in seconds. Broken down by verb, and host.",
    )?;
    let registry = prometheus::default_registry();
    registry.register(Box::new(requests.clone()))?;
    registry.register(Box::new(request_duration.clone()))?;
    registry.register(Box::new(rate_limiter_duration.clone()))?;
    Ok(Metrics {
        requests,
        request_duration,
        rate_limiter_duration,
    })
}

/// How long the client-side rate limiter held a request back. [`super::RateLimited`] attaches it to the
/// request because only the metrics layer knows the host label.
#[derive(Clone, Copy, Debug)]
pub(super) struct Throttled(pub(super) Duration);

/// `host:port` of the apiserver as Go's `url.URL.Host` spells it, which is client-go's host label.
fn host_label(cluster_url: &Uri) -> String {
    match (cluster_url.host(), cluster_url.port_u16()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        // client-go's label when a client has no base URL.
        (None, _) => "none".to_owned(),
    }
}

/// A tower layer that records `rest_client_requests_total` and `rest_client_request_duration_seconds` for
/// every request, and `rest_client_rate_limiter_duration_seconds` for those the rate limiter passed.
#[derive(Clone, Debug)]
pub struct RestClientMetricsLayer {
    host: Arc<str>,
}

impl RestClientMetricsLayer {
    /// A layer labelling every request with the host of `cluster_url`.
    pub fn new(cluster_url: &Uri) -> Self {
        Self {
            host: host_label(cluster_url).into(),
        }
    }
}

impl<S> Layer<S> for RestClientMetricsLayer {
    type Service = RestClientMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RestClientMetrics {
            inner,
            host: self.host.clone(),
        }
    }
}

/// The service made by [`RestClientMetricsLayer`].
#[derive(Clone, Debug)]
pub struct RestClientMetrics<S> {
    inner: S,
    host: Arc<str>,
}

impl<S, B, RB> Service<Request<B>> for RestClientMetrics<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let method = request.method().as_str().to_owned();
        let throttled = request.extensions().get::<Throttled>().map(|t| t.0);
        let host = self.host.clone();
        if let (Some(waited), Some(metrics)) = (throttled, METRICS.as_ref()) {
            metrics
                .rate_limiter_duration
                .with_label_values(&[method.as_str(), &host])
                .observe(waited.as_secs_f64());
        }
        let started = Instant::now();
        let response = self.inner.call(request);
        Box::pin(async move {
            let result = response.await;
            if let Some(metrics) = METRICS.as_ref() {
                let code = match &result {
                    Ok(response) => response.status().as_str().to_owned(),
                    Err(_) => ERROR_CODE.to_owned(),
                };
                metrics
                    .requests
                    .with_label_values(&[code.as_str(), &method, &host])
                    .inc();
                // client-go's latency starts before the rate limiter, so a throttled request counts its wait.
                let latency = throttled.unwrap_or_default() + started.elapsed();
                metrics
                    .request_duration
                    .with_label_values(&[method.as_str(), &host])
                    .observe(latency.as_secs_f64());
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use prometheus::proto::Metric;
    use tower::{BoxError, ServiceBuilder, ServiceExt, service_fn};

    use super::*;
    use crate::client::RateLimitLayer;

    /// The series of `family` whose labels are exactly `labels`.
    fn series(family: &str, labels: &[(&str, &str)]) -> Option<Metric> {
        let want: HashMap<&str, &str> = labels.iter().copied().collect();
        prometheus::gather()
            .into_iter()
            .find(|f| f.name() == family)?
            .take_metric()
            .into_iter()
            .find(|m| {
                let got: HashMap<&str, &str> = m
                    .get_label()
                    .iter()
                    .map(|l| (l.name(), l.value()))
                    .collect();
                got == want
            })
    }

    fn count(code: &str, method: &str, host: &str) -> Option<u64> {
        let m = series(
            "rest_client_requests_total",
            &[("code", code), ("method", method), ("host", host)],
        )?;
        // The counter is an integer counter exposed as a float; the values here are small.
        Some(m.get_counter().get_value() as u64)
    }

    /// Sample count, sample sum, and cumulative count per upper bound of a histogram series.
    type Observed = (u64, f64, Vec<(f64, u64)>);

    /// The `{verb,host}` series of histogram `family`.
    fn histogram(family: &str, verb: &str, host: &str) -> Option<Observed> {
        let m = series(family, &[("verb", verb), ("host", host)])?;
        let h = m.get_histogram();
        let buckets = h
            .get_bucket()
            .iter()
            .map(|b| (b.upper_bound(), b.cumulative_count()))
            .collect();
        Some((h.get_sample_count(), h.get_sample_sum(), buckets))
    }

    fn layer(host: &str) -> RestClientMetricsLayer {
        let url: Uri = format!("https://{host}/").parse().unwrap();
        RestClientMetricsLayer::new(&url)
    }

    #[test]
    fn host_label_is_go_url_host() {
        let label = |url: &str| host_label(&url.parse().unwrap());
        assert_eq!(label("https://10.0.0.1:6443"), "10.0.0.1:6443");
        assert_eq!(label("https://[::1]:6443/"), "[::1]:6443");
        assert_eq!(
            label("https://kubernetes.default.svc"),
            "kubernetes.default.svc"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn response_and_error_are_counted_and_timed() {
        let host = "metrics-test:1";
        let stub = service_fn(|request: Request<()>| async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if request.uri().path() == "/fail" {
                return Err(BoxError::from("connection refused"));
            }
            Ok(Response::builder().status(201).body(()).unwrap())
        });
        let mut service = ServiceBuilder::new().layer(layer(host)).service(stub);

        let created = Request::post("/api/v1/namespaces").body(()).unwrap();
        let response = service.ready().await.unwrap().call(created).await.unwrap();
        assert_eq!(response.status(), 201);
        let failed = Request::get("/fail").body(()).unwrap();
        assert!(service.ready().await.unwrap().call(failed).await.is_err());

        assert_eq!(count("201", "POST", host), Some(1));
        assert_eq!(count("<error>", "GET", host), Some(1));
        assert_eq!(count("201", "GET", host), None);
        let (samples, sum, buckets) =
            histogram("rest_client_request_duration_seconds", "POST", host).unwrap();
        assert_eq!(samples, 1);
        assert!((sum - 0.3).abs() < 1e-6, "sum {sum}");
        let bounds: Vec<f64> = buckets.iter().map(|b| b.0).collect();
        assert_eq!(bounds, LATENCY_BUCKETS.to_vec());
        // 0.3 s lands above the 0.25 bucket and within 0.5.
        assert_eq!(buckets[3], (0.25, 0));
        assert_eq!(buckets[4], (0.5, 1));
        assert_eq!(
            histogram("rest_client_request_duration_seconds", "GET", host).map(|h| h.0),
            Some(1)
        );
        // Without a rate limiter in front there is no limiter latency, as in client-go.
        assert!(histogram("rest_client_rate_limiter_duration_seconds", "POST", host).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limiter_wait_is_observed_for_every_request() {
        let host = "metrics-test:2";
        let stub = service_fn(|_: Request<()>| async {
            Ok::<_, BoxError>(Response::builder().status(200).body(()).unwrap())
        });
        // Layers apply outermost first: the limiter in front of the metrics, as client_from_config builds it.
        let mut service = ServiceBuilder::new()
            .layer(RateLimitLayer::new(1.0, 1))
            .layer(layer(host))
            .service(stub);

        for _ in 0..2 {
            let request = Request::get("/api").body(()).unwrap();
            service.ready().await.unwrap().call(request).await.unwrap();
        }

        assert_eq!(count("200", "GET", host), Some(2));
        let (samples, sum, buckets) =
            histogram("rest_client_rate_limiter_duration_seconds", "GET", host).unwrap();
        // The first request passes at once and is still observed; the second waits one second for a token.
        assert_eq!(samples, 2);
        assert!((sum - 1.0).abs() < 1e-3, "sum {sum}");
        assert_eq!(buckets[0], (0.005, 1));
        let (samples, sum, _) =
            histogram("rest_client_request_duration_seconds", "GET", host).unwrap();
        assert_eq!(samples, 2);
        assert!(
            (sum - 1.0).abs() < 1e-3,
            "request latency includes the wait: {sum}"
        );
    }
}
