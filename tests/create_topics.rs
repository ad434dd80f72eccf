//! `Producer::create_topics` against kprod's mock (tests/tansu.rs runs it against tansu):
//! topics made with their partition count and configs, the broker's per-topic errors in
//! place, invalid names refused at the call, and the deadline kept when no broker answers.
#![cfg(feature = "mock")]

use std::time::{Duration, Instant};

use kprod::admin::NewTopic;
use kprod::mock::MockCluster;
use kprod::protocol::ErrorCode;
use kprod::{Error, Producer};

fn producer(bootstrap: &str) -> Producer {
    Producer::builder()
        .bootstrap_servers(bootstrap)
        .build()
        .unwrap()
}

#[test]
fn topics_are_created_with_partitions_and_configs_and_errors_come_per_topic() {
    let cluster = MockCluster::builder().brokers(3).build().unwrap();
    let p = producer(&cluster.bootstrap_servers());
    let results = p
        .create_topics(
            &[
                NewTopic::new("events", 12).replication(3),
                NewTopic::new("limited", 2).config("max.message.bytes", "50000"),
                NewTopic::new("too-many-replicas", 1).replication(4),
                NewTopic::new("no-partitions", 0),
                NewTopic::new("", 1),
            ],
            Duration::from_secs(10),
        )
        .unwrap();
    assert!(results[0].is_ok() && results[1].is_ok(), "{results:?}");
    let code = |i: usize| results[i].as_ref().unwrap_err().kafka_code();
    assert_eq!(code(2), Some(ErrorCode::INVALID_REPLICATION_FACTOR));
    assert_eq!(code(3), Some(ErrorCode::INVALID_PARTITIONS));
    assert!(
        matches!(results[4], Err(Error::InvalidTopic { .. })),
        "{results:?}"
    );
    assert_eq!(cluster.partition_count("events"), Some(12));
    assert_eq!(cluster.max_message_bytes("limited"), Some(50_000));
    assert_eq!(cluster.partition_count("too-many-replicas"), None);
    // The producer sends to what it made.
    let m = p.produce("events", "k", "v").unwrap();
    assert!((0..12).contains(&m.partition));
    let again = p
        .create_topics(&[NewTopic::new("events", 12)], Duration::from_secs(10))
        .unwrap();
    let e = again[0].as_ref().unwrap_err();
    assert_eq!(e.kafka_code(), Some(ErrorCode::TOPIC_ALREADY_EXISTS));
    assert!(e.to_string().contains("already exists"), "{e}");
    assert!(!e.is_retriable());
}

#[test]
fn no_answer_is_a_timeout_at_the_deadline() {
    let cluster = MockCluster::builder().build().unwrap();
    cluster.stall(1, true);
    let p = producer(&cluster.bootstrap_servers());
    let t = Instant::now();
    let r = p.create_topics(&[NewTopic::new("later", 1)], Duration::from_millis(500));
    let took = t.elapsed();
    assert!(matches!(r, Err(Error::Timeout { .. })), "{r:?}");
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(3),
        "{took:?}"
    );
    p.close(Duration::ZERO).ok();
    assert!(matches!(
        p.create_topics(&[NewTopic::new("x", 1)], Duration::from_secs(1)),
        Err(Error::Closed { .. })
    ));
}
