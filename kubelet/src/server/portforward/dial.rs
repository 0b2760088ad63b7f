//! Connecting to a pod's port as containerd's CRI plugin does for port-forward
//! (pkg/cri/server/sandbox_portforward_linux.go): `localhost:PORT` inside the pod's network namespace,
//! IPv4 first, then IPv6.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use tokio::net::TcpStream;

/// Why a pod's port could not be reached; the texts are containerd's.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("network namespace for sandbox {sandbox:?} is closed")]
    Closed { sandbox: String },
    #[error(
        "failed to execute portforward in network namespace {netns:?}: cannot enter it: {source}"
    )]
    Enter {
        netns: String,
        source: std::io::Error,
    },
    #[error(
        "failed to execute portforward in network namespace {netns:?}: failed to connect to localhost:{port} inside namespace {sandbox:?}, IPv4: {v4} IPv6 {v6} "
    )]
    Connect {
        netns: String,
        sandbox: String,
        port: u16,
        v4: String,
        v6: String,
    },
    #[error("port-forward dialer thread: {0}")]
    Thread(String),
}

/// Where to dial: the pod's network namespace, or the host's for a hostNetwork pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Network {
    /// The named network namespace at this path.
    Namespace(PathBuf),
    /// The host's network (containerd runs the dial directly).
    Host,
}

/// Connects to `localhost:port` in `network`; `sandbox` names the pod in messages.
pub async fn dial(network: &Network, sandbox: &str, port: u16) -> Result<TcpStream, DialError> {
    let (netns, path) = match network {
        Network::Host => ("host".to_string(), None),
        Network::Namespace(path) => {
            if !path.exists() {
                return Err(DialError::Closed {
                    sandbox: sandbox.to_string(),
                });
            }
            (path.display().to_string(), Some(path.clone()))
        }
    };
    let sandbox = sandbox.to_string();
    // setns changes the calling thread's namespace: a throwaway thread enters it, connects and ends, and
    // the socket keeps the namespace it was made in.
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("portforward-dial".to_string())
        .spawn(move || {
            let _ = done.send(connect_in(path.as_deref(), &netns, &sandbox, port));
        })
        .map_err(|e| DialError::Thread(e.to_string()))?;
    let stream = result
        .await
        .map_err(|_| DialError::Thread("ended without an answer".to_string()))??;
    stream
        .set_nonblocking(true)
        .and_then(|()| TcpStream::from_std(stream))
        .map_err(|e| DialError::Thread(e.to_string()))
}

/// On the current thread: enters `path` (if any), then connects IPv4 first, IPv6 second.
fn connect_in(
    path: Option<&Path>,
    netns: &str,
    sandbox: &str,
    port: u16,
) -> Result<std::net::TcpStream, DialError> {
    if let Some(path) = path {
        enter(path).map_err(|source| DialError::Enter {
            netns: netns.to_string(),
            source,
        })?;
    }
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
    let v4_error = match std::net::TcpStream::connect(v4) {
        Ok(stream) => return Ok(stream),
        Err(e) => go_dial_error("tcp4", v4, &e),
    };
    match std::net::TcpStream::connect(v6) {
        Ok(stream) => Ok(stream),
        Err(e) => Err(DialError::Connect {
            netns: netns.to_string(),
            sandbox: sandbox.to_string(),
            port,
            v4: v4_error,
            v6: go_dial_error("tcp6", v6, &e),
        }),
    }
}

/// Moves the current thread into the network namespace at `path`.
fn enter(path: &Path) -> std::io::Result<()> {
    let file = std::fs::File::open(path)?;
    #[allow(unsafe_code)]
    // SAFETY: setns takes a namespace fd that stays open across the call; it changes only this thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Go's `net.OpError` text for a failed connect: `dial tcp4 127.0.0.1:80: connect: connection refused`.
fn go_dial_error(network: &str, addr: SocketAddr, error: &std::io::Error) -> String {
    format!("dial {network} {addr}: connect: {}", errno_text(error))
}

/// The error as Go's syscall.Errno prints it: the C library's text, first letter lowercased, no code.
fn errno_text(error: &std::io::Error) -> String {
    let Some(code) = error.raw_os_error() else {
        return error.to_string();
    };
    let text = std::io::Error::from_raw_os_error(code).to_string();
    let text = text
        .strip_suffix(&format!(" (os error {code})"))
        .unwrap_or(&text);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn dials_localhost_on_the_host_network() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            socket.write_all(b"hello").await.unwrap();
        });
        let mut stream = dial(&Network::Host, "s1", port).await.unwrap();
        let mut got = Vec::new();
        stream.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hello");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_refused_port_gives_containerds_message_with_both_families() {
        // Bound and closed again: nothing listens there now.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let error = dial(&Network::Host, "s1", port).await.unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with(&format!(
                "failed to execute portforward in network namespace \"host\": failed to connect to \
                 localhost:{port} inside namespace \"s1\", IPv4: dial tcp4 127.0.0.1:{port}: connect: \
                 connection refused IPv6 dial tcp6 [::1]:{port}: connect: "
            )),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_missing_namespace_is_closed() {
        let error = dial(
            &Network::Namespace(PathBuf::from("/run/netns/fk-does-not-exist")),
            "s2",
            80,
        )
        .await
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "network namespace for sandbox \"s2\" is closed"
        );
    }

    /// A fresh network namespace (made by a thread that unshares and stays there) has only `lo`, down: a
    /// port listening on the host is unreachable from it, which shows the dial ran inside it.
    #[tokio::test]
    async fn the_dial_runs_inside_the_namespace() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (path_tx, path_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            #[allow(unsafe_code)]
            // SAFETY: unshare only changes this thread's network namespace.
            let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
            #[allow(unsafe_code)]
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() };
            path_tx
                .send(PathBuf::from(format!(
                    "/proc/{}/task/{tid}/ns/net",
                    std::process::id()
                )))
                .unwrap();
            let _ = stop_rx.recv();
        });
        let path = path_rx.recv().unwrap();
        let error = dial(&Network::Namespace(path.clone()), "s3", port)
            .await
            .unwrap_err();
        drop(stop_tx);
        holder.join().unwrap();
        let text = error.to_string();
        assert!(
            text.contains(&format!(
                "IPv4: dial tcp4 127.0.0.1:{port}: connect: network is unreachable"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("{:?}", path.display().to_string())),
            "{text}"
        );
        drop(listener);
    }

    #[test]
    fn errno_texts_are_gos() {
        let refused = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(errno_text(&refused), "connection refused");
    }
}
