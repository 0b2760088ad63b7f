//! One monitor per deletable resource (upstream's monitors), feeding the graph changes queue: the typed
//! informer the controllers share where there is one ([`super::typed`]), else a metadata-only watch of its
//! own. A metadata watch keeps the last metadata it saw per object so updates carry the old state
//! (deletion transitions) and a relist turns vanished objects into deletes.

use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use component_base::informer::SharedInformerFactory;
use component_base::workqueue::RateLimitingQueue;
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, DynamicObject, PartialObjectMeta};
use kube::discovery::ApiResource;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::graph::{Change, Identity, ObjectState};
use super::typed::{TypedMonitor, typed_monitors};

/// A queued graph change; queued changes are all distinct (each has its own sequence number).
#[derive(Clone, Debug)]
pub struct GraphChange {
    seq: u64,
    /// The change.
    pub change: Arc<Change>,
}

impl PartialEq for GraphChange {
    fn eq(&self, other: &Self) -> bool {
        self.seq == other.seq
    }
}
impl Eq for GraphChange {}
impl Hash for GraphChange {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.seq.hash(state);
    }
}

/// The graph_changes queue: changes in the order observed, processed by one worker.
#[derive(Clone)]
pub struct GraphChanges {
    /// The queue.
    pub queue: RateLimitingQueue<GraphChange>,
    next: Arc<AtomicU64>,
}

impl GraphChanges {
    /// An empty queue named as upstream's.
    pub fn new() -> Self {
        Self {
            queue: RateLimitingQueue::with_default_rate_limiter("garbage_collector_graph_changes"),
            next: Arc::default(),
        }
    }

    /// Queues `change`.
    pub fn push(&self, change: Change) {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        self.queue.add(GraphChange {
            seq,
            change: Arc::new(change),
        });
    }
}

impl Default for GraphChanges {
    fn default() -> Self {
        Self::new()
    }
}

struct Monitor {
    stop: CancellationToken,
    synced: watch::Receiver<bool>,
}

/// Watches one client carries. Each client has one HTTP/2 connection, on which the apiserver allows 100
/// streams at once (its default `MaxConcurrentStreams`); a watch holds a stream for as long as it runs, so
/// a watch past that limit would wait for a stream that never frees. client-go opens another connection
/// when a connection is full; the monitors spread over clients instead, with room left for their lists.
const WATCHES_PER_CLIENT: usize = 50;

/// Makes another client, with a connection of its own, for more monitors.
pub type ClientFactory = Box<dyn Fn() -> Option<Client> + Send + Sync>;

/// The running monitors, by `group/version/plural`.
pub struct Monitors {
    client: Client,
    /// Further clients with the number of monitors started on each, the first one `client`.
    clients: Vec<(Client, usize)>,
    more_clients: ClientFactory,
    typed: BTreeMap<String, TypedMonitor>,
    changes: GraphChanges,
    stop: CancellationToken,
    running: BTreeMap<String, Monitor>,
}

impl Monitors {
    /// No monitors yet; they will share the typed informers of `informers`, else watch metadata through
    /// `client`, and clients `more_clients` makes once it carries [`WATCHES_PER_CLIENT`] watches, until
    /// `stop`.
    pub fn new(
        informers: &SharedInformerFactory,
        client: Client,
        more_clients: ClientFactory,
        changes: GraphChanges,
        stop: CancellationToken,
    ) -> Self {
        Self {
            clients: vec![(client.clone(), 0)],
            client,
            more_clients,
            typed: typed_monitors(informers),
            changes,
            stop,
            running: BTreeMap::new(),
        }
    }

    /// Starts monitors for new resources and stops those of resources that went away; whether anything
    /// changed.
    pub fn sync(&mut self, resources: &BTreeMap<String, ApiResource>) -> bool {
        let before = self.running.len();
        self.running.retain(|key, monitor| {
            let keep = resources.contains_key(key);
            if !keep {
                tracing::info!(resource = key, "garbage collector: stopping monitor");
                monitor.stop.cancel();
            }
            keep
        });
        let mut changed = before != self.running.len();
        let initial = self.running.is_empty();
        for (key, resource) in resources {
            if self.running.contains_key(key) {
                continue;
            }
            changed = true;
            if !initial {
                tracing::info!(resource = key, "garbage collector: starting monitor");
            }
            let stop = self.stop.child_token();
            let (synced, receiver) = watch::channel(false);
            match self.typed.get(key) {
                Some(typed) => typed(resource.clone(), self.changes.clone(), synced, stop.clone()),
                None => {
                    let api = Api::<PartialObjectMeta<DynamicObject>>::all_with(
                        self.next_client(),
                        resource,
                    );
                    tokio::spawn(run(
                        api,
                        resource.clone(),
                        self.changes.clone(),
                        synced,
                        stop.clone(),
                    ));
                }
            }
            self.running.insert(
                key.clone(),
                Monitor {
                    stop,
                    synced: receiver,
                },
            );
        }
        changed
    }

    /// The client for one more monitor: one with room, else a new one (else, if none can be made, the
    /// first, as before clients spoke HTTP/2).
    fn next_client(&mut self) -> Client {
        if let Some((client, watches)) = self
            .clients
            .iter_mut()
            .find(|(_, watches)| *watches < WATCHES_PER_CLIENT)
        {
            *watches += 1;
            return client.clone();
        }
        match (self.more_clients)() {
            Some(client) => {
                self.clients.push((client.clone(), 1));
                client
            }
            None => self.client.clone(),
        }
    }

    /// Resolves once every monitor running now has listed once or been stopped since (its resource went
    /// away), or on `stop`. It borrows nothing, so rediscovery can go on meanwhile.
    pub fn synced(&self) -> impl Future<Output = ()> + Send + 'static {
        let monitors: Vec<_> = self.running.values().map(|m| m.synced.clone()).collect();
        let stop = self.stop.clone();
        async move {
            for mut synced in monitors {
                tokio::select! {
                    // An error is a stopped monitor: nothing to wait for.
                    _ = synced.wait_for(|s| *s) => {}
                    () = stop.cancelled() => return,
                }
            }
        }
    }
}

/// What the graph keeps of an object of `resource` with metadata `meta`.
pub(super) fn state(resource: &ApiResource, meta: &ObjectMeta) -> ObjectState {
    ObjectState {
        identity: Identity {
            api_version: resource.api_version.clone(),
            kind: resource.kind.clone(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
        },
        owners: meta.owner_references.clone().unwrap_or_default(),
        being_deleted: meta.deletion_timestamp.is_some(),
        finalizers: meta.finalizers.clone().unwrap_or_default(),
        resource_version: meta.resource_version.clone().unwrap_or_default(),
    }
}

/// The change for `object` replacing `old` (a recreated object with the same name is a delete first).
/// The monitor's cache and the queued change share the object's state.
pub(super) fn upsert(
    changes: &GraphChanges,
    object: Arc<ObjectState>,
    old: Option<Arc<ObjectState>>,
) {
    let old = match old {
        Some(old) if old.identity.uid != object.identity.uid => {
            changes.push(Change::Delete {
                identity: old.identity.clone(),
                virtual_: false,
            });
            None
        }
        old => old,
    };
    if old.as_deref() != Some(&*object) {
        changes.push(Change::Upsert { object, old });
    }
}

/// A cached state keyed by its own namespace and name, so the cache holds no second copy of them.
struct ByName(Arc<ObjectState>);

impl ByName {
    fn key(&self) -> (&str, &str) {
        (&self.0.identity.namespace, &self.0.identity.name)
    }
}

impl PartialEq for ByName {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for ByName {}

impl std::hash::Hash for ByName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

async fn run(
    api: Api<PartialObjectMeta<DynamicObject>>,
    resource: ApiResource,
    changes: GraphChanges,
    synced: watch::Sender<bool>,
    stop: CancellationToken,
) {
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut cache: HashSet<ByName> = HashSet::new();
    let mut relist: Vec<Arc<ObjectState>> = Vec::new();
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return,
            event = stream.next() => event,
        };
        match event {
            None => return,
            Some(Err(e)) => {
                tracing::debug!(resource = %resource.plural, "garbage collector monitor: {e}");
            }
            Some(Ok(Event::Init)) => relist.clear(),
            Some(Ok(Event::InitApply(object))) => {
                relist.push(Arc::new(state(&resource, &object.metadata)));
            }
            Some(Ok(Event::InitDone)) => {
                let mut fresh = HashSet::with_capacity(relist.len());
                for object in std::mem::take(&mut relist) {
                    let old = cache.take(&ByName(object.clone())).map(|b| b.0);
                    fresh.insert(ByName(object.clone()));
                    upsert(&changes, object, old);
                }
                for ByName(gone) in cache.drain() {
                    changes.push(Change::Delete {
                        identity: gone.identity.clone(),
                        virtual_: false,
                    });
                }
                cache = fresh;
                synced.send_replace(true);
            }
            Some(Ok(Event::Apply(object))) => {
                let object = Arc::new(state(&resource, &object.metadata));
                let old = cache.replace(ByName(object.clone())).map(|b| b.0);
                upsert(&changes, object, old);
            }
            Some(Ok(Event::Delete(object))) => {
                let object = Arc::new(state(&resource, &object.metadata));
                cache.remove(&ByName(object.clone()));
                changes.push(Change::Delete {
                    identity: Arc::unwrap_or_clone(object).identity,
                    virtual_: false,
                });
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::Duration;

    use super::*;

    fn object(name: &str, uid: &str) -> ObjectState {
        ObjectState {
            identity: Identity {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                namespace: "ns".into(),
                name: name.into(),
                uid: uid.into(),
            },
            ..ObjectState::default()
        }
    }

    /// Every change queued so far, in order.
    pub(in crate::garbagecollector) async fn drain(changes: &GraphChanges) -> Vec<Change> {
        let mut out = Vec::new();
        while !changes.queue.is_empty() {
            let item = changes.queue.get().await.unwrap();
            changes.queue.done(&item);
            out.push(item.change.as_ref().clone());
        }
        out
    }

    #[tokio::test]
    async fn a_monitor_that_never_lists_holds_the_sync_only_until_its_resource_goes_away() {
        // Nothing listens there: the monitor's list fails and is retried, as for a CRD just deleted.
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        let client = Client::try_from(config).unwrap();
        let stop = CancellationToken::new();
        let mut monitors = Monitors::new(
            &SharedInformerFactory::new(client.clone()),
            client,
            Box::new(|| None),
            GraphChanges::new(),
            stop.clone(),
        );
        let widgets = ApiResource {
            group: "example.com".into(),
            version: "v1".into(),
            api_version: "example.com/v1".into(),
            kind: "Widget".into(),
            plural: "widgets".into(),
        };
        let resources = BTreeMap::from([("example.com/v1/widgets".to_string(), widgets)]);
        assert!(monitors.sync(&resources));
        let synced = monitors.synced();
        tokio::pin!(synced);
        let wait = Duration::from_millis(300);
        assert!(
            tokio::time::timeout(wait, &mut synced).await.is_err(),
            "synced before the monitor listed"
        );
        // Rediscovery no longer finds the resource: its monitor stops and holds nothing back.
        assert!(monitors.sync(&BTreeMap::new()));
        tokio::time::timeout(Duration::from_secs(5), synced)
            .await
            .expect("still waiting for a stopped monitor");
        stop.cancel();
    }

    #[tokio::test]
    async fn an_unchanged_object_is_no_change_and_a_recreated_one_is_a_delete_first() {
        let changes = GraphChanges::new();
        let a = Arc::new(object("a", "1"));
        upsert(&changes, a.clone(), Some(a.clone()));
        assert!(drain(&changes).await.is_empty(), "nothing changed");

        let mut deleting = (*a).clone();
        deleting.being_deleted = true;
        let deleting = Arc::new(deleting);
        upsert(&changes, deleting.clone(), Some(a.clone()));
        let out = drain(&changes).await;
        assert!(
            matches!(&out[..], [Change::Upsert { object, old: Some(old) }]
                if *object == deleting && *old == a)
        );

        // Same name, new UID: the old object is gone, the new one is new.
        upsert(&changes, Arc::new(object("a", "2")), Some(a));
        let out = drain(&changes).await;
        assert!(matches!(&out[..], [
            Change::Delete { identity, virtual_: false },
            Change::Upsert { object, old: None },
        ] if identity.uid == "1" && object.identity.uid == "2"));
    }
}
