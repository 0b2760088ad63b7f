//! Upstream's `ValidateKubeletConfiguration` for the fields ferrokube reads, with its messages.

use component_base::quantity::parse_milli;

use super::KubeletConfiguration;

/// Every problem with `config`, joined as upstream's error aggregate (`[a, b]` when more than one).
pub fn validate(config: &KubeletConfiguration) -> Result<(), String> {
    let mut errors = Vec::new();
    let mut invalid = |message: String| errors.push(format!("invalid configuration: {message}"));
    if config.node_lease_duration_seconds <= 0 {
        invalid("nodeLeaseDurationSeconds must be greater than 0".into());
    }
    if let Some(port) = config.healthz_port
        && port != 0
        && !(1..=65535).contains(&port)
    {
        invalid(format!(
            "healthzPort (--healthz-port) {port} must be between 1 and 65535, inclusive"
        ));
    }
    if config.kube_api_burst < 0 {
        invalid(format!(
            "kubeAPIBurst (--kube-api-burst) {} must not be a negative number",
            config.kube_api_burst
        ));
    }
    if let Some(qps) = config.kube_api_qps
        && qps < 0.0
    {
        invalid(format!(
            "kubeAPIQPS (--kube-api-qps) {qps} must not be a negative number"
        ));
    }
    if let Some(images) = config.node_status_max_images
        && images < -1
    {
        invalid(format!(
            "nodeStatusMaxImages (--node-status-max-images) {images} must be -1 or greater"
        ));
    }
    if config.max_pods < 0 {
        invalid(format!(
            "maxPods (--max-pods) {} must not be a negative number",
            config.max_pods
        ));
    }
    if config.pods_per_core < 0 {
        invalid(format!(
            "podsPerCore (--pods-per-core) {} must not be a negative number",
            config.pods_per_core
        ));
    }
    if !(1..=65535).contains(&config.port) {
        invalid(format!(
            "port (--port) {} must be between 1 and 65535, inclusive",
            config.port
        ));
    }
    if !super::AUTHORIZATION_MODES.contains(&config.authorization.mode.as_str()) {
        invalid(format!(
            "unknown authorization mode {} (--authorization-mode: AlwaysAllow or Webhook)",
            config.authorization.mode
        ));
    }
    if config.tls_cert_file.is_empty() != config.tls_private_key_file.is_empty() {
        invalid("tlsCertFile (--tls-cert-file) and tlsPrivateKeyFile (--tls-private-key-file) go together".into());
    }
    if config.cgroup_driver != "cgroupfs" {
        invalid(format!(
            "cgroupDriver (--cgroup-driver) {:?}: ferrokube-kubelet supports \"cgroupfs\" only",
            config.cgroup_driver
        ));
    }
    if config.node_status_update_frequency.0 <= 0 {
        invalid(format!(
            "nodeStatusUpdateFrequency (--node-status-update-frequency) {} must be greater than 0",
            config.node_status_update_frequency
        ));
    }
    for (flag, reserved) in [
        (
            "systemReserved (--system-reserved)",
            &config.system_reserved,
        ),
        ("kubeReserved (--kube-reserved)", &config.kube_reserved),
    ] {
        for (name, quantity) in reserved {
            if parse_milli(quantity).is_none_or(|q| q < 0) {
                invalid(format!(
                    "{flag} {name}={quantity:?} is not a valid quantity"
                ));
            }
        }
    }
    for taint in &config.register_with_taints {
        if taint.key.is_empty()
            || !matches!(
                taint.effect.as_str(),
                "NoSchedule" | "PreferNoSchedule" | "NoExecute"
            )
        {
            errors.push(format!(
                "invalid taint: {}={}:{}",
                taint.key,
                taint.value.as_deref().unwrap_or_default(),
                taint.effect
            ));
        }
        if taint.time_added.is_some() {
            errors.push("invalid configuration: taint.TimeAdded is not nil".into());
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(format!("[{}]", errors.join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaulted() -> KubeletConfiguration {
        let mut config = KubeletConfiguration::default();
        config.apply_defaults();
        config
    }

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(validate(&defaulted()), Ok(()));
    }

    #[test]
    fn bad_values_are_named_with_their_flag() {
        let mut config = defaulted();
        config.max_pods = -1;
        assert_eq!(
            validate(&config),
            Err(
                "invalid configuration: maxPods (--max-pods) -1 must not be a negative number"
                    .into()
            )
        );
        config.port = 70000;
        let error = validate(&config).expect_err("two problems");
        assert!(
            error.starts_with("[invalid configuration: maxPods"),
            "{error}"
        );
        assert!(
            error.contains("port (--port) 70000 must be between 1 and 65535"),
            "{error}"
        );
    }

    #[test]
    fn reserved_quantities_and_taints_are_checked() {
        let mut config = defaulted();
        config
            .system_reserved
            .insert("memory".into(), "lots".into());
        assert!(
            validate(&config)
                .expect_err("bad quantity")
                .contains("systemReserved")
        );
        let mut config = defaulted();
        config
            .register_with_taints
            .push(k8s_openapi::api::core::v1::Taint {
                key: "k".into(),
                effect: "Sometimes".into(),
                ..Default::default()
            });
        assert_eq!(validate(&config), Err("invalid taint: k=:Sometimes".into()));
    }
}
