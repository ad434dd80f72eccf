//! A topic's `max.message.bytes` below the producer's batch size (common on real clusters): a
//! batch refused with MESSAGE_TOO_LARGE is split in two and each half sent again, down to one
//! record, which then fails with the broker's error. With idempotence the halves keep the
//! batch's sequences, so nothing is doubled or reordered; librdkafka's consumer reads every
//! record back once, in order. (tests/mock_cluster.rs shows librdkafka meeting the mock's
//! limit.)
#![cfg(feature = "mock")]

mod support;

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kprod::mock::MockCluster;
use kprod::protocol::compression::Compression;
use kprod::protocol::ErrorCode;
use kprod::{Error, Producer, ProducerRecord};
use support::readback::read_all;

const LIMIT: usize = 50_000;
const PARTITIONS: i32 = 3;

/// Record `i`'s value: its number, padded with letters no codec squeezes much; every 9,973rd
/// is larger than the limit by itself, compressed or not.
fn value(i: usize) -> String {
    let pad = if too_big(i) { 60_000 } else { 150 + i % 97 };
    let mut x = i as u64 | 1;
    let letters: String = (0..pad)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (b'a' + (x % 26) as u8) as char
        })
        .collect();
    format!("{i:08}:{letters}")
}

fn too_big(i: usize) -> bool {
    i % 9_973 == 5
}

type Outcomes = Arc<Mutex<Vec<Option<Result<(i32, i64), Error>>>>>;

/// Sends `n` records (keys over every partition) and returns each one's outcome, checking
/// each had exactly one completion.
fn send(p: &Producer, topic: &str, n: usize) -> Vec<Option<Result<(i32, i64), Error>>> {
    let fired: Arc<Vec<AtomicU32>> = Arc::new((0..n).map(|_| AtomicU32::new(0)).collect());
    let out: Outcomes = Arc::new(Mutex::new(vec![None; n]));
    for i in 0..n {
        let (f, o) = (fired.clone(), out.clone());
        let r = ProducerRecord::new(topic.to_string())
            .key(format!("k{}", i % 31))
            .value(value(i));
        p.send_with(r, move |r| {
            f[i].fetch_add(1, SeqCst);
            o.lock().unwrap()[i] = Some(r.map(|m| (m.partition, m.offset)));
        })
        .unwrap();
    }
    p.flush(Duration::from_secs(60)).expect("flush");
    for (i, f) in fired.iter().enumerate() {
        assert_eq!(f.load(SeqCst), 1, "record {i}: completions");
    }
    let out = out.lock().unwrap().clone();
    out
}

fn run(n: usize, codec: Compression, idempotence: bool) {
    let topic = "limited";
    let cluster = MockCluster::builder()
        .topic(topic, PARTITIONS)
        .build()
        .unwrap();
    cluster.set_max_message_bytes(topic, Some(LIMIT));
    let p = Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .batch_size(1 << 20)
        .linger(Duration::from_millis(20))
        .compression(codec)
        .idempotence(idempotence)
        // Without idempotence, order across a retry is kept only with one request in flight
        // (as in the Java client); with it, sequences keep order at five.
        .max_in_flight(if idempotence { 5 } else { 1 })
        .build()
        .unwrap();
    let outcomes = send(&p, topic, n);
    let m = p.metrics();
    p.close(Duration::from_secs(10)).unwrap();
    let mut at_least = vec![0i64; PARTITIONS as usize];
    let mut delivered = 0;
    for (i, o) in outcomes.iter().enumerate() {
        match o.as_ref().expect("completed") {
            Ok((part, off)) => {
                assert!(
                    !too_big(i),
                    "record {i} is larger than the limit, yet delivered"
                );
                at_least[*part as usize] = at_least[*part as usize].max(off + 1);
                delivered += 1;
            }
            Err(Error::Kafka { code, .. }) if *code == ErrorCode::MESSAGE_TOO_LARGE => {
                assert!(too_big(i), "record {i} fits alone, yet failed as too large");
            }
            Err(e) => panic!("record {i}: {e}"),
        }
    }
    assert!(m.batches_split > 0, "nothing was split: {m:?}");
    let log = read_all(
        &cluster.bootstrap_servers(),
        topic,
        PARTITIONS,
        &at_least,
        delivered,
        Duration::from_secs(120),
    );
    assert_eq!(log.len(), delivered, "records in the log");
    let mut seen = vec![false; n];
    let mut last = vec![None::<usize>; PARTITIONS as usize];
    for g in &log {
        let v = std::str::from_utf8(g.value.as_deref().unwrap()).unwrap();
        let i: usize = v[..8].parse().unwrap();
        assert_eq!(v, value(i), "record {i}'s value");
        assert!(!seen[i], "record {i} is in the log twice");
        seen[i] = true;
        let l = &mut last[g.partition as usize];
        assert!(
            l.is_none_or(|l| i > l),
            "partition {}: {i} after {l:?}",
            g.partition
        );
        *l = Some(i);
        assert_eq!(
            outcomes[i].as_ref().unwrap().as_ref().unwrap(),
            &(g.partition, g.offset),
            "record {i}: where its completion said"
        );
    }
    eprintln!(
        "{n} records, {codec:?}, idempotence {idempotence}: {delivered} delivered, {} split \
         batches",
        m.batches_split
    );
}

#[test]
fn batches_too_large_for_the_topic_are_split_and_every_record_read_back_once_in_order() {
    run(100_000, Compression::None, true);
}

#[test]
fn split_batches_are_compressed_again_and_work_without_idempotence() {
    run(30_000, Compression::Lz4, false);
}
