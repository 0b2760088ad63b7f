//! Task exits from containerd's event service, so container status follows an exit within milliseconds.

use containerd_client::events::TaskExit as TaskExitEvent;
use containerd_client::services::v1::SubscribeRequest;
use containerd_client::services::v1::events_client::EventsClient;
use futures::{Stream, StreamExt};
use prost::Message;

use super::container::timestamp;
use super::error::{Result, RuntimeError};
use super::{NAMESPACE, Runtime};

/// The topic containerd publishes process exits on.
const EXIT_TOPIC: &str = "/tasks/exit";

/// A process of a task has exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskExit {
    /// The container.
    pub container_id: String,
    /// The process: equal to the container ID for its init process, an exec ID otherwise.
    pub process_id: String,
    /// The process id.
    pub pid: u32,
    /// The exit code (128 + the signal for a killed process).
    pub exit_status: u32,
    /// When it exited.
    pub exited_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Runtime {
    /// Task exits in the kubelet's namespace from now on. The stream ends with an error when containerd's
    /// connection does; subscribe again (and resync) then.
    pub async fn events(&self) -> Result<impl Stream<Item = Result<TaskExit>> + Send + 'static> {
        let filter = format!("topic==\"{EXIT_TOPIC}\",namespace==\"{NAMESPACE}\"");
        let stream = EventsClient::new(self.channel.clone())
            .subscribe(self.request(SubscribeRequest {
                filters: vec![filter],
            }))
            .await
            .map_err(|s| RuntimeError::rpc("events.Subscribe", EXIT_TOPIC, s))?
            .into_inner();
        Ok(stream.filter_map(|envelope| async move {
            let envelope = match envelope {
                Ok(envelope) => envelope,
                Err(s) => {
                    return Some(Err(RuntimeError::Events {
                        message: s.message().to_string(),
                    }));
                }
            };
            if envelope.topic != EXIT_TOPIC {
                return None;
            }
            let event = envelope.event?;
            match TaskExitEvent::decode(event.value.as_slice()) {
                Ok(exit) => Some(Ok(TaskExit {
                    container_id: exit.container_id,
                    process_id: exit.id,
                    pid: exit.pid,
                    exit_status: exit.exit_status,
                    exited_at: timestamp(exit.exited_at),
                })),
                Err(e) => {
                    tracing::warn!("undecodable {EXIT_TOPIC} event: {e}");
                    None
                }
            }
        }))
    }
}
