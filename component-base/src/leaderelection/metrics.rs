//! Upstream's leader-election metrics (component-base/metrics/prometheus/clientgo/leaderelection), registered
//! in the default registry on first use so every binary's `/metrics` shows them.

use std::sync::LazyLock;

use prometheus::{IntCounterVec, IntGaugeVec, Opts};

struct Metrics {
    master_status: IntGaugeVec,
    slowpath_total: IntCounterVec,
}

static METRICS: LazyLock<Option<Metrics>> = LazyLock::new(|| match register() {
    Ok(metrics) => Some(metrics),
    Err(error) => {
        // Metrics are diagnostics: failing to register them must not stop leader election.
        tracing::warn!(%error, "cannot register leader election metrics");
        None
    }
});

fn register() -> prometheus::Result<Metrics> {
    let master_status = IntGaugeVec::new(
        Opts::new(
            "leader_election_master_status",
            "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates \
             master. 'name' is the string used to identify the lease. Please make sure to group by name.",
        ),
        &["name"],
    )?;
    let slowpath_total = IntCounterVec::new(
        Opts::new(
            "leader_election_slowpath_total",
            "Total number of slow path exercised in renewing leader leases. 'name' is the string used to \
             identify the lease. Please make sure to group by name.",
        ),
        &["name"],
    )?;
    let registry = prometheus::default_registry();
    registry.register(Box::new(master_status.clone()))?;
    registry.register(Box::new(slowpath_total.clone()))?;
    Ok(Metrics {
        master_status,
        slowpath_total,
    })
}

/// Sets `leader_election_master_status{name}` to 1 while leading and 0 otherwise.
pub(super) fn set_leading(name: &str, leading: bool) {
    if let Some(metrics) = METRICS.as_ref() {
        metrics
            .master_status
            .with_label_values(&[name])
            .set(i64::from(leading));
    }
}

/// Counts a renewal that had to read the Lease because the optimistic update was not possible.
pub(super) fn slowpath_exercised(name: &str) {
    if let Some(metrics) = METRICS.as_ref() {
        metrics.slowpath_total.with_label_values(&[name]).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master_status(name: &str) -> Option<f64> {
        prometheus::gather()
            .iter()
            .find(|family| family.name() == "leader_election_master_status")?
            .get_metric()
            .iter()
            .find(|m| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == "name" && l.value() == name)
            })
            .map(|m| m.get_gauge().get_value())
    }

    #[test]
    fn master_status_is_in_the_default_registry() {
        set_leading("metrics-test-lease", true);
        assert_eq!(master_status("metrics-test-lease"), Some(1.0));
        set_leading("metrics-test-lease", false);
        assert_eq!(master_status("metrics-test-lease"), Some(0.0));
    }
}
