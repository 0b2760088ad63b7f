//! Leader election on coordination.k8s.io/v1 Leases, after client-go's `tools/leaderelection` with its
//! `LeaseLock`: candidates race to write their identity into one Lease; the holder renews it every retry
//! period, and the others take it over only once it has gone unrenewed for a full lease duration, measured
//! on their own clock from when they last saw the Lease change (never from its `renewTime`, which another
//! machine's clock wrote).
//!
//! ```no_run
//! # use component_base::leaderelection::{LeaderElectionConfig, LeaderElector};
//! # async fn example(client: kube::Client, shutdown: tokio_util::sync::CancellationToken) -> Result<(), Box<dyn std::error::Error>> {
//! let config = LeaderElectionConfig::new("kube-system", "kube-scheduler", "host-a_1234");
//! let elector = LeaderElector::new(client, config)?;
//! let status = elector.status(); // hand to /readyz, tests, ...
//! elector
//!     .run(shutdown, |leading| async move {
//!         // Leader work; must return soon after `leading` is cancelled.
//!         leading.cancelled().await;
//!     })
//!     .await?; // Err(LeaderElectionLost) means exit non-zero, as upstream's components do.
//! # let _ = status; Ok(()) }
//! ```
//!
//! The decision logic lives in [`record`] as pure functions over the observed record and clock, so it is
//! tested without an apiserver; [`LeaderElector`] only does the API calls and the timing around them.

mod config;
mod elector;
mod metrics;
pub mod record;

pub use config::{JITTER_FACTOR, LeaderElectionConfig, default_identity};
pub use elector::{LeaderElectionState, LeaderElector, LeaderStatus};
pub use record::{Decision, LeaderElectionRecord, ObservedRecord};

/// Why leader election could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid leader election config: {field} {reason}")]
    InvalidConfig { field: &'static str, reason: String },
    #[error("leader election lost: failed to renew lease {lease} within the renew deadline")]
    LeaderElectionLost { lease: String },
    #[error("failed election to renew leadership on lease {lease}: last renewed {since:?} ago")]
    LeaseNotRenewed {
        lease: String,
        since: std::time::Duration,
    },
    #[error("failed to {action} lease {lease}: {}", crate::client::error_message(.source))]
    Api {
        action: &'static str,
        lease: String,
        #[source]
        source: kube::Error,
    },
}
