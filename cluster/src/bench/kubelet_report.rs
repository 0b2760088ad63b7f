//! The kubelet benchmark's results, as `kubelet.json` and `kubelet.md` (a table with the ferrokube/upstream
//! ratio, the machine and the command line).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::measure::Machine;
use super::report::{append_footer, cell, ratio_cell};

/// `kubelet.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KubeletReport {
    pub workload: KubeletWorkload,
    pub results: Vec<KubeletResult>,
}

/// What every implementation was given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KubeletWorkload {
    /// Pods created one per `steady_interval_ms`.
    pub steady_pods: usize,
    pub steady_interval_ms: u64,
    /// Pods created at once after the steady ones run.
    pub burst_pods: usize,
    pub image: String,
    pub max_pods: u32,
}

/// One implementation's numbers. `p50_ms`/`p99_ms` are the steady run's (30 pods, one per second), the
/// `burst_` fields the 100 pods created at once. `None` (JSON null) means not measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KubeletResult {
    pub implementation: String,
    /// Steady pods seen Running.
    pub running: usize,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Burst pods seen Running.
    pub burst_running: usize,
    pub burst_p50_ms: Option<f64>,
    pub burst_p99_ms: Option<f64>,
    /// The kubelet's VmHWM.
    pub peak_rss_mib: Option<f64>,
    /// The kubelet's utime + stime.
    pub cpu_seconds: Option<f64>,
    /// containerd's VmHWM (it runs the CRI plugin for upstream's kubelet).
    pub containerd_peak_rss_mib: Option<f64>,
    /// containerd's utime + stime.
    pub containerd_cpu_seconds: Option<f64>,
}

type Metric = fn(&KubeletResult) -> Option<f64>;

impl KubeletReport {
    fn result(&self, implementation: &str) -> Option<&KubeletResult> {
        self.results
            .iter()
            .find(|r| r.implementation == implementation)
    }

    /// `kubelet.json`: pretty-printed, with a final newline.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self).map(|text| text + "\n")
    }

    /// `kubelet.md`. `notes` are lines about runs that did not finish normally.
    pub fn to_markdown(&self, machine: &Machine, command_line: &str, notes: &[String]) -> String {
        let w = &self.workload;
        let mut md = String::new();
        let _ = writeln!(md, "# Kubelet benchmark\n");
        let _ = writeln!(
            md,
            "Workload: one node; {} pods created one per {} ms, then {} at once; image {} (`sleep 3600`), \
             max-pods {}; Kubernetes {} control plane; the distribution's containerd.\n",
            w.steady_pods,
            w.steady_interval_ms,
            w.burst_pods,
            w.image,
            w.max_pods,
            component_base::version::KUBERNETES_VERSION,
        );
        let ratio = self.result("ferrokube").zip(self.result("upstream"));
        let mut header = String::from("| Metric |");
        let mut rule = String::from("|---|");
        for result in &self.results {
            let _ = write!(header, " {} |", result.implementation);
            rule.push_str("---:|");
        }
        if ratio.is_some() {
            header.push_str(" ferrokube / upstream |");
            rule.push_str("---:|");
        }
        let _ = writeln!(md, "{header} Better |\n{rule}---|");
        let steady = format!("of {}", w.steady_pods);
        let burst = format!("of {}", w.burst_pods);
        let metrics: [(String, Metric, &str); 10] = [
            (
                format!("Steady: pods Running ({steady})"),
                |r| Some(r.running as f64),
                "higher",
            ),
            (
                "Steady: create→Running p50 (ms)".into(),
                |r| r.p50_ms,
                "lower",
            ),
            (
                "Steady: create→Running p99 (ms)".into(),
                |r| r.p99_ms,
                "lower",
            ),
            (
                format!("Burst: pods Running ({burst})"),
                |r| Some(r.burst_running as f64),
                "higher",
            ),
            (
                "Burst: create→Running p50 (ms)".into(),
                |r| r.burst_p50_ms,
                "lower",
            ),
            (
                "Burst: create→Running p99 (ms)".into(),
                |r| r.burst_p99_ms,
                "lower",
            ),
            ("Kubelet peak RSS (MiB)".into(), |r| r.peak_rss_mib, "lower"),
            ("Kubelet CPU time (s)".into(), |r| r.cpu_seconds, "lower"),
            (
                "containerd peak RSS (MiB)".into(),
                |r| r.containerd_peak_rss_mib,
                "lower",
            ),
            (
                "containerd CPU time (s)".into(),
                |r| r.containerd_cpu_seconds,
                "lower",
            ),
        ];
        for (name, value, better) in metrics {
            let mut row = format!("| {name} |");
            for result in &self.results {
                let _ = write!(row, " {} |", cell(value(result)));
            }
            if let Some((ours, theirs)) = ratio {
                let _ = write!(row, " {} |", ratio_cell(value(ours), value(theirs)));
            }
            let _ = writeln!(row, " {better} |");
            md.push_str(&row);
        }
        md.push('\n');
        let _ = writeln!(
            md,
            "Latency runs from issuing a pod's create request to the first watch event showing it in phase \
             Running (nearest-rank percentiles). Peak RSS is VmHWM and CPU time utime + stime of the process, \
             read after the burst; containerd does the runtime work for both kubelets (through its CRI plugin \
             and a pause container per pod for upstream's, through its native API for ferrokube's).\n"
        );
        append_footer(&mut md, notes, machine, command_line);
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, scale: f64) -> KubeletResult {
        KubeletResult {
            implementation: name.into(),
            running: 30,
            p50_ms: Some(100.0 * scale),
            p99_ms: Some(200.0 * scale),
            burst_running: 100,
            burst_p50_ms: Some(1000.0 * scale),
            burst_p99_ms: None,
            peak_rss_mib: Some(20.0 * scale),
            cpu_seconds: Some(1.5 * scale),
            containerd_peak_rss_mib: Some(50.0),
            containerd_cpu_seconds: Some(3.0),
        }
    }

    fn report() -> KubeletReport {
        KubeletReport {
            workload: KubeletWorkload {
                steady_pods: 30,
                steady_interval_ms: 1000,
                burst_pods: 100,
                image: "docker.io/library/busybox:latest".into(),
                max_pods: 250,
            },
            results: vec![result("ferrokube", 1.0), result("upstream", 4.0)],
        }
    }

    #[test]
    fn json_has_the_benchmark_shape() {
        let json: serde_json::Value = serde_json::from_str(&report().to_json().unwrap()).unwrap();
        let ours = &json["results"][0];
        assert_eq!(ours["implementation"], "ferrokube");
        assert_eq!(ours["p50_ms"], 100.0);
        assert_eq!(ours["p99_ms"], 200.0);
        assert_eq!(ours["peak_rss_mib"], 20.0);
        assert_eq!(ours["cpu_seconds"], 1.5);
        assert_eq!(ours["burst_p50_ms"], 1000.0);
        assert!(ours["burst_p99_ms"].is_null());
        assert_eq!(json["workload"]["steady_pods"], 30);
        assert_eq!(json["workload"]["burst_pods"], 100);
        let back: KubeletReport = serde_json::from_str(&report().to_json().unwrap()).unwrap();
        assert_eq!(back, report());
    }

    #[test]
    fn markdown_compares_each_metric() {
        let machine = Machine {
            cpus: 2,
            memory_gib: 24.0,
            kernel: "k".into(),
            cpu_model: "c".into(),
        };
        let md = report().to_markdown(&machine, "ferrokube bench kubelet", &["upstream: x".into()]);
        assert!(
            md.contains("| Metric | ferrokube | upstream | ferrokube / upstream | Better |"),
            "{md}"
        );
        assert!(
            md.contains("| Steady: create→Running p99 (ms) | 200 | 800 | 0.25 | lower |"),
            "{md}"
        );
        assert!(
            md.contains("| Burst: create→Running p99 (ms) | — | — | — | lower |"),
            "{md}"
        );
        assert!(
            md.contains("| Kubelet peak RSS (MiB) | 20 | 80 | 0.25 | lower |"),
            "{md}"
        );
        assert!(md.contains("- upstream: x"));
        let mut alone = report();
        alone.results.truncate(1);
        let md = alone.to_markdown(&machine, "cmd", &[]);
        assert!(md.contains("| Metric | ferrokube | Better |"), "{md}");
    }
}
