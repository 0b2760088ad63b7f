//! ferrokube-scheduler against the real apiserver: Node objects made by the test (no kubelets), pods,
//! and what a user sees — bindings, `Scheduled` / `FailedScheduling` events, the PodScheduled condition.

use std::time::Duration;

use ferrokube_cluster::testing::TestNamespace;
use ferrokube_tests::scheduling::*;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

async fn setup(test: &str) -> (TestNamespace, kube::Client) {
    let namespace = TestNamespace::new(test).await;
    let client = admin().await;
    delete_all_nodes(&client).await;
    default_service_account(&client, &namespace.name).await;
    (namespace, client)
}

#[tokio::test(flavor = "multi_thread")]
async fn fits_reports_insufficient_cpu_and_schedules_when_a_node_is_added() {
    let _turn = exclusive().await;
    let (ns, client) = setup("sched-fit").await;
    let scheduler = SchedulerProcess::start("sched-fit", &["--leader-elect=false"]);
    create_node(&client, "fit-a", "1", json!({}), json!([])).await;
    create_node(&client, "fit-b", "1", json!({}), json!([])).await;

    create_pod(&client, &ns.name, "small", requesting("500m")).await;
    let node = bound_node(&client, &ns.name, "small").await;
    let notes = eventually(Duration::from_secs(10), "the Scheduled event", || async {
        let notes = event_notes(&client, &ns.name, "small", "Scheduled").await;
        (!notes.is_empty()).then_some(notes)
    })
    .await;
    assert_eq!(
        notes,
        [format!("Successfully assigned {}/small to {node}", ns.name)]
    );

    create_pod(&client, &ns.name, "big", requesting("2")).await;
    let (reason, message) = unschedulable(&client, &ns.name, "big").await;
    assert_eq!(reason, "Unschedulable", "{}", scheduler.log_tail());
    assert!(
        message.starts_with("0/2 nodes are available: 2 Insufficient cpu. preemption: "),
        "{message}"
    );
    let failed = event_notes(&client, &ns.name, "big", "FailedScheduling").await;
    assert_eq!(failed.first(), Some(&message));

    create_node(&client, "fit-c", "4", json!({}), json!([])).await;
    assert_eq!(bound_node(&client, &ns.name, "big").await, "fit-c");
    delete_all_nodes(&client).await;
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn taints_node_affinity_and_host_ports() {
    let _turn = exclusive().await;
    let (ns, client) = setup("sched-taints").await;
    let _scheduler = SchedulerProcess::start("sched-taints", &["--leader-elect=false"]);
    let no_schedule = json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]);
    let prefer_not = json!([{"key": "noisy", "effect": "PreferNoSchedule"}]);
    create_node(
        &client,
        "t-tainted",
        "4",
        json!({"zone": "z1"}),
        no_schedule,
    )
    .await;
    create_node(
        &client,
        "t-prefer-not",
        "4",
        json!({"zone": "z2"}),
        prefer_not,
    )
    .await;
    create_node(&client, "t-clean", "4", json!({"zone": "z2"}), json!([])).await;

    // PreferNoSchedule loses the score; NoSchedule is never used without a toleration.
    create_pod(&client, &ns.name, "plain", json!({"spec": {}})).await;
    assert_eq!(bound_node(&client, &ns.name, "plain").await, "t-clean");
    create_pod(
        &client,
        &ns.name,
        "to-tainted",
        json!({"spec": {"nodeSelector": {"zone": "z1"}}}),
    )
    .await;
    let (_, message) = unschedulable(&client, &ns.name, "to-tainted").await;
    assert!(
        message.starts_with("0/3 nodes are available: 1 node(s) had untolerated taint(s), 2 node(s) didn't match Pod's node affinity/selector."),
        "{message}"
    );
    let tolerating = json!({"spec": {
        "nodeSelector": {"zone": "z1"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}],
    }});
    create_pod(&client, &ns.name, "tolerating", tolerating).await;
    assert_eq!(
        bound_node(&client, &ns.name, "tolerating").await,
        "t-tainted"
    );

    // Required node affinity picks the zone; PreferNoSchedule still allows the node.
    let affinity = json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["t-prefer-not"]}]}]}}}}});
    create_pod(&client, &ns.name, "affine", affinity).await;
    assert_eq!(
        bound_node(&client, &ns.name, "affine").await,
        "t-prefer-not"
    );

    // Host ports: two pods asking for the same port go to different nodes of zone z2, a third fits nowhere.
    let port_pod = json!({"spec": {"nodeSelector": {"zone": "z2"}, "containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10",
        "ports": [{"containerPort": 8080, "hostPort": 8080}]}]}});
    create_pod(&client, &ns.name, "port-1", port_pod.clone()).await;
    create_pod(&client, &ns.name, "port-2", port_pod.clone()).await;
    let first = bound_node(&client, &ns.name, "port-1").await;
    let second = bound_node(&client, &ns.name, "port-2").await;
    assert_ne!(first, second);
    create_pod(&client, &ns.name, "port-3", port_pod).await;
    let (_, message) = unschedulable(&client, &ns.name, "port-3").await;
    assert!(
        message.contains("2 node(s) didn't have free ports for the requested pod ports"),
        "{message}"
    );
    delete_all_nodes(&client).await;
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pod_affinity_anti_affinity_and_topology_spread() {
    let _turn = exclusive().await;
    let (ns, client) = setup("sched-affinity").await;
    let _scheduler = SchedulerProcess::start("sched-affinity", &["--leader-elect=false"]);
    for (name, zone) in [
        ("a-z1-1", "z1"),
        ("a-z1-2", "z1"),
        ("a-z2-1", "z2"),
        ("a-z2-2", "z2"),
    ] {
        create_node(
            &client,
            name,
            "4",
            json!({"topology.kubernetes.io/zone": zone}),
            json!([]),
        )
        .await;
    }
    let anchor = json!({"metadata": {"labels": {"app": "db"}}, "spec": {"nodeSelector": {"kubernetes.io/hostname": "a-z1-1"}}});
    create_pod(&client, &ns.name, "db", anchor).await;
    bound_node(&client, &ns.name, "db").await;

    let with_db_in_zone = json!({"spec": {"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "topology.kubernetes.io/zone"}]}}}});
    create_pod(&client, &ns.name, "near-db", with_db_in_zone).await;
    let near = bound_node(&client, &ns.name, "near-db").await;
    assert!(near.starts_with("a-z1-"), "{near}");

    let away_from_db = json!({"spec": {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "topology.kubernetes.io/zone"}]}}}});
    create_pod(&client, &ns.name, "away-from-db", away_from_db).await;
    let away = bound_node(&client, &ns.name, "away-from-db").await;
    assert!(away.starts_with("a-z2-"), "{away}");

    // Four pods spread by zone with maxSkew 1 end up two and two.
    let spread = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"topologySpreadConstraints": [{
        "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "web"}}}]}});
    let mut zones = Vec::new();
    for i in 0..4 {
        let name = format!("web-{i}");
        create_pod(&client, &ns.name, &name, spread.clone()).await;
        zones.push(bound_node(&client, &ns.name, &name).await[..4].to_string());
    }
    zones.sort();
    assert_eq!(zones, ["a-z1", "a-z1", "a-z2", "a-z2"]);

    // Anti-affinity by hostname: one "solo" pod per node, the fifth fits nowhere.
    let solo = json!({"metadata": {"labels": {"app": "solo"}}, "spec": {"affinity": {"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "solo"}}, "topologyKey": "kubernetes.io/hostname"}]}}}});
    let mut hosts = Vec::new();
    for i in 0..4 {
        let name = format!("solo-{i}");
        create_pod(&client, &ns.name, &name, solo.clone()).await;
        hosts.push(bound_node(&client, &ns.name, &name).await);
    }
    hosts.sort();
    assert_eq!(hosts, ["a-z1-1", "a-z1-2", "a-z2-1", "a-z2-2"]);
    create_pod(&client, &ns.name, "solo-4", solo).await;
    let (_, message) = unschedulable(&client, &ns.name, "solo-4").await;
    assert!(
        message.starts_with(
            "0/4 nodes are available: 4 node(s) didn't match pod anti-affinity rules."
        ),
        "{message}"
    );
    delete_all_nodes(&client).await;
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_higher_priority_pod_preempts_a_lower_one() {
    let _turn = exclusive().await;
    let (ns, client) = setup("sched-preempt").await;
    let _scheduler = SchedulerProcess::start("sched-preempt", &["--leader-elect=false"]);
    let classes = Api::<PriorityClass>::all(client.clone());
    for (name, value) in [("ferrokube-low", 10), ("ferrokube-high", 1000)] {
        let class: PriorityClass =
            serde_json::from_value(json!({"metadata": {"name": name}, "value": value})).unwrap();
        let _ = classes.create(&PostParams::default(), &class).await;
    }
    create_node(&client, "p-only", "1", json!({}), json!([])).await;
    let mut low = requesting("800m");
    low["spec"]["priorityClassName"] = json!("ferrokube-low");
    create_pod(&client, &ns.name, "low", low).await;
    bound_node(&client, &ns.name, "low").await;

    let mut high = requesting("800m");
    high["spec"]["priorityClassName"] = json!("ferrokube-high");
    create_pod(&client, &ns.name, "high", high).await;
    let pods = Api::<Pod>::namespaced(client.clone(), &ns.name);
    // The victim is marked and deleted; without a kubelet the test finishes its graceful deletion.
    let victim = eventually(Duration::from_secs(30), "the victim's deletion", || async {
        let pod = pods.get("low").await.ok()?;
        pod.metadata.deletion_timestamp.is_some().then_some(pod)
    })
    .await;
    let disruption = victim
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "DisruptionTarget");
    assert_eq!(
        disruption.and_then(|c| c.reason).as_deref(),
        Some("PreemptionByScheduler")
    );
    let nominated = eventually(Duration::from_secs(10), "nominatedNodeName", || async {
        pods.get("high").await.ok()?.status?.nominated_node_name
    })
    .await;
    assert_eq!(nominated, "p-only");
    pods.delete(
        "low",
        &DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(bound_node(&client, &ns.name, "high").await, "p-only");
    let preempted = event_notes(&client, &ns.name, "low", "Preempted").await;
    assert_eq!(preempted.len(), 1, "{preempted:?}");
    assert!(preempted[0].ends_with("on node p-only"), "{preempted:?}");
    delete_all_nodes(&client).await;
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn gated_pods_wait_and_profiles_schedule_only_their_pods() {
    let _turn = exclusive().await;
    let (ns, client) = setup("sched-profiles").await;
    let config = config_file(
        "sched-profiles",
        "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nleaderElection:\n  leaderElect: false\nprofiles:\n- schedulerName: default-scheduler\n- schedulerName: second\n",
    );
    let kubeconfig = ferrokube_cluster::testing::shared_control_plane()
        .kubeconfig(&ferrokube_cluster::Identity::scheduler())
        .unwrap()
        .display()
        .to_string();
    std::fs::write(
        &config,
        format!(
            "{}clientConnection:\n  kubeconfig: {kubeconfig}\n",
            std::fs::read_to_string(&config).unwrap()
        ),
    )
    .unwrap();
    let _scheduler = SchedulerProcess::start(
        "sched-profiles",
        &[&format!("--config={}", config.display())],
    );
    create_node(&client, "g-node", "4", json!({}), json!([])).await;

    create_pod(
        &client,
        &ns.name,
        "second",
        json!({"spec": {"schedulerName": "second"}}),
    )
    .await;
    assert_eq!(bound_node(&client, &ns.name, "second").await, "g-node");
    let notes = eventually(Duration::from_secs(10), "the Scheduled event", || async {
        let notes = event_notes(&client, &ns.name, "second", "Scheduled").await;
        (!notes.is_empty()).then_some(notes)
    })
    .await;
    assert_eq!(notes.len(), 1);

    create_pod(
        &client,
        &ns.name,
        "nobodys",
        json!({"spec": {"schedulerName": "nobody"}}),
    )
    .await;
    create_pod(
        &client,
        &ns.name,
        "gated",
        json!({"spec": {"schedulingGates": [{"name": "example.com/wait"}]}}),
    )
    .await;
    stays_pending(&client, &ns.name, "nobodys", Duration::from_secs(3)).await;
    stays_pending(&client, &ns.name, "gated", Duration::from_millis(500)).await;
    Api::<Pod>::namespaced(client.clone(), &ns.name)
        .patch(
            "gated",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"schedulingGates": null}})),
        )
        .await
        .unwrap();
    assert_eq!(bound_node(&client, &ns.name, "gated").await, "g-node");
    delete_all_nodes(&client).await;
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_standby_takes_over_and_no_pod_is_bound_twice() {
    let _turn = exclusive().await;
    let (ns, client) = setup("sched-ha").await;
    let lease = format!("--leader-elect-resource-name={}", ns.name);
    let fast = [
        "--leader-elect=true",
        lease.as_str(),
        "--leader-elect-lease-duration=4s",
        "--leader-elect-renew-deadline=3s",
        "--leader-elect-retry-period=500ms",
    ];
    let mut first = SchedulerProcess::start("sched-ha-1", &fast);
    for i in 0..3 {
        create_node(&client, &format!("ha-{i}"), "8", json!({}), json!([])).await;
    }
    let batch = |prefix: &'static str| {
        let client = client.clone();
        let namespace = ns.name.clone();
        async move {
            for i in 0..10 {
                create_pod(
                    &client,
                    &namespace,
                    &format!("{prefix}-{i}"),
                    requesting("100m"),
                )
                .await;
            }
            let mut instances = std::collections::BTreeSet::new();
            for i in 0..10 {
                let name = format!("{prefix}-{i}");
                bound_node(&client, &namespace, &name).await;
                let by = eventually(Duration::from_secs(10), "the Scheduled event", || async {
                    let by = event_instances(&client, &namespace, &name, "Scheduled").await;
                    (!by.is_empty()).then_some(by)
                })
                .await;
                assert_eq!(by.len(), 1, "{name} was scheduled {} times", by.len());
                instances.extend(by);
            }
            instances
        }
    };
    let leader = batch("first").await;
    assert_eq!(leader.len(), 1, "{leader:?}");
    // A standby keeps warm caches but does not schedule.
    let _second = SchedulerProcess::start("sched-ha-2", &fast);
    assert_eq!(batch("standby-up").await, leader);
    first.process.stop(Duration::from_millis(0));
    let successor = batch("after-failover").await;
    assert_eq!(successor.len(), 1, "{successor:?}");
    assert_ne!(successor, leader);
    delete_all_nodes(&client).await;
    ns.delete().await;
}
