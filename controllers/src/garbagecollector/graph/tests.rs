use super::*;

fn identity(kind: &str, namespace: &str, name: &str, uid: &str) -> Identity {
    Identity {
        api_version: "v1".into(),
        kind: kind.into(),
        namespace: namespace.into(),
        name: name.into(),
        uid: uid.into(),
    }
}

fn reference(owner: &Identity, block: bool) -> OwnerReference {
    OwnerReference {
        api_version: owner.api_version.clone(),
        kind: owner.kind.clone(),
        name: owner.name.clone(),
        uid: owner.uid.clone(),
        block_owner_deletion: block.then_some(true),
        controller: None,
    }
}

fn object(identity: &Identity, owners: Vec<OwnerReference>) -> ObjectState {
    ObjectState {
        identity: identity.clone(),
        owners,
        ..ObjectState::default()
    }
}

fn upsert(graph: &mut Graph, object: ObjectState) -> Vec<Action> {
    graph.process(&Change::Upsert {
        object: Arc::new(object),
        old: None,
    })
}

#[test]
fn an_owner_not_yet_observed_becomes_a_virtual_node_to_verify() {
    let mut graph = Graph::default();
    let owner = identity("ConfigMap", "ns", "owner", "o");
    let child = identity("ConfigMap", "ns", "child", "c");
    let actions = upsert(&mut graph, object(&child, vec![reference(&owner, false)]));
    assert_eq!(actions, vec![Action::AttemptToDelete("o".into())]);
    let virtual_owner = graph.get("o").unwrap();
    assert!(!virtual_owner.observed);
    assert_eq!(
        *virtual_owner.identity(),
        owner,
        "identity from the reference"
    );
    assert!(virtual_owner.dependents.contains("c"));

    // Observing it makes it real; the dependent stays linked.
    let actions = upsert(&mut graph, object(&owner, vec![]));
    assert!(actions.is_empty(), "{actions:?}");
    assert!(graph.get("o").unwrap().observed);
    assert_eq!(graph.dependents("o").len(), 1);
}

#[test]
fn deleting_an_owner_enqueues_its_dependents_and_records_it_absent() {
    let mut graph = Graph::default();
    let owner = identity("ConfigMap", "ns", "owner", "o");
    upsert(&mut graph, object(&owner, vec![]));
    for uid in ["a", "b"] {
        let child = identity("ConfigMap", "ns", uid, uid);
        assert!(upsert(&mut graph, object(&child, vec![reference(&owner, false)])).is_empty());
    }
    let actions = graph.process(&Change::Delete {
        identity: owner.clone(),
        virtual_: false,
    });
    assert_eq!(
        actions,
        vec![
            Action::Absent(owner),
            Action::AttemptToDelete("a".into()),
            Action::AttemptToDelete("b".into()),
        ]
    );
    assert!(graph.get("o").is_none());
}

#[test]
fn owner_references_changes_relink_the_graph() {
    let mut graph = Graph::default();
    let first = identity("ConfigMap", "ns", "first", "1");
    let second = identity("ConfigMap", "ns", "second", "2");
    let child = identity("ConfigMap", "ns", "child", "c");
    upsert(&mut graph, object(&first, vec![]));
    upsert(&mut graph, object(&second, vec![]));
    upsert(&mut graph, object(&child, vec![reference(&first, true)]));
    assert_eq!(graph.blocking_dependents("1").len(), 1);
    // The blocking reference to `first` goes: `first` may be waiting for that, so it is re-examined.
    let actions = upsert(&mut graph, object(&child, vec![reference(&second, false)]));
    assert_eq!(actions, vec![Action::AttemptToDelete("1".into())]);
    assert!(graph.dependents("1").is_empty());
    assert_eq!(graph.dependents("2").len(), 1);
    assert!(graph.blocking_dependents("2").is_empty());
    // blockOwnerDeletion true → false on the same reference also unblocks.
    upsert(&mut graph, object(&child, vec![reference(&second, true)]));
    let actions = upsert(&mut graph, object(&child, vec![reference(&second, false)]));
    assert_eq!(actions, vec![Action::AttemptToDelete("2".into())]);
}

#[test]
fn foreground_deletion_enqueues_dependents_and_the_owner() {
    let mut graph = Graph::default();
    let owner = identity("ReplicaSet", "ns", "rs", "o");
    let pod = identity("Pod", "ns", "pod", "p");
    upsert(&mut graph, object(&owner, vec![]));
    upsert(&mut graph, object(&pod, vec![reference(&owner, true)]));
    let old = object(&owner, vec![]);
    let mut deleting = old.clone();
    deleting.being_deleted = true;
    deleting.finalizers = vec![FOREGROUND_DELETION.into()];
    let actions = graph.process(&Change::Upsert {
        object: Arc::new(deleting.clone()),
        old: Some(Arc::new(old)),
    });
    assert_eq!(
        actions,
        vec![
            Action::AttemptToDelete("p".into()),
            Action::AttemptToDelete("o".into())
        ]
    );
    let node = graph.get("o").unwrap();
    assert!(node.being_deleted && node.deleting_dependents);
    // The same state again is no transition.
    let actions = graph.process(&Change::Upsert {
        object: Arc::new(deleting.clone()),
        old: Some(Arc::new(deleting)),
    });
    assert!(actions.is_empty());
    // The dependent going lets the owner be re-examined.
    let actions = graph.process(&Change::Delete {
        identity: pod,
        virtual_: false,
    });
    assert_eq!(actions, vec![Action::AttemptToDelete("o".into())]);
}

#[test]
fn orphan_finalizer_enqueues_the_owner_for_orphaning() {
    let mut graph = Graph::default();
    let owner = identity("ConfigMap", "ns", "o", "o");
    let mut deleting = object(&owner, vec![]);
    deleting.being_deleted = true;
    deleting.finalizers = vec![ORPHAN.into()];
    let actions = upsert(&mut graph, deleting);
    assert_eq!(actions, vec![Action::AttemptToOrphan("o".into())]);
}

#[test]
fn a_virtual_delete_removes_a_virtual_owner_and_enqueues_its_dependents() {
    let mut graph = Graph::default();
    let ghost = identity("ConfigMap", "ns", "ghost", "g");
    let child = identity("ConfigMap", "ns", "child", "c");
    upsert(&mut graph, object(&child, vec![reference(&ghost, false)]));
    let actions = graph.process(&Change::Delete {
        identity: ghost.clone(),
        virtual_: true,
    });
    assert_eq!(
        actions,
        vec![Action::Absent(ghost), Action::AttemptToDelete("c".into())]
    );
    assert!(graph.get("g").is_none());
    assert!(graph.get("c").is_some());
}

#[test]
fn a_virtual_delete_does_not_remove_an_observed_node_with_other_coordinates() {
    let mut graph = Graph::default();
    let owner = identity("ConfigMap", "ns", "owner", "o");
    upsert(&mut graph, object(&owner, vec![]));
    let wrong = identity("Secret", "ns", "owner", "o");
    let child = identity("ConfigMap", "ns", "child", "c");
    // A reference with the right UID but another kind is suspicious: verify the child.
    let actions = upsert(&mut graph, object(&child, vec![reference(&wrong, false)]));
    assert_eq!(actions, vec![Action::AttemptToDelete("c".into())]);
    let actions = graph.process(&Change::Delete {
        identity: wrong.clone(),
        virtual_: true,
    });
    assert_eq!(
        actions,
        vec![Action::Absent(wrong), Action::AttemptToDelete("c".into())]
    );
    assert!(graph.get("o").unwrap().observed, "kept");
}

#[test]
fn an_owner_in_another_namespace_is_reported_and_the_dependent_verified() {
    let mut graph = Graph::default();
    let owner = identity("ConfigMap", "a", "owner", "o");
    upsert(&mut graph, object(&owner, vec![]));
    let child = identity("ConfigMap", "b", "child", "c");
    let actions = upsert(&mut graph, object(&child, vec![reference(&owner, false)]));
    assert_eq!(
        actions,
        vec![
            Action::InvalidNamespaceOwnerRef {
                dependent: child.clone(),
                owner: Identity {
                    namespace: "b".into(),
                    ..owner.clone()
                },
            },
            Action::AttemptToDelete("c".into()),
        ]
    );
    // The other order: child first (virtual owner in namespace b), then the owner seen in a.
    let mut graph = Graph::default();
    upsert(&mut graph, object(&child, vec![reference(&owner, false)]));
    let actions = upsert(&mut graph, object(&owner, vec![]));
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert_eq!(actions[1], Action::AttemptToDelete("c".into()));
    assert_eq!(*graph.get("o").unwrap().identity(), owner);
}

#[test]
fn a_cluster_scoped_owner_may_own_namespaced_dependents() {
    let mut graph = Graph::default();
    let owner = identity("Node", "", "n1", "n");
    upsert(&mut graph, object(&owner, vec![]));
    let child = identity("Pod", "ns", "p", "p");
    assert!(upsert(&mut graph, object(&child, vec![reference(&owner, false)])).is_empty());
}

#[test]
fn display_is_upstreams() {
    let id = identity("ConfigMap", "ns", "n", "u");
    assert_eq!(
        id.to_string(),
        "[v1/ConfigMap, namespace: ns, name: n, uid: u]"
    );
}

#[test]
fn a_node_holds_the_state_the_monitor_saw_not_a_copy() {
    let mut graph = Graph::default();
    let owner = identity("ReplicaSet", "ns", "rs", "o");
    let pod = identity("Pod", "ns", "pod", "p");
    let first = Arc::new(object(&pod, vec![reference(&owner, true)]));
    graph.process(&Change::Upsert {
        object: first.clone(),
        old: None,
    });
    assert!(Arc::ptr_eq(&graph.get("p").unwrap().state, &first));
    // An update with the same references still takes the newer state (and drops the older one).
    let second = Arc::new(object(&pod, vec![reference(&owner, true)]));
    graph.process(&Change::Upsert {
        object: second.clone(),
        old: Some(first.clone()),
    });
    assert!(Arc::ptr_eq(&graph.get("p").unwrap().state, &second));
    assert_eq!(Arc::strong_count(&first), 1);
    assert_eq!(graph.get("p").unwrap().owners(), second.owners.as_slice());
}

#[test]
fn observed_owners_are_classified_from_the_graph() {
    let mut graph = Graph::default();
    let solid = identity("ConfigMap", "ns", "solid", "s");
    let deleting = identity("ConfigMap", "ns", "deleting", "d");
    let node = identity("Node", "", "node", "n");
    upsert(&mut graph, object(&solid, vec![]));
    let mut foreground = object(&deleting, vec![]);
    foreground.being_deleted = true;
    foreground.finalizers = vec![FOREGROUND_DELETION.into()];
    upsert(&mut graph, foreground);
    upsert(&mut graph, object(&node, vec![]));
    let child = object(&identity("ConfigMap", "ns", "child", "c"), vec![]);
    let state = |owner: &Identity| graph.observed_owner_state(&reference(owner, false), &child);
    assert_eq!(state(&solid), Some(OwnerState::Solid));
    assert_eq!(
        state(&deleting),
        Some(OwnerState::WaitingForDependentsDeletion)
    );
    assert_eq!(
        state(&node),
        Some(OwnerState::Solid),
        "a cluster-scoped owner is observed wherever its dependent is"
    );
}

#[test]
fn an_owner_the_graph_cannot_vouch_for_is_left_to_a_live_lookup() {
    let mut graph = Graph::default();
    let observed = identity("ConfigMap", "ns", "observed", "o");
    upsert(&mut graph, object(&observed, vec![]));
    let elsewhere = identity("ConfigMap", "other", "elsewhere", "e");
    upsert(&mut graph, object(&elsewhere, vec![]));
    let unseen = identity("ConfigMap", "ns", "unseen", "u");
    // A dependent's reference makes `unseen` a virtual node.
    upsert(
        &mut graph,
        object(
            &identity("ConfigMap", "ns", "first", "f"),
            vec![reference(&unseen, false)],
        ),
    );
    let unknown = identity("ConfigMap", "ns", "unknown", "x");
    let mut renamed = reference(&observed, false);
    renamed.name = "another".into();
    let child = object(&identity("ConfigMap", "ns", "child", "c"), vec![]);
    for owner in [
        reference(&unseen, false),
        reference(&unknown, false),
        reference(&elsewhere, false),
        renamed,
    ] {
        assert_eq!(
            graph.observed_owner_state(&owner, &child),
            None,
            "{owner:?}"
        );
    }
}
