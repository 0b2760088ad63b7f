//! The kubelet's configuration as upstream builds it: the `--config` file (decoded strictly, or leniently with
//! a warning when only unknown fields stop the strict decoder), then the flags over it, then defaults, then
//! validation. Errors read as upstream's.

mod auth;
mod types;
mod validation;

use std::path::Path;

pub use auth::{AUTHORIZATION_MODES, KubeletAuthentication, KubeletAuthorization};
pub use types::{API_VERSION, KIND, KubeletConfiguration};
pub use validation::validate;

use component_base::config::{DecodeError, decode};

use crate::options::{Flags, resource_map};

/// Why the configuration cannot be used; one line each, as upstream's start-up errors.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or decoded.
    #[error("failed to load kubelet config file, path: {file}, error: {message}")]
    Load {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range.
    #[error("failed to validate kubelet configuration, error: {0}")]
    Invalid(String),
}

/// The file (if any) with the flags over it, defaulted and validated.
pub fn resolve(flags: &Flags) -> Result<KubeletConfiguration, ConfigError> {
    let mut config = match &flags.config {
        Some(path) => load(path)?,
        None => KubeletConfiguration {
            authentication: KubeletAuthentication::legacy(),
            authorization: KubeletAuthorization::legacy(),
            ..Default::default()
        },
    };
    apply_flags(&mut config, flags);
    config.apply_defaults();
    validate(&config).map_err(ConfigError::Invalid)?;
    Ok(config)
}

/// Reads and decodes the file at `path` (no defaults yet).
pub fn load(path: &Path) -> Result<KubeletConfiguration, ConfigError> {
    let load_error = |message: String| ConfigError::Load {
        file: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| load_error(e.to_string()))?;
    decode_text(&text).map_err(load_error)
}

fn decode_text(text: &str) -> Result<KubeletConfiguration, String> {
    let yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| e.to_string().replace('\n', " "))?;
    let json = decode::yaml_to_json(yaml, "").map_err(|e| e.to_string())?;
    check_type(&json)?;
    match decode::from_value::<KubeletConfiguration>(&json, "") {
        Ok(config) => Ok(config),
        // Upstream's kubelet falls back to lenient decoding when the strict decoder fails only on
        // unknown fields, so a file written for a newer or fuller kubelet still starts this one.
        Err(error) if is_unknown_field(&error) => {
            tracing::warn!(
                error = %error,
                "Using lenient decoding as strict decoding failed"
            );
            serde_json::from_value(json).map_err(|e| e.to_string())
        }
        Err(error) => Err(error.to_string()),
    }
}

fn is_unknown_field(error: &DecodeError) -> bool {
    error.message.starts_with("unknown field")
}

fn check_type(json: &serde_json::Value) -> Result<(), String> {
    let field = |name: &str| json.get(name).and_then(|v| v.as_str()).unwrap_or_default();
    let (api_version, kind) = (field("apiVersion"), field("kind"));
    if kind != KIND {
        return Err(format!("kind must be {KIND:?}, not {kind:?}"));
    }
    if api_version != API_VERSION {
        return Err(format!(
            "no kind \"{KIND}\" is registered for version \"{api_version}\" (want \"{API_VERSION}\")"
        ));
    }
    Ok(())
}

/// Flags given on the command line win over the file, as upstream's.
fn apply_flags(config: &mut KubeletConfiguration, flags: &Flags) {
    fn set<T: Clone>(field: &mut T, flag: &Option<T>) {
        if let Some(value) = flag {
            *field = value.clone();
        }
    }
    set(
        &mut config.container_runtime_endpoint,
        &flags.container_runtime_endpoint,
    );
    set(&mut config.pod_cidr, &flags.pod_cidr);
    set(&mut config.max_pods, &flags.max_pods);
    set(
        &mut config.register_with_taints,
        &flags.register_with_taints,
    );
    set(
        &mut config.node_status_update_frequency,
        &flags.node_status_update_frequency,
    );
    set(&mut config.kube_api_burst, &flags.kube_api_burst);
    set(&mut config.cluster_domain, &flags.cluster_domain);
    set(&mut config.port, &flags.port);
    set(&mut config.pod_logs_dir, &flags.pod_logs_dir);
    if flags.register_node.is_some() {
        config.register_node = flags.register_node;
    }
    if flags.kube_api_qps.is_some() {
        config.kube_api_qps = flags.kube_api_qps;
    }
    if flags.healthz_port.is_some() {
        config.healthz_port = flags.healthz_port;
    }
    if let Some(reserved) = &flags.system_reserved {
        config.system_reserved = resource_map(reserved);
    }
    if let Some(reserved) = &flags.kube_reserved {
        config.kube_reserved = resource_map(reserved);
    }
    if let Some(dns) = &flags.cluster_dns {
        config.cluster_dns = dns.iter().map(ToString::to_string).collect();
    }
    if let Some(address) = flags.address {
        config.address = address.to_string();
    }
    set(
        &mut config.authentication.x509.client_ca_file,
        &flags.client_ca_file,
    );
    if flags.anonymous_auth.is_some() {
        config.authentication.anonymous.enabled = flags.anonymous_auth;
    }
    if flags.authentication_token_webhook.is_some() {
        config.authentication.webhook.enabled = flags.authentication_token_webhook;
    }
    set(
        &mut config.authentication.webhook.cache_ttl,
        &flags.authentication_token_webhook_cache_ttl,
    );
    set(&mut config.authorization.mode, &flags.authorization_mode);
    set(
        &mut config.authorization.webhook.cache_authorized_ttl,
        &flags.authorization_webhook_cache_authorized_ttl,
    );
    set(
        &mut config.authorization.webhook.cache_unauthorized_ttl,
        &flags.authorization_webhook_cache_unauthorized_ttl,
    );
    set(&mut config.tls_cert_file, &flags.tls_cert_file);
    set(
        &mut config.tls_private_key_file,
        &flags.tls_private_key_file,
    );
    set(&mut config.tls_cipher_suites, &flags.tls_cipher_suites);
    set(&mut config.tls_min_version, &flags.tls_min_version);
    if let Some(address) = flags.healthz_bind_address {
        config.healthz_bind_address = address.to_string();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn flags(args: &[&str]) -> Flags {
        let mut all = vec!["ferrokube-kubelet"];
        all.extend_from_slice(args);
        Flags::try_parse_from(all).expect("valid flags")
    }

    #[test]
    fn defaults_are_upstreams() {
        let config = resolve(&flags(&[])).expect("valid");
        assert_eq!(config.port, 10250);
        assert_eq!(config.healthz_port, Some(10248));
        assert_eq!(config.max_pods, 110);
        assert_eq!(config.node_status_update_frequency.to_string(), "10s");
        assert_eq!(config.node_status_report_frequency.to_string(), "5m0s");
        assert_eq!(config.node_lease_duration_seconds, 40);
        assert_eq!(config.kube_api_qps, Some(50.0));
        assert_eq!(config.kube_api_burst, 100);
        assert_eq!(config.register_node, Some(true));
        // Without --config, upstream's legacy flag defaults: anonymous allowed, no webhooks.
        assert_eq!(config.authentication.anonymous.enabled, Some(true));
        assert_eq!(config.authentication.webhook.enabled, Some(false));
        assert_eq!(config.authorization.mode, "AlwaysAllow");
    }

    #[test]
    fn a_file_defaults_to_webhook_authentication_and_authorization() {
        let yaml = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n\
                    authentication: {x509: {clientCAFile: /ca.crt}}\n";
        let mut config = decode_text(yaml).expect("valid file");
        apply_flags(
            &mut config,
            &flags(&["--authorization-webhook-cache-unauthorized-ttl=10s"]),
        );
        config.apply_defaults();
        assert_eq!(config.authentication.x509.client_ca_file, "/ca.crt");
        assert_eq!(config.authentication.anonymous.enabled, Some(false));
        assert_eq!(config.authentication.webhook.enabled, Some(true));
        assert_eq!(config.authentication.webhook.cache_ttl.to_string(), "2m0s");
        assert_eq!(config.authorization.mode, "Webhook");
        assert_eq!(
            config
                .authorization
                .webhook
                .cache_authorized_ttl
                .to_string(),
            "5m0s"
        );
        assert_eq!(
            config
                .authorization
                .webhook
                .cache_unauthorized_ttl
                .to_string(),
            "10s"
        );
        let config = resolve(&flags(&[
            "--anonymous-auth=false",
            "--authorization-mode=Webhook",
        ]))
        .expect("valid");
        assert_eq!(config.authentication.anonymous.enabled, Some(false));
        assert_eq!(config.authorization.mode, "Webhook");
    }

    #[test]
    fn the_file_is_read_and_flags_override_it() {
        let yaml = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n\
                    maxPods: 20\nnodeStatusUpdateFrequency: 4s\npodCIDR: 10.244.1.0/24\n\
                    clusterDNS: [10.96.0.10]\nsystemReserved: {cpu: 100m}\n";
        let mut config = decode_text(yaml).expect("valid file");
        assert_eq!(config.max_pods, 20);
        assert_eq!(config.pod_cidr, "10.244.1.0/24");
        assert_eq!(config.cluster_dns, vec!["10.96.0.10"]);
        apply_flags(&mut config, &flags(&["--max-pods=30"]));
        config.apply_defaults();
        assert_eq!(config.max_pods, 30);
        // An explicit update frequency is also the report frequency, as upstream defaults it.
        assert_eq!(config.node_status_report_frequency.to_string(), "4s");
        assert_eq!(
            config.system_reserved.get("cpu").map(String::as_str),
            Some("100m")
        );
    }

    #[test]
    fn unknown_fields_are_tolerated_but_wrong_types_and_kinds_are_not() {
        let head = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n";
        let config = decode_text(&format!(
            "{head}maxPods: 7\nevictionHard: {{memory.available: 100Mi}}\n"
        ))
        .expect("unknown fields are only warned about");
        assert_eq!(config.max_pods, 7);
        let error = decode_text(&format!("{head}maxPods: many\n")).expect_err("wrong type");
        assert!(error.starts_with("maxPods:"), "{error}");
        let error =
            decode_text("apiVersion: v1\nkind: KubeletConfiguration\n").expect_err("version");
        assert!(
            error.contains("no kind \"KubeletConfiguration\" is registered"),
            "{error}"
        );
    }
}
