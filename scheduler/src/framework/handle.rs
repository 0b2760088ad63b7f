//! What plugins get when they are created (upstream `framework.Handle`): the listers and a client.

use std::sync::Arc;

use super::listers::{Listers, StaticListers};

/// Access to the cluster for plugins.
#[derive(Clone)]
pub struct Handle {
    /// Cluster objects besides nodes and pods.
    pub listers: Arc<dyn Listers>,
    /// A client for binding and PreBind work; `None` in unit tests.
    pub client: Option<kube::Client>,
}

impl Handle {
    /// A handle over fixed objects and without a client, for unit tests.
    pub fn for_tests(listers: StaticListers) -> Self {
        Self {
            listers: Arc::new(listers),
            client: None,
        }
    }
}
