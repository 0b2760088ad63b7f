//! What upstream's component config files share: strict decoding that names the field, and Go durations.

pub mod decode;
mod duration;

pub use decode::DecodeError;
pub use duration::GoDuration;
