//! The HTTP side of a SPDY stream: sub-protocol negotiation (k8s.io/streaming's `httpstream.Handshake`) and the
//! `101 Switching Protocols` upgrade to SPDY/3.1 (`spdy.responseUpgrader`), with upstream's error answers.

use std::future::Future;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;

use super::Session;

/// The header carrying the offered, then the chosen, sub-protocol.
pub const HEADER_PROTOCOL_VERSION: &str = "X-Stream-Protocol-Version";
/// The header listing the server's protocols when none of the client's is supported.
pub const HEADER_ACCEPTED_PROTOCOL_VERSIONS: &str = "X-Accepted-Stream-Protocol-Versions";
/// The `Upgrade` token of SPDY/3.1.
pub const SPDY_31: &str = "SPDY/3.1";

/// An answer as Go's `http.Error` writes it: the message and a newline, as plain text.
pub fn http_error(status: StatusCode, message: &str) -> Response {
    let mut response = (status, format!("{message}\n")).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Why a handshake failed: the answer to send instead of upgrading.
#[derive(Debug)]
pub struct Refusal {
    /// Upstream's status code.
    pub status: StatusCode,
    /// Upstream's message.
    pub message: String,
    /// The protocols offered back on a 403.
    pub accepted: Vec<String>,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = http_error(self.status, &self.message);
        for protocol in &self.accepted {
            if let Ok(value) = HeaderValue::from_str(protocol) {
                response
                    .headers_mut()
                    .append(HEADER_ACCEPTED_PROTOCOL_VERSIONS, value);
            }
        }
        response
    }
}

/// The first of the client's protocols the server supports (`httpstream.Handshake`): a missing header is a
/// 400, no common protocol a 403 listing the server's.
pub fn negotiate(headers: &HeaderMap, server_protocols: &[&str]) -> Result<String, Refusal> {
    let refuse = |status, message: String| Refusal {
        status,
        message: format!("unable to upgrade: {message}"),
        accepted: Vec::new(),
    };
    let values: Vec<&str> = headers
        .get_all(HEADER_PROTOCOL_VERSION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if values.is_empty() {
        // Go's count leaves out Host, which its server moves out of the header map.
        let count = headers.keys().filter(|name| *name != header::HOST).count();
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "header {HEADER_PROTOCOL_VERSION} does not exist in request with {count} headers"
            ),
        ));
    }
    let client: Vec<&str> = values
        .iter()
        .flat_map(|v| v.split(','))
        .map(|p| p.trim_matches(' '))
        .filter(|p| !p.is_empty())
        .collect();
    if client.is_empty() {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "header {HEADER_PROTOCOL_VERSION} contains [{}], but no valid protocols",
                values.join(" ")
            ),
        ));
    }
    match client.iter().find(|p| server_protocols.contains(p)) {
        Some(chosen) => Ok((*chosen).to_string()),
        None => Err(Refusal {
            accepted: server_protocols.iter().map(|p| p.to_string()).collect(),
            ..refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "unable to negotiate protocol: client supports [{}], server accepts [{}]",
                    client.join(" "),
                    server_protocols.join(" ")
                ),
            )
        }),
    }
}

/// Whether the request asks for a SPDY/3.1 upgrade (`Connection: Upgrade`, `Upgrade: SPDY/3.1`).
fn asks_for_spdy(headers: &HeaderMap) -> bool {
    let first = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    first(header::CONNECTION).contains("upgrade")
        && first(header::UPGRADE).contains(&SPDY_31.to_ascii_lowercase())
}

/// Upgrades `request` to SPDY/3.1 with `protocol` chosen, and runs `serve` on the session from a task of its
/// own; the answer is the `101` or upstream's 400 when the request is not a SPDY upgrade.
pub fn upgrade<F, Fut>(mut request: Request, protocol: &str, serve: F) -> Response
where
    F: FnOnce(Session) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    if !asks_for_spdy(request.headers()) {
        return http_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "unable to upgrade: missing upgrade headers in request: {:?}",
                request.headers()
            ),
        );
    }
    let Ok(protocol) = HeaderValue::from_str(protocol) else {
        return http_error(StatusCode::INTERNAL_SERVER_ERROR, "unable to upgrade");
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => serve(Session::start(TokioIo::new(upgraded))).await,
            Err(e) => tracing::debug!(error = %e, "spdy: the upgrade failed"),
        }
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static(SPDY_31));
    headers.insert(HEADER_PROTOCOL_VERSION, protocol);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &[&str] = &["v4.channel.k8s.io", "v3.channel.k8s.io"];

    fn offering(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                HEADER_PROTOCOL_VERSION,
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn the_clients_first_supported_protocol_wins() {
        let headers = offering(&["v5.channel.k8s.io", "v3.channel.k8s.io, v4.channel.k8s.io"]);
        assert_eq!(negotiate(&headers, SERVER).unwrap(), "v3.channel.k8s.io");
    }

    #[test]
    fn a_missing_or_empty_offer_is_a_bad_request() {
        let refusal = negotiate(&HeaderMap::new(), SERVER).unwrap_err();
        assert_eq!(refusal.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            refusal.message,
            "unable to upgrade: header X-Stream-Protocol-Version does not exist in request with 0 headers"
        );
        let refusal = negotiate(&offering(&[" , "]), SERVER).unwrap_err();
        assert_eq!(refusal.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn no_common_protocol_is_forbidden_with_the_servers_list() {
        let refusal = negotiate(&offering(&["v5.channel.k8s.io"]), SERVER).unwrap_err();
        assert_eq!(refusal.status, StatusCode::FORBIDDEN);
        assert_eq!(
            refusal.message,
            "unable to upgrade: unable to negotiate protocol: client supports [v5.channel.k8s.io], \
             server accepts [v4.channel.k8s.io v3.channel.k8s.io]"
        );
        let response = refusal.into_response();
        assert_eq!(
            response
                .headers()
                .get_all(HEADER_ACCEPTED_PROTOCOL_VERSIONS)
                .iter()
                .count(),
            2
        );
    }

    #[test]
    fn only_spdy_upgrades_are_upgraded() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        assert!(!asks_for_spdy(&headers));
        headers.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        assert!(asks_for_spdy(&headers));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(!asks_for_spdy(&headers));
    }
}
