//! Logging through `tracing`, with klog's `-v` levels mapped onto tracing's.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the process-wide logger on stderr. `RUST_LOG`, when set, overrides `verbosity`.
pub fn init(verbosity: u8) {
    let level = match verbosity {
        0..=1 => "info",
        2..=4 => "debug",
        _ => "trace",
    };
    // The HTTP and TLS stacks are noisy below warn; they only speak at the highest verbosities.
    let quiet_deps = if verbosity >= 8 {
        ""
    } else {
        ",hyper=warn,hyper_util=warn,h2=warn,rustls=warn,tower=warn,kube_client::client::builder=off"
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{level}{quiet_deps}")));
    // A second init (tests start components in-process) keeps the first logger. Colours only on a terminal:
    // log files (`ferrokube up`'s, the tests') stay plain text, as klog's.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
