//! What attemptToDelete does with an item once its owners are classified (upstream attemptToDeleteItem's
//! second half): pure, so every case is tested without an apiserver.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::graph::{FOREGROUND_DELETION, ORPHAN};

/// How one owner reference stands, verified against the apiserver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerState {
    /// The owner exists and is not waiting for its dependents.
    Solid,
    /// No object with this UID exists where the reference points.
    Dangling,
    /// The owner is being deleted in the foreground: it waits for its dependents.
    WaitingForDependentsDeletion,
}

/// classifyReferences for one owner: absent → dangling; being deleted with foregroundDeletion → waiting.
pub fn classify(
    dangling: bool,
    owner_being_deleted: bool,
    owner_finalizers: &[String],
) -> OwnerState {
    if dangling {
        OwnerState::Dangling
    } else if owner_being_deleted && owner_finalizers.iter().any(|f| f == FOREGROUND_DELETION) {
        OwnerState::WaitingForDependentsDeletion
    } else {
        OwnerState::Solid
    }
}

/// The DeleteOptions propagationPolicy the collector deletes with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

impl Propagation {
    /// The API value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Orphan => "Orphan",
            Self::Background => "Background",
            Self::Foreground => "Foreground",
        }
    }
}

/// What to do with the item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Its owners are all solid: keep it as it is.
    Keep,
    /// It has a solid owner: keep it, dropping the references to these (dangling or waiting) owners.
    RemoveReferences(Vec<String>),
    /// Delete it; `unblock_first` makes its own references non-blocking first (a possible cycle).
    Delete {
        propagation: Propagation,
        unblock_first: bool,
    },
}

/// The item with `finalizers` and `owners` (each with its state), whose graph node has dependents
/// (`has_dependents`), some of them deleting their own dependents (`dependent_deleting_dependents`).
pub fn decide(
    owners: &[(OwnerReference, OwnerState)],
    finalizers: &[String],
    has_dependents: bool,
    dependent_deleting_dependents: bool,
) -> Decision {
    let solid = owners.iter().any(|(_, s)| *s == OwnerState::Solid);
    let others: Vec<String> = owners
        .iter()
        .filter(|(_, s)| *s == OwnerState::Dangling)
        .chain(
            owners
                .iter()
                .filter(|(_, s)| *s == OwnerState::WaitingForDependentsDeletion),
        )
        .map(|(r, _)| r.uid.clone())
        .collect();
    let waiting = owners
        .iter()
        .any(|(_, s)| *s == OwnerState::WaitingForDependentsDeletion);
    if solid {
        return if others.is_empty() {
            Decision::Keep
        } else {
            Decision::RemoveReferences(others)
        };
    }
    if waiting && has_dependents {
        // An owner waits for this item, which has dependents of its own: delete it in the foreground too,
        // so its dependents go first. A dependent also deleting in the foreground could be a cycle: make
        // this item's references non-blocking so neither waits for the other forever.
        return Decision::Delete {
            propagation: Propagation::Foreground,
            unblock_first: dependent_deleting_dependents,
        };
    }
    // No solid owner: collect it, honouring a propagation already chosen by its finalizers.
    let propagation = if finalizers.iter().any(|f| f == ORPHAN) {
        Propagation::Orphan
    } else if finalizers.iter().any(|f| f == FOREGROUND_DELETION) {
        Propagation::Foreground
    } else {
        Propagation::Background
    };
    Decision::Delete {
        propagation,
        unblock_first: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: uid.into(),
            uid: uid.into(),
            ..OwnerReference::default()
        }
    }

    fn delete(propagation: Propagation) -> Decision {
        Decision::Delete {
            propagation,
            unblock_first: false,
        }
    }

    #[test]
    fn classification() {
        let fg = vec![FOREGROUND_DELETION.to_string()];
        assert_eq!(classify(true, false, &[]), OwnerState::Dangling);
        assert_eq!(classify(false, false, &fg), OwnerState::Solid);
        assert_eq!(
            classify(false, true, &[]),
            OwnerState::Solid,
            "background deletion"
        );
        assert_eq!(
            classify(false, true, &fg),
            OwnerState::WaitingForDependentsDeletion
        );
    }

    #[test]
    fn solid_owners_keep_the_item() {
        let owners = [(owner("a"), OwnerState::Solid)];
        assert_eq!(decide(&owners, &[], false, false), Decision::Keep);
    }

    #[test]
    fn one_live_owner_keeps_the_item_but_drops_the_dead_references() {
        let owners = [
            (owner("dead"), OwnerState::Dangling),
            (owner("live"), OwnerState::Solid),
            (owner("waiting"), OwnerState::WaitingForDependentsDeletion),
        ];
        assert_eq!(
            decide(&owners, &[], true, false),
            Decision::RemoveReferences(vec!["dead".into(), "waiting".into()])
        );
    }

    #[test]
    fn all_owners_gone_deletes_in_the_background() {
        let owners = [
            (owner("a"), OwnerState::Dangling),
            (owner("b"), OwnerState::Dangling),
        ];
        assert_eq!(
            decide(&owners, &[], false, false),
            delete(Propagation::Background)
        );
    }

    #[test]
    fn existing_finalizers_choose_the_propagation() {
        let owners = [(owner("a"), OwnerState::Dangling)];
        assert_eq!(
            decide(&owners, &[ORPHAN.into()], false, false),
            delete(Propagation::Orphan)
        );
        assert_eq!(
            decide(&owners, &[FOREGROUND_DELETION.into()], false, false),
            delete(Propagation::Foreground)
        );
    }

    #[test]
    fn a_waiting_owner_deletes_the_item_in_the_foreground_when_it_has_dependents() {
        let owners = [(owner("a"), OwnerState::WaitingForDependentsDeletion)];
        assert_eq!(
            decide(&owners, &[], true, false),
            delete(Propagation::Foreground)
        );
        assert_eq!(
            decide(&owners, &[], true, true),
            Decision::Delete {
                propagation: Propagation::Foreground,
                unblock_first: true
            }
        );
        // Without dependents, the ordinary rule: background.
        assert_eq!(
            decide(&owners, &[], false, false),
            delete(Propagation::Background)
        );
    }
}
