//! CPU and memory of one cgroup, read as cadvisor's libcontainer handler reads them: cgroup v1
//! (`cpuacct.usage`, `memory.usage_in_bytes`, `memory.stat`) or v2 (`cpu.stat`, `memory.current`,
//! `memory.stat`), with cadvisor's working set = usage − inactive file pages, floored at 0.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::StatsError;

/// cadvisor's maxMemorySize: a limit above it means unlimited.
const UNLIMITED: u64 = 1 << 62;

/// CPU and memory of a cgroup at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupUsage {
    /// Cumulative CPU time, all cores, in nanoseconds.
    pub cpu_ns: u64,
    /// Memory in use, page cache included.
    pub memory_bytes: u64,
    /// usage − inactive file pages: what cannot be reclaimed cheaply (what eviction and `kubectl top` use).
    pub working_set_bytes: u64,
    /// Anonymous memory and swap cache.
    pub rss_bytes: u64,
    /// Page faults.
    pub page_faults: u64,
    /// Major page faults.
    pub major_page_faults: u64,
    /// The memory limit, when there is one.
    pub limit_bytes: Option<u64>,
}

/// How the host mounts cgroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// One hierarchy per controller under the mount (`cpuacct/`, `memory/`), as on this project's hosts.
    V1 {
        /// Usually `/sys/fs/cgroup`.
        mount: PathBuf,
    },
    /// The unified hierarchy at the mount.
    V2 {
        /// Usually `/sys/fs/cgroup`.
        mount: PathBuf,
    },
}

impl Layout {
    /// The layout of the cgroups mounted at `mount`: v2 when the mount itself lists controllers.
    pub fn detect(mount: &Path) -> Self {
        let mount = mount.to_path_buf();
        if mount.join("cgroup.controllers").is_file() {
            Self::V2 { mount }
        } else {
            Self::V1 { mount }
        }
    }

    /// The directory of `cgroup` (`/kubepods/...`, `/` for the root) in the hierarchy that accounts CPU,
    /// where a pod's containers are listed.
    pub fn cpu_dir(&self, cgroup: &str) -> PathBuf {
        match self {
            Self::V1 { mount } => join(&mount.join("cpuacct"), cgroup),
            Self::V2 { mount } => join(mount, cgroup),
        }
    }

    /// Reads `cgroup`'s CPU and memory; `meminfo` stands in for the v2 root, which has no `memory.current`.
    pub fn read(&self, cgroup: &str) -> Result<CgroupUsage, StatsError> {
        match self {
            Self::V1 { mount } => {
                let cpu = join(&mount.join("cpuacct"), cgroup);
                let memory = join(&mount.join("memory"), cgroup);
                let stat = parse_flat_keyed(&read(&memory.join("memory.stat"))?);
                Ok(v1_usage(
                    parse_u64(
                        &cpu.join("cpuacct.usage"),
                        &read(&cpu.join("cpuacct.usage"))?,
                    )?,
                    parse_u64(
                        &memory.join("memory.usage_in_bytes"),
                        &read(&memory.join("memory.usage_in_bytes"))?,
                    )?,
                    &stat,
                    read(&memory.join("memory.limit_in_bytes"))
                        .ok()
                        .and_then(|s| s.trim().parse().ok()),
                ))
            }
            Self::V2 { mount } => {
                let dir = join(mount, cgroup);
                let cpu = parse_flat_keyed(&read(&dir.join("cpu.stat"))?);
                let stat = parse_flat_keyed(&read(&dir.join("memory.stat"))?);
                let current = match read(&dir.join("memory.current")) {
                    Ok(text) => parse_u64(&dir.join("memory.current"), &text)?,
                    Err(_) => meminfo_used(&read(Path::new("/proc/meminfo"))?),
                };
                let max = read(&dir.join("memory.max")).ok();
                Ok(v2_usage(&cpu, current, &stat, max.as_deref()))
            }
        }
    }
}

/// `dir` joined with an absolute cgroup path.
fn join(dir: &Path, cgroup: &str) -> PathBuf {
    dir.join(cgroup.trim_start_matches('/'))
}

fn read(path: &Path) -> Result<String, StatsError> {
    std::fs::read_to_string(path).map_err(|source| StatsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_u64(path: &Path, text: &str) -> Result<u64, StatsError> {
    text.trim().parse().map_err(|_| StatsError::Parse {
        path: path.to_path_buf(),
        text: text.trim().chars().take(64).collect(),
    })
}

/// A flat-keyed cgroup file (`memory.stat`, `cpu.stat`): `key value` per line; bad lines are skipped.
pub fn parse_flat_keyed(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(' ')?;
            Some((key.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

/// cgroup v1 usage: memory.stat's hierarchical `total_*` counters (cadvisor's setMemoryStats).
pub fn v1_usage(
    cpu_ns: u64,
    memory_bytes: u64,
    stat: &HashMap<String, u64>,
    limit: Option<u64>,
) -> CgroupUsage {
    let get = |key: &str| stat.get(key).copied().unwrap_or(0);
    CgroupUsage {
        cpu_ns,
        memory_bytes,
        working_set_bytes: memory_bytes.saturating_sub(get("total_inactive_file")),
        rss_bytes: get("total_rss"),
        page_faults: get("total_pgfault"),
        major_page_faults: get("total_pgmajfault"),
        limit_bytes: limit.filter(|l| *l <= UNLIMITED),
    }
}

/// cgroup v2 usage: `usage_usec` of cpu.stat, `anon` as rss; `memory.max` is `max` when unlimited.
pub fn v2_usage(
    cpu: &HashMap<String, u64>,
    memory_bytes: u64,
    stat: &HashMap<String, u64>,
    max: Option<&str>,
) -> CgroupUsage {
    let get = |key: &str| stat.get(key).copied().unwrap_or(0);
    CgroupUsage {
        cpu_ns: cpu
            .get("usage_usec")
            .copied()
            .unwrap_or(0)
            .saturating_mul(1000),
        memory_bytes,
        working_set_bytes: memory_bytes.saturating_sub(get("inactive_file")),
        rss_bytes: get("anon"),
        page_faults: get("pgfault"),
        major_page_faults: get("pgmajfault"),
        limit_bytes: max
            .and_then(|m| m.trim().parse().ok())
            .filter(|l| *l <= UNLIMITED),
    }
}

/// `MemTotal` of /proc/meminfo in bytes.
pub fn meminfo_total(meminfo: &str) -> Option<u64> {
    meminfo_kib(meminfo, "MemTotal:").map(|kib| kib * 1024)
}

/// MemTotal − MemFree of /proc/meminfo in bytes: the v2 root's usage.
fn meminfo_used(meminfo: &str) -> u64 {
    let total = meminfo_kib(meminfo, "MemTotal:").unwrap_or(0);
    let free = meminfo_kib(meminfo, "MemFree:").unwrap_or(0);
    total.saturating_sub(free) * 1024
}

fn meminfo_kib(meminfo: &str, key: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1_STAT: &str = "cache 10854400\nrss 9281536\ntotal_cache 4445679616\n\
        total_rss 385794048\ntotal_pgfault 1036176498\ntotal_pgmajfault 257679\n\
        total_inactive_file 2722754560\ninactive_file 16384\n";

    #[test]
    fn v1_working_set_is_usage_minus_total_inactive_file() {
        let usage = v1_usage(
            52880032434597,
            4827394048,
            &parse_flat_keyed(V1_STAT),
            Some(9223372036854771712),
        );
        assert_eq!(usage.cpu_ns, 52880032434597);
        assert_eq!(usage.working_set_bytes, 4827394048 - 2722754560);
        assert_eq!(usage.rss_bytes, 385794048);
        assert_eq!(usage.page_faults, 1036176498);
        assert_eq!(usage.major_page_faults, 257679);
        assert_eq!(usage.limit_bytes, None, "v1's unlimited is a huge number");
    }

    #[test]
    fn working_set_is_floored_at_zero() {
        let usage = v1_usage(
            1,
            100,
            &parse_flat_keyed("total_inactive_file 4096\n"),
            Some(1 << 20),
        );
        assert_eq!(usage.working_set_bytes, 0);
        assert_eq!(usage.limit_bytes, Some(1 << 20));
    }

    #[test]
    fn v2_reads_usage_usec_anon_and_inactive_file() {
        let cpu = parse_flat_keyed("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n");
        let stat = parse_flat_keyed("anon 4096\nfile 8192\ninactive_file 1024\npgfault 7\n");
        let usage = v2_usage(&cpu, 10240, &stat, Some("max\n"));
        assert_eq!(usage.cpu_ns, 1_500_000);
        assert_eq!(usage.working_set_bytes, 9216);
        assert_eq!(usage.rss_bytes, 4096);
        assert_eq!(usage.page_faults, 7);
        assert_eq!(usage.limit_bytes, None);
        assert_eq!(
            v2_usage(&cpu, 1, &stat, Some("536870912\n")).limit_bytes,
            Some(536870912)
        );
    }

    #[test]
    fn flat_keyed_files_skip_lines_they_cannot_read() {
        let parsed = parse_flat_keyed("a 1\nb x\n\nc 3 \nnoval\n");
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed["c"], 3);
    }

    #[test]
    fn meminfo_gives_total_and_used_bytes() {
        let meminfo = "MemTotal:       16384 kB\nMemFree:         4096 kB\nMemAvailable: 8192 kB\n";
        assert_eq!(meminfo_total(meminfo), Some(16384 * 1024));
        assert_eq!(meminfo_used(meminfo), 12288 * 1024);
    }

    #[test]
    fn layouts_read_a_cgroup_from_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let cpu = dir.path().join("cpuacct/kubepods/podu");
        let memory = dir.path().join("memory/kubepods/podu");
        std::fs::create_dir_all(&cpu).unwrap();
        std::fs::create_dir_all(&memory).unwrap();
        std::fs::write(cpu.join("cpuacct.usage"), "123\n").unwrap();
        std::fs::write(memory.join("memory.usage_in_bytes"), "4096\n").unwrap();
        std::fs::write(memory.join("memory.stat"), "total_inactive_file 1024\n").unwrap();
        let layout = Layout::detect(dir.path());
        assert!(matches!(layout, Layout::V1 { .. }));
        let usage = layout.read("/kubepods/podu").unwrap();
        assert_eq!((usage.cpu_ns, usage.working_set_bytes), (123, 3072));
        assert_eq!(layout.cpu_dir("/kubepods/podu"), cpu);
        let missing = layout.read("/kubepods/gone").unwrap_err().to_string();
        assert!(missing.contains("/kubepods/gone/"), "{missing}");

        std::fs::write(dir.path().join("cgroup.controllers"), "cpu memory\n").unwrap();
        let v2 = dir.path().join("kubepods/podu");
        std::fs::create_dir_all(&v2).unwrap();
        std::fs::write(v2.join("cpu.stat"), "usage_usec 2\n").unwrap();
        std::fs::write(v2.join("memory.current"), "100\n").unwrap();
        std::fs::write(v2.join("memory.stat"), "inactive_file 10\nanon 50\n").unwrap();
        let layout = Layout::detect(dir.path());
        let usage = layout.read("/kubepods/podu").unwrap();
        assert_eq!((usage.cpu_ns, usage.working_set_bytes), (2000, 90));
    }
}
