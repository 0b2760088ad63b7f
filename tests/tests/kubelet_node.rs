//! ferrokube-kubelet's node: registration as system:node:NAME (through the Node authorizer and
//! NodeRestriction), the status upstream's setters report, the Lease heartbeat, node events, and
//! re-registration of an existing node.

use std::time::Duration;

use ferrokube_cluster::Identity;
use ferrokube_cluster::testing::shared_control_plane;
use ferrokube_tests::kubelet::start_kubelet;
use ferrokube_tests::scheduling::eventually;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition};
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

const NODE: &str = "node-1";
/// No containerd listens here: the node must say the runtime has not answered yet, as upstream's does.
const NO_RUNTIME: &str = "--container-runtime-endpoint=unix:///nonexistent/containerd.sock";

fn condition(node: &Node, type_: &str) -> Option<NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .cloned()
}

async fn node_event(client: &Client, reason: &str) -> Option<Event> {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let list = events.list(&ListParams::default()).await.ok()?;
    list.items.into_iter().find(|e| {
        e.reason.as_deref() == Some(reason)
            && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(NODE)
    })
}

#[tokio::test]
async fn a_kubelet_registers_its_node_reports_status_renews_its_lease_and_reregisters() {
    let admin = shared_control_plane()
        .client(&Identity::admin())
        .await
        .unwrap();
    let nodes: Api<Node> = Api::all(admin.clone());
    let port = ferrokube_cluster::control_plane::free_port().unwrap();
    let port_flag = format!("--port={port}");
    let args = [
        NO_RUNTIME,
        &port_flag,
        "--node-labels=tier=e2e,node.kubernetes.io/pool=a",
        "--register-with-taints=example.com/dedicated=e2e:NoSchedule",
        "--max-pods=42",
        "--node-status-update-frequency=1s",
    ];
    let mut kubelet = start_kubelet(NODE, &args);

    let node = eventually(Duration::from_secs(30), "node-1 to register", || async {
        nodes.get_opt(NODE).await.ok().flatten()
    })
    .await;
    let node_uid = node.metadata.uid.clone().expect("uid");
    let labels = node.metadata.labels.clone().unwrap_or_default();
    for (key, value) in [
        ("kubernetes.io/hostname", NODE),
        ("kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/os", "linux"),
        ("tier", "e2e"),
        ("node.kubernetes.io/pool", "a"),
    ] {
        assert_eq!(
            labels.get(key).map(String::as_str),
            Some(value),
            "label {key}"
        );
    }
    assert_eq!(
        node.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("volumes.kubernetes.io/controller-managed-attach-detach"))
            .map(String::as_str),
        Some("true")
    );
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    assert!(
        taints.iter().any(|t| t.key == "example.com/dedicated"
            && t.value.as_deref() == Some("e2e")
            && t.effect == "NoSchedule"),
        "{taints:?}"
    );

    let status = node.status.clone().expect("status");
    let capacity = status.capacity.clone().unwrap_or_default();
    let allocatable = status.allocatable.clone().unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .unwrap()
        .get()
        .to_string();
    assert_eq!(capacity.get("cpu").map(|q| q.0.clone()), Some(cores));
    assert_eq!(capacity.get("pods").map(|q| q.0.as_str()), Some("42"));
    for resource in ["memory", "ephemeral-storage", "hugepages-2Mi"] {
        assert!(
            capacity.contains_key(resource),
            "capacity {resource}: {capacity:?}"
        );
    }
    assert_ne!(
        capacity.get("memory"),
        allocatable.get("memory"),
        "the hard eviction threshold comes off allocatable memory"
    );
    let info = status.node_info.clone().expect("nodeInfo");
    assert!(info.kubelet_version.starts_with("v1.36."), "{info:?}");
    assert_eq!(info.container_runtime_version, "containerd://Unknown");
    assert_eq!(
        (info.operating_system.as_str(), info.boot_id.is_empty()),
        ("linux", false)
    );
    let addresses = status.addresses.clone().unwrap_or_default();
    assert!(
        addresses
            .iter()
            .any(|a| a.type_ == "Hostname" && a.address == NODE)
    );
    assert!(
        addresses
            .iter()
            .any(|a| a.type_ == "InternalIP" && !a.address.starts_with("127.")),
        "{addresses:?}"
    );
    assert_eq!(
        status
            .daemon_endpoints
            .and_then(|d| d.kubelet_endpoint)
            .map(|e| e.port),
        Some(i32::from(port))
    );
    for (type_, reason) in [
        ("MemoryPressure", "KubeletHasSufficientMemory"),
        ("DiskPressure", "KubeletHasNoDiskPressure"),
        ("PIDPressure", "KubeletHasSufficientPID"),
    ] {
        let c = condition(&node, type_).unwrap_or_else(|| panic!("no {type_}"));
        assert_eq!(
            (c.status.as_str(), c.reason.as_deref()),
            ("False", Some(reason))
        );
    }
    let ready = condition(&node, "Ready").expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_deref()),
        ("False", Some("KubeletNotReady"))
    );
    assert!(
        ready
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("container runtime status check may not have completed yet"),
        "{ready:?}"
    );

    // The heartbeat: the Lease, owned by the Node, renewed every 10 s, and the status re-posted every
    // report period (here 1 s) even though nothing changed.
    let leases: Api<Lease> = Api::namespaced(admin.clone(), "kube-node-lease");
    let lease = eventually(Duration::from_secs(20), "node-1's lease", || async {
        leases.get_opt(NODE).await.ok().flatten()
    })
    .await;
    let spec = lease.spec.clone().expect("lease spec");
    assert_eq!(spec.holder_identity.as_deref(), Some(NODE));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    let owner = lease.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(
        owner.first().map(|o| (o.kind.as_str(), o.uid.as_str())),
        Some(("Node", node_uid.as_str()))
    );
    let first_renewal = spec.renew_time.clone();
    eventually(
        Duration::from_secs(20),
        "the lease to be renewed",
        || async {
            let renewed = leases.get(NODE).await.ok()?.spec?.renew_time;
            (renewed != first_renewal).then_some(())
        },
    )
    .await;
    let first_heartbeat = ready.last_heartbeat_time.clone();
    eventually(Duration::from_secs(10), "a status heartbeat", || async {
        let node = nodes.get(NODE).await.ok()?;
        let ready = condition(&node, "Ready")?;
        (ready.last_heartbeat_time != first_heartbeat).then_some(())
    })
    .await;

    // Node events, with upstream's reasons and words.
    let event = eventually(
        Duration::from_secs(10),
        "a NodeHasSufficientMemory event",
        || node_event(&admin, "NodeHasSufficientMemory"),
    )
    .await;
    assert_eq!(
        event.note.as_deref(),
        Some("Node node-1 status is now: NodeHasSufficientMemory")
    );
    nodes
        .patch(
            NODE,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"unschedulable": true}})),
        )
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "a NodeNotSchedulable event",
        || node_event(&admin, "NodeNotSchedulable"),
    )
    .await;

    // A restarted kubelet finds its node, puts its default labels back and keeps the user's.
    kubelet.process.stop(Duration::from_secs(10));
    nodes
        .patch(
            NODE,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"kubernetes.io/hostname": "wrong"}}})),
        )
        .await
        .unwrap();
    let _kubelet = start_kubelet(NODE, &args);
    eventually(
        Duration::from_secs(30),
        "the hostname label to be restored",
        || async {
            let node = nodes.get(NODE).await.ok()?;
            let labels = node.metadata.labels?;
            (labels.get("kubernetes.io/hostname").map(String::as_str) == Some(NODE))
                .then_some(labels)
        },
    )
    .await;
    let node = nodes.get(NODE).await.unwrap();
    assert_eq!(
        node.metadata.uid.as_deref(),
        Some(node_uid.as_str()),
        "the same node, not a new one"
    );
    assert_eq!(
        node.metadata
            .labels
            .unwrap()
            .get("tier")
            .map(String::as_str),
        Some("e2e")
    );
}
