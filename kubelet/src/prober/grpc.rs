//! grpc probes: grpc.health.v1 Health/Check for the probe's service; SERVING is success (upstream's
//! pkg/probe/grpc, with its messages).

use std::time::Duration;

use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::ProbeOutcome;
use super::http::USER_AGENT;
use super::tcp::join_host_port;

/// Checks `service` on `host:port` within `timeout`.
pub async fn probe(host: &str, port: u16, service: &str, timeout: Duration) -> ProbeOutcome {
    let address = join_host_port(host, port);
    match tokio::time::timeout(timeout, check(&address, service, timeout)).await {
        Ok(outcome) => outcome,
        Err(_) => ProbeOutcome::Failure(format!(
            "timeout: health rpc did not complete within {}",
            go_duration(timeout)
        )),
    }
}

async fn check(address: &str, service: &str, timeout: Duration) -> ProbeOutcome {
    let endpoint = match Endpoint::from_shared(format!("http://{address}")) {
        Ok(endpoint) => endpoint,
        Err(e) => {
            return ProbeOutcome::Failure(format!(
                "error: failed to connect service at \"{address}\": {e}"
            ));
        }
    };
    let endpoint = endpoint.connect_timeout(timeout).timeout(timeout);
    let endpoint = match endpoint.user_agent(USER_AGENT) {
        Ok(endpoint) => endpoint,
        Err(e) => return ProbeOutcome::Failure(format!("error: {e}")),
    };
    let channel = match endpoint.connect().await {
        Ok(channel) => channel,
        Err(e) => {
            return ProbeOutcome::Failure(format!(
                "error: failed to connect service at \"{address}\": {}",
                crate::runtime::error_chain(&e)
            ));
        }
    };
    let request = HealthCheckRequest {
        service: service.to_string(),
    };
    match HealthClient::new(channel).check(request).await {
        Ok(response) => verdict(response.into_inner().status),
        Err(status) => ProbeOutcome::Failure(match status.code() {
            tonic::Code::Unimplemented => format!(
                "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {}",
                status.message()
            ),
            tonic::Code::DeadlineExceeded => format!(
                "timeout: health rpc did not complete within {}",
                go_duration(timeout)
            ),
            _ => format!("error: health rpc probe failed: {status}"),
        }),
    }
}

/// SERVING passes; anything else fails with the status's name.
fn verdict(status: i32) -> ProbeOutcome {
    match ServingStatus::try_from(status) {
        Ok(ServingStatus::Serving) => ProbeOutcome::Success,
        Ok(other) => ProbeOutcome::Failure(format!(
            "service unhealthy (responded with \"{}\")",
            other.as_str_name()
        )),
        Err(_) => ProbeOutcome::Failure(format!("service unhealthy (responded with \"{status}\")")),
    }
}

/// Whole seconds as Go prints durations (`1s`).
fn go_duration(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serving_passes_and_not_serving_fails() {
        let (reporter, service) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("app", tonic_health::ServingStatus::Serving)
            .await;
        reporter
            .set_service_status("down", tonic_health::ServingStatus::NotServing)
            .await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming),
        );
        let timeout = Duration::from_secs(2);
        assert_eq!(
            probe("127.0.0.1", port, "app", timeout).await,
            ProbeOutcome::Success
        );
        // The empty service is the server's overall health, which health_reporter serves.
        assert_eq!(
            probe("127.0.0.1", port, "", timeout).await,
            ProbeOutcome::Success
        );
        assert_eq!(
            probe("127.0.0.1", port, "down", timeout).await,
            ProbeOutcome::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
        );
        let ProbeOutcome::Failure(unknown) = probe("127.0.0.1", port, "nope", timeout).await else {
            panic!("an unknown service passed");
        };
        assert!(
            unknown.starts_with("error: health rpc probe failed"),
            "{unknown}"
        );
        drop(reporter);
    }

    #[tokio::test]
    async fn nothing_listening_fails() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        drop(listener);
        let ProbeOutcome::Failure(message) =
            probe("127.0.0.1", port, "", Duration::from_secs(1)).await
        else {
            panic!("nothing listening passed");
        };
        assert!(
            message.starts_with("error: failed to connect service at"),
            "{message}"
        );
    }
}
