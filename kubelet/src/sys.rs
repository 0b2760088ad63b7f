//! The few system calls the standard library lacks.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A filesystem's size, from statvfs(3).
pub struct FilesystemStats {
    /// Blocks in the filesystem.
    pub blocks: u64,
    /// The size of a block in bytes.
    pub fragment_size: u64,
}

/// statvfs(3) of the filesystem holding `path`.
pub fn statvfs(path: &Path) -> std::io::Result<FilesystemStats> {
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("path contains a NUL byte"))?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    #[allow(unsafe_code)]
    // SAFETY: `path` is NUL-terminated and `stats` is writable memory of the right type; it is read only
    // after the call reported success.
    let stats = unsafe {
        if libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        stats.assume_init()
    };
    Ok(FilesystemStats {
        blocks: stats.f_blocks,
        fragment_size: stats.f_frsize,
    })
}

/// The kernel's clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of /proc's process times.
pub fn clock_ticks_per_second() -> Option<u64> {
    #[allow(unsafe_code)]
    // SAFETY: sysconf only reads a configuration value; it has no memory arguments.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|t| *t > 0)
}

/// How many processes run on the host (`procs` of sysinfo(2)).
pub fn process_count() -> Option<u16> {
    let mut info = std::mem::MaybeUninit::<libc::sysinfo>::uninit();
    #[allow(unsafe_code)]
    // SAFETY: `info` is writable memory of the right type; it is read only after the call succeeded.
    let info = unsafe {
        if libc::sysinfo(info.as_mut_ptr()) != 0 {
            return None;
        }
        info.assume_init()
    };
    Some(info.procs)
}
