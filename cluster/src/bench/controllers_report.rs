//! The controller-manager benchmark's results, as `controllers.json` and `controllers.md` (a table with the
//! ferrokube/upstream ratio, the machine and the command line).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::measure::Machine;
use super::report::{append_footer, cell, ratio_cell};

/// `controllers.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControllersReport {
    pub workload: ControllersWorkload,
    pub results: Vec<ControllersResult>,
}

/// What every implementation was given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControllersWorkload {
    pub replicas: usize,
    pub qps: f64,
    pub burst: u32,
}

/// One implementation's numbers; `None` (JSON null) means the phase did not finish or was not reached.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ControllersResult {
    pub implementation: String,
    pub scale_up_s: Option<f64>,
    pub rollout_s: Option<f64>,
    pub delete_s: Option<f64>,
    pub peak_rss_mib: Option<f64>,
    pub cpu_seconds: Option<f64>,
    /// kube-apiserver's CPU time during the three phases.
    pub apiserver_cpu_seconds: Option<f64>,
    /// etcd's CPU time during the three phases.
    pub etcd_cpu_seconds: Option<f64>,
    /// Requests that changed state the apiserver served during the three phases, from every client.
    pub apiserver_writes: Option<u64>,
    /// Watches the apiserver closed during the three phases because their client fell behind.
    pub terminated_watches: Option<u64>,
}

type Metric = fn(&ControllersResult) -> Option<f64>;

impl ControllersReport {
    fn result(&self, implementation: &str) -> Option<&ControllersResult> {
        self.results
            .iter()
            .find(|r| r.implementation == implementation)
    }

    /// `controllers.json`: pretty-printed, with a final newline.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self).map(|text| text + "\n")
    }

    /// `controllers.md`. `notes` are lines about runs that did not finish normally.
    pub fn to_markdown(&self, machine: &Machine, command_line: &str, notes: &[String]) -> String {
        let w = &self.workload;
        let mut md = String::new();
        let _ = writeln!(md, "# Controller-manager benchmark\n");
        let _ = writeln!(
            md,
            "Workload: a Deployment of {} replicas (no kubelets: a helper marks pods Ready), client qps {} \
             burst {}; Kubernetes {} control plane.\n",
            w.replicas,
            w.qps,
            w.burst,
            component_base::version::KUBERNETES_VERSION
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
        let metrics: [(&str, Metric); 9] = [
            ("Scale up 0 → all available (s)", |r| r.scale_up_s),
            ("Rolling update (s)", |r| r.rollout_s),
            ("Foreground delete (s)", |r| r.delete_s),
            ("Peak RSS (MiB)", |r| r.peak_rss_mib),
            ("CPU time (s)", |r| r.cpu_seconds),
            ("kube-apiserver CPU time in the phases (s)", |r| {
                r.apiserver_cpu_seconds
            }),
            ("etcd CPU time in the phases (s)", |r| r.etcd_cpu_seconds),
            ("Writes served by the apiserver in the phases", |r| {
                r.apiserver_writes.map(|w| w as f64)
            }),
            ("Watches closed for falling behind in the phases", |r| {
                r.terminated_watches.map(|w| w as f64)
            }),
        ];
        for (name, value) in metrics {
            let mut row = format!("| {name} |");
            for result in &self.results {
                let _ = write!(row, " {} |", cell(value(result)));
            }
            if let Some((ours, theirs)) = ratio {
                let _ = write!(row, " {} |", ratio_cell(value(ours), value(theirs)));
            }
            let _ = writeln!(row, " lower |");
            md.push_str(&row);
        }
        md.push('\n');
        let _ = writeln!(
            md,
            "Each phase is timed from the request that starts it (Deployment created, template changed, \
             Deployment deleted with propagationPolicy=Foreground) until the Deployment's status shows every \
             replica updated and available, or until no pod and no Deployment is left. Peak RSS is the \
             controller-manager's VmHWM and CPU time its utime + stime, read after the last phase. The control \
             plane's rows cover the three phases: kube-apiserver's and etcd's CPU time, and the requests that \
             changed state (POST, PUT, PATCH, DELETE) and the watches the apiserver closed because their client \
             fell behind (`apiserver_terminated_watchers_total`), from every client, the readiness helper's \
             included.\n"
        );
        append_footer(&mut md, notes, machine, command_line);
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_documented_shape_and_markdown_the_ratio() {
        let report = ControllersReport {
            workload: ControllersWorkload {
                replicas: 1000,
                qps: 20.0,
                burst: 30,
            },
            results: vec![
                ControllersResult {
                    implementation: "ferrokube".into(),
                    scale_up_s: Some(10.0),
                    rollout_s: Some(20.0),
                    delete_s: None,
                    peak_rss_mib: Some(25.0),
                    cpu_seconds: Some(3.0),
                    apiserver_cpu_seconds: Some(9.0),
                    etcd_cpu_seconds: Some(1.5),
                    apiserver_writes: Some(3200),
                    terminated_watches: Some(40),
                },
                ControllersResult {
                    implementation: "upstream".into(),
                    scale_up_s: Some(20.0),
                    rollout_s: Some(40.0),
                    delete_s: Some(5.0),
                    peak_rss_mib: Some(100.0),
                    cpu_seconds: Some(6.0),
                    apiserver_cpu_seconds: Some(12.0),
                    etcd_cpu_seconds: None,
                    apiserver_writes: Some(3300),
                    terminated_watches: Some(20),
                },
            ],
        };
        let json: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
        assert_eq!(json["workload"]["replicas"], 1000);
        assert_eq!(json["results"][0]["scale_up_s"], 10.0);
        assert!(json["results"][0]["delete_s"].is_null());
        let machine = Machine {
            cpus: 2,
            memory_gib: 24.0,
            kernel: "k".into(),
            cpu_model: "c".into(),
        };
        let md = report.to_markdown(&machine, "ferrokube bench controllers", &[]);
        assert!(
            md.contains("| Scale up 0 → all available (s) | 10 | 20 | 0.50 | lower |"),
            "{md}"
        );
        assert!(
            md.contains("| Foreground delete (s) | — | 5 | — | lower |"),
            "{md}"
        );
        assert!(
            md.contains("| Peak RSS (MiB) | 25 | 100 | 0.25 | lower |"),
            "{md}"
        );
        assert!(
            md.contains("| kube-apiserver CPU time in the phases (s) | 9 | 12 | 0.75 | lower |"),
            "{md}"
        );
        assert!(
            md.contains("| etcd CPU time in the phases (s) | 1.5 | — | — | lower |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| Writes served by the apiserver in the phases | 3200 | 3300 | 0.97 | lower |"
            ),
            "{md}"
        );
        assert_eq!(json["results"][1]["apiserver_writes"], 3300);
        assert!(
            md.contains(
                "| Watches closed for falling behind in the phases | 40 | 20 | 2.00 | lower |"
            ),
            "{md}"
        );
    }
}
