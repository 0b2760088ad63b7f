//! What every controller is started with (upstream's ControllerContext): the shared informers, a client
//! builder, the flags, and the token that stops it.

use std::sync::Arc;

use component_base::events::EventRecorder;
use component_base::informer::SharedInformerFactory;
use kube::Client;
use tokio_util::sync::CancellationToken;

use crate::client_builder::{ClientBuilder, ClientBuilderError};
use crate::options::ControllerManagerFlags;

/// Shared by all controllers of one controller-manager; cheap to clone.
#[derive(Clone)]
pub struct ControllerContext {
    /// One informer per resource kind, shared by every controller, watching as the controller-manager.
    pub informers: SharedInformerFactory,
    /// Makes each controller's own client.
    pub clients: ClientBuilder,
    /// The controller-manager's flags.
    pub flags: Arc<ControllerManagerFlags>,
    /// Cancelled when the controllers must stop (shutdown or lost leadership).
    pub stop: CancellationToken,
    /// This process's identity (`host_uuid`), the events' reporting instance.
    pub instance: String,
}

impl ControllerContext {
    /// A new client for the controller whose ServiceAccount (under `--use-service-account-credentials`) is
    /// `account`.
    pub async fn client(&self, account: &str) -> Result<Client, ClientBuilderError> {
        self.clients.client(account).await
    }

    /// An event recorder reporting as `component` (upstream's event source, e.g. `replicaset-controller`).
    pub fn recorder(&self, client: Client, component: &str) -> EventRecorder {
        EventRecorder::new(client, component, &format!("{component}-{}", self.instance))
    }
}

/// Why a controller could not start; the controller-manager stops with it, as upstream does.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Client(#[from] ClientBuilderError),
    #[error("{0}")]
    Invalid(String),
}
