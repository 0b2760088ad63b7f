use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{ContainerPort, HTTPHeader};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// A server answering each path with a canned response, keeping the request heads it saw.
async fn serve(responses: Vec<(&'static str, String)>) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let heads = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buffer = vec![0; 4096];
            let n = stream.read(&mut buffer).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buffer[..n]).to_string();
            let path = head.split(' ').nth(1).unwrap_or("").to_string();
            heads.lock().expect("lock").push(head);
            let response = responses
                .iter()
                .find(|(p, _)| *p == path)
                .map(|(_, r)| r.clone())
                .unwrap_or_else(|| "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".into());
            let _ = stream.write_all(response.as_bytes()).await;
        }
    });
    (port, seen)
}

fn request(port: u16, path: &str) -> ProbeRequest {
    let action = HTTPGetAction {
        path: Some(path.into()),
        port: IntOrString::Int(i32::from(port)),
        ..HTTPGetAction::default()
    };
    probe_request(&action, &Container::default(), "127.0.0.1").expect("request")
}

#[test]
fn statuses_give_upstreams_verdicts() {
    assert_eq!(verdict(200, "ok"), ProbeOutcome::Success);
    assert_eq!(
        verdict(399, ""),
        ProbeOutcome::Warning("Probe terminated redirects, Response body: ".into())
    );
    assert_eq!(
        verdict(404, "secret"),
        ProbeOutcome::Failure("HTTP probe failed with statuscode: 404".into())
    );
    assert_eq!(
        verdict(500, ""),
        ProbeOutcome::Failure("HTTP probe failed with statuscode: 500".into())
    );
    assert_eq!(
        verdict(199, ""),
        ProbeOutcome::Failure("HTTP probe failed with statuscode: 199".into())
    );
}

#[test]
fn requests_resolve_host_port_and_headers() {
    let container = Container {
        ports: Some(vec![ContainerPort {
            name: Some("web".into()),
            container_port: 8080,
            ..ContainerPort::default()
        }]),
        ..Container::default()
    };
    let action = HTTPGetAction {
        path: Some("healthz?x=1".into()),
        port: IntOrString::String("web".into()),
        http_headers: Some(vec![HTTPHeader {
            name: "X-Probe".into(),
            value: "yes".into(),
        }]),
        ..HTTPGetAction::default()
    };
    let request = probe_request(&action, &container, "10.0.0.7").expect("request");
    assert_eq!(request.url(), "http://10.0.0.7:8080/healthz?x=1");
    assert!(
        request
            .headers
            .contains(&("User-Agent".into(), USER_AGENT.into()))
    );
    assert!(request.headers.contains(&("Accept".into(), "*/*".into())));
    assert!(request.headers.contains(&("X-Probe".into(), "yes".into())));
    let https = HTTPGetAction {
        scheme: Some("HTTPS".into()),
        ..action.clone()
    };
    let secure = probe_request(&https, &container, "10.0.0.7").expect("https");
    assert_eq!(secure.url(), "https://10.0.0.7:8080/healthz?x=1");
    let other = HTTPGetAction {
        scheme: Some("FTP".into()),
        ..action.clone()
    };
    assert!(probe_request(&other, &container, "10.0.0.7").is_err());
    assert!(matches!(
        probe_request(&action, &container, ""),
        Err(ProbeError::NoPodIp)
    ));
}

#[tokio::test]
async fn probes_pass_fail_and_follow_local_redirects() {
    let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_string();
    let (port, seen) = serve(vec![
        ("/ok", ok),
        ("/moved", "HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Length: 0\r\n\r\n".into()),
        (
            "/away",
            "HTTP/1.1 301 Moved\r\nLocation: http://example.invalid/\r\nContent-Length: 4\r\n\r\ngone".into(),
        ),
    ])
    .await;
    let timeout = Duration::from_secs(2);
    assert_eq!(
        probe(&request(port, "/ok"), timeout).await,
        ProbeOutcome::Success
    );
    let head = seen.lock().expect("lock")[0].clone();
    assert!(
        head.contains("user-agent: kube-probe/1.36")
            || head.contains("User-Agent: kube-probe/1.36"),
        "{head}"
    );
    assert_eq!(
        probe(&request(port, "/moved"), timeout).await,
        ProbeOutcome::Success
    );
    assert_eq!(
        probe(&request(port, "/away"), timeout).await,
        ProbeOutcome::Warning("Probe terminated redirects, Response body: gone".into())
    );
    assert_eq!(
        probe(&request(port, "/missing"), timeout).await,
        ProbeOutcome::Failure("HTTP probe failed with statuscode: 404".into())
    );
}

#[tokio::test]
async fn nothing_listening_or_a_silent_server_fails() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    // Accepts (the kernel does) but never answers: the timeout fails the probe.
    let ProbeOutcome::Failure(message) =
        probe(&request(port, "/"), Duration::from_millis(300)).await
    else {
        panic!("a silent server passed");
    };
    assert!(message.contains("context deadline exceeded"), "{message}");
    drop(listener);
    let ProbeOutcome::Failure(message) = probe(&request(port, "/"), Duration::from_secs(1)).await
    else {
        panic!("a closed port passed");
    };
    assert!(
        message.starts_with(&format!("Get \"http://127.0.0.1:{port}/\": dial tcp")),
        "{message}"
    );
}

#[tokio::test]
async fn https_probes_accept_any_certificate() {
    let certified = rcgen::generate_simple_self_signed(vec!["pod.invalid".into()]).expect("cert");
    let key = rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der())
        .expect("key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .expect("config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let Ok(mut stream) = acceptor.accept(stream).await else {
                continue;
            };
            let mut buffer = vec![0; 4096];
            let _ = stream.read(&mut buffer).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .await;
            let _ = stream.shutdown().await;
        }
    });
    let mut secure = request(port, "/");
    secure.tls = true;
    assert_eq!(
        probe(&secure, Duration::from_secs(2)).await,
        ProbeOutcome::Success
    );
    // Plain HTTP to a TLS port fails.
    let ProbeOutcome::Failure(_) = probe(&request(port, "/"), Duration::from_secs(2)).await else {
        panic!("HTTP to a TLS server passed");
    };
}
