//! Where records land: keyless records from one fast caller spread over every partition
//! (sticky partitioning rotates when a batch closes), read back by librdkafka's consumer from
//! librdkafka's own mock cluster.

mod support;

use std::time::Duration;

use kprod::Producer;
use rdkafka::mocking::MockCluster;
use support::readback::read_back;

/// `seq 1 240000 | sed 's/$/-keyless-record-payload/' | kprod produce -t even` into 12
/// partitions put every record into one partition (the rotation compared the topic's random
/// seed with a partition index and never moved). Now every partition gets records, and none
/// more than 3× the mean.
#[test]
fn keyless_records_from_one_fast_caller_reach_every_partition() {
    let c: MockCluster<'static, rdkafka::producer::DefaultProducerContext> =
        MockCluster::new(3).expect("librdkafka mock cluster");
    c.create_topic("even", 12, 1).unwrap();
    let bootstrap = c.bootstrap_servers();
    let p = Producer::builder()
        .bootstrap_servers(&bootstrap)
        .build()
        .unwrap();
    let n = 240_000;
    for i in 1..=n {
        p.send("even", (), format!("{i}-keyless-record-payload"))
            .unwrap();
    }
    p.flush(Duration::from_secs(60)).unwrap();
    let m = p.metrics();
    assert_eq!(m.records_acked, n as u64, "{m:?}");
    p.close(Duration::from_secs(10)).unwrap();

    let got = read_back(&bootstrap, "even", 12, n, Duration::from_secs(60));
    assert_eq!(got.len(), n, "every record read back");
    let mut per = [0usize; 12];
    for g in &got {
        per[g.partition as usize] += 1;
    }
    let mean = n / 12;
    assert!(
        per.iter().all(|&k| k > 0),
        "a partition got nothing: {per:?}"
    );
    assert!(
        per.iter().all(|&k| k <= 3 * mean),
        "a partition got more than 3x the mean {mean}: {per:?} ({} batches)",
        m.batches_sent
    );
}
