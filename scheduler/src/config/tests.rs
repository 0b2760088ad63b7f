//! End-to-end tests of the configuration: text in, `Config` or a one-line error out.

use std::path::Path;
use std::time::Duration;

use super::*;

const MINIMAL: &str =
    "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n";

fn parse_at(text: &str) -> Result<Config, ConfigError> {
    parse(text, Some(Path::new("/etc/kubernetes/scheduler.yaml")))
}

fn error_of(text: &str) -> String {
    match parse_at(text) {
        Ok(config) => panic!("accepted: {config:?}"),
        Err(e) => e.to_string(),
    }
}

fn with_header(body: &str) -> String {
    format!("{MINIMAL}{body}")
}

#[test]
fn minimal_file_gets_every_default() {
    let config = parse_at(MINIMAL).expect("minimal config");
    assert_eq!(config.parallelism, 16);
    assert_eq!(config.percentage_of_nodes_to_score, 0);
    assert_eq!(config.pod_initial_backoff_seconds, 1);
    assert_eq!(config.pod_max_backoff_seconds, 10);
    assert!(config.enable_profiling && config.enable_contention_profiling);
    let le = &config.leader_election;
    assert!(le.leader_elect);
    assert_eq!(
        (le.lease_duration, le.renew_deadline, le.retry_period),
        (
            GoDuration::from_secs(15),
            GoDuration::from_secs(10),
            GoDuration::from_secs(2)
        )
    );
    assert_eq!(
        (
            le.resource_lock.as_str(),
            le.resource_name.as_str(),
            le.resource_namespace.as_str()
        ),
        ("leases", "kube-scheduler", "kube-system")
    );
    let cc = &config.client_connection;
    assert_eq!(
        (
            cc.qps,
            cc.burst,
            cc.content_type.as_str(),
            cc.kubeconfig.as_ref()
        ),
        (50.0, 100, "application/vnd.kubernetes.protobuf", None)
    );
    assert_eq!(config.profiles.len(), 1);
    let profile = &config.profiles[0];
    assert_eq!(profile.scheduler_name, "default-scheduler");
    assert_eq!(profile.percentage_of_nodes_to_score, None);
    let plugins: Vec<(&str, Option<i32>)> = profile
        .plugins
        .multi_point
        .enabled
        .iter()
        .map(|p| (p.name.as_str(), p.weight))
        .collect();
    assert_eq!(
        plugins,
        [
            ("SchedulingGates", None),
            ("PrioritySort", None),
            ("NodeUnschedulable", None),
            ("NodeName", None),
            ("TaintToleration", Some(3)),
            ("NodeAffinity", Some(2)),
            ("NodePorts", None),
            ("NodeResourcesFit", Some(1)),
            ("VolumeRestrictions", None),
            ("NodeVolumeLimits", None),
            ("VolumeBinding", None),
            ("VolumeZone", None),
            ("PodTopologySpread", Some(2)),
            ("InterPodAffinity", Some(2)),
            ("DynamicResources", Some(2)),
            ("DefaultPreemption", None),
            ("NodeResourcesBalancedAllocation", Some(1)),
            ("ImageLocality", Some(1)),
            ("DefaultBinder", None),
            ("NodeDeclaredFeatures", None),
        ]
    );
    assert!(profile.plugins.score.enabled.is_empty() && profile.plugins.filter.enabled.is_empty());
    assert_eq!(profile.plugin_args(), PluginArgs::default());
    assert_eq!(
        config,
        Config {
            source: Some("/etc/kubernetes/scheduler.yaml".into()),
            ..default_config()
        }
    );
}

const FULL: &str = r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
parallelism: 8
percentageOfNodesToScore: 50
podInitialBackoffSeconds: 2
podMaxBackoffSeconds: 20
delayCacheUntilActive: true
leaderElection:
  leaderElect: true
  leaseDuration: 30s
  renewDeadline: 20s
  retryPeriod: 4s
  resourceLock: leases
  resourceName: my-scheduler
  resourceNamespace: scheduling
clientConnection:
  kubeconfig: /etc/kubernetes/scheduler.conf
  qps: 100
  burst: 200
profiles:
  - schedulerName: default-scheduler
    plugins:
      score:
        disabled:
          - name: ImageLocality
        enabled:
          - name: NodeResourcesFit
            weight: 5
    pluginConfig:
      - name: NodeResourcesFit
        args:
          apiVersion: kubescheduler.config.k8s.io/v1
          kind: NodeResourcesFitArgs
          scoringStrategy:
            type: MostAllocated
            resources:
              - name: cpu
                weight: 1
              - name: nvidia.com/gpu
                weight: 3
      - name: PodTopologySpread
        args:
          defaultingType: List
          defaultConstraints:
            - maxSkew: 1
              topologyKey: topology.kubernetes.io/zone
              whenUnsatisfiable: ScheduleAnyway
  - schedulerName: bin-packing
    percentageOfNodesToScore: 100
    plugins:
      multiPoint:
        disabled:
          - name: PodTopologySpread
"#;

#[test]
fn full_upstream_style_file_parses() {
    let config = parse_at(FULL).expect("full config");
    assert_eq!(
        (config.parallelism, config.percentage_of_nodes_to_score),
        (8, 50)
    );
    assert_eq!(
        (
            config.pod_initial_backoff_seconds,
            config.pod_max_backoff_seconds
        ),
        (2, 20)
    );
    assert!(config.delay_cache_until_active);
    assert_eq!(
        config.leader_election.lease_duration,
        GoDuration::from_secs(30)
    );
    assert_eq!(config.leader_election.resource_namespace, "scheduling");
    assert_eq!(
        config.client_connection.kubeconfig.as_deref(),
        Some(Path::new("/etc/kubernetes/scheduler.conf"))
    );
    assert_eq!(
        (config.client_connection.qps, config.client_connection.burst),
        (100.0, 200)
    );

    let first = &config.profiles[0];
    assert_eq!(
        first.plugins.score.enabled,
        vec![Plugin::new("NodeResourcesFit", Some(5))]
    );
    assert_eq!(
        first.plugins.score.disabled,
        vec![Plugin::new("ImageLocality", None)]
    );
    let args = first.plugin_args();
    let strategy = &args.node_resources_fit.scoring_strategy;
    assert_eq!(strategy.type_, ScoringStrategyType::MostAllocated);
    let resources: Vec<(&str, i64)> = strategy
        .resources
        .iter()
        .map(|r| (r.name.as_str(), r.weight))
        .collect();
    assert_eq!(resources, [("cpu", 1), ("nvidia.com/gpu", 3)]);
    assert_eq!(
        args.pod_topology_spread.defaulting_type,
        DefaultingType::List
    );
    let constraints = args.pod_topology_spread.effective_default_constraints();
    assert_eq!(constraints.len(), 1);
    assert_eq!(
        (
            constraints[0].max_skew,
            constraints[0].topology_key.as_str()
        ),
        (1, "topology.kubernetes.io/zone")
    );
    assert_eq!(
        args.inter_pod_affinity.hard_pod_affinity_weight, 1,
        "defaults still apply to the others"
    );
    assert_eq!(first.plugin_config[0].name, "NodeResourcesFit");
    assert_eq!(first.plugin_config[1].name, "PodTopologySpread");

    let second = &config.profiles[1];
    assert_eq!(second.scheduler_name, "bin-packing");
    assert_eq!(second.percentage_of_nodes_to_score, Some(100));
    assert!(
        !second
            .plugins
            .multi_point
            .enabled
            .iter()
            .any(|p| p.name == "PodTopologySpread")
    );
    assert!(
        !second
            .plugin_config
            .iter()
            .any(|c| c.name == "PodTopologySpread"),
        "no args for a disabled plugin"
    );
}

#[test]
fn json_files_are_read_too() {
    let json = r#"{"apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration", "parallelism": 4}"#;
    assert_eq!(parse_at(json).expect("json config").parallelism, 4);
}

#[test]
fn multi_point_disable_all_then_enable_some() {
    let config = parse_at(&with_header(
        r"
profiles:
  - plugins:
      multiPoint:
        disabled:
          - name: '*'
        enabled:
          - name: PrioritySort
          - name: NodeResourcesFit
            weight: 4
          - name: DefaultBinder
",
    ))
    .expect("config");
    let multi_point = &config.profiles[0].plugins.multi_point;
    assert_eq!(
        multi_point.enabled,
        vec![
            Plugin::new("PrioritySort", None),
            Plugin::new("NodeResourcesFit", Some(4)),
            Plugin::new("DefaultBinder", None)
        ]
    );
    assert_eq!(multi_point.disabled, vec![Plugin::new("*", None)]);
    let names: Vec<&str> = config.profiles[0]
        .plugin_config
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["NodeResourcesFit"]);
}

#[test]
fn decoding_errors_name_the_file_and_the_field() {
    let cases = [
        (
            "profiles:\n- plugins:\n    score:\n      enabled:\n      - name: A\n      - name: B\n      - name: C\n        weigth: 2\n",
            r#"/etc/kubernetes/scheduler.yaml: profiles[0].plugins.score.enabled[2]: unknown field "weigth""#,
        ),
        (
            "parallelism: many\n",
            r#"/etc/kubernetes/scheduler.yaml: parallelism: invalid type: string "many", expected i32"#,
        ),
        (
            "leaderElection:\n  leaseDuration: 15\n",
            "/etc/kubernetes/scheduler.yaml: leaderElection.leaseDuration: invalid type: integer `15`, expected a string",
        ),
        (
            "leaderElection:\n  leaseDuration: soon\n",
            "/etc/kubernetes/scheduler.yaml: leaderElection.leaseDuration: invalid duration \"soon\"",
        ),
        (
            "healthzBindAddress: 0.0.0.0:10251\n",
            r#"/etc/kubernetes/scheduler.yaml: unknown field "healthzBindAddress" (not part of"#,
        ),
        (
            "profiles:\n- pluginConfig:\n  - name: NodeResourcesFit\n    args:\n      scoringStrategy:\n        typo: 1\n        type: MostAllocated\n",
            r#"/etc/kubernetes/scheduler.yaml: profiles[0].pluginConfig[0].args.scoringStrategy: unknown field "typo""#,
        ),
        ("profiles: [\n", "/etc/kubernetes/scheduler.yaml: "),
    ];
    for (body, want) in cases {
        let got = error_of(&with_header(body));
        assert!(got.starts_with(want), "got  {got}\nwant {want}");
        assert!(!got.contains('\n'), "one line: {got}");
    }
}

#[test]
fn wrong_type_meta_is_refused() {
    let cases = [
        (
            "apiVersion: kubescheduler.config.k8s.io/v1beta3\nkind: KubeSchedulerConfiguration\n",
            r#"apiVersion: Unsupported value: "kubescheduler.config.k8s.io/v1beta3": supported values: "kubescheduler.config.k8s.io/v1""#,
        ),
        (
            "kind: KubeSchedulerConfiguration\n",
            "apiVersion: Required value",
        ),
        (
            "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeProxyConfiguration\n",
            r#"kind: Unsupported value: "KubeProxyConfiguration""#,
        ),
        ("", "apiVersion: Required value"),
    ];
    for (text, want) in cases {
        let got = error_of(text);
        assert!(
            got.starts_with(&format!("/etc/kubernetes/scheduler.yaml: {want}")),
            "got {got}"
        );
    }
}

#[test]
fn load_reads_the_file_and_names_it() {
    let dir =
        std::env::temp_dir().join(format!("ferrokube-scheduler-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let good = dir.join("good.yaml");
    std::fs::write(&good, with_header("parallelism: 3\n")).expect("write");
    let config = load(&good).expect("load");
    assert_eq!(
        (config.parallelism, config.source.as_deref()),
        (3, Some(good.as_path()))
    );
    let missing = dir.join("missing.yaml");
    let error = load(&missing).expect_err("missing file").to_string();
    assert!(
        error.starts_with(&format!("{}: ", missing.display())),
        "{error}"
    );
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[test]
fn flags_override_leader_election_always_and_client_settings_only_without_a_file() {
    let overrides = FlagOverrides {
        kubeconfig: Some("/flag/kubeconfig".into()),
        leader_elect: Some(false),
        lease_duration: Some(Duration::from_secs(60)),
        renew_deadline: Some(Duration::from_secs(40)),
        retry_period: Some(Duration::from_secs(5)),
        resource_lock: Some("leases".into()),
        resource_name: Some("flag-name".into()),
        resource_namespace: Some("flag-ns".into()),
        kube_api_qps: Some(7.0),
        kube_api_burst: Some(9),
    };
    let cases = [
        ("without --config", default_config(), true),
        ("with --config", parse_at(FULL).expect("full"), false),
    ];
    for (name, mut config, client_flags_apply) in cases {
        let before = config.client_connection.clone();
        apply_flag_overrides(&mut config, &overrides);
        let le = &config.leader_election;
        assert!(!le.leader_elect, "{name}");
        assert_eq!(
            (le.lease_duration, le.renew_deadline, le.retry_period),
            (
                GoDuration::from_secs(60),
                GoDuration::from_secs(40),
                GoDuration::from_secs(5)
            ),
            "{name}"
        );
        assert_eq!(
            (le.resource_name.as_str(), le.resource_namespace.as_str()),
            ("flag-name", "flag-ns"),
            "{name}"
        );
        let cc = &config.client_connection;
        if client_flags_apply {
            assert_eq!(
                (cc.kubeconfig.as_deref(), cc.qps, cc.burst),
                (Some(Path::new("/flag/kubeconfig")), 7.0, 9),
                "{name}"
            );
        } else {
            assert_eq!(cc, &before, "{name}");
        }
        assert!(validate(&config).is_ok(), "{name}");
    }
    let mut config = parse_at(MINIMAL).expect("minimal");
    let unset = config.clone();
    apply_flag_overrides(&mut config, &FlagOverrides::default());
    assert_eq!(config, unset, "flags not given change nothing");
    apply_flag_overrides(
        &mut config,
        &FlagOverrides {
            lease_duration: Some(Duration::from_secs(5)),
            ..FlagOverrides::default()
        },
    );
    let error = validate(&config)
        .expect_err("lease shorter than renew deadline")
        .to_string();
    assert!(
        error.starts_with(
            "/etc/kubernetes/scheduler.yaml: leaderElection.leaseDuration: Invalid value: \"5s\""
        ),
        "{error}"
    );
}
