//! kube-scheduler's command line: the shared control-plane flags plus `--config`, and which of them were
//! given explicitly (they override the configuration file by upstream's rule, see `config`).

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, FromArgMatches, Parser};
use component_base::app::ControlPlaneFlags;
use component_base::flags::{ClientFlags, LeaderElectionFlags};
use component_base::version;

use crate::config::{Config, FlagOverrides};

/// ferrokube-scheduler's command line, upstream's flags.
#[derive(Parser, Debug)]
#[command(name = "ferrokube-scheduler", version = version::long_version(),
          about = "ferrokube-scheduler: a drop-in replacement for kube-scheduler")]
pub struct Flags {
    #[command(flatten)]
    pub common: ControlPlaneFlags,
    /// The path to the configuration file (KubeSchedulerConfiguration).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Parses the process arguments: the flags, and those given explicitly. Errors exit 2 with one line.
pub fn parse() -> (Flags, FlagOverrides) {
    let matches = component_base::flags::parse_matches::<Flags>();
    let flags = match Flags::from_arg_matches(&matches) {
        Ok(flags) => flags,
        Err(e) => {
            eprintln!(
                "{}",
                e.to_string().lines().next().unwrap_or("invalid arguments")
            );
            std::process::exit(2);
        }
    };
    let overrides = overrides(&flags, &matches);
    (flags, overrides)
}

fn overrides(flags: &Flags, matches: &ArgMatches) -> FlagOverrides {
    let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    let election = &flags.common.leader_election;
    let client = &flags.common.client;
    FlagOverrides {
        kubeconfig: client.kubeconfig.clone(),
        leader_elect: given("leader_elect").then_some(election.leader_elect),
        lease_duration: given("leader_elect_lease_duration")
            .then_some(election.leader_elect_lease_duration),
        renew_deadline: given("leader_elect_renew_deadline")
            .then_some(election.leader_elect_renew_deadline),
        retry_period: given("leader_elect_retry_period")
            .then_some(election.leader_elect_retry_period),
        resource_lock: given("leader_elect_resource_lock")
            .then(|| election.leader_elect_resource_lock.clone()),
        resource_name: election.leader_elect_resource_name.clone(),
        resource_namespace: given("leader_elect_resource_namespace")
            .then(|| election.leader_elect_resource_namespace.clone()),
        kube_api_qps: client.kube_api_qps,
        kube_api_burst: client.kube_api_burst,
    }
}

/// The shared start-up's flags as the resolved configuration says.
pub fn control_plane_flags(flags: &ControlPlaneFlags, config: &Config) -> ControlPlaneFlags {
    let election = &config.leader_election;
    let connection = &config.client_connection;
    ControlPlaneFlags {
        client: ClientFlags {
            kubeconfig: connection.kubeconfig.clone(),
            kube_api_qps: Some(connection.qps),
            kube_api_burst: Some(u32::try_from(connection.burst).unwrap_or(0)),
        },
        serving: flags.serving.clone(),
        authentication: flags.authentication.clone(),
        authorization: flags.authorization.clone(),
        leader_election: LeaderElectionFlags {
            leader_elect: election.leader_elect,
            leader_elect_lease_duration: election.lease_duration.as_std(),
            leader_elect_renew_deadline: election.renew_deadline.as_std(),
            leader_elect_retry_period: election.retry_period.as_std(),
            leader_elect_resource_lock: election.resource_lock.clone(),
            leader_elect_resource_name: Some(election.resource_name.clone()),
            leader_elect_resource_namespace: election.resource_namespace.clone(),
        },
        logging: flags.logging.clone(),
    }
}
