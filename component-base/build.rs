//! Reads the pinned upstream versions from hack/upstream's go.mod files, the one place they are written.
use std::{env, fs, path::Path};

fn required_version(go_mod: &Path, module: &str) -> String {
    let text = fs::read_to_string(go_mod)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", go_mod.display()));
    text.lines()
        .map(|line| line.trim().trim_start_matches("require").trim())
        .find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some(module))
                .then(|| words.next())
                .flatten()
        })
        .filter(|v| v.starts_with('v'))
        .unwrap_or_else(|| panic!("{} does not require {module}", go_mod.display()))
        .to_string()
}

fn main() {
    let upstream =
        Path::new(&env::var("CARGO_MANIFEST_DIR").expect("set by cargo")).join("../hack/upstream");
    let kubernetes = upstream.join("kubernetes/go.mod");
    let etcd = upstream.join("etcd/go.mod");
    let metrics_server = upstream.join("metrics-server/go.mod");
    let coredns = upstream.join("coredns/go.mod");
    for go_mod in [&kubernetes, &etcd, &metrics_server, &coredns] {
        println!("cargo:rerun-if-changed={}", go_mod.display());
    }
    println!(
        "cargo:rustc-env=FERROKUBE_KUBERNETES_VERSION={}",
        required_version(&kubernetes, "k8s.io/kubernetes")
    );
    println!(
        "cargo:rustc-env=FERROKUBE_ETCD_VERSION={}",
        required_version(&etcd, "go.etcd.io/etcd/server/v3")
    );
    println!(
        "cargo:rustc-env=FERROKUBE_METRICS_SERVER_VERSION={}",
        required_version(&metrics_server, "sigs.k8s.io/metrics-server")
    );
    println!(
        "cargo:rustc-env=FERROKUBE_COREDNS_VERSION={}",
        required_version(&coredns, "github.com/coredns/coredns")
    );
}
