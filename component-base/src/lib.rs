//! What every ferrokube binary shares, mirroring k8s.io/component-base and the parts of client-go that
//! upstream components build on: client construction with client-side rate limiting, the serving endpoints,
//! leader election, shared informers, work queues, events, logging and graceful shutdown.

pub mod app;
pub mod client;
pub mod config;
pub mod error;
pub mod events;
pub mod flags;
pub mod informer;
pub mod leaderelection;
pub mod logging;
pub mod quantity;
pub mod ratelimit;
pub mod resource;
pub mod serving;
pub mod shutdown;
pub mod version;
pub mod workqueue;
