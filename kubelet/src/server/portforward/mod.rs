//! `/portForward/{podNamespace}/{podID}[/{uid}]`: forwarding connections to a pod's ports.

pub mod dial;
