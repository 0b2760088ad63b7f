//! Events (events.k8s.io/v1) as upstream components record them: reported by the component and its
//! instance, with repeats of the same event folded into one object's series (kube-runtime's recorder does
//! the folding, as client-go's events broadcaster does).

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// Records events for one component; cheap to clone.
#[derive(Clone)]
pub struct EventRecorder {
    recorder: Recorder,
}

impl EventRecorder {
    /// A recorder reporting as `controller` (upstream's reportingController, e.g. `default-scheduler`) from
    /// `instance` (upstream's reportingInstance, e.g. `default-scheduler-<hostname>`).
    pub fn new(client: Client, controller: &str, instance: &str) -> Self {
        let reporter = Reporter {
            controller: controller.to_string(),
            instance: Some(instance.to_string()),
        };
        Self {
            recorder: Recorder::new(client, reporter),
        }
    }

    /// Records a Normal event about `regarding`. Failures are logged, not returned: like upstream, an event
    /// that cannot be written never stops the work it describes.
    pub async fn normal(
        &self,
        regarding: &ObjectReference,
        reason: &str,
        action: &str,
        note: String,
    ) {
        self.publish(regarding, None, EventType::Normal, reason, action, note)
            .await;
    }

    /// Records a Normal event about `regarding` that concerns `related` too (a controller's event about
    /// one of its pods). Events differing in `related` are never folded into one series, so each pod's
    /// "Created pod: NAME" stays its own event, as upstream's per-message events do.
    pub async fn normal_related(
        &self,
        regarding: &ObjectReference,
        related: &ObjectReference,
        reason: &str,
        action: &str,
        note: String,
    ) {
        self.publish(
            regarding,
            Some(related),
            EventType::Normal,
            reason,
            action,
            note,
        )
        .await;
    }

    /// Records a Warning event about `regarding`; failures are logged as for [`EventRecorder::normal`].
    pub async fn warning(
        &self,
        regarding: &ObjectReference,
        reason: &str,
        action: &str,
        note: String,
    ) {
        self.publish(regarding, None, EventType::Warning, reason, action, note)
            .await;
    }

    async fn publish(
        &self,
        regarding: &ObjectReference,
        related: Option<&ObjectReference>,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note),
            action: action.to_string(),
            secondary: related.cloned(),
        };
        if let Err(e) = self.recorder.publish(&event, regarding).await {
            tracing::warn!(reason, object = ?regarding.name, error = %e, "could not record event");
        }
    }
}
