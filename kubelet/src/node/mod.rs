//! The Node this kubelet runs: registration, the status loop (upstream's syncNodeStatus) and the Lease.

pub mod address;
pub mod lease;
pub mod machine;
pub mod registration;
pub mod runtime_state;
pub mod status;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use component_base::events::EventRecorder;
use k8s_openapi::api::core::v1::{Node, ObjectReference};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::KubeletConfiguration;
use machine::MachineInfo;
use runtime_state::RuntimeState;
use status::{StatusInputs, set_node_status, status_changed};

/// Upstream retries a failed status update this many times per period.
const STATUS_UPDATE_RETRIES: usize = 5;

/// Who this node is and how it reports itself.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    /// The Node's name.
    pub name: String,
    /// The host name reported in the Hostname address and label.
    pub hostname: String,
    /// The node's IPs.
    pub ips: Vec<IpAddr>,
    /// Labels from `--node-labels`.
    pub labels: BTreeMap<String, String>,
}

/// Registers the node and keeps its status current.
pub struct NodeStatusManager {
    nodes: Api<Node>,
    client: Client,
    identity: NodeIdentity,
    config: Arc<KubeletConfiguration>,
    machine: MachineInfo,
    runtime: watch::Receiver<RuntimeState>,
    recorder: EventRecorder,
    last_report: Option<Instant>,
    report_after: Duration,
    last_unschedulable: bool,
}

impl NodeStatusManager {
    /// A manager for `identity`, reading the runtime's state from `runtime`.
    pub fn new(
        client: Client,
        identity: NodeIdentity,
        config: Arc<KubeletConfiguration>,
        machine: MachineInfo,
        runtime: watch::Receiver<RuntimeState>,
        recorder: EventRecorder,
    ) -> Self {
        Self {
            nodes: Api::all(client.clone()),
            client,
            identity,
            config,
            machine,
            runtime,
            recorder,
            last_report: None,
            report_after: Duration::ZERO,
            last_unschedulable: false,
        }
    }

    /// The reference node events are about; upstream uses the node's name as its UID here.
    fn node_ref(&self) -> ObjectReference {
        ObjectReference {
            kind: Some("Node".to_string()),
            api_version: Some("v1".to_string()),
            name: Some(self.identity.name.clone()),
            uid: Some(self.identity.name.clone()),
            ..ObjectReference::default()
        }
    }

    /// Registers the node (unless registration is off), starts the Lease, then updates the status every
    /// nodeStatusUpdateFrequency, and at once when the runtime's state changes, until `stop`.
    pub async fn run(mut self, stop: CancellationToken) {
        self.record("Starting", "Starting kubelet.".to_string());
        if self.config.register_node.unwrap_or(true) && !self.register(&stop).await {
            return;
        }
        let lease = lease::NodeLease::new(
            self.client.clone(),
            &self.identity.name,
            self.config.node_lease_duration_seconds,
        );
        tokio::spawn(lease.run(stop.clone()));
        let period = self.config.node_status_update_frequency.as_std();
        loop {
            self.update_with_retries().await;
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(period) => {}
                changed = self.runtime.changed() => if changed.is_err() { return },
            }
        }
    }

    async fn register(&mut self, stop: &CancellationToken) -> bool {
        let mut node = registration::initial_node(
            &self.identity.name,
            &self.identity.hostname,
            &self.identity.labels,
            &self.config.register_with_taints,
        );
        // The first status rides along with the create, as upstream's initialNode.
        let runtime = self.runtime.borrow().clone();
        let events = set_node_status(&mut node, &self.inputs(&runtime));
        let registered = registration::register(&self.client, &node, stop).await;
        if registered {
            self.record_status_events(&events);
        }
        registered
    }

    fn record_status_events(&self, reasons: &[&str]) {
        for reason in reasons {
            let note = format!("Node {} status is now: {reason}", self.identity.name);
            self.record(reason, note);
        }
    }

    fn inputs<'a>(&'a self, runtime: &'a RuntimeState) -> StatusInputs<'a> {
        StatusInputs {
            hostname: &self.identity.hostname,
            node_ips: &self.identity.ips,
            machine: &self.machine,
            config: &self.config,
            runtime,
            now_instant: Instant::now(),
            now: Timestamp::now(),
        }
    }

    async fn update_with_retries(&mut self) {
        for attempt in 0..STATUS_UPDATE_RETRIES {
            match self.update().await {
                Ok(()) => return,
                Err(e) => {
                    tracing::error!(attempt, error = %e, "Error updating node status, will retry")
                }
            }
        }
        tracing::error!("Unable to update node status: update node status exceeds retry count");
    }

    async fn update(&mut self) -> Result<(), kube::Error> {
        let original = self.nodes.get(&self.identity.name).await?;
        let mut node = original.clone();
        let runtime = self.runtime.borrow().clone();
        let events = set_node_status(&mut node, &self.inputs(&runtime));
        let changed = match (&original.status, &node.status) {
            (Some(before), Some(after)) => status_changed(before, after),
            _ => true,
        };
        let report_due = self
            .last_report
            .is_none_or(|at| at.elapsed() >= self.report_after);
        if changed || report_due {
            let period = self.config.node_status_report_frequency.as_std();
            // After a change upstream reports again within 50% to 150% of the period, which spreads the
            // unchanged reports of many nodes.
            self.report_after = if changed || self.last_report.is_none() {
                period.mul_f64(0.5 + rand::random::<f64>())
            } else {
                period
            };
            let patch = serde_json::json!({ "status": node.status });
            self.nodes
                .patch_status(
                    &self.identity.name,
                    &PatchParams::default(),
                    &Patch::Strategic(patch),
                )
                .await?;
            self.last_report = Some(Instant::now());
            self.record_status_events(&events);
        }
        self.record_schedulable_change(&original);
        Ok(())
    }

    /// NodeSchedulable / NodeNotSchedulable when a cordon changes, as upstream's recordNodeSchedulableEvent.
    fn record_schedulable_change(&mut self, node: &Node) {
        let unschedulable = node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        if unschedulable != self.last_unschedulable {
            self.last_unschedulable = unschedulable;
            let reason = if unschedulable {
                "NodeNotSchedulable"
            } else {
                "NodeSchedulable"
            };
            self.record_status_events(&[reason]);
        }
    }

    fn record(&self, reason: &str, note: String) {
        self.recorder.normal(&self.node_ref(), reason, reason, note);
    }
}
