//! Keeps a local cluster's components running, as systemd or the kubelet's static pods would on a real
//! node: a component that exits is started again after a back-off, and every change is one status line.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::Error;
use crate::process::ManagedProcess;

/// The first restart's delay; it doubles for each quick exit.
const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// The longest delay between restarts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A component that ran this long before exiting restarts after the initial delay again.
const STABLE_RUN: Duration = Duration::from_secs(60);

/// How long to wait before restarting a component that exited after running for `ran_for`, when the
/// previous delay was `previous` (zero for the first exit).
pub fn restart_delay(previous: Duration, ran_for: Duration) -> Duration {
    if previous.is_zero() || ran_for >= STABLE_RUN {
        INITIAL_BACKOFF
    } else {
        (previous * 2).min(MAX_BACKOFF)
    }
}

/// Builds a component's command line; called again for every restart.
pub type CommandFn = Box<dyn Fn() -> Command + Send>;

/// One supervised component.
pub struct Supervised {
    name: String,
    command: CommandFn,
    log: PathBuf,
    process: Option<ManagedProcess>,
    started: Instant,
    delay: Duration,
    restart_at: Option<Instant>,
    restarts: u32,
}

impl Supervised {
    /// Starts `name` with the command `command` builds, output appended to `log`.
    pub fn start(name: &str, command: CommandFn, log: &Path) -> Result<Self, Error> {
        let process = ManagedProcess::spawn(name, command(), log)?;
        Ok(Self {
            name: name.to_string(),
            command,
            log: log.to_path_buf(),
            process: Some(process),
            started: Instant::now(),
            delay: Duration::ZERO,
            restart_at: None,
            restarts: 0,
        })
    }

    /// The component's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The running process's id; `None` while it waits to be restarted.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ManagedProcess::pid)
    }

    /// Its log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// How often it has been restarted.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// An error with the end of its log if it is not running (for start-up, where an exit is fatal).
    pub fn check_running(&mut self) -> Result<(), Error> {
        match &mut self.process {
            Some(process) => process.check_running(),
            None => Err(Error::NotReady {
                name: self.name.clone(),
                seconds: 0,
                log: self.log.clone(),
            }),
        }
    }

    /// Notices an exit and restarts when the back-off is over; returns a status line when something
    /// changed.
    pub fn poll(&mut self) -> Option<String> {
        if let Some(process) = &mut self.process {
            let Err(error) = process.check_running() else {
                return None;
            };
            let status = match error {
                Error::Exited { status, .. } => status,
                other => other.to_string(),
            };
            self.process = None;
            self.delay = restart_delay(self.delay, self.started.elapsed());
            self.restart_at = Some(Instant::now() + self.delay);
            return Some(format!(
                "{:<30} exited ({status}); restarting in {}s (log: {})",
                self.name,
                self.delay.as_secs(),
                self.log.display()
            ));
        }
        let due = self.restart_at.is_some_and(|at| Instant::now() >= at);
        if !due {
            return None;
        }
        self.restart_at = None;
        self.started = Instant::now();
        match ManagedProcess::spawn(&self.name, (self.command)(), &self.log) {
            Ok(process) => {
                self.restarts += 1;
                let line = format!(
                    "{:<30} running again (pid {}, restart {})",
                    self.name,
                    process.pid(),
                    self.restarts
                );
                self.process = Some(process);
                Some(line)
            }
            Err(error) => {
                self.delay = restart_delay(self.delay, Duration::ZERO);
                self.restart_at = Some(Instant::now() + self.delay);
                Some(format!("{:<30} cannot restart: {error}", self.name))
            }
        }
    }

    /// Stops it (SIGTERM, then SIGKILL after `grace`).
    pub fn stop(&mut self, grace: Duration) {
        if let Some(mut process) = self.process.take() {
            process.stop(grace);
        }
        self.restart_at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_exits_double_the_delay_up_to_the_limit_and_a_stable_run_resets_it() {
        let quick = Duration::from_secs(2);
        let mut delay = restart_delay(Duration::ZERO, quick);
        assert_eq!(delay, Duration::from_secs(1));
        let mut seen = vec![delay];
        for _ in 0..6 {
            delay = restart_delay(delay, quick);
            seen.push(delay);
        }
        let seconds: Vec<u64> = seen.iter().map(Duration::as_secs).collect();
        assert_eq!(seconds, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(restart_delay(delay, STABLE_RUN), INITIAL_BACKOFF);
    }

    #[test]
    fn an_exited_component_is_restarted_after_its_delay() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("c.log");
        let command: CommandFn = Box::new(|| {
            let mut command = Command::new("sh");
            command.args(["-c", "echo started; exit 3"]);
            command
        });
        let mut component = Supervised::start("c", command, &log).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut lines = Vec::new();
        while component.restarts() == 0 && Instant::now() < deadline {
            lines.extend(component.poll());
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(component.restarts(), 1, "{lines:?}");
        assert!(lines[0].contains("exited (exit status: 3)"), "{lines:?}");
        assert!(lines[1].contains("running again"), "{lines:?}");
        let started_twice = || {
            std::fs::read_to_string(&log)
                .unwrap()
                .matches("started")
                .count()
                == 2
        };
        while !started_twice() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        component.stop(Duration::from_secs(1));
        assert!(
            started_twice(),
            "{}",
            std::fs::read_to_string(&log).unwrap()
        );
    }
}
