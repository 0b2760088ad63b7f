//! The dependency graph (upstream's uidToNode plus GraphBuilder.processGraphChanges): every object the
//! monitors observed, and "virtual" nodes for owners that are referenced but not observed yet, linked
//! owner → dependents by UID. Pure data: applying a change returns what the collector must do next.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::decision::{OwnerState, classify};

/// The finalizer that makes the collector delete an object's dependents before the object.
pub const FOREGROUND_DELETION: &str = "foregroundDeletion";
/// The finalizer that makes the collector remove the owner's references from its dependents.
pub const ORPHAN: &str = "orphan";

/// An object's coordinates (upstream's objectReference): an owner reference's plus the namespace, empty
/// for cluster-scoped objects.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl Identity {
    /// Where `reference` points if resolved in `namespace` (the dependent's).
    pub fn of_reference(reference: &OwnerReference, namespace: &str) -> Self {
        Self {
            api_version: reference.api_version.clone(),
            kind: reference.kind.clone(),
            namespace: namespace.to_string(),
            name: reference.name.clone(),
            uid: reference.uid.clone(),
        }
    }

    /// Whether `reference` names these coordinates (namespace aside).
    pub fn matches(&self, reference: &OwnerReference) -> bool {
        reference.uid == self.uid
            && reference.name == self.name
            && reference.kind == self.kind
            && reference.api_version == self.api_version
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}/{}, namespace: {}, name: {}, uid: {}]",
            self.api_version, self.kind, self.namespace, self.name, self.uid
        )
    }
}

/// What the graph keeps of one object's metadata.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObjectState {
    pub identity: Identity,
    pub owners: Vec<OwnerReference>,
    /// deletionTimestamp is set.
    pub being_deleted: bool,
    pub finalizers: Vec<String>,
    /// The version observed: the precondition of a delete decided from the graph.
    pub resource_version: String,
}

impl ObjectState {
    /// Whether the object carries `finalizer`.
    pub fn has_finalizer(&self, finalizer: &str) -> bool {
        self.finalizers.iter().any(|f| f == finalizer)
    }
}

/// A change the monitors observed, or a "virtual" delete the collector verified with a live GET.
#[derive(Clone, Debug)]
pub enum Change {
    /// Added or updated; `old` is the previous state the monitor had, if any.
    Upsert {
        object: Arc<ObjectState>,
        old: Option<Arc<ObjectState>>,
    },
    /// Deleted; `virtual_` when the collector found the object absent rather than a watch reporting it.
    Delete { identity: Identity, virtual_: bool },
}

/// What processing a change asks of the collector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Enqueue the node with this UID into attemptToDelete.
    AttemptToDelete(String),
    /// The same, rate-limited (a virtual node given another identity to verify).
    AttemptToDeleteRateLimited(String),
    /// Enqueue the node with this UID into attemptToOrphan.
    AttemptToOrphan(String),
    /// Remember these coordinates as verified absent.
    Absent(Identity),
    /// Warn on `dependent` that its reference to `owner` names another namespace (OwnerRefInvalidNamespace).
    InvalidNamespaceOwnerRef {
        dependent: Identity,
        owner: Identity,
    },
}

/// One object in the graph.
#[derive(Clone, Debug, Default)]
pub struct Node {
    /// The object as last observed, shared with the monitor that saw it so a pod's coordinates and
    /// references are held once; a virtual node's holds only the coordinates a reference gave.
    pub state: Arc<ObjectState>,
    /// UIDs of nodes listing this one as an owner.
    pub dependents: BTreeSet<String>,
    pub being_deleted: bool,
    /// Being deleted with the foregroundDeletion finalizer: waits for its blocking dependents.
    pub deleting_dependents: bool,
    /// Seen by a monitor; false for a virtual node made from someone's ownerReference.
    pub observed: bool,
}

impl Node {
    /// A node for an owner known only from a dependent's reference, to be verified.
    fn virtual_(identity: Identity) -> Self {
        Self {
            state: Arc::new(ObjectState {
                identity,
                ..ObjectState::default()
            }),
            ..Self::default()
        }
    }

    /// The object's coordinates.
    pub fn identity(&self) -> &Identity {
        &self.state.identity
    }

    /// The object's ownerReferences as last observed (empty for virtual nodes).
    pub fn owners(&self) -> &[OwnerReference] {
        &self.state.owners
    }
}

/// The graph: nodes by UID.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
}

impl Graph {
    /// The node with `uid`.
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the graph is empty.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The dependents of `uid` that exist in the graph.
    pub fn dependents(&self, uid: &str) -> Vec<&Node> {
        self.nodes
            .get(uid)
            .map(|n| {
                n.dependents
                    .iter()
                    .filter_map(|d| self.nodes.get(d))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How the owner `reference` of `item` stands by the graph alone (upstream classifyReferences without
    /// its live GET), if the graph has it as an observed node where the reference points; `None` when it
    /// must be verified live (not observed, unknown, or in another namespace).
    pub fn observed_owner_state(
        &self,
        reference: &OwnerReference,
        item: &ObjectState,
    ) -> Option<OwnerState> {
        let owner = self.nodes.get(&reference.uid)?;
        let namespace = &owner.identity().namespace;
        let points_here = namespace.is_empty() || *namespace == item.identity.namespace;
        (owner.observed && points_here && owner.identity().matches(reference))
            .then(|| classify(false, owner.being_deleted, &owner.state.finalizers))
    }

    /// Dependents of `uid` whose reference to it has blockOwnerDeletion=true (upstream blockingDependents).
    pub fn blocking_dependents(&self, uid: &str) -> Vec<&Node> {
        self.dependents(uid)
            .into_iter()
            .filter(|d| {
                d.owners()
                    .iter()
                    .any(|o| o.uid == uid && o.block_owner_deletion == Some(true))
            })
            .collect()
    }

    /// Applies a change (upstream processGraphChanges for one event).
    pub fn process(&mut self, change: &Change) -> Vec<Action> {
        let mut actions = Vec::new();
        match change {
            Change::Upsert { object, old } => self.upsert(object, old.as_deref(), &mut actions),
            Change::Delete { identity, virtual_ } => self.delete(identity, *virtual_, &mut actions),
        }
        actions
    }

    fn upsert(
        &mut self,
        object: &Arc<ObjectState>,
        old: Option<&ObjectState>,
        actions: &mut Vec<Action>,
    ) {
        let uid = object.identity.uid.clone();
        if let Some(existing) = self.nodes.get(&uid)
            && !existing.observed
        {
            // First real sighting of a virtual node: dependents that named it by other coordinates may
            // hold dangling references, verify them (the bad child → good parent order).
            if *existing.identity() != object.identity {
                let (_, nonmatching) = self.partition_dependents(&uid, &object.identity);
                for dependent in nonmatching {
                    if !object.identity.namespace.is_empty()
                        && self.nodes[&dependent].identity().namespace != object.identity.namespace
                    {
                        actions.push(self.invalid_namespace(&dependent, &object.identity));
                    }
                    actions.push(Action::AttemptToDelete(dependent));
                }
            }
            if let Some(existing) = self.nodes.get_mut(&uid) {
                existing.observed = true;
            }
        }
        if let Some(existing) = self.nodes.get_mut(&uid) {
            let was = std::mem::replace(&mut existing.state, object.clone());
            let (added, removed, changed) = references_diffs(&was.owners, &object.owners);
            if !added.is_empty() || !removed.is_empty() || !changed.is_empty() {
                // A dependent that stops blocking may let a foreground-deleting owner finish.
                for reference in removed
                    .iter()
                    .filter(|r| r.block_owner_deletion == Some(true))
                {
                    if self.nodes.contains_key(&reference.uid) {
                        actions.push(Action::AttemptToDelete(reference.uid.clone()));
                    }
                }
                for (was, is) in &changed {
                    if was.block_owner_deletion == Some(true)
                        && is.block_owner_deletion != Some(true)
                        && self.nodes.contains_key(&is.uid)
                    {
                        actions.push(Action::AttemptToDelete(is.uid.clone()));
                    }
                }
                self.add_dependent_to_owners(&uid, &added, actions);
                self.remove_dependent_from_owners(&uid, &removed);
            }
            if object.being_deleted
                && let Some(existing) = self.nodes.get_mut(&uid)
            {
                existing.being_deleted = true;
            }
        } else {
            let node = Node {
                state: object.clone(),
                dependents: BTreeSet::new(),
                being_deleted: object.being_deleted,
                deleting_dependents: object.being_deleted
                    && object.has_finalizer(FOREGROUND_DELETION),
                observed: true,
            };
            self.nodes.insert(uid.clone(), node);
            self.add_dependent_to_owners(&uid, &object.owners, actions);
        }
        self.process_transitions(old, object, actions);
    }

    /// Upstream processTransitions: deletion just started with the orphan or foregroundDeletion finalizer.
    fn process_transitions(
        &mut self,
        old: Option<&ObjectState>,
        new: &ObjectState,
        actions: &mut Vec<Action>,
    ) {
        let uid = &new.identity.uid;
        if deletion_starts_with_finalizer(old, new, ORPHAN) {
            actions.push(Action::AttemptToOrphan(uid.clone()));
            return;
        }
        if deletion_starts_with_finalizer(old, new, FOREGROUND_DELETION)
            && let Some(node) = self.nodes.get_mut(uid)
        {
            node.deleting_dependents = true;
            for dependent in &node.dependents {
                actions.push(Action::AttemptToDelete(dependent.clone()));
            }
            actions.push(Action::AttemptToDelete(uid.clone()));
        }
    }

    /// Links `dependent` under each of `owners`, making virtual nodes for owners not in the graph (to be
    /// verified by attemptToDelete) and flagging references that cannot be right.
    fn add_dependent_to_owners(
        &mut self,
        dependent: &str,
        owners: &[OwnerReference],
        actions: &mut Vec<Action>,
    ) {
        let Some(dependent_namespace) = self
            .nodes
            .get(dependent)
            .map(|n| n.identity().namespace.clone())
        else {
            return;
        };
        let mut potentially_invalid = false;
        for reference in owners {
            match self.nodes.get_mut(&reference.uid) {
                None => {
                    let identity = Identity::of_reference(reference, &dependent_namespace);
                    let mut owner = Node::virtual_(identity);
                    owner.dependents.insert(dependent.to_string());
                    self.nodes.insert(reference.uid.clone(), owner);
                    actions.push(Action::AttemptToDelete(reference.uid.clone()));
                }
                Some(owner) => {
                    owner.dependents.insert(dependent.to_string());
                    if potentially_invalid {
                        continue;
                    }
                    let owner_identity = owner.identity();
                    let owner_namespaced = !owner_identity.namespace.is_empty();
                    if owner_namespaced && owner_identity.namespace != dependent_namespace {
                        // A namespaced owner only owns objects of its own namespace.
                        if owner.observed {
                            let owner_identity = owner_identity.clone();
                            actions.push(self.invalid_namespace(dependent, &owner_identity));
                        }
                        potentially_invalid = true;
                    } else if !owner_identity.matches(reference) {
                        potentially_invalid = true;
                    } else if !owner_namespaced
                        && owner_identity.namespace != dependent_namespace
                        && !owner.observed
                    {
                        // Maybe a namespaced owner wrongly referenced by a cluster-scoped dependent.
                        potentially_invalid = true;
                    }
                }
            }
        }
        if potentially_invalid {
            actions.push(Action::AttemptToDelete(dependent.to_string()));
        }
    }

    fn remove_dependent_from_owners(&mut self, dependent: &str, owners: &[OwnerReference]) {
        for reference in owners {
            if let Some(owner) = self.nodes.get_mut(&reference.uid) {
                owner.dependents.remove(dependent);
            }
        }
    }

    fn invalid_namespace(&self, dependent: &str, owner: &Identity) -> Action {
        let dependent = self
            .nodes
            .get(dependent)
            .map(|n| n.identity().clone())
            .unwrap_or_default();
        let owner = Identity {
            namespace: dependent.namespace.clone(),
            ..owner.clone()
        };
        Action::InvalidNamespaceOwnerRef { dependent, owner }
    }

    /// Dependents of `uid` whose references match `identity`, and those that do not (upstream
    /// partitionDependents); a dependent can be in both.
    fn partition_dependents(&self, uid: &str, identity: &Identity) -> (Vec<String>, Vec<String>) {
        let (mut matching, mut nonmatching) = (Vec::new(), Vec::new());
        for dependent in self.dependents(uid) {
            let (mut found_match, mut found_mismatch) = (false, false);
            if !identity.namespace.is_empty()
                && identity.namespace != dependent.identity().namespace
            {
                found_mismatch = true;
            } else {
                for reference in dependent.owners().iter().filter(|r| r.uid == identity.uid) {
                    if identity.matches(reference) {
                        found_match = true;
                    } else {
                        found_mismatch = true;
                    }
                }
            }
            if found_match {
                matching.push(dependent.identity().uid.clone());
            }
            if found_mismatch {
                nonmatching.push(dependent.identity().uid.clone());
            }
        }
        (matching, nonmatching)
    }

    fn delete(&mut self, deleted: &Identity, virtual_: bool, actions: &mut Vec<Action>) {
        let uid = deleted.uid.clone();
        let Some(existing) = self.nodes.get(&uid) else {
            return;
        };
        let mut remove = true;
        if virtual_ {
            if !existing.observed {
                let existing_identity = existing.identity().clone();
                let (matching, nonmatching) = self.partition_dependents(&uid, deleted);
                if !nonmatching.is_empty() {
                    // Some dependents name this owner by other coordinates: keep the node for them.
                    remove = false;
                    if !matching.is_empty() {
                        actions.push(Action::Absent(deleted.clone()));
                        actions.extend(matching.into_iter().map(Action::AttemptToDelete));
                    }
                    if existing_identity == *deleted
                        && let Some(replacement) = self.alternate_identity(&nonmatching, deleted)
                        && let Some(node) = self.nodes.get_mut(&uid)
                    {
                        node.state = Node::virtual_(replacement).state;
                        actions.push(Action::AttemptToDeleteRateLimited(uid.clone()));
                    }
                }
            } else if *existing.identity() != *deleted {
                // An observed object disagrees with the verified-absent coordinates: keep it.
                remove = false;
                let (matching, _) = self.partition_dependents(&uid, deleted);
                if !matching.is_empty() {
                    actions.push(Action::Absent(deleted.clone()));
                    actions.extend(matching.into_iter().map(Action::AttemptToDelete));
                }
            }
        }
        if !remove {
            return;
        }
        let Some(node) = self.nodes.remove(&uid) else {
            return;
        };
        self.remove_dependent_from_owners(&uid, node.owners());
        if !node.dependents.is_empty() {
            actions.push(Action::Absent(Identity {
                uid: uid.clone(),
                ..deleted.clone()
            }));
        }
        actions.extend(node.dependents.iter().cloned().map(Action::AttemptToDelete));
        for reference in node.owners() {
            if self
                .nodes
                .get(&reference.uid)
                .is_some_and(|o| o.deleting_dependents)
            {
                // The owner may be waiting for this dependent to go.
                actions.push(Action::AttemptToDelete(reference.uid.clone()));
            }
        }
    }

    /// Other coordinates the `dependents` name the verified-absent owner by (upstream
    /// getAlternateOwnerIdentity): the least one, for a deterministic choice.
    fn alternate_identity(&self, dependents: &[String], absent: &Identity) -> Option<Identity> {
        let cluster_scoped = absent.namespace.is_empty();
        let mut alternates = BTreeSet::new();
        for dependent in dependents.iter().filter_map(|d| self.nodes.get(d)) {
            for reference in dependent.owners().iter().filter(|r| r.uid == absent.uid) {
                if absent.matches(reference)
                    && (cluster_scoped || absent.namespace == dependent.identity().namespace)
                {
                    continue;
                }
                let mut candidate =
                    Identity::of_reference(reference, &dependent.identity().namespace);
                if cluster_scoped
                    && candidate.api_version == absent.api_version
                    && candidate.kind == absent.kind
                {
                    candidate.namespace.clear();
                }
                if candidate != *absent {
                    alternates.insert(candidate);
                }
            }
        }
        alternates.into_iter().next()
    }
}

/// Deletion has just started (or was first seen) with `finalizer` on the object.
fn deletion_starts_with_finalizer(
    old: Option<&ObjectState>,
    new: &ObjectState,
    finalizer: &str,
) -> bool {
    if !new.being_deleted || !new.has_finalizer(finalizer) {
        return false;
    }
    match old {
        None => true,
        Some(old) => !old.being_deleted || !old.has_finalizer(finalizer),
    }
}

/// Owner references added, removed and changed (by UID) between two lists.
#[allow(clippy::type_complexity)]
fn references_diffs(
    old: &[OwnerReference],
    new: &[OwnerReference],
) -> (
    Vec<OwnerReference>,
    Vec<OwnerReference>,
    Vec<(OwnerReference, OwnerReference)>,
) {
    let old_by_uid: HashMap<&str, &OwnerReference> =
        old.iter().map(|r| (r.uid.as_str(), r)).collect();
    let new_by_uid: HashMap<&str, &OwnerReference> =
        new.iter().map(|r| (r.uid.as_str(), r)).collect();
    let added = new
        .iter()
        .filter(|r| !old_by_uid.contains_key(r.uid.as_str()))
        .cloned()
        .collect();
    let removed = old
        .iter()
        .filter(|r| !new_by_uid.contains_key(r.uid.as_str()))
        .cloned()
        .collect();
    let changed = new
        .iter()
        .filter_map(|r| {
            old_by_uid
                .get(r.uid.as_str())
                .filter(|was| **was != r)
                .map(|was| ((*was).clone(), r.clone()))
        })
        .collect();
    (added, removed, changed)
}

#[cfg(test)]
mod tests;
