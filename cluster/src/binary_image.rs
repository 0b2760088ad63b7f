//! Images of one host binary: the binary and the shared libraries it loads (found with `ldd`), at the
//! paths the host has them, so a dynamically linked program of the workspace (the test server) runs in a
//! container without a registry or a static toolchain.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;
use crate::images::{Layer, image_tarball, import};

/// The test server's image (the `testserver` binary of ferrokube-tests, at `/testserver`).
pub const TESTSERVER_IMAGE: &str = "ferrokube.test/testserver:latest";

/// The libraries in `ldd` output: `name => /path (addr)` and `/path (addr)` lines; the vDSO and
/// unresolved names are skipped.
pub fn parse_ldd(output: &str) -> Vec<PathBuf> {
    output
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, resolved)) => resolved.trim(),
                None => line,
            };
            let path = path.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// A layer holding `binary` at `/NAME`, each library at its host path, and /tmp.
pub fn binary_layer(name: &str, binary: Vec<u8>, libraries: &[(PathBuf, Vec<u8>)]) -> Layer {
    let mut layer = Layer::default();
    layer.dir("tmp", 0o1777);
    let mut dirs: Vec<String> = Vec::new();
    for (path, _) in libraries {
        let mut ancestors: Vec<&Path> = path.ancestors().skip(1).collect();
        ancestors.reverse();
        for dir in ancestors {
            let dir = dir.to_string_lossy().trim_start_matches('/').to_string();
            if !dir.is_empty() && !dirs.contains(&dir) {
                layer.dir(&dir, 0o755);
                dirs.push(dir);
            }
        }
    }
    for (path, content) in libraries {
        let relative = path.to_string_lossy().trim_start_matches('/').to_string();
        layer.file(&relative, content.clone(), 0o755);
    }
    layer.file(name, binary, 0o755);
    layer
}

/// An OCI image tarball named `image` holding `binary` and the libraries `ldd` lists for it; the image runs
/// `/NAME` (the binary's file name).
pub fn binary_image_tarball(image: &str, binary: &Path) -> Result<Vec<u8>, Error> {
    let read = |path: &Path| std::fs::read(path).map_err(|e| Error::io(path, e));
    let listed = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|source| Error::Spawn {
            name: "ldd".into(),
            source,
        })?;
    let mut libraries = Vec::new();
    for library in parse_ldd(&String::from_utf8_lossy(&listed.stdout)) {
        let content = read(&library)?;
        libraries.push((library, content));
    }
    let name = binary
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "binary".to_string());
    let layer = binary_layer(&name, read(binary)?, &libraries);
    let command = format!("/{name}");
    image_tarball(image, &layer, &[&command]).map_err(|e| Error::io(binary, e))
}

/// Builds an image named `image` from `binary` and its libraries and imports it into the containerd at
/// `socket`; the image runs `/NAME` (the binary's file name).
pub fn import_binary_image(socket: &Path, image: &str, binary: &Path) -> Result<(), Error> {
    let tarball = binary_image_tarball(image, binary)?;
    let dir = tempfile::tempdir().map_err(|e| Error::io(&std::env::temp_dir(), e))?;
    let path = dir.path().join("image.tar");
    std::fs::write(&path, tarball).map_err(|e| Error::io(&path, e))?;
    import(socket, &path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_the_library_paths() {
        let output = "\tlinux-vdso.so.1 (0x00007ffd)\n\
            \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f17)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f17)\n\
            \tlibmissing.so => not found\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f17)\n";
        assert_eq!(
            parse_ldd(output),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
        assert!(parse_ldd("\tnot a dynamic executable\n").is_empty());
    }

    #[test]
    fn the_layer_holds_the_binary_and_libraries_under_their_directories() {
        let libraries = vec![
            (
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                b"libc".to_vec(),
            ),
            (PathBuf::from("/lib64/ld-linux-x86-64.so.2"), b"ld".to_vec()),
        ];
        let tar = binary_layer("testserver", b"ELF".to_vec(), &libraries)
            .to_tar()
            .unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let paths: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        let position = |p: &str| paths.iter().position(|x| x.trim_end_matches('/') == p);
        for path in [
            "tmp",
            "lib",
            "lib/x86_64-linux-gnu",
            "lib/x86_64-linux-gnu/libc.so.6",
            "lib64",
            "lib64/ld-linux-x86-64.so.2",
            "testserver",
        ] {
            assert!(position(path).is_some(), "{path} missing from {paths:?}");
        }
        assert!(position("lib") < position("lib/x86_64-linux-gnu/libc.so.6"));
    }
}
