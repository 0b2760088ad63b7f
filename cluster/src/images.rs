//! Container images without a registry: an OCI image-layout tarball built from files on this host, imported
//! into a containerd. The busybox image holds Debian's static busybox with its applet links, enough for sh,
//! httpd, nc, wget, sleep and the like; the pause image (for containerd's CRI plugin, which upstream's
//! kubelet uses) holds upstream's pause.c compiled statically here.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::process::run_checked;
use crate::{Error, upstream};

/// The name of the busybox image; pods saying `image: busybox` resolve to it.
pub const BUSYBOX_IMAGE: &str = "docker.io/library/busybox:latest";
/// Where Debian's busybox-static installs the binary.
pub const BUSYBOX_BINARY: &str = "/bin/busybox";
/// The name of the pause image; containerd's CRI plugin is configured with it as `sandbox_image`.
pub const PAUSE_IMAGE: &str = "registry.k8s.io/pause:3.10";
/// The containerd namespace images are imported into (the kubelet's).
pub const NAMESPACE: &str = "k8s.io";

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const DEFAULT_PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The OCI architecture name of this machine.
fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// A file tree for one image layer, every entry owned by root with time 0 so the layer is reproducible.
#[derive(Debug, Default)]
pub struct Layer {
    entries: Vec<(String, Entry)>,
}

#[derive(Debug)]
enum Entry {
    Dir(u32),
    File(Vec<u8>, u32),
    Symlink(String),
}

impl Layer {
    /// Adds directory `path` (relative, e.g. `tmp`) with `mode`.
    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.entries.push((path.to_string(), Entry::Dir(mode)));
        self
    }

    /// Adds file `path` holding `content` with `mode`.
    pub fn file(&mut self, path: &str, content: Vec<u8>, mode: u32) -> &mut Self {
        self.entries
            .push((path.to_string(), Entry::File(content, mode)));
        self
    }

    /// Adds symlink `path` pointing at `target`.
    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        self.entries
            .push((path.to_string(), Entry::Symlink(target.to_string())));
        self
    }

    /// The layer as an uncompressed tar archive.
    pub fn to_tar(&self) -> std::io::Result<Vec<u8>> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, entry) in &self.entries {
            let mut header = tar::Header::new_gnu();
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            match entry {
                Entry::Dir(mode) => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(*mode);
                    header.set_size(0);
                    builder.append_data(&mut header, format!("{path}/"), std::io::empty())?;
                }
                Entry::File(content, mode) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_size(content.len() as u64);
                    builder.append_data(&mut header, path, content.as_slice())?;
                }
                Entry::Symlink(target) => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_size(0);
                    builder.append_link(&mut header, path, target)?;
                }
            }
        }
        builder.into_inner()
    }
}

/// The busybox root filesystem: /bin/busybox, a link for each applet where `busybox --list-full` puts it,
/// /etc/passwd and /etc/group with root and nobody, and /tmp.
pub fn busybox_layer(busybox: &[u8], applets: &[String]) -> Layer {
    let mut layer = Layer::default();
    for dir in [
        "bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "proc", "sys", "dev",
    ] {
        layer.dir(dir, 0o755);
    }
    layer.dir("tmp", 0o1777);
    layer.file("bin/busybox", busybox.to_vec(), 0o755);
    for applet in applets {
        let applet = applet.trim().trim_start_matches('/');
        if applet.is_empty() || applet == "bin/busybox" {
            continue;
        }
        layer.symlink(applet, "/bin/busybox");
    }
    layer.file(
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
            .to_vec(),
        0o644,
    );
    layer.file("etc/group", b"root:x:0:\nnobody:x:65534:\n".to_vec(), 0o644);
    layer
}

/// An OCI image-layout tarball named `name` with one layer and config `Cmd`/`Env`.
pub fn image_tarball(name: &str, layer: &Layer, cmd: &[&str]) -> std::io::Result<Vec<u8>> {
    let layer_tar = layer.to_tar()?;
    let diff_id = format!("sha256:{}", sha256_hex(&layer_tar));
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&layer_tar)?;
    let layer_gz = gz.finish()?;
    let layer_hex = sha256_hex(&layer_gz);

    let config = serde_json::to_vec(&json!({
        "architecture": architecture(),
        "os": "linux",
        "config": {"Cmd": cmd, "Env": [DEFAULT_PATH_ENV]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "ferrokube images", "created": "1970-01-01T00:00:00Z"}],
        "created": "1970-01-01T00:00:00Z",
    }))?;
    let config_hex = sha256_hex(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": CONFIG_TYPE, "digest": format!("sha256:{config_hex}"), "size": config.len()},
        "layers": [{"mediaType": LAYER_TYPE, "digest": format!("sha256:{layer_hex}"), "size": layer_gz.len()}],
    }))?;
    let manifest_hex = sha256_hex(&manifest);
    let tag = name.rsplit_once(':').map_or("latest", |(_, tag)| tag);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": MANIFEST_TYPE,
            "digest": format!("sha256:{manifest_hex}"),
            "size": manifest.len(),
            "platform": {"architecture": architecture(), "os": "linux"},
            "annotations": {
                "io.containerd.image.name": name,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    }))?;

    let mut outer = tar::Builder::new(Vec::new());
    let mut add = |path: &str, content: &[u8]| -> std::io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_size(content.len() as u64);
        outer.append_data(&mut header, path, content)
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    add("index.json", &index)?;
    add(&format!("blobs/sha256/{manifest_hex}"), &manifest)?;
    add(&format!("blobs/sha256/{config_hex}"), &config)?;
    add(&format!("blobs/sha256/{layer_hex}"), &layer_gz)?;
    outer.into_inner()
}

/// The busybox image tarball, built once into `$FERROKUBE_CACHE/images/` (from /bin/busybox, Debian's
/// busybox-static; `hack/deps.sh` installs it).
pub fn busybox_tarball() -> Result<PathBuf, Error> {
    let dir = upstream::cache_dir().join("images");
    let path = dir.join("busybox.tar");
    if path.is_file() {
        return Ok(path);
    }
    let binary = Path::new(BUSYBOX_BINARY);
    let busybox = std::fs::read(binary).map_err(|e| {
        Error::io(
            binary,
            std::io::Error::new(
                e.kind(),
                format!("{e} (install Debian's busybox-static: run hack/deps.sh)"),
            ),
        )
    })?;
    let listed = Command::new(binary)
        .arg("--list-full")
        .output()
        .map_err(|e| Error::io(binary, e))?;
    if !listed.status.success() {
        return Err(Error::io(
            binary,
            std::io::Error::other(format!("`busybox --list-full` failed: {}", listed.status)),
        ));
    }
    let applets: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let tarball = image_tarball(BUSYBOX_IMAGE, &busybox_layer(&busybox, &applets), &["sh"])
        .map_err(|e| Error::io(&path, e))?;
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    // Written aside and renamed, so concurrent test binaries never see half a file.
    let partial = dir.join(format!("busybox.tar.{}.partial", std::process::id()));
    std::fs::write(&partial, tarball).map_err(|e| Error::io(&partial, e))?;
    std::fs::rename(&partial, &path).map_err(|e| Error::io(&path, e))?;
    Ok(path)
}

/// Where upstream's pause.c is: in the Kubernetes module hack/upstream downloaded into the Go module cache.
pub fn pause_source() -> PathBuf {
    upstream::cache_dir()
        .join("go/mod/k8s.io")
        .join(format!(
            "kubernetes@{}",
            component_base::version::KUBERNETES_VERSION
        ))
        .join("build/pause/linux/pause.c")
}

/// The pause image's root filesystem: the binary as /pause, as upstream's image has it.
pub fn pause_layer(pause: &[u8]) -> Layer {
    let mut layer = Layer::default();
    layer.file("pause", pause.to_vec(), 0o755);
    layer
}

/// The pause image tarball, built once into `$FERROKUBE_CACHE/images/`: upstream's pause.c compiled with
/// `gcc -static` (no registry can give us the image; upstream's Makefile builds it the same way).
pub fn pause_tarball() -> Result<PathBuf, Error> {
    let dir = upstream::cache_dir().join("images");
    let path = dir.join("pause.tar");
    if path.is_file() {
        return Ok(path);
    }
    let source = pause_source();
    if !source.is_file() {
        return Err(Error::io(
            &source,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "upstream's pause.c is missing (run `hack/upstream/build.sh kubelet`, which downloads the module)",
            ),
        ));
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let binary = dir.join(format!("pause.{}.partial", std::process::id()));
    let version = format!(
        "-DVERSION=ferrokube-{}",
        component_base::version::KUBERNETES_VERSION
    );
    let compiled = Command::new("gcc")
        .args(["-static", "-Os", "-Wall", &version, "-o"])
        .arg(&binary)
        .arg(&source)
        .output()
        .map_err(|source| Error::Spawn {
            name: "gcc".into(),
            source,
        })?;
    if !compiled.status.success() {
        return Err(Error::io(
            &source,
            std::io::Error::other(format!(
                "gcc -static failed ({}): {} (install gcc and libc6-dev)",
                compiled.status,
                String::from_utf8_lossy(&compiled.stderr).trim()
            )),
        ));
    }
    let pause = std::fs::read(&binary).map_err(|e| Error::io(&binary, e))?;
    let _ = std::fs::remove_file(&binary);
    let tarball = image_tarball(PAUSE_IMAGE, &pause_layer(&pause), &["/pause"])
        .map_err(|e| Error::io(&path, e))?;
    let partial = dir.join(format!("pause.tar.{}.partial", std::process::id()));
    std::fs::write(&partial, tarball).map_err(|e| Error::io(&partial, e))?;
    std::fs::rename(&partial, &path).map_err(|e| Error::io(&path, e))?;
    Ok(path)
}

/// Builds (once) and imports the pause image into the containerd at `socket`.
pub fn import_pause(socket: &Path) -> Result<(), Error> {
    import(socket, &pause_tarball()?)
}

/// Imports image tarball `tarball` into the containerd at `socket` (namespace k8s.io), unpacked into its
/// default snapshotter.
pub fn import(socket: &Path, tarball: &Path) -> Result<(), Error> {
    run_checked(ctr(socket).args(["images", "import"]).arg(tarball)).map(|_| ())
}

/// Gives image `source` in the containerd at `socket` the further name `target`.
pub fn tag(socket: &Path, source: &str, target: &str) -> Result<(), Error> {
    run_checked(ctr(socket).args(["images", "tag", "--force", source, target])).map(|_| ())
}

/// `ctr` against the containerd at `socket`, in the kubelet's namespace.
fn ctr(socket: &Path) -> Command {
    let mut command = Command::new("ctr");
    command.arg("--address").arg(socket).args(["-n", NAMESPACE]);
    command
}

/// Builds (once) and imports the busybox image into the containerd at `socket`.
pub fn import_busybox(socket: &Path) -> Result<(), Error> {
    import(socket, &busybox_tarball()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(tar_bytes: &[u8]) -> Vec<(String, tar::EntryType, Vec<u8>, Option<String>)> {
        let mut archive = tar::Archive::new(tar_bytes);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().to_string_lossy().into_owned();
                let kind = e.header().entry_type();
                let link = e
                    .link_name()
                    .unwrap()
                    .map(|l| l.to_string_lossy().into_owned());
                let mut content = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut content).unwrap();
                (path, kind, content, link)
            })
            .collect()
    }

    #[test]
    fn busybox_layer_links_applets_and_has_users() {
        let applets = vec!["bin/busybox".into(), "bin/sh".into(), "usr/bin/wget".into()];
        let tar_bytes = busybox_layer(b"ELF", &applets).to_tar().unwrap();
        let entries = entries(&tar_bytes);
        let find = |p: &str| entries.iter().find(|e| e.0 == p).cloned();
        assert_eq!(find("bin/busybox").unwrap().2, b"ELF");
        assert_eq!(find("bin/sh").unwrap().3.as_deref(), Some("/bin/busybox"));
        assert_eq!(
            find("usr/bin/wget").unwrap().3.as_deref(),
            Some("/bin/busybox")
        );
        assert_eq!(entries.iter().filter(|e| e.0 == "bin/busybox").count(), 1);
        assert!(
            String::from_utf8(find("etc/passwd").unwrap().2)
                .unwrap()
                .contains("nobody:x:65534")
        );
        assert!(find("etc/group").is_some());
        assert!(find("tmp/").is_some());
    }

    #[test]
    fn the_pause_layer_is_one_executable_at_the_root() {
        let entries = entries(&pause_layer(b"ELF").to_tar().unwrap());
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].0, "pause");
        assert_eq!(entries[0].2, b"ELF");
        assert!(pause_source().ends_with("build/pause/linux/pause.c"));
    }

    #[test]
    fn image_tarball_is_a_consistent_oci_layout() {
        let layer = busybox_layer(b"ELF", &["bin/sh".into()]);
        let tarball = image_tarball(BUSYBOX_IMAGE, &layer, &["sh"]).unwrap();
        // Reproducible: the same input gives the same bytes.
        assert_eq!(
            tarball,
            image_tarball(BUSYBOX_IMAGE, &layer, &["sh"]).unwrap()
        );
        let entries = entries(&tarball);
        let blob = |digest: &str| {
            let hex = digest.strip_prefix("sha256:").unwrap();
            let e = entries
                .iter()
                .find(|e| e.0 == format!("blobs/sha256/{hex}"))
                .unwrap();
            assert_eq!(sha256_hex(&e.2), hex, "blob {hex} matches its digest");
            e.2.clone()
        };
        let index: serde_json::Value =
            serde_json::from_slice(&entries.iter().find(|e| e.0 == "index.json").unwrap().2)
                .unwrap();
        let descriptor = &index["manifests"][0];
        assert_eq!(
            descriptor["annotations"]["io.containerd.image.name"],
            BUSYBOX_IMAGE
        );
        let manifest: serde_json::Value =
            serde_json::from_slice(&blob(descriptor["digest"].as_str().unwrap())).unwrap();
        let config: serde_json::Value =
            serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
        assert_eq!(config["config"]["Cmd"], json!(["sh"]));
        let layer_gz = blob(manifest["layers"][0]["digest"].as_str().unwrap());
        let mut layer_tar = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(layer_gz.as_slice()),
            &mut layer_tar,
        )
        .unwrap();
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            format!("sha256:{}", sha256_hex(&layer_tar))
        );
    }
}
