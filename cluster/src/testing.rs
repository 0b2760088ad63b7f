//! Test support: one control plane per test binary, shared by its tests, each of which takes a fresh
//! namespace.

use std::sync::OnceLock;

use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};

use crate::{ControlPlane, ControlPlaneConfig, Identity};

/// Nodes the shared control plane has kubelet credentials for.
pub const TEST_NODES: [&str; 2] = ["node-1", "node-2"];

/// The test binary's control plane, started on first use. Its processes and directory go when the test
/// binary exits or is interrupted. Panics with the reason if it cannot start: no test can run without it.
pub fn shared_control_plane() -> &'static ControlPlane {
    static SHARED: OnceLock<ControlPlane> = OnceLock::new();
    SHARED.get_or_init(|| {
        crate::cleanup::install_signal_handlers();
        // Each #[tokio::test] has its own runtime, which ends with the test; start on a runtime of our own.
        let started = std::thread::spawn(|| -> Result<ControlPlane, String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let config = ControlPlaneConfig {
                apiserver_port: 0,
                node_names: TEST_NODES.iter().map(|n| n.to_string()).collect(),
                ..Default::default()
            };
            runtime
                .block_on(ControlPlane::start(config))
                .map_err(|e| e.to_string())
        })
        .join();
        match started {
            Ok(Ok(control_plane)) => control_plane,
            Ok(Err(e)) => panic!("the test control plane did not start: {e}"),
            Err(_) => panic!("the test control plane's start-up thread panicked"),
        }
    })
}

/// A namespace of its own for one test, created by the admin.
pub struct TestNamespace {
    /// The namespace's name.
    pub name: String,
    /// An admin client.
    pub client: Client,
}

impl TestNamespace {
    /// Creates a fresh namespace named after `test` on the shared control plane.
    pub async fn new(test: &str) -> Self {
        let client = shared_control_plane()
            .client(&Identity::admin())
            .await
            .unwrap_or_else(|e| panic!("admin client: {e}"));
        let suffix: u32 = rand::random::<u32>() % 1_000_000;
        let name = format!(
            "{}-{suffix:06}",
            test.replace('_', "-").chars().take(50).collect::<String>()
        );
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        Self { name, client }
    }

    /// Asks for the namespace's deletion (the namespace controller, when running, empties it).
    pub async fn delete(self) {
        let api = Api::<Namespace>::all(self.client.clone());
        if let Err(e) = api.delete(&self.name, &DeleteParams::default()).await {
            tracing::warn!(namespace = %self.name, "could not delete test namespace: {e}");
        }
    }

    /// The namespace's name, for APIs that take `&str`.
    pub fn name(&self) -> &str {
        &self.name
    }
}
