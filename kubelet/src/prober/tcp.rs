//! tcpSocket probes: success when a connection opens within the timeout (upstream's DoTCPProbe).

use std::time::Duration;

use tokio::net::TcpStream;

use super::ProbeOutcome;

/// Connects to `host:port` within `timeout`.
pub async fn probe(host: &str, port: u16, timeout: Duration) -> ProbeOutcome {
    let address = join_host_port(host, port);
    match tokio::time::timeout(timeout, TcpStream::connect(&address)).await {
        Ok(Ok(_stream)) => ProbeOutcome::Success,
        Ok(Err(e)) => ProbeOutcome::Failure(format!("dial tcp {address}: {e}")),
        Err(_) => ProbeOutcome::Failure(format!("dial tcp {address}: i/o timeout")),
    }
}

/// `host:port`, IPv6 literals bracketed (Go's net.JoinHostPort).
pub fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_open_port_passes_and_a_closed_one_fails() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        assert_eq!(
            probe("127.0.0.1", port, Duration::from_secs(1)).await,
            ProbeOutcome::Success
        );
        drop(listener);
        let ProbeOutcome::Failure(message) = probe("127.0.0.1", port, Duration::from_secs(1)).await
        else {
            panic!("a closed port passed");
        };
        assert!(
            message.starts_with(&format!("dial tcp 127.0.0.1:{port}: ")),
            "{message}"
        );
        assert_eq!(join_host_port("fd00::1", 80), "[fd00::1]:80");
    }
}
