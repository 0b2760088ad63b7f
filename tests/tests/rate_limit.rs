//! The client-side limiter against a real apiserver: at qps 10 and burst 10, 40 requests need at least 3 s
//! (10 at once, then 30 spaced 100 ms apart). Only a lower bound: an upper one would measure the machine.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;

use component_base::client::{client_from_config, load_config};
use ferrokube_cluster::Identity;
use ferrokube_cluster::testing::shared_control_plane;

#[tokio::test]
async fn forty_requests_at_qps_10_burst_10_take_at_least_three_seconds() {
    let kubeconfig = shared_control_plane()
        .kubeconfig(&Identity::admin())
        .unwrap();
    let client =
        client_from_config(load_config(Some(kubeconfig)).await.unwrap(), 10.0, 10).unwrap();
    let namespaces = Api::<Namespace>::all(client);
    let started = Instant::now();
    let requests = (0..40).map(|_| namespaces.get("default"));
    for result in futures::future::join_all(requests).await {
        result.unwrap();
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(2990),
        "40 requests took only {elapsed:?}"
    );
}
