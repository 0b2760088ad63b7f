//! Clients for the controllers (upstream's ControllerClientBuilder): each controller gets its own client and
//! rate limit; with `--use-service-account-credentials` it authenticates as its own ServiceAccount in
//! kube-system, whose bootstrap RBAC role (`system:controller:<name>`) grants just what it needs.

use std::time::Duration;

use component_base::client::{self, BearerToken, ClientError, ClientOptions};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, ObjectMeta, PostParams};
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
    #[error("ServiceAccount {NAMESPACE}/{account}: {source}")]
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

    /// The controller-manager's own client (informers, discovery).
    pub fn root(&self) -> Client {
        self.root.clone()
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
        if !self.service_accounts {
            return Ok(client::client_from_config(self.config.clone(), qps, burst)?);
        }
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
        Ok(client::client_with_token(
            self.config.clone(),
            &bearer,
            qps,
            burst,
        )?)
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
