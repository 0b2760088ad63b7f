//! Events (events.k8s.io/v1) as upstream components record them: reported by the component and its
//! instance, with repeats of the same event folded into one object's series (kube-runtime's recorder does
//! the folding, as client-go's events broadcaster does), written in the background and spam-filtered per
//! object as client-go's event correlator does, so events never hold up the work they describe.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;

use crate::ratelimit::TokenBucket;

/// client-go's `EventSourceObjectSpamFilter` defaults: 25 events at once about one object, then one every
/// 5 minutes.
const SPAM_BURST: u32 = 25;
const SPAM_QPS: f32 = 1.0 / 300.0;
/// Objects whose spam buckets are kept (client-go's LRU size).
const SPAM_CACHE_SIZE: usize = 4096;
/// Events waiting to be written; more are dropped, as client-go's broadcaster drops when its queue is full.
const QUEUE_LENGTH: usize = 1000;

/// Records events for one component; cheap to clone.
#[derive(Clone)]
pub struct EventRecorder {
    queue: mpsc::Sender<(Event, ObjectReference)>,
    spam: Arc<Mutex<HashMap<String, TokenBucket>>>,
}

impl EventRecorder {
    /// A recorder reporting as `controller` (upstream's reportingController, e.g. `default-scheduler`) from
    /// `instance` (upstream's reportingInstance, e.g. `default-scheduler-<hostname>`). Must be called
    /// within a tokio runtime: it starts the task that writes the events.
    pub fn new(client: Client, controller: &str, instance: &str) -> Self {
        let reporter = Reporter {
            controller: controller.to_string(),
            instance: Some(instance.to_string()),
        };
        let (queue, mut events) = mpsc::channel::<(Event, ObjectReference)>(QUEUE_LENGTH);
        // One writer, in order, as client-go's broadcaster: a repeat then finds its first event and joins
        // its series instead of racing it into a second object. It ends when the last clone is dropped.
        tokio::spawn(async move {
            // kube-runtime's Recorder folds repeats by everything but the note; client-go's key has the
            // note too, so an event with another note (a probe failing differently) is an event of its
            // own: one Recorder per note.
            let mut recorders: HashMap<String, Recorder> = HashMap::new();
            while let Some((event, regarding)) = events.recv().await {
                let note = event.note.clone().unwrap_or_default();
                if recorders.len() >= SPAM_CACHE_SIZE && !recorders.contains_key(&note) {
                    recorders.clear();
                }
                let recorder = recorders
                    .entry(note)
                    .or_insert_with(|| Recorder::new(client.clone(), reporter.clone()));
                if let Err(e) = recorder.publish(&event, &regarding).await {
                    tracing::warn!(reason = %event.reason, object = ?regarding.name, error = %e, "could not record event");
                }
            }
        });
        Self {
            queue,
            spam: Arc::default(),
        }
    }

    /// Whether another event about `regarding` may be written now (client-go's spam filter, keyed by the
    /// object; the source is this recorder's).
    fn allowed(&self, regarding: &ObjectReference) -> bool {
        let key = format!(
            "{}/{}/{}/{}/{}",
            regarding.api_version.as_deref().unwrap_or_default(),
            regarding.kind.as_deref().unwrap_or_default(),
            regarding.namespace.as_deref().unwrap_or_default(),
            regarding.name.as_deref().unwrap_or_default(),
            regarding.uid.as_deref().unwrap_or_default(),
        );
        let mut spam = self.spam.lock().unwrap_or_else(|e| e.into_inner());
        if spam.len() >= SPAM_CACHE_SIZE && !spam.contains_key(&key) {
            // Unlike client-go's LRU this forgets every object at once; a forgotten one gets a full burst.
            spam.clear();
        }
        spam.entry(key)
            .or_insert_with(|| TokenBucket::new(SPAM_QPS, SPAM_BURST))
            .try_take()
    }

    /// Records a Normal event about `regarding`. Failures are logged, not returned: like upstream, an event
    /// that cannot be written never stops the work it describes.
    pub fn normal(&self, regarding: &ObjectReference, reason: &str, action: &str, note: String) {
        self.publish(regarding, None, EventType::Normal, reason, action, note);
    }

    /// Records a Normal event about `regarding` that concerns `related` too (a controller's event about
    /// one of its pods). Events differing in `related` are never folded into one series, so each pod's
    /// "Created pod: NAME" stays its own event, as upstream's per-message events do.
    pub fn normal_related(
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
        );
    }

    /// Records a Warning event about `regarding`; failures are logged as for [`EventRecorder::normal`].
    pub fn warning(&self, regarding: &ObjectReference, reason: &str, action: &str, note: String) {
        self.publish(regarding, None, EventType::Warning, reason, action, note);
    }

    fn publish(
        &self,
        regarding: &ObjectReference,
        related: Option<&ObjectReference>,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
    ) {
        if !self.allowed(regarding) {
            tracing::debug!(reason, object = ?regarding.name, "event dropped by the spam filter");
            return;
        }
        let event = Event {
            type_,
            reason: reason.to_string(),
            note: Some(note),
            action: action.to_string(),
            secondary: related.cloned(),
        };
        if self.queue.try_send((event, regarding.clone())).is_err() {
            tracing::warn!(reason, object = ?regarding.name, "event dropped: the event queue is full");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_object_gets_a_burst_of_25_events() {
        // Never contacted: every event here is refused by the filter or never awaited.
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        let recorder = EventRecorder::new(Client::try_from(config).unwrap(), "c", "c-1");
        let object = |name: &str| ObjectReference {
            kind: Some("ReplicaSet".into()),
            namespace: Some("ns".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..ObjectReference::default()
        };
        let (a, b) = (object("a"), object("b"));
        assert!((0..25).all(|_| recorder.allowed(&a)));
        assert!(
            !recorder.allowed(&a),
            "the 26th about one object is dropped"
        );
        assert!(recorder.allowed(&b), "another object has its own burst");
    }
}
