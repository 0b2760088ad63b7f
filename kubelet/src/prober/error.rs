//! Why a probe could not run at all (as opposed to running and failing): upstream retries these and then
//! throws the result away, recording an event.

/// A probe that could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The probe names a port the container does not have, or one out of range.
    #[error("{0}")]
    Port(String),
    /// The probe has no handler (exec, httpGet, tcpSocket or grpc).
    #[error("missing probe handler for {pod}:{container}")]
    NoHandler { pod: String, container: String },
    /// A probe kind or option this kubelet does not implement.
    #[error("{0} is not supported")]
    Unsupported(String),
    /// The probe's URL cannot be built.
    #[error("invalid probe URL {url}: {message}")]
    Url { url: String, message: String },
    /// The pod has no IP to probe yet.
    #[error("the pod has no IP yet")]
    NoPodIp,
    /// Running the command in the container failed (not the command itself).
    #[error("exec in container {container}: {message}")]
    Exec { container: String, message: String },
}
