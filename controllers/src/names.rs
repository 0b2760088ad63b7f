//! Which controllers run: upstream's controller names and aliases, and `--controllers` as upstream reads it.

use std::collections::HashMap;

/// Every kube-controller-manager 1.36 controller name, with the aliases `--controllers` also accepts.
const UPSTREAM_CONTROLLERS: &[(&str, &[&str])] = &[
    ("serviceaccount-token-controller", &["serviceaccount-token"]),
    ("endpoints-controller", &["endpoint"]),
    ("endpointslice-controller", &["endpointslice"]),
    (
        "endpointslice-mirroring-controller",
        &["endpointslicemirroring"],
    ),
    (
        "replicationcontroller-controller",
        &["replicationcontroller"],
    ),
    ("pod-garbage-collector-controller", &["podgc"]),
    ("resourcequota-controller", &["resourcequota"]),
    ("namespace-controller", &["namespace"]),
    ("serviceaccount-controller", &["serviceaccount"]),
    ("garbage-collector-controller", &["garbagecollector"]),
    ("daemonset-controller", &["daemonset"]),
    ("job-controller", &["job"]),
    ("deployment-controller", &["deployment"]),
    ("replicaset-controller", &["replicaset"]),
    (
        "horizontal-pod-autoscaler-controller",
        &["horizontalpodautoscaling"],
    ),
    ("disruption-controller", &["disruption"]),
    ("statefulset-controller", &["statefulset"]),
    ("cronjob-controller", &["cronjob"]),
    (
        "certificatesigningrequest-signing-controller",
        &["csrsigning"],
    ),
    (
        "certificatesigningrequest-approving-controller",
        &["csrapproving"],
    ),
    (
        "certificatesigningrequest-cleaner-controller",
        &["csrcleaner"],
    ),
    ("ttl-controller", &["ttl"]),
    ("bootstrap-signer-controller", &["bootstrapsigner"]),
    ("token-cleaner-controller", &["tokencleaner"]),
    ("node-ipam-controller", &["nodeipam"]),
    ("node-lifecycle-controller", &["nodelifecycle"]),
    ("taint-eviction-controller", &[]),
    ("service-lb-controller", &["service"]),
    ("node-route-controller", &["route"]),
    ("cloud-node-lifecycle-controller", &["cloud-node-lifecycle"]),
    (
        "persistentvolume-binder-controller",
        &["persistentvolume-binder"],
    ),
    (
        "persistentvolume-attach-detach-controller",
        &["attachdetach"],
    ),
    (
        "persistentvolume-expander-controller",
        &["persistentvolume-expander"],
    ),
    (
        "clusterrole-aggregation-controller",
        &["clusterrole-aggregation"],
    ),
    (
        "persistentvolumeclaim-protection-controller",
        &["pvc-protection"],
    ),
    ("persistentvolume-protection-controller", &["pv-protection"]),
    ("ttl-after-finished-controller", &["ttl-after-finished"]),
    (
        "root-ca-certificate-publisher-controller",
        &["root-ca-cert-publisher"],
    ),
    (
        "service-ca-certificate-publisher-controller",
        &["service-ca-cert-publisher"],
    ),
    ("ephemeral-volume-controller", &["ephemeral-volume"]),
    (
        "storageversion-garbage-collector-controller",
        &["storage-version-gc"],
    ),
    ("resourceclaim-controller", &["resource-claim-controller"]),
    (
        "legacy-serviceaccount-token-cleaner-controller",
        &["legacy-service-account-token-cleaner"],
    ),
    ("validatingadmissionpolicy-status-controller", &[]),
    ("service-cidr-controller", &[]),
    ("storage-version-migrator-controller", &[]),
];

/// Upstream's controllers that are off unless named.
const DISABLED_BY_DEFAULT: &[&str] = &[
    "bootstrap-signer-controller",
    "token-cleaner-controller",
    "service-ca-certificate-publisher-controller",
    "storage-version-migrator-controller",
];

/// The canonical name of `name` (itself or an alias), if upstream knows it.
fn canonical(name: &str) -> Option<&'static str> {
    UPSTREAM_CONTROLLERS
        .iter()
        .find(|(canonical, aliases)| *canonical == name || aliases.contains(&name))
        .map(|(canonical, _)| *canonical)
}

/// The controller selection `--controllers` asks for, checked against upstream's names.
#[derive(Debug)]
pub struct ControllerSelection {
    /// Canonical name → explicitly enabled (`true`) or disabled (`false`).
    named: HashMap<&'static str, bool>,
    star: bool,
}

impl ControllerSelection {
    /// Parses `--controllers`; an unknown name is refused as upstream refuses it.
    pub fn parse(controllers: &[String]) -> Result<Self, String> {
        let mut named = HashMap::new();
        let mut star = false;
        for entry in controllers {
            if entry == "*" {
                star = true;
                continue;
            }
            let (name, enabled) = match entry.strip_prefix('-') {
                Some(name) => (name, false),
                None => (entry.as_str(), true),
            };
            let canonical = canonical(name).ok_or_else(|| {
                format!("--controllers: {name:?} is not in the list of known controllers")
            })?;
            // The first mention wins, as upstream's IsControllerEnabled reads the list in order.
            named.entry(canonical).or_insert(enabled);
        }
        Ok(Self { named, star })
    }

    /// Whether the controller with canonical name `name` should run.
    pub fn is_enabled(&self, name: &str) -> bool {
        match self.named.get(name) {
            Some(enabled) => *enabled,
            None => self.star && !DISABLED_BY_DEFAULT.contains(&name),
        }
    }

    /// Enabled upstream controllers ferrokube does not implement, for a start-up warning.
    pub fn unimplemented<'a>(&self, implemented: &[&str]) -> Vec<&'a str> {
        UPSTREAM_CONTROLLERS
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| self.is_enabled(name) && !implemented.contains(name))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selection(flag: &str) -> ControllerSelection {
        let entries: Vec<String> = flag.split(',').map(str::to_string).collect();
        ControllerSelection::parse(&entries).unwrap()
    }

    #[test]
    fn star_enables_what_is_on_by_default() {
        let all = selection("*");
        assert!(all.is_enabled("replicaset-controller"));
        assert!(!all.is_enabled("bootstrap-signer-controller"));
    }

    #[test]
    fn names_and_aliases_enable_and_disable() {
        let chosen = selection("*,-replicaset,bootstrapsigner");
        assert!(!chosen.is_enabled("replicaset-controller"));
        assert!(chosen.is_enabled("bootstrap-signer-controller"));
        assert!(chosen.is_enabled("deployment-controller"));

        let only = selection("deployment-controller,podgc");
        assert!(only.is_enabled("deployment-controller"));
        assert!(only.is_enabled("pod-garbage-collector-controller"));
        assert!(!only.is_enabled("replicaset-controller"), "no star");
    }

    #[test]
    fn the_first_mention_wins() {
        let chosen = selection("-namespace,namespace,*");
        assert!(!chosen.is_enabled("namespace-controller"));
    }

    #[test]
    fn unknown_names_are_refused() {
        let error = ControllerSelection::parse(&["*".into(), "-nosuch".into()]).unwrap_err();
        assert_eq!(
            error,
            "--controllers: \"nosuch\" is not in the list of known controllers"
        );
    }

    #[test]
    fn unimplemented_lists_enabled_upstream_controllers_only() {
        let chosen = selection("job,replicaset");
        assert_eq!(
            chosen.unimplemented(&["replicaset-controller"]),
            ["job-controller"]
        );
    }
}
