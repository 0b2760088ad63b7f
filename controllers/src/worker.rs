//! The worker loop every controller runs (upstream's `processNextWorkItem`): take a key, sync it, forget it
//! on success or put it back rate-limited on failure.

use std::fmt::Display;
use std::future::Future;
use std::hash::Hash;

use component_base::workqueue::RateLimitingQueue;
use futures::future::join_all;
use tokio_util::sync::CancellationToken;

/// Runs `workers` workers taking keys from `queue` and calling `sync` until `stop`; the queue is shut down
/// on the way out so every worker returns. A sync still running at `stop` is abandoned at its next await:
/// after lost leadership another replica may already be acting on the same objects, and upstream's
/// controller-manager exits at once then.
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
        let stop = stop.clone();
        async move {
            stop.cancelled().await;
            queue.shut_down();
        }
    };
    let loops = (0..workers.max(1)).map(|_| {
        let queue = queue.clone();
        let sync = sync.clone();
        let stop = stop.clone();
        async move {
            while let Some(key) = queue.get().await {
                let result = tokio::select! {
                    biased;
                    () = stop.cancelled() => None,
                    result = sync(key.clone()) => Some(result),
                };
                match result {
                    None => {
                        queue.done(&key);
                        return;
                    }
                    Some(Ok(())) => queue.forget(&key),
                    Some(Err(e)) => {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_sync_in_flight_is_abandoned_when_stop_comes() {
        let queue = RateLimitingQueue::<String>::with_default_rate_limiter("worker_test_abandon");
        queue.add("default/stuck".to_string());
        let stop = CancellationToken::new();
        let started = Arc::new(AtomicUsize::new(0));
        let counted = started.clone();
        let workers = tokio::spawn(run_workers(
            "test",
            queue.clone(),
            1,
            stop.clone(),
            move |_key: String| {
                let counted = counted.clone();
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    std::future::pending::<Result<(), String>>().await
                }
            },
        ));
        while started.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), workers)
            .await
            .expect("the workers return although the sync never finishes")
            .unwrap();
        assert!(queue.shutting_down());
    }

    #[tokio::test]
    async fn failed_syncs_are_retried_and_successful_ones_forgotten() {
        let queue = RateLimitingQueue::<String>::with_default_rate_limiter("worker_test_retry");
        queue.add("default/flaky".to_string());
        let stop = CancellationToken::new();
        let attempts = Arc::new(AtomicUsize::new(0));
        let counted = attempts.clone();
        let done = stop.clone();
        let workers = tokio::spawn(run_workers(
            "test",
            queue.clone(),
            2,
            stop.clone(),
            move |_key: String| {
                let counted = counted.clone();
                let done = done.clone();
                async move {
                    if counted.fetch_add(1, Ordering::SeqCst) == 0 {
                        return Err("first attempt fails".to_string());
                    }
                    done.cancel();
                    Ok(())
                }
            },
        ));
        tokio::time::timeout(Duration::from_secs(5), workers)
            .await
            .expect("the retry comes after the rate limiter's first delay")
            .unwrap();
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
        assert_eq!(queue.num_requeues(&"default/flaky".to_string()), 0);
    }
}
