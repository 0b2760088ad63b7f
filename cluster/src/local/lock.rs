//! One local cluster per host: its links, addresses and kube-proxy's iptables chains are host-wide, so a
//! second `ferrokube up` (whatever its home) must not start. The running one holds an exclusive flock on
//! [`LOCK_FILE`], which the kernel releases however the process ends; the file names its owner.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::Error;

/// The lock file.
pub const LOCK_FILE: &str = "/run/ferrokube/up.lock";

/// The held lock; dropping it releases it.
#[derive(Debug)]
pub struct HostLock {
    _file: File,
}

impl HostLock {
    /// Takes the lock for the cluster whose home is `home`, or says who holds it.
    pub fn acquire(home: &Path) -> Result<Self, Error> {
        let path = Path::new(LOCK_FILE);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        if !crate::sys::try_lock_exclusive(&file) {
            let mut owner = String::new();
            let _ = file.read_to_string(&mut owner);
            let (pid, dir) = parse_owner(&owner);
            return Err(Error::AlreadyRunning { pid, dir });
        }
        let owner = format!("{} {}\n", std::process::id(), home.display());
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(owner.as_bytes()))
            .map_err(|e| Error::io(path, e))?;
        Ok(Self { _file: file })
    }
}

/// `PID HOME` as the lock file holds it.
fn parse_owner(text: &str) -> (u32, PathBuf) {
    let (pid, home) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
    (pid.parse().unwrap_or(0), PathBuf::from(home))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_line_gives_pid_and_home() {
        assert_eq!(
            parse_owner("1234 /root/.ferrokube\n"),
            (1234, PathBuf::from("/root/.ferrokube"))
        );
        assert_eq!(parse_owner(""), (0, PathBuf::new()));
    }
}
