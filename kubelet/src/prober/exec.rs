//! exec probes: the command in the container; exit 0 passes, any other exit or the timeout fails.

use std::time::Duration;

use super::{ProbeError, ProbeOutcome};
use crate::runtime::Runtime;

/// Runs `argv` in container `id` within `timeout`.
pub async fn probe(
    _runtime: &Runtime,
    id: &str,
    _argv: &[String],
    _timeout: Duration,
) -> Result<ProbeOutcome, ProbeError> {
    Err(ProbeError::Exec {
        container: id.to_string(),
        message: "exec is not available yet".to_string(),
    })
}
