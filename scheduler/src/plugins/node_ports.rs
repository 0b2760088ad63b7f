//! NodePorts: a pod's host ports must be free on the node (upstream `plugins/nodeports`).

use k8s_openapi::api::core::v1::Pod;

use crate::framework::node_info::normalize_host_port;
use crate::framework::{
    ActionType, ClusterEvent, CycleState, EventResource, FilterPlugin, Handle, NodeInfo, Plugin,
    PodInfo, PreFilterPlugin, PreFilterResult, Snapshot, Status,
};

/// The plugin name.
pub const NAME: &str = "NodePorts";
/// The reason for a node where a wanted host port is taken.
pub const ERR_REASON: &str = "node(s) didn't have free ports for the requested pod ports";
const PRE_FILTER_STATE_KEY: &str = "PreFilterNodePorts";

/// A host port the pod wants, with upstream's defaults (0.0.0.0, TCP) applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantedPort {
    /// The host IP.
    pub ip: String,
    /// TCP, UDP or SCTP.
    pub protocol: String,
    /// The host port.
    pub port: i32,
}

/// The host ports `pod` asks for: its containers' and its restartable (sidecar) init containers', as
/// upstream's `util.GetHostPorts` (ordinary init containers have exited before the pod runs).
pub fn host_ports(pod: &Pod) -> Vec<WantedPort> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| c.restart_policy.as_deref() == Some("Always"));
    sidecars
        .chain(spec.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let port = p.host_port.filter(|port| *port > 0)?;
            let (ip, protocol) = normalize_host_port(p.host_ip.as_deref(), p.protocol.as_deref());
            Some(WantedPort { ip, protocol, port })
        })
        .collect()
}

/// The NodePorts plugin.
#[derive(Debug, Default)]
pub struct NodePorts;

impl NodePorts {
    /// Creates the plugin; it has no arguments.
    pub fn new(_handle: &Handle) -> Result<Self, String> {
        Ok(Self)
    }
}

impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        NAME
    }

    fn events_to_register(&self) -> Vec<ClusterEvent> {
        vec![
            // Ports are immutable, so only a deleted pod can free one.
            ClusterEvent::new(EventResource::AssignedPod, ActionType::DELETE),
            ClusterEvent::new(EventResource::Node, ActionType::ADD),
        ]
    }

    fn as_pre_filter(&self) -> Option<&dyn PreFilterPlugin> {
        Some(self)
    }

    fn as_filter(&self) -> Option<&dyn FilterPlugin> {
        Some(self)
    }
}

impl PreFilterPlugin for NodePorts {
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        _snapshot: &Snapshot,
    ) -> (Option<PreFilterResult>, Status) {
        let ports = host_ports(&pod.pod);
        if ports.is_empty() {
            return (None, Status::skip());
        }
        state.write(PRE_FILTER_STATE_KEY, ports);
        (None, Status::success())
    }
}

impl FilterPlugin for NodePorts {
    fn filter(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(wanted) = state.read::<Vec<WantedPort>>(PRE_FILTER_STATE_KEY) else {
            return Status::error(format!(
                "reading {PRE_FILTER_STATE_KEY:?} from cycleState: not found"
            ));
        };
        let conflict = wanted
            .iter()
            .any(|p| node.used_ports.conflicts(&p.ip, &p.protocol, p.port));
        if conflict {
            Status::unschedulable(ERR_REASON)
        } else {
            Status::success()
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Container, ContainerPort};

    use super::*;
    use crate::framework::Code;
    use crate::testing::{MakePod, make_node, make_pod};

    /// A pod with host ports given as "PROTOCOL/IP/PORT", as upstream's test helper.
    fn with_ports(ports: &[&str]) -> MakePod {
        ports.iter().fold(make_pod("p"), |pod, spec| {
            let parts: Vec<&str> = spec.split('/').collect();
            pod.host_port(parts[1], parts[0], parts[2].parse().unwrap())
        })
    }

    #[test]
    fn filter_checks_host_port_conflicts_as_upstream() {
        let cases: &[(&str, &[&str], &[&str], bool)] = &[
            (
                "other port",
                &["UDP/127.0.0.1/8080"],
                &["UDP/127.0.0.1/9090"],
                true,
            ),
            (
                "same udp port",
                &["UDP/127.0.0.1/8080"],
                &["UDP/127.0.0.1/8080"],
                false,
            ),
            (
                "same tcp port",
                &["TCP/127.0.0.1/8080"],
                &["TCP/127.0.0.1/8080"],
                false,
            ),
            (
                "different host ip",
                &["TCP/127.0.0.1/8080"],
                &["TCP/127.0.0.2/8080"],
                true,
            ),
            (
                "different protocol",
                &["UDP/127.0.0.1/8080"],
                &["TCP/127.0.0.1/8080"],
                true,
            ),
            (
                "second udp port conflict",
                &["UDP/127.0.0.1/8000", "UDP/127.0.0.1/8080"],
                &["UDP/127.0.0.1/8080"],
                false,
            ),
            (
                "first tcp port conflict",
                &["TCP/127.0.0.1/8001", "UDP/127.0.0.1/8080"],
                &["TCP/127.0.0.1/8001", "UDP/127.0.0.1/8081"],
                false,
            ),
            (
                "first tcp port conflict due to 0.0.0.0 hostIP",
                &["TCP/0.0.0.0/8001"],
                &["TCP/127.0.0.1/8001"],
                false,
            ),
            (
                "TCP hostPort conflict due to 0.0.0.0 hostIP",
                &["TCP/10.0.10.10/8001", "TCP/0.0.0.0/8001"],
                &["TCP/127.0.0.1/8001"],
                false,
            ),
            (
                "second tcp port conflict to 0.0.0.0 hostIP",
                &["TCP/127.0.0.1/8001"],
                &["TCP/0.0.0.0/8001"],
                false,
            ),
            (
                "second different protocol",
                &["UDP/127.0.0.1/8001"],
                &["TCP/0.0.0.0/8001"],
                true,
            ),
            (
                "UDP hostPort conflict due to 0.0.0.0 hostIP",
                &["UDP/127.0.0.1/8001"],
                &["TCP/0.0.0.0/8001", "UDP/0.0.0.0/8001"],
                false,
            ),
            (
                "empty ip and protocol default to 0.0.0.0 and TCP",
                &["//8001"],
                &["TCP/127.0.0.1/8001"],
                false,
            ),
        ];
        let snapshot = Snapshot::default();
        for (name, wanted, used, fits) in cases {
            let pod = with_ports(wanted).info();
            let existing = with_ports(used).node("m1").obj();
            let node = make_node("m1").info(vec![existing]);
            let mut state = CycleState::default();
            let (_, pre_filter) = NodePorts.pre_filter(&mut state, &pod, &snapshot);
            assert!(pre_filter.is_success(), "{name}: {pre_filter}");
            let status = NodePorts.filter(&state, &pod, &node);
            if *fits {
                assert!(status.is_success(), "{name}: {status}");
            } else {
                assert_eq!(status.code(), Code::Unschedulable, "{name}");
                assert_eq!(status.reasons(), [ERR_REASON], "{name}");
            }
        }
    }

    #[test]
    fn pre_filter_skips_pods_without_host_ports() {
        let mut state = CycleState::default();
        let (result, status) =
            NodePorts.pre_filter(&mut state, &make_pod("p").info(), &Snapshot::default());
        assert!(status.is_skip());
        assert!(result.is_none());
    }

    #[test]
    fn filter_without_pre_filter_state_is_an_error() {
        let status = NodePorts.filter(
            &CycleState::default(),
            &make_pod("p").info(),
            &make_node("n").info(vec![]),
        );
        assert_eq!(status.code(), Code::Error);
        assert_eq!(
            status.message(),
            "reading \"PreFilterNodePorts\" from cycleState: not found"
        );
    }

    #[test]
    fn host_ports_include_sidecars_but_not_plain_init_containers() {
        let port = |n: i32| ContainerPort {
            container_port: n,
            host_port: Some(n),
            ..Default::default()
        };
        let init = |name: &str, restart: Option<&str>, p: i32| Container {
            name: name.into(),
            restart_policy: restart.map(String::from),
            ports: Some(vec![port(p)]),
            ..Default::default()
        };
        let pod = make_pod("p")
            .host_port("", "UDP", 80)
            .with_spec(|s| {
                s.containers[0]
                    .ports
                    .get_or_insert_with(Vec::new)
                    .push(ContainerPort {
                        container_port: 90,
                        ..Default::default()
                    });
                s.init_containers = Some(vec![
                    init("sidecar", Some("Always"), 8001),
                    init("setup", None, 8002),
                ]);
            })
            .obj();
        let wanted = |ip: &str, protocol: &str, port: i32| WantedPort {
            ip: ip.into(),
            protocol: protocol.into(),
            port,
        };
        assert_eq!(
            host_ports(&pod),
            [wanted("0.0.0.0", "TCP", 8001), wanted("0.0.0.0", "UDP", 80)]
        );
    }
}
