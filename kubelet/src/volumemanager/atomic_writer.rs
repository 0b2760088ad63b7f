//! Upstream's AtomicWriter: a volume's files live in a timestamped directory `..TIMESTAMP.RANDOM`, the
//! symlink `..data` points at the current one, and each top-level entry is a symlink through `..data`; an
//! update writes a new directory and swaps `..data` with one rename, so a reader never sees half a payload.

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Component, Path};

use super::VolumeError;
use super::payload::Payload;

/// The symlink to the current payload directory.
const DATA_DIR: &str = "..data";
/// The symlink made and renamed over `..data`.
const DATA_DIR_TMP: &str = "..data_tmp";

/// Checks that a payload path is relative, has no `..` element and does not start with `..` (upstream's
/// validatePath).
pub fn validate_path(path: &str) -> Result<(), VolumeError> {
    let invalid = |why: &str| VolumeError::Invalid(format!("invalid path {path:?}: {why}"));
    if path.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if Path::new(path).is_absolute() {
        return Err(invalid("must be relative path"));
    }
    if path.len() > 4096 {
        return Err(invalid("must be less than or equal to 4096 characters"));
    }
    if Path::new(path)
        .components()
        .any(|c| c == Component::ParentDir)
    {
        return Err(invalid("must not contain '..'"));
    }
    if path.starts_with("..") {
        return Err(invalid("must not start with '..'"));
    }
    Ok(())
}

/// The user-visible top-level entries of a payload: the first element of each path.
pub fn top_level(payload: &Payload) -> BTreeSet<String> {
    payload
        .keys()
        .filter_map(|p| p.split('/').find(|s| !s.is_empty()).map(str::to_string))
        .collect()
}

/// Writes `payload` into `dir` atomically; does nothing when the current content and modes are the same.
/// Returns whether anything was written.
pub fn write(dir: &Path, payload: &Payload) -> Result<bool, VolumeError> {
    for path in payload.keys() {
        validate_path(path)?;
    }
    std::fs::create_dir_all(dir).map_err(VolumeError::io("create", dir))?;
    let data_link = dir.join(DATA_DIR);
    let old = std::fs::read_link(&data_link).ok();
    if old.is_some() && unchanged(&data_link, payload) {
        return Ok(false);
    }
    let stamp = chrono::Utc::now().format("..%Y_%m_%d_%H_%M_%S.%9f");
    let name = format!("{stamp}{}", rand::random::<u32>());
    let fresh = dir.join(&name);
    std::fs::create_dir(&fresh).map_err(VolumeError::io("create", &fresh))?;
    std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o755))
        .map_err(VolumeError::io("chmod", &fresh))?;
    for (path, file) in payload {
        let target = fresh.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(VolumeError::io("create", parent))?;
        }
        std::fs::write(&target, &file.data).map_err(VolumeError::io("write", &target))?;
        let mode = u32::try_from(file.mode).unwrap_or(0o644) & 0o7777;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))
            .map_err(VolumeError::io("chmod", &target))?;
        if file.uid.is_some() || file.gid.is_some() {
            std::os::unix::fs::chown(&target, file.uid, file.gid)
                .map_err(VolumeError::io("chown", &target))?;
        }
    }
    let tmp = dir.join(DATA_DIR_TMP);
    let _ = std::fs::remove_file(&tmp);
    symlink(&name, &tmp).map_err(VolumeError::io("symlink", &tmp))?;
    std::fs::rename(&tmp, &data_link).map_err(VolumeError::io("rename", &data_link))?;
    // The user-visible entries: remove those gone from the payload, link the new ones.
    let wanted = top_level(payload);
    let entries = std::fs::read_dir(dir).map_err(VolumeError::io("read", dir))?;
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().to_string();
        if file_name.starts_with("..") || wanted.contains(&file_name) {
            continue;
        }
        let _ = std::fs::remove_file(entry.path());
    }
    for entry in &wanted {
        let link = dir.join(entry);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(Path::new(DATA_DIR).join(entry), &link)
                .map_err(VolumeError::io("symlink", &link))?;
        }
    }
    if let Some(old) = old {
        let old = dir.join(old);
        if old != fresh {
            let _ = std::fs::remove_dir_all(old);
        }
    }
    Ok(true)
}

/// Whether the files under `data` are exactly `payload`, content and modes.
fn unchanged(data: &Path, payload: &Payload) -> bool {
    let mut count = 0;
    if !count_files(data, &mut count) || count != payload.len() {
        return false;
    }
    payload.iter().all(|(path, file)| {
        let target = data.join(path);
        let same_mode = std::fs::metadata(&target).is_ok_and(|m| {
            i64::from(m.permissions().mode() & 0o7777) == i64::from(file.mode & 0o7777)
                && file.uid.is_none_or(|uid| uid == m.uid())
                && file.gid.is_none_or(|gid| gid == m.gid())
        });
        same_mode && std::fs::read(&target).is_ok_and(|d| d == file.data)
    })
}

fn count_files(dir: &Path, count: &mut usize) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    for entry in entries.flatten() {
        match entry.file_type() {
            Ok(t) if t.is_dir() => {
                if !count_files(&entry.path(), count) {
                    return false;
                }
            }
            Ok(_) => *count += 1,
            Err(_) => return false,
        }
    }
    true
}

#[cfg(test)]
#[path = "atomic_writer_tests.rs"]
mod tests;
