//! Reading what a plugin answers: a result (spec 0.3.x–1.0.0) or an error object.

use std::net::IpAddr;

use serde_json::Value;

/// A plugin's error, from its JSON error object or, failing that, from its stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    /// The CNI error code (1–99 well-known, 100+ plugin-specific).
    pub code: Option<u64>,
    /// The short message.
    pub msg: String,
    /// The longer explanation, possibly empty.
    pub details: String,
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)?;
        if let Some(code) = self.code {
            write!(f, " (code {code})")?;
        }
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        Ok(())
    }
}

/// The error a plugin reported when it exited non-zero.
pub fn parse_error(stdout: &[u8], stderr: &[u8], status: &str) -> PluginError {
    if let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(stdout) {
        let msg = object.get("msg").and_then(Value::as_str).unwrap_or("");
        if !msg.is_empty() || object.contains_key("code") {
            return PluginError {
                code: object.get("code").and_then(Value::as_u64),
                msg: msg.to_string(),
                details: object
                    .get("details")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            };
        }
    }
    let text = String::from_utf8_lossy(stderr).trim().to_string();
    let out = String::from_utf8_lossy(stdout).trim().to_string();
    PluginError {
        code: None,
        msg: format!("plugin exited ({status})"),
        details: [text, out]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// A successful ADD's stdout as a result object.
pub fn parse_result(stdout: &[u8]) -> Result<Value, String> {
    match serde_json::from_slice::<Value>(stdout) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err("not a JSON object".to_string()),
        Err(e) => Err(format!("{e}: {:?}", String::from_utf8_lossy(stdout))),
    }
}

/// The pod's IPs in a result, IPv4 first: those on an interface inside the sandbox when the result says
/// which interface each address is on (as containerd picks them), otherwise all of them.
pub fn pod_ips(result: &Value) -> Vec<IpAddr> {
    let interfaces = result
        .get("interfaces")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let in_sandbox = |index: u64| {
        usize::try_from(index)
            .ok()
            .and_then(|i| interfaces.get(i))
            .and_then(|interface| interface.get("sandbox"))
            .and_then(Value::as_str)
            .is_some_and(|sandbox| !sandbox.is_empty())
    };
    let ips = result
        .get("ips")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let parsed: Vec<(Option<u64>, IpAddr)> = ips
        .iter()
        .filter_map(|ip| {
            let address = ip.get("address")?.as_str()?;
            let address = address.split('/').next()?.parse().ok()?;
            Some((ip.get("interface").and_then(Value::as_u64), address))
        })
        .collect();
    let any_in_sandbox = parsed.iter().any(|(i, _)| i.is_some_and(in_sandbox));
    let mut chosen: Vec<IpAddr> = parsed
        .into_iter()
        .filter(|(i, _)| !any_in_sandbox || i.is_some_and(in_sandbox))
        .map(|(_, ip)| ip)
        .collect();
    // A stable sort: IPv4 before IPv6, each family in the plugin's order.
    chosen.sort_by_key(|ip| ip.is_ipv6());
    chosen.dedup();
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_json_error_object_is_the_error() {
        let stdout = br#"{"cniVersion":"1.0.0","code":11,"msg":"failed to allocate","details":"range full"}"#;
        let error = parse_error(stdout, b"ignored", "exit status: 1");
        assert_eq!(
            error,
            PluginError {
                code: Some(11),
                msg: "failed to allocate".into(),
                details: "range full".into()
            }
        );
        assert_eq!(
            error.to_string(),
            "failed to allocate (code 11): range full"
        );
    }

    #[test]
    fn without_an_error_object_stderr_says_what_happened() {
        let error = parse_error(b"", b"panic: boom\n", "exit status: 2");
        assert_eq!(error.code, None);
        assert_eq!(error.msg, "plugin exited (exit status: 2)");
        assert_eq!(error.details, "panic: boom");
    }

    #[test]
    fn results_must_be_objects() {
        assert!(parse_result(br#"{"cniVersion":"1.0.0"}"#).is_ok());
        assert!(parse_result(b"[]").is_err());
        assert!(parse_result(b"garbage").unwrap_err().contains("garbage"));
    }

    #[test]
    fn the_pod_ips_are_those_in_the_sandbox_ipv4_first() {
        let result = json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "fk0", "mac": "aa"},
                {"name": "veth1", "mac": "bb"},
                {"name": "eth0", "mac": "cc", "sandbox": "/run/netns/fk-1"}
            ],
            "ips": [
                {"address": "fd00::5/64", "interface": 2},
                {"address": "10.250.0.1/24", "interface": 0},
                {"address": "10.250.0.5/24", "gateway": "10.250.0.1", "interface": 2}
            ]
        });
        let ips = pod_ips(&result);
        assert_eq!(
            ips,
            [
                "10.250.0.5".parse::<IpAddr>().unwrap(),
                "fd00::5".parse().unwrap()
            ]
        );
    }

    #[test]
    fn without_interface_indexes_every_ip_counts() {
        // 0.4.0-style result from an IPAM-only chain.
        let result =
            json!({"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "10.1.0.7/16"}]});
        assert_eq!(pod_ips(&result), ["10.1.0.7".parse::<IpAddr>().unwrap()]);
        assert!(pod_ips(&json!({})).is_empty());
    }
}
