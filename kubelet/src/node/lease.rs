//! The node's heartbeat: a Lease named after the node in kube-node-lease, renewed every quarter of its
//! duration (10 s by default), as upstream's lease controller (component-helpers/apimachinery/lease).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;

/// The namespace of node leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
/// Upstream's cap on the backoff while the lease cannot be fetched or created.
const MAX_BACKOFF: Duration = Duration::from_secs(7);

/// Renews `node_name`'s Lease until `stop`.
pub struct NodeLease {
    leases: Api<Lease>,
    nodes: Api<Node>,
    node_name: String,
    duration_seconds: i32,
    latest: Option<Lease>,
}

impl NodeLease {
    /// A lease of `duration_seconds` for `node_name`.
    pub fn new(client: Client, node_name: &str, duration_seconds: i32) -> Self {
        Self {
            leases: Api::namespaced(client.clone(), NODE_LEASE_NAMESPACE),
            nodes: Api::all(client),
            node_name: node_name.to_string(),
            duration_seconds,
            latest: None,
        }
    }

    /// How often the lease is renewed: a quarter of its duration.
    pub fn renew_interval(&self) -> Duration {
        Duration::from_secs_f64(f64::from(self.duration_seconds.max(1)) / 4.0)
    }

    /// Renews the lease every interval (with upstream's 4% jitter) until `stop`.
    pub async fn run(mut self, stop: CancellationToken) {
        let interval = self.renew_interval();
        loop {
            self.sync(&stop).await;
            let jitter = interval.mul_f64(0.04 * rand::random::<f64>());
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(interval + jitter) => {}
            }
        }
    }

    async fn sync(&mut self, stop: &CancellationToken) {
        if let Some(latest) = self.latest.take()
            && let Some(renewed) = self.renew(latest).await
        {
            self.latest = Some(renewed);
            return;
        }
        let mut sleep = Duration::from_millis(100);
        let lease = loop {
            match self.ensure().await {
                Ok(lease) => break lease,
                Err(e) => {
                    tracing::error!(error = %e, "failed to ensure node lease exists, will retry")
                }
            }
            sleep = (sleep * 2).min(MAX_BACKOFF);
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(sleep) => {}
            }
        };
        self.latest = self.renew(lease).await;
    }

    /// The lease as it is, created if missing.
    async fn ensure(&self) -> Result<Lease, kube::Error> {
        if let Some(lease) = self.leases.get_opt(&self.node_name).await? {
            return Ok(lease);
        }
        let mut lease = Lease {
            metadata: ObjectMeta {
                name: Some(self.node_name.clone()),
                namespace: Some(NODE_LEASE_NAMESPACE.to_string()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.node_name.clone()),
                lease_duration_seconds: Some(self.duration_seconds),
                renew_time: Some(MicroTime(Timestamp::now())),
                ..LeaseSpec::default()
            }),
        };
        self.set_owner(&mut lease).await;
        self.leases.create(&PostParams::default(), &lease).await
    }

    /// Writes a fresh renewTime; `None` when the update failed (the next sync fetches the lease again).
    async fn renew(&self, mut lease: Lease) -> Option<Lease> {
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        spec.holder_identity = Some(self.node_name.clone());
        spec.lease_duration_seconds = Some(self.duration_seconds);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        if lease.metadata.owner_references.is_none() {
            self.set_owner(&mut lease).await;
        }
        match self
            .leases
            .replace(&self.node_name, &PostParams::default(), &lease)
            .await
        {
            Ok(renewed) => Some(renewed),
            Err(e) => {
                tracing::error!(error = %e, "failed to update lease");
                None
            }
        }
    }

    /// Makes the Node the lease's owner, so the lease goes with it; left unset while the node is unknown.
    async fn set_owner(&self, lease: &mut Lease) {
        let Ok(Some(node)) = self.nodes.get_opt(&self.node_name).await else {
            return;
        };
        let Some(uid) = node.metadata.uid else {
            return;
        };
        lease.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "v1".to_string(),
            kind: "Node".to_string(),
            name: self.node_name.clone(),
            uid,
            ..OwnerReference::default()
        }]);
    }
}
