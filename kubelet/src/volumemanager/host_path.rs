//! hostPath volumes: the host's path itself, after upstream's `type` checks (creating the path for the
//! `...OrCreate` types).

use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;

use super::VolumeError;

/// What the host has at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostFileType {
    /// Nothing.
    Missing,
    /// A directory.
    Directory,
    /// A regular file.
    File,
    /// A unix socket.
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// Something else (a fifo).
    Other,
}

/// What a hostPath `type` asks the checker to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPathAction {
    /// Nothing: the path is what the type wants.
    Ok,
    /// Create a directory (0755).
    MakeDir,
    /// Create an empty file (0644).
    MakeFile,
}

/// Upstream's checkTypeInternal on what `path` is: the action to take, or its error message.
pub fn check_type(path: &str, kind: &str, found: HostFileType) -> Result<HostPathAction, String> {
    let not = |what: &str| Err(format!("hostPath type check failed: {path} is not {what}"));
    match kind {
        "" => Ok(HostPathAction::Ok),
        "DirectoryOrCreate" if found == HostFileType::Missing => Ok(HostPathAction::MakeDir),
        "DirectoryOrCreate" | "Directory" => match found {
            HostFileType::Directory => Ok(HostPathAction::Ok),
            _ => not("a directory"),
        },
        "FileOrCreate" if found == HostFileType::Missing => Ok(HostPathAction::MakeFile),
        "FileOrCreate" | "File" => match found {
            HostFileType::File => Ok(HostPathAction::Ok),
            _ => not("a file"),
        },
        "Socket" if found == HostFileType::Socket => Ok(HostPathAction::Ok),
        "Socket" => not("a socket file"),
        "CharDevice" if found == HostFileType::CharDevice => Ok(HostPathAction::Ok),
        "CharDevice" => not("a character device"),
        "BlockDevice" if found == HostFileType::BlockDevice => Ok(HostPathAction::Ok),
        "BlockDevice" => not("a block device"),
        other => Err(format!("{other} is an invalid volume type")),
    }
}

/// What the host has at `path` (symlinks followed, as upstream's stat).
pub fn file_type(path: &Path) -> HostFileType {
    let Ok(meta) = std::fs::metadata(path) else {
        return HostFileType::Missing;
    };
    let t = meta.file_type();
    if t.is_dir() {
        HostFileType::Directory
    } else if t.is_file() {
        HostFileType::File
    } else if t.is_socket() {
        HostFileType::Socket
    } else if t.is_char_device() {
        HostFileType::CharDevice
    } else if t.is_block_device() {
        HostFileType::BlockDevice
    } else {
        HostFileType::Other
    }
}

/// Checks (and for the `...OrCreate` types makes) the hostPath `path` of `type` `kind`.
pub fn set_up(path: &str, kind: &str) -> Result<(), VolumeError> {
    let host = Path::new(path);
    match check_type(path, kind, file_type(host)).map_err(VolumeError::Invalid)? {
        HostPathAction::Ok => Ok(()),
        HostPathAction::MakeDir => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(host)
            .map_err(VolumeError::io("create", host)),
        HostPathAction::MakeFile => {
            if let Some(parent) = host.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(parent)
                    .map_err(VolumeError::io("create", parent))?;
            }
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o644)
                .open(host)
                .map(|_| ())
                .map_err(VolumeError::io("create", host))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_check_what_the_host_has() {
        use HostFileType::*;
        assert_eq!(check_type("/x", "", Missing), Ok(HostPathAction::Ok));
        assert_eq!(
            check_type("/x", "DirectoryOrCreate", Missing),
            Ok(HostPathAction::MakeDir)
        );
        assert_eq!(
            check_type("/x", "DirectoryOrCreate", File),
            Err("hostPath type check failed: /x is not a directory".to_string())
        );
        assert_eq!(
            check_type("/x", "Directory", Directory),
            Ok(HostPathAction::Ok)
        );
        assert_eq!(
            check_type("/x", "Directory", Missing),
            Err("hostPath type check failed: /x is not a directory".to_string())
        );
        assert_eq!(
            check_type("/x", "FileOrCreate", Missing),
            Ok(HostPathAction::MakeFile)
        );
        assert_eq!(
            check_type("/x", "File", Directory),
            Err("hostPath type check failed: /x is not a file".to_string())
        );
        assert_eq!(
            check_type("/x", "Socket", File),
            Err("hostPath type check failed: /x is not a socket file".to_string())
        );
        assert_eq!(
            check_type("/x", "CharDevice", BlockDevice),
            Err("hostPath type check failed: /x is not a character device".to_string())
        );
        assert_eq!(
            check_type("/x", "BlockDevice", CharDevice),
            Err("hostPath type check failed: /x is not a block device".to_string())
        );
        assert_eq!(
            check_type("/x", "Fifo", Other),
            Err("Fifo is an invalid volume type".to_string())
        );
    }

    #[test]
    fn or_create_types_make_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        set_up(sub.to_str().unwrap(), "DirectoryOrCreate").unwrap();
        assert!(sub.is_dir());
        let file = dir.path().join("c/f");
        set_up(file.to_str().unwrap(), "FileOrCreate").unwrap();
        assert!(file.is_file());
        assert!(set_up(file.to_str().unwrap(), "Directory").is_err());
    }
}
