//! Upstream's RateLimitedTimedQueue (nodelifecycle/scheduler): the per-zone queue of nodes waiting for a
//! NoExecute taint, drained at most at the zone's eviction rate (token bucket, burst 1). A node stays
//! known after it is processed, so it is not queued again until it is removed (becomes Ready).

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

/// Upstream's EvictionRateLimiterBurst.
const BURST: f64 = 1.0;

/// A token bucket; qps ≤ 0 never accepts (upstream's fake never-rate-limiter).
#[derive(Debug)]
struct TokenBucket {
    qps: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(qps: f32, now: Instant) -> Self {
        Self {
            qps: f64::from(qps),
            tokens: BURST,
            last: now,
        }
    }

    fn try_accept(&mut self, now: Instant) -> bool {
        if self.qps <= 0.0 {
            return false;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.qps).min(BURST);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A queued node: its name and when it may be processed.
#[derive(Debug, Clone, PartialEq)]
struct Timed {
    value: String,
    process_at: Instant,
}

/// Nodes waiting for a NoExecute taint in one zone.
#[derive(Debug)]
pub struct RateLimitedTimedQueue {
    queue: VecDeque<Timed>,
    known: HashSet<String>,
    limiter: TokenBucket,
}

impl RateLimitedTimedQueue {
    /// An empty queue drained at `qps`.
    pub fn new(qps: f32, now: Instant) -> Self {
        Self {
            queue: VecDeque::new(),
            known: HashSet::new(),
            limiter: TokenBucket::new(qps, now),
        }
    }

    /// Queues `node` unless it is already known; whether it was added.
    pub fn add(&mut self, node: &str, now: Instant) -> bool {
        if !self.known.insert(node.to_string()) {
            return false;
        }
        self.queue.push_back(Timed {
            value: node.to_string(),
            process_at: now,
        });
        true
    }

    /// Forgets `node` (queued or processed); whether it was known.
    pub fn remove(&mut self, node: &str) -> bool {
        self.queue.retain(|t| t.value != node);
        self.known.remove(node)
    }

    /// Replaces the rate (upstream's SwapLimiter).
    pub fn swap_limiter(&mut self, qps: f32, now: Instant) {
        if (self.limiter.qps - f64::from(qps)).abs() > f64::EPSILON {
            self.limiter = TokenBucket::new(qps, now);
        }
    }

    /// One step of upstream's `Try`: if the rate allows and the earliest node is due, that node. The
    /// caller taints it and reports the outcome with [`RateLimitedTimedQueue::finish`].
    pub fn next_due(&mut self, now: Instant) -> Option<String> {
        let head = self.earliest()?;
        if !self.limiter.try_accept(now) {
            return None;
        }
        let timed = &self.queue[head];
        (now >= timed.process_at).then(|| timed.value.clone())
    }

    /// Records the outcome for `node`: `Ok` takes it off the queue (it stays known), `Err(wait)` retries
    /// it after `wait`.
    pub fn finish(&mut self, node: &str, outcome: Result<(), Duration>, now: Instant) {
        let Some(i) = self.queue.iter().position(|t| t.value == node) else {
            return;
        };
        match outcome {
            Ok(()) => {
                self.queue.remove(i);
            }
            Err(wait) => self.queue[i].process_at = now + wait + Duration::from_nanos(1),
        }
    }

    /// Whether no node is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    fn earliest(&self) -> Option<usize> {
        self.queue
            .iter()
            .enumerate()
            .min_by_key(|(_, t)| t.process_at)
            .map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(q: &mut RateLimitedTimedQueue, now: Instant, done: &mut Vec<String>) {
        while let Some(node) = q.next_due(now) {
            q.finish(&node, Ok(()), now);
            done.push(node);
        }
    }

    #[test]
    fn rate_limits_tainting() {
        let start = Instant::now();
        let mut q = RateLimitedTimedQueue::new(0.1, start);
        assert!(q.add("a", start));
        assert!(q.add("b", start));
        assert!(!q.add("a", start));
        let mut done = Vec::new();
        drain(&mut q, start, &mut done);
        assert_eq!(done, ["a"], "burst 1: one node at once");
        drain(&mut q, start + Duration::from_secs(5), &mut done);
        assert_eq!(done, ["a"]);
        drain(&mut q, start + Duration::from_secs(10), &mut done);
        assert_eq!(done, ["a", "b"]);
        // Processed nodes stay known until removed.
        assert!(!q.add("a", start));
        assert!(q.remove("a"));
        assert!(q.add("a", start));
    }

    #[test]
    fn zero_rate_stops_tainting() {
        let start = Instant::now();
        let mut q = RateLimitedTimedQueue::new(0.1, start);
        q.swap_limiter(0.0, start);
        q.add("a", start);
        assert_eq!(q.next_due(start + Duration::from_secs(100)), None);
    }

    #[test]
    fn failed_nodes_are_retried_later() {
        let start = Instant::now();
        let mut q = RateLimitedTimedQueue::new(1000.0, start);
        q.add("a", start);
        assert_eq!(q.next_due(start).as_deref(), Some("a"));
        q.finish("a", Err(Duration::from_millis(50)), start);
        assert_eq!(q.next_due(start + Duration::from_millis(10)), None);
        let later = start + Duration::from_millis(100);
        assert_eq!(q.next_due(later).as_deref(), Some("a"));
        q.finish("a", Ok(()), later);
        assert!(q.is_empty());
    }
}
