//! The few libc calls the process supervision needs; the only unsafe code in the crate, each call a plain
//! system call with no memory to get wrong.
#![allow(unsafe_code)]

/// Sends `signal` to process `pid`; false if it does not exist (or is not ours).
pub fn kill(pid: u32, signal: i32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) takes plain integers.
    unsafe { libc::kill(pid, signal) == 0 }
}

/// In a forked child before exec: ask the kernel to SIGKILL us when the thread that forked us dies, so a
/// crashed or killed parent leaves nothing running.
pub fn set_parent_death_signal() -> std::io::Result<()> {
    // SAFETY: prctl(2) with PR_SET_PDEATHSIG takes plain integers; async-signal-safe, so fine after fork.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Takes an exclusive flock(2) on `file` without waiting; whether it was taken.
pub fn try_lock_exclusive(file: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock(2) on a descriptor the File owns; no memory is passed.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Whether this process runs as root (effective user 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no arguments and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Registers `handler` to run when the process exits through exit(3), as the test harness's main does.
pub fn at_exit(handler: extern "C" fn()) {
    // SAFETY: atexit(3) stores a function pointer with 'static lifetime.
    unsafe {
        libc::atexit(handler);
    }
}

/// Detaches the mount at `path` (umount2 with MNT_DETACH), so a busy mount goes too.
pub fn umount_detach(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: umount2(2) reads a NUL-terminated path that lives across the call.
    if unsafe { libc::umount2(c_path.as_ptr(), libc::MNT_DETACH) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Mount points at or under `dir`, deepest first, from /proc/self/mountinfo.
fn mounts_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut points: Vec<std::path::PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        // mountinfo escapes spaces and the like as octal; our paths have none.
        .map(std::path::PathBuf::from)
        .filter(|point| point.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    points
}

/// Detaches every mount under `dir` (volumes, namespace files and snapshots a kubelet or containerd left),
/// so the directory can be removed.
pub fn detach_mounts_under(dir: &std::path::Path) {
    for point in mounts_under(dir) {
        if let Err(e) = umount_detach(&point) {
            tracing::warn!("cannot unmount {}: {e}", point.display());
        }
    }
}

/// The address of the interface holding the default route, which a kubelet advertises as its InternalIP
/// when its node name does not resolve. Connecting a UDP socket sends nothing.
pub fn default_route_ip() -> Option<std::net::IpAddr> {
    use std::net::{Ipv4Addr, UdpSocket};
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    socket.connect((Ipv4Addr::new(8, 8, 8, 8), 53)).ok()?;
    Some(socket.local_addr().ok()?.ip())
}
