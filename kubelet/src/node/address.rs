//! Choosing the node's IP when `--node-ip` is not given, as upstream: the node name's DNS address if it has
//! a usable one, else the address of the interface holding the default route.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};

/// Whether upstream's validateNodeIP would accept `ip` as a node IP.
fn usable(ip: &IpAddr) -> bool {
    !(ip.is_loopback() || ip.is_multicast() || ip.is_unspecified() || is_link_local(ip))
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// The node's IPs: the given ones, or one found for `node_name`.
pub async fn node_ips(given: &[IpAddr], node_name: &str) -> Vec<IpAddr> {
    if !given.is_empty() {
        return given.to_vec();
    }
    if let Ok(ip) = node_name.parse::<IpAddr>() {
        return vec![ip];
    }
    if let Ok(found) = tokio::net::lookup_host((node_name, 0)).await {
        let found: Vec<IpAddr> = found.map(|a| a.ip()).filter(usable).collect();
        if let Some(ip) = found.iter().find(|ip| ip.is_ipv4()).or(found.first()) {
            return vec![*ip];
        }
    }
    default_route_ip().into_iter().collect()
}

/// The source address the kernel picks towards a public address: the default route's interface address.
/// Connecting a UDP socket sends nothing.
fn default_route_ip() -> Option<IpAddr> {
    let socket = UdpSocket::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)).ok()?;
    socket
        .connect(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)), 53))
        .ok()?;
    Some(socket.local_addr().ok()?.ip()).filter(usable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn given_ips_win_and_names_that_are_ips_are_used() {
        let given: IpAddr = "10.1.2.3".parse().expect("ip");
        assert_eq!(node_ips(&[given], "node-1").await, vec![given]);
        assert_eq!(
            node_ips(&[], "10.9.9.9").await,
            vec!["10.9.9.9".parse::<IpAddr>().expect("ip")]
        );
    }

    #[test]
    fn loopback_and_link_local_are_not_node_ips() {
        for ip in [
            "127.0.0.1",
            "169.254.1.1",
            "fe80::1",
            "0.0.0.0",
            "224.0.0.1",
        ] {
            assert!(!usable(&ip.parse().expect("ip")), "{ip}");
        }
        assert!(usable(&"10.0.0.1".parse().expect("ip")));
    }
}
