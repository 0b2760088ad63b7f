//! Where the secure port's client CA and front-proxy configuration come from — the flags' files, else the
//! apiserver's extension-apiserver-authentication ConfigMap — and upstream's dynamiccertificates: the
//! serving certificate's files, the CA files and the ConfigMap are followed while the component runs, so
//! that they can be rotated without a restart. A change that does not load leaves the last good one serving.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use rustls::pki_types::CertificateDer;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::authn::Authenticator;
use super::options::{AuthenticationFlags, DelegationError};
use super::requestheader::{RequestHeaderAuthenticator, RequestHeaderConfig, RequestHeaderFlags};
use super::tls::{self, ClientCa, ServerTls, ServingCertificate, TlsError};
use super::tls_policy::TlsPolicy;

/// Where the apiserver publishes the client CA and the front proxy's configuration for delegated
/// authentication.
const AUTHENTICATION_CONFIGMAP: (&str, &str) =
    ("kube-system", "extension-apiserver-authentication");

/// How often the files are read again. Upstream hears of a change at once (fsnotify) and reads them every
/// minute regardless; reading a few small files each second is as prompt and simpler.
const FILE_CHECK_PERIOD: Duration = Duration::from_secs(1);

/// The `data` of the ConfigMap.
pub type ConfigMapData = BTreeMap<String, String>;

/// The CAs the secure port's certificate authenticators trust, and the front proxy's headers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Authorities {
    /// A client certificate one of these signed authenticates its subject.
    pub client_ca: Vec<CertificateDer<'static>>,
    /// The front proxy's configuration, when there is one.
    pub request_header: Option<RequestHeaderConfig>,
}

impl Authorities {
    /// Every CA, named to clients in the handshake.
    pub fn all_cas(&self) -> Vec<CertificateDer<'static>> {
        let front_proxy = self.request_header.iter().flat_map(|c| &c.client_ca);
        self.client_ca.iter().chain(front_proxy).cloned().collect()
    }

    /// Makes `authenticator` judge certificates by these authorities.
    pub fn install(&self, authenticator: &Authenticator) -> Result<(), TlsError> {
        let client_ca = ClientCa::of(&self.client_ca)?;
        let request_header = self
            .request_header
            .clone()
            .map(RequestHeaderAuthenticator::new)
            .transpose()?;
        authenticator.set_certificate_authenticators(client_ca, request_header);
        Ok(())
    }
}

/// Where the certificate authenticators' CAs come from.
#[derive(Clone, Debug)]
pub struct AuthoritySources {
    /// `--client-ca-file`.
    pub client_ca_file: Option<PathBuf>,
    /// The front proxy's flags; `None` where there is no front proxy (the kubelet).
    pub request_header: Option<RequestHeaderFlags>,
    /// Whether the ConfigMap gives what the files do not (not with `--authentication-skip-lookup`).
    pub lookup: bool,
}

impl AuthoritySources {
    /// The control-plane components' sources, from their flags.
    pub fn delegated(flags: &AuthenticationFlags) -> Self {
        Self {
            client_ca_file: flags.client_ca_file.clone(),
            request_header: Some(flags.request_header.clone()),
            lookup: !flags.authentication_skip_lookup,
        }
    }

    /// A client CA file alone (the kubelet's `authentication.x509.clientCAFile`).
    pub fn client_ca_file(path: Option<PathBuf>) -> Self {
        Self {
            client_ca_file: path,
            request_header: None,
            lookup: false,
        }
    }

    fn request_header_ca_file(&self) -> Option<&PathBuf> {
        self.request_header
            .as_ref()
            .and_then(|flags| flags.requestheader_client_ca_file.as_ref())
    }

    /// Whether the ConfigMap gives anything: what the files do not, when looked up.
    fn needs_configmap(&self) -> bool {
        self.lookup && (self.client_ca_file.is_none() || self.request_header_ca_file().is_none())
    }

    /// The CA files.
    fn files(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.client_ca_file
            .iter()
            .chain(self.request_header_ca_file())
            .cloned()
    }
}

/// The authorities of the files and, for what they do not give, of the ConfigMap's `data` when it was
/// read. A front-proxy configuration the ConfigMap has wrong is returned apart, as its reason: only it may
/// stop the component (see [`initial`]).
pub fn authorities(
    sources: &AuthoritySources,
    data: Option<&ConfigMapData>,
) -> Result<(Authorities, Option<String>), TlsError> {
    let client_ca = match &sources.client_ca_file {
        Some(path) => tls::read_certificates(path)?,
        None => match data.and_then(|d| d.get("client-ca-file")) {
            // As upstream's ConfigMapCAController, an unreadable bundle is logged, not fatal.
            Some(pem) => tls::parse_certificates(pem).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "ignoring the client CA of the authentication ConfigMap");
                Vec::new()
            }),
            None => Vec::new(),
        },
    };
    let from_flags = match &sources.request_header {
        Some(flags) => RequestHeaderConfig::from_flags(flags)?,
        None => None,
    };
    let (request_header, error) = match (from_flags, &sources.request_header) {
        (Some(config), _) => (Some(config), None),
        (None, None) => (None, None),
        (None, Some(_)) => match data.map(RequestHeaderConfig::from_configmap) {
            Some(Ok(config)) => (Some(config), None),
            Some(Err(reason)) => (None, Some(reason)),
            None => (None, None),
        },
    };
    let authorities = Authorities {
        client_ca,
        request_header,
    };
    Ok((authorities, error))
}

/// The authorities at start, and the ConfigMap's data when it was read. As upstream's, failing to read the
/// ConfigMap stops the component only when the front proxy's configuration was to come from it, and only
/// without `tolerate`.
pub(super) async fn initial(
    sources: &AuthoritySources,
    client: Option<&Client>,
    tolerate: bool,
) -> Result<(Authorities, Option<ConfigMapData>), DelegationError> {
    let data = match (sources.needs_configmap(), client) {
        (false, _) => None,
        (true, None) => {
            warn_no_kubeconfig(sources);
            None
        }
        (true, Some(client)) => lookup(sources, client, tolerate).await?,
    };
    let (authorities, error) = authorities(sources, data.as_ref())?;
    if let Some(reason) = error {
        tolerated(reason, tolerate)?;
    }
    Ok((authorities, data))
}

fn warn_no_kubeconfig(sources: &AuthoritySources) {
    let (namespace, name) = AUTHENTICATION_CONFIGMAP;
    for (missing, key, kind) in [
        (
            sources.client_ca_file.is_none(),
            "client-ca-file",
            "client certificate",
        ),
        (
            sources.request_header_ca_file().is_none(),
            "requestheader-client-ca-file",
            "request-header client certificate",
        ),
    ] {
        if missing {
            tracing::warn!(
                "No authentication-kubeconfig provided in order to lookup {key} in configmap/{name} in {namespace}, so {kind} authentication won't work."
            );
        }
    }
}

/// The ConfigMap's data, `None` when it does not exist or (tolerated) cannot be read.
async fn lookup(
    sources: &AuthoritySources,
    client: &Client,
    tolerate: bool,
) -> Result<Option<ConfigMapData>, DelegationError> {
    let (namespace, name) = AUTHENTICATION_CONFIGMAP;
    let error = match Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
    {
        Ok(configmap) => return Ok(configmap.map(|c| c.data.unwrap_or_default())),
        Err(e) => e,
    };
    if matches!(&error, kube::Error::Api(status) if status.code == 403) {
        tracing::warn!(
            "Unable to get configmap/{name} in {namespace}.  Usually fixed by 'kubectl create rolebinding -n {namespace} ROLEBINDING_NAME --role=extension-apiserver-authentication-reader --serviceaccount=YOUR_NS:YOUR_SA'"
        );
    }
    let reason = crate::client::error_message(&error).to_string();
    if sources.request_header_ca_file().is_some() {
        // Only the client CA was looked up, which upstream's ConfigMapCAController never fails on.
        tracing::warn!(%reason, "Unable to load the client CA of configmap/{name} in {namespace}");
    } else {
        tolerated(reason, tolerate)?;
    }
    Ok(None)
}

/// Upstream's `--authentication-tolerate-lookup-failure`: warnings, or the error.
fn tolerated(reason: String, tolerate: bool) -> Result<(), DelegationError> {
    if !tolerate {
        return Err(DelegationError::Lookup(reason));
    }
    tracing::warn!("Error looking up in-cluster authentication configuration: {reason}");
    tracing::warn!(
        "Continuing without authentication configuration. This may treat all requests as anonymous."
    );
    tracing::warn!(
        "To require authentication configuration lookup to succeed, set --authentication-tolerate-lookup-failure=false"
    );
    Ok(())
}

/// Follows the serving certificate's files, the CA files and the ConfigMap, and re-makes the TLS
/// configuration and the certificate authenticators when one of them changes.
pub struct Follower {
    /// `--tls-cert-file` and `--tls-private-key-file` (or the pair written under `--cert-dir`); `None` for
    /// a certificate made in memory, which never changes.
    pub serving_files: Option<(PathBuf, PathBuf)>,
    /// The certificate served now.
    pub serving: ServingCertificate,
    /// The protocol versions and suites offered.
    pub policy: TlsPolicy,
    /// Where the CAs come from.
    pub sources: AuthoritySources,
    /// The client that reads the ConfigMap, when it is one of the sources.
    pub client: Option<Client>,
    /// The ConfigMap's data as last seen.
    pub configmap: Option<ConfigMapData>,
    /// Where each new TLS configuration goes.
    pub tls: watch::Sender<ServerTls>,
}

impl Follower {
    /// Follows the sources until `stop`, keeping `authenticator`'s certificate authenticators current.
    pub async fn run(mut self, authenticator: Arc<Authenticator>, stop: CancellationToken) {
        let mut files = WatchedFiles::new(self.watched_files());
        let mut configmaps = match (&self.client, self.sources.needs_configmap()) {
            (Some(client), true) => configmap_changes(client.clone()),
            _ => futures::stream::pending().boxed(),
        };
        let mut ticks = tokio::time::interval(FILE_CHECK_PERIOD);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => {
                    if files.changed() {
                        self.reload(&authenticator);
                    }
                }
                Some(data) = configmaps.next() => {
                    if self.configmap.as_ref() != Some(&data) {
                        self.configmap = Some(data);
                        self.reload(&authenticator);
                    }
                }
            }
        }
    }

    fn watched_files(&self) -> Vec<PathBuf> {
        let serving = self
            .serving_files
            .iter()
            .flat_map(|(cert, key)| [cert.clone(), key.clone()]);
        serving.chain(self.sources.files()).collect()
    }

    fn reload(&mut self, authenticator: &Authenticator) {
        match self.load(authenticator) {
            Ok(()) => tracing::info!("Loaded a new serving certificate and client CAs"),
            Err(e) => tracing::error!(error = %e, "keeping the certificates loaded before"),
        }
    }

    fn load(&mut self, authenticator: &Authenticator) -> Result<(), TlsError> {
        let serving = match &self.serving_files {
            Some((cert, key)) => Some(ServingCertificate::load(cert, key)?),
            None => None,
        };
        let (authorities, error) = authorities(&self.sources, self.configmap.as_ref())?;
        if let Some(reason) = error {
            return Err(TlsError::Config(format!(
                "the authentication ConfigMap: {reason}"
            )));
        }
        let tls = tls::server_config(
            serving.as_ref().unwrap_or(&self.serving),
            &authorities.all_cas(),
            &self.policy,
        )?;
        authorities.install(authenticator)?;
        self.tls.send_replace(tls);
        if let Some(serving) = serving {
            self.serving = serving;
        }
        Ok(())
    }
}

/// The ConfigMap's data each time the apiserver reports it; errors are logged and retried with backoff.
fn configmap_changes(client: Client) -> BoxStream<'static, ConfigMapData> {
    let (namespace, name) = AUTHENTICATION_CONFIGMAP;
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    watcher(Api::<ConfigMap>::namespaced(client, namespace), config)
        .default_backoff()
        .applied_objects()
        .filter_map(|result| async move {
            match result {
                Ok(configmap) => Some(configmap.data.unwrap_or_default()),
                Err(e) => {
                    tracing::warn!(error = %e, "watching the authentication ConfigMap");
                    None
                }
            }
        })
        .boxed()
}

/// Files and their content when last read (`None`: unreadable).
struct WatchedFiles(Vec<(PathBuf, Option<Vec<u8>>)>);

impl WatchedFiles {
    fn new(paths: Vec<PathBuf>) -> Self {
        let read = paths
            .into_iter()
            .map(|path| {
                let content = std::fs::read(&path).ok();
                (path, content)
            })
            .collect();
        Self(read)
    }

    /// Whether any file's content differs from when last read.
    fn changed(&mut self) -> bool {
        let mut changed = false;
        for (path, last) in &mut self.0 {
            let now = std::fs::read(path.as_path()).ok();
            if now != *last {
                *last = now;
                changed = true;
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests;
