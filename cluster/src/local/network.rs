//! The host's side of a local cluster's network: the bridge carrying the control plane's and nodes'
//! addresses, the kernel switches pod traffic needs, and removing every link a cluster made.

use std::path::Path;
use std::process::Command;

use super::plan::{ClusterPlan, HOST_BRIDGE, LINK_PREFIX, NODE_NETWORK_PREFIX};
use crate::Error;
use crate::process::run_checked;

/// Sysctls pods and Services need: forwarding between the pod bridges, and bridged traffic through
/// iptables so kube-proxy's DNAT applies between pods on one node.
const SYSCTLS: [&str; 2] = [
    "/proc/sys/net/ipv4/ip_forward",
    "/proc/sys/net/bridge/bridge-nf-call-iptables",
];

/// Makes the host bridge with every address of `plan` and turns on the sysctls. A leftover bridge from
/// a crashed cluster is replaced.
pub fn set_up(plan: &ClusterPlan) -> Result<(), Error> {
    for sysctl in SYSCTLS {
        std::fs::write(sysctl, "1").map_err(|e| Error::io(Path::new(sysctl), e))?;
    }
    let _ = delete_link(HOST_BRIDGE);
    ip(&["link", "add", HOST_BRIDGE, "type", "bridge"])?;
    for address in plan.host_addresses() {
        ip(&[
            "addr",
            "add",
            &format!("{address}/{NODE_NETWORK_PREFIX}"),
            "dev",
            HOST_BRIDGE,
        ])?;
    }
    ip(&["link", "set", HOST_BRIDGE, "up"])
}

/// Deletes every link whose name starts with [`LINK_PREFIX`]: the host bridge and the pod bridges the CNI
/// plugin made. Returns the names deleted.
pub fn remove_links() -> Vec<String> {
    let listed = Command::new("ip").args(["-o", "link", "show"]).output();
    let Ok(listed) = listed else {
        return Vec::new();
    };
    let names = cluster_links(&String::from_utf8_lossy(&listed.stdout));
    names
        .into_iter()
        .filter(|name| delete_link(name).is_ok())
        .collect()
}

/// The names of a cluster's links in `ip -o link show` output (`2: fk-up0: <...> ...`; a veth shows as
/// `name@peer`).
pub fn cluster_links(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|line| line.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name))
        .filter(|name| name.starts_with(LINK_PREFIX))
        .map(str::to_string)
        .collect()
}

fn delete_link(name: &str) -> Result<(), Error> {
    ip(&["link", "del", name])
}

fn ip(args: &[&str]) -> Result<(), Error> {
    run_checked(Command::new("ip").args(args)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_clusters_links_are_picked() {
        let output = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536\n\
                      2: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500\n\
                      7: fk-up0: <BROADCAST,MULTICAST,UP> mtu 1500\n\
                      8: fk-up1: <BROADCAST,MULTICAST,UP> mtu 1500\n\
                      9: veth1a2b3c@if3: <BROADCAST> mtu 1500\n\
                      10: fk-srv0: <BROADCAST> mtu 1500\n";
        assert_eq!(cluster_links(output), ["fk-up0", "fk-up1"]);
    }
}
