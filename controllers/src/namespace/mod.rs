//! The namespace controller (upstream pkg/controller/namespace): a namespace being deleted is emptied of
//! all its content and then finalized, so the apiserver can remove it.

pub mod conditions;
pub mod deleter;

use std::time::Duration;

use component_base::informer::{InformerEvent, ObjectKey};
use component_base::workqueue::{
    BucketRateLimiter, ItemExponentialFailureRateLimiter, MaxOfRateLimiter, RateLimiter,
    RateLimitingQueue,
};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Namespace;

use crate::context::{ControllerContext, StartError};
use deleter::{DeleteError, Deleter};

/// Upstream's controller name.
const NAME: &str = "namespace-controller";
/// A namespace is first looked at this long after its deletion is observed (upstream
/// namespaceDeletionGracePeriod), so the content's own controllers see the deletion too.
const DELETION_GRACE_PERIOD: Duration = Duration::from_secs(5);

/// Upstream nsControllerRateLimiter: per-item backoff 5 ms to 60 s, at most 10 per second overall.
fn rate_limiter() -> impl RateLimiter<String> {
    let limiters: Vec<Box<dyn RateLimiter<String>>> = vec![
        Box::new(ItemExponentialFailureRateLimiter::new(
            Duration::from_millis(5),
            Duration::from_secs(60),
        )),
        Box::new(BucketRateLimiter::new(10.0, 100)),
    ];
    MaxOfRateLimiter::new(limiters)
}

fn terminating(namespace: &Namespace) -> bool {
    namespace.metadata.deletion_timestamp.is_some()
}

/// Starts the namespace controller.
pub fn start(ctx: ControllerContext) -> BoxFuture<'static, Result<(), StartError>> {
    Box::pin(async move {
        // Upstream: the namespace controller makes many discovery and delete calls; its client gets 20x the
        // qps and 100x the burst.
        let client = ctx
            .clients
            .client_scaled("namespace-controller", 20.0, 100)
            .await?;
        let deleter = Deleter { client };
        let queue: RateLimitingQueue<String> = RateLimitingQueue::new("namespace", rate_limiter());
        let informer = ctx.informers.informer::<Namespace>();
        let mut events = informer.subscribe();
        let handler = {
            let queue = queue.clone();
            async move {
                while let Some(event) = events.recv().await {
                    let namespace = match event {
                        InformerEvent::Added(ns) | InformerEvent::Updated { new: ns, .. } => ns,
                        InformerEvent::Deleted(_) => continue,
                    };
                    if terminating(&namespace) {
                        queue.add_after(
                            ObjectKey::of(namespace.as_ref()).name,
                            DELETION_GRACE_PERIOD,
                        );
                    }
                }
            }
        };
        // Upstream's informer resyncs every --namespace-sync-period; ferrokube's do not, so re-enqueue
        // terminating namespaces on that period here.
        let resync = {
            let queue = queue.clone();
            let informer = informer.clone();
            let period = ctx.flags.namespace_sync_period;
            let stop = ctx.stop.clone();
            async move {
                if period.is_zero() {
                    return;
                }
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(period) => {}
                    }
                    for namespace in informer.list().iter().filter(|ns| terminating(ns)) {
                        queue.add_after(
                            ObjectKey::of(namespace.as_ref()).name,
                            DELETION_GRACE_PERIOD,
                        );
                    }
                }
            }
        };
        tokio::spawn(handler);
        tokio::spawn(resync);
        tokio::select! {
            () = informer.wait_for_sync() => {}
            () = ctx.stop.cancelled() => return Ok(()),
        }
        let workers = ctx.flags.concurrent_namespace_syncs;
        let requeue = queue.clone();
        crate::worker::run_workers(
            NAME,
            queue,
            workers,
            ctx.stop.clone(),
            move |name: String| {
                let deleter = deleter.clone();
                let informer = informer.clone();
                let requeue = requeue.clone();
                async move {
                    // Gone from the cache: deleted, nothing to do.
                    if informer
                        .get(&ObjectKey {
                            namespace: None,
                            name: name.clone(),
                        })
                        .is_none()
                    {
                        return Ok(());
                    }
                    match deleter.delete(&name).await {
                        Err(DeleteError::ResourcesRemaining(estimate)) => {
                            // Look again in about half the time the content is expected to take.
                            let wait = Duration::from_secs((estimate / 2 + 1).max(1) as u64);
                            tracing::debug!(
                                namespace = name,
                                ?wait,
                                "content remaining in namespace"
                            );
                            requeue.add_after(name, wait);
                            Ok(())
                        }
                        other => other,
                    }
                }
            },
        )
        .await;
        Ok(())
    })
}
