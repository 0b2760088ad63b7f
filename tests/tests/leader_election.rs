//! Leader election on a real Lease: exactly one of two electors leads and the Lease names it; when the
//! leader stops, the other takes over within the lease duration (plus the retry jitter upstream allows).

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use component_base::leaderelection::{LeaderElectionConfig, LeaderElector, LeaderStatus};
use ferrokube_cluster::Identity;
use ferrokube_cluster::testing::{TestNamespace, shared_control_plane};

struct Candidate {
    identity: String,
    status: LeaderStatus,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

async fn candidate(namespace: &str, identity: &str, release_on_cancel: bool) -> Candidate {
    // Each elector gets its own client, as separate processes would have.
    let client = shared_control_plane()
        .client(&Identity::admin())
        .await
        .unwrap();
    let mut config = LeaderElectionConfig::new(namespace, "test-lock", identity);
    config.release_on_cancel = release_on_cancel;
    let elector = LeaderElector::new(client, config).unwrap();
    let status = elector.status();
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    let task = tokio::spawn(async move {
        elector
            .run(shutdown, |leading| async move { leading.cancelled().await })
            .await
            .unwrap();
    });
    Candidate {
        identity: identity.to_string(),
        status,
        stop,
        task,
    }
}

async fn holder(namespace: &str) -> Option<String> {
    let client = shared_control_plane()
        .client(&Identity::admin())
        .await
        .unwrap();
    let lease = Api::<Lease>::namespaced(client, namespace)
        .get("test-lock")
        .await
        .unwrap();
    lease.spec.and_then(|spec| spec.holder_identity)
}

async fn exactly_one_leads(a: &Candidate, b: &Candidate) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !a.status.is_leader() && !b.status.is_leader() {
        assert!(Instant::now() < deadline, "nobody leads after 30s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Watch a few retry periods: the other must never lead at the same time.
    for _ in 0..30 {
        assert!(!(a.status.is_leader() && b.status.is_leader()), "both lead");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if a.status.is_leader() { 0 } else { 1 }
}

async fn takeover(release_on_cancel: bool, limit: Duration) {
    let namespace = TestNamespace::new(if release_on_cancel {
        "le-release"
    } else {
        "le-expire"
    })
    .await;
    let candidates = [
        candidate(namespace.name(), "candidate-a", release_on_cancel).await,
        candidate(namespace.name(), "candidate-b", release_on_cancel).await,
    ];
    let leader = exactly_one_leads(&candidates[0], &candidates[1]).await;
    let [a, b] = candidates;
    let (leader, follower) = if leader == 0 { (a, b) } else { (b, a) };
    assert_eq!(
        holder(namespace.name()).await.as_deref(),
        Some(leader.identity.as_str())
    );
    assert_eq!(
        follower.status.leader().as_deref(),
        Some(leader.identity.as_str())
    );

    let stopped = Instant::now();
    leader.stop.cancel();
    leader.task.await.unwrap();
    let status = follower.status.clone();
    tokio::time::timeout(limit, status.wait_for(true))
        .await
        .unwrap_or_else(|_| panic!("the follower did not take over within {limit:?}"));
    eprintln!("takeover after {:?}", stopped.elapsed());
    assert_eq!(
        holder(namespace.name()).await.as_deref(),
        Some(follower.identity.as_str())
    );
    follower.stop.cancel();
    follower.task.await.unwrap();
    namespace.delete().await;
}

#[tokio::test]
async fn a_follower_takes_over_an_expired_lease_within_the_lease_duration() {
    // Lease duration 15 s, counted from the follower's last observed renewal, which can lag by one jittered
    // retry period (at most 2 s × 2.2), and then one more jittered retry until its attempt.
    takeover(
        false,
        Duration::from_secs(15) + Duration::from_millis(2 * 4400 + 1000),
    )
    .await;
}

#[tokio::test]
async fn a_released_lease_is_taken_over_after_one_retry_period() {
    takeover(true, Duration::from_millis(4400 + 1000)).await;
}
