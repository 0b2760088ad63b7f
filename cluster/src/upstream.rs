//! Where the upstream binaries built by hack/upstream live: `${FERROKUBE_CACHE:-~/.cache/ferrokube}/upstream/
//! <Kubernetes version>/bin`, the same path the build script writes.

use std::path::PathBuf;

use component_base::version::KUBERNETES_VERSION;

use crate::Error;

/// The cache root: `$FERROKUBE_CACHE`, else `~/.cache/ferrokube`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FERROKUBE_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".cache/ferrokube")
}

/// The directory holding the upstream binaries of the pinned Kubernetes version.
pub fn bin_dir() -> PathBuf {
    cache_dir()
        .join("upstream")
        .join(KUBERNETES_VERSION)
        .join("bin")
}

/// The path of upstream binary `name`, or an error saying how to build it.
pub fn binary(name: &str) -> Result<PathBuf, Error> {
    let path = bin_dir().join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::MissingUpstreamBinary {
            name: name.to_string(),
            path,
        })
    }
}
