//! Builds each profile's framework and the shared queue from the configuration (upstream
//! `profile.NewMap` and `scheduler.New`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, Profile};
use crate::framework::runtime::FrameworkError;
use crate::framework::{Framework, Handle, Status};
use crate::plugins::registry;
use crate::queue::{Less, PreEnqueue, QueueSettings, SchedulingQueue};

/// Why the configured profiles cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// A profile's plugins do not make a framework.
    #[error("profile {profile:?}: {reason}")]
    Framework {
        /// The scheduler name.
        profile: String,
        /// Why (printed inline: one line for the user).
        reason: FrameworkError,
    },
    /// The Filter/Score threads could not start.
    #[error("starting {threads} scheduling threads: {message}")]
    ThreadPool {
        /// parallelism.
        threads: usize,
        /// Why.
        message: String,
    },
}

/// One framework per profile, by scheduler name.
pub fn build_frameworks(
    config: &Config,
    handle: &Handle,
) -> Result<HashMap<String, Arc<Framework>>, ProfileError> {
    // Go multiplexes upstream's `parallelism` goroutines onto one thread per core; OS threads beyond the
    // cores only queue behind each other and stall every parallel step waiting for its slowest part.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads = usize::try_from(config.parallelism)
        .unwrap_or(1)
        .clamp(1, cores);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("scheduler-parallel-{i}"))
        .build()
        .map(Arc::new)
        .map_err(|e| ProfileError::ThreadPool {
            threads,
            message: e.to_string(),
        })?;
    config
        .profiles
        .iter()
        .map(|profile| {
            build_framework(profile, handle, pool.clone())
                .map(|f| (profile.scheduler_name.clone(), Arc::new(f)))
                .map_err(|reason| ProfileError::Framework {
                    profile: profile.scheduler_name.clone(),
                    reason,
                })
        })
        .collect()
}

fn build_framework(
    profile: &Profile,
    handle: &Handle,
    pool: Arc<rayon::ThreadPool>,
) -> Result<Framework, FrameworkError> {
    let args = profile.plugin_args();
    Framework::new(
        &profile.scheduler_name,
        &profile.plugins,
        &|name| registry::new_plugin(name, &args, handle),
        profile.percentage_of_nodes_to_score,
        pool,
    )
}

/// The queue all profiles share: ordered by the (common) QueueSort plugin, gated by each pod's profile's
/// PreEnqueue plugins, and woken by the events every plugin registered.
pub fn build_queue(
    config: &Config,
    frameworks: &HashMap<String, Arc<Framework>>,
) -> SchedulingQueue {
    let first = config
        .profiles
        .first()
        .and_then(|p| frameworks.get(&p.scheduler_name))
        .cloned();
    let less: Less = Arc::new(move |a, b| first.as_ref().is_some_and(|f| f.queue_sort_less(a, b)));
    let by_name = frameworks.clone();
    let pre_enqueue: PreEnqueue = Arc::new(move |pod| {
        let name = pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or("default-scheduler");
        by_name
            .get(name)
            .map(|f| f.run_pre_enqueue(pod))
            .unwrap_or_else(Status::success)
    });
    let mut plugin_events = HashMap::new();
    for framework in frameworks.values() {
        for plugin in framework.plugins() {
            plugin_events.insert(plugin.name(), plugin.events_to_register());
        }
    }
    let seconds = |s: i64| Duration::from_secs(u64::try_from(s).unwrap_or(1));
    SchedulingQueue::new(
        less,
        pre_enqueue,
        QueueSettings {
            initial_backoff: seconds(config.pod_initial_backoff_seconds),
            max_backoff: seconds(config.pod_max_backoff_seconds),
            plugin_events,
        },
    )
}
