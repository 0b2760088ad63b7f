//! Builds the [`Summary`] from the cgroup tree: the root cgroup for the node, `/kubepods/<qos>/pod<uid>`
//! for each pod and its `<container id>` children for the containers (the paths `kuberuntime::start`
//! gives runc), named by the containers' labels and the pods bound to this node. CPU rates need two
//! samples, so the provider keeps each cgroup's previous CPU sample (a background loop takes one every
//! [`HOUSEKEEPING_INTERVAL`], cadvisor's housekeeping period, so the first request already has a rate).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use tokio_util::sync::CancellationToken;

use super::StatsError;
use super::cgroup::{CgroupUsage, Layout, meminfo_total};
use super::network::{DEFAULT_INTERFACE, parse_net_dev};
use super::summary::{
    ContainerStats, CpuStats, MemoryStats, NetworkStats, NodeStats, PodReference, PodStats,
    ProcessStats, RlimitStats, Summary,
};
use crate::cgroups::QOS_LEVELS;
use crate::kuberuntime::record::{LABEL_CONTAINER_NAME, LABEL_POD_NAME, LABEL_POD_NAMESPACE};
use crate::runtime::ContainerSummary;

/// How often the background loop samples every cgroup's CPU.
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(10);
/// A newer sample replaces the kept one only this much later, so back-to-back requests still get a rate
/// over a meaningful window.
const MIN_WINDOW: SignedDuration = SignedDuration::from_secs(1);
/// The cgroup every pod's cgroup is under.
const PODS_CGROUP: &str = "/kubepods";

/// A cumulative CPU reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuSample {
    /// When it was read.
    pub at: Timestamp,
    /// Cumulative CPU nanoseconds.
    pub cpu_ns: u64,
}

/// The CPU rate between two samples in billionths of a core; `None` without elapsed time or when the
/// counter went back (the cgroup was recreated).
pub fn usage_nano_cores(previous: CpuSample, current: CpuSample) -> Option<u64> {
    let elapsed = u128::try_from(current.at.duration_since(previous.at).as_nanos()).ok()?;
    let used = current.cpu_ns.checked_sub(previous.cpu_ns)?;
    if elapsed == 0 {
        return None;
    }
    u64::try_from(u128::from(used) * 1_000_000_000 / elapsed).ok()
}

/// One pod's cgroup and its running containers' ids, as found in the cgroup tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodCgroup {
    /// The pod's UID.
    pub uid: String,
    /// `/kubepods/<qos>/pod<uid>`.
    pub cgroup: String,
    /// Ids of the containers with processes, each in `<cgroup>/<id>`.
    pub containers: Vec<String>,
}

/// Reads usage from cgroups, keeping the previous CPU sample of each.
pub struct StatsProvider {
    layout: Layout,
    previous: Mutex<HashMap<String, CpuSample>>,
}

impl StatsProvider {
    /// A provider over the cgroups mounted at `mount`.
    pub fn new(mount: &Path) -> Self {
        Self {
            layout: Layout::detect(mount),
            previous: Mutex::default(),
        }
    }

    /// Samples every cgroup's CPU each [`HOUSEKEEPING_INTERVAL`] until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        loop {
            self.sample_all();
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(HOUSEKEEPING_INTERVAL) => {}
            }
        }
    }

    fn sample_all(&self) {
        let mut seen = HashSet::new();
        let mut cgroups = vec!["/".to_string(), PODS_CGROUP.to_string()];
        for pod in self.pod_cgroups() {
            cgroups.extend(pod.containers.iter().map(|c| format!("{}/{c}", pod.cgroup)));
            cgroups.push(pod.cgroup);
        }
        for cgroup in cgroups {
            if let Ok(usage) = self.layout.read(&cgroup) {
                self.cpu_stats(&cgroup, Timestamp::now(), usage.cpu_ns);
            }
            seen.insert(cgroup);
        }
        self.lock().retain(|cgroup, _| seen.contains(cgroup));
    }

    /// The pod cgroups under every QoS level, with their running containers.
    pub fn pod_cgroups(&self) -> Vec<PodCgroup> {
        let mut pods = Vec::new();
        for qos in QOS_LEVELS {
            let level = format!("{PODS_CGROUP}/{qos}");
            for (name, dir) in subdirectories(&self.layout.cpu_dir(&level)) {
                let Some(uid) = name.strip_prefix("pod") else {
                    continue;
                };
                let containers = subdirectories(&dir)
                    .into_iter()
                    .filter(|(_, dir)| process_count(dir) > 0)
                    .map(|(name, _)| name)
                    .collect();
                pods.push(PodCgroup {
                    uid: uid.to_string(),
                    cgroup: format!("{level}/{name}"),
                    containers,
                });
            }
        }
        pods
    }

    /// The summary: the node, and each pod of `pods` (by UID; the containers' labels name pods the
    /// kubelet no longer has) with running `containers`. `only_cpu_and_memory` leaves out network,
    /// process counts and rlimits, as upstream's GetCPUAndMemoryStats.
    pub fn summary(
        &self,
        node_name: &str,
        pods: &[Arc<Pod>],
        containers: &[ContainerSummary],
        only_cpu_and_memory: bool,
    ) -> Result<Summary, StatsError> {
        let boot = boot_time().unwrap_or(Timestamp::UNIX_EPOCH);
        let (cpu, mut memory) = self.read("/")?;
        let capacity = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| meminfo_total(&m));
        if let (Some(capacity), Some(working_set)) = (capacity, memory.working_set_bytes) {
            memory.available_bytes = Some(capacity.saturating_sub(working_set));
        }
        let system_containers = self
            .read(PODS_CGROUP)
            .map(|(cpu, memory)| ContainerStats {
                name: "pods".to_string(),
                start_time: Time(boot),
                cpu: Some(cpu),
                memory: Some(memory),
            })
            .into_iter()
            .collect();
        let node = NodeStats {
            node_name: node_name.to_string(),
            system_containers,
            start_time: Time(boot),
            cpu: Some(cpu),
            memory: Some(memory),
            rlimit: (!only_cpu_and_memory).then(rlimit),
        };
        let by_uid: HashMap<&str, &Pod> = pods
            .iter()
            .filter_map(|p| Some((p.metadata.uid.as_deref()?, p.as_ref())))
            .collect();
        let by_id: HashMap<&str, &ContainerSummary> =
            containers.iter().map(|c| (c.id.as_str(), c)).collect();
        let pods = self
            .pod_cgroups()
            .iter()
            .filter_map(|cgroup| {
                let pod = by_uid.get(cgroup.uid.as_str()).copied();
                self.pod_stats(cgroup, pod, &by_id, only_cpu_and_memory)
            })
            .collect();
        Ok(Summary { node, pods })
    }

    fn pod_stats(
        &self,
        cgroup: &PodCgroup,
        pod: Option<&Pod>,
        containers: &HashMap<&str, &ContainerSummary>,
        only_cpu_and_memory: bool,
    ) -> Option<PodStats> {
        let mut stats = Vec::new();
        let mut label = None;
        for id in &cgroup.containers {
            let Some(summary) = containers.get(id.as_str()) else {
                continue;
            };
            let Ok((cpu, memory)) = self.read(&format!("{}/{id}", cgroup.cgroup)) else {
                continue;
            };
            label.get_or_insert(summary.labels.clone());
            stats.push(ContainerStats {
                name: summary
                    .labels
                    .get(LABEL_CONTAINER_NAME)
                    .cloned()
                    .unwrap_or_default(),
                start_time: Time(
                    summary
                        .created_at
                        .and_then(|t| {
                            Timestamp::from_nanosecond(t.timestamp_nanos_opt()?.into()).ok()
                        })
                        .unwrap_or(Timestamp::UNIX_EPOCH),
                ),
                cpu: Some(cpu),
                memory: Some(memory),
            });
        }
        // A pod whose containers all exited keeps its cgroup for a while: upstream lists running ones.
        let labels = label?;
        let (name, namespace) = match pod {
            Some(pod) => (
                pod.metadata.name.clone().unwrap_or_default(),
                pod.metadata.namespace.clone().unwrap_or_default(),
            ),
            None => (
                labels.get(LABEL_POD_NAME).cloned().unwrap_or_default(),
                labels.get(LABEL_POD_NAMESPACE).cloned().unwrap_or_default(),
            ),
        };
        let start_time = pod
            .and_then(|p| p.status.as_ref()?.start_time.clone())
            .or_else(|| {
                stats
                    .iter()
                    .map(|c| c.start_time.clone())
                    .min_by_key(|t| t.0)
            })
            .unwrap_or(Time(Timestamp::UNIX_EPOCH));
        let (cpu, memory) = self.read(&cgroup.cgroup).ok().unzip();
        let host_network = pod
            .and_then(|p| p.spec.as_ref()?.host_network)
            .unwrap_or(false);
        let (network, process_stats) = if only_cpu_and_memory {
            (None, None)
        } else {
            let dirs: Vec<_> = cgroup
                .containers
                .iter()
                .map(|id| self.layout.cpu_dir(&format!("{}/{id}", cgroup.cgroup)))
                .collect();
            let network = (!host_network)
                .then(|| dirs.iter().find_map(|dir| pod_network(dir)))
                .flatten();
            let count = dirs.iter().map(|dir| process_count(dir)).sum();
            (
                network,
                Some(ProcessStats {
                    process_count: Some(count),
                }),
            )
        };
        Some(PodStats {
            pod_ref: PodReference {
                name,
                namespace,
                uid: cgroup.uid.clone(),
            },
            start_time,
            containers: stats,
            cpu,
            memory,
            network,
            process_stats,
        })
    }

    /// CPU and memory of `cgroup` now.
    fn read(&self, cgroup: &str) -> Result<(CpuStats, MemoryStats), StatsError> {
        let usage = self.layout.read(cgroup)?;
        let now = Timestamp::now();
        Ok((
            self.cpu_stats(cgroup, now, usage.cpu_ns),
            memory_stats(now, &usage),
        ))
    }

    /// CPU stats with the rate since the kept sample, which the new one replaces once [`MIN_WINDOW`]
    /// later.
    fn cpu_stats(&self, cgroup: &str, at: Timestamp, cpu_ns: u64) -> CpuStats {
        let current = CpuSample { at, cpu_ns };
        let mut previous = self.lock();
        let rate = match previous.get(cgroup) {
            Some(kept) => {
                let rate = usage_nano_cores(*kept, current);
                if at.duration_since(kept.at) >= MIN_WINDOW || kept.cpu_ns > cpu_ns {
                    previous.insert(cgroup.to_string(), current);
                }
                rate
            }
            None => {
                previous.insert(cgroup.to_string(), current);
                None
            }
        };
        CpuStats {
            time: Time(at),
            usage_nano_cores: rate,
            usage_core_nano_seconds: Some(cpu_ns),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CpuSample>> {
        self.previous.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The summary's memory stats; availableBytes only under a limit (cadvisor's isMemoryUnlimited).
pub fn memory_stats(at: Timestamp, usage: &CgroupUsage) -> MemoryStats {
    MemoryStats {
        time: Time(at),
        available_bytes: usage
            .limit_bytes
            .map(|limit| limit.saturating_sub(usage.working_set_bytes)),
        usage_bytes: Some(usage.memory_bytes),
        working_set_bytes: Some(usage.working_set_bytes),
        rss_bytes: Some(usage.rss_bytes),
        page_faults: Some(usage.page_faults),
        major_page_faults: Some(usage.major_page_faults),
    }
}

/// The directories in `dir` with their names; none when it cannot be read.
fn subdirectories(dir: &Path) -> Vec<(String, std::path::PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
        .collect()
}

/// How many processes cgroup `dir` holds.
fn process_count(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|procs| procs.lines().filter(|l| !l.trim().is_empty()).count() as u64)
        .unwrap_or(0)
}

/// The network namespace traffic of a process in cgroup `dir`.
fn pod_network(dir: &Path) -> Option<NetworkStats> {
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).ok()?;
    let pid = procs.lines().next()?.trim();
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    let interfaces = parse_net_dev(&text);
    let default = interfaces
        .iter()
        .find(|i| i.name == DEFAULT_INTERFACE)
        .cloned()?;
    Some(NetworkStats {
        time: Time(Timestamp::now()),
        default,
        interfaces,
    })
}

/// The node's process limit and count (upstream: kernel.pid_max and sysinfo's procs).
fn rlimit() -> RlimitStats {
    let max_pid = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let running = crate::sys::process_count().map(i64::from);
    RlimitStats {
        time: Time(Timestamp::now()),
        max_pid,
        running_processes: running,
    }
}

/// When the node booted (`btime` of /proc/stat).
fn boot_time() -> Option<Timestamp> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let seconds = crate::kuberuntime::start_time::boot_time(&stat)?;
    Timestamp::from_second(seconds).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    #[test]
    fn nano_cores_are_cpu_time_over_wall_time() {
        let previous = CpuSample {
            at: at(100),
            cpu_ns: 1_000_000_000,
        };
        let busy = CpuSample {
            at: at(110),
            cpu_ns: 11_000_000_000,
        };
        assert_eq!(usage_nano_cores(previous, busy), Some(1_000_000_000));
        let half = CpuSample {
            at: at(102),
            cpu_ns: 2_000_000_000,
        };
        assert_eq!(usage_nano_cores(previous, half), Some(500_000_000));
        assert_eq!(usage_nano_cores(previous, previous), None);
        let reset = CpuSample {
            at: at(105),
            cpu_ns: 5,
        };
        assert_eq!(usage_nano_cores(previous, reset), None);
    }

    #[test]
    fn the_kept_sample_is_replaced_only_after_the_minimum_window() {
        let provider = StatsProvider::new(Path::new("/nonexistent"));
        assert_eq!(provider.cpu_stats("/a", at(100), 0).usage_nano_cores, None);
        // Half a second later: a rate against the kept sample, which stays.
        let soon = at(100) + SignedDuration::from_millis(500);
        assert_eq!(
            provider.cpu_stats("/a", soon, 250_000_000).usage_nano_cores,
            Some(500_000_000)
        );
        let later = provider.cpu_stats("/a", at(102), 2_000_000_000);
        assert_eq!(later.usage_nano_cores, Some(1_000_000_000));
        assert_eq!(later.usage_core_nano_seconds, Some(2_000_000_000));
        // Now kept: 102 s.
        assert_eq!(
            provider
                .cpu_stats("/a", at(104), 3_000_000_000)
                .usage_nano_cores,
            Some(500_000_000)
        );
    }

    #[test]
    fn pod_cgroups_list_running_containers_under_each_qos_level() {
        let dir = tempfile::tempdir().unwrap();
        let level = dir.path().join("cpuacct/kubepods/besteffort");
        let running = level.join("podu1/c1");
        let exited = level.join("podu1/c2");
        std::fs::create_dir_all(&running).unwrap();
        std::fs::create_dir_all(&exited).unwrap();
        std::fs::write(running.join("cgroup.procs"), "12\n13\n").unwrap();
        std::fs::write(exited.join("cgroup.procs"), "").unwrap();
        std::fs::create_dir_all(dir.path().join("cpuacct/kubepods/burstable/podu2")).unwrap();
        std::fs::create_dir_all(dir.path().join("cpuacct/kubepods/burstable/notapod")).unwrap();
        let provider = StatsProvider::new(dir.path());
        let mut pods = provider.pod_cgroups();
        pods.sort_by(|a, b| a.uid.cmp(&b.uid));
        assert_eq!(
            pods,
            vec![
                PodCgroup {
                    uid: "u1".into(),
                    cgroup: "/kubepods/besteffort/podu1".into(),
                    containers: vec!["c1".into()],
                },
                PodCgroup {
                    uid: "u2".into(),
                    cgroup: "/kubepods/burstable/podu2".into(),
                    containers: Vec::new(),
                },
            ]
        );
        assert_eq!(process_count(&running), 2);
    }

    #[test]
    fn memory_is_available_only_under_a_limit() {
        let usage = CgroupUsage {
            memory_bytes: 100,
            working_set_bytes: 60,
            limit_bytes: Some(1000),
            ..CgroupUsage::default()
        };
        let stats = memory_stats(at(1), &usage);
        assert_eq!(stats.available_bytes, Some(940));
        assert_eq!(stats.working_set_bytes, Some(60));
        let unlimited = CgroupUsage {
            limit_bytes: None,
            ..usage
        };
        assert_eq!(memory_stats(at(1), &unlimited).available_bytes, None);
    }
}
