//! Monitors that share the controllers' typed informers instead of watching metadata of their own, as
//! upstream's `informerfactory.ForResource` prefers its typed factory: the process keeps one watch per
//! kind, and the apiserver encodes no second, metadata-only copy of every pod event.

use std::collections::BTreeMap;
use std::sync::Arc;

use component_base::informer::{InformerEvent, SharedInformer, SharedInformerFactory, Watched};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, Node, ReplicationController, Service, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::discovery::ApiResource;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::graph::Change;
use super::monitors::{GraphChanges, state, upsert};
use super::operations::resource_key;
use crate::pod::Pod;

/// Starts a monitor of one resource that feeds `GraphChanges` from a typed informer, setting the flag
/// once it has observed the informer's first list, until the token is cancelled.
pub type TypedMonitor =
    Box<dyn Fn(ApiResource, GraphChanges, watch::Sender<bool>, CancellationToken) + Send + Sync>;

/// Monitors for the kinds the controllers watch through typed informers, keyed as discovery keys resources
/// (a resource whose preferred version is another is watched for metadata).
pub fn typed_monitors(informers: &SharedInformerFactory) -> BTreeMap<String, TypedMonitor> {
    [
        typed::<Pod>(informers),
        typed::<ReplicaSet>(informers),
        typed::<Deployment>(informers),
        typed::<ReplicationController>(informers),
        typed::<Node>(informers),
        typed::<Lease>(informers),
        typed::<Namespace>(informers),
        typed::<ConfigMap>(informers),
        typed::<ServiceAccount>(informers),
        typed::<Service>(informers),
        typed::<EndpointSlice>(informers),
    ]
    .into_iter()
    .collect()
}

fn typed<K: Watched>(informers: &SharedInformerFactory) -> (String, TypedMonitor) {
    let key = resource_key(&ApiResource::erase::<K>(&()));
    let informers = informers.clone();
    let start: TypedMonitor = Box::new(move |resource, changes, synced, stop| {
        tokio::spawn(run(
            informers.informer::<K>(),
            resource,
            changes,
            synced,
            stop,
        ));
    });
    (key, start)
}

async fn run<K: Watched>(
    informer: SharedInformer<K>,
    resource: ApiResource,
    changes: GraphChanges,
    synced: watch::Sender<bool>,
    stop: CancellationToken,
) {
    tokio::select! {
        () = stop.cancelled() => return,
        () = informer.wait_for_sync() => {}
    }
    let mut events = informer.subscribe();
    // `subscribe` queued everything cached as `Added`: observing all of it is this monitor's first list.
    while let Ok(event) = events.try_recv() {
        observe(&resource, &changes, event);
    }
    synced.send_replace(true);
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return,
            event = events.recv() => event,
        };
        match event {
            Some(event) => observe(&resource, &changes, event),
            None => return,
        }
    }
}

/// Queues the graph change an informer event makes.
fn observe<K: Watched>(resource: &ApiResource, changes: &GraphChanges, event: InformerEvent<K>) {
    let state = |object: &K| Arc::new(state(resource, object.meta()));
    match event {
        InformerEvent::Added(object) => upsert(changes, state(&object), None),
        InformerEvent::Updated { old, new } => upsert(changes, state(&new), Some(state(&old))),
        InformerEvent::Deleted(object) => changes.push(Change::Delete {
            identity: state(&object).identity.clone(),
            virtual_: false,
        }),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};

    use super::super::monitors::tests::drain;
    use super::*;

    fn pod(uid: &str) -> Arc<Pod> {
        let mut pod = Pod::default();
        pod.metadata.namespace = Some("ns".into());
        pod.metadata.name = Some("p".into());
        pod.metadata.uid = Some(uid.into());
        pod.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "rs".into(),
            uid: "rs-uid".into(),
            ..OwnerReference::default()
        }]);
        Arc::new(pod)
    }

    async fn observed(events: Vec<InformerEvent<Pod>>) -> Vec<Change> {
        let resource = ApiResource::erase::<Pod>(&());
        let changes = GraphChanges::new();
        for event in events {
            observe(&resource, &changes, event);
        }
        drain(&changes).await
    }

    #[tokio::test]
    async fn informer_events_become_the_graph_changes_of_the_metadata_they_carry() {
        let added = observed(vec![InformerEvent::Added(pod("1"))]).await;
        assert!(matches!(&added[..], [Change::Upsert { object, old: None }]
            if object.identity.kind == "Pod" && object.identity.api_version == "v1"
                && object.identity.uid == "1" && object.owners[0].name == "rs"));

        let mut running = (*pod("1")).clone();
        running.status = Some(crate::pod::PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        });
        let unchanged = observed(vec![InformerEvent::Updated {
            old: pod("1"),
            new: Arc::new(running),
        }])
        .await;
        assert!(unchanged.is_empty(), "status only: {unchanged:?}");

        let mut deleting = (*pod("1")).clone();
        deleting.metadata.deletion_timestamp = Some(Time(Default::default()));
        let deleting = observed(vec![InformerEvent::Updated {
            old: pod("1"),
            new: Arc::new(deleting),
        }])
        .await;
        assert!(
            matches!(&deleting[..], [Change::Upsert { object, old: Some(old) }]
            if object.being_deleted && !old.being_deleted)
        );

        let deleted = observed(vec![InformerEvent::Deleted(pod("1"))]).await;
        assert!(
            matches!(&deleted[..], [Change::Delete { identity, virtual_: false }]
            if identity.uid == "1")
        );
    }

    #[tokio::test]
    async fn typed_monitors_use_the_keys_discovery_gives() {
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        let informers = SharedInformerFactory::new(kube::Client::try_from(config).unwrap());
        let keys: Vec<String> = typed_monitors(&informers).into_keys().collect();
        for key in [
            "v1/pods",
            "apps/v1/replicasets",
            "apps/v1/deployments",
            "coordination.k8s.io/v1/leases",
            "discovery.k8s.io/v1/endpointslices",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} in {keys:?}");
        }
    }
}
