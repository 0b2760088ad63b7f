//! A volumeMount's `subPath`: a path inside the volume, refused when it would leave the volume.

use std::path::{Component, Path, PathBuf};

use super::VolumeError;

/// The host path of `sub_path` inside `volume`: relative, without `..`, and — once symlinks on the host
/// are resolved — still under the volume. A missing subPath is created as a directory (0750), as
/// upstream's kubelet does, after checking that what exists of it stays inside.
pub fn resolve(volume: &Path, sub_path: &str) -> Result<PathBuf, VolumeError> {
    check(sub_path)?;
    let joined = volume.join(sub_path);
    let Ok(base) = volume.canonicalize() else {
        return Ok(joined);
    };
    let escapes = || {
        VolumeError::Invalid(format!(
            "subpath {sub_path:?} not within volume path {:?}",
            volume.display().to_string()
        ))
    };
    // A symlink inside the volume could point anywhere: the deepest existing part must resolve inside.
    let existing = joined
        .ancestors()
        .find(|p| std::fs::symlink_metadata(p).is_ok())
        .and_then(|p| p.canonicalize().ok());
    if existing.is_some_and(|real| !real.starts_with(&base)) {
        return Err(escapes());
    }
    if std::fs::symlink_metadata(&joined).is_err() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(&joined)
            .map_err(VolumeError::io("create", &joined))?;
    }
    match joined.canonicalize() {
        Ok(real) if real.starts_with(&base) => Ok(joined),
        _ => Err(escapes()),
    }
}

/// The lexical checks on a subPath (upstream's validation: relative, no `..` element).
pub fn check(sub_path: &str) -> Result<(), VolumeError> {
    let path = Path::new(sub_path);
    if path.is_absolute() {
        return Err(VolumeError::Invalid(format!(
            "subPath {sub_path:?} must be a relative path"
        )));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(VolumeError::Invalid(format!(
            "subPath {sub_path:?} must not contain '..'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_paths_stay_in_their_volume() {
        assert!(check("a/b").is_ok());
        assert!(check("a/../b").is_err());
        assert!(check("..").is_err());
        assert!(check("/etc").is_err());
        let dir = tempfile::tempdir().unwrap();
        let volume = dir.path().join("vol");
        std::fs::create_dir_all(volume.join("inner")).unwrap();
        assert_eq!(resolve(&volume, "inner").unwrap(), volume.join("inner"));
        std::os::unix::fs::symlink("/etc", volume.join("escape")).unwrap();
        assert!(resolve(&volume, "escape").is_err());
        assert!(resolve(&volume, "escape/new").is_err());
        assert!(!Path::new("/etc/new").exists());
        // A missing subPath is made inside the volume.
        assert_eq!(
            resolve(&volume, "made/here").unwrap(),
            volume.join("made/here")
        );
        assert!(volume.join("made/here").is_dir());
    }
}
