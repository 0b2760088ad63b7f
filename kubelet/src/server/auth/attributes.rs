//! Which node subresources a request needs (pkg/kubelet/server/auth.go): pure, so the table is unit-tested.

/// One authorization check: `verb` on `nodes/<subresource>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    /// `get`, `create`, `update`, `patch` or `delete`, from the method.
    pub verb: &'static str,
    /// The node subresource.
    pub subresource: &'static str,
}

/// The checks for `method` on `path`, in upstream's order; the first allowed one authorizes the request.
pub fn for_request(method: &http::Method, path: &str) -> Vec<Attributes> {
    let verb = match *method {
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "get",
    };
    // KubeletFineGrainedAuthz is GA in 1.36: /pods and /healthz try their own subresource before proxy.
    let subresources: &[&'static str] = if is_subpath(path, "/pods") {
        &["pods", "proxy"]
    } else if is_subpath(path, "/healthz") {
        &["healthz", "proxy"]
    } else if is_subpath(path, "/configz") {
        &["configz", "proxy"]
    } else if is_subpath(path, "/runningpods") {
        &["pods", "proxy"]
    } else if is_subpath(path, "/stats") {
        &["stats"]
    } else if is_subpath(path, "/metrics") {
        &["metrics"]
    } else if is_subpath(path, "/logs") {
        &["log"]
    } else if is_subpath(path, "/checkpoint") {
        &["checkpoint"]
    } else if is_subpath(path, "/statusz") {
        &["statusz"]
    } else if is_subpath(path, "/flagz") {
        &["configz"]
    } else {
        &["proxy"]
    };
    subresources
        .iter()
        .map(|&subresource| Attributes { verb, subresource })
        .collect()
}

/// Upstream's isSubpath: `path` is `prefix` or below it.
fn is_subpath(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn subresources(method: Method, path: &str) -> Vec<(&'static str, &'static str)> {
        for_request(&method, path)
            .into_iter()
            .map(|a| (a.verb, a.subresource))
            .collect()
    }

    #[test]
    fn paths_map_to_upstream_subresources() {
        assert_eq!(
            subresources(Method::GET, "/pods"),
            [("get", "pods"), ("get", "proxy")]
        );
        assert_eq!(
            subresources(Method::GET, "/healthz"),
            [("get", "healthz"), ("get", "proxy")]
        );
        assert_eq!(
            subresources(Method::GET, "/runningpods/"),
            [("get", "pods"), ("get", "proxy")]
        );
        assert_eq!(
            subresources(Method::GET, "/stats/summary"),
            [("get", "stats")]
        );
        assert_eq!(subresources(Method::GET, "/metrics"), [("get", "metrics")]);
        assert_eq!(
            subresources(Method::GET, "/metrics/resource"),
            [("get", "metrics")]
        );
        assert_eq!(subresources(Method::GET, "/logs/syslog"), [("get", "log")]);
        assert_eq!(
            subresources(Method::GET, "/configz"),
            [("get", "configz"), ("get", "proxy")]
        );
    }

    #[test]
    fn streaming_and_container_logs_need_proxy_with_the_methods_verb() {
        assert_eq!(
            subresources(Method::POST, "/exec/ns/p/c"),
            [("create", "proxy")]
        );
        assert_eq!(
            subresources(Method::GET, "/exec/ns/p/c"),
            [("get", "proxy")]
        );
        assert_eq!(
            subresources(Method::POST, "/portForward/ns/p"),
            [("create", "proxy")]
        );
        assert_eq!(
            subresources(Method::GET, "/containerLogs/ns/p/c"),
            [("get", "proxy")]
        );
        assert_eq!(
            subresources(Method::PUT, "/run/ns/p/c"),
            [("update", "proxy")]
        );
        assert_eq!(
            subresources(Method::DELETE, "/attach/ns/p/c"),
            [("delete", "proxy")]
        );
    }

    #[test]
    fn prefixes_match_whole_segments_only() {
        assert_eq!(subresources(Method::GET, "/podsx"), [("get", "proxy")]);
        assert_eq!(
            subresources(Method::GET, "/statsummary"),
            [("get", "proxy")]
        );
        assert_eq!(subresources(Method::GET, "/metricsfoo"), [("get", "proxy")]);
    }
}
