//! Keyless records spread evenly (KIP-794's uniform sticky partitioner): each partition gets
//! `batch_size` bytes of them in turn, from one calling thread or several, sent as fast as
//! possible or paced; a partition without a leader gets none. Counted by the mock broker.
#![cfg(feature = "mock")]

use std::time::Duration;

use kprod::mock::MockCluster;
use kprod::Producer;

const PARTITIONS: i32 = 12;

fn cluster() -> MockCluster {
    MockCluster::builder()
        .brokers(3)
        .topic("even", PARTITIONS)
        .build()
        .unwrap()
}

fn producer(cluster: &MockCluster, batch_size: usize) -> Producer {
    Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .acks(kprod::Acks::Leader)
        .batch_size(batch_size)
        .build()
        .unwrap()
}

/// Records per partition, as the broker stored them.
fn counts(cluster: &MockCluster) -> Vec<i64> {
    (0..PARTITIONS)
        .map(|p| cluster.end_offset("even", p))
        .collect()
}

/// (max - min) / mean over the partitions that have a leader.
fn spread(counts: &[i64]) -> f64 {
    let v: Vec<i64> = counts.iter().copied().filter(|&c| c > 0).collect();
    let (min, max) = (*v.iter().min().unwrap(), *v.iter().max().unwrap());
    let mean = v.iter().sum::<i64>() as f64 / v.len() as f64;
    (max - min) as f64 / mean
}

fn send_keyless(p: &Producer, from: u64, to: u64) {
    for i in from..to {
        p.send("even", (), format!("{i}-keyless-record-payload"))
            .unwrap();
    }
}

#[test]
fn keyless_records_spread_within_5_percent_from_one_thread_and_from_four() {
    // 16 KiB (the Java client's default batch size): ~9 MB of records is ~50 turns each.
    let c = cluster();
    let p = producer(&c, 16 * 1024);
    send_keyless(&p, 0, 240_000);
    p.flush(Duration::from_secs(60)).unwrap();
    let one = counts(&c);
    assert_eq!(one.iter().sum::<i64>(), 240_000);
    assert!(spread(&one) < 0.05, "one thread: {one:?}");

    let c = cluster();
    let p = producer(&c, 16 * 1024);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let p = &p;
            s.spawn(move || send_keyless(p, t * 60_000, (t + 1) * 60_000));
        }
    });
    p.flush(Duration::from_secs(60)).unwrap();
    let four = counts(&c);
    assert_eq!(four.iter().sum::<i64>(), 240_000);
    assert!(spread(&four) < 0.05, "four threads: {four:?}");
}

#[test]
fn paced_keyless_records_spread_too_and_the_default_batch_size_spreads_by_megabyte() {
    let c = cluster();
    // 16 KiB turns of ~4.5 MB: ~23 turns each, so one turn more or less is within 5%.
    let p = producer(&c, 16 * 1024);
    for step in 0..600u64 {
        send_keyless(&p, step * 200, (step + 1) * 200);
        std::thread::sleep(Duration::from_millis(1)); // a paced sender: batches close small
    }
    p.flush(Duration::from_secs(60)).unwrap();
    let paced = counts(&c);
    assert_eq!(paced.iter().sum::<i64>(), 120_000);
    assert!(spread(&paced) < 0.05, "paced: {paced:?}");

    // With the default 1 MB batch size, ~7 MB of records go 1 MB to each partition in turn.
    let c = cluster();
    let p = producer(&c, 1_000_000);
    send_keyless(&p, 0, 240_000);
    p.flush(Duration::from_secs(60)).unwrap();
    let default = counts(&c);
    let used = default.iter().filter(|&&n| n > 0).count();
    assert!(used >= 6, "default batch size: {default:?}");
}

#[test]
fn a_partition_without_a_leader_gets_no_keyless_record() {
    let c = cluster();
    c.set_partition_leaderless("even", 3);
    let p = producer(&c, 16 * 1024);
    send_keyless(&p, 0, 50_000);
    // The records for the leaderless partition would wait: none were sent there, so the
    // flush returns once the others are acknowledged.
    p.flush(Duration::from_secs(60)).unwrap();
    let n = counts(&c);
    assert_eq!(n[3], 0, "{n:?}");
    assert_eq!(n.iter().sum::<i64>(), 50_000);
    assert!(spread(&n) < 0.10, "{n:?}");
}
