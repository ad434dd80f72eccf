//! Per-record stage latency ([`kprod::StageLatency`]): each stage shows the delay injected
//! into it and the others do not — broker latency in written → acknowledged, linger in
//! enqueued → batched, a slow callback in acknowledged → delivered.
#![cfg(feature = "mock")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kprod::mock::MockCluster;
use kprod::{Producer, StageLatency};

const T: &str = "stages";
const MS: Duration = Duration::from_millis(1);

fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn cluster() -> MockCluster {
    MockCluster::builder().topic(T, 1).build().unwrap()
}

fn producer(c: &MockCluster, linger: Duration) -> Producer {
    Producer::builder()
        .bootstrap_servers(&c.bootstrap_servers())
        .linger(linger)
        .stage_sampling(1)
        .build()
        .unwrap()
}

/// The stages' medians never exceed the total's (each is a part of it).
fn consistent(s: &StageLatency) {
    for part in [&s.queued, &s.sending, &s.broker, &s.completing] {
        assert_eq!(part.count, s.total.count, "{s:?}");
        assert!(part.p50 <= s.total.max, "{s:?}");
    }
}

#[test]
fn broker_latency_shows_in_the_broker_stage_only() {
    let c = cluster();
    let p = producer(&c, Duration::ZERO);
    p.produce(T, "k", "warm-up").unwrap();
    let broker = c.partition_leader(T, 0).unwrap();
    c.set_latency(broker, 20 * MS);
    wait_for("the warm-up timed", Duration::from_secs(5), || {
        p.metrics().stages.total.count == 1
    });
    let before = 1;
    for i in 0..20 {
        p.produce(T, "k", format!("{i}")).unwrap();
    }
    // Noted by the I/O thread just after it woke the caller.
    wait_for("every record timed", Duration::from_secs(5), || {
        p.metrics().stages.total.count == before + 20
    });
    let s = p.metrics().stages;
    println!("{}", s.line());
    consistent(&s);
    assert!(s.broker.p50 >= 20 * MS, "{s:?}");
    assert!(s.total.p50 >= 20 * MS, "{s:?}");
    for other in [&s.queued, &s.sending, &s.completing] {
        assert!(other.p50 < 5 * MS, "{}", s.line());
    }
    p.close(Duration::from_secs(5)).unwrap();
}

#[test]
fn linger_shows_in_the_queued_stage_and_a_slow_callback_in_completing() {
    let c = cluster();
    let p = producer(&c, 50 * MS);
    let done = Arc::new(AtomicUsize::new(0));
    for i in 0..10 {
        let d = done.clone();
        // Not waited for: the batch waits out the linger. The first callback is slow.
        p.send_with(
            kprod::ProducerRecord::new(T).value(format!("{i}")),
            move |r| {
                r.unwrap();
                if i == 0 {
                    std::thread::sleep(30 * MS);
                }
                d.fetch_add(1, Ordering::SeqCst);
            },
        )
        .unwrap();
    }
    wait_for("the callbacks", Duration::from_secs(10), || {
        done.load(Ordering::SeqCst) == 10 && p.metrics().stages.total.count > 0
    });
    let s = p.metrics().stages;
    println!("{}", s.line());
    consistent(&s);
    assert!(s.queued.p50 >= 50 * MS, "{}", s.line());
    assert!(s.completing.p50 >= 30 * MS, "{}", s.line());
    assert!(s.broker.p50 < 20 * MS, "{}", s.line());
    assert!(s.sending.p50 < 20 * MS, "{}", s.line());
    p.close(Duration::from_secs(5)).unwrap();
}

#[test]
fn sampling_off_times_nothing() {
    let c = cluster();
    let p = Producer::builder()
        .bootstrap_servers(&c.bootstrap_servers())
        .stage_sampling(0)
        .build()
        .unwrap();
    for _ in 0..5 {
        p.produce(T, "k", "v").unwrap();
    }
    assert_eq!(p.metrics().stages, StageLatency::default());
    p.close(Duration::from_secs(5)).unwrap();
}
