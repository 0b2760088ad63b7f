//! The running scheduler (upstream `scheduler.go`): informers feed the cache and the queue; one loop pops
//! pods and runs the scheduling cycle; each binding runs in a task of its own.

mod api;
mod binding;
mod cycle;
mod event_handlers;
pub mod listers;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use component_base::events::EventRecorder;
use component_base::informer::{SharedInformer, SharedInformerFactory};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;

use crate::cache::Cache;
use crate::framework::Framework;
use crate::queue::SchedulingQueue;
use crate::schedule_one::Algorithm;
use listers::InformerListers;

/// One profile: its framework and the recorder that reports as its scheduler name.
pub struct Profile {
    /// The plugins.
    pub framework: Arc<Framework>,
    /// Events as `reportingController: <schedulerName>`.
    pub recorder: EventRecorder,
}

/// The scheduler's shared state.
pub struct Scheduler {
    client: Client,
    profiles: HashMap<String, Profile>,
    cache: Mutex<Cache>,
    queue: Arc<SchedulingQueue>,
    algorithm: Mutex<Algorithm>,
    pods: SharedInformer<Pod>,
    nodes: SharedInformer<Node>,
}

/// The pods the scheduler watches: all but finished ones, as upstream's pod informer.
pub fn pod_watch_config() -> watcher::Config {
    watcher::Config::default().fields("status.phase!=Succeeded,status.phase!=Failed")
}

impl Scheduler {
    /// A scheduler over `profiles` (by scheduler name) and `queue`, with informers from `factory`.
    pub fn new(
        client: Client,
        factory: &SharedInformerFactory,
        profiles: HashMap<String, Profile>,
        queue: Arc<SchedulingQueue>,
        percentage_of_nodes_to_score: i32,
    ) -> Arc<Self> {
        Arc::new(Self {
            client,
            profiles,
            cache: Mutex::new(Cache::new()),
            queue,
            algorithm: Mutex::new(Algorithm::new(percentage_of_nodes_to_score)),
            pods: factory.informer_with(pod_watch_config()),
            nodes: factory.informer(),
        })
    }

    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a profile schedules pods with this scheduler name.
    fn responsible_for(&self, pod: &Pod) -> bool {
        let name = pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or("default-scheduler");
        self.profiles.contains_key(name)
    }

    /// Runs until `stop` is cancelled: event handlers, periodic flushes, and the scheduling loop.
    pub async fn run(self: Arc<Self>, listers: InformerListers, stop: CancellationToken) {
        let handlers = self.clone().spawn_event_handlers(&listers, stop.clone());
        let synced = async {
            self.pods.wait_for_sync().await;
            self.nodes.wait_for_sync().await;
            listers.wait_for_sync().await;
        };
        // The informers stop with `stop`, so a stop before the caches sync must not wait for them.
        tokio::select! {
            () = synced => {}
            () = stop.cancelled() => {
                handlers.iter().for_each(|handler| handler.abort());
                return;
            }
        }
        tracing::info!(
            nodes = self.cache().node_count(),
            "caches synced; scheduling"
        );
        let periodic = tokio::spawn(self.clone().periodic(stop.clone()));
        let scheduling = {
            let scheduler = self.clone();
            tokio::spawn(async move {
                while let Some((queued, cycle)) = scheduler.queue.pop().await {
                    scheduler.schedule_one(queued, cycle).await;
                }
            })
        };
        stop.cancelled().await;
        self.queue.close();
        let _ = scheduling.await;
        let _ = periodic.await;
        for handler in handlers {
            handler.abort();
        }
    }

    async fn periodic(self: Arc<Self>, stop: CancellationToken) {
        let mut backoff = tokio::time::interval(Duration::from_secs(1));
        let mut leftover = tokio::time::interval(Duration::from_secs(30));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = backoff.tick() => {
                    let now = Instant::now();
                    self.queue.flush_backoff_completed(now);
                    self.cache().cleanup_expired(now);
                }
                _ = leftover.tick() => self.queue.flush_unschedulable_left_over(Instant::now()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config;
    use crate::profile;

    #[tokio::test]
    async fn a_stop_before_the_caches_sync_ends_the_run() {
        // Never contacted: the informers are not started, so the caches never sync.
        let kube_config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        let client = Client::try_from(kube_config).unwrap();
        let factory = SharedInformerFactory::new(client.clone());
        let listers = InformerListers::new(&factory);
        let config = config::default_config();
        let queue = Arc::new(profile::build_queue(&config, &HashMap::new()));
        let scheduler = Scheduler::new(client, &factory, HashMap::new(), queue, 0);
        let stop = CancellationToken::new();
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), scheduler.run(listers, stop))
            .await
            .expect("run returned after the stop");
    }
}
