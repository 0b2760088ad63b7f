//! Clients for the controllers (upstream's ControllerClientBuilder): each controller gets its own client and
//! rate limit; with `--use-service-account-credentials` it authenticates as its own ServiceAccount in
//! kube-system, whose bootstrap RBAC role (`system:controller:<name>`) grants just what it needs.

use std::time::Duration;

use component_base::client::error_message;
use component_base::client::{self, BearerToken, ClientError, ClientOptions};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::Kubeconfig;
use kube::{Client, Config};
use tokio_util::sync::CancellationToken;

/// Where the controllers' ServiceAccounts live.
const NAMESPACE: &str = "kube-system";
/// The lifetime asked of each token, as upstream's DynamicControllerClientBuilder.
const TOKEN_SECONDS: i64 = 3600;
/// Retry delay when a token could not be renewed.
const RETRY: Duration = Duration::from_secs(10);

/// Why a controller could not get its client.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuilderError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("ServiceAccount {NAMESPACE}/{account}: {}", error_message(.source))]
    ServiceAccount {
        account: String,
        source: kube::Error,
    },
    #[error("TokenRequest for {NAMESPACE}/{account}: {reason}")]
    Token { account: String, reason: String },
}

/// Makes one client per controller.
#[derive(Clone)]
pub struct ClientBuilder {
    root: Client,
    config: Config,
    options: ClientOptions,
    service_accounts: bool,
    stop: CancellationToken,
}

impl ClientBuilder {
    /// A builder from the controller-manager's own `root` client and `config`; tokens are renewed until
    /// `stop`.
    pub fn new(
        root: Client,
        config: Config,
        options: ClientOptions,
        service_accounts: bool,
        stop: CancellationToken,
    ) -> Self {
        Self {
            root,
            config,
            options,
            service_accounts,
            stop,
        }
    }

    /// Another client as the controller-manager itself, with a rate limit and a connection of its own: for
    /// the garbage collector's monitors (upstream's `metadata-informers` client), and for more long-lived
    /// watches than one HTTP/2 connection may carry (the apiserver allows 100 streams at once on each).
    pub fn root_connection(&self) -> Result<Client, ClientBuilderError> {
        let mut config = self.config.clone();
        client::add_user_agent(&mut config, "metadata-informers");
        Ok(client::client_from_config(
            config,
            self.options.qps,
            self.options.burst,
        )?)
    }

    /// The CA bundle of the controller-manager's kubeconfig (upstream's `rest.Config.CAData`) as PEM: the
    /// kubeconfig's own bytes where it names them, else the loaded certificates re-encoded; empty when there
    /// is no certificate authority.
    pub fn root_ca(&self) -> std::io::Result<Vec<u8>> {
        if let Some(path) = &self.options.kubeconfig
            && let Some(bundle) = kubeconfig_ca(path)?
        {
            return Ok(bundle);
        }
        // In-cluster configs keep the file they read; otherwise only the certificates, as DER, remain.
        if let Some(path) = &self.config.root_cert_file {
            return std::fs::read(path);
        }
        let certificates = self.config.root_cert.iter().flatten();
        Ok(certificates
            .map(|der| pem_certificate(der))
            .collect::<String>()
            .into_bytes())
    }

    /// A new client for the controller whose ServiceAccount is `account`.
    pub async fn client(&self, account: &str) -> Result<Client, ClientBuilderError> {
        self.client_scaled(account, 1.0, 1).await
    }

    /// A new client for `account` whose `--kube-api-qps`/`--kube-api-burst` are multiplied by `qps_factor`
    /// and `burst_factor` (upstream raises them for the chatty namespace controller and garbage collector).
    pub async fn client_scaled(
        &self,
        account: &str,
        qps_factor: f32,
        burst_factor: u32,
    ) -> Result<Client, ClientBuilderError> {
        let qps = self.options.qps * qps_factor;
        let burst = self.options.burst.saturating_mul(burst_factor);
        let mut config = self.config.clone();
        if !self.service_accounts {
            client::add_user_agent(&mut config, account);
            return Ok(client::client_from_config(config, qps, burst)?);
        }
        client::add_user_agent(
            &mut config,
            &format!("system:serviceaccount:{NAMESPACE}:{account}"),
        );
        self.ensure_service_account(account).await?;
        let (token, expires_in) = self.request_token(account).await?;
        let bearer = BearerToken::new(&token).map_err(|e| ClientBuilderError::Token {
            account: account.to_string(),
            reason: e.to_string(),
        })?;
        tokio::spawn(
            self.clone()
                .renew(account.to_string(), bearer.clone(), expires_in),
        );
        Ok(client::client_with_token(config, &bearer, qps, burst)?)
    }

    /// Keeps `bearer` current: a new token once 80% of the old one's life has passed.
    async fn renew(self, account: String, bearer: BearerToken, mut expires_in: Duration) {
        loop {
            let wait = expires_in.mul_f64(0.8);
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            match self.request_token(&account).await {
                Ok((token, lifetime)) => {
                    if let Err(e) = bearer.set(&token) {
                        tracing::warn!(%account, "unusable token: {e}");
                    }
                    expires_in = lifetime;
                }
                Err(e) => {
                    tracing::warn!("{e}; retrying");
                    expires_in = RETRY.div_f64(0.8);
                }
            }
        }
    }

    async fn ensure_service_account(&self, account: &str) -> Result<(), ClientBuilderError> {
        let accounts = Api::<ServiceAccount>::namespaced(self.root.clone(), NAMESPACE);
        let error = |source| ClientBuilderError::ServiceAccount {
            account: account.to_string(),
            source,
        };
        if accounts.get_opt(account).await.map_err(error)?.is_some() {
            return Ok(());
        }
        let wanted = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(account.to_string()),
                namespace: Some(NAMESPACE.to_string()),
                ..ObjectMeta::default()
            },
            ..ServiceAccount::default()
        };
        match accounts.create(&PostParams::default(), &wanted).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(e) => Err(error(e)),
        }
    }

    /// A new token for `account` and how long it lives.
    async fn request_token(&self, account: &str) -> Result<(String, Duration), ClientBuilderError> {
        let accounts = Api::<ServiceAccount>::namespaced(self.root.clone(), NAMESPACE);
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                expiration_seconds: Some(TOKEN_SECONDS),
                ..TokenRequestSpec::default()
            }),
            ..TokenRequest::default()
        };
        let error = |reason: String| ClientBuilderError::Token {
            account: account.to_string(),
            reason,
        };
        let issued = accounts
            .create_token_request(account, &PostParams::default(), &request)
            .await
            .map_err(|e| error(e.to_string()))?;
        let status = issued.status.unwrap_or_default();
        let token = status
            .token
            .filter(|token| !token.is_empty())
            .ok_or_else(|| error("the apiserver returned no token".into()))?;
        let seconds = status
            .expiration_timestamp
            .map_or(TOKEN_SECONDS, |expires| {
                expires.0.as_second() - k8s_openapi::jiff::Timestamp::now().as_second()
            });
        let lifetime = Duration::from_secs(u64::try_from(seconds).unwrap_or(0)).max(RETRY);
        Ok((token, lifetime))
    }
}

/// The certificate authority of the current context's cluster in the kubeconfig at `path`, as written
/// there (certificate-authority-data, or the certificate-authority file).
fn kubeconfig_ca(path: &std::path::Path) -> std::io::Result<Option<Vec<u8>>> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| invalid(e.to_string()))?;
    let context = kubeconfig
        .contexts
        .iter()
        .find(|c| Some(&c.name) == kubeconfig.current_context.as_ref())
        .and_then(|c| c.context.as_ref());
    let Some(cluster) = context.and_then(|context| {
        let named = kubeconfig
            .clusters
            .iter()
            .find(|c| c.name == context.cluster)?;
        named.cluster.as_ref()
    }) else {
        return Ok(None);
    };
    if let Some(data) = &cluster.certificate_authority_data {
        // ByteString is the API's base64 bytes: it decodes the kubeconfig's base64 too.
        let bytes: k8s_openapi::ByteString =
            serde_json::from_value(serde_json::Value::String(data.clone()))
                .map_err(|e| invalid(format!("certificate-authority-data: {e}")))?;
        return Ok(Some(bytes.0));
    }
    match &cluster.certificate_authority {
        Some(file) => std::fs::read(file).map(Some),
        None => Ok(None),
    }
}

/// `der` as a PEM CERTIFICATE block (base64 in 64-column lines, as Go's encoding/pem writes it).
fn pem_certificate(der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut encoded = String::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let bytes = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let triple = (u32::from(bytes[0]) << 16) | (u32::from(bytes[1]) << 8) | u32::from(bytes[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let index = (triple >> (18 - 6 * i)) & 0x3f;
                encoded.push(char::from(ALPHABET[index as usize]));
            } else {
                encoded.push('=');
            }
        }
    }
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

#[cfg(test)]
mod tests {
    use super::{kubeconfig_ca, pem_certificate};

    #[test]
    fn the_kubeconfig_ca_is_read_as_written() {
        let dir = std::env::temp_dir().join(format!("ferrokube-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pem = "-----BEGIN CERTIFICATE-----\r\nQUJD\r\n-----END CERTIFICATE-----\r\n";
        std::fs::write(dir.join("ca.pem"), pem).unwrap();
        // base64 of the PEM above.
        let data =
            "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tDQpRVUpEDQotLS0tLUVORCBDRVJUSUZJQ0FURS0tLS0tDQo=";
        let kubeconfig = |cluster: &str| {
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: other\n  cluster:\n    server: https://x\n\
                 - name: c\n  cluster:\n    server: https://y\n    {cluster}\ncontexts:\n\
                 - name: ctx\n  context:\n    cluster: c\n    user: u\ncurrent-context: ctx\n\
                 users:\n- name: u\n  user: {{}}\n"
            )
        };
        let path = dir.join("data.kubeconfig");
        std::fs::write(
            &path,
            kubeconfig(&format!("certificate-authority-data: {data}")),
        )
        .unwrap();
        assert_eq!(kubeconfig_ca(&path).unwrap().unwrap(), pem.as_bytes());
        let path = dir.join("file.kubeconfig");
        std::fs::write(&path, kubeconfig("certificate-authority: ca.pem")).unwrap();
        assert_eq!(kubeconfig_ca(&path).unwrap().unwrap(), pem.as_bytes());
        let path = dir.join("none.kubeconfig");
        std::fs::write(&path, kubeconfig("insecure-skip-tls-verify: true")).unwrap();
        assert_eq!(kubeconfig_ca(&path).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pem_encodes_with_padding_and_64_column_lines() {
        assert_eq!(
            pem_certificate(b"any carnal pleas"),
            "-----BEGIN CERTIFICATE-----\nYW55IGNhcm5hbCBwbGVhcw==\n-----END CERTIFICATE-----\n"
        );
        assert_eq!(
            pem_certificate(b"any carnal pleasu"),
            "-----BEGIN CERTIFICATE-----\nYW55IGNhcm5hbCBwbGVhc3U=\n-----END CERTIFICATE-----\n"
        );
        let pem = pem_certificate(&[0xff; 60]);
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines[2], "/".repeat(16));
    }
}
