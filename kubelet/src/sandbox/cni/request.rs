//! What a plugin is given: its environment (CNI spec "Parameters") and its stdin configuration, built as
//! libcni builds them.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::config::NetworkConfigList;
use crate::sandbox::PortMapping;

/// The interface name every pod gets, as upstream.
pub const IFNAME: &str = "eth0";

/// A CNI operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Attach the container to the network.
    Add,
    /// Detach it and release what ADD allocated.
    Del,
}

impl Command {
    /// The value of `CNI_COMMAND`.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
        }
    }
}

/// The pod a CNI operation is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef<'a> {
    /// metadata.uid; also the container ID plugins key their state by.
    pub uid: &'a str,
    /// metadata.namespace.
    pub namespace: &'a str,
    /// metadata.name.
    pub name: &'a str,
}

impl PodRef<'_> {
    /// `namespace/name (uid)`, how errors name the pod.
    pub fn describe(&self) -> String {
        format!("{}/{} ({})", self.namespace, self.name, self.uid)
    }
}

/// `CNI_ARGS` as the kubelet's runtime passes them (containerd's CRI plugin).
pub fn cni_args(pod: &PodRef<'_>) -> String {
    format!(
        "K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={};IgnoreUnknown=1",
        pod.namespace, pod.name, pod.uid, pod.uid
    )
}

/// The `CNI_*` variables for one plugin run; the rest of the kubelet's environment (PATH: plugins run
/// iptables) is inherited, as libcni does.
pub fn environment(
    command: Command,
    pod: &PodRef<'_>,
    netns: Option<&Path>,
    bin_dirs: &[PathBuf],
) -> Vec<(&'static str, String)> {
    let path = bin_dirs
        .iter()
        .map(|dir| dir.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    vec![
        ("CNI_COMMAND", command.as_str().to_string()),
        ("CNI_CONTAINERID", pod.uid.to_string()),
        (
            "CNI_NETNS",
            netns.map(|p| p.display().to_string()).unwrap_or_default(),
        ),
        ("CNI_IFNAME", IFNAME.to_string()),
        ("CNI_ARGS", cni_args(pod)),
        ("CNI_PATH", path),
    ]
}

/// One plugin's stdin: its own configuration with the list's `name` and `cniVersion` injected, `prevResult`
/// when there is one, and `runtimeConfig` holding only the capabilities the plugin declares
/// (libcni's `buildOneConfig` and `injectRuntimeConfig`).
pub fn plugin_stdin(
    list: &NetworkConfigList,
    plugin: &Map<String, Value>,
    prev_result: Option<&Value>,
    port_mappings: &[PortMapping],
) -> Value {
    let mut config = plugin.clone();
    config.insert("name".into(), json!(list.name));
    config.insert("cniVersion".into(), json!(list.cni_version));
    if let Some(prev) = prev_result {
        config.insert("prevResult".into(), prev.clone());
    }
    let wants = |capability: &str| {
        plugin
            .get("capabilities")
            .and_then(|c| c.get(capability))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let mappings: Vec<Value> = port_mappings
        .iter()
        .filter(|m| m.host_port > 0)
        .map(|m| {
            json!({
                "hostPort": m.host_port,
                "containerPort": m.container_port,
                "protocol": m.protocol.as_cni(),
                "hostIP": m.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            })
        })
        .collect();
    // libcni replaces any runtimeConfig written in the file with the runtime's own.
    config.remove("runtimeConfig");
    if wants("portMappings") && !mappings.is_empty() {
        config.insert("runtimeConfig".into(), json!({ "portMappings": mappings }));
    }
    Value::Object(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::Protocol;

    fn pod() -> PodRef<'static> {
        PodRef {
            uid: "0b8c-11",
            namespace: "ns1",
            name: "web",
        }
    }

    fn list() -> NetworkConfigList {
        let text = r#"{"cniVersion":"1.0.0","name":"fk","plugins":[
            {"type":"bridge","bridge":"b0","runtimeConfig":{"stale":1}},
            {"type":"portmap","capabilities":{"portMappings":true},"snat":true}]}"#;
        super::super::config::parse_conflist(text.as_bytes(), Path::new("/d/x.conflist")).unwrap()
    }

    fn mapping(host_port: u16) -> PortMapping {
        PortMapping {
            host_port,
            container_port: 80,
            protocol: Protocol::Tcp,
            host_ip: None,
        }
    }

    #[test]
    fn cni_args_carry_the_pod_as_upstream() {
        assert_eq!(
            cni_args(&pod()),
            "K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=0b8c-11;\
             K8S_POD_UID=0b8c-11;IgnoreUnknown=1"
        );
    }

    #[test]
    fn the_environment_names_the_command_netns_and_plugin_path() {
        let dirs = [PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")];
        let env = environment(
            Command::Del,
            &pod(),
            Some(Path::new("/run/netns/fk-0b8c-11")),
            &dirs,
        );
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).unwrap().1.clone();
        assert_eq!(get("CNI_COMMAND"), "DEL");
        assert_eq!(get("CNI_CONTAINERID"), "0b8c-11");
        assert_eq!(get("CNI_NETNS"), "/run/netns/fk-0b8c-11");
        assert_eq!(get("CNI_IFNAME"), "eth0");
        assert_eq!(get("CNI_PATH"), "/opt/cni/bin:/usr/lib/cni");
        let no_netns = environment(Command::Del, &pod(), None, &dirs);
        assert!(
            no_netns
                .iter()
                .any(|(k, v)| *k == "CNI_NETNS" && v.is_empty())
        );
    }

    #[test]
    fn the_first_plugin_gets_name_and_version_and_no_prev_result() {
        let list = list();
        let stdin = plugin_stdin(&list, &list.plugins[0], None, &[mapping(8080)]);
        assert_eq!(stdin["name"], "fk");
        assert_eq!(stdin["cniVersion"], "1.0.0");
        assert_eq!(stdin["bridge"], "b0");
        assert!(stdin.get("prevResult").is_none());
        // The bridge does not declare portMappings: no runtimeConfig, and the file's own is dropped.
        assert!(stdin.get("runtimeConfig").is_none());
    }

    #[test]
    fn a_later_plugin_gets_the_prev_result_and_its_capabilities() {
        let list = list();
        let prev = json!({"cniVersion":"1.0.0","ips":[{"address":"10.0.0.2/24"}]});
        let mut udp = mapping(5353);
        udp.protocol = Protocol::Udp;
        udp.host_ip = Some("127.0.0.1".parse().unwrap());
        let stdin = plugin_stdin(
            &list,
            &list.plugins[1],
            Some(&prev),
            &[mapping(8080), udp, mapping(0)],
        );
        assert_eq!(stdin["prevResult"], prev);
        assert_eq!(stdin["snat"], true);
        assert_eq!(
            stdin["runtimeConfig"]["portMappings"],
            json!([
                {"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""},
                {"hostPort": 5353, "containerPort": 80, "protocol": "udp", "hostIP": "127.0.0.1"},
            ])
        );
        let none = plugin_stdin(&list, &list.plugins[1], Some(&prev), &[]);
        assert!(none.get("runtimeConfig").is_none());
    }
}
