//! client-go's rate-limited work queue: each key is queued at most once, handed to one worker at a time
//! (a key added while it is being processed is queued again when the worker calls `done`), retried after a
//! rate limiter's delay, and measured with upstream's `workqueue_*` metrics.

mod metrics;
mod rate_limiter;

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

pub use rate_limiter::{
    BucketRateLimiter, ItemExponentialFailureRateLimiter, MaxOfRateLimiter, RateLimiter,
    default_controller_rate_limiter,
};

/// How often the unfinished-work gauges are refreshed, as upstream's 500 ms ticker.
const UNFINISHED_WORK_UPDATE_PERIOD: Duration = Duration::from_millis(500);

/// A deduplicating, rate-limited queue of keys; cheap to clone, all clones share it.
pub struct RateLimitingQueue<K> {
    inner: Arc<Inner<K>>,
}

impl<K> Clone for RateLimitingQueue<K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<K> {
    name: String,
    state: Mutex<State<K>>,
    ready: Notify,
    limiter: Box<dyn RateLimiter<K>>,
}

struct State<K> {
    queue: VecDeque<K>,
    /// Keys that need processing: queued, or added again while processing.
    dirty: HashSet<K>,
    /// Keys handed to a worker and not yet `done`, with when they were handed out.
    processing: HashMap<K, Instant>,
    /// When each queued key was added, for the queue-duration histogram.
    added_at: HashMap<K, Instant>,
    /// Keys waiting for a delayed add, with the earliest time they are due.
    waiting: HashMap<K, Instant>,
    shutting_down: bool,
    ticker_started: bool,
}

impl<K: Clone + Eq + Hash + Send + Sync + 'static> RateLimitingQueue<K> {
    /// A queue named `name` (the metrics' `name` label) retrying with `limiter`.
    pub fn new(name: &str, limiter: impl RateLimiter<K> + 'static) -> Self {
        Self {
            inner: Arc::new(Inner {
                name: name.to_string(),
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    dirty: HashSet::new(),
                    processing: HashMap::new(),
                    added_at: HashMap::new(),
                    waiting: HashMap::new(),
                    shutting_down: false,
                    ticker_started: false,
                }),
                ready: Notify::new(),
                limiter: Box::new(limiter),
            }),
        }
    }

    /// A queue with client-go's default controller rate limiter.
    pub fn with_default_rate_limiter(name: &str) -> Self {
        Self::new(name, default_controller_rate_limiter())
    }

    fn state(&self) -> MutexGuard<'_, State<K>> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn labels(&self) -> [&str; 1] {
        [self.inner.name.as_str()]
    }

    /// Queues `item` unless it is already queued; an item being processed is queued again at `done`.
    pub fn add(&self, item: K) {
        let mut state = self.state();
        if state.shutting_down || state.dirty.contains(&item) {
            return;
        }
        let metrics = metrics::metrics();
        metrics.adds.with_label_values(&self.labels()).inc();
        state.dirty.insert(item.clone());
        if state.processing.contains_key(&item) {
            return;
        }
        state.added_at.insert(item.clone(), Instant::now());
        state.queue.push_back(item);
        metrics
            .depth
            .with_label_values(&self.labels())
            .set(state.queue.len() as i64);
        drop(state);
        self.inner.ready.notify_one();
    }

    /// Queues `item` after `delay`; if it is already waiting, the earlier time wins.
    pub fn add_after(&self, item: K, delay: Duration) {
        if delay.is_zero() {
            self.add(item);
            return;
        }
        let due = Instant::now() + delay;
        {
            let mut state = self.state();
            if state.shutting_down {
                return;
            }
            if state
                .waiting
                .get(&item)
                .is_some_and(|earlier| *earlier <= due)
            {
                return;
            }
            state.waiting.insert(item.clone(), due);
        }
        metrics::metrics()
            .retries
            .with_label_values(&self.labels())
            .inc();
        let queue = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            tokio::time::sleep_until(due).await;
            let Some(inner) = Weak::upgrade(&queue) else {
                return;
            };
            let queue = RateLimitingQueue { inner };
            let still_due = {
                let mut state = queue.state();
                // A later, earlier-due add_after replaced ours: that one's task adds the item.
                let ours = state.waiting.get(&item) == Some(&due);
                if ours {
                    state.waiting.remove(&item);
                }
                ours
            };
            if still_due {
                queue.add(item);
            }
        });
    }

    /// Queues `item` after its rate limiter's delay.
    pub fn add_rate_limited(&self, item: K) {
        let delay = self.inner.limiter.when(&item);
        self.add_after(item, delay);
    }

    /// Stops tracking `item`'s failures: its next retry starts from the base delay.
    pub fn forget(&self, item: &K) {
        self.inner.limiter.forget(item);
    }

    /// How many times `item` has been retried through the rate limiter.
    pub fn num_requeues(&self, item: &K) -> u32 {
        self.inner.limiter.num_requeues(item)
    }

    /// Waits for an item to process; `None` once the queue is shut down and empty.
    pub async fn get(&self) -> Option<K> {
        self.start_ticker();
        loop {
            let mut notified = pin!(self.inner.ready.notified());
            // Registered before looking, so an add between the look and the wait is not missed.
            notified.as_mut().enable();
            {
                let mut state = self.state();
                if let Some(item) = state.queue.pop_front() {
                    let now = Instant::now();
                    let metrics = metrics::metrics();
                    metrics
                        .depth
                        .with_label_values(&self.labels())
                        .set(state.queue.len() as i64);
                    if let Some(added) = state.added_at.remove(&item) {
                        metrics
                            .queue_duration
                            .with_label_values(&self.labels())
                            .observe((now - added).as_secs_f64());
                    }
                    state.dirty.remove(&item);
                    state.processing.insert(item.clone(), now);
                    return Some(item);
                }
                if state.shutting_down {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// Marks `item` processed; if it was added meanwhile, it is queued again now.
    pub fn done(&self, item: &K) {
        let mut state = self.state();
        if let Some(started) = state.processing.remove(item) {
            metrics::metrics()
                .work_duration
                .with_label_values(&self.labels())
                .observe(started.elapsed().as_secs_f64());
        }
        if state.dirty.contains(item) {
            state.added_at.insert(item.clone(), Instant::now());
            state.queue.push_back(item.clone());
            metrics::metrics()
                .depth
                .with_label_values(&self.labels())
                .set(state.queue.len() as i64);
            drop(state);
            self.inner.ready.notify_one();
        }
    }

    /// Items queued and waiting for a worker.
    pub fn len(&self) -> usize {
        self.state().queue.len()
    }

    /// Whether no item is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Refuses new items; workers drain what is queued, then `get` returns `None`.
    pub fn shut_down(&self) {
        self.state().shutting_down = true;
        self.inner.ready.notify_waiters();
    }

    /// Whether `shut_down` was called.
    pub fn shutting_down(&self) -> bool {
        self.state().shutting_down
    }

    /// Keeps the unfinished-work gauges current while the queue lives and is not shut down.
    fn start_ticker(&self) {
        {
            let mut state = self.state();
            if state.ticker_started {
                return;
            }
            state.ticker_started = true;
        }
        let queue = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(UNFINISHED_WORK_UPDATE_PERIOD);
            loop {
                ticker.tick().await;
                let Some(inner) = Weak::upgrade(&queue) else {
                    return;
                };
                let queue = RateLimitingQueue { inner };
                if queue.shutting_down() {
                    return;
                }
                queue.update_unfinished_work();
            }
        });
    }

    /// Sets `workqueue_unfinished_work_seconds` and `workqueue_longest_running_processor_seconds`.
    pub fn update_unfinished_work(&self) {
        let now = Instant::now();
        let state = self.state();
        let running = state
            .processing
            .values()
            .map(|started| (now - *started).as_secs_f64());
        let (total, longest) = running.fold((0.0, 0.0), |(total, longest): (f64, f64), s| {
            (total + s, longest.max(s))
        });
        let metrics = metrics::metrics();
        metrics
            .unfinished_work
            .with_label_values(&self.labels())
            .set(total);
        metrics
            .longest_running_processor
            .with_label_values(&self.labels())
            .set(longest);
    }
}

#[cfg(test)]
mod tests;
