//! Shared informers (client-go's SharedInformerFactory): one watch per resource kind and selector per
//! process, feeding an indexed cache that every controller reads and event handlers that enqueue keys.

mod store;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use store::{IndexFunc, InformerEvent, ObjectKey, Store, index};

/// How long a controller waits for its own write to reach its informer
/// ([`SharedInformer::wait_until_replaced`]); far longer than the usual millisecond, short enough that a
/// watch that has fallen behind costs little.
pub const OWN_WRITE_TIMEOUT: Duration = Duration::from_millis(100);

/// A watched resource kind: what an informer can be made for.
pub trait Watched:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}
impl<K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static>
    Watched for K
{
}

/// Trims an object before it is cached and handed to handlers (client-go's `TransformFunc`): drops what
/// no consumer of the process's informers reads.
pub type Transform<K> = fn(&mut K);

/// One resource kind's cache and its event handlers; cheap to clone.
pub struct SharedInformer<K> {
    store: Arc<RwLock<Store<K>>>,
    handlers: Arc<Mutex<Vec<mpsc::UnboundedSender<InformerEvent<K>>>>>,
    synced: watch::Sender<bool>,
    /// Bumped after every change to the cache, for [`SharedInformer::wait_until_replaced`].
    changes: watch::Sender<u64>,
    api: Api<K>,
    config: watcher::Config,
    transform: Option<Transform<K>>,
}

impl<K: Clone> Clone for SharedInformer<K> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            handlers: self.handlers.clone(),
            synced: self.synced.clone(),
            changes: self.changes.clone(),
            api: self.api.clone(),
            config: self.config.clone(),
            transform: self.transform,
        }
    }
}

impl<K: Watched> SharedInformer<K> {
    fn new(api: Api<K>, config: watcher::Config, transform: Option<Transform<K>>) -> Self {
        Self {
            store: Arc::default(),
            handlers: Arc::default(),
            synced: watch::Sender::new(false),
            changes: watch::Sender::new(0),
            api,
            config,
            transform,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Store<K>> {
        self.store.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Store<K>> {
        self.store.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an index; call before the informer starts so handlers never see a half-indexed cache.
    pub fn add_index(&self, name: &str, index: IndexFunc<K>) {
        self.write().add_index(name, index);
    }

    /// The cached object with `key`.
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<K>> {
        self.read().get(key)
    }

    /// Every cached object.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.read().list()
    }

    /// Cached objects that index `name` files under `value`.
    pub fn by_index(&self, name: &str, value: &str) -> Vec<Arc<K>> {
        self.read().by_index(name, value)
    }

    /// Whether the first full list has been cached.
    pub fn has_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Waits until the first full list has been cached.
    pub async fn wait_for_sync(&self) {
        let mut synced = self.synced.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = synced.wait_for(|synced| *synced).await;
    }

    /// Waits until the cached object with `key` is no longer the version `replaced` (or is gone), at most
    /// `timeout`; whether it got there. A controller that just wrote the object calls this so that its
    /// next sync of the key does not start from the version its write replaced: the write's response
    /// usually arrives a millisecond before its watch event, and a sync started in between is refused
    /// with a conflict when it writes (upstream's slower workers rarely get there first).
    pub async fn wait_until_replaced(
        &self,
        key: &ObjectKey,
        replaced: Option<&str>,
        timeout: Duration,
    ) -> bool {
        let Some(replaced) = replaced else {
            return true;
        };
        // Subscribed before looking, so a change between the look and the wait is not missed.
        let mut changes = self.changes.subscribe();
        let caught_up = async {
            loop {
                let cached = self.get(key);
                if cached.is_none_or(|o| o.meta().resource_version.as_deref() != Some(replaced)) {
                    return;
                }
                if changes.changed().await.is_err() {
                    // The informer is gone: the cache will not move any more.
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, caught_up).await.is_ok()
    }

    /// Events from now on; a late subscriber first gets `Added` for everything cached, as in client-go.
    /// Handlers should only enqueue keys: the informer never waits for them.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<InformerEvent<K>> {
        let (sender, receiver) = mpsc::unbounded_channel();
        // Holding the store's read lock keeps the reflector from applying a change in between.
        let store = self.read();
        for object in store.list() {
            let _ = sender.send(InformerEvent::Added(object));
        }
        self.handlers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(sender);
        drop(store);
        receiver
    }

    fn dispatch(&self, events: Vec<InformerEvent<K>>) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
        let mut handlers = self.handlers.lock().unwrap_or_else(|e| e.into_inner());
        handlers.retain(|handler| {
            events
                .iter()
                .all(|event| handler.send(event.clone()).is_ok())
        });
    }

    /// Lists and watches until `shutdown`, keeping the cache current (relists and retries with backoff).
    pub async fn run(self, shutdown: CancellationToken) {
        // managedFields are never read by a component and are often most of an object: upstream's
        // informers trim them too (client-go `trim.TrimManagedFields`).
        let transform = self.transform;
        let stream = watcher::watcher(self.api.clone(), self.config.clone())
            .default_backoff()
            .modify(move |object| {
                object.meta_mut().managed_fields = None;
                if let Some(transform) = transform {
                    transform(object);
                }
            });
        let mut stream = std::pin::pin!(stream);
        let mut relist: Vec<K> = Vec::new();
        loop {
            let event = tokio::select! {
                () = shutdown.cancelled() => return,
                event = stream.next() => event,
            };
            let events = match event {
                None => return,
                Some(Err(e)) => {
                    tracing::warn!(kind = %K::kind(&()), "watch failed, retrying: {e}");
                    continue;
                }
                Some(Ok(Event::Init)) => {
                    relist.clear();
                    continue;
                }
                Some(Ok(Event::InitApply(object))) => {
                    relist.push(object);
                    continue;
                }
                Some(Ok(Event::InitDone)) => {
                    let events = {
                        let mut store = self.write();
                        store.replace(std::mem::take(&mut relist))
                    };
                    self.synced.send_replace(true);
                    events
                }
                Some(Ok(Event::Apply(object))) => vec![self.write().apply(object)],
                Some(Ok(Event::Delete(object))) => self
                    .write()
                    .delete(&ObjectKey::of(&object))
                    .into_iter()
                    .collect(),
            };
            self.dispatch(events);
        }
    }
}

/// An informer of some kind, keyed by its kind and watch selectors.
type InformerMap = HashMap<(TypeId, String), Box<dyn Any + Send + Sync>>;
/// A kind's [`Transform`], keyed by the kind.
type TransformMap = HashMap<TypeId, Box<dyn Any + Send + Sync>>;
/// Starts one informer's reflector.
type Starter = Box<dyn FnOnce(CancellationToken) + Send>;

/// Makes and starts the process's informers: one per resource kind and watch selector.
#[derive(Clone)]
pub struct SharedInformerFactory {
    client: Client,
    informers: Arc<Mutex<InformerMap>>,
    transforms: Arc<Mutex<TransformMap>>,
    starters: Arc<Mutex<Vec<Starter>>>,
    started: Arc<Mutex<Option<CancellationToken>>>,
}

impl SharedInformerFactory {
    /// A factory whose informers watch through `client`.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            informers: Arc::default(),
            transforms: Arc::default(),
            starters: Arc::default(),
            started: Arc::default(),
        }
    }

    /// Makes every informer of `K` made from now on trim its objects with `transform`; call it before
    /// any is made.
    pub fn set_transform<K: Watched>(&self, transform: Transform<K>) {
        self.transforms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(TypeId::of::<K>(), Box::new(transform));
    }

    fn transform<K: Watched>(&self) -> Option<Transform<K>> {
        self.transforms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&TypeId::of::<K>())
            .and_then(|any| any.downcast_ref::<Transform<K>>())
            .copied()
    }

    /// The informer of all `K` in the cluster.
    pub fn informer<K: Watched>(&self) -> SharedInformer<K> {
        self.informer_with(watcher::Config::default())
    }

    /// The informer of `K` restricted by `config`'s label and field selectors (the scheduler's unassigned
    /// pods, a kubelet's own pods); the same selectors give the same informer.
    pub fn informer_with<K: Watched>(&self, config: watcher::Config) -> SharedInformer<K> {
        let id = (
            TypeId::of::<K>(),
            format!("{:?}|{:?}", config.label_selector, config.field_selector),
        );
        let mut informers = self.informers.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = informers
            .get(&id)
            .and_then(|any| any.downcast_ref::<SharedInformer<K>>())
        {
            return existing.clone();
        }
        let informer =
            SharedInformer::new(Api::all(self.client.clone()), config, self.transform::<K>());
        informers.insert(id, Box::new(informer.clone()));
        drop(informers);
        let run = informer.clone();
        let starter: Starter = Box::new(move |shutdown| {
            tokio::spawn(run.run(shutdown));
        });
        // Informers made after `start` start at once.
        match self
            .started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            Some(shutdown) => starter(shutdown),
            None => self
                .starters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(starter),
        }
        informer
    }

    /// Starts every informer made so far, and any made later, until `shutdown`.
    pub fn start(&self, shutdown: CancellationToken) {
        *self.started.lock().unwrap_or_else(|e| e.into_inner()) = Some(shutdown.clone());
        let starters =
            std::mem::take(&mut *self.starters.lock().unwrap_or_else(|e| e.into_inner()));
        for starter in starters {
            starter(shutdown.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Node, Pod};

    use super::*;

    fn factory() -> SharedInformerFactory {
        // Never contacted: the factory is not started.
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        SharedInformerFactory::new(Client::try_from(config).unwrap())
    }

    #[tokio::test]
    async fn the_same_kind_and_selector_give_the_same_informer() {
        let factory = factory();
        let a = factory.informer::<Pod>();
        a.write().apply(Pod::default());
        assert_eq!(factory.informer::<Pod>().list().len(), 1, "same cache");
        assert!(
            factory.informer::<Node>().list().is_empty(),
            "another kind, another cache"
        );
        let unassigned = watcher::Config::default().fields("spec.nodeName=");
        assert!(
            factory
                .informer_with::<Pod>(unassigned.clone())
                .list()
                .is_empty(),
            "another selector"
        );
        factory
            .informer_with::<Pod>(unassigned.clone())
            .write()
            .apply(Pod::default());
        assert_eq!(factory.informer_with::<Pod>(unassigned).list().len(), 1);
    }

    #[tokio::test]
    async fn a_transform_applies_to_informers_of_its_kind_only() {
        fn named(pod: &mut Pod) {
            pod.metadata.name = Some("transformed".into());
        }
        let factory = factory();
        factory.set_transform::<Pod>(named);
        let mut pod = Pod::default();
        let transform = factory
            .informer::<Pod>()
            .transform
            .expect("a pod transform");
        transform(&mut pod);
        assert_eq!(pod.metadata.name.as_deref(), Some("transformed"));
        assert!(factory.informer::<Node>().transform.is_none());
    }

    fn pod(name: &str, resource_version: &str) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.into());
        pod.metadata.namespace = Some("ns".into());
        pod.metadata.resource_version = Some(resource_version.into());
        pod
    }

    #[tokio::test(start_paused = true)]
    async fn a_writer_waits_until_the_cache_has_replaced_the_version_it_wrote_over() {
        let informer = factory().informer::<Pod>();
        let event = informer.write().apply(pod("a", "1"));
        informer.dispatch(vec![event]);
        let key = ObjectKey::of(&pod("a", "1"));
        let long = Duration::from_secs(1);

        assert!(
            !informer.wait_until_replaced(&key, Some("1"), long).await,
            "the cache still holds version 1: the wait runs out"
        );
        assert!(
            informer.wait_until_replaced(&key, Some("0"), long).await,
            "the cache is already past version 0"
        );

        let waiting = {
            let informer = informer.clone();
            let key = key.clone();
            tokio::spawn(async move {
                let started = tokio::time::Instant::now();
                let caught_up = informer.wait_until_replaced(&key, Some("1"), long).await;
                (caught_up, started.elapsed())
            })
        };
        tokio::time::sleep(Duration::from_millis(3)).await;
        let event = informer.write().apply(pod("a", "2"));
        informer.dispatch(vec![event]);
        let (caught_up, waited) = waiting.await.unwrap();
        assert!(caught_up, "version 2 arrived");
        assert_eq!(
            waited,
            Duration::from_millis(3),
            "woken by the change, not the timeout"
        );

        let gone = ObjectKey::of(&pod("b", "1"));
        assert!(
            informer.wait_until_replaced(&gone, Some("1"), long).await,
            "an object no longer cached has been replaced"
        );
    }

    #[tokio::test]
    async fn a_late_subscriber_first_gets_what_is_cached_then_changes() {
        let informer = factory().informer::<Pod>();
        let mut pod = Pod::default();
        pod.metadata.name = Some("a".into());
        informer.write().apply(pod.clone());
        let mut events = informer.subscribe();
        assert!(matches!(events.recv().await, Some(InformerEvent::Added(_))));
        let event = informer.write().apply(pod);
        informer.dispatch(vec![event]);
        assert!(matches!(
            events.recv().await,
            Some(InformerEvent::Updated { .. })
        ));
    }
}
