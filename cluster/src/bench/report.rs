//! The scheduler benchmark's results, as `scheduler.json` (machine-readable) and `scheduler.md` (a table with
//! the ferrokube/upstream ratio, the machine and the command line).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::measure::Machine;

/// `scheduler.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub workload: Workload,
    pub results: Vec<ImplementationResult>,
}

/// What every implementation was given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    pub nodes: usize,
    pub pods: usize,
    pub qps: f64,
    pub burst: u32,
}

/// One implementation's numbers. `None` (JSON null) means not measured: no pod was bound, or the process had
/// exited before its usage could be read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImplementationResult {
    pub implementation: String,
    pub bound: usize,
    pub pods_per_second: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    pub cpu_seconds: Option<f64>,
}

/// `value` rounded to `decimals` places, so the files do not carry meaningless digits.
pub fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

impl Report {
    /// The result of `implementation`, if it ran.
    pub fn result(&self, implementation: &str) -> Option<&ImplementationResult> {
        self.results
            .iter()
            .find(|r| r.implementation == implementation)
    }

    /// `scheduler.json`: pretty-printed, with a final newline.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self).map(|text| text + "\n")
    }

    /// `scheduler.md`. `notes` are lines about runs that did not finish normally.
    pub fn to_markdown(&self, machine: &Machine, command_line: &str, notes: &[String]) -> String {
        let w = &self.workload;
        let mut md = String::new();
        let _ = writeln!(md, "# Scheduler benchmark\n");
        let _ = writeln!(
            md,
            "Workload: {} nodes (4 CPU, 32Gi, 110 pods each), {} pods (100m CPU, 500Mi each), \
             client qps {} burst {}; Kubernetes {} control plane.\n",
            w.nodes,
            w.pods,
            w.qps,
            w.burst,
            component_base::version::KUBERNETES_VERSION
        );

        let columns: Vec<&ImplementationResult> = self.results.iter().collect();
        let ratio = self.result("ferrokube").zip(self.result("upstream"));
        let mut header = String::from("| Metric |");
        let mut rule = String::from("|---|");
        for result in &columns {
            let _ = write!(header, " {} |", result.implementation);
            rule.push_str("---:|");
        }
        if ratio.is_some() {
            header.push_str(" ferrokube / upstream |");
            rule.push_str("---:|");
        }
        header.push_str(" Better |");
        rule.push_str("---|");
        let _ = writeln!(md, "{header}\n{rule}");

        // Latency, memory and CPU of a run that stopped early cover different work, so are not compared.
        let comparable =
            ratio.is_some_and(|(ours, theirs)| ours.bound == w.pods && theirs.bound == w.pods);
        let metrics: [(String, Metric, &str, bool); 6] = [
            (
                format!("Pods bound (of {})", w.pods),
                |r| Some(r.bound as f64),
                "higher",
                true,
            ),
            (
                "Throughput (pods/s)".into(),
                |r| Some(r.pods_per_second),
                "higher",
                true,
            ),
            (
                "Create→bound p50 (ms)".into(),
                |r| r.p50_ms,
                "lower",
                comparable,
            ),
            (
                "Create→bound p99 (ms)".into(),
                |r| r.p99_ms,
                "lower",
                comparable,
            ),
            (
                "Peak RSS (MiB)".into(),
                |r| r.peak_rss_mib,
                "lower",
                comparable,
            ),
            (
                "CPU time (s)".into(),
                |r| r.cpu_seconds,
                "lower",
                comparable,
            ),
        ];
        for (name, value, better, compare) in metrics {
            let mut row = format!("| {name} |");
            for result in &columns {
                let _ = write!(row, " {} |", cell(value(result)));
            }
            if let Some((ours, theirs)) = ratio {
                let text = if compare {
                    ratio_cell(value(ours), value(theirs))
                } else {
                    "—".into()
                };
                let _ = write!(row, " {text} |");
            }
            let _ = writeln!(row, " {better} |");
            md.push_str(&row);
        }
        md.push('\n');
        let _ = writeln!(
            md,
            "Throughput counts bound pods from the first pod created to the last binding seen; latency runs from \
             issuing a pod's create to first seeing it with `spec.nodeName` set; peak RSS is the scheduler \
             process's VmHWM and CPU time its utime + stime, both read just before it is stopped. \
             \"—\" means not measured, or, in the ratio column, not comparable: latency, memory and CPU are \
             compared only when both bound every pod.\n"
        );
        append_footer(&mut md, notes, machine, command_line);
        md
    }
}

/// The end every benchmark's Markdown shares: notes on runs that did not finish, the machine, the command.
pub fn append_footer(md: &mut String, notes: &[String], machine: &Machine, command_line: &str) {
    if !notes.is_empty() {
        let _ = writeln!(md, "## Notes\n");
        for note in notes {
            let _ = writeln!(md, "- {note}");
        }
        md.push('\n');
    }
    let _ = writeln!(md, "## Machine\n");
    let _ = writeln!(md, "- CPUs (nproc): {}", machine.cpus);
    let _ = writeln!(md, "- Memory: {:.1} GiB", machine.memory_gib);
    let _ = writeln!(md, "- Kernel: {}", machine.kernel);
    let _ = writeln!(md, "- CPU: {}\n", machine.cpu_model);
    let _ = writeln!(md, "## Command\n\n```\n{command_line}\n```");
}

type Metric = fn(&ImplementationResult) -> Option<f64>;

/// A table cell: the value, or a dash when not measured.
pub fn cell(value: Option<f64>) -> String {
    match value {
        Some(v) if v.fract() == 0.0 => format!("{v:.0}"),
        Some(v) => format!("{v}"),
        None => "—".into(),
    }
}

/// The ferrokube/upstream ratio cell.
pub fn ratio_cell(ours: Option<f64>, theirs: Option<f64>) -> String {
    match (ours, theirs) {
        (Some(a), Some(b)) if b != 0.0 => format!("{:.2}", a / b),
        _ => "—".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            workload: Workload {
                nodes: 1000,
                pods: 5000,
                qps: 5000.0,
                burst: 5000,
            },
            results: vec![
                ImplementationResult {
                    implementation: "ferrokube".into(),
                    bound: 0,
                    pods_per_second: 0.0,
                    p50_ms: None,
                    p99_ms: None,
                    peak_rss_mib: Some(20.5),
                    cpu_seconds: Some(1.25),
                },
                ImplementationResult {
                    implementation: "upstream".into(),
                    bound: 5000,
                    pods_per_second: 250.0,
                    p50_ms: Some(12.5),
                    p99_ms: Some(80.0),
                    peak_rss_mib: Some(82.0),
                    cpu_seconds: Some(5.0),
                },
            ],
        }
    }

    fn machine() -> Machine {
        Machine {
            cpus: 2,
            memory_gib: 23.4,
            kernel: "6.1.0".into(),
            cpu_model: "Test CPU".into(),
        }
    }

    #[test]
    fn json_has_the_documented_shape_and_round_trips() {
        let report = sample();
        let json = report.to_json().unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);

        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["workload"]["nodes"], 1000);
        assert_eq!(value["workload"]["pods"], 5000);
        assert_eq!(value["workload"]["qps"], 5000.0);
        assert_eq!(value["workload"]["burst"], 5000);
        let upstream = &value["results"][1];
        let mut keys: Vec<&str> = upstream
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "bound",
                "cpu_seconds",
                "implementation",
                "p50_ms",
                "p99_ms",
                "peak_rss_mib",
                "pods_per_second"
            ]
        );
        assert_eq!(upstream["implementation"], "upstream");
        assert_eq!(upstream["pods_per_second"], 250.0);
        assert!(value["results"][0]["p50_ms"].is_null());
    }

    #[test]
    fn markdown_has_ratios_machine_and_command() {
        let md = sample().to_markdown(
            &machine(),
            "ferrokube bench scheduler",
            &["ferrokube: timed out".into()],
        );
        assert!(
            md.contains("| Metric | ferrokube | upstream | ferrokube / upstream | Better |"),
            "{md}"
        );
        assert!(
            md.contains("| Peak RSS (MiB) | 20.5 | 82 | — | lower |"),
            "ferrokube bound nothing, so its memory is not comparable: {md}"
        );
        assert!(
            md.contains("| Create→bound p50 (ms) | — | 12.5 | — | lower |"),
            "{md}"
        );
        assert!(
            md.contains("| Pods bound (of 5000) | 0 | 5000 | 0.00 | higher |"),
            "{md}"
        );
        assert!(md.contains("- CPUs (nproc): 2"));
        assert!(md.contains("- CPU: Test CPU"));
        assert!(md.contains("- ferrokube: timed out"));
        assert!(md.contains("```\nferrokube bench scheduler\n```"));
    }

    #[test]
    fn complete_runs_compare_every_metric() {
        let mut report = sample();
        report.results[0] = ImplementationResult {
            implementation: "ferrokube".into(),
            bound: 5000,
            pods_per_second: 500.0,
            p50_ms: Some(25.0),
            p99_ms: Some(40.0),
            peak_rss_mib: Some(20.5),
            cpu_seconds: Some(2.5),
        };
        let md = report.to_markdown(&machine(), "cmd", &[]);
        assert!(
            md.contains("| Throughput (pods/s) | 500 | 250 | 2.00 | higher |"),
            "{md}"
        );
        assert!(
            md.contains("| Create→bound p99 (ms) | 40 | 80 | 0.50 | lower |"),
            "{md}"
        );
        assert!(
            md.contains("| Peak RSS (MiB) | 20.5 | 82 | 0.25 | lower |"),
            "{md}"
        );
        assert!(
            md.contains("| CPU time (s) | 2.5 | 5 | 0.50 | lower |"),
            "{md}"
        );
    }

    #[test]
    fn markdown_of_one_implementation_has_no_ratio() {
        let mut report = sample();
        report.results.remove(0);
        let md = report.to_markdown(&machine(), "cmd", &[]);
        assert!(md.contains("| Metric | upstream | Better |"), "{md}");
        assert!(
            md.contains("| Throughput (pods/s) | 250 | higher |"),
            "{md}"
        );
        assert!(!md.contains("## Notes"));
    }

    #[test]
    fn rounding() {
        assert_eq!(round(123.456, 1), 123.5);
        assert_eq!(round(0.004, 2), 0.0);
    }
}
