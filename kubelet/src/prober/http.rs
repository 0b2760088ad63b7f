//! httpGet probes (upstream's pkg/probe/http): GET the container's URL (HTTP, or HTTPS without verifying
//! the certificate) within the timeout; 200 to 399 is success, redirects are followed only to the same host (another host's redirect is a success with a
//! warning), anything else fails with the status code.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::{Container, HTTPGetAction};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::port::resolve_port;
use super::tcp::join_host_port;
use super::tls;
use super::{ProbeError, ProbeOutcome};

/// The User-Agent probes send unless the probe sets one (upstream's `kube-probe/MAJOR.MINOR`).
pub const USER_AGENT: &str = "kube-probe/1.36";
/// The User-Agent of httpGet lifecycle hooks (`kube-lifecycle/MAJOR.MINOR`).
pub const LIFECYCLE_USER_AGENT: &str = "kube-lifecycle/1.36";
/// How much of a response body is read (and shown in warnings).
const MAX_BODY: usize = 10 * 1024;
/// Go's http.Client gives up after this many redirects.
const MAX_REDIRECTS: usize = 10;

/// A probe's request, resolved against the container and the pod's IP.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeRequest {
    /// HTTPS rather than HTTP.
    pub tls: bool,
    /// The host connected to.
    pub host: String,
    /// The port connected to.
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
    /// The headers sent, User-Agent and Accept included.
    pub headers: Vec<(String, String)>,
}

impl ProbeRequest {
    /// The URL, for messages.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!(
            "{scheme}://{}{}",
            join_host_port(&self.host, self.port),
            self.path
        )
    }
}

/// The request a probe's `action` makes for `container` of a pod at `pod_ip`.
pub fn probe_request(
    action: &HTTPGetAction,
    container: &Container,
    pod_ip: &str,
) -> Result<ProbeRequest, ProbeError> {
    http_get_request(action, container, pod_ip, USER_AGENT)
}

/// The request `action` makes for `container` of a pod at `pod_ip`, sent as `user_agent` unless the action
/// sets its own (upstream's NewRequestForHTTPGetAction).
pub fn http_get_request(
    action: &HTTPGetAction,
    container: &Container,
    pod_ip: &str,
    user_agent: &str,
) -> Result<ProbeRequest, ProbeError> {
    let scheme = action.scheme.as_deref().unwrap_or("HTTP").to_lowercase();
    let tls = match scheme.as_str() {
        "http" => false,
        "https" => true,
        _ => return Err(ProbeError::Unsupported(format!("httpGet scheme {scheme}"))),
    };
    let host = match action.host.as_deref() {
        Some(host) if !host.is_empty() => host.to_string(),
        _ if pod_ip.is_empty() => return Err(ProbeError::NoPodIp),
        _ => pod_ip.to_string(),
    };
    let port = resolve_port(&action.port, container)?;
    let path = match action.path.as_deref().unwrap_or_default() {
        "" => "/".to_string(),
        p if p.starts_with('/') => p.to_string(),
        p => format!("/{p}"),
    };
    let mut headers: Vec<(String, String)> = action
        .http_headers
        .iter()
        .flatten()
        .map(|h| (h.name.clone(), h.value.clone()))
        .collect();
    let has = |headers: &[(String, String)], name: &str| {
        headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    if !has(&headers, "User-Agent") {
        headers.push(("User-Agent".into(), user_agent.into()));
    }
    if !has(&headers, "Accept") {
        headers.push(("Accept".into(), "*/*".into()));
    } else {
        // An Accept set to nothing means none at all.
        headers.retain(|(n, v)| !(n.eq_ignore_ascii_case("Accept") && v.is_empty()));
    }
    Ok(ProbeRequest {
        tls,
        host,
        port,
        path,
        headers,
    })
}

/// Runs `request` within `timeout`.
pub async fn probe(request: &ProbeRequest, timeout: Duration) -> ProbeOutcome {
    match tokio::time::timeout(timeout, follow(request.clone())).await {
        Ok(outcome) => outcome,
        Err(_) => ProbeOutcome::Failure(format!(
            "Get \"{}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            request.url()
        )),
    }
}

/// Sends the request, following redirects to the same host.
async fn follow(mut request: ProbeRequest) -> ProbeOutcome {
    let original_host = request.host.clone();
    let mut redirects = 0;
    loop {
        let (status, location, body) = match get(&request).await {
            Ok(response) => response,
            Err(e) => return ProbeOutcome::Failure(format!("Get \"{}\": {e}", request.url())),
        };
        let next = location.and_then(|l| redirect_target(&request, &l));
        match next {
            Some(next) if is_redirect(status) && next.host == original_host => {
                redirects += 1;
                if redirects >= MAX_REDIRECTS {
                    return ProbeOutcome::Failure(format!(
                        "Get \"{}\": stopped after {MAX_REDIRECTS} redirects",
                        next.url()
                    ));
                }
                request = next;
            }
            _ => return verdict(status, &body),
        }
    }
}

/// One GET: the status, the Location header and the start of the body.
pub async fn get(request: &ProbeRequest) -> Result<(u16, Option<String>, String), String> {
    let address = join_host_port(&request.host, request.port);
    let stream = TcpStream::connect(&address)
        .await
        .map_err(|e| format!("dial tcp {address}: {e}"))?;
    if !request.tls {
        return exchange(stream, request).await;
    }
    let name = tls::server_name(&request.host)?;
    let stream = tls::connector()?
        .connect(name, stream)
        .await
        .map_err(|e| format!("tls: {e}"))?;
    exchange(stream, request).await
}

/// Sends `request` over `io` (HTTP/1.1, as upstream's probes).
async fn exchange<IO>(
    io: IO,
    request: &ProbeRequest,
) -> Result<(u16, Option<String>, String), String>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let default_port = if request.tls { 443 } else { 80 };
    let host = if request.port == default_port {
        request.host.clone()
    } else {
        join_host_port(&request.host, request.port)
    };
    let mut builder = http::Request::get(request.path.as_str());
    let mut host_set = false;
    for (name, value) in &request.headers {
        host_set |= name.eq_ignore_ascii_case("Host");
        builder = builder.header(name.as_str(), value.as_str());
    }
    if !host_set {
        builder = builder.header("Host", host);
    }
    let http_request = builder
        .header("Connection", "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(http_request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("Location")
        .and_then(|l| l.to_str().ok())
        .map(str::to_string);
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while bytes.len() < MAX_BODY {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    bytes.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => return Err(e.to_string()),
            None => break,
        }
    }
    bytes.truncate(MAX_BODY);
    Ok((
        status,
        location,
        String::from_utf8_lossy(&bytes).into_owned(),
    ))
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Where a redirect's `location` leads from `from`; `None` for other schemes.
fn redirect_target(from: &ProbeRequest, location: &str) -> Option<ProbeRequest> {
    let mut next = from.clone();
    let absolute = match location.split_once("://") {
        Some(("http", rest)) => Some((false, rest)),
        Some(("https", rest)) => Some((true, rest)),
        Some(_) => return None,
        None => None,
    };
    if let Some((tls, rest)) = absolute {
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, port) = split_authority(authority, if tls { 443 } else { 80 })?;
        next.tls = tls;
        next.host = host;
        next.port = port;
        next.path = if path.is_empty() {
            "/".into()
        } else {
            path.into()
        };
    } else if location.starts_with('/') {
        next.path = location.to_string();
    } else {
        let dir = from.path.rsplit_once('/').map_or("", |(dir, _)| dir);
        next.path = format!("{dir}/{location}");
    }
    // A Host header set by the probe names the first host only.
    next.headers
        .retain(|(n, _)| !n.eq_ignore_ascii_case("Host"));
    Some(next)
}

fn split_authority(authority: &str, default_port: u16) -> Option<(String, u16)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, port) = rest.split_once(']')?;
        let port = port
            .strip_prefix(':')
            .map_or(Some(default_port), |p| p.parse().ok())?;
        return Some((host.to_string(), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host.to_string(), port.parse().ok()?)),
        None => Some((authority.to_string(), default_port)),
    }
}

/// Upstream's verdict on a final response.
pub fn verdict(status: u16, body: &str) -> ProbeOutcome {
    match status {
        300..400 => {
            ProbeOutcome::Warning(format!("Probe terminated redirects, Response body: {body}"))
        }
        200..300 => ProbeOutcome::Success,
        // The body stays out of the message: it may hold secrets (kubernetes#99425).
        _ => ProbeOutcome::Failure(format!("HTTP probe failed with statuscode: {status}")),
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
