//! Delivery guarantees under faults (issue #4). Each scenario sends 100,000 records with
//! idempotence on through kprod's mock cluster — with a fault proxy of ours in front of every
//! broker — injects one kind of fault while sending, then reads everything back with
//! librdkafka's consumer and checks (tests/support/scenario.rs): one completion per record;
//! each success in the log exactly once, where its completion said; nothing duplicated;
//! per-partition send order; each failure with its error.
//!
//! `FAULT_RECORDS=N` changes the record count (default 100,000).
#![cfg(feature = "mock")]

mod support;

use std::time::Duration;

use kprod::mock::MockCluster;
use kprod::protocol::{ApiKey, ErrorCode};
use kprod::{Producer, ProducerBuilder};
use support::fault_proxy::{Chaos, FaultProxy, ProxiedCluster};
use support::scenario::{send_all, verify, verify_with, Copies, Report, Sent};
use support::threads::threads_reach;

const TOPIC: &str = "faults";
const PARTITIONS: i32 = 6;

fn records() -> usize {
    std::env::var("FAULT_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

/// A mock cluster whose brokers are reached only through fault proxies.
struct Rig(ProxiedCluster);

impl std::ops::Deref for Rig {
    type Target = ProxiedCluster;
    fn deref(&self) -> &ProxiedCluster {
        &self.0
    }
}

impl Rig {
    fn new(brokers: usize) -> Rig {
        let cluster = MockCluster::builder()
            .brokers(brokers)
            .topic(TOPIC, PARTITIONS)
            .build()
            .unwrap();
        Rig(ProxiedCluster::new(cluster, 0x9E37_79B9))
    }

    /// The scenarios' producer, at the default delivery timeout (120 s); a scenario takes a
    /// few seconds. Scenarios about delivery timeouts set their own.
    fn producer(&self) -> ProducerBuilder {
        Producer::builder()
            .bootstrap_servers(&self.bootstrap())
            .linger(Duration::from_millis(5))
            .request_timeout(Duration::from_secs(5))
            .retry_backoff(Duration::from_millis(20))
            .retry_backoff_max(Duration::from_millis(200))
    }

    /// Faults off, then the promises checked against what librdkafka reads back.
    fn verify(&self, sent: &Sent) -> Report {
        self.verify_topic(sent, TOPIC)
    }

    fn verify_topic(&self, sent: &Sent, topic: &str) -> Report {
        self.heal();
        let report = verify(&sent.outcomes(), &self.bootstrap(), topic, PARTITIONS);
        eprintln!("{topic}: {report:?}");
        report
    }
}

/// How long a scenario's flush and close may take.
const FLUSH: Duration = Duration::from_secs(180);

#[test]
fn connections_cut_at_random_moments_in_both_directions() {
    let rig = Rig::new(3);
    for p in &rig.proxies {
        // Every connection dies after 4 KiB..64 KiB of requests or 1 KiB..8 KiB of
        // responses, whichever comes first: mid-request or mid-response (or mid-handshake).
        p.set_chaos(Some(Chaos {
            up: (4 << 10, 64 << 10),
            down: (1 << 10, 8 << 10),
        }));
    }
    // Small batches: many requests, so many cuts.
    let p = rig.producer().batch_size(16 << 10).build().unwrap();
    let sent = send_all(&p, TOPIC, records(), FLUSH, |_| {});
    let m = p.metrics();
    p.close(FLUSH).unwrap();
    let cuts: u64 = rig.proxies.iter().map(FaultProxy::cuts).sum();
    let r = rig.verify(&sent);
    eprintln!(
        "cuts {cuts}, retries {}, reconnects {}",
        m.retries, m.connects
    );
    assert!(cuts >= 10, "the proxies cut only {cuts} connections");
    assert_eq!(r.acked, r.sent, "every record delivered: {:?}", r.errors);
}

/// Mostly responses cut: the broker has written the batch and the producer retries it; with
/// idempotence the retry is recognised as a duplicate and the record is in the log once.
#[test]
fn lost_responses_do_not_duplicate() {
    let rig = Rig::new(3);
    for p in &rig.proxies {
        p.set_chaos(Some(Chaos {
            up: (64 << 10, 512 << 10),
            down: (300, 3 << 10),
        }));
    }
    let p = rig.producer().batch_size(16 << 10).build().unwrap();
    let sent = send_all(&p, TOPIC, records(), FLUSH, |_| {});
    let m = p.metrics();
    p.close(FLUSH).unwrap();
    let r = rig.verify(&sent);
    assert!(m.retries > 0, "no retries: the cuts did not land");
    assert_eq!(r.acked, r.sent, "every record delivered: {:?}", r.errors);
    assert_eq!(r.stored, r.sent, "nothing written twice");
}

#[test]
fn every_connection_reset_repeatedly() {
    let rig = Rig::new(3);
    let p = rig.producer().build().unwrap();
    let n = records();
    let sent = send_all(&p, TOPIC, n, FLUSH, |i| {
        if i > 0 && i % (n / 20).max(1) == 0 {
            for proxy in &rig.proxies {
                proxy.cut_all();
            }
        }
    });
    p.close(FLUSH).unwrap();
    let r = rig.verify(&sent);
    assert_eq!(r.acked, r.sent, "every record delivered: {:?}", r.errors);
}

#[test]
fn retriable_errors_for_several_attempts() {
    let rig = Rig::new(3);
    let p = rig.producer().build().unwrap();
    let n = records();
    let errors = [
        ErrorCode::NOT_LEADER_OR_FOLLOWER,
        ErrorCode::REQUEST_TIMED_OUT,
        ErrorCode::NETWORK_EXCEPTION,
        ErrorCode::NOT_ENOUGH_REPLICAS,
        ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        ErrorCode::COORDINATOR_LOAD_IN_PROGRESS,
    ];
    let sent = send_all(&p, TOPIC, n, FLUSH, |i| {
        let step = (n / 12).max(1);
        if i > 0 && i % step == 0 {
            let code = errors[(i / step) % errors.len()];
            rig.cluster.fail_requests(ApiKey::PRODUCE.0, &[code; 3]);
        }
    });
    let m = p.metrics();
    p.close(FLUSH).unwrap();
    let r = rig.verify(&sent);
    assert!(m.retries > 0, "no retries: the faults did not land");
    assert_eq!(r.acked, r.sent, "every record delivered: {:?}", r.errors);
}

#[test]
fn broker_down_and_back_up() {
    let rig = Rig::new(3);
    let p = rig.producer().build().unwrap();
    let n = records();
    let sent = send_all(&p, TOPIC, n, FLUSH, |i| {
        if i == n / 4 {
            rig.cluster.broker_down(2);
        }
        if i == n / 2 {
            rig.cluster.broker_up(2);
        }
    });
    p.close(FLUSH).unwrap();
    let r = rig.verify(&sent);
    assert_eq!(r.acked, r.sent, "every record delivered: {:?}", r.errors);
}

#[test]
fn partition_leaders_move() {
    let rig = Rig::new(3);
    // Two I/O threads whatever the machine: brokers 1 and 3 belong to one, broker 2 to the
    // other, so a move hands partitions between threads while their batches are in flight.
    let p = rig.producer().io_threads(2).build().unwrap();
    let n = records();
    let sent = send_all(&p, TOPIC, n, FLUSH, |i| {
        if i > 0 && i % (n / 5).max(1) == 0 {
            for part in 0..PARTITIONS {
                let now = rig.cluster.partition_leader(TOPIC, part).unwrap();
                rig.cluster.set_partition_leader(TOPIC, part, now % 3 + 1);
            }
        }
    });
    let m = p.metrics();
    p.close(FLUSH).unwrap();
    let r = rig.verify(&sent);
    // A move is noticed by a Metadata refresh or, from Produce v10 (KIP-951), by the leader
    // hint in the NOT_LEADER_OR_FOLLOWER answer itself, which needs no refresh.
    assert!(
        m.metadata_requests > 1 || m.leader_hints > 0,
        "leader moves went unnoticed: {m:?}"
    );
    assert_eq!(r.acked, r.sent, "every record delivered: {:?}", r.errors);
}

#[test]
fn no_leader_for_a_while() {
    let rig = Rig::new(3);
    let p = rig.producer().build().unwrap();
    let n = records();
    let sent = send_all(&p, TOPIC, n, FLUSH, |i| {
        if i == n / 4 {
            for part in 0..PARTITIONS / 2 {
                rig.cluster.set_partition_leaderless(TOPIC, part);
            }
        }
        if i == n / 2 {
            for part in 0..PARTITIONS / 2 {
                rig.cluster.set_partition_leader(TOPIC, part, 1);
            }
        }
    });
    p.close(FLUSH).unwrap();
    let r = rig.verify(&sent);
    assert_eq!(r.acked, r.sent, "every record delivered: {:?}", r.errors);
}

/// A broker that accepts connections and reads requests but never answers: every record sent
/// to it ends with a delivery timeout; records for the other brokers are unaffected.
#[test]
fn broker_that_never_answers_ends_in_delivery_timeouts() {
    let rig = Rig::new(3);
    rig.proxies[0].set_blackhole(true); // broker 1
    let p = rig
        .producer()
        .request_timeout(Duration::from_millis(500))
        .delivery_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let n = records();
    let sent = send_all(&p, TOPIC, n, FLUSH, |_| {});
    p.close(FLUSH).unwrap();
    let led_by_1: Vec<i32> = (0..PARTITIONS)
        .filter(|&part| rig.cluster.partition_leader(TOPIC, part) == Some(1))
        .collect();
    let outcomes = sent.outcomes();
    for (i, o) in outcomes.iter().enumerate() {
        let part = kprod::partitioner::murmur2_partition(
            format!("k{}", i % 97).as_bytes(),
            PARTITIONS as u32,
        ) as i32;
        match o.as_ref().unwrap() {
            Ok(_) => assert!(
                !led_by_1.contains(&part),
                "record {i} acked by a silent broker"
            ),
            Err(kprod::Error::Timeout { deadline, .. }) => {
                assert_eq!(*deadline, kprod::Deadline::Delivery);
                assert!(
                    led_by_1.contains(&part),
                    "record {i} for a healthy broker timed out"
                );
            }
            Err(e) => panic!("record {i}: {e}"),
        }
    }
    let r = rig.verify(&sent);
    assert!(r.failed > 0 && r.acked > 0, "{r:?}");
}

/// A non-retriable error fails only the records of the request it answers; the partitions'
/// later batches are renumbered past the gap and delivered. MESSAGE_TOO_LARGE fails nothing:
/// its batches are split and sent again.
#[test]
fn non_retriable_errors_fail_only_the_affected_records() {
    let rig = Rig::new(3);
    // Small batches, so that a request holds few records: at most one 4 KiB batch per
    // partition, each record at least 16 bytes.
    let p = rig.producer().batch_size(4 << 10).build().unwrap();
    let per_request = PARTITIONS as usize * (4 << 10) / 16;
    let n = records();
    let sent = send_all(&p, TOPIC, n, FLUSH, |i| {
        if i == n / 3 {
            rig.cluster
                .fail_requests(ApiKey::PRODUCE.0, &[ErrorCode::INVALID_RECORD]);
        }
        if i == n / 2 {
            rig.cluster
                .fail_requests(ApiKey::PRODUCE.0, &[ErrorCode::MESSAGE_TOO_LARGE]);
        }
        if i == 2 * n / 3 {
            rig.cluster
                .fail_requests(ApiKey::PRODUCE.0, &[ErrorCode::TOPIC_AUTHORIZATION_FAILED]);
        }
    });
    let m = p.metrics();
    p.close(FLUSH).unwrap();
    let r = rig.verify(&sent);
    assert!(r.failed > 0, "the errors did not land");
    assert_eq!(
        r.errors.keys().collect::<std::collections::BTreeSet<_>>(),
        ["Kafka INVALID_RECORD", "Kafka TOPIC_AUTHORIZATION_FAILED"]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .iter()
            .collect(),
        "only the injected errors"
    );
    assert!(
        r.failed <= 2 * per_request,
        "{} failed: more than two requests can hold ({per_request} each)",
        r.failed
    );
    assert_eq!(r.failed_but_stored, 0, "a refused record is not in the log");
    assert!(m.sequence_rewinds > 0, "{m:?}");
    assert!(m.batches_split > 0, "{m:?}");
}

/// The broker loses track of the producer (UNKNOWN_PRODUCER_ID) or of a partition's
/// sequence (OUT_OF_ORDER_SEQUENCE_NUMBER with nothing before it to explain it): the producer
/// bumps its epoch and resends from sequence 0; nothing is lost, duplicated or reordered.
#[test]
fn broker_losing_producer_state_is_recovered_by_epoch_bump() {
    let rig = Rig::new(3);
    let p = rig.producer().build().unwrap();
    let n = records();
    let sent = send_all(&p, TOPIC, n, FLUSH, |i| {
        if i == n / 3 {
            rig.cluster
                .fail_requests(ApiKey::PRODUCE.0, &[ErrorCode::UNKNOWN_PRODUCER_ID]);
        }
        if i == 2 * n / 3 {
            rig.cluster.fail_requests(
                ApiKey::PRODUCE.0,
                &[ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER],
            );
        }
    });
    let m = p.metrics();
    p.close(FLUSH).unwrap();
    let r = rig.verify(&sent);
    assert!(m.epoch_bumps >= 1, "{m:?}");
    assert_eq!(r.acked, r.sent, "every record delivered: {:?}", r.errors);
}

/// A broker stops answering long enough for batches to reach their delivery timeout — those
/// in flight the broker may or may not have written — then answers again. The epoch is bumped
/// (or, if no timed-out batch had left, the sequences rewound) and the partitions go on;
/// nothing is duplicated or reordered.
#[test]
fn delivery_timeouts_then_recovery_by_epoch_bump() {
    let rig = Rig::new(3);
    let p = rig
        .producer()
        .request_timeout(Duration::from_millis(500))
        .delivery_timeout(Duration::from_millis(1500))
        .build()
        .unwrap();
    let n = records();
    let sent = send_all(&p, TOPIC, n, FLUSH, |i| {
        if i == n / 4 {
            rig.cluster.stall(1, true);
        }
        if i == n / 2 {
            // Until the first records have failed by their delivery timeout.
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while p.metrics().records_failed == 0 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no timeout while stalled"
                );
                std::thread::yield_now();
            }
            rig.cluster.stall(1, false);
        }
    });
    let m = p.metrics();
    p.close(FLUSH).unwrap();
    let r = rig.verify(&sent);
    assert!(r.failed > 0);
    assert_eq!(
        r.errors.keys().collect::<Vec<_>>(),
        ["Timeout Delivery"],
        "only delivery timeouts"
    );
    // Batches the broker may have had force an epoch bump; batches that never left only a
    // rewind. Which ones time out depends on timing; at least one of the two happened.
    assert!(m.epoch_bumps + m.sequence_rewinds > 0, "{m:?}");
    // Records after the recovery are delivered.
    let outcomes = sent.outcomes();
    assert!(
        outcomes[n - n / 8..]
            .iter()
            .all(|o| matches!(o, Some(Ok(_)))),
        "records sent after the broker came back are delivered"
    );
}

/// Without idempotence: at least once. With one request in flight per connection, a retry
/// after a cut connection may write a batch again, but the first copies keep send order.
#[test]
fn at_least_once_without_idempotence_keeps_order_with_one_in_flight() {
    let rig = Rig::new(3);
    for p in &rig.proxies {
        // Mostly cut responses: the broker has the batch, the producer does not know.
        p.set_chaos(Some(Chaos {
            up: (64 << 10, 512 << 10),
            down: (300, 3 << 10),
        }));
    }
    let p = rig
        .producer()
        .idempotence(false)
        .max_in_flight(1)
        .batch_size(16 << 10)
        .build()
        .unwrap();
    let sent = send_all(&p, TOPIC, records(), FLUSH, |_| {});
    let m = p.metrics();
    p.close(FLUSH).unwrap();
    for proxy in &rig.proxies {
        proxy.set_chaos(None);
    }
    let cuts: u64 = rig.proxies.iter().map(FaultProxy::cuts).sum();
    eprintln!("cuts {cuts}, retries {}", m.retries);
    assert!(m.retries > 0, "no retries: the cuts did not land");
    let r = verify_with(
        &sent.outcomes(),
        &rig.bootstrap(),
        TOPIC,
        PARTITIONS,
        Copies::Repeats,
    );
    eprintln!("{r:?}");
    assert_eq!(r.acked, r.sent, "every record delivered: {:?}", r.errors);
}

/// A slow broker: 200 ms round trips (the proxies add 100 ms each way) with a 1 MiB buffer,
/// so senders keep waiting for room; everything arrives, once, in order. (Peak memory under
/// the same fault is measured in tests/memory_bound.rs.)
#[test]
fn slow_broker_fills_the_buffer() {
    let rig = Rig::new(3);
    for p in &rig.proxies {
        p.set_delay(Duration::from_millis(100));
    }
    let p = rig.producer().buffer_memory(1 << 20).build().unwrap();
    let sent = send_all(&p, TOPIC, records(), FLUSH, |_| {});
    p.close(FLUSH).unwrap();
    let r = rig.verify(&sent);
    assert_eq!(r.acked, r.sent, "every record delivered: {:?}", r.errors);
}

/// Bootstrap unreachable: every record fails with a clear error within its timeouts, and
/// close is bounded.
#[test]
fn bootstrap_unreachable_fails_every_record_clearly() {
    // Port 1: nothing listens there and no ephemeral port is ever it (a port bound and
    // dropped could be handed to another test's broker, which this producer would then
    // write into).
    let addr = "127.0.0.1:1".to_string();
    let p = Producer::builder()
        .bootstrap_servers(&addr)
        .metadata_timeout(Duration::from_secs(2))
        .delivery_timeout(Duration::from_secs(3))
        .request_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let n = records();
    let sent = send_all(&p, TOPIC, n, FLUSH, |_| {});
    let t = std::time::Instant::now();
    p.close(Duration::from_secs(5)).unwrap();
    assert!(t.elapsed() < Duration::from_secs(5));
    for (i, o) in sent.outcomes().iter().enumerate() {
        match o.as_ref().unwrap() {
            Err(kprod::Error::Timeout { deadline, .. }) => {
                assert_eq!(*deadline, kprod::Deadline::Metadata, "record {i}")
            }
            other => panic!("record {i}: {other:?}"),
        }
    }
}

/// The soak: about two minutes (`KPROD_SOAK_SECS`) of continuous random faults — cuts,
/// errors, leader moves, brokers down, stalls — over rounds of 50,000 records, each round
/// checked like every scenario. Run with
/// `cargo test --release --features mock --test faults -- --ignored soak`.
#[test]
#[ignore = "about two minutes; run on purpose (see the doc comment)"]
fn soak_random_faults() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::sync::Mutex;
    let secs: u64 = std::env::var("KPROD_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(120);
    let rig = Rig::new(3);
    let p = rig
        .producer()
        .request_timeout(Duration::from_millis(800))
        .delivery_timeout(Duration::from_secs(5))
        .batch_size(64 << 10)
        .build()
        .unwrap();
    let stop = AtomicBool::new(false);
    let current = Mutex::new(String::new());
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    let mut rounds: Vec<(String, Sent)> = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut rng = 0x853c_49e6_748f_ea9b_u64;
            let mut next = || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng
            };
            while !stop.load(SeqCst) {
                let broker = (next() % 3) as i32 + 1;
                let proxy = &rig.proxies[(broker - 1) as usize];
                match next() % 8 {
                    0 => proxy.cut_all(),
                    1 => rig
                        .cluster
                        .fail_requests(ApiKey::PRODUCE.0, &[ErrorCode::NOT_LEADER_OR_FOLLOWER; 2]),
                    2 => rig
                        .cluster
                        .fail_requests(ApiKey::PRODUCE.0, &[ErrorCode::MESSAGE_TOO_LARGE]),
                    3 => {
                        let topic = current.lock().unwrap().clone();
                        let part = (next() % PARTITIONS as u64) as i32;
                        if rig.cluster.partition_count(&topic).is_some() {
                            rig.cluster.set_partition_leader(&topic, part, broker);
                        }
                    }
                    4 => rig.cluster.broker_down(broker),
                    5 => rig.cluster.stall(broker, true),
                    6 => proxy.set_chaos(Some(Chaos {
                        up: (4 << 10, 64 << 10),
                        down: (300, 4 << 10),
                    })),
                    _ => rig.heal(),
                }
                // How long the fault lasts: the fault itself, not a wait for an outcome.
                std::thread::sleep(Duration::from_millis(50 + next() % 400));
            }
        });
        let mut round = 0;
        while std::time::Instant::now() < deadline {
            let topic = format!("soak-{round}");
            rig.cluster.create_topic(&topic, PARTITIONS);
            *current.lock().unwrap() = topic.clone();
            let sent = send_all(&p, &topic, 50_000, FLUSH, |_| {});
            rounds.push((topic, sent));
            round += 1;
        }
        stop.store(true, SeqCst);
    });
    p.close(FLUSH).unwrap();
    let m = p.metrics();
    assert_eq!(m.records_acked + m.records_failed, m.records_sent);
    assert_eq!(threads_reach(0), 0, "threads left after close");
    let mut totals = Report::default();
    for (topic, sent) in &rounds {
        let r = rig.verify_topic(sent, topic);
        totals.sent += r.sent;
        totals.acked += r.acked;
        totals.failed += r.failed;
        totals.failed_but_stored += r.failed_but_stored;
        for (k, v) in r.errors {
            *totals.errors.entry(k).or_default() += v;
        }
    }
    eprintln!(
        "soak: {} rounds, {totals:?}; epoch bumps {}, rewinds {}, retries {}, reconnects {}",
        rounds.len(),
        m.epoch_bumps,
        m.sequence_rewinds,
        m.retries,
        m.connects
    );
    assert!(totals.acked > 0);
}
