//! A pod's namespaces. The network namespace is a named netns (`ip netns add fk-<uid>`, so the file is
//! `/run/netns/fk-<uid>` as with CRI runtimes, and `ip netns exec` works on it for debugging); the IPC and
//! UTS namespaces are made by `unshare(1)` and kept alive by bind-mounting their nsfs files as
//! `<state_dir>/<uid>/ipc` and `.../uts`, which containers join by path. No pause process holds them.

use std::path::{Path, PathBuf};

use crate::sandbox::SandboxError;

/// Where `ip netns` keeps named network namespaces.
pub const NETNS_DIR: &str = "/run/netns";

/// Longest hostname the kernel and upstream accept.
const HOSTNAME_MAX: usize = 63;

/// The name of a pod's network namespace.
pub fn netns_name(uid: &str) -> String {
    format!("fk-{uid}")
}

/// The path of a pod's network namespace.
pub fn netns_path(uid: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(netns_name(uid))
}

/// The pod's hostname as upstream computes it: `spec.hostname` if set, else the pod name, cut to 63
/// characters without a trailing '-' or '.' (`spec.subdomain` only affects /etc/hosts).
pub fn pod_hostname(pod_name: &str, spec_hostname: Option<&str>) -> String {
    let name = spec_hostname.filter(|h| !h.is_empty()).unwrap_or(pod_name);
    if name.len() <= HOSTNAME_MAX {
        return name.to_string();
    }
    let cut: String = name.chars().take(HOSTNAME_MAX).collect();
    cut.trim_end_matches(['-', '.']).to_string()
}

/// Creates the pod's network namespace with `lo` up (what the loopback plugin would do); idempotent.
pub async fn create_network(uid: &str, pod: &str) -> Result<PathBuf, SandboxError> {
    let path = netns_path(uid);
    if !is_mount_point(&path)? {
        if path.exists() {
            // A file left by an interrupted `ip netns add`: nothing is mounted on it.
            std::fs::remove_file(&path).map_err(|e| SandboxError::io(&path, e))?;
        }
        run(pod, "ip", &["netns", "add", &netns_name(uid)]).await?;
    }
    run(
        pod,
        "ip",
        &["-n", &netns_name(uid), "link", "set", "lo", "up"],
    )
    .await?;
    Ok(path)
}

/// Deletes the pod's network namespace; already gone is fine.
pub async fn remove_network(uid: &str, pod: &str) -> Result<(), SandboxError> {
    let path = netns_path(uid);
    if !path.exists() {
        return Ok(());
    }
    if !is_mount_point(&path)? {
        return std::fs::remove_file(&path).map_err(|e| SandboxError::io(&path, e));
    }
    run(pod, "ip", &["netns", "delete", &netns_name(uid)]).await
}

/// Creates the pod's IPC and UTS namespaces bound at `ipc` and `uts`, the UTS one named `hostname`;
/// idempotent (existing bindings are kept).
pub async fn create_ipc_uts(
    ipc: &Path,
    uts: &Path,
    hostname: &str,
    pod: &str,
) -> Result<(), SandboxError> {
    let (ipc_bound, uts_bound) = (is_mount_point(ipc)?, is_mount_point(uts)?);
    if ipc_bound && uts_bound {
        return Ok(());
    }
    let mut args = Vec::new();
    for (path, bound, flag) in [(ipc, ipc_bound, "--ipc"), (uts, uts_bound, "--uts")] {
        if !bound {
            // unshare(1) bind-mounts onto an existing file.
            std::fs::write(path, b"").map_err(|e| SandboxError::io(path, e))?;
            args.push(format!("{flag}={}", path.display()));
        }
    }
    if uts_bound {
        // Only IPC is missing; the hostname is already set in the kept UTS namespace.
        args.push("true".to_string());
    } else {
        args.extend(["hostname".to_string(), hostname.to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(pod, "unshare", &args).await
}

/// Unmounts and deletes a bound namespace file; already gone is fine.
pub async fn remove_bound(path: &Path, pod: &str) -> Result<(), SandboxError> {
    if is_mount_point(path)? {
        let target = path.display().to_string();
        run(pod, "umount", &[&target]).await?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SandboxError::io(path, e)),
    }
}

/// Whether something is mounted on `path` (a kept namespace), per /proc/self/mountinfo.
pub fn is_mount_point(path: &Path) -> Result<bool, SandboxError> {
    let mountinfo = "/proc/self/mountinfo";
    let text = std::fs::read_to_string(mountinfo).map_err(|e| SandboxError::io(mountinfo, e))?;
    Ok(mount_points(&text).iter().any(|m| m == path))
}

/// The mount points listed in a mountinfo text (field 5, octal escapes decoded).
pub fn mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape(field)))
        .collect()
}

fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs a helper program; its stderr becomes the error.
async fn run(pod: &str, program: &str, args: &[&str]) -> Result<(), SandboxError> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| SandboxError::Spawn {
            program: program.to_string(),
            source,
        })?;
    if output.status.success() {
        return Ok(());
    }
    Err(SandboxError::Command {
        pod: pod.to_string(),
        command: format!("{program} {}", args.join(" ")),
        status: output.status.to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hostname_is_spec_hostname_or_the_pod_name_cut_as_upstream() {
        assert_eq!(pod_hostname("web-0", None), "web-0");
        assert_eq!(pod_hostname("web-0", Some("")), "web-0");
        assert_eq!(pod_hostname("web-0", Some("db")), "db");
        let long = format!("{}-{}", "a".repeat(62), "b".repeat(10));
        assert_eq!(pod_hostname(&long, None), "a".repeat(62));
        assert_eq!(pod_hostname(&"c".repeat(70), None).len(), 63);
    }

    #[test]
    fn netns_names_carry_the_uid() {
        assert_eq!(netns_path("1234"), PathBuf::from("/run/netns/fk-1234"));
    }

    #[test]
    fn mount_points_are_decoded_from_mountinfo() {
        let text = "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda rw\n\
                    571 25 0:4 net:[4026532] /run/netns/fk-1 rw shared:5 - nsfs nsfs rw\n\
                    600 25 0:4 uts:[4026533] /var/lib/a\\040b/uts rw - nsfs nsfs rw\n";
        assert_eq!(
            mount_points(text),
            ["/", "/run/netns/fk-1", "/var/lib/a b/uts"].map(PathBuf::from)
        );
    }
}
