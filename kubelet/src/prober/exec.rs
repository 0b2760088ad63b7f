//! exec probes (upstream's pkg/probe/exec): the command in the container; exit 0 passes with its output,
//! any other exit fails with it, and outliving the timeout fails with the runtime's message.

use std::time::Duration;

use super::{ProbeError, ProbeOutcome};
use crate::runtime::{ExecOutput, Runtime, RuntimeError};

/// Runs `argv` in container `id` within `timeout`.
pub async fn probe(
    runtime: &Runtime,
    id: &str,
    argv: &[String],
    timeout: Duration,
) -> Result<ProbeOutcome, ProbeError> {
    verdict(runtime.exec(id, argv, timeout).await, id)
}

/// Upstream's verdict on an exec's result.
fn verdict(result: Result<ExecOutput, RuntimeError>, id: &str) -> Result<ProbeOutcome, ProbeError> {
    match result {
        Ok(ExecOutput { exit_code: 0, .. }) => Ok(ProbeOutcome::Success),
        Ok(ExecOutput { output, .. }) => Ok(ProbeOutcome::Failure(
            String::from_utf8_lossy(&output).into_owned(),
        )),
        Err(e @ RuntimeError::ExecTimeout { .. }) => Ok(ProbeOutcome::Failure(e.to_string())),
        Err(e) => Err(ProbeError::Exec {
            container: id.to_string(),
            message: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_and_timeouts_give_upstreams_verdicts() {
        let exited = |exit_code, output: &str| {
            Ok(ExecOutput {
                exit_code,
                output: output.as_bytes().to_vec(),
            })
        };
        assert_eq!(
            verdict(exited(0, "fine"), "c").ok(),
            Some(ProbeOutcome::Success)
        );
        assert_eq!(
            verdict(
                exited(
                    1,
                    "cat: can't open '/tmp/healthy': No such file or directory\n"
                ),
                "c"
            )
            .ok(),
            Some(ProbeOutcome::Failure(
                "cat: can't open '/tmp/healthy': No such file or directory\n".into()
            ))
        );
        let timeout = RuntimeError::ExecTimeout {
            command: "sleep 10".into(),
            timeout: "1s".into(),
        };
        let Ok(ProbeOutcome::Failure(message)) = verdict(Err(timeout), "c") else {
            panic!("a timeout did not fail");
        };
        assert!(message.starts_with("command timed out"), "{message}");
        let gone = RuntimeError::Container {
            container: "c".into(),
            message: "not running".into(),
        };
        assert!(verdict(Err(gone), "c").is_err());
    }
}
