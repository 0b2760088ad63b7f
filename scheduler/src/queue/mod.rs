//! The scheduling queue (upstream `backend/queue`): the active queue ordered by the QueueSort plugin, the
//! backoff queue, the pool of unschedulable pods that cluster events move back, gated pods, and the
//! nominator that remembers where preemptors are headed.

mod heap;
mod nominator;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use tokio::sync::Notify;

use crate::framework::events::labels;
use crate::framework::{ClusterEvent, PodInfo, QueuedPodInfo, Status};
use crate::metrics::metrics;
use heap::KeyedHeap;
pub use nominator::PodNominator;

/// How long a pod may sit in the unschedulable pool before it is retried anyway.
pub const MAX_IN_UNSCHEDULABLE_PODS: Duration = Duration::from_secs(5 * 60);

/// Orders the active queue.
pub type Less = Arc<dyn Fn(&QueuedPodInfo, &QueuedPodInfo) -> bool + Send + Sync>;
/// Runs the PreEnqueue plugins of the pod's profile.
pub type PreEnqueue = Arc<dyn Fn(&Pod) -> Status + Send + Sync>;

/// Settings from the configuration.
#[derive(Clone)]
pub struct QueueSettings {
    /// podInitialBackoffSeconds.
    pub initial_backoff: Duration,
    /// podMaxBackoffSeconds.
    pub max_backoff: Duration,
    /// The cluster events each plugin registered.
    pub plugin_events: HashMap<&'static str, Vec<ClusterEvent>>,
}

#[derive(Default)]
struct QueueState {
    active: KeyedHeap<String, QueuedPodInfo>,
    backoff: BTreeMap<(Instant, u64), QueuedPodInfo>,
    backoff_keys: HashMap<String, (Instant, u64)>,
    unschedulable: HashMap<String, QueuedPodInfo>,
    in_flight: BTreeSet<String>,
    sequence: u64,
    scheduling_cycle: u64,
    move_request_cycle: u64,
    closed: bool,
}

/// Where a pod is in the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueName {
    /// Ready to be scheduled.
    Active,
    /// Waiting out its backoff.
    Backoff,
    /// Waiting for a cluster event.
    Unschedulable,
    /// Kept out by a PreEnqueue plugin.
    Gated,
}

impl QueueName {
    fn label(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Backoff => "backoff",
            Self::Unschedulable => "unschedulable",
            Self::Gated => "gated",
        }
    }
}

/// The scheduling queue shared by the informer handlers and the scheduling loop.
pub struct SchedulingQueue {
    state: Mutex<QueueState>,
    wake: Notify,
    less: Less,
    pre_enqueue: PreEnqueue,
    settings: QueueSettings,
    /// Where preemptors are nominated.
    pub nominator: PodNominator,
}

impl SchedulingQueue {
    /// An empty queue.
    pub fn new(less: Less, pre_enqueue: PreEnqueue, settings: QueueSettings) -> Self {
        Self {
            state: Mutex::default(),
            wake: Notify::new(),
            less,
            pre_enqueue,
            settings,
            nominator: PodNominator::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a new unscheduled pod.
    pub fn add(&self, pod: Arc<PodInfo>, now: Instant) {
        self.nominator.add_from_status(&pod);
        let mut state = self.lock();
        let queued = QueuedPodInfo::new(pod, now);
        self.push_active_or_gated(&mut state, queued, labels::POD_ADD);
    }

    fn push_active_or_gated(&self, state: &mut QueueState, mut queued: QueuedPodInfo, event: &str) {
        let status = (self.pre_enqueue)(&queued.pod_info.pod);
        let key = queued.pod_info.uid().to_string();
        if status.is_success() {
            queued.gating_plugin = None;
            self.remove_everywhere(state, &key);
            state.active.push(key, queued, &|a, b| (self.less)(a, b));
            self.count(QueueName::Active, event);
            self.wake.notify_one();
        } else {
            queued.gating_plugin = status.plugin();
            self.remove_everywhere(state, &key);
            state.unschedulable.insert(key, queued);
            self.count(QueueName::Gated, event);
        }
        self.update_gauges(state);
    }

    fn count(&self, queue: QueueName, event: &str) {
        metrics()
            .queue_incoming_pods
            .with_label_values(&[queue.label(), event])
            .inc();
    }

    /// Applies an update of an unscheduled pod: replaces it where it waits, and retries it at once if it
    /// was gated or unschedulable (its spec may now fit).
    pub fn update(&self, pod: Arc<PodInfo>, now: Instant) {
        self.nominator.add_from_status(&pod);
        let mut state = self.lock();
        let key = pod.uid().to_string();
        if let Some(existing) = state.active.get(&key) {
            let mut queued = existing.clone();
            queued.pod_info = pod;
            state.active.push(key, queued, &|a, b| (self.less)(a, b));
            return;
        }
        if let Some(slot) = state.backoff_keys.get(&key).copied() {
            if let Some(queued) = state.backoff.get_mut(&slot) {
                queued.pod_info = pod;
            }
            return;
        }
        if let Some(mut queued) = state.unschedulable.remove(&key) {
            queued.pod_info = pod;
            if queued.gating_plugin.is_some() || !self.is_backing_off(&queued, now) {
                self.push_active_or_gated(&mut state, queued, labels::POD_UPDATE);
            } else {
                self.push_backoff(&mut state, queued, labels::POD_UPDATE);
            }
            return;
        }
        if !state.in_flight.contains(&key) {
            let queued = QueuedPodInfo::new(pod, now);
            self.push_active_or_gated(&mut state, queued, labels::POD_UPDATE);
        }
    }

    /// Forgets a pod that was deleted or got bound.
    pub fn delete(&self, uid: &str) {
        self.nominator.delete(uid);
        let mut state = self.lock();
        self.remove_everywhere(&mut state, uid);
        self.update_gauges(&state);
    }

    fn remove_everywhere(&self, state: &mut QueueState, key: &str) {
        state
            .active
            .remove(&key.to_string(), &|a, b| (self.less)(a, b));
        if let Some(slot) = state.backoff_keys.remove(key) {
            state.backoff.remove(&slot);
        }
        state.unschedulable.remove(key);
    }

    /// Waits for the next pod to schedule; `None` once the queue is closed.
    pub async fn pop(&self) -> Option<(QueuedPodInfo, u64)> {
        loop {
            let notified = self.wake.notified();
            {
                let mut state = self.lock();
                if state.closed {
                    return None;
                }
                if let Some(mut queued) = state.active.pop(&|a, b| (self.less)(a, b)) {
                    queued.attempts += 1;
                    queued
                        .initial_attempt_timestamp
                        .get_or_insert_with(Instant::now);
                    state.scheduling_cycle += 1;
                    state.in_flight.insert(queued.pod_info.uid().to_string());
                    let cycle = state.scheduling_cycle;
                    self.update_gauges(&state);
                    return Some((queued, cycle));
                }
            }
            notified.await;
        }
    }

    /// Marks the pod's attempt finished.
    pub fn done(&self, uid: &str) {
        self.lock().in_flight.remove(uid);
    }

    /// Puts back a pod whose attempt failed: into backoff when it failed with an error or a cluster event
    /// came during its attempt, otherwise into the unschedulable pool.
    pub fn add_unschedulable_if_not_present(
        &self,
        mut queued: QueuedPodInfo,
        pod_scheduling_cycle: u64,
        now: Instant,
    ) {
        let mut state = self.lock();
        let key = queued.pod_info.uid().to_string();
        state.in_flight.remove(&key);
        if state.active.contains(&key)
            || state.backoff_keys.contains_key(&key)
            || state.unschedulable.contains_key(&key)
        {
            return;
        }
        queued.timestamp = now;
        let failed_with_error =
            queued.unschedulable_plugins.is_empty() && queued.pending_plugins.is_empty();
        if failed_with_error || state.move_request_cycle >= pod_scheduling_cycle {
            self.push_backoff(&mut state, queued, labels::SCHEDULE_ATTEMPT_FAILURE);
        } else {
            state.unschedulable.insert(key, queued);
            self.count(QueueName::Unschedulable, labels::SCHEDULE_ATTEMPT_FAILURE);
            self.update_gauges(&state);
        }
    }

    fn push_backoff(&self, state: &mut QueueState, queued: QueuedPodInfo, event: &str) {
        let key = queued.pod_info.uid().to_string();
        self.remove_everywhere(state, &key);
        state.sequence += 1;
        let slot = (self.backoff_expiry(&queued), state.sequence);
        state.backoff_keys.insert(key, slot);
        state.backoff.insert(slot, queued);
        self.count(QueueName::Backoff, event);
        self.update_gauges(state);
    }

    /// How long a pod that failed `attempts` times waits: initial × 2^(attempts-1), capped.
    pub fn backoff_duration(&self, attempts: u32) -> Duration {
        let mut duration = self.settings.initial_backoff;
        for _ in 1..attempts {
            if duration > self.settings.max_backoff.saturating_sub(duration) {
                return self.settings.max_backoff;
            }
            duration += duration;
        }
        duration.min(self.settings.max_backoff)
    }

    fn backoff_expiry(&self, queued: &QueuedPodInfo) -> Instant {
        queued.timestamp + self.backoff_duration(queued.attempts)
    }

    fn is_backing_off(&self, queued: &QueuedPodInfo, now: Instant) -> bool {
        self.backoff_expiry(queued) > now
    }

    /// Moves unschedulable pods that `event` may help to the active or backoff queue.
    pub fn move_all_to_active_or_backoff(&self, event: ClusterEvent, now: Instant) {
        let mut state = self.lock();
        let helped: Vec<String> = state
            .unschedulable
            .iter()
            .filter(|(_, q)| q.gating_plugin.is_none() && self.event_may_help(q, &event))
            .map(|(key, _)| key.clone())
            .collect();
        let label = event.label();
        self.move_to_active_or_backoff(&mut state, helped, &label, now);
        state.move_request_cycle = state.scheduling_cycle;
    }

    fn event_may_help(&self, queued: &QueuedPodInfo, event: &ClusterEvent) -> bool {
        let plugins = queued
            .unschedulable_plugins
            .iter()
            .chain(&queued.pending_plugins);
        let mut any = false;
        for plugin in plugins {
            any = true;
            let registered = self.settings.plugin_events.get(plugin);
            if registered.is_some_and(|events| events.iter().any(|e| e.covers(event))) {
                return true;
            }
        }
        !any
    }

    fn move_to_active_or_backoff(
        &self,
        state: &mut QueueState,
        keys: Vec<String>,
        event: &str,
        now: Instant,
    ) {
        for key in keys {
            let Some(queued) = state.unschedulable.remove(&key) else {
                continue;
            };
            if self.is_backing_off(&queued, now) {
                self.push_backoff(state, queued, event);
            } else {
                self.push_active_or_gated(state, queued, event);
            }
        }
    }

    /// Moves pods whose backoff has passed to the active queue.
    pub fn flush_backoff_completed(&self, now: Instant) {
        let mut state = self.lock();
        while let Some(entry) = state.backoff.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let queued = entry.remove();
            state.backoff_keys.remove(queued.pod_info.uid());
            self.push_active_or_gated(&mut state, queued, labels::BACKOFF_COMPLETE);
        }
    }

    /// Retries pods that have been unschedulable for longer than [`MAX_IN_UNSCHEDULABLE_PODS`].
    pub fn flush_unschedulable_left_over(&self, now: Instant) {
        let mut state = self.lock();
        let stale: Vec<String> = state
            .unschedulable
            .iter()
            .filter(|(_, q)| {
                q.gating_plugin.is_none()
                    && now.duration_since(q.timestamp) > MAX_IN_UNSCHEDULABLE_PODS
            })
            .map(|(key, _)| key.clone())
            .collect();
        self.move_to_active_or_backoff(&mut state, stale, labels::UNSCHEDULABLE_TIMEOUT, now);
    }

    /// Stops the queue: `pop` returns `None` from now on.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_waiters();
    }

    /// Where the pod with `uid` waits, if it does.
    pub fn queue_of(&self, uid: &str) -> Option<QueueName> {
        let state = self.lock();
        let key = uid.to_string();
        if state.active.contains(&key) {
            Some(QueueName::Active)
        } else if state.backoff_keys.contains_key(uid) {
            Some(QueueName::Backoff)
        } else {
            state.unschedulable.get(uid).map(|q| match q.gating_plugin {
                Some(_) => QueueName::Gated,
                None => QueueName::Unschedulable,
            })
        }
    }

    fn update_gauges(&self, state: &QueueState) {
        let gated = state
            .unschedulable
            .values()
            .filter(|q| q.gating_plugin.is_some())
            .count();
        let pending = &metrics().pending_pods;
        pending
            .with_label_values(&["active"])
            .set(state.active.len() as i64);
        pending
            .with_label_values(&["backoff"])
            .set(state.backoff.len() as i64);
        pending
            .with_label_values(&["unschedulable"])
            .set((state.unschedulable.len() - gated) as i64);
        pending.with_label_values(&["gated"]).set(gated as i64);
    }
}

#[cfg(test)]
mod tests;
