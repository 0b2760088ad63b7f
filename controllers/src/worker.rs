//! The worker loop every controller runs (upstream's `processNextWorkItem`): take a key, sync it, forget it
//! on success or put it back rate-limited on failure.

use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;

use component_base::workqueue::RateLimitingQueue;
use futures::future::join_all;
use tokio_util::sync::CancellationToken;

/// Runs `workers` workers taking keys from `queue` and calling `sync` until `stop`; the queue is shut down
/// on the way out so every worker returns.
pub async fn run_workers<K, E, F, Fut>(
    controller: &str,
    queue: RateLimitingQueue<K>,
    workers: usize,
    stop: CancellationToken,
    sync: F,
) where
    K: Clone + Eq + Hash + Display + Send + Sync + 'static,
    E: Display,
    F: Fn(K) -> Fut + Clone,
    Fut: Future<Output = Result<(), E>>,
{
    let shut_down = {
        let queue = queue.clone();
        async move {
            stop.cancelled().await;
            queue.shut_down();
        }
    };
    let loops = (0..workers.max(1)).map(|_| {
        let queue = queue.clone();
        let sync = sync.clone();
        async move {
            while let Some(key) = queue.get().await {
                match sync(key.clone()).await {
                    Ok(()) => queue.forget(&key),
                    Err(e) => {
                        tracing::warn!(controller, %key, "sync failed: {e}");
                        queue.add_rate_limited(key.clone());
                    }
                }
                queue.done(&key);
            }
        }
    });
    tokio::join!(shut_down, join_all(loops));
}
