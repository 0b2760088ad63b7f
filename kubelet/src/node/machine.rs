//! What cAdvisor tells upstream's kubelet about the machine, read from /proc, /sys and /etc.

use std::path::Path;

/// The machine facts the node status reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MachineInfo {
    /// Logical CPUs.
    pub num_cores: i64,
    /// Physical memory in bytes.
    pub memory_bytes: i64,
    /// Bytes of the filesystem holding the kubelet's root directory.
    pub ephemeral_storage_bytes: i64,
    /// Huge pages by page size in KiB, in bytes (cAdvisor reports each size the kernel offers).
    pub huge_pages: Vec<(u64, i64)>,
    /// /etc/machine-id.
    pub machine_id: String,
    /// The DMI product UUID, when the machine has one.
    pub system_uuid: String,
    /// The kernel's boot id.
    pub boot_id: String,
    /// `uname -r`.
    pub kernel_version: String,
    /// PRETTY_NAME of /etc/os-release.
    pub os_image: String,
}

impl MachineInfo {
    /// Reads the machine's facts; `root_dir` is the kubelet's root directory (its filesystem is the node's
    /// ephemeral storage). Facts that cannot be read are left empty, as cAdvisor does.
    pub fn read(root_dir: &Path) -> Self {
        let text = |path: &str| {
            std::fs::read_to_string(path)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        Self {
            num_cores: std::thread::available_parallelism()
                .map(|n| n.get() as i64)
                .unwrap_or(1),
            memory_bytes: mem_total_bytes(&text("/proc/meminfo")).unwrap_or(0),
            ephemeral_storage_bytes: filesystem_bytes(root_dir).unwrap_or(0),
            huge_pages: huge_pages(Path::new("/sys/kernel/mm/hugepages")),
            machine_id: text("/etc/machine-id"),
            system_uuid: text("/sys/class/dmi/id/product_uuid"),
            boot_id: text("/proc/sys/kernel/random/boot_id"),
            kernel_version: text("/proc/sys/kernel/osrelease"),
            os_image: pretty_name(&text("/etc/os-release")),
        }
    }
}

/// MemTotal of /proc/meminfo in bytes.
fn mem_total_bytes(meminfo: &str) -> Option<i64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// PRETTY_NAME of an os-release file, unquoted; "Linux" when absent, as cAdvisor.
fn pretty_name(os_release: &str) -> String {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".to_string())
}

/// Each huge page size the kernel offers (KiB) with the bytes reserved in pages of that size.
fn huge_pages(dir: &Path) -> Vec<(u64, i64)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut sizes: Vec<(u64, i64)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let kib: u64 = name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            let count: i64 = std::fs::read_to_string(entry.path().join("nr_hugepages"))
                .ok()?
                .trim()
                .parse()
                .ok()?;
            Some((kib, count.saturating_mul(kib as i64 * 1024)))
        })
        .collect();
    sizes.sort_unstable();
    sizes
}

/// The size of the filesystem holding `path` (the nearest existing ancestor when it does not exist yet).
fn filesystem_bytes(path: &Path) -> Option<i64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let stats = crate::sys::statvfs(existing).ok()?;
    i64::try_from(stats.blocks.checked_mul(stats.fragment_size)?).ok()
}

/// The resource name of a huge page size (`hugepages-2Mi`), as upstream's `HugePageResourceName`.
pub fn huge_page_resource(kib: u64) -> String {
    format!(
        "hugepages-{}",
        component_base::quantity::format_binary(kib as i64 * 1024)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_and_etc_files_parse() {
        assert_eq!(
            mem_total_bytes("MemTotal:       24684084 kB\nMemFree: 1 kB\n"),
            Some(24_684_084 * 1024)
        );
        assert_eq!(mem_total_bytes("nothing"), None);
        assert_eq!(
            pretty_name("NAME=x\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"),
            "Debian GNU/Linux 12 (bookworm)"
        );
        assert_eq!(pretty_name(""), "Linux");
        assert_eq!(huge_page_resource(2048), "hugepages-2Mi");
        assert_eq!(huge_page_resource(1_048_576), "hugepages-1Gi");
    }

    #[test]
    fn this_machine_is_read() {
        let info = MachineInfo::read(Path::new("/var/lib/kubelet-does-not-exist/x"));
        assert!(info.num_cores >= 1);
        assert!(info.memory_bytes > 0);
        assert!(
            info.ephemeral_storage_bytes > 0,
            "the root filesystem's size"
        );
    }
}
