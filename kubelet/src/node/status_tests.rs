use std::time::Duration;

use super::*;

fn machine() -> MachineInfo {
    MachineInfo {
        num_cores: 2,
        memory_bytes: 8 << 30,
        ephemeral_storage_bytes: 100 << 30,
        huge_pages: vec![(2048, 0), (1_048_576, 0)],
        machine_id: "m".into(),
        boot_id: "b".into(),
        kernel_version: "6.1.0".into(),
        os_image: "Debian GNU/Linux 12 (bookworm)".into(),
        ..MachineInfo::default()
    }
}

fn config() -> KubeletConfiguration {
    let mut config = KubeletConfiguration::default();
    config.apply_defaults();
    config
}

fn ready_runtime(now: Instant) -> RuntimeState {
    RuntimeState {
        last_sync: Some(now),
        version: Some("1.6.20".into()),
        images: Vec::new(),
        network_error: None,
    }
}

fn compute(
    node: &mut Node,
    config: &KubeletConfiguration,
    runtime: &RuntimeState,
    now: Instant,
) -> Vec<&'static str> {
    let ips = ["10.0.0.5".parse().expect("ip")];
    let machine = machine();
    let inputs = StatusInputs {
        hostname: "node-1",
        node_ips: &ips,
        machine: &machine,
        config,
        runtime,
        now_instant: now,
        now: Timestamp::now(),
    };
    set_node_status(node, &inputs)
}

fn condition<'a>(node: &'a Node, type_: &str) -> &'a NodeCondition {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == type_))
        .unwrap_or_else(|| panic!("no {type_} condition"))
}

fn quantity(list: Option<&BTreeMap<String, Quantity>>, name: &str) -> String {
    list.and_then(|l| l.get(name))
        .map(|q| q.0.clone())
        .unwrap_or_default()
}

#[test]
fn capacity_and_allocatable_are_upstreams() {
    let mut config = config();
    config.system_reserved.insert("cpu".into(), "100m".into());
    config.kube_reserved.insert("memory".into(), "1Gi".into());
    let now = Instant::now();
    let mut node = Node::default();
    compute(&mut node, &config, &ready_runtime(now), now);
    let status = node.status.as_ref().expect("status");
    let capacity = status.capacity.as_ref();
    let allocatable = status.allocatable.as_ref();
    assert_eq!(quantity(capacity, "cpu"), "2");
    assert_eq!(quantity(capacity, "memory"), "8Gi");
    assert_eq!(quantity(capacity, "pods"), "110");
    assert_eq!(quantity(capacity, "hugepages-2Mi"), "0");
    assert_eq!(quantity(allocatable, "cpu"), "1900m");
    // 8Gi - 1Gi kube-reserved - 100Mi hard eviction threshold.
    assert_eq!(
        quantity(allocatable, "memory"),
        format_binary((7 << 30) - (100 << 20))
    );
    // 10% of the filesystem is the nodefs eviction threshold.
    assert_eq!(
        quantity(allocatable, "ephemeral-storage"),
        format_binary(90 << 30)
    );
    let info = status.node_info.as_ref().expect("nodeInfo");
    assert_eq!(info.container_runtime_version, "containerd://1.6.20");
    assert!(
        info.kubelet_version.starts_with("v1.36."),
        "{}",
        info.kubelet_version
    );
    assert_eq!(info.operating_system, "linux");
    let addresses = status.addresses.as_ref().expect("addresses");
    assert_eq!(addresses[0].type_, "InternalIP");
    assert_eq!(addresses[1].address, "node-1");
    assert_eq!(
        status
            .daemon_endpoints
            .as_ref()
            .and_then(|d| d.kubelet_endpoint.as_ref())
            .map(|e| e.port),
        Some(10250)
    );
}

#[test]
fn pods_per_core_caps_pods() {
    let mut config = config();
    config.pods_per_core = 10;
    let now = Instant::now();
    let mut node = Node::default();
    compute(&mut node, &config, &ready_runtime(now), now);
    assert_eq!(
        quantity(
            node.status.as_ref().and_then(|s| s.capacity.as_ref()),
            "pods"
        ),
        "20"
    );
}

#[test]
fn a_node_becomes_ready_when_the_runtime_answers_and_records_upstreams_events() {
    let now = Instant::now();
    let mut node = Node::default();
    let events = compute(&mut node, &config(), &RuntimeState::default(), now);
    assert_eq!(
        events,
        vec![
            "NodeHasSufficientMemory",
            "NodeHasNoDiskPressure",
            "NodeHasSufficientPID"
        ]
    );
    let ready = condition(&node, "Ready");
    assert_eq!(ready.status, "False");
    assert_eq!(ready.reason.as_deref(), Some("KubeletNotReady"));
    assert_eq!(
        ready.message.as_deref(),
        Some("[container runtime status check may not have completed yet, network state unknown]")
    );
    let before = node.status.clone().expect("status");

    let events = compute(&mut node, &config(), &ready_runtime(now), now);
    assert_eq!(events, vec!["NodeReady"]);
    let ready = condition(&node, "Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_deref()),
        ("True", Some("KubeletReady"))
    );
    assert!(status_changed(
        &before,
        node.status.as_ref().expect("status")
    ));

    // Nothing changes but the heartbeat: no events, nothing to post early.
    let before = node.status.clone().expect("status");
    let events = compute(&mut node, &config(), &ready_runtime(now), now);
    assert!(events.is_empty());
    assert!(!status_changed(
        &before,
        node.status.as_ref().expect("status")
    ));

    // The runtime stops answering: NotReady, and the transition is an event.
    let later = now + Duration::from_secs(31);
    let events = compute(&mut node, &config(), &ready_runtime(now), later);
    assert_eq!(events, vec!["NodeNotReady"]);
    assert_eq!(
        condition(&node, "Ready").message.as_deref(),
        Some("container runtime is down")
    );
}

#[test]
fn conditions_the_kubelet_does_not_own_are_kept() {
    let now = Instant::now();
    let mut node = Node {
        status: Some(NodeStatus {
            conditions: Some(vec![NodeCondition {
                type_: "NetworkUnavailable".into(),
                status: "False".into(),
                ..NodeCondition::default()
            }]),
            ..NodeStatus::default()
        }),
        ..Node::default()
    };
    compute(&mut node, &config(), &ready_runtime(now), now);
    assert_eq!(condition(&node, "NetworkUnavailable").status, "False");
    assert_eq!(
        node.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .map(Vec::len),
        Some(5)
    );
}

#[test]
fn images_are_capped_as_upstream() {
    let image = |n: usize| ContainerImage {
        names: Some((0..n).map(|i| format!("img:{i}")).collect()),
        size_bytes: Some(1),
    };
    let listed = images(&[image(7), image(1), image(1)], 2);
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].names.as_ref().map(Vec::len), Some(5));
    assert_eq!(images(&[image(1), image(1)], -1).len(), 2);
}
