//! SPDY/3.1, the multiplexing protocol the apiserver (and kubectl) speak to kubelets for exec, attach and
//! port-forward (k8s.io/streaming's httpstream/spdy over github.com/moby/spdystream): a frame codec and a
//! server session handing each client-created stream to a handler.

mod dictionary;
pub mod frame;
mod session;
#[cfg(test)]
pub(crate) mod test_client;
pub mod upgrade;
mod zlib;

pub use frame::{Frame, FrameError, Headers};
pub use session::{Session, SessionHandle, Stream, StreamReader, StreamWriter};
pub use upgrade::{negotiate, upgrade};
pub use zlib::{HeaderCompressor, HeaderDecompressor, ZlibError};
