//! A token bucket with the semantics of golang.org/x/time/rate, which client-go uses both for the client-side
//! `--kube-api-qps`/`--kube-api-burst` limit and for the work queue's overall bucket limiter.

use std::sync::Mutex;
use std::time::Duration;

// tokio's clock, so a paused test runtime controls the bucket as it controls the waits.
use tokio::time::Instant;

/// Tokens refill at `qps` per second up to `burst`; each reservation takes one token now and says how long
/// the caller must wait before using it (the balance may go negative, so waiters queue up fairly).
#[derive(Debug)]
pub struct TokenBucket {
    qps: f64,
    burst: f64,
    state: Mutex<BucketState>,
}

#[derive(Debug)]
struct BucketState {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket. A `qps` of zero or less means no limit, as in client-go.
    pub fn new(qps: f32, burst: u32) -> Self {
        Self {
            qps: f64::from(qps),
            burst: f64::from(burst.max(1)),
            state: Mutex::new(BucketState {
                tokens: f64::from(burst.max(1)),
                last: Instant::now(),
            }),
        }
    }

    /// Takes one token and returns how long to wait before acting on it.
    pub fn reserve(&self) -> Duration {
        self.reserve_at(Instant::now())
    }

    fn reserve_at(&self, now: Instant) -> Duration {
        if self.qps <= 0.0 {
            return Duration::ZERO;
        }
        // A poisoned lock only means another thread panicked mid-update; the numbers are still usable.
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.saturating_duration_since(state.last).as_secs_f64();
        state.tokens = (state.tokens + elapsed * self.qps).min(self.burst) - 1.0;
        state.last = now;
        if state.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-state.tokens / self.qps)
        }
    }

    /// Takes a token only if one is available now (x/time/rate's `Allow`, client-go's `TryAccept`).
    pub fn try_take(&self) -> bool {
        self.try_take_at(Instant::now())
    }

    fn try_take_at(&self, now: Instant) -> bool {
        if self.qps <= 0.0 {
            return true;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.saturating_duration_since(state.last).as_secs_f64();
        let tokens = (state.tokens + elapsed * self.qps).min(self.burst);
        state.last = now;
        let allowed = tokens >= 1.0;
        state.tokens = if allowed { tokens - 1.0 } else { tokens };
        allowed
    }

    /// Waits until a token is available, then takes it.
    pub async fn acquire(&self) {
        let wait = self.reserve();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_is_free_then_requests_are_spaced_by_one_over_qps() {
        let bucket = TokenBucket::new(10.0, 3);
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(bucket.reserve_at(now), Duration::ZERO);
        }
        let waits: Vec<_> = (0..3).map(|_| bucket.reserve_at(now)).collect();
        let expected = [100, 200, 300].map(Duration::from_millis);
        for (wait, want) in waits.iter().zip(expected) {
            assert!(
                wait.abs_diff(want) < Duration::from_micros(10),
                "{wait:?} != {want:?}"
            );
        }
    }

    #[test]
    fn tokens_refill_over_time_up_to_burst() {
        let bucket = TokenBucket::new(10.0, 2);
        let start = Instant::now();
        bucket.reserve_at(start);
        bucket.reserve_at(start);
        // After 10 s the bucket holds only `burst` tokens, not 100.
        let later = start + Duration::from_secs(10);
        assert_eq!(bucket.reserve_at(later), Duration::ZERO);
        assert_eq!(bucket.reserve_at(later), Duration::ZERO);
        assert!(bucket.reserve_at(later) > Duration::ZERO);
    }

    #[test]
    fn zero_qps_means_unlimited() {
        let bucket = TokenBucket::new(0.0, 1);
        let now = Instant::now();
        for _ in 0..100 {
            assert_eq!(bucket.reserve_at(now), Duration::ZERO);
        }
    }

    #[test]
    fn try_take_refuses_without_consuming() {
        let bucket = TokenBucket::new(1.0, 2);
        let now = Instant::now();
        assert!(bucket.try_take_at(now));
        assert!(bucket.try_take_at(now));
        assert!(!bucket.try_take_at(now), "burst spent");
        assert!(!bucket.try_take_at(now + Duration::from_millis(500)));
        assert!(
            bucket.try_take_at(now + Duration::from_secs(1)),
            "refused tries took nothing"
        );
    }
}
