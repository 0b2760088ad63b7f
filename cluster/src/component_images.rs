//! Images of ferrokube's own control-plane components, the ones the Helm chart runs as pods
//! (`ferrokube.local/ferrokube-scheduler:VERSION`, `ferrokube.local/ferrokube-controller-manager:VERSION`),
//! made from the binaries beside `ferrokube` without a registry or a container build tool.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::UNIX_EPOCH;

use component_base::version::FERROKUBE_VERSION;

use crate::binary_image::binary_image_tarball;
use crate::images::import;
use crate::local::components::sibling_binary;
use crate::process::run_checked;
use crate::{Error, upstream};

/// The images' registry part: never pulled, only imported, as for the other local images.
pub const IMAGE_REGISTRY: &str = "ferrokube.local";
/// The components that run as pods of a cluster, by binary name.
pub const COMPONENTS: [&str; 2] = ["ferrokube-scheduler", "ferrokube-controller-manager"];

/// The image of component `binary`, tagged with ferrokube's version, e.g.
/// `ferrokube.local/ferrokube-scheduler:0.1.0`.
pub fn image(binary: &str) -> String {
    format!("{IMAGE_REGISTRY}/{binary}:{FERROKUBE_VERSION}")
}

/// The cached tarball's file name for a binary of `len` bytes modified at `modified_ns`: a new build of the
/// binary gets a new tarball.
fn tarball_name(binary: &str, len: u64, modified_ns: u128) -> String {
    format!("{binary}-{len:x}-{modified_ns:x}.tar")
}

/// The image tarball of component `binary` (found beside `ferrokube`), built once per build of the binary
/// into `$FERROKUBE_CACHE/images/`. Debug information is stripped first: a debug build's binary is mostly
/// that, and the image only needs to run.
pub fn tarball(binary: &str) -> Result<PathBuf, Error> {
    let source = sibling_binary(binary)?;
    let metadata = std::fs::metadata(&source).map_err(|e| Error::io(&source, e))?;
    let modified_ns = metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let dir = upstream::cache_dir().join("images");
    let path = dir.join(tarball_name(binary, metadata.len(), modified_ns));
    if path.is_file() {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let work = tempfile::tempdir_in(&dir).map_err(|e| Error::io(&dir, e))?;
    let stripped = work.path().join(binary);
    run_checked(
        Command::new("strip")
            .arg("--strip-debug")
            .arg("-o")
            .arg(&stripped)
            .arg(&source),
    )?;
    let content = binary_image_tarball(&image(binary), &stripped)?;
    // Written aside and renamed, so concurrent test binaries never see half a file.
    let partial = work.path().join("image.tar");
    std::fs::write(&partial, content).map_err(|e| Error::io(&partial, e))?;
    std::fs::rename(&partial, &path).map_err(|e| Error::io(&path, e))?;
    remove_older_tarballs(&dir, binary, &path);
    Ok(path)
}

/// Removes the tarballs of earlier builds of `binary`; best effort, they are only a cache.
fn remove_older_tarballs(dir: &Path, binary: &str, current: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path != current && is_tarball_of(&name, binary) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Whether `file_name` is a cached tarball of `binary` (and not of a binary whose name extends it).
fn is_tarball_of(file_name: &str, binary: &str) -> bool {
    file_name
        .strip_prefix(binary)
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|rest| rest.strip_suffix(".tar"))
        .is_some_and(|fingerprint| {
            let mut parts = fingerprint.split('-');
            let hex = |part: Option<&str>| {
                part.is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_hexdigit()))
            };
            hex(parts.next()) && hex(parts.next()) && parts.next().is_none()
        })
}

/// Imports the images of every component into the containerd at `socket`.
pub fn import_images(socket: &Path) -> Result<(), Error> {
    for binary in COMPONENTS {
        import(socket, &tarball(binary)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_named_by_component_and_version() {
        assert_eq!(
            image("ferrokube-scheduler"),
            format!("ferrokube.local/ferrokube-scheduler:{FERROKUBE_VERSION}")
        );
    }

    #[test]
    fn a_tarball_is_recognised_as_its_binarys_only() {
        let name = tarball_name("ferrokube-scheduler", 0x1234, 0xabcdef);
        assert_eq!(name, "ferrokube-scheduler-1234-abcdef.tar");
        assert!(is_tarball_of(&name, "ferrokube-scheduler"));
        assert!(!is_tarball_of(&name, "ferrokube"));
        assert!(!is_tarball_of(&name, "ferrokube-controller-manager"));
        assert!(!is_tarball_of(
            "ferrokube-scheduler-1234.tar",
            "ferrokube-scheduler"
        ));
        assert!(!is_tarball_of(
            "ferrokube-scheduler-x-1.tar",
            "ferrokube-scheduler"
        ));
    }
}
