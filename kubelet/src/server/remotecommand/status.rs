//! What the error stream says at the end (k8s.io/cri-streaming remotecommand/exec.go, status.go): v4 a JSON
//! status carrying the exit code, v1–v3 only a failure's message.

use serde::Serialize;

use super::Protocol;

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The process exited with this code; `command` is its argv for the message (empty for attach).
    Exited { code: u32, command: Vec<String> },
    /// Running it failed (`error executing command in container: …`).
    Failed(String),
}

#[derive(Serialize)]
struct Status {
    status: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    message: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Details>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<u16>,
}

#[derive(Serialize)]
struct Details {
    causes: Vec<Cause>,
}

/// `streamStatusCause`: its type goes on the wire as `reason`.
#[derive(Serialize)]
struct Cause {
    reason: &'static str,
    message: String,
}

impl Outcome {
    fn status(&self) -> Status {
        match self {
            Outcome::Exited { code: 0, .. } => Status {
                status: "Success",
                message: String::new(),
                reason: "",
                details: None,
                code: None,
            },
            Outcome::Exited { code, command } => Status {
                status: "Failure",
                // containerd's CRI streaming runtime's exit error, wrapped by ServeExec.
                message: format!(
                    "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                    command.join(" ")
                ),
                reason: "NonZeroExitCode",
                details: Some(Details {
                    causes: vec![Cause {
                        reason: "ExitCode",
                        message: code.to_string(),
                    }],
                }),
                code: None,
            },
            Outcome::Failed(error) => Status {
                status: "Failure",
                message: format!(
                    "Internal error occurred: error executing command in container: {error}"
                ),
                reason: "InternalError",
                details: None,
                code: Some(500),
            },
        }
    }

    /// The bytes written on the error stream under `protocol`, if any.
    pub fn error_stream_bytes(&self, protocol: Protocol) -> Option<Vec<u8>> {
        let status = self.status();
        match protocol {
            Protocol::V4 => serde_json::to_vec(&status).ok(),
            _ if status.status == "Success" => None,
            _ => Some(status.message.into_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(outcome: &Outcome, protocol: Protocol) -> Option<String> {
        outcome
            .error_stream_bytes(protocol)
            .map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn v4_says_success_or_the_exit_code() {
        let success = Outcome::Exited {
            code: 0,
            command: vec!["true".to_string()],
        };
        assert_eq!(
            text(&success, Protocol::V4).unwrap(),
            r#"{"status":"Success"}"#
        );
        let exit3 = Outcome::Exited {
            code: 3,
            command: vec!["sh".into(), "-c".into(), "exit 3".into()],
        };
        assert_eq!(
            text(&exit3, Protocol::V4).unwrap(),
            r#"{"status":"Failure","message":"command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#
        );
        let failed = Outcome::Failed("no such container".to_string());
        assert_eq!(
            text(&failed, Protocol::V4).unwrap(),
            r#"{"status":"Failure","message":"Internal error occurred: error executing command in container: no such container","reason":"InternalError","code":500}"#
        );
    }

    #[test]
    fn older_protocols_only_send_failure_messages() {
        let success = Outcome::Exited {
            code: 0,
            command: vec![],
        };
        assert_eq!(text(&success, Protocol::V3), None);
        let failed = Outcome::Failed("boom".to_string());
        assert_eq!(
            text(&failed, Protocol::V2).unwrap(),
            "Internal error occurred: error executing command in container: boom"
        );
    }
}
