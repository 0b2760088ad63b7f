//! A shared informer against a real apiserver: its cache lists what exists, follows creates, updates and
//! deletes, keeps its namespace index current, and tells subscribers.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use tokio_util::sync::CancellationToken;

use component_base::informer::{InformerEvent, ObjectKey, SharedInformerFactory, index};
use ferrokube_cluster::testing::TestNamespace;

fn configmap(name: &str, value: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        data: Some([("v".to_string(), value.to_string())].into()),
        ..ConfigMap::default()
    }
}

async fn next<K>(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<InformerEvent<K>>,
) -> InformerEvent<K> {
    tokio::time::timeout(Duration::from_secs(20), events.recv())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn the_cache_follows_the_apiserver_and_subscribers_hear_of_it() {
    let namespace = TestNamespace::new("informer").await;
    let api = Api::<ConfigMap>::namespaced(namespace.client.clone(), namespace.name());
    api.create(&PostParams::default(), &configmap("before", "1"))
        .await
        .unwrap();

    let factory = SharedInformerFactory::new(namespace.client.clone());
    let informer = factory.informer::<ConfigMap>();
    informer.add_index(index::NAMESPACE, index::by_namespace());
    let stop = CancellationToken::new();
    factory.start(stop.clone());
    tokio::time::timeout(Duration::from_secs(20), informer.wait_for_sync())
        .await
        .unwrap();

    let key = |name: &str| ObjectKey::parse(&format!("{}/{name}", namespace.name));
    assert!(informer.get(&key("before")).is_some());
    assert_eq!(
        informer.by_index(index::NAMESPACE, namespace.name()).len(),
        1
    );

    let mut events = informer.subscribe();
    let mine = |event: &InformerEvent<ConfigMap>| match event {
        InformerEvent::Added(o)
        | InformerEvent::Deleted(o)
        | InformerEvent::Updated { new: o, .. } => {
            o.metadata.namespace.as_deref() == Some(namespace.name())
        }
    };
    // Other namespaces' ConfigMaps (kube-root-ca.crt and other tests') arrive too; keep ours.
    let mut ours = async || loop {
        let event = next(&mut events).await;
        if mine(&event) {
            return event;
        }
    };
    assert!(
        matches!(ours().await, InformerEvent::Added(o) if o.metadata.name.as_deref() == Some("before"))
    );

    api.create(&PostParams::default(), &configmap("after", "1"))
        .await
        .unwrap();
    assert!(
        matches!(ours().await, InformerEvent::Added(o) if o.metadata.name.as_deref() == Some("after"))
    );
    api.replace("after", &PostParams::default(), &{
        let mut updated = api.get("after").await.unwrap();
        updated.data = Some([("v".to_string(), "2".to_string())].into());
        updated
    })
    .await
    .unwrap();
    assert!(
        matches!(ours().await, InformerEvent::Updated { new, .. } if new.data.as_ref().unwrap()["v"] == "2")
    );
    assert_eq!(
        informer.get(&key("after")).unwrap().data.as_ref().unwrap()["v"],
        "2"
    );

    api.delete("before", &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        matches!(ours().await, InformerEvent::Deleted(o) if o.metadata.name.as_deref() == Some("before"))
    );
    assert!(informer.get(&key("before")).is_none());
    assert_eq!(
        informer.by_index(index::NAMESPACE, namespace.name()).len(),
        1
    );
    stop.cancel();
    namespace.delete().await;
}
