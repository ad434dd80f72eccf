//! A topic of many partitions costs memory in proportion to what it holds, not to
//! partitions × `queue_capacity`: the rings of a 2,000-partition topic stay within the topic's
//! ring budget (before, each partition allocated — and wrote — a 4,096-slot ring: 1.1 GB of
//! resident memory for this topic). Small rings still carry a hot partition's records in full.
//!
//! One test in this binary: it reads the whole process's resident memory.
#![cfg(all(feature = "mock", target_os = "linux"))]

use std::time::Duration;

use kprod::mock::MockCluster;
use kprod::{Producer, ProducerRecord};

/// VmRSS of this process, KiB.
fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

#[test]
fn a_topic_of_2000_partitions_does_not_allocate_2000_full_rings() {
    let cluster = MockCluster::builder().topic("wide", 2000).build().unwrap();
    let p = Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .acks(kprod::Acks::Leader)
        .build()
        .unwrap();
    assert_eq!(p.config().queue_capacity, 4096);
    let before = rss_kib();
    // The first record brings the topic's metadata, and with it every partition's ring.
    p.produce("wide", "k", "v").unwrap();
    let grew_mib = rss_kib().saturating_sub(before) / 1024;
    assert!(
        grew_mib < 256,
        "learning a topic of 2,000 partitions grew the process by {grew_mib} MiB"
    );

    // Keyed records across every partition, then 20,000 to one partition (its ring holds
    // 256 of them at a time): all acknowledged.
    for i in 0..20_000 {
        p.send("wide", format!("key-{i}"), "v").unwrap();
    }
    for _ in 0..20_000 {
        p.send_record(ProducerRecord::new("wide").partition(7).value("hot"))
            .unwrap();
    }
    p.flush(Duration::from_secs(60)).unwrap();
    assert_eq!(p.metrics().records_acked, 40_001);
    p.close(Duration::from_secs(10)).unwrap();
}
