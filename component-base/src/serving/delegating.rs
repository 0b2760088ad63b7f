//! The secure port's request filter (upstream's WithAuthentication and WithAuthorization with the delegating
//! authorizer): privileged groups, then always-allowed paths, then a SubjectAccessReview of the
//! non-resource request; upstream's 401 and 403 Status bodies.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::authorization::v1::{NonResourceAttributes, SubjectAccessReviewSpec};

use super::authn::{Authenticator, PeerCertificates, UserInfo};
use super::authz::{Decision, SubjectAccessReviewer};

/// Upstream's path authorizer: exact paths, and prefixes written with a trailing `*`.
#[derive(Debug, Clone, Default)]
pub struct PathAllowList {
    paths: BTreeSet<String>,
    prefixes: Vec<String>,
}

impl PathAllowList {
    /// From `--authorization-always-allow-paths`; only a trailing `*` is allowed.
    pub fn new(paths: &[String]) -> Result<Self, String> {
        let mut list = Self::default();
        for path in paths {
            let path = path.strip_prefix('/').unwrap_or(path);
            if path.is_empty() {
                list.paths.insert(String::new());
                continue;
            }
            let prefix = path.strip_suffix('*');
            if prefix.unwrap_or(path).contains('*') {
                return Err(format!("only trailing * allowed in {path:?}"));
            }
            match prefix {
                Some(prefix) => list.prefixes.push(prefix.to_string()),
                None => {
                    list.paths.insert(path.to_string());
                }
            }
        }
        Ok(list)
    }

    /// Whether `path` is allowed without asking anyone.
    pub fn allows(&self, path: &str) -> bool {
        let path = path.strip_prefix('/').unwrap_or(path);
        self.paths.contains(path) || self.prefixes.iter().any(|p| path.starts_with(p.as_str()))
    }
}

/// Upstream's union of the privileged-groups, path and webhook authorizers.
pub struct DelegatingAuthorizer {
    /// Groups allowed everything (`system:masters`).
    pub always_allow_groups: Vec<String>,
    /// `--authorization-always-allow-paths`.
    pub always_allow_paths: PathAllowList,
    /// SubjectAccessReviews, when an authorization kubeconfig was found.
    pub webhook: Option<SubjectAccessReviewer>,
}

impl DelegatingAuthorizer {
    /// The decision for `user` doing `verb` on the non-resource `path`; denied when no authorizer allows.
    pub async fn authorize(
        &self,
        user: &UserInfo,
        verb: &str,
        path: &str,
    ) -> Result<Decision, kube::Error> {
        let allow = |reason: &str| Decision {
            allowed: true,
            reason: reason.to_string(),
        };
        if user
            .groups
            .iter()
            .any(|g| self.always_allow_groups.contains(g))
        {
            return Ok(allow(""));
        }
        if self.always_allow_paths.allows(path) {
            return Ok(allow(""));
        }
        let Some(webhook) = &self.webhook else {
            return Ok(Decision {
                allowed: false,
                reason: String::new(),
            });
        };
        let spec = SubjectAccessReviewSpec {
            non_resource_attributes: Some(NonResourceAttributes {
                path: Some(path.to_string()),
                verb: Some(verb.to_string()),
            }),
            ..Default::default()
        };
        webhook.review(user, spec).await
    }
}

/// The secure port's authentication and authorization.
pub struct DelegatingAuth {
    /// Who is asking (shared with what keeps its CAs current).
    pub authenticator: Arc<Authenticator>,
    /// May they.
    pub authorizer: DelegatingAuthorizer,
}

/// The request reaches its handler only when authenticated and authorized.
pub async fn filter(
    State(auth): State<Arc<DelegatingAuth>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(user) = auth
        .authenticator
        .authenticated_user(
            request.extensions().get::<PeerCertificates>(),
            request.headers(),
        )
        .await
    else {
        return unauthorized();
    };
    // Non-resource requests: the verb is the lower-cased method (RequestInfoFactory).
    let verb = request.method().as_str().to_ascii_lowercase();
    let path = request.uri().path().to_string();
    match auth.authorizer.authorize(&user, &verb, &path).await {
        Ok(decision) if decision.allowed => next.run(request).await,
        Ok(decision) => {
            tracing::debug!(user = %user.name, verb, path, reason = decision.reason, "Forbidden");
            forbidden(&user.name, &verb, &path, &decision.reason)
        }
        Err(e) => {
            tracing::error!(error = %e, user = %user.name, verb, path, "Authorization error");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Internal Server Error: {path:?}: {e}"),
            )
                .into_response()
        }
    }
}

/// Upstream's 401: a Status with reason Unauthorized.
fn unauthorized() -> Response {
    status_response(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "Unauthorized",
        false,
    )
}

/// Upstream's 403 for a non-resource request (responsewriters.Forbidden).
fn forbidden(user: &str, verb: &str, path: &str, reason: &str) -> Response {
    let mut message = format!("forbidden: User {user:?} cannot {verb} path {path:?}");
    if !reason.is_empty() {
        message = format!("{message}: {reason}");
    }
    status_response(StatusCode::FORBIDDEN, &message, "Forbidden", true)
}

/// A metav1.Status failure as the apiserver's JSON serializer writes it (field order included).
fn status_response(code: StatusCode, message: &str, reason: &str, details: bool) -> Response {
    let body = status_body(code, message, reason, details);
    (
        code,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

fn status_body(code: StatusCode, message: &str, reason: &str, details: bool) -> String {
    let details = if details { r#","details":{}"# } else { "" };
    format!(
        r#"{{"kind":"Status","apiVersion":"v1","metadata":{{}},"status":"Failure","message":{},"reason":"{reason}"{details},"code":{}}}"#,
        serde_json::Value::from(message),
        code.as_u16()
    ) + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn paths(list: &[&str]) -> PathAllowList {
        PathAllowList::new(&list.iter().map(ToString::to_string).collect::<Vec<_>>()).unwrap()
    }

    fn user(groups: &[&str]) -> UserInfo {
        UserInfo {
            name: "someone".to_string(),
            uid: String::new(),
            groups: groups.iter().map(ToString::to_string).collect(),
            extra: BTreeMap::new(),
        }
    }

    #[test]
    fn default_paths_allow_health_but_not_metrics() {
        let list = paths(&["/healthz", "/readyz", "/livez"]);
        for path in ["/healthz", "/readyz", "/livez", "healthz"] {
            assert!(list.allows(path), "{path}");
        }
        for path in ["/metrics", "/healthz/ping", "/readyz/", "/", "/livezx"] {
            assert!(!list.allows(path), "{path}");
        }
    }

    #[test]
    fn trailing_star_is_a_prefix_and_only_trailing() {
        let list = paths(&["/metrics*", "/"]);
        assert!(list.allows("/metrics"));
        assert!(list.allows("/metrics/slis"));
        assert!(list.allows("/"));
        assert!(!list.allows("/healthz"));
        assert_eq!(
            PathAllowList::new(&["/a*/b".to_string()]).unwrap_err(),
            "only trailing * allowed in \"a*/b\""
        );
        let unicode = paths(&["/é", "/ü*"]);
        assert!(unicode.allows("/é") && unicode.allows("/über") && !unicode.allows("/e"));
    }

    #[tokio::test]
    async fn without_a_webhook_only_privileged_groups_and_paths_are_allowed() {
        let authorizer = DelegatingAuthorizer {
            always_allow_groups: vec!["system:masters".to_string()],
            always_allow_paths: paths(&["/healthz"]),
            webhook: None,
        };
        let allowed = |user: UserInfo, path: &'static str| {
            let authorizer = &authorizer;
            async move {
                authorizer
                    .authorize(&user, "get", path)
                    .await
                    .unwrap()
                    .allowed
            }
        };
        assert!(allowed(user(&["system:masters"]), "/metrics").await);
        assert!(allowed(user(&["system:unauthenticated"]), "/healthz").await);
        assert!(!allowed(user(&["system:authenticated"]), "/metrics").await);
    }

    #[test]
    fn status_bodies_are_upstreams() {
        assert_eq!(
            status_body(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "Unauthorized",
                false
            ),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"Unauthorized\",\"reason\":\"Unauthorized\",\"code\":401}\n"
        );
        let response = forbidden("system:anonymous", "get", "/metrics", "");
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            status_body(
                StatusCode::FORBIDDEN,
                "forbidden: User \"system:anonymous\" cannot get path \"/metrics\"",
                "Forbidden",
                true
            ),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"forbidden: User \\\"system:anonymous\\\" cannot get path \\\"/metrics\\\"\",\"reason\":\"Forbidden\",\"details\":{},\"code\":403}\n"
        );
    }
}
