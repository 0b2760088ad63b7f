//! What a benchmark run measures, as pure functions over the timestamps and /proc texts it collected:
//! throughput, latency percentiles, a process's peak memory and CPU time, and the machine it ran on.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The outcome of one run's pods.
#[derive(Clone, Debug, PartialEq)]
pub struct PodTimings {
    /// Pods seen bound.
    pub bound: usize,
    /// Bound pods per second, from the first create issued to the last binding seen; 0 if none was bound.
    pub pods_per_second: f64,
    /// Median create→bound latency; `None` if no pod was bound.
    pub p50_ms: Option<f64>,
    /// 99th percentile create→bound latency; `None` if no pod was bound.
    pub p99_ms: Option<f64>,
    /// First create issued to last binding seen.
    pub window: Duration,
}

/// Summarises pods by name: when each create was issued and when each was first seen bound.
pub fn summarize(
    created: &HashMap<String, Instant>,
    bound: &HashMap<String, Instant>,
) -> PodTimings {
    let latencies = latencies_ms(created, bound);
    let window = match (created.values().min(), bound.values().max()) {
        (Some(first), Some(last)) => last.saturating_duration_since(*first),
        _ => Duration::ZERO,
    };
    PodTimings {
        bound: bound.len(),
        pods_per_second: throughput(bound.len(), window),
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        window,
    }
}

/// Create→bound latency in milliseconds of every bound pod whose create time is known, sorted ascending.
pub fn latencies_ms(
    created: &HashMap<String, Instant>,
    bound: &HashMap<String, Instant>,
) -> Vec<f64> {
    let mut latencies: Vec<f64> = bound
        .iter()
        .filter_map(|(name, at)| {
            let issued = created.get(name)?;
            Some(at.saturating_duration_since(*issued).as_secs_f64() * 1000.0)
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    latencies
}

/// The nearest-rank `p`th percentile (0 < p ≤ 100) of ascending `sorted`; `None` if it is empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    sorted.get(index).copied()
}

/// `count` events per second over `window`; 0 when the window is empty.
pub fn throughput(count: usize, window: Duration) -> f64 {
    let seconds = window.as_secs_f64();
    if count == 0 || seconds <= 0.0 {
        0.0
    } else {
        count as f64 / seconds
    }
}

/// A process's resource use, read from /proc; `None` where it could not be read (the process had exited).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcessUsage {
    /// Peak resident set size (VmHWM), MiB.
    pub peak_rss_mib: Option<f64>,
    /// User plus system CPU time, seconds.
    pub cpu_seconds: Option<f64>,
}

/// Reads the resource use of process `pid` from /proc/PID/status and /proc/PID/stat.
pub fn process_usage(pid: u32) -> ProcessUsage {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
    ProcessUsage {
        peak_rss_mib: status
            .as_deref()
            .and_then(parse_vm_hwm_kib)
            .map(|kib| kib as f64 / 1024.0),
        cpu_seconds: stat
            .as_deref()
            .and_then(parse_cpu_ticks)
            .map(|ticks| ticks as f64 / clock_ticks_per_second() as f64),
    }
}

/// Requests that change state (`apiserver_request_total` with verb POST, PUT, PATCH, DELETE, DELETECOLLECTION
/// or APPLY) in an apiserver's /metrics text; `None` if the text has no `apiserver_request_total`.
pub fn parse_apiserver_writes(metrics: &str) -> Option<u64> {
    const WRITES: [&str; 6] = [
        "POST",
        "PUT",
        "PATCH",
        "DELETE",
        "DELETECOLLECTION",
        "APPLY",
    ];
    counter_sum(metrics, "apiserver_request_total", |labels| {
        labels
            .split(',')
            .filter_map(|label| label.strip_prefix("verb=\""))
            .any(|verb| WRITES.iter().any(|w| verb.strip_suffix('"') == Some(w)))
    })
}

/// Watches the apiserver closed because their client did not keep up (`apiserver_terminated_watchers_total`),
/// in an apiserver's /metrics text. The counter has no samples until the first such close, so none is 0.
pub fn parse_terminated_watches(metrics: &str) -> u64 {
    counter_sum(metrics, "apiserver_terminated_watchers_total", |_| true).unwrap_or(0)
}

/// The sum of the samples of counter `name` whose labels `keep` accepts; `None` if `name` has no sample.
fn counter_sum(metrics: &str, name: &str, keep: impl Fn(&str) -> bool) -> Option<u64> {
    let mut seen = false;
    let mut sum = 0.0;
    for line in metrics.lines() {
        let Some(rest) = line
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('{'))
        else {
            continue;
        };
        seen = true;
        let Some((labels, value)) = rest.rsplit_once('}') else {
            continue;
        };
        if keep(labels)
            && let Ok(count) = value.trim().parse::<f64>()
        {
            sum += count;
        }
    }
    // Counters are whole numbers written as floats.
    seen.then_some(sum as u64)
}

/// The `VmHWM:` line of /proc/PID/status, in KiB (the kernel writes "kB", meaning KiB).
pub fn parse_vm_hwm_kib(status: &str) -> Option<u64> {
    kib_field(status, "VmHWM:")
}

/// utime + stime (fields 14 and 15 of /proc/PID/stat), in clock ticks. The command name (field 2) may contain
/// spaces and parentheses, so fields are counted after its last `)`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts at field 3 (state), so field N is at index N - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some(utime + stime)
}

/// The kernel's USER_HZ, the unit of /proc/PID/stat's times; 100 if sysconf cannot say.
#[allow(unsafe_code)]
fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf(3) takes an integer and returns one; it touches no memory of ours.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|t| *t > 0).unwrap_or(100)
}

/// The value in KiB of a `Name:   1234 kB` line of a /proc file.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|value| value.parse().ok())
}

/// The machine a benchmark ran on.
#[derive(Clone, Debug, PartialEq)]
pub struct Machine {
    /// CPUs this process may use (what `nproc` prints).
    pub cpus: usize,
    /// Total memory, GiB.
    pub memory_gib: f64,
    /// Kernel release.
    pub kernel: String,
    /// The first CPU's model name.
    pub cpu_model: String,
}

impl Machine {
    /// Reads this machine's description from /proc; unknown parts say "unknown".
    pub fn current() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        Self {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            memory_gib: kib_field(&read("/proc/meminfo"), "MemTotal:")
                .map_or(0.0, |kib| kib as f64 / (1024.0 * 1024.0)),
            kernel: Some(read("/proc/sys/kernel/osrelease").trim().to_string())
                .filter(|k| !k.is_empty())
                .unwrap_or_else(|| "unknown".into()),
            cpu_model: parse_cpu_model(&read("/proc/cpuinfo")).unwrap_or_else(|| "unknown".into()),
        }
    }
}

/// The first `model name` of /proc/cpuinfo.
pub fn parse_cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(base: Instant, ms: u64) -> Instant {
        base + Duration::from_millis(ms)
    }

    #[test]
    fn apiserver_writes_count_only_mutating_verbs() {
        let metrics = r#"# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="POST",version="v1"} 1000
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="status",verb="PATCH",version="v1"} 990
apiserver_request_total{code="409",component="apiserver",dry_run="",group="apps",resource="replicasets",scope="resource",subresource="status",verb="PUT",version="v1"} 7
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="DELETE",version="v1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="LIST",version="v1"} 50
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="WATCH",version="v1"} 4
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="",verb="GET",version="v1"} 12
apiserver_request_duration_seconds_count{verb="POST"} 1000
"#;
        assert_eq!(parse_apiserver_writes(metrics), Some(2000));
        assert_eq!(
            parse_apiserver_writes("process_cpu_seconds_total 3\n"),
            None
        );
    }

    #[test]
    fn terminated_watches_are_summed_over_resources_and_none_is_zero() {
        let metrics = r#"apiserver_terminated_watchers_total{group="",resource="pods"} 53
apiserver_terminated_watchers_total{group="apps",resource="replicasets"} 2
apiserver_request_total{code="200",verb="WATCH"} 9
"#;
        assert_eq!(parse_terminated_watches(metrics), 55);
        assert_eq!(
            parse_terminated_watches("apiserver_request_total{verb=\"GET\"} 1\n"),
            0
        );
    }

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), Some(50.0));
        assert_eq!(percentile(&values, 99.0), Some(99.0));
        assert_eq!(percentile(&values, 100.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 50.0), Some(7.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 50.0), Some(2.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn throughput_of_an_empty_window_is_zero() {
        assert_eq!(throughput(10, Duration::from_secs(2)), 5.0);
        assert_eq!(throughput(0, Duration::from_secs(2)), 0.0);
        assert_eq!(throughput(10, Duration::ZERO), 0.0);
    }

    #[test]
    fn summary_runs_from_first_create_to_last_binding() {
        let base = Instant::now();
        let created: HashMap<String, Instant> = [("a", 0), ("b", 100), ("c", 200)]
            .iter()
            .map(|(n, ms)| (n.to_string(), at(base, *ms)))
            .collect();
        // c is never bound; b is bound 900 ms after it was created.
        let bound: HashMap<String, Instant> = [("a", 500), ("b", 1000)]
            .iter()
            .map(|(n, ms)| (n.to_string(), at(base, *ms)))
            .collect();
        let summary = summarize(&created, &bound);
        assert_eq!(summary.bound, 2);
        assert_eq!(summary.window, Duration::from_millis(1000));
        assert!((summary.pods_per_second - 2.0).abs() < 1e-9);
        assert_eq!(summary.p50_ms, Some(500.0));
        assert_eq!(summary.p99_ms, Some(900.0));
        assert_eq!(latencies_ms(&created, &bound), vec![500.0, 900.0]);
    }

    #[test]
    fn nothing_bound_means_no_latencies() {
        let created = HashMap::from([("a".to_string(), Instant::now())]);
        let summary = summarize(&created, &HashMap::new());
        assert_eq!(summary.bound, 0);
        assert_eq!(summary.pods_per_second, 0.0);
        assert_eq!(summary.p50_ms, None);
        assert_eq!(summary.p99_ms, None);
    }

    #[test]
    fn reads_peak_rss_from_status() {
        let status =
            "Name:\tkube-scheduler\nVmPeak:\t 1300000 kB\nVmHWM:\t   65536 kB\nVmRSS:\t 60000 kB\n";
        assert_eq!(parse_vm_hwm_kib(status), Some(65536));
        assert_eq!(
            parse_vm_hwm_kib("Name:\tzombie\nState:\tZ (zombie)\n"),
            None
        );
    }

    #[test]
    fn reads_cpu_ticks_after_an_awkward_command_name() {
        // Fields 14 and 15 are 250 and 50; the name holds spaces and a parenthesis.
        let stat =
            "4242 (kube sched) ler) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 12 0";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_cpu_ticks("4242 (x) S 1 2"), None);
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn reads_this_process() {
        let usage = process_usage(std::process::id());
        assert!(usage.peak_rss_mib.is_some_and(|mib| mib > 0.0));
        assert!(usage.cpu_seconds.is_some_and(|s| s >= 0.0));
        assert_eq!(process_usage(u32::MAX), ProcessUsage::default());
    }

    #[test]
    fn reads_the_cpu_model() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n";
        assert_eq!(
            parse_cpu_model(cpuinfo).as_deref(),
            Some("Intel(R) Xeon(R) CPU @ 2.20GHz")
        );
        assert_eq!(parse_cpu_model("processor : 0\n"), None);
        let machine = Machine::current();
        assert!(machine.cpus >= 1);
        assert!(!machine.kernel.is_empty());
    }
}
