//! A network namespace's interface counters from `/proc/<pid>/net/dev` (what cadvisor reads for a
//! container's network stats).

use super::summary::InterfaceStats;

/// The interface upstream reports inline as a pod's network (network.DefaultInterfaceName).
pub const DEFAULT_INTERFACE: &str = "eth0";

/// Every interface but loopback in a `/proc/net/dev` text; unreadable lines are skipped.
pub fn parse_net_dev(text: &str) -> Vec<InterfaceStats> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, counters) = line.split_once(':')?;
            let name = name.trim();
            if name == "lo" {
                return None;
            }
            let fields: Vec<u64> = counters
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            // Receive: bytes packets errs drop fifo frame compressed multicast; then transmit alike.
            if fields.len() < 16 {
                return None;
            }
            Some(InterfaceStats {
                name: name.to_string(),
                rx_bytes: Some(fields[0]),
                rx_errors: Some(fields[2]),
                tx_bytes: Some(fields[8]),
                tx_errors: Some(fields[10]),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interfaces_but_loopback_with_bytes_and_errors() {
        let text = "Inter-|   Receive |  Transmit\n face |bytes packets errs ...\n\
            \x20   lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n\
            \x20 eth0: 5000 40 2 0 0 0 0 0 3000 30 1 0 0 0 0 0\n\
            broken: 1 2\n";
        let interfaces = parse_net_dev(text);
        assert_eq!(
            interfaces,
            vec![InterfaceStats {
                name: "eth0".into(),
                rx_bytes: Some(5000),
                rx_errors: Some(2),
                tx_bytes: Some(3000),
                tx_errors: Some(1),
            }]
        );
    }
}
