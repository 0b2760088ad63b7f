//! Task exits and OOM kills from containerd's event service, so container status follows an exit within
//! milliseconds.

use containerd_client::events::TaskExit as TaskExitEvent;
use containerd_client::events::TaskOom as TaskOomEvent;
use containerd_client::services::v1::events_client::EventsClient;
use containerd_client::services::v1::{PublishRequest, SubscribeRequest};
use futures::{Stream, StreamExt};
use prost::Message;
use prost_types::Any;

use super::container::timestamp;
use super::error::{Result, RuntimeError};
use super::{NAMESPACE, Runtime};

/// The topic containerd publishes process exits on.
const EXIT_TOPIC: &str = "/tasks/exit";
/// The topic containerd publishes a task's OOM kills on (the kernel killed a process for memory).
const OOM_TOPIC: &str = "/tasks/oom";
/// The topic of the marker events that bring a new subscription's first response.
const SUBSCRIBED_TOPIC: &str = "/ferrokube/kubelet/subscribed";
/// The marker's payload type: an empty message.
const EMPTY_TYPE_URL: &str = "types.googleapis.com/google.protobuf.Empty";
/// How often a marker is published while the subscription waits for its first event.
const SUBSCRIBE_RETRY: std::time::Duration = std::time::Duration::from_millis(50);
/// How long subscribing may take.
const SUBSCRIBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What containerd reports about the kubelet's tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeEvent {
    /// A process exited: the init process or an exec'd one.
    Exit(TaskExit),
    /// The kernel's OOM killer killed a process of container `container_id` (its exit follows, or came).
    Oom {
        /// The container.
        container_id: String,
    },
}

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
    /// Task exits and OOM kills in the kubelet's namespace from the moment this returns (the subscription
    /// is live then). The stream ends with an error when containerd's connection does; subscribe again (and
    /// resync) then.
    pub async fn events(
        &self,
    ) -> Result<impl Stream<Item = Result<RuntimeEvent>> + Send + 'static> {
        let filters = vec![
            format!("topic==\"{EXIT_TOPIC}\",namespace==\"{NAMESPACE}\""),
            format!("topic==\"{OOM_TOPIC}\",namespace==\"{NAMESPACE}\""),
            format!("topic==\"{SUBSCRIBED_TOPIC}\",namespace==\"{NAMESPACE}\""),
        ];
        let mut client = EventsClient::new(self.channel.clone());
        let subscribe = client.subscribe(self.request(SubscribeRequest { filters }));
        tokio::pin!(subscribe);
        // containerd sends the response headers with the first event only, so the call returns once an
        // event arrives: publish markers until one does, which also proves the subscription is in place.
        let mut publisher = EventsClient::new(self.channel.clone());
        let mut tick = tokio::time::interval(SUBSCRIBE_RETRY);
        let started = tokio::time::Instant::now();
        let response = loop {
            tokio::select! {
                response = &mut subscribe => break response,
                _ = tick.tick() => {
                    if started.elapsed() > SUBSCRIBE_TIMEOUT {
                        return Err(RuntimeError::Events {
                            message: format!("no event within {SUBSCRIBE_TIMEOUT:?} of subscribing"),
                        });
                    }
                    let marker = PublishRequest {
                        topic: SUBSCRIBED_TOPIC.to_string(),
                        event: Some(Any {
                            type_url: EMPTY_TYPE_URL.to_string(),
                            value: Vec::new(),
                        }),
                    };
                    publisher
                        .publish(self.request(marker))
                        .await
                        .map_err(|s| RuntimeError::rpc("events.Publish", SUBSCRIBED_TOPIC, s))?;
                }
            }
        };
        let stream = response
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
            // Markers (ours or another subscriber's) are skipped here.
            let event = envelope.event?;
            decode(&envelope.topic, &event.value).map(Ok)
        }))
    }
}

/// The event of `topic` with payload `value`; `None` for other topics and undecodable payloads.
fn decode(topic: &str, value: &[u8]) -> Option<RuntimeEvent> {
    let decoded = match topic {
        EXIT_TOPIC => TaskExitEvent::decode(value).map(|exit| {
            RuntimeEvent::Exit(TaskExit {
                container_id: exit.container_id,
                process_id: exit.id,
                pid: exit.pid,
                exit_status: exit.exit_status,
                exited_at: timestamp(exit.exited_at),
            })
        }),
        OOM_TOPIC => TaskOomEvent::decode(value).map(|oom| RuntimeEvent::Oom {
            container_id: oom.container_id,
        }),
        _ => return None,
    };
    match decoded {
        Ok(event) => Some(event),
        Err(e) => {
            tracing::warn!("undecodable {topic} event: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_and_oom_kills_decode_and_other_topics_are_skipped() {
        let exit = TaskExitEvent {
            container_id: "c1".into(),
            id: "exec-1".into(),
            pid: 42,
            exit_status: 137,
            exited_at: None,
        };
        let decoded = decode(EXIT_TOPIC, &exit.encode_to_vec());
        assert_eq!(
            decoded,
            Some(RuntimeEvent::Exit(TaskExit {
                container_id: "c1".into(),
                process_id: "exec-1".into(),
                pid: 42,
                exit_status: 137,
                exited_at: None,
            }))
        );
        let oom = TaskOomEvent {
            container_id: "c2".into(),
        };
        assert_eq!(
            decode(OOM_TOPIC, &oom.encode_to_vec()),
            Some(RuntimeEvent::Oom {
                container_id: "c2".into()
            })
        );
        assert_eq!(decode(SUBSCRIBED_TOPIC, &[]), None);
        assert_eq!(decode(EXIT_TOPIC, &[0xff, 0xff]), None);
    }
}
