//! A volumeMount's `subPath`: a path inside the volume, refused when it would leave the volume.

use std::path::{Component, Path, PathBuf};

use super::VolumeError;

/// The host path of `sub_path` inside `volume`: relative, without `..`, and — once symlinks on the host
/// are resolved — still under the volume.
pub fn resolve(volume: &Path, sub_path: &str) -> Result<PathBuf, VolumeError> {
    check(sub_path)?;
    let joined = volume.join(sub_path);
    // A symlink inside the volume could point anywhere: compare the resolved paths when both exist.
    if let (Ok(base), Ok(real)) = (volume.canonicalize(), joined.canonicalize())
        && !real.starts_with(&base)
    {
        return Err(VolumeError::Invalid(format!(
            "subpath {sub_path:?} not within volume path {:?}",
            volume.display().to_string()
        )));
    }
    Ok(joined)
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
    }
}
