//! `/portForward/{podNamespace}/{podID}[/{uid}]`: forwarding connections to a pod's ports over SPDY/3.1 with
//! protocol `portforward.k8s.io` (upstream's `getPortForward`, server.go, serving what the CRI streaming
//! server would).

pub mod dial;
mod forward;
pub mod pairs;

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::core::v1::Pod;

use super::containers::{Target, pod_not_found};
use super::spdy::{negotiate, upgrade};
use super::{ServerContext, text};
use crate::sandbox::namespaces::netns_path;
use dial::Network;
use forward::Forwarding;

/// The one port-forward protocol (cri-streaming portforward/constants.go).
pub const PROTOCOL_V1: &str = "portforward.k8s.io";

/// `/portForward/{ns}/{pod}`.
pub async fn port_forward(
    State(context): State<Arc<ServerContext>>,
    Path((namespace, pod)): Path<(String, String)>,
    request: Request,
) -> Response {
    let target = Target {
        namespace,
        pod,
        uid: None,
    };
    serve(&context, &target, request)
}

/// `/portForward/{ns}/{pod}/{uid}`.
pub async fn port_forward_uid(
    State(context): State<Arc<ServerContext>>,
    Path((namespace, pod, uid)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    let target = Target {
        namespace,
        pod,
        uid: Some(uid),
    };
    serve(&context, &target, request)
}

fn serve(context: &ServerContext, target: &Target, request: Request) -> Response {
    let Some(pod) = target.pod(context) else {
        return pod_not_found();
    };
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    if target.uid.as_ref().is_some_and(|asked| *asked != uid) {
        return text(StatusCode::NOT_FOUND, "pod not found");
    }
    let Some(network) = pod_network(&pod) else {
        // The runtime has no sandbox for it (cri-streaming's WriteError of `GetPortForward`'s error).
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("pod not found ({:?})", target.full_name()),
        );
    };
    let protocol = match negotiate(request.headers(), &[PROTOCOL_V1]) {
        Ok(protocol) => protocol,
        Err(refusal) => return refusal.into_response(),
    };
    let forwarding = Forwarding {
        network,
        sandbox: uid,
    };
    upgrade(request, &protocol, move |session| {
        forward::serve(session, forwarding)
    })
}

/// Where the pod's ports are: the host's network, or its sandbox's namespace while that exists.
fn pod_network(pod: &Pod) -> Option<Network> {
    if pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
    {
        return Some(Network::Host);
    }
    let path = netns_path(pod.metadata.uid.as_deref()?);
    path.exists().then_some(Network::Namespace(path))
}
