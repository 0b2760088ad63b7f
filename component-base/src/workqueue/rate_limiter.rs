//! client-go's workqueue rate limiters: how long an item waits before it is retried.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use crate::ratelimit::TokenBucket;

/// Decides how long an item waits before being added again (client-go's `TypedRateLimiter`).
pub trait RateLimiter<K>: Send + Sync {
    /// The delay for `item`'s next retry; counts a failure for per-item limiters.
    fn when(&self, item: &K) -> Duration;
    /// Stops tracking `item` (it succeeded).
    fn forget(&self, item: &K);
    /// How many times `item` has been retried.
    fn num_requeues(&self, item: &K) -> u32;
}

/// `base × 2^failures` per item, capped at `max`.
pub struct ItemExponentialFailureRateLimiter<K> {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<K, u32>>,
}

impl<K> ItemExponentialFailureRateLimiter<K> {
    /// A limiter starting at `base` and never waiting longer than `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max,
            failures: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone + Send> RateLimiter<K> for ItemExponentialFailureRateLimiter<K> {
    fn when(&self, item: &K) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let count = failures.entry(item.clone()).or_insert(0);
        let exponent = *count;
        *count = count.saturating_add(1);
        // 2^exponent overflows long before it matters; anything that large is capped anyway.
        let factor = 2u32.checked_pow(exponent).map_or(f64::INFINITY, f64::from);
        let delay = self.base.as_secs_f64() * factor;
        if delay >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(delay)
        }
    }

    fn forget(&self, item: &K) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(item);
    }

    fn num_requeues(&self, item: &K) -> u32 {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.get(item).copied().unwrap_or(0)
    }
}

/// An overall token bucket shared by all items: bounds the retry rate of the whole queue.
pub struct BucketRateLimiter {
    bucket: TokenBucket,
}

impl BucketRateLimiter {
    /// A bucket of `burst` tokens refilled at `qps`.
    pub fn new(qps: f32, burst: u32) -> Self {
        Self {
            bucket: TokenBucket::new(qps, burst),
        }
    }
}

impl<K> RateLimiter<K> for BucketRateLimiter {
    fn when(&self, _item: &K) -> Duration {
        self.bucket.reserve()
    }
    fn forget(&self, _item: &K) {}
    fn num_requeues(&self, _item: &K) -> u32 {
        0
    }
}

/// The longest delay of several limiters.
pub struct MaxOfRateLimiter<K> {
    limiters: Vec<Box<dyn RateLimiter<K>>>,
}

impl<K> MaxOfRateLimiter<K> {
    /// Combines `limiters`.
    pub fn new(limiters: Vec<Box<dyn RateLimiter<K>>>) -> Self {
        Self { limiters }
    }
}

impl<K> RateLimiter<K> for MaxOfRateLimiter<K> {
    fn when(&self, item: &K) -> Duration {
        // Every limiter must see the failure, so no short-circuiting.
        self.limiters
            .iter()
            .map(|l| l.when(item))
            .max()
            .unwrap_or_default()
    }
    fn forget(&self, item: &K) {
        self.limiters.iter().for_each(|l| l.forget(item));
    }
    fn num_requeues(&self, item: &K) -> u32 {
        self.limiters
            .iter()
            .map(|l| l.num_requeues(item))
            .max()
            .unwrap_or(0)
    }
}

/// client-go's `DefaultControllerRateLimiter`: per-item 5 ms doubling to 1000 s, and 10 qps / 100 burst overall.
pub fn default_controller_rate_limiter<K: Eq + Hash + Clone + Send + 'static>()
-> MaxOfRateLimiter<K> {
    MaxOfRateLimiter::new(vec![
        Box::new(ItemExponentialFailureRateLimiter::new(
            Duration::from_millis(5),
            Duration::from_secs(1000),
        )),
        Box::new(BucketRateLimiter::new(10.0, 100)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_item_backoff_doubles_from_base_and_resets_on_forget() {
        let limiter = ItemExponentialFailureRateLimiter::new(
            Duration::from_millis(5),
            Duration::from_secs(1000),
        );
        let delays: Vec<u64> = (0..5)
            .map(|_| limiter.when(&"a").as_millis() as u64)
            .collect();
        assert_eq!(delays, [5, 10, 20, 40, 80]);
        assert_eq!(limiter.num_requeues(&"a"), 5);
        assert_eq!(
            limiter.when(&"b"),
            Duration::from_millis(5),
            "items back off independently"
        );
        limiter.forget(&"a");
        assert_eq!(limiter.num_requeues(&"a"), 0);
        assert_eq!(limiter.when(&"a"), Duration::from_millis(5));
    }

    #[test]
    fn per_item_backoff_is_capped_and_never_overflows() {
        let limiter = ItemExponentialFailureRateLimiter::new(
            Duration::from_millis(5),
            Duration::from_secs(1000),
        );
        let last = (0..100).map(|_| limiter.when(&"a")).last().unwrap();
        assert_eq!(last, Duration::from_secs(1000));
    }

    #[test]
    fn default_limiter_lets_100_through_then_spaces_them_at_10_per_second() {
        let limiter = default_controller_rate_limiter::<u32>();
        for item in 0..100 {
            assert_eq!(limiter.when(&item), Duration::from_millis(5), "item {item}");
        }
        let wait = limiter.when(&100);
        assert!(
            wait > Duration::from_millis(90) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
    }
}
