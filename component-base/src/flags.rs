//! Flags every component shares, spelled and defaulted as upstream's, and the parsing rule that an invalid
//! flag is one line on stderr and exit code 2.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgMatches, Args, CommandFactory, Parser};

use crate::client::ClientOptions;

/// Parses the process arguments; an error is printed as one line naming the flag, and the process exits 2.
/// `--help` and `--version` print in full and exit 0.
pub fn parse<T: Parser>() -> T {
    let matches = parse_matches::<T>();
    T::from_arg_matches(&matches).unwrap_or_else(|e| exit_with(&e))
}

/// Parses the process arguments into raw matches (to ask which flags were given), with the same error
/// handling as [`parse`].
pub fn parse_matches<T: CommandFactory>() -> ArgMatches {
    T::command()
        .try_get_matches()
        .unwrap_or_else(|e| exit_with(&e))
}

fn exit_with(e: &clap::Error) -> ! {
    if !e.use_stderr() {
        e.exit();
    }
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("invalid arguments");
    eprintln!("{first} (see --help)");
    std::process::exit(2);
}

/// `--kubeconfig`, `--kube-api-qps`, `--kube-api-burst`; the component supplies its upstream defaults.
#[derive(Args, Clone, Debug)]
pub struct ClientFlags {
    /// Path to a kubeconfig file with the apiserver's address and this component's credentials.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Queries per second to the apiserver, enforced client-side.
    #[arg(long)]
    pub kube_api_qps: Option<f32>,
    /// Burst of queries to the apiserver, enforced client-side.
    #[arg(long)]
    pub kube_api_burst: Option<u32>,
}

impl ClientFlags {
    /// The client options, with the component's defaults for what was not given.
    pub fn options(&self, default_qps: f32, default_burst: u32) -> ClientOptions {
        ClientOptions {
            kubeconfig: self.kubeconfig.clone(),
            qps: self.kube_api_qps.unwrap_or(default_qps),
            burst: self.kube_api_burst.unwrap_or(default_burst),
        }
    }
}

/// Upstream's SecureServingOptions: where and with which certificate `/metrics` and the health endpoints are
/// served over HTTPS.
#[derive(Args, Clone, Debug)]
pub struct ServingFlags {
    /// The IP address on which to listen for the --secure-port port.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// The port on which to serve HTTPS with authentication and authorization; 0 disables serving.
    #[arg(long)]
    pub secure_port: Option<u16>,
    /// The directory where the TLS certs are located. If --tls-cert-file and --tls-private-key-file are
    /// provided, this flag will be ignored.
    #[arg(long)]
    pub cert_dir: Option<PathBuf>,
    /// File containing the default x509 Certificate for HTTPS (CA cert, if any, concatenated after server
    /// cert). Without it and --tls-private-key-file, a self-signed certificate and key are generated for
    /// the public address and saved to the directory specified by --cert-dir (in memory without it).
    #[arg(long)]
    pub tls_cert_file: Option<PathBuf>,
    /// File containing the default x509 private key matching --tls-cert-file.
    #[arg(long)]
    pub tls_private_key_file: Option<PathBuf>,
    /// Comma-separated list of cipher suites for the server, by Go's names; omitted, every suite. TLS 1.3
    /// suites are not configurable, and suites rustls does not implement are never offered.
    #[arg(long, value_delimiter = ',')]
    pub tls_cipher_suites: Vec<String>,
    /// Minimum TLS version supported. Possible values: VersionTLS10, VersionTLS11, VersionTLS12,
    /// VersionTLS13 (below 1.2 is not implemented: TLS 1.2 is the floor).
    #[arg(long, default_value = "")]
    pub tls_min_version: String,
}

/// Upstream's leader-election flags and defaults (component-base/config/v1alpha1).
#[derive(Args, Clone, Debug)]
pub struct LeaderElectionFlags {
    /// Start a leader election client and gain leadership before doing any work.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", require_equals = true)]
    pub leader_elect: bool,
    /// How long non-leaders wait after observing a renewal before trying to take the lease.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub leader_elect_lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leading.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub leader_elect_renew_deadline: Duration,
    /// How long clients wait between attempts to acquire and renew.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub leader_elect_retry_period: Duration,
    /// The lock object type; only `leases` exists since Kubernetes 1.24.
    #[arg(long, default_value = "leases", value_parser = ["leases"])]
    pub leader_elect_resource_lock: String,
    /// The name of the Lease; defaults to the component's name.
    #[arg(long)]
    pub leader_elect_resource_name: Option<String>,
    /// The namespace of the Lease.
    #[arg(long, default_value = "kube-system")]
    pub leader_elect_resource_namespace: String,
}

/// `-v`/`--v`: klog's verbosity.
#[derive(Args, Clone, Debug)]
pub struct LoggingFlags {
    /// Log verbosity: 0–1 info, 2–4 debug, 5 and more trace.
    #[arg(short = 'v', long = "v", default_value_t = 0)]
    pub verbosity: u8,
}

/// Parses a Go duration (`1h2m3s`, `1.5s`, `300ms`, `0`), the form upstream's duration flags take.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {text:?} (use Go's form, e.g. 15s, 1m30s, 500ms)");
    match text {
        "0" => return Ok(Duration::ZERO),
        "" => return Err(invalid()),
        _ => {}
    }
    let mut rest = text;
    let mut total = 0.0_f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let value: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += value * seconds_per_unit;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_durations_are_refused_with_the_value_named() {
        for bad in ["", "15", "s", "15x", "-1s", "1..5s"] {
            let error = parse_duration(bad).expect_err(bad);
            assert!(error.contains(&format!("{bad:?}")), "{error}");
        }
    }
}
