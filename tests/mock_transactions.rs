//! kprod's mock as a transaction coordinator, proven first by the reference client and then
//! used to prove kprod's transactional producer:
//!
//! 1. librdkafka's transactional producer commits and aborts against the mock; librdkafka's
//!    read_committed consumer sees exactly the committed records, its read_uncommitted
//!    consumer all of them; an open transaction holds the last stable offset back; group
//!    offsets sent in a transaction are visible through OffsetFetch (librdkafka's
//!    `committed_offsets`) only once it commits; a second producer with the same
//!    transactional id fences the first; the coordinator aborts a transaction that outlives
//!    its timeout.
//! 2. kprod's transactional producer runs 1,000 transactions of random sizes over three
//!    topics, committed or aborted at random, with group offsets in some: librdkafka's
//!    read_committed consumer sees every committed record once, in per-partition order, and
//!    no aborted one; the group's offsets change exactly when a transaction commits. The
//!    same run against librdkafka's MockCluster (which writes no markers, so only the
//!    committed records' exactly-once and order are checked there).
//! 3. kprod fenced: a second producer initialising the same id fences the first; the first's
//!    next calls say fenced and nothing it sends after that is visible.
//!
//! Every read ends at a sentinel record written after the transactions to every partition:
//! seeing it proves the consumer has seen everything before it.

#![cfg(feature = "mock")]

mod support;

use support::txn::{
    assert_same_log, read, read_template, write_sentinels, Log, Rng, GROUP, TOPICS,
};

use std::time::{Duration, Instant};

use kprod::mock::{MockCluster, TransactionState};
use kprod::transaction::{ConsumerGroupMetadata, TransactionOffset};
use kprod::{Producer, ProducerRecord, TransactionError};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};

const T: Duration = Duration::from_secs(30);
fn mock() -> MockCluster {
    let _ = env_logger::builder().is_test(true).try_init();
    let mut b = MockCluster::builder().brokers(3).accept_transactions(true);
    for (t, n) in TOPICS {
        b = b.topic(t, n);
    }
    b.build().unwrap()
}

/// The group's committed offsets as librdkafka's consumer fetches them (OffsetFetch to the
/// group coordinator); -1 for none.
fn fetched_offsets(bootstrap: &str, parts: &[(&str, i32)]) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .create()
        .expect("librdkafka consumer");
    let mut tpl = TopicPartitionList::new();
    for &(t, p) in parts {
        tpl.add_partition(t, p);
    }
    let got = consumer
        .committed_offsets(tpl, T)
        .expect("committed offsets");
    parts
        .iter()
        .map(
            |&(t, p)| match got.find_partition(t, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => -1,
            },
        )
        .collect()
}

fn librdkafka_producer(bootstrap: &str, id: &str, timeout_ms: u32) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", id)
        .set("transaction.timeout.ms", timeout_ms.to_string())
        .set("linger.ms", "1")
        .create()
        .expect("librdkafka producer")
}

fn rd_send(p: &BaseProducer, topic: &str, partition: i32, value: &[u8]) {
    p.send(
        BaseRecord::<(), [u8]>::to(topic)
            .partition(partition)
            .payload(value),
    )
    .map_err(|(e, _)| e)
    .unwrap();
}

#[test]
fn librdkafkas_transactions_against_the_mock_read_back_committed_only() {
    let c = mock();
    let bootstrap = c.bootstrap_servers();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", GROUP)
        .create()
        .unwrap();
    let group = consumer.group_metadata().unwrap();
    let p = librdkafka_producer(&bootstrap, "rd-txn", 60_000);
    p.init_transactions(T).unwrap();
    let mut committed = Log::new();
    let mut all = Log::new();
    let mut offsets = -1i64;
    for round in 0..12i64 {
        p.begin_transaction().unwrap();
        let mut these = Vec::new();
        for i in 0..(round % 5 + 1) as i32 {
            let (t, n) = TOPICS[(round as usize + i as usize) % 3];
            let part = (i + round as i32) % n;
            let v = format!("r{round}-{i}");
            rd_send(&p, t, part, v.as_bytes());
            these.push(((t.to_string(), part), v));
        }
        p.flush(T).unwrap();
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("tx-a", 0, Offset::Offset(100 + round))
            .unwrap();
        p.send_offsets_to_transaction(&tpl, &group, T).unwrap();
        for (k, v) in &these {
            all.entry(k.clone()).or_default().push(v.clone());
        }
        if round % 3 == 1 {
            p.abort_transaction(T).unwrap();
            assert_eq!(
                c.transaction_state("rd-txn"),
                Some(TransactionState::CompleteAbort)
            );
        } else {
            p.commit_transaction(T).unwrap();
            assert_eq!(
                c.transaction_state("rd-txn"),
                Some(TransactionState::CompleteCommit)
            );
            offsets = 100 + round;
            for (k, v) in these {
                committed.entry(k).or_default().push(v);
            }
        }
        // The group's offset is the last committed transaction's, never an aborted one's.
        assert_eq!(
            c.committed_offset(GROUP, "tx-a", 0),
            Some(offsets).filter(|&o| o >= 0)
        );
    }
    assert_eq!(
        fetched_offsets(&bootstrap, &[("tx-a", 0), ("tx-b", 0)]),
        [offsets, -1]
    );

    // An open transaction holds the last stable offset back; offsets sent in it are not
    // visible; then it commits and both are.
    p.begin_transaction().unwrap();
    rd_send(&p, "tx-c", 0, b"open");
    p.flush(T).unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("tx-a", 0, Offset::Offset(999))
        .unwrap();
    p.send_offsets_to_transaction(&tpl, &group, T).unwrap();
    let end = c.end_offset("tx-c", 0);
    assert_eq!(
        c.last_stable_offset("tx-c", 0),
        end - 1,
        "the open record's offset"
    );
    assert_eq!(
        c.transaction_state("rd-txn"),
        Some(TransactionState::Ongoing)
    );
    assert_eq!(fetched_offsets(&bootstrap, &[("tx-a", 0)]), [offsets]);
    p.commit_transaction(T).unwrap();
    assert_eq!(c.last_stable_offset("tx-c", 0), c.end_offset("tx-c", 0));
    assert_eq!(fetched_offsets(&bootstrap, &[("tx-a", 0)]), [999]);
    committed
        .entry(("tx-c".into(), 0))
        .or_default()
        .push("open".to_string());
    all.entry(("tx-c".into(), 0))
        .or_default()
        .push("open".to_string());
    drop(p);

    write_sentinels(&bootstrap);
    let want = |log: &Log| {
        let mut w = read_template();
        for (k, v) in log {
            w.insert(k.clone(), v.clone());
        }
        w
    };
    assert_same_log(
        &read(&bootstrap, "read_committed"),
        &want(&committed),
        "read_committed",
    );
    assert_same_log(
        &read(&bootstrap, "read_uncommitted"),
        &want(&all),
        "read_uncommitted",
    );
    assert!(c.errors().is_empty(), "{:?}", c.errors());
}

#[test]
fn librdkafka_fenced_and_timed_out_by_the_mock() {
    let c = mock();
    let bootstrap = c.bootstrap_servers();
    // Fencing: a second producer's init aborts the first's open transaction and fences it.
    let first = librdkafka_producer(&bootstrap, "rd-fenced", 60_000);
    first.init_transactions(T).unwrap();
    first.begin_transaction().unwrap();
    rd_send(&first, "tx-a", 0, b"fenced-open");
    first.flush(T).unwrap();
    let (pid, epoch) = c.transactional_producer("rd-fenced").unwrap();
    let second = librdkafka_producer(&bootstrap, "rd-fenced", 60_000);
    second.init_transactions(T).unwrap();
    assert_eq!(
        c.transactional_producer("rd-fenced"),
        Some((pid, epoch + 1))
    );
    assert_eq!(
        c.transaction_state("rd-fenced"),
        Some(TransactionState::Empty),
        "the open transaction was aborted"
    );
    rd_send(&first, "tx-a", 0, b"fenced-after");
    let _ = first.flush(T);
    let e = first.commit_transaction(T).unwrap_err();
    let fatal = match &e {
        rdkafka::error::KafkaError::Transaction(r) => r.is_fatal(),
        _ => false,
    };
    assert!(fatal, "the fenced producer's commit is fatal: {e:?}");
    second.begin_transaction().unwrap();
    rd_send(&second, "tx-a", 0, b"second");
    second.commit_transaction(T).unwrap();
    drop(first);
    drop(second);

    // The timeout: the coordinator aborts a transaction that outlives it.
    let slow = librdkafka_producer(&bootstrap, "rd-slow", 1_000);
    slow.init_transactions(T).unwrap();
    slow.begin_transaction().unwrap();
    rd_send(&slow, "tx-b", 1, b"timed-out");
    slow.flush(T).unwrap();
    let deadline = Instant::now() + T;
    while c.transactions_timed_out() == 0 {
        assert!(
            Instant::now() < deadline,
            "the coordinator never timed it out"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        c.transaction_state("rd-slow"),
        Some(TransactionState::CompleteAbort)
    );
    assert!(
        slow.commit_transaction(T).is_err(),
        "a timed-out transaction does not commit"
    );
    drop(slow);

    write_sentinels(&bootstrap);
    let mut want = read_template();
    want.insert(("tx-a".into(), 0), vec!["second".to_string()]);
    assert_same_log(&read(&bootstrap, "read_committed"), &want, "read_committed");
}

fn kprod_producer(bootstrap: &str, id: &str) -> Producer {
    Producer::builder()
        .bootstrap_servers(bootstrap)
        .transactional_id(id)
        .linger(Duration::from_millis(1))
        .request_timeout(Duration::from_secs(10))
        .delivery_timeout(Duration::from_secs(20))
        .retry_backoff(Duration::from_millis(10))
        .retry_backoff_max(Duration::from_millis(100))
        .build()
        .unwrap()
}

/// What a run of random transactions wrote: the committed records, and every record in the
/// log (committed, and aborted ones that were sent before the abort).
struct Written {
    committed: Log,
    all: Log,
    transactions: (u32, u32),
}

/// `n` transactions of 0–11 records to random partitions of [`TOPICS`], committed (2 in 3)
/// or aborted at random, a quarter of them with group offsets for `tx-a`. With `mock`, the
/// group's offsets are checked after every transaction: they change exactly when one commits.
fn random_transactions(p: &Producer, seed: u64, n: u32, mock: Option<&MockCluster>) -> Written {
    let mut rng = Rng(seed);
    let mut w = Written {
        committed: read_template(),
        all: read_template(),
        transactions: (0, 0),
    };
    let mut offsets: [Option<i64>; 3] = [None; 3];
    for txn in 0..n {
        p.begin_transaction().unwrap();
        let mut sent = Vec::new();
        for i in 0..rng.below(12) {
            let (t, parts) = TOPICS[rng.below(3) as usize];
            let part = rng.below(parts as u64) as i32;
            let v = format!("t{txn}-{i}");
            let h = p
                .produce_async(ProducerRecord::new(t).partition(part).value(v.clone()))
                .unwrap();
            sent.push(((t.to_string(), part), v, h));
        }
        let mut with_offsets = None;
        if rng.below(4) == 0 {
            let part = rng.below(3) as i32;
            let off = i64::from(txn) * 10 + rng.below(10) as i64;
            p.send_offsets_to_transaction(
                &[TransactionOffset::new("tx-a", part, off)],
                &ConsumerGroupMetadata::new(GROUP),
                T,
            )
            .unwrap_or_else(|e| panic!("transaction {txn}, {} records: {e}", sent.len()));
            with_offsets = Some((part as usize, off));
        }
        if rng.below(3) < 2 {
            p.commit_transaction(T).unwrap();
            w.transactions.0 += 1;
            for (k, v, h) in sent {
                h.wait().expect("a committed record is acknowledged");
                w.committed.get_mut(&k).unwrap().push(v.clone());
                w.all.get_mut(&k).unwrap().push(v);
            }
            if let Some((part, off)) = with_offsets {
                offsets[part] = Some(off);
            }
        } else {
            p.abort_transaction(T).unwrap();
            w.transactions.1 += 1;
            for (k, v, h) in sent {
                match h.wait() {
                    Ok(_) => w.all.get_mut(&k).unwrap().push(v),
                    Err(e) => assert_eq!(
                        e.transaction_error(),
                        Some(TransactionError::Abortable),
                        "{e}"
                    ),
                }
            }
        }
        if let Some(c) = mock {
            for (part, want) in offsets.iter().enumerate() {
                assert_eq!(
                    c.committed_offset(GROUP, "tx-a", part as i32),
                    *want,
                    "after transaction {txn}"
                );
            }
        }
    }
    w
}

#[test]
fn a_thousand_random_transactions_read_back_committed_once_in_order() {
    let c = mock();
    let bootstrap = c.bootstrap_servers();
    let p = kprod_producer(&bootstrap, "kprod-random");
    p.init_transactions(T).unwrap();
    let started = Instant::now();
    let w = random_transactions(&p, 0x5eed_1234, 1_000, Some(&c));
    eprintln!(
        "{} committed, {} aborted in {:?}",
        w.transactions.0,
        w.transactions.1,
        started.elapsed()
    );
    assert!(
        w.transactions.0 > 500 && w.transactions.1 > 200,
        "both kinds ran"
    );
    p.close(T).unwrap();
    write_sentinels(&bootstrap);
    assert_same_log(
        &read(&bootstrap, "read_committed"),
        &w.committed,
        "read_committed",
    );
    assert_same_log(
        &read(&bootstrap, "read_uncommitted"),
        &w.all,
        "read_uncommitted",
    );
    assert!(c.errors().is_empty(), "{:?}", c.errors());
}

#[test]
fn a_thousand_random_transactions_against_librdkafkas_mock_cluster() {
    let _ = env_logger::builder().is_test(true).try_init();
    let c = rdkafka::mocking::MockCluster::<rdkafka::producer::DefaultProducerContext>::new(3)
        .expect("librdkafka mock cluster");
    for (t, n) in TOPICS {
        c.create_topic(t, n, 1).unwrap();
    }
    let bootstrap = c.bootstrap_servers();
    let p = kprod_producer(&bootstrap, "kprod-random-rd");
    p.init_transactions(T).unwrap();
    let w = random_transactions(&p, 0xfeed_beef, 1_000, None);
    p.close(T).unwrap();
    write_sentinels(&bootstrap);
    // librdkafka's MockCluster writes no markers: its log is every record written, the
    // committed ones among them once each and in order.
    assert_same_log(
        &read(&bootstrap, "read_uncommitted"),
        &w.all,
        "read_uncommitted",
    );
}

#[test]
fn a_second_kprod_producer_fences_the_first() {
    let c = mock();
    let bootstrap = c.bootstrap_servers();
    let first = kprod_producer(&bootstrap, "kprod-fenced");
    first.init_transactions(T).unwrap();
    first.begin_transaction().unwrap();
    first.produce("tx-a", "k", "before").unwrap();
    let second = kprod_producer(&bootstrap, "kprod-fenced");
    second.init_transactions(T).unwrap();
    // The first's next record is refused by the partition's leader for its old epoch.
    let e = first.produce("tx-a", "k", "after").unwrap_err();
    assert_eq!(e.transaction_error(), Some(TransactionError::Fenced), "{e}");
    let e = first.commit_transaction(T).unwrap_err();
    assert_eq!(e.transaction_error(), Some(TransactionError::Fenced), "{e}");
    let e = first.send("tx-a", "k", "later").unwrap_err();
    assert_eq!(
        e.error.transaction_error(),
        Some(TransactionError::Fenced),
        "{e}"
    );
    let e = first.begin_transaction().unwrap_err();
    assert_eq!(e.transaction_error(), Some(TransactionError::Fenced), "{e}");
    second.begin_transaction().unwrap();
    second.produce("tx-a", "k", "second").unwrap();
    second.commit_transaction(T).unwrap();

    // A fenced producer that only ends: its EndTxn is refused as fenced.
    let third = kprod_producer(&bootstrap, "kprod-fenced");
    third.init_transactions(T).unwrap();
    let e = second.begin_transaction().and_then(|()| {
        second.send_offsets_to_transaction(
            &[TransactionOffset::new("tx-a", 0, 5)],
            &ConsumerGroupMetadata::new(GROUP),
            T,
        )
    });
    assert_eq!(
        e.unwrap_err().transaction_error(),
        Some(TransactionError::Fenced)
    );
    assert_eq!(c.committed_offset(GROUP, "tx-a", 0), None);
    for p in [first, second, third] {
        p.close(T).unwrap();
    }
    write_sentinels(&bootstrap);
    let mut want = read_template();
    // Key "k" of three partitions: murmur2 places it on partition 2.
    want.insert(("tx-a".into(), 2), vec!["second".to_string()]);
    assert_same_log(&read(&bootstrap, "read_committed"), &want, "read_committed");
}

#[test]
fn transactions_v2_add_partitions_by_producing_and_bump_the_epoch_at_every_end() {
    use kprod::protocol::ApiKey;
    let _ = env_logger::builder().is_test(true).try_init();
    let mut b = MockCluster::builder().brokers(3).transaction_version(2);
    for (t, n) in TOPICS {
        b = b.topic(t, n);
    }
    let c = b.build().unwrap();
    let bootstrap = c.bootstrap_servers();
    let p = kprod_producer(&bootstrap, "kprod-v2");
    p.init_transactions(T).unwrap();
    let w = random_transactions(&p, 0x7672, 300, Some(&c));
    p.close(T).unwrap();
    // No AddPartitionsToTxn: the Produce v12 requests added the partitions.
    assert_eq!(c.request_count(ApiKey::ADD_PARTITIONS_TO_TXN.0), 0);
    let produce: Vec<i16> = c
        .produce_requests()
        .iter()
        .filter(|r| r.batches.iter().any(|b| b.transactional))
        .map(|r| r.api_version)
        .collect();
    assert!(
        !produce.is_empty() && produce.iter().all(|&v| v >= 12),
        "{produce:?}"
    );
    let ends = c.api_versions_used(ApiKey::END_TXN.0);
    assert!(!ends.is_empty() && ends.iter().all(|&v| v >= 5), "{ends:?}");
    // Every EndTxn bumped the epoch, and kprod followed each bump.
    let (_, epoch) = c.transactional_producer("kprod-v2").unwrap();
    assert_eq!(
        epoch as u64,
        c.request_count(ApiKey::END_TXN.0),
        "one bump per end"
    );
    write_sentinels(&bootstrap);
    assert_same_log(
        &read(&bootstrap, "read_committed"),
        &w.committed,
        "read_committed",
    );
    assert_same_log(
        &read(&bootstrap, "read_uncommitted"),
        &w.all,
        "read_uncommitted",
    );
    assert!(c.errors().is_empty(), "{:?}", c.errors());
}

#[test]
fn without_transactions_v2_kprod_stays_below_its_versions() {
    use kprod::protocol::ApiKey;
    let c = mock();
    let p = kprod_producer(&c.bootstrap_servers(), "kprod-v1");
    p.init_transactions(T).unwrap();
    for commit in [true, false] {
        p.begin_transaction().unwrap();
        p.produce("tx-a", "k", "v").unwrap();
        if commit {
            p.commit_transaction(T).unwrap();
        } else {
            p.abort_transaction(T).unwrap();
        }
    }
    p.close(T).unwrap();
    assert!(c.request_count(ApiKey::ADD_PARTITIONS_TO_TXN.0) > 0);
    assert_eq!(c.api_versions_used(ApiKey::END_TXN.0), [4]);
    assert_eq!(c.request_count(ApiKey::END_TXN.0), 2);
    assert!(c.produce_requests().iter().all(|r| r.api_version <= 11));
    assert_eq!(c.transactional_producer("kprod-v1").map(|x| x.1), Some(0));
}
