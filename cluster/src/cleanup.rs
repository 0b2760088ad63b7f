//! Last-resort cleanup of control planes that are never dropped: one shared by a test binary lives in a
//! static, and a signal ends the process without unwinding. Each live control plane registers its process
//! ids and state directory here; exit(3) and, where installed, SIGINT/SIGTERM/SIGHUP stop and remove them.
//! The parent-death signal (see `process`) covers kill -9, and [`sweep_stale_dirs`] the directories it leaves.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use crate::process::is_alive;
use crate::sys;

/// Prefix of the state directories of control planes started in temporary directories.
pub const STATE_DIR_PREFIX: &str = "ferrokube-cp-";

/// What runs first for an entry at exit: the owner's own way of stopping what it started.
pub type ExitHook = Box<dyn FnOnce() + Send>;

struct Entry {
    id: u64,
    hook: Option<ExitHook>,
    pids: Vec<u32>,
    dir: Option<PathBuf>,
}

static ENTRIES: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A registration; dropping it forgets the entry (the owner has cleaned up itself).
#[derive(Debug)]
pub struct Registration(u64);

/// Registers processes to stop (in order) and a directory to remove when the process exits.
pub fn register(pids: Vec<u32>, dir: Option<PathBuf>) -> Registration {
    register_entry(None, pids, dir)
}

/// Registers `hook` to run at exit (or on a handled signal), before `pids` are stopped: for processes that
/// need more than a SIGTERM and a few seconds to stop cleanly.
pub fn register_hook(hook: ExitHook, pids: Vec<u32>) -> Registration {
    register_entry(Some(hook), pids, None)
}

fn register_entry(hook: Option<ExitHook>, pids: Vec<u32>, dir: Option<PathBuf>) -> Registration {
    static AT_EXIT: Once = Once::new();
    AT_EXIT.call_once(|| sys::at_exit(clean_all_at_exit));
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    lock().push(Entry {
        id,
        hook,
        pids,
        dir,
    });
    Registration(id)
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock().retain(|entry| entry.id != self.0);
    }
}

fn lock() -> std::sync::MutexGuard<'static, Vec<Entry>> {
    ENTRIES.lock().unwrap_or_else(|e| e.into_inner())
}

extern "C" fn clean_all_at_exit() {
    clean_all();
}

/// Stops every registered process and removes every registered directory.
pub fn clean_all() {
    let entries: Vec<Entry> = std::mem::take(&mut *lock());
    for entry in entries {
        if let Some(hook) = entry.hook {
            hook();
        }
        for pid in entry.pids {
            let _ = stop_pid(pid, Duration::from_secs(5));
        }
        if let Some(dir) = entry.dir {
            crate::sys::detach_mounts_under(&dir);
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// SIGTERM, then SIGKILL if it is still alive after `grace`; whether it was running.
pub fn stop_pid(pid: u32, grace: Duration) -> bool {
    if !sys::kill(pid, libc::SIGTERM) {
        return false;
    }
    let deadline = Instant::now() + grace;
    while is_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if is_alive(pid) {
        sys::kill(pid, libc::SIGKILL);
    }
    true
}

/// Makes SIGINT, SIGTERM and SIGHUP clean up registered control planes and then end the process with the
/// signal's conventional status. For test binaries and other programs without their own signal handling.
pub fn install_signal_handlers() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        match signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) {
            Ok(mut signals) => {
                let spawned = std::thread::Builder::new()
                    .name("ferrokube-signals".into())
                    .spawn(move || {
                        if let Some(signal) = signals.forever().next() {
                            clean_all();
                            std::process::exit(128 + signal);
                        }
                    });
                if let Err(e) = spawned {
                    tracing::warn!("cannot start the signal thread: {e}");
                }
            }
            Err(e) => tracing::warn!("cannot install signal handlers: {e}"),
        }
    });
}

/// Removes state directories under `parent` left by control planes whose process is gone (killed with -9).
pub fn sweep_stale_dirs(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name
            .to_str()
            .and_then(|n| n.strip_prefix(STATE_DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !is_alive(owner) {
            crate::sys::detach_mounts_under(&entry.path());
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
