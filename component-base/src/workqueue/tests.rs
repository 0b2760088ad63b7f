use std::time::Duration;

use tokio::time::{Instant, timeout};

use super::*;

fn queue(name: &str) -> RateLimitingQueue<String> {
    RateLimitingQueue::with_default_rate_limiter(name)
}

fn key(s: &str) -> String {
    s.to_string()
}

fn counter(metric: &prometheus::IntCounterVec, name: &str) -> u64 {
    metric.with_label_values(&[name]).get()
}

#[tokio::test(start_paused = true)]
async fn repeated_adds_are_queued_once() {
    let q = queue("test-dedup");
    q.add(key("a"));
    q.add(key("a"));
    q.add(key("b"));
    assert_eq!(q.len(), 2);
    assert_eq!(q.get().await, Some(key("a")));
    assert_eq!(q.get().await, Some(key("b")));
    assert!(q.is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_item_added_while_processing_is_requeued_at_done_and_never_handed_out_twice() {
    let q = queue("test-processing");
    q.add(key("a"));
    let item = q.get().await.unwrap();
    q.add(key("a"));
    assert!(
        q.is_empty(),
        "a key being processed must not be handed to a second worker"
    );
    assert!(timeout(Duration::from_secs(1), q.get()).await.is_err());
    q.done(&item);
    assert_eq!(q.get().await, Some(key("a")));
    q.done(&key("a"));
    assert!(q.is_empty());
}

#[tokio::test(start_paused = true)]
async fn rate_limited_adds_back_off_per_key_and_reset_on_forget() {
    let q = queue("test-backoff");
    let mut waits = Vec::new();
    for _ in 0..4 {
        let started = Instant::now();
        q.add_rate_limited(key("a"));
        let item = q.get().await.unwrap();
        waits.push(started.elapsed());
        q.done(&item);
    }
    let millis: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
    assert_eq!(millis, [5, 10, 20, 40]);
    assert_eq!(q.num_requeues(&key("a")), 4);
    q.forget(&key("a"));
    assert_eq!(q.num_requeues(&key("a")), 0);
    let started = Instant::now();
    q.add_rate_limited(key("a"));
    q.get().await.unwrap();
    assert_eq!(started.elapsed().as_millis(), 5);
}

#[tokio::test(start_paused = true)]
async fn delayed_adds_come_out_in_due_order_and_the_earliest_time_wins() {
    let q = queue("test-delayed");
    let started = Instant::now();
    q.add_after(key("late"), Duration::from_secs(3));
    q.add_after(key("early"), Duration::from_secs(1));
    q.add_after(key("late"), Duration::from_secs(2));
    q.add_after(key("late"), Duration::from_secs(10));
    assert!(q.is_empty());
    assert_eq!(q.get().await, Some(key("early")));
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!(q.get().await, Some(key("late")));
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(
        q.is_empty(),
        "the superseded delays must not add the key again"
    );
}

#[tokio::test(start_paused = true)]
async fn shut_down_wakes_waiting_workers_after_the_queue_drains() {
    let q = queue("test-shutdown");
    let worker = {
        let q = q.clone();
        tokio::spawn(async move { q.get().await })
    };
    tokio::task::yield_now().await;
    q.add(key("a"));
    assert_eq!(worker.await.unwrap(), Some(key("a")));
    q.add(key("b"));
    q.shut_down();
    q.add(key("c"));
    assert_eq!(
        q.get().await,
        Some(key("b")),
        "queued items drain after shut_down"
    );
    assert_eq!(q.get().await, None);
    let waiting = {
        let q = q.clone();
        tokio::spawn(async move { q.get().await })
    };
    assert_eq!(
        timeout(Duration::from_secs(1), waiting)
            .await
            .unwrap()
            .unwrap(),
        None
    );
}

#[tokio::test(start_paused = true)]
async fn metrics_count_adds_depth_retries_and_durations() {
    let name = "test-metrics";
    let q = queue(name);
    let m = metrics::metrics();
    q.add(key("a"));
    q.add(key("a"));
    q.add(key("b"));
    assert_eq!(counter(&m.adds, name), 2, "a duplicate add is not counted");
    assert_eq!(m.depth.with_label_values(&[name]).get(), 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a = q.get().await.unwrap();
    assert_eq!(m.depth.with_label_values(&[name]).get(), 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    q.update_unfinished_work();
    assert_eq!(
        m.longest_running_processor.with_label_values(&[name]).get(),
        2.0
    );
    assert_eq!(m.unfinished_work.with_label_values(&[name]).get(), 2.0);
    q.done(&a);
    q.add_rate_limited(key("a"));
    q.add_rate_limited(key("c"));
    assert_eq!(counter(&m.retries, name), 2);
    let queue_duration = m.queue_duration.with_label_values(&[name]);
    assert_eq!(queue_duration.get_sample_count(), 1);
    assert!((queue_duration.get_sample_sum() - 0.3).abs() < 1e-6);
    let work_duration = m.work_duration.with_label_values(&[name]);
    assert_eq!(work_duration.get_sample_count(), 1);
    assert!((work_duration.get_sample_sum() - 2.0).abs() < 1e-6);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        m.depth.with_label_values(&[name]).get(),
        3,
        "b, and the retried a and c"
    );
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&prometheus::gather())
        .unwrap();
    assert!(
        text.contains(r#"workqueue_adds_total{name="test-metrics"} 4"#),
        "{text}"
    );
}
