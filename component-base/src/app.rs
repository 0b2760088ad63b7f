//! The start-up and run loop every control-plane component shares: flags, logging, signals, the serving
//! endpoints, a checked connection to the apiserver, and leader election around the component's work.

use std::future::Future;
use std::net::SocketAddr;

use clap::Args;
use kube::Client;
use tokio_util::sync::CancellationToken;

use crate::client::{self, ClientError, ClientOptions};
use crate::flags::{ClientFlags, LeaderElectionFlags, LoggingFlags, ServingFlags};
use crate::leaderelection::{self, LeaderElectionConfig, LeaderElector};
use crate::serving::authorities::{AuthoritySources, Follower};
use crate::serving::options::{AuthenticationFlags, AuthorizationFlags};
use crate::serving::{
    Readiness, Server, ServingError, options, serving_certificate, serving_files, tls,
};
use crate::{logging, shutdown};

/// Flags shared by kube-scheduler and kube-controller-manager.
#[derive(Args, Clone, Debug)]
pub struct ControlPlaneFlags {
    #[command(flatten)]
    pub client: ClientFlags,
    #[command(flatten)]
    pub serving: ServingFlags,
    #[command(flatten)]
    pub authentication: AuthenticationFlags,
    #[command(flatten)]
    pub authorization: AuthorizationFlags,
    #[command(flatten)]
    pub leader_election: LeaderElectionFlags,
    #[command(flatten)]
    pub logging: LoggingFlags,
}

/// What differs between components in the shared start-up: upstream's name and defaults.
#[derive(Clone, Copy, Debug)]
pub struct ComponentDefaults {
    /// Upstream's component name; also the default Lease name.
    pub name: &'static str,
    /// Default `--kube-api-qps`.
    pub qps: f32,
    /// Default `--kube-api-burst`.
    pub burst: u32,
    /// Default `--secure-port`.
    pub port: u16,
    /// Default `--authentication-tolerate-lookup-failure` (true for the scheduler only).
    pub tolerate_lookup_failure: bool,
}

/// Why a component could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Serving(#[from] ServingError),
    #[error(transparent)]
    LeaderElection(#[from] leaderelection::Error),
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("{0}")]
    InvalidFlags(String),
}

/// What the component's work gets: a client, its readiness checks, and a token cancelled when it must stop
/// (shutdown, or lost leadership).
pub struct ComponentContext {
    /// A client with the component's rate limit.
    pub client: Client,
    /// The loaded kubeconfig, for components that make more clients (one per controller).
    pub config: kube::Config,
    /// The rate limit and kubeconfig path `client` was made with.
    pub client_options: ClientOptions,
    /// Checks reported by `/readyz`.
    pub readiness: Readiness,
    /// Cancelled when the work must stop.
    pub stop: CancellationToken,
}

/// Runs a control-plane component: everything before and around `work`, which runs while this replica
/// leads (or at once with `--leader-elect=false`).
pub async fn run<F, Fut>(
    defaults: ComponentDefaults,
    flags: &ControlPlaneFlags,
    work: F,
) -> Result<(), AppError>
where
    F: FnOnce(ComponentContext) -> Fut,
    Fut: Future<Output = ()>,
{
    logging::init(flags.logging.verbosity);
    flags
        .authentication
        .request_header
        .validate()
        .map_err(AppError::InvalidFlags)?;
    let shutdown = shutdown::on_signal().map_err(AppError::Signals)?;
    let port = flags.serving.secure_port.unwrap_or(defaults.port);
    // Bind before connecting so a port in use is reported at once, not after the apiserver answers.
    let server = match port {
        0 => None,
        port => Some(Server::bind(SocketAddr::new(flags.serving.bind_address, port)).await?),
    };
    let secure = match server {
        Some(server) => Some((server, secure_serving(defaults, flags).await?)),
        None => None,
    };
    let options = flags.client.options(defaults.qps, defaults.burst);
    let (client, config) = client::connect_with_config(&options).await?;
    let readiness = Readiness::default();
    let serving = secure.map(|(server, (tls, auth, follower))| {
        tokio::spawn(follower.run(auth.authenticator.clone(), shutdown.clone()));
        tokio::spawn(server.serve_https(readiness.clone(), tls, auth, shutdown.clone()))
    });
    tracing::info!(
        component = defaults.name,
        version = crate::version::long_version(),
        "started"
    );

    let context = |stop| ComponentContext {
        client: client.clone(),
        config: config.clone(),
        client_options: options.clone(),
        readiness: readiness.clone(),
        stop,
    };
    let result = if flags.leader_election.leader_elect {
        let config = LeaderElectionConfig::from_flags(
            &flags.leader_election,
            defaults.name,
            leaderelection::default_identity(),
        );
        let elector = LeaderElector::new(client.clone(), config)?;
        elector
            .run(shutdown.clone(), |leading| work(context(leading)))
            .await
            .map_err(AppError::from)
    } else {
        work(context(shutdown.clone())).await;
        Ok(())
    };
    shutdown.cancel();
    if let Some(serving) = serving
        && let Err(e) = serving.await
    {
        tracing::warn!("serving task failed: {e}");
    }
    result
}

/// The secure port's TLS (certificate and client CAs), its delegated authentication and authorization, and
/// what keeps the certificate and CAs current.
async fn secure_serving(
    defaults: ComponentDefaults,
    flags: &ControlPlaneFlags,
) -> Result<
    (
        tokio::sync::watch::Receiver<tls::ServerTls>,
        std::sync::Arc<crate::serving::delegating::DelegatingAuth>,
        Follower,
    ),
    ServingError,
> {
    let policy = crate::serving::tls_policy::TlsPolicy::new(
        &flags.serving.tls_min_version,
        &flags.serving.tls_cipher_suites,
    )?;
    let certificate = serving_certificate(&flags.serving, defaults.name)?;
    let delegation = options::delegation(
        &flags.authentication,
        &flags.authorization,
        defaults.tolerate_lookup_failure,
    )
    .await?;
    let tls = tls::server_config(&certificate, &delegation.authorities.all_cas(), &policy)?;
    let (tls_sender, tls) = tokio::sync::watch::channel(tls);
    let auth = std::sync::Arc::new(delegation.auth);
    let follower = Follower {
        serving_files: serving_files(&flags.serving, defaults.name),
        serving: certificate,
        policy,
        sources: AuthoritySources::delegated(&flags.authentication),
        client: delegation.authentication_client,
        configmap: delegation.configmap,
        tls: tls_sender,
    };
    Ok((tls, auth, follower))
}
