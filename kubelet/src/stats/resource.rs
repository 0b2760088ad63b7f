//! `/metrics/resource` (pkg/kubelet/metrics/collectors/resource_metrics.go): the summary's CPU and
//! memory as Prometheus text, each sample with its stat's time in milliseconds, written as client_golang
//! writes it (families by name, series by label values, Go's shortest float format).

use std::collections::BTreeMap;
use std::fmt::Write;

use k8s_openapi::jiff::Timestamp;

use super::summary::{ContainerStats, CpuStats, MemoryStats, PodStats, Summary};

/// The metric families: name, type, stability-prefixed help.
const FAMILIES: [(&str, &str, &str); 8] = [
    (
        "container_cpu_usage_seconds_total",
        "counter",
        "[STABLE] Cumulative cpu time consumed by the container in core-seconds",
    ),
    (
        "container_memory_working_set_bytes",
        "gauge",
        "[STABLE] Current working set of the container in bytes",
    ),
    (
        "container_start_time_seconds",
        "gauge",
        "[STABLE] Start time of the container since unix epoch in seconds",
    ),
    (
        "node_cpu_usage_seconds_total",
        "counter",
        "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
    ),
    (
        "node_memory_working_set_bytes",
        "gauge",
        "[STABLE] Current working set of the node in bytes",
    ),
    (
        "pod_cpu_usage_seconds_total",
        "counter",
        "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
    ),
    (
        "pod_memory_working_set_bytes",
        "gauge",
        "[STABLE] Current working set of the pod in bytes",
    ),
    (
        "resource_scrape_error",
        "gauge",
        "[STABLE] 1 if there was an error while getting container metrics, 0 otherwise",
    ),
];

/// One sample: labels (sorted by name, as client_golang writes them), value, optional time.
type Sample = (Vec<(&'static str, String)>, f64, Option<Timestamp>);

/// The `/metrics/resource` text for `summary`, or only `resource_scrape_error 1` when it could not be read.
pub fn render(summary: Option<&Summary>) -> String {
    let mut families: BTreeMap<&str, Vec<Sample>> = BTreeMap::new();
    let mut add =
        |name: &'static str, sample: Sample| families.entry(name).or_default().push(sample);
    add(
        "resource_scrape_error",
        (Vec::new(), f64::from(u8::from(summary.is_none())), None),
    );
    if let Some(summary) = summary {
        let node = &summary.node;
        if let Some(cpu) = cpu_seconds(node.cpu.as_ref()) {
            add(
                "node_cpu_usage_seconds_total",
                (Vec::new(), cpu.0, Some(cpu.1)),
            );
        }
        if let Some(memory) = working_set(node.memory.as_ref()) {
            add(
                "node_memory_working_set_bytes",
                (Vec::new(), memory.0, Some(memory.1)),
            );
        }
        for pod in &summary.pods {
            for container in &pod.containers {
                container_samples(pod, container, &mut add);
            }
            let labels = || {
                vec![
                    ("namespace", pod.pod_ref.namespace.clone()),
                    ("pod", pod.pod_ref.name.clone()),
                ]
            };
            if let Some((value, at)) = cpu_seconds(pod.cpu.as_ref()) {
                add("pod_cpu_usage_seconds_total", (labels(), value, Some(at)));
            }
            if let Some((value, at)) = working_set(pod.memory.as_ref()) {
                add("pod_memory_working_set_bytes", (labels(), value, Some(at)));
            }
        }
    }
    let mut text = String::new();
    for (name, kind, help) in FAMILIES {
        let Some(samples) = families.get_mut(name) else {
            continue;
        };
        samples.sort_by(|a, b| a.0.cmp(&b.0));
        let _ = writeln!(text, "# HELP {name} {help}");
        let _ = writeln!(text, "# TYPE {name} {kind}");
        for (labels, value, at) in samples.iter() {
            text.push_str(name);
            if !labels.is_empty() {
                let pairs: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                let _ = write!(text, "{{{}}}", pairs.join(","));
            }
            let _ = write!(text, " {}", go_float(*value));
            if let Some(at) = at {
                let _ = write!(text, " {}", at.as_millisecond());
            }
            text.push('\n');
        }
    }
    text
}

fn container_samples(
    pod: &PodStats,
    container: &ContainerStats,
    add: &mut impl FnMut(&'static str, Sample),
) {
    let labels = || {
        vec![
            ("container", container.name.clone()),
            ("namespace", pod.pod_ref.namespace.clone()),
            ("pod", pod.pod_ref.name.clone()),
        ]
    };
    let start = container.start_time.0;
    if start.as_second() > 0 {
        let seconds = start.as_nanosecond() as f64 / 1e9;
        add("container_start_time_seconds", (labels(), seconds, None));
    }
    if let Some((value, at)) = cpu_seconds(container.cpu.as_ref()) {
        add(
            "container_cpu_usage_seconds_total",
            (labels(), value, Some(at)),
        );
    }
    if let Some((value, at)) = working_set(container.memory.as_ref()) {
        add(
            "container_memory_working_set_bytes",
            (labels(), value, Some(at)),
        );
    }
}

fn cpu_seconds(cpu: Option<&CpuStats>) -> Option<(f64, Timestamp)> {
    let cpu = cpu?;
    Some((cpu.usage_core_nano_seconds? as f64 / 1e9, cpu.time.0))
}

fn working_set(memory: Option<&MemoryStats>) -> Option<(f64, Timestamp)> {
    let memory = memory?;
    Some((memory.working_set_bytes? as f64, memory.time.0))
}

/// A label value escaped as the text format wants (backslash, quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// `value` as Go's strconv.FormatFloat(v, 'g', -1, 64), which client_golang's text writer uses: the
/// shortest digits, in exponent form below 1e-4 and from 1e6 on (strconv's shortest `%g` threshold).
pub fn go_float(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_string();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if value == 0.0 {
        return "0".to_string();
    }
    // Rust's `{:e}` gives the shortest round-tripping digits, as Go's -1 precision does.
    let scientific = format!("{value:e}");
    let Some((mantissa, exponent)) = scientific.split_once('e') else {
        return scientific;
    };
    let Ok(exponent) = exponent.parse::<i32>() else {
        return scientific;
    };
    if (-4..6).contains(&exponent) {
        return format!("{value}");
    }
    let sign = if exponent < 0 { '-' } else { '+' };
    format!("{mantissa}e{sign}{:02}", exponent.abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::summary::{NodeStats, PodReference};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(ms: i64) -> Time {
        Time(Timestamp::from_millisecond(ms).unwrap())
    }

    fn cpu(ns: u64, ms: i64) -> Option<CpuStats> {
        Some(CpuStats {
            time: at(ms),
            usage_nano_cores: None,
            usage_core_nano_seconds: Some(ns),
        })
    }

    fn memory(bytes: u64, ms: i64) -> Option<MemoryStats> {
        Some(MemoryStats {
            time: at(ms),
            available_bytes: None,
            usage_bytes: None,
            working_set_bytes: Some(bytes),
            rss_bytes: None,
            page_faults: None,
            major_page_faults: None,
        })
    }

    #[test]
    fn floats_are_written_as_go_writes_them() {
        assert_eq!(go_float(0.0), "0");
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(12.5), "12.5");
        assert_eq!(go_float(4_827_394_048.0), "4.827394048e+09");
        assert_eq!(go_float(123_456.0), "123456");
        assert_eq!(go_float(1_000_000.0), "1e+06");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(0.00012), "0.00012");
        assert_eq!(go_float(0.00001234), "1.234e-05");
        assert_eq!(go_float(1_700_000_000.123), "1.700000000123e+09");
    }

    #[test]
    fn samples_carry_their_stat_times_in_milliseconds() {
        let summary = Summary {
            node: NodeStats {
                node_name: "n".into(),
                system_containers: Vec::new(),
                start_time: at(0),
                cpu: cpu(2_500_000_000, 1_700_000_000_123),
                memory: memory(1024, 1_700_000_000_124),
                rlimit: None,
            },
            pods: vec![PodStats {
                pod_ref: PodReference {
                    name: "busy".into(),
                    namespace: "default".into(),
                    uid: "u".into(),
                },
                start_time: at(0),
                containers: vec![ContainerStats {
                    name: "main".into(),
                    start_time: at(1_600_000_000_500),
                    cpu: cpu(1_000_000_000, 1_700_000_000_200),
                    memory: memory(4096, 1_700_000_000_201),
                }],
                cpu: cpu(1_000_000_001, 1_700_000_000_300),
                memory: memory(8192, 1_700_000_000_301),
                network: None,
                process_stats: None,
            }],
        };
        let expected = "\
# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container=\"main\",namespace=\"default\",pod=\"busy\"} 1 1700000000200
# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container=\"main\",namespace=\"default\",pod=\"busy\"} 4096 1700000000201
# HELP container_start_time_seconds [STABLE] Start time of the container since unix epoch in seconds
# TYPE container_start_time_seconds gauge
container_start_time_seconds{container=\"main\",namespace=\"default\",pod=\"busy\"} 1.6000000005e+09
# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 2.5 1700000000123
# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 1024 1700000000124
# HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds
# TYPE pod_cpu_usage_seconds_total counter
pod_cpu_usage_seconds_total{namespace=\"default\",pod=\"busy\"} 1.000000001 1700000000300
# HELP pod_memory_working_set_bytes [STABLE] Current working set of the pod in bytes
# TYPE pod_memory_working_set_bytes gauge
pod_memory_working_set_bytes{namespace=\"default\",pod=\"busy\"} 8192 1700000000301
# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE resource_scrape_error gauge
resource_scrape_error 0
";
        assert_eq!(render(Some(&summary)), expected);
    }

    #[test]
    fn a_failed_read_is_a_scrape_error() {
        assert_eq!(
            render(None),
            "# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container \
             metrics, 0 otherwise\n# TYPE resource_scrape_error gauge\nresource_scrape_error 1\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
