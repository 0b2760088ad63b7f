//! No process outlives what started it: a control plane held in a static when its program exits, one whose
//! program panics, and one whose program gets SIGTERM all leave no etcd or kube-apiserver running and no
//! state directory behind. (`ferrokube up`'s clusters: tests/up_lifecycle.rs.)

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use ferrokube_cluster::process::is_alive;
use ferrokube_tests::{binary, wait_with_limit};

struct Started {
    pids: Vec<u32>,
    dir: PathBuf,
}

/// The probe's report from its `stdout`; if there is none, the failure quotes what the probe wrote to the
/// file `stderr` (why it could not start a control plane).
fn read_report(stdout: ChildStdout, stderr: &Path) -> Started {
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let report: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| {
        let said = std::fs::read_to_string(stderr).unwrap_or_default();
        panic!("no report from the probe ({e}: {line:?}); its stderr:\n{said}")
    });
    let pids: Vec<u32> = serde_json::from_value(report["pids"].clone()).unwrap();
    let dir = PathBuf::from(report["dir"].as_str().unwrap());
    assert_eq!(pids.len(), 2);
    assert!(
        pids.iter().all(|pid| is_alive(*pid)),
        "processes not running after start"
    );
    assert!(dir.is_dir());
    Started { pids, dir }
}

fn assert_all_gone(started: &Started) {
    // The exiting program stops its children before it ends, so no waiting should be needed; allow a
    // moment for the kernel to finish tearing down processes killed by the parent-death signal.
    let deadline = Instant::now() + Duration::from_secs(5);
    while started.pids.iter().any(|pid| is_alive(*pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    for pid in &started.pids {
        assert!(!is_alive(*pid), "process {pid} outlived its parent");
    }
    assert!(
        !started.dir.exists(),
        "{} was left behind",
        started.dir.display()
    );
}

fn probe(mode: &str) -> (Child, Started) {
    let stderr = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(binary("control-plane-probe"))
        .arg(mode)
        .stdout(Stdio::piped())
        .stderr(stderr.reopen().unwrap())
        .spawn()
        .unwrap();
    let started = read_report(child.stdout.take().unwrap(), stderr.path());
    (child, started)
}

#[test]
fn a_control_plane_in_a_static_is_stopped_when_its_program_exits() {
    let (mut child, started) = probe("exit");
    assert!(wait_with_limit(&mut child, Duration::from_secs(30)).success());
    assert_all_gone(&started);
}

#[test]
fn a_control_plane_is_stopped_when_its_program_panics() {
    let (mut child, started) = probe("panic");
    assert_eq!(
        wait_with_limit(&mut child, Duration::from_secs(30)).code(),
        Some(101)
    );
    assert_all_gone(&started);
}

#[test]
fn a_control_plane_is_stopped_when_its_program_gets_sigterm() {
    let (mut child, started) = probe("wait");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(
        wait_with_limit(&mut child, Duration::from_secs(30)).code(),
        Some(128 + 15)
    );
    assert_all_gone(&started);
}

#[test]
fn a_killed_program_leaves_no_processes_and_its_directory_is_swept_next_time() {
    let (mut child, started) = probe("wait");
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while started.pids.iter().any(|pid| is_alive(*pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        started.pids.iter().all(|pid| !is_alive(*pid)),
        "children survived kill -9 of their parent"
    );
    // The next control plane started on this machine removes the dead one's directory.
    let (mut next, next_started) = probe("exit");
    assert!(wait_with_limit(&mut next, Duration::from_secs(30)).success());
    assert_all_gone(&next_started);
    assert!(
        !started.dir.exists(),
        "{} was not swept",
        started.dir.display()
    );
}
