//! The informer's cache (client-go's Indexer): objects by key, plus named indexes kept current on every
//! change. Pure data: the reflector applies watch events to it and turns the results into handler events.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use kube::Resource;

/// client-go's `MetaNamespaceKeyFunc`: `namespace/name`, or `name` for cluster-scoped objects.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// The namespace, `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
}

impl ObjectKey {
    /// The key of `object`.
    pub fn of<K: Resource>(object: &K) -> Self {
        let meta = object.meta();
        Self {
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
        }
    }

    /// Parses `namespace/name` or `name`.
    pub fn parse(key: &str) -> Self {
        match key.split_once('/') {
            Some((namespace, name)) => Self {
                namespace: Some(namespace.to_string()),
                name: name.to_string(),
            },
            None => Self {
                namespace: None,
                name: key.to_string(),
            },
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{namespace}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// Computes the values an object is indexed under (client-go's `IndexFunc`).
pub type IndexFunc<K> = Arc<dyn Fn(&K) -> Vec<String> + Send + Sync>;

/// What a change did to the cache, for the event handlers.
#[derive(Debug)]
pub enum InformerEvent<K> {
    /// A new object.
    Added(Arc<K>),
    /// A changed (or resynced) object.
    Updated { old: Arc<K>, new: Arc<K> },
    /// An object that is gone.
    Deleted(Arc<K>),
}

impl<K> Clone for InformerEvent<K> {
    fn clone(&self) -> Self {
        match self {
            Self::Added(o) => Self::Added(o.clone()),
            Self::Updated { old, new } => Self::Updated {
                old: old.clone(),
                new: new.clone(),
            },
            Self::Deleted(o) => Self::Deleted(o.clone()),
        }
    }
}

/// Objects by key with named indexes. The indexes share the keys of `objects`: a key is two strings, and
/// an object is filed under several indexes.
pub struct Store<K> {
    objects: HashMap<Arc<ObjectKey>, Arc<K>>,
    indexers: HashMap<String, IndexFunc<K>>,
    indices: HashMap<String, HashMap<String, HashSet<Arc<ObjectKey>>>>,
}

impl<K> Default for Store<K> {
    fn default() -> Self {
        Self {
            objects: HashMap::new(),
            indexers: HashMap::new(),
            indices: HashMap::new(),
        }
    }
}

impl<K: Resource> Store<K> {
    /// Adds index `name`, indexing what is already cached.
    pub fn add_index(&mut self, name: &str, index: IndexFunc<K>) {
        let mut values: HashMap<String, HashSet<Arc<ObjectKey>>> = HashMap::new();
        for (key, object) in &self.objects {
            for value in index(object) {
                values.entry(value).or_default().insert(key.clone());
            }
        }
        self.indices.insert(name.to_string(), values);
        self.indexers.insert(name.to_string(), index);
    }

    /// Adds or replaces `object`.
    pub fn apply(&mut self, object: K) -> InformerEvent<K> {
        let key = ObjectKey::of(&object);
        let key = match self.objects.get_key_value(&key) {
            Some((cached, _)) => cached.clone(),
            None => Arc::new(key),
        };
        let new = Arc::new(object);
        let old = self.objects.insert(key.clone(), new.clone());
        if let Some(old) = &old {
            self.unindex(&key, old);
        }
        self.index(&key, &new);
        match old {
            Some(old) => InformerEvent::Updated { old, new },
            None => InformerEvent::Added(new),
        }
    }

    /// Removes the object with `key`, if cached.
    pub fn delete(&mut self, key: &ObjectKey) -> Option<InformerEvent<K>> {
        let (key, old) = self.objects.remove_entry(key)?;
        self.unindex(&key, &old);
        Some(InformerEvent::Deleted(old))
    }

    /// Replaces the whole content with a fresh list (client-go's `Replace` after a relist): objects in the
    /// list are applied, cached objects missing from it are deleted.
    pub fn replace(&mut self, objects: Vec<K>) -> Vec<InformerEvent<K>> {
        let listed: HashSet<ObjectKey> = objects.iter().map(ObjectKey::of).collect();
        let vanished: Vec<Arc<ObjectKey>> = self
            .objects
            .keys()
            .filter(|k| !listed.contains(k.as_ref()))
            .cloned()
            .collect();
        let mut events: Vec<InformerEvent<K>> =
            vanished.iter().filter_map(|key| self.delete(key)).collect();
        events.extend(objects.into_iter().map(|object| self.apply(object)));
        events
    }

    /// The object with `key`.
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<K>> {
        self.objects.get(key).cloned()
    }

    /// Every cached object.
    pub fn list(&self) -> Vec<Arc<K>> {
        self.objects.values().cloned().collect()
    }

    /// The objects index `name` files under `value`; empty for an unknown index.
    pub fn by_index(&self, name: &str, value: &str) -> Vec<Arc<K>> {
        self.indices
            .get(name)
            .and_then(|values| values.get(value))
            .map(|keys| {
                keys.iter()
                    .filter_map(|key| self.objects.get(key).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn index(&mut self, key: &Arc<ObjectKey>, object: &K) {
        for (name, index) in &self.indexers {
            let values = self.indices.entry(name.clone()).or_default();
            for value in index(object) {
                values.entry(value).or_default().insert(key.clone());
            }
        }
    }

    fn unindex(&mut self, key: &ObjectKey, object: &K) {
        for (name, index) in &self.indexers {
            let Some(values) = self.indices.get_mut(name) else {
                continue;
            };
            for value in index(object) {
                if let Some(keys) = values.get_mut(&value) {
                    keys.remove(key);
                    if keys.is_empty() {
                        values.remove(&value);
                    }
                }
            }
        }
    }
}

/// Ready-made index functions, as upstream's controllers register them.
pub mod index {
    use std::sync::Arc;

    use kube::Resource;

    use super::IndexFunc;

    /// Index name of [`by_namespace`].
    pub const NAMESPACE: &str = "namespace";
    /// Index name of [`by_owner_uid`].
    pub const OWNER_UID: &str = "ownerUID";
    /// Index name of pods by the node they are bound to.
    pub const NODE_NAME: &str = "spec.nodeName";

    /// Objects by namespace.
    pub fn by_namespace<K: Resource>() -> IndexFunc<K> {
        Arc::new(|object: &K| object.meta().namespace.iter().cloned().collect())
    }

    /// Objects by the UIDs of their owners.
    pub fn by_owner_uid<K: Resource>() -> IndexFunc<K> {
        Arc::new(|object: &K| {
            let owners = object.meta().owner_references.iter().flatten();
            owners.map(|owner| owner.uid.clone()).collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;

    use super::*;

    fn pod(name: &str, node: Option<&str>, owner: Option<&str>) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": name, "namespace": "ns",
                "ownerReferences": owner.map(|uid| vec![serde_json::json!({
                    "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": uid
                })]).unwrap_or_default(),
            },
            "spec": { "containers": [], "nodeName": node },
        }))
        .unwrap()
    }

    fn pods_by_node_name() -> IndexFunc<Pod> {
        Arc::new(|pod: &Pod| {
            let node = pod.spec.as_ref().and_then(|spec| spec.node_name.clone());
            node.into_iter().filter(|n| !n.is_empty()).collect()
        })
    }

    fn names(pods: Vec<Arc<Pod>>) -> Vec<String> {
        let mut names: Vec<String> = pods
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        names.sort();
        names
    }

    fn store() -> Store<Pod> {
        let mut store = Store::default();
        store.add_index(index::NODE_NAME, pods_by_node_name());
        store.add_index(index::OWNER_UID, index::by_owner_uid());
        store.add_index(index::NAMESPACE, index::by_namespace());
        store
    }

    #[test]
    fn indexes_follow_updates_and_deletes() {
        let mut store = store();
        assert!(matches!(
            store.apply(pod("a", Some("n1"), Some("u1"))),
            InformerEvent::Added(_)
        ));
        store.apply(pod("b", Some("n1"), None));
        store.apply(pod("c", None, Some("u1")));
        assert_eq!(names(store.by_index(index::NODE_NAME, "n1")), ["a", "b"]);
        assert_eq!(names(store.by_index(index::OWNER_UID, "u1")), ["a", "c"]);
        assert_eq!(
            names(store.by_index(index::NAMESPACE, "ns")),
            ["a", "b", "c"]
        );

        // a moves to n2 and changes owner.
        assert!(matches!(
            store.apply(pod("a", Some("n2"), Some("u2"))),
            InformerEvent::Updated { .. }
        ));
        assert_eq!(names(store.by_index(index::NODE_NAME, "n1")), ["b"]);
        assert_eq!(names(store.by_index(index::NODE_NAME, "n2")), ["a"]);
        assert_eq!(names(store.by_index(index::OWNER_UID, "u1")), ["c"]);

        assert!(matches!(
            store.delete(&ObjectKey::parse("ns/b")),
            Some(InformerEvent::Deleted(_))
        ));
        assert!(store.by_index(index::NODE_NAME, "n1").is_empty());
        assert!(store.delete(&ObjectKey::parse("ns/b")).is_none());
        assert_eq!(store.list().len(), 2);
        assert!(store.get(&ObjectKey::parse("ns/a")).is_some());
    }

    #[test]
    fn replace_deletes_what_vanished_and_applies_the_rest() {
        let mut store = store();
        store.apply(pod("gone", Some("n1"), None));
        store.apply(pod("kept", Some("n1"), None));
        let events = store.replace(vec![pod("kept", Some("n2"), None), pod("new", None, None)]);
        let deleted = events
            .iter()
            .filter(|e| matches!(e, InformerEvent::Deleted(_)))
            .count();
        let updated = events
            .iter()
            .filter(|e| matches!(e, InformerEvent::Updated { .. }))
            .count();
        let added = events
            .iter()
            .filter(|e| matches!(e, InformerEvent::Added(_)))
            .count();
        assert_eq!((deleted, updated, added), (1, 1, 1));
        assert!(store.by_index(index::NODE_NAME, "n1").is_empty());
        assert_eq!(names(store.list()), ["kept", "new"]);
    }

    #[test]
    fn an_index_added_late_covers_cached_objects() {
        let mut store: Store<Pod> = Store::default();
        store.apply(pod("a", Some("n1"), None));
        store.add_index(index::NODE_NAME, pods_by_node_name());
        assert_eq!(names(store.by_index(index::NODE_NAME, "n1")), ["a"]);
    }

    #[test]
    fn keys_print_and_parse_as_client_go_does() {
        assert_eq!(ObjectKey::parse("ns/a").to_string(), "ns/a");
        assert_eq!(
            ObjectKey::parse("node-1"),
            ObjectKey {
                namespace: None,
                name: "node-1".into()
            }
        );
    }
}
