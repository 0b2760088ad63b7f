//! When a container's process started, read from /proc: containerd keeps no start time, so a restarted
//! kubelet learns `state.running.startedAt` from the init process (field 22 of `/proc/<pid>/stat`, clock
//! ticks since boot, plus `btime` of `/proc/stat`).

use k8s_openapi::jiff::Timestamp;

/// When process `pid` started; `None` when it is gone or /proc cannot say.
pub fn process_start_time(pid: u32) -> Option<Timestamp> {
    if pid == 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let system = std::fs::read_to_string("/proc/stat").ok()?;
    start_time(
        start_ticks(&stat)?,
        boot_time(&system)?,
        crate::sys::clock_ticks_per_second()?,
    )
}

/// The `starttime` field (22) of a `/proc/<pid>/stat` line: clock ticks after boot. The command name
/// (field 2) may hold spaces and parentheses, so fields are counted from the last `)`.
pub fn start_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    // `rest` starts at field 3 (the state).
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// The `btime` of `/proc/stat`: the boot time in seconds since the epoch.
pub fn boot_time(stat: &str) -> Option<i64> {
    stat.lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// The wall-clock time `ticks` clock ticks after a boot at `boot_seconds`.
pub fn start_time(ticks: u64, boot_seconds: i64, ticks_per_second: u64) -> Option<Timestamp> {
    if ticks_per_second == 0 {
        return None;
    }
    let after_boot = i128::from(ticks) * 1_000_000_000 / i128::from(ticks_per_second);
    Timestamp::from_nanosecond(i128::from(boot_seconds) * 1_000_000_000 + after_boot).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_ticks_are_field_22_whatever_the_command_name() {
        let stat = "4242 (sleep) S 1 4242 4242 0 -1 4194560 107 0 0 0 0 0 0 0 20 0 1 0 \
                    123456 1654784 185 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(start_ticks(stat), Some(123_456));
        let odd = "7 (a) b (c) S 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0";
        assert_eq!(start_ticks(odd), Some(99));
        assert_eq!(start_ticks("7 (short) S 1"), None);
        assert_eq!(start_ticks("no parenthesis"), None);
    }

    #[test]
    fn the_boot_time_is_btime() {
        let stat = "cpu  1 2 3 4\nintr 5\nctxt 6\nbtime 1764460000\nprocesses 7\n";
        assert_eq!(boot_time(stat), Some(1_764_460_000));
        assert_eq!(boot_time("cpu 1 2\n"), None);
    }

    #[test]
    fn ticks_after_boot_become_wall_clock_time() {
        let started = start_time(250, 1_000, 100).unwrap();
        assert_eq!(started.as_nanosecond(), 1_002_500_000_000);
        assert_eq!(start_time(1, 0, 0), None);
    }

    #[test]
    fn start_times_survive_a_label_round_trip() {
        let at = start_time(12_345, 1_764_460_000, 100).unwrap();
        assert_eq!(at.to_string().parse::<Timestamp>().unwrap(), at);
    }

    #[test]
    fn this_process_started_before_now() {
        let started = process_start_time(std::process::id()).unwrap();
        assert!(started <= Timestamp::now());
        assert!(Timestamp::now().duration_since(started).as_secs() < 24 * 3600);
        assert_eq!(process_start_time(0), None);
    }
}
