//! A containerd of a test's own with busybox imported, and ferrokube-kubelet's runtime layer connected to
//! it, for the tests of that layer against a real containerd.

use std::path::PathBuf;

use ferrokube_cluster::Containerd;
use ferrokube_cluster::images;
use ferrokube_kubelet::runtime::{ImageConfig, Runtime};

/// The runtime, the busybox image's configuration, and what they live on; fields drop in order, the
/// directory last.
pub struct RuntimeFixture {
    /// The runtime layer, with its FIFOs under `dir`.
    pub runtime: Runtime,
    /// busybox, as the runtime resolved it.
    pub image: ImageConfig,
    /// The containerd the runtime talks to.
    pub containerd: Containerd,
    /// containerd's root and state, the FIFOs and the logs.
    pub dir: tempfile::TempDir,
}

impl RuntimeFixture {
    /// Starts a containerd in a new directory named with `prefix`, imports busybox and connects.
    pub async fn start(prefix: &str) -> Self {
        let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
        let containerd = Containerd::start(dir.path()).unwrap();
        images::import_busybox(containerd.socket()).unwrap();
        let runtime = Runtime::connect(containerd.socket())
            .await
            .unwrap()
            .with_fifo_dir(&dir.path().join("fifo"));
        let image = runtime
            .image("busybox")
            .await
            .unwrap()
            .expect("busybox is in the store after the import");
        Self {
            runtime,
            image,
            containerd,
            dir,
        }
    }

    /// Where container `id`'s CRI log goes.
    pub fn log(&self, id: &str) -> PathBuf {
        self.dir.path().join("logs").join(id).join("0.log")
    }
}

/// `name` made unique to this process and moment, for container ids.
pub fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{name}-{}-{}", std::process::id(), nanos % 100_000)
}
