use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::framework::{ActionType, EventResource, Nominator};
use crate::testing::make_pod;

fn queue() -> SchedulingQueue {
    let less: Less = Arc::new(|a, b| {
        let (pa, pb) = (a.pod_info.priority(), b.pod_info.priority());
        pa > pb || (pa == pb && a.timestamp < b.timestamp)
    });
    let pre_enqueue: PreEnqueue = Arc::new(|pod| {
        let gated = pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduling_gates.as_ref())
            .is_some_and(|g| !g.is_empty());
        if gated {
            Status::unresolvable("gated").with_plugin("SchedulingGates")
        } else {
            Status::success()
        }
    });
    let node_add = ClusterEvent::new(EventResource::Node, ActionType::ADD);
    SchedulingQueue::new(
        less,
        pre_enqueue,
        QueueSettings {
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            plugin_events: HashMap::from([("NodeResourcesFit", vec![node_add])]),
        },
    )
}

fn pop_now(queue: &SchedulingQueue) -> Option<(QueuedPodInfo, u64)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_millis(20), queue.pop())
            .await
            .ok()
            .flatten()
    })
}

#[test]
fn active_queue_pops_by_priority_then_arrival() {
    let queue = queue();
    let now = Instant::now();
    queue.add(make_pod("low").priority(1).info(), now);
    queue.add(
        make_pod("high").priority(10).info(),
        now + Duration::from_millis(1),
    );
    queue.add(
        make_pod("low-later").priority(1).info(),
        now + Duration::from_millis(2),
    );
    let order: Vec<String> = std::iter::from_fn(|| pop_now(&queue))
        .map(|(q, _)| q.pod_info.name().to_string())
        .collect();
    assert_eq!(order, ["high", "low", "low-later"]);
}

#[test]
fn backoff_doubles_from_the_initial_value_up_to_the_maximum() {
    let queue = queue();
    let seconds: Vec<u64> = (1..=6)
        .map(|a| queue.backoff_duration(a).as_secs())
        .collect();
    assert_eq!(seconds, [1, 2, 4, 8, 10, 10]);
}

#[test]
fn unschedulable_pods_move_only_on_registered_events_and_after_backoff() {
    let queue = queue();
    let now = Instant::now();
    queue.add(make_pod("p").info(), now);
    let (mut queued, cycle) = pop_now(&queue).unwrap();
    queued.unschedulable_plugins.insert("NodeResourcesFit");
    queue.add_unschedulable_if_not_present(queued, cycle, now);
    assert_eq!(queue.queue_of("p"), Some(QueueName::Unschedulable));

    let label_update = ClusterEvent::new(EventResource::Node, ActionType::UPDATE_NODE_LABEL);
    queue.move_all_to_active_or_backoff(label_update, now);
    assert_eq!(queue.queue_of("p"), Some(QueueName::Unschedulable));

    let node_add = ClusterEvent::new(EventResource::Node, ActionType::ADD);
    queue.move_all_to_active_or_backoff(node_add, now);
    assert_eq!(
        queue.queue_of("p"),
        Some(QueueName::Backoff),
        "still backing off"
    );
    queue.flush_backoff_completed(now + Duration::from_millis(500));
    assert_eq!(queue.queue_of("p"), Some(QueueName::Backoff));
    queue.flush_backoff_completed(now + Duration::from_secs(1));
    assert_eq!(queue.queue_of("p"), Some(QueueName::Active));
}

#[test]
fn an_event_during_the_attempt_sends_the_pod_to_backoff_and_errors_always_do() {
    let queue = queue();
    let now = Instant::now();
    queue.add(make_pod("p").info(), now);
    let (mut queued, cycle) = pop_now(&queue).unwrap();
    queue.move_all_to_active_or_backoff(
        ClusterEvent::new(EventResource::Node, ActionType::ADD),
        now,
    );
    queued.unschedulable_plugins.insert("NodeResourcesFit");
    queue.add_unschedulable_if_not_present(queued, cycle, now);
    assert_eq!(queue.queue_of("p"), Some(QueueName::Backoff));

    queue.add(make_pod("e").info(), now);
    let (queued, cycle) = pop_now(&queue).unwrap();
    assert_eq!(queued.pod_info.name(), "e");
    queue.add_unschedulable_if_not_present(queued, cycle + 1, now);
    assert_eq!(queue.queue_of("e"), Some(QueueName::Backoff));
}

#[test]
fn unschedulable_pods_are_retried_after_five_minutes() {
    let queue = queue();
    let now = Instant::now();
    queue.add(make_pod("p").info(), now);
    let (mut queued, cycle) = pop_now(&queue).unwrap();
    queued.unschedulable_plugins.insert("Other");
    queue.add_unschedulable_if_not_present(queued, cycle, now);
    queue.flush_unschedulable_left_over(now + Duration::from_secs(299));
    assert_eq!(queue.queue_of("p"), Some(QueueName::Unschedulable));
    queue.flush_unschedulable_left_over(now + MAX_IN_UNSCHEDULABLE_PODS + Duration::from_secs(1));
    assert_eq!(queue.queue_of("p"), Some(QueueName::Active));
}

#[test]
fn gated_pods_wait_until_their_gates_are_removed() {
    use k8s_openapi::api::core::v1::PodSchedulingGate;
    let queue = queue();
    let now = Instant::now();
    let gated = make_pod("g")
        .with_spec(|s| s.scheduling_gates = Some(vec![PodSchedulingGate { name: "x".into() }]));
    queue.add(gated.info(), now);
    assert_eq!(queue.queue_of("g"), Some(QueueName::Gated));
    queue.move_all_to_active_or_backoff(
        ClusterEvent::new(EventResource::WildCard, ActionType::ALL),
        now,
    );
    assert_eq!(queue.queue_of("g"), Some(QueueName::Gated));
    assert!(pop_now(&queue).is_none());
    queue.update(make_pod("g").info(), now);
    assert_eq!(queue.queue_of("g"), Some(QueueName::Active));
    queue.delete("g");
    assert_eq!(queue.queue_of("g"), None);
}

#[test]
fn nominations_are_tracked_per_node_and_dropped_with_the_pod() {
    let queue = queue();
    queue.nominator.add(make_pod("p").info(), "n1");
    assert_eq!(queue.nominator.nominated_pods_for_node("n1").len(), 1);
    queue.nominator.add(make_pod("p").info(), "n2");
    assert!(queue.nominator.nominated_pods_for_node("n1").is_empty());
    queue.delete("p");
    assert!(queue.nominator.nominated_pods_for_node("n2").is_empty());
}
