//! The events recorder against a real apiserver: an event lands in events.k8s.io/v1 with the reporting
//! component and instance, and a repeat of the same event becomes a series on the same object.

use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use k8s_openapi::api::events::v1::Event;
use kube::Resource;
use kube::api::{Api, ListParams, ObjectMeta, PostParams};

use component_base::events::EventRecorder;
use ferrokube_cluster::testing::TestNamespace;
use ferrokube_tests::scheduling::eventually;
use std::time::Duration;

#[tokio::test]
async fn a_repeated_event_is_one_object_with_a_series() {
    let namespace = TestNamespace::new("events").await;
    let configmap = ConfigMap {
        metadata: ObjectMeta {
            name: Some("subject".into()),
            namespace: Some(namespace.name.clone()),
            ..ObjectMeta::default()
        },
        ..ConfigMap::default()
    };
    let configmap = Api::<ConfigMap>::namespaced(namespace.client.clone(), namespace.name())
        .create(&PostParams::default(), &configmap)
        .await
        .unwrap();
    let regarding: ObjectReference = configmap.object_ref(&());

    let recorder = EventRecorder::new(
        namespace.client.clone(),
        "ferrokube-test",
        "ferrokube-test-host",
    );
    recorder.warning(&regarding, "FailedThing", "Testing", "it failed".into());
    recorder.warning(&regarding, "FailedThing", "Testing", "it failed".into());

    // Events are written in the background, in order: wait for the repeat to join the first's series.
    let api = Api::<Event>::namespaced(namespace.client.clone(), namespace.name());
    let events = eventually(Duration::from_secs(10), "the event's series", || async {
        let events = api.list(&ListParams::default()).await.ok()?.items;
        events.iter().any(|e| e.series.is_some()).then_some(events)
    })
    .await;
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event.reason.as_deref(), Some("FailedThing"));
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert_eq!(event.note.as_deref(), Some("it failed"));
    assert_eq!(
        event.reporting_controller.as_deref(),
        Some("ferrokube-test")
    );
    assert_eq!(
        event.reporting_instance.as_deref(),
        Some("ferrokube-test-host")
    );
    assert_eq!(
        event.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("subject")
    );
    assert_eq!(event.series.as_ref().map(|s| s.count), Some(2));
    namespace.delete().await;
}
