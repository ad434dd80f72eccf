//! `Producer::purge`: records purged complete once with `Error::Purged`, the producer goes on
//! delivering later records, and nothing is doubled or reordered — read back by librdkafka's
//! consumer. Idempotence is on (the default): a batch purged in flight is settled by its
//! answer, and a failed answer is handled as a given-up batch (here: an epoch bump).
#![cfg(feature = "mock")]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kprod::mock::MockCluster;
use kprod::protocol::{ApiKey, ErrorCode};
use kprod::{Error, Producer, ProducerRecord, PurgeScope};
use support::readback::read_all;

const TOPIC: &str = "purged";
const PARTITIONS: i32 = 3;

type Book = Arc<Mutex<HashMap<usize, Vec<Result<(i32, i64), Error>>>>>;

fn send(p: &Producer, book: &Book, ids: std::ops::Range<usize>) {
    for i in ids {
        let b = book.clone();
        let r = ProducerRecord::new(TOPIC)
            .key(format!("k{}", i % 17))
            .value(format!("{i:08}"));
        p.send_with(r, move |r| {
            b.lock()
                .unwrap()
                .entry(i)
                .or_default()
                .push(r.map(|m| (m.partition, m.offset)));
        })
        .unwrap();
    }
}

fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Checks one completion per record; returns how many of `purged` were purged in flight.
fn check_outcomes(
    book: &Book,
    purged: std::ops::Range<usize>,
    later: std::ops::Range<usize>,
) -> usize {
    let book = book.lock().unwrap();
    let mut in_flight = 0;
    for i in purged.start..later.end {
        let got = book
            .get(&i)
            .unwrap_or_else(|| panic!("record {i}: no completion"));
        assert_eq!(got.len(), 1, "record {i}: completions {got:?}");
        match (&got[0], purged.contains(&i)) {
            (Err(Error::Purged { in_flight: f, at }), true) => {
                assert_eq!(at.topic.as_deref(), Some(TOPIC));
                in_flight += usize::from(*f);
            }
            (Ok(_), false) => {}
            (other, p) => panic!("record {i} (purged: {p}): {other:?}"),
        }
    }
    in_flight
}

/// Reads the topic back: purged records appear only if purged in flight (at most once), the
/// later ones exactly once where their completions said; every partition in send order.
fn check_log(
    cluster: &MockCluster,
    book: &Book,
    purged: std::ops::Range<usize>,
    later: std::ops::Range<usize>,
) {
    let book = book.lock().unwrap();
    let mut at_least = vec![0i64; PARTITIONS as usize];
    for i in later.clone() {
        let (p, o) = book[&i][0].as_ref().unwrap();
        at_least[*p as usize] = at_least[*p as usize].max(o + 1);
    }
    let log = read_all(
        &cluster.bootstrap_servers(),
        TOPIC,
        PARTITIONS,
        &at_least,
        later.len(),
        Duration::from_secs(60),
    );
    let mut seen = HashMap::new();
    let mut last = vec![None::<usize>; PARTITIONS as usize];
    for g in &log {
        let v = std::str::from_utf8(g.value.as_deref().unwrap()).unwrap();
        if v == "warm" {
            continue;
        }
        let i: usize = v.parse().unwrap();
        assert!(
            seen.insert(i, (g.partition, g.offset)).is_none(),
            "record {i} twice"
        );
        let l = &mut last[g.partition as usize];
        assert!(
            l.is_none_or(|l| i > l),
            "partition {}: {i} after {l:?}",
            g.partition
        );
        *l = Some(i);
        if purged.contains(&i) {
            assert!(
                matches!(
                    book[&i][0],
                    Err(Error::Purged {
                        in_flight: true,
                        ..
                    })
                ),
                "record {i} was purged before it was sent, yet it is in the log"
            );
        }
    }
    for i in later {
        assert_eq!(
            seen.get(&i),
            Some(book[&i][0].as_ref().unwrap()),
            "record {i}: in the log where its completion said"
        );
    }
}

#[test]
fn purging_buffered_records_fails_them_and_later_records_are_delivered() {
    let cluster = MockCluster::builder()
        .topic(TOPIC, PARTITIONS)
        .build()
        .unwrap();
    let p = Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .linger(Duration::from_secs(30))
        .batch_size(1 << 20)
        .build()
        .unwrap();
    let book: Book = Arc::default();
    send(&p, &book, 0..5_000);
    p.purge(PurgeScope::Buffered, Duration::from_secs(5))
        .unwrap();
    assert_eq!(p.in_flight(), 0, "nothing buffered is left");
    send(&p, &book, 5_000..6_000);
    p.flush(Duration::from_secs(30)).unwrap();
    assert_eq!(check_outcomes(&book, 0..5_000, 5_000..6_000), 0);
    let m = p.metrics();
    assert_eq!((m.records_failed, m.records_acked), (5_000, 1_000));
    assert!(cluster.request_count(ApiKey::PRODUCE.0) > 0);
    p.close(Duration::from_secs(5)).unwrap();
    check_log(&cluster, &book, 0..5_000, 5_000..6_000);
}

/// Requests held by a stalled broker are purged with everything buffered; what the broker
/// answers later (`code`, or success) settles the partitions, and later records go on.
fn purge_in_flight(answer: Option<ErrorCode>) -> kprod::MetricsSnapshot {
    let cluster = MockCluster::builder()
        .topic(TOPIC, PARTITIONS)
        .build()
        .unwrap();
    let p = Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .linger(Duration::ZERO)
        .batch_size(4_096)
        .build()
        .unwrap();
    // Warm: metadata and the producer id.
    p.produce(TOPIC, "k0", "warm").unwrap();
    let book: Book = Arc::default();
    cluster.stall(1, true);
    let before = cluster.request_count(ApiKey::PRODUCE.0);
    send(&p, &book, 0..3_000);
    wait_for(
        "Produce requests at the stalled broker",
        Duration::from_secs(10),
        || cluster.request_count(ApiKey::PRODUCE.0) >= before + 5,
    );
    if let Some(code) = answer {
        cluster.fail_requests(ApiKey::PRODUCE.0, &[code]);
    }
    p.purge(PurgeScope::BufferedAndInFlight, Duration::from_secs(5))
        .unwrap();
    assert_eq!(
        p.in_flight(),
        0,
        "every record sent before the purge has completed"
    );
    cluster.stall(1, false);
    send(&p, &book, 3_000..4_000);
    p.flush(Duration::from_secs(30)).unwrap();
    let in_flight = check_outcomes(&book, 0..3_000, 3_000..4_000);
    assert!(in_flight > 0, "none was purged in flight");
    let m = p.metrics();
    p.close(Duration::from_secs(5)).unwrap();
    check_log(&cluster, &book, 0..3_000, 3_000..4_000);
    eprintln!(
        "{in_flight} of 3,000 purged in flight; answer {answer:?}: epoch bumps {}, rewinds {}",
        m.epoch_bumps, m.sequence_rewinds
    );
    m
}

#[test]
fn purging_in_flight_records_leaves_the_partitions_consistent() {
    let m = purge_in_flight(None);
    assert_eq!(
        m.epoch_bumps, 0,
        "the answers were successes: nothing to bump"
    );
}

#[test]
fn a_purged_batch_answered_with_an_unknown_outcome_bumps_the_epoch() {
    // REQUEST_TIMED_OUT: the broker may have written it; the purged batch is given up, and
    // only a new epoch lets its partition go on.
    let m = purge_in_flight(Some(ErrorCode::REQUEST_TIMED_OUT));
    assert_eq!(m.epoch_bumps, 1, "{m:?}");
}

#[test]
fn purge_after_close_is_refused() {
    let cluster = MockCluster::builder().topic(TOPIC, 1).build().unwrap();
    let p = Producer::builder()
        .bootstrap_servers(&cluster.bootstrap_servers())
        .build()
        .unwrap();
    p.close(Duration::from_secs(5)).unwrap();
    assert!(matches!(
        p.purge(PurgeScope::Buffered, Duration::from_secs(1)),
        Err(Error::Closed { .. })
    ));
}
