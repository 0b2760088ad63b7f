//! Changes in a log file's directory through inotify, as upstream's fsnotify watcher sees them: a follower
//! wakes when the log is written or recreated instead of polling.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use tokio::io::unix::AsyncFd;

/// What happened in the watched directory (fsnotify's operations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A file was written.
    Write,
    /// A file was created or moved in.
    Create,
    /// A file (or the directory) was removed.
    Remove,
    /// A file (or the directory) was moved away.
    Rename,
    /// Metadata changed.
    Chmod,
    /// The kernel dropped events: anything may have happened.
    Overflow,
}

/// One change and the name of the file it concerns (empty for the directory itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub change: Change,
    /// The file's name in the directory.
    pub name: Vec<u8>,
}

/// An inotify watch on one directory.
#[derive(Debug)]
pub struct DirWatcher {
    fd: AsyncFd<OwnedFd>,
    buf: Vec<u8>,
}

/// fsnotify's watch mask on Linux.
const MASK: u32 = libc::IN_MOVED_TO
    | libc::IN_MOVED_FROM
    | libc::IN_CREATE
    | libc::IN_ATTRIB
    | libc::IN_MODIFY
    | libc::IN_MOVE_SELF
    | libc::IN_DELETE
    | libc::IN_DELETE_SELF;

impl DirWatcher {
    /// Watches `dir`.
    pub fn new(dir: &Path) -> io::Result<Self> {
        #[allow(unsafe_code)]
        // SAFETY: inotify_init1 takes flags only; a non-negative result is a new descriptor we own.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        #[allow(unsafe_code)]
        // SAFETY: `raw` was just returned by inotify_init1 and is owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let c_dir = std::ffi::CString::new(dir.as_os_str().as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        #[allow(unsafe_code)]
        // SAFETY: the descriptor is valid and the path is NUL-terminated and lives across the call.
        let wd = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c_dir.as_ptr(), MASK) };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        #[allow(unsafe_code)]
        // SAFETY: the descriptor moves into the AsyncFd, which keeps it open until it is dropped.
        let fd = unsafe { AsyncFd::register(fd) }?;
        Ok(Self {
            fd,
            buf: vec![0; 16 * 1024],
        })
    }

    /// Waits for the next changes (all the kernel has queued).
    pub async fn next(&mut self) -> io::Result<Vec<Event>> {
        loop {
            let mut ready = self.fd.readable().await?;
            let buf = &mut self.buf;
            let read = ready.try_io(|fd| {
                #[allow(unsafe_code)]
                // SAFETY: reads into a buffer we own, at most its length.
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                usize::try_from(n).map_err(|_| io::Error::last_os_error())
            });
            match read {
                Ok(Ok(n)) => return Ok(parse_events(&self.buf[..n])),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
    }
}

/// Decodes a buffer of `struct inotify_event`s (wd, mask, cookie, len, then `len` bytes of NUL-padded
/// name); changes the watch does not report are left out.
pub fn parse_events(mut buf: &[u8]) -> Vec<Event> {
    const HEADER: usize = 16;
    let mut events = Vec::new();
    while buf.len() >= HEADER {
        let word = |i: usize| u32::from_ne_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
        let mask = word(4);
        let len = usize::try_from(word(12)).unwrap_or(usize::MAX);
        let Some(name) = buf.get(HEADER..HEADER.saturating_add(len)) else {
            break;
        };
        let name = OsStr::from_bytes(name.split(|&b| b == 0).next().unwrap_or_default());
        if let Some(change) = change_of(mask) {
            events.push(Event {
                change,
                name: name.as_bytes().to_vec(),
            });
        }
        buf = &buf[HEADER + len..];
    }
    events
}

fn change_of(mask: u32) -> Option<Change> {
    if mask & libc::IN_Q_OVERFLOW != 0 {
        Some(Change::Overflow)
    } else if mask & (libc::IN_CREATE | libc::IN_MOVED_TO) != 0 {
        Some(Change::Create)
    } else if mask & (libc::IN_DELETE | libc::IN_DELETE_SELF) != 0 {
        Some(Change::Remove)
    } else if mask & libc::IN_MODIFY != 0 {
        Some(Change::Write)
    } else if mask & (libc::IN_MOVE_SELF | libc::IN_MOVED_FROM) != 0 {
        Some(Change::Rename)
    } else if mask & libc::IN_ATTRIB != 0 {
        Some(Change::Chmod)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn raw(mask: u32, name: &str, padded: usize) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&1i32.to_ne_bytes());
        out.extend_from_slice(&mask.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(&u32::try_from(padded).unwrap().to_ne_bytes());
        let mut bytes = name.as_bytes().to_vec();
        bytes.resize(padded, 0);
        out.extend_from_slice(&bytes);
        out
    }

    #[test]
    fn events_are_decoded_with_their_names() {
        let mut buf = raw(libc::IN_MODIFY, "0.log", 16);
        buf.extend(raw(libc::IN_MOVED_TO, "1.log", 16));
        buf.extend(raw(libc::IN_IGNORED, "", 0));
        buf.extend(raw(libc::IN_DELETE_SELF, "", 0));
        assert_eq!(
            parse_events(&buf),
            [
                Event {
                    change: Change::Write,
                    name: b"0.log".to_vec()
                },
                Event {
                    change: Change::Create,
                    name: b"1.log".to_vec()
                },
                Event {
                    change: Change::Remove,
                    name: Vec::new()
                },
            ]
        );
        // A truncated event is dropped, not misread.
        assert!(parse_events(&raw(libc::IN_MODIFY, "0.log", 16)[..20]).is_empty());
    }

    #[tokio::test]
    async fn writes_in_the_directory_wake_the_watcher() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        std::fs::write(&log, "a").unwrap();
        let mut watcher = DirWatcher::new(dir.path()).unwrap();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            std::fs::write(&log, "b").unwrap();
        });
        let events = tokio::time::timeout(Duration::from_secs(5), watcher.next())
            .await
            .unwrap()
            .unwrap();
        assert!(
            events
                .iter()
                .any(|e| e.change == Change::Write && e.name == b"0.log"),
            "{events:?}"
        );
        writer.await.unwrap();
    }

    #[test]
    fn a_missing_directory_cannot_be_watched() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let error = DirWatcher::new(&dir.path().join("absent")).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
    }
}
