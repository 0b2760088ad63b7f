//! The User-Agent every request carries, as client-go's: it is how the apiserver's audit log and request
//! logs tell a component's clients apart (`.../system:serviceaccount:kube-system:replicaset-controller`).

use std::path::Path;

use http::HeaderValue;
use http::header::USER_AGENT;
use kube::Config;

use crate::version::{FERROKUBE_VERSION, KUBERNETES_VERSION, go_arch};

/// client-go's `DefaultKubernetesUserAgent`, with ferrokube's version where Go has the git commit:
/// `ferrokube-controller-manager/v1.36.3 (linux/amd64) ferrokube/0.1.0`.
pub fn default_user_agent() -> String {
    let command = std::env::args_os()
        .next()
        .as_deref()
        .map(Path::new)
        .and_then(Path::file_name)
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "unknown".into());
    format!(
        "{command}/{KUBERNETES_VERSION} ({}/{}) ferrokube/{FERROKUBE_VERSION}",
        std::env::consts::OS,
        go_arch()
    )
}

/// client-go's `rest.AddUserAgent`: the default user agent and `/suffix`, which names the client.
pub fn add_user_agent(config: &mut Config, suffix: &str) {
    set(config, &format!("{}/{suffix}", default_user_agent()));
}

/// Gives `config` the default user agent unless it has one.
pub(super) fn ensure_user_agent(config: &mut Config) {
    if !config.headers.iter().any(|(name, _)| name == USER_AGENT) {
        set(config, &default_user_agent());
    }
}

fn set(config: &mut Config, user_agent: &str) {
    config.headers.retain(|(name, _)| name != USER_AGENT);
    // Only a program name with characters a header cannot carry fails here; the request then goes
    // without a user agent rather than not at all.
    if let Ok(value) = HeaderValue::from_str(user_agent) {
        config.headers.push((USER_AGENT, value));
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::Full;
    use hyper::body::{Bytes, Incoming};
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper::{Request, Response};
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    use super::*;

    fn user_agent(config: &Config) -> Vec<&HeaderValue> {
        config
            .headers
            .iter()
            .filter(|(name, _)| name == USER_AGENT)
            .map(|(_, value)| value)
            .collect()
    }

    #[test]
    fn the_default_names_program_release_platform_and_ferrokube() {
        let agent = default_user_agent();
        let (program, rest) = agent.split_once('/').unwrap();
        assert!(!program.is_empty() && !program.contains(' '), "{agent}");
        assert_eq!(
            rest,
            format!(
                "{KUBERNETES_VERSION} (linux/{}) ferrokube/{FERROKUBE_VERSION}",
                go_arch()
            )
        );
    }

    #[test]
    fn a_suffix_replaces_the_user_agent_and_a_default_never_overrides_one() {
        let mut config = Config::new("http://127.0.0.1:1".parse().unwrap());
        ensure_user_agent(&mut config);
        assert_eq!(user_agent(&config), [&default_user_agent()]);
        add_user_agent(&mut config, "shared-informers");
        add_user_agent(&mut config, "metadata-informers");
        ensure_user_agent(&mut config);
        let expected = format!("{}/metadata-informers", default_user_agent());
        assert_eq!(user_agent(&config), [&expected]);
    }

    #[tokio::test]
    async fn every_request_of_a_client_carries_it() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (seen, mut agents) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let service = service_fn(move |request: Request<Incoming>| {
                let agent = request.headers().get(USER_AGENT).cloned();
                seen.send(agent).unwrap();
                async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                        br#"{"paths":[]}"#,
                    ))))
                }
            });
            // The client may close the connection when the test ends; that is not a failure.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        let mut config = Config::new(url.parse().unwrap());
        add_user_agent(&mut config, "scheduler");
        let client = crate::client::client_from_config(config, 0.0, 0).unwrap();
        client.list_core_api_versions().await.ok();
        let expected = format!("{}/scheduler", default_user_agent());
        assert_eq!(
            agents.recv().await.unwrap(),
            Some(HeaderValue::from_str(&expected).unwrap())
        );
    }
}
