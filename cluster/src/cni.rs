//! The CNI network configuration local clusters and tests give their kubelets: the distribution's
//! `bridge` plugin with `host-local` IPAM, then `portmap` for hostPorts. `loopback` is not in the list:
//! the kubelet brings `lo` up in each pod's network namespace itself, as libcni's callers run it apart.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::Error;

/// The file [`write_bridge_conflist`] writes; `10-` so it sorts before most distribution examples.
pub const CONFLIST: &str = "10-ferrokube.conflist";

/// The network's name (host-local keeps its allocations in `<dataDir>/<name>/`).
pub const NETWORK: &str = "ferrokube";

/// The CNI version: the plugins of Debian bookworm's containernetworking-plugins (1.1.1) support 1.0.0.
pub const CNI_VERSION: &str = "1.0.0";

/// Where host-local keeps its allocations for a conflist written in `dir`: inside `dir`, so tests never
/// share IPAM state with the host's /var/lib/cni.
pub fn ipam_data_dir(dir: &Path) -> PathBuf {
    dir.join("ipam")
}

/// The conflist for `bridge` over `pod_cidr`, with host-local's state in `data_dir`.
pub fn bridge_conflist(bridge: &str, pod_cidr: &str, data_dir: &Path) -> Value {
    let default_route = if pod_cidr.contains(':') {
        "::/0"
    } else {
        "0.0.0.0/0"
    };
    json!({
        "cniVersion": CNI_VERSION,
        "name": NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{ "subnet": pod_cidr }]],
                    "routes": [{ "dst": default_route }],
                    "dataDir": data_dir,
                }
            },
            {
                "type": "portmap",
                "capabilities": { "portMappings": true },
                "snat": true
            }
        ]
    })
}

/// Writes `dir/10-ferrokube.conflist` for `bridge` over `pod_cidr` and returns its path.
pub fn write_bridge_conflist(dir: &Path, bridge: &str, pod_cidr: &str) -> Result<PathBuf, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join(CONFLIST);
    let conflist = bridge_conflist(bridge, pod_cidr, &ipam_data_dir(dir));
    let mut text = serde_json::to_string_pretty(&conflist).map_err(|e| {
        Error::io(
            &path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        )
    })?;
    text.push('\n');
    std::fs::write(&path, text).map_err(|e| Error::io(&path, e))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conflist_is_bridge_then_portmap_with_ipam_state_in_the_dir() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_bridge_conflist(dir.path(), "fk-test0", "10.250.0.0/24").unwrap();
        assert_eq!(path, dir.path().join(CONFLIST));
        let list: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(list["cniVersion"], "1.0.0");
        assert_eq!(list["name"], NETWORK);
        let plugins = list["plugins"].as_array().unwrap();
        let types: Vec<_> = plugins
            .iter()
            .map(|p| p["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["bridge", "portmap"]);
        let bridge = &plugins[0];
        assert_eq!(bridge["bridge"], "fk-test0");
        assert_eq!(bridge["isGateway"], true);
        assert_eq!(bridge["ipMasq"], true);
        assert_eq!(bridge["hairpinMode"], true);
        assert_eq!(bridge["ipam"]["type"], "host-local");
        assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], "10.250.0.0/24");
        assert_eq!(bridge["ipam"]["routes"][0]["dst"], "0.0.0.0/0");
        assert_eq!(
            bridge["ipam"]["dataDir"],
            dir.path().join("ipam").display().to_string()
        );
        assert_eq!(plugins[1]["capabilities"]["portMappings"], true);
        assert_eq!(plugins[1]["snat"], true);
    }

    #[test]
    fn an_ipv6_cidr_gets_an_ipv6_default_route() {
        let list = bridge_conflist("b", "fd00:10::/64", Path::new("/x"));
        assert_eq!(list["plugins"][0]["ipam"]["routes"][0]["dst"], "::/0");
    }
}
