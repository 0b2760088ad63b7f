//! The test server image's one binary: the endpoints probes and lifecycle hooks need, each request
//! logged to stdout so a test reads from the container's log what reached it.
//!
//! - HTTP: `/status/CODE` answers CODE, any other path 200 with the path;
//! - TCP: accepts and closes;
//! - gRPC: grpc.health.v1 answering SERVING, or NOT_SERVING with `--grpc-not-serving`.

use std::net::{Ipv4Addr, SocketAddr};

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use clap::Parser;
use tonic_health::ServingStatus;

#[derive(Parser, Debug)]
#[command(about = "ferrokube's test server for probes and lifecycle hooks")]
struct Args {
    /// HTTP port (0: none).
    #[arg(long, default_value_t = 8080)]
    http_port: u16,
    /// TCP port that accepts and closes connections (0: none).
    #[arg(long, default_value_t = 0)]
    tcp_port: u16,
    /// gRPC health port (0: none).
    #[arg(long, default_value_t = 0)]
    grpc_port: u16,
    /// The gRPC health service answers NOT_SERVING.
    #[arg(long)]
    grpc_not_serving: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut servers = tokio::task::JoinSet::<anyhow::Result<()>>::new();
    if args.http_port != 0 {
        let listener = tokio::net::TcpListener::bind(any(args.http_port)).await?;
        let app = Router::new().fallback(answer);
        servers.spawn(async move { Ok(axum::serve(listener, app).await?) });
    }
    if args.tcp_port != 0 {
        let listener = tokio::net::TcpListener::bind(any(args.tcp_port)).await?;
        servers.spawn(async move {
            loop {
                let (connection, peer) = listener.accept().await?;
                println!("TCP connection from {peer}");
                drop(connection);
            }
        });
    }
    if args.grpc_port != 0 {
        let (reporter, service) = tonic_health::server::health_reporter();
        let status = if args.grpc_not_serving {
            ServingStatus::NotServing
        } else {
            ServingStatus::Serving
        };
        reporter.set_service_status("", status).await;
        let address = any(args.grpc_port);
        servers.spawn(async move {
            Ok(tonic::transport::Server::builder()
                .add_service(service)
                .serve(address)
                .await?)
        });
    }
    println!("testserver listening: {args:?}");
    while let Some(ended) = servers.join_next().await {
        ended??;
    }
    Ok(())
}

fn any(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))
}

/// Logs the request and answers by its path.
async fn answer(request: Request) -> (StatusCode, String) {
    let path = request.uri().path().to_string();
    let agent = request
        .headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    println!("HTTP {} {path} {agent}", request.method());
    let status = path
        .strip_prefix("/status/")
        .and_then(|code| code.parse().ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or(StatusCode::OK);
    (status, path)
}
