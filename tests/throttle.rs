//! A broker enforcing a quota answers at once with `throttle_time_ms` and expects the client to
//! hold back (KIP-219): kprod sends nothing more on that connection until the time has passed,
//! loses nothing, and counts it. (tests/mock_cluster.rs shows librdkafka seeing the mock's
//! throttle.)
#![cfg(feature = "mock")]

use std::time::{Duration, Instant};

use kprod::mock::MockCluster;
use kprod::protocol::ApiKey;
use kprod::Producer;

const THROTTLE: Duration = Duration::from_millis(200);

fn producer(cluster: &MockCluster) -> Producer {
    Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .acks(kprod::Acks::Leader)
        .linger(Duration::ZERO)
        .build()
        .unwrap()
}

#[test]
fn throttled_responses_pace_the_producer_and_lose_nothing() {
    let cluster = MockCluster::builder().topic("t", 1).build().unwrap();
    let p = producer(&cluster);
    // The control: unthrottled, six blocking calls take a few ms.
    p.produce("t", "k", "warm").unwrap();
    let t = Instant::now();
    for _ in 0..6 {
        p.produce("t", "k", "v").unwrap();
    }
    assert!(t.elapsed() < THROTTLE, "unthrottled: {:?}", t.elapsed());
    assert_eq!(p.metrics().throttled_responses, 0);

    cluster.set_throttle(1, THROTTLE);
    p.produce("t", "k", "throttled from here").unwrap();
    let t = Instant::now();
    for _ in 0..5 {
        p.produce("t", "k", "v").unwrap();
    }
    // Each waited out the throttle the answer before it asked for.
    let took = t.elapsed();
    assert!(
        took >= THROTTLE * 5,
        "5 produce() under a 200 ms throttle took {took:?}"
    );
    let m = p.metrics();
    assert_eq!(m.throttled_responses, 6);
    assert_eq!(m.throttle_time_ms, 6 * 200);

    // Many records: each throttle period lets at most the in-flight window's requests go
    // (those already sent when an answer says to wait are not recalled), and while the
    // connection waits, the records gather into the open batch rather than into a queue of
    // small ones. Every record is acknowledged.
    let before = cluster.request_count(ApiKey::PRODUCE.0);
    let t = Instant::now();
    for i in 0..5_000 {
        p.send("t", format!("k{i}"), "v").unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
    let requests = cluster.request_count(ApiKey::PRODUCE.0) - before;
    let periods = (t.elapsed().as_millis() / THROTTLE.as_millis()) as u64 + 1;
    let window = p.config().max_in_flight as u64;
    assert!(
        requests <= periods * window,
        "{requests} requests in {periods} throttle periods"
    );
    assert!(requests <= 50, "5,000 records took {requests} requests");
    assert_eq!(p.metrics().records_acked, 1 + 6 + 6 + 5_000);
    assert_eq!(cluster.end_offset("t", 0), 1 + 6 + 6 + 5_000);

    // Lifted: fast again (after the last throttle runs out).
    cluster.set_throttle(1, Duration::ZERO);
    p.produce("t", "k", "v").unwrap();
    let t = Instant::now();
    for _ in 0..6 {
        p.produce("t", "k", "v").unwrap();
    }
    assert!(t.elapsed() < THROTTLE, "lifted: {:?}", t.elapsed());
    p.close(Duration::from_secs(5)).unwrap();
}
