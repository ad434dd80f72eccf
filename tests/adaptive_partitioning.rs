//! Adaptive partitioning (KIP-794's adaptive mode, `partitioner.adaptive.partitioning.enable`)
//! and the availability timeout: with one of three brokers 20 ms slower, keyless records go
//! less to its partitions and the same records are delivered sooner than in turns; a
//! partition whose leader takes nothing gets no keyless record once the timeout passes.
//! Counted by the mock broker.
#![cfg(feature = "mock")]

use std::time::{Duration, Instant};

use kprod::mock::MockCluster;
use kprod::Producer;

const TOPIC: &str = "uneven";
const PARTITIONS: i32 = 12;
const RECORDS: u64 = 120_000;

/// Three brokers, one of them answering 20 ms late.
fn cluster() -> (MockCluster, i32) {
    let c = MockCluster::builder()
        .brokers(3)
        .topic(TOPIC, PARTITIONS)
        .build()
        .unwrap();
    let slow = c.partition_leader(TOPIC, 0).unwrap();
    c.set_latency(slow, Duration::from_millis(20));
    (c, slow)
}

/// Sends `RECORDS` keyless records as fast as it can and flushes: the time it took, and the
/// share of records the slow broker's partitions got.
fn run(adaptive: bool) -> (Duration, f64) {
    let (c, slow) = cluster();
    let p = Producer::builder()
        .bootstrap_servers(&c.bootstrap_servers())
        .acks(kprod::Acks::Leader)
        // One request at a time per broker, of small batches: 20 ms each makes the slow
        // broker take ~25,000 records/s, far below what the sender offers.
        .max_in_flight(1)
        .batch_size(4 * 1024)
        .partitioner_adaptive(adaptive)
        .build()
        .unwrap();
    p.produce(TOPIC, (), "warm-up").unwrap();
    let started = Instant::now();
    for i in 0..RECORDS {
        p.send(TOPIC, (), format!("{i}-keyless-record-payload"))
            .unwrap();
    }
    p.flush(Duration::from_secs(60)).unwrap();
    let took = started.elapsed();
    let (mut on_slow, mut all) = (0, 0);
    for part in 0..PARTITIONS {
        let n = c.end_offset(TOPIC, part);
        all += n;
        if c.partition_leader(TOPIC, part) == Some(slow) {
            on_slow += n;
        }
    }
    assert_eq!(all as u64, RECORDS + 1);
    (took, on_slow as f64 / all as f64)
}

#[test]
fn a_slow_broker_gets_fewer_keyless_records_and_the_whole_is_delivered_sooner() {
    let (turns_took, turns_share) = run(false);
    let (adaptive_took, adaptive_share) = run(true);
    eprintln!(
        "slow broker's share: in turn {:.1}% in {turns_took:?}; adaptive {:.1}% in \
         {adaptive_took:?}",
        turns_share * 100.0,
        adaptive_share * 100.0
    );
    // In turn, the slow broker leads 4 of 12 partitions and gets its third.
    assert!((0.30..0.37).contains(&turns_share), "{turns_share}");
    assert!(
        adaptive_share < turns_share * 0.8,
        "adaptive {adaptive_share} vs in turn {turns_share}"
    );
    assert!(
        adaptive_took < turns_took,
        "adaptive {adaptive_took:?} vs in turn {turns_took:?}"
    );
}

#[test]
fn a_partition_whose_leader_takes_nothing_gets_no_keyless_record_after_the_timeout() {
    let c = MockCluster::builder()
        .brokers(3)
        .topic(TOPIC, PARTITIONS)
        .build()
        .unwrap();
    let stuck = c.partition_leader(TOPIC, 0).unwrap();
    let p = Producer::builder()
        .bootstrap_servers(&c.bootstrap_servers())
        .acks(kprod::Acks::Leader)
        .batch_size(4 * 1024)
        .linger(Duration::from_millis(1))
        .partitioner_availability_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    p.produce(TOPIC, (), "warm-up").unwrap();
    c.stall(stuck, true);
    // Paced, so that the stalled broker's partitions hold batches for longer than the
    // timeout while the others keep taking theirs.
    let phase = |from: u64, to: u64| {
        for i in from..to {
            p.send(TOPIC, (), format!("{i}-keyless-record-payload"))
                .unwrap();
            if i % 500 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    };
    phase(0, 20_000);
    let before: Vec<i64> = (0..PARTITIONS).map(|q| c.end_offset(TOPIC, q)).collect();
    let stuck_parts: Vec<i32> = (0..PARTITIONS)
        .filter(|&q| c.partition_leader(TOPIC, q) == Some(stuck))
        .collect();
    // Held now: whatever the stuck broker's partitions get from here on was placed after
    // the timeout had passed for them.
    let held = p.in_flight();
    phase(20_000, 60_000);
    c.stall(stuck, false);
    p.flush(Duration::from_secs(60)).unwrap();
    let after: Vec<i64> = (0..PARTITIONS).map(|q| c.end_offset(TOPIC, q)).collect();
    let total: i64 = after.iter().sum();
    assert_eq!(
        total, 60_001,
        "everything delivered once the broker is back"
    );
    let late: i64 = stuck_parts
        .iter()
        .map(|&q| after[q as usize] - before[q as usize])
        .sum();
    assert!(
        late as usize <= held + 4 * 1024,
        "{late} records reached the stuck broker's partitions, {held} were held before the \
         second phase: {before:?} → {after:?}"
    );
}
