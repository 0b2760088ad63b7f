//! Authentication then authorization for every route, with upstream's answers: 401 `Unauthorized`, 403
//! `Forbidden (user=…, verb=…, resource=nodes, subresource(s)=[…])`, 500 on an authorization error.

pub mod attributes;
mod authz;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

pub use authz::{Authorizer, Webhook};
pub use component_base::serving::authn::{Authenticator, PeerCertificates, UserInfo};

use super::text;

/// The request filter's two halves.
pub struct Auth {
    /// Who is asking.
    pub authenticator: Arc<Authenticator>,
    /// May they.
    pub authorizer: Authorizer,
}

/// Upstream's InstallAuthFilter: the request reaches its handler only when authenticated and authorized.
pub async fn filter(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    let Some(user) = auth
        .authenticator
        .authenticated_user(
            request.extensions().get::<PeerCertificates>(),
            request.headers(),
        )
        .await
    else {
        return text(StatusCode::UNAUTHORIZED, "Unauthorized");
    };
    let checks = attributes::for_request(request.method(), request.uri().path());
    for check in &checks {
        match auth.authorizer.allowed(&user, check).await {
            Ok(true) => return next.run(request).await,
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, user = %user.name, verb = check.verb, subresource = check.subresource, "Authorization error");
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!(
                        "Authorization error (user={}, verb={}, resource=nodes, subresource={})",
                        user.name, check.verb, check.subresource
                    ),
                );
            }
        }
    }
    let verb = checks.first().map_or("get", |c| c.verb);
    let subresources: Vec<&str> = checks.iter().map(|c| c.subresource).collect();
    tracing::debug!(user = %user.name, verb, ?subresources, "Forbidden");
    text(
        StatusCode::FORBIDDEN,
        format!(
            "Forbidden (user={}, verb={verb}, resource=nodes, subresource(s)=[{}])\n",
            user.name,
            subresources.join(" ")
        ),
    )
}
