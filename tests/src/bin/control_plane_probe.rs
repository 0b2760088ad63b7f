//! Starts a control plane, prints its process ids and state directory as one JSON line, then ends as its
//! argument says: `exit` (held in a static, as a test binary's shared control plane is), `panic`, or
//! `wait` (until a signal). The cleanup tests check that nothing it started survives.

use std::io::Write;
use std::sync::OnceLock;

use ferrokube_cluster::{ControlPlane, ControlPlaneConfig, cleanup};

static HELD: OnceLock<ControlPlane> = OnceLock::new();

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    cleanup::install_signal_handlers();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let control_plane = runtime
        .block_on(ControlPlane::start(ControlPlaneConfig::default()))
        .unwrap_or_else(|e| panic!("start: {e}"));
    let report = serde_json::json!({ "pids": control_plane.pids(), "dir": control_plane.dir() });
    let _ = HELD.set(control_plane);
    println!("{report}");
    std::io::stdout().flush().expect("flush");
    match mode.as_str() {
        "exit" => std::process::exit(0),
        "panic" => panic!("the probe panics on purpose"),
        _ => loop {
            std::thread::park();
        },
    }
}
