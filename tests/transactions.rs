//! kprod's transactional producer against librdkafka's MockCluster, a transaction
//! coordinator written by others (it checks the coordinator, the producer id and epoch of
//! every transaction request; it writes no commit/abort markers, and a second producer with
//! the same transactional id gets a new producer id rather than fencing the first, so
//! isolation and fencing are proven against kprod's mock in `tests/mock_transactions.rs`):
//! init, commits and aborts across topics, offsets sent with a transaction, and calls in the
//! wrong state refused at the call.

#![cfg(feature = "mock")]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use kprod::transaction::{ConsumerGroupMetadata, TransactionOffset};
use kprod::{Error, Producer, TransactionError};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

type Cluster = MockCluster<'static, DefaultProducerContext>;

const T: Duration = Duration::from_secs(30);

fn cluster() -> Cluster {
    let _ = env_logger::builder().is_test(true).try_init();
    let c = MockCluster::new(3).expect("librdkafka mock cluster");
    c.create_topic("txn-a", 3, 1).unwrap();
    c.create_topic("txn-b", 2, 1).unwrap();
    c
}

fn producer(c: &Cluster, id: &str) -> Producer {
    Producer::builder()
        .bootstrap_servers(&c.bootstrap_servers())
        .transactional_id(id)
        .linger(Duration::from_millis(2))
        .request_timeout(Duration::from_secs(10))
        .delivery_timeout(Duration::from_secs(20))
        .retry_backoff(Duration::from_millis(20))
        .retry_backoff_max(Duration::from_millis(200))
        .build()
        .unwrap()
}

fn kind(r: Result<(), Error>) -> Option<TransactionError> {
    r.err().and_then(|e| e.transaction_error())
}

#[test]
fn commits_and_aborts_across_topics_as_librdkafkas_coordinator_expects() {
    let c = cluster();
    let p = producer(&c, "kprod-txn-flow");
    p.init_transactions(T).unwrap();
    let mut committed: BTreeMap<&str, Vec<Vec<u8>>> = BTreeMap::new();
    for round in 0..6 {
        p.begin_transaction().unwrap();
        let mut handles = Vec::new();
        for i in 0..50 {
            let key = format!("k{round}-{i}");
            handles.push(
                p.produce_async(
                    kprod::ProducerRecord::new(if i % 2 == 0 { "txn-a" } else { "txn-b" })
                        .key(key.as_bytes())
                        .value(format!("v{round}-{i}").into_bytes()),
                )
                .unwrap(),
            );
        }
        if round % 3 == 2 {
            p.send_offsets_to_transaction(
                &[TransactionOffset::new("txn-b", 0, 100 + round)],
                &ConsumerGroupMetadata::new("kprod-txn-group"),
                T,
            )
            .unwrap();
        }
        if round % 2 == 0 {
            p.commit_transaction(T).unwrap();
            for (i, h) in handles.into_iter().enumerate() {
                h.wait().expect("committed records are acknowledged");
                let topic = if i % 2 == 0 { "txn-a" } else { "txn-b" };
                committed
                    .entry(topic)
                    .or_default()
                    .push(format!("v{round}-{i}").into_bytes());
            }
        } else {
            p.abort_transaction(T).unwrap();
            for h in handles {
                // Sent and acknowledged before the abort, or failed as aborted: never lost.
                if let Err(e) = h.wait() {
                    assert_eq!(
                        e.transaction_error(),
                        Some(TransactionError::Abortable),
                        "{e}"
                    );
                }
            }
        }
    }
    let m = p.metrics();
    assert!(m.records_acked > 0, "{m:?}");
    p.close(T).unwrap();
    // librdkafka's consumer reads every committed record back, once (this broker shows
    // aborted records too: it writes no markers).
    for (topic, parts) in [("txn-a", 3), ("txn-b", 2)] {
        let got = support::readback::read_all(&c.bootstrap_servers(), topic, parts, &[], 0, T);
        let values: Vec<Vec<u8>> = got.into_iter().filter_map(|g| g.value).collect();
        for v in &committed[topic] {
            let n = values.iter().filter(|x| *x == v).count();
            assert_eq!(n, 1, "{topic}: {}", String::from_utf8_lossy(v));
        }
    }
}

#[test]
fn calls_in_the_wrong_state_are_refused_at_the_call() {
    let c = cluster();
    let p = producer(&c, "kprod-txn-states");
    let invalid = Some(TransactionError::InvalidState);
    assert_eq!(kind(p.begin_transaction()), invalid);
    assert_eq!(kind(p.commit_transaction(T)), invalid);
    let e = p.send("txn-a", "k", "v").unwrap_err();
    assert_eq!(e.error.transaction_error(), invalid, "{e}");
    p.init_transactions(T).unwrap();
    assert_eq!(kind(p.init_transactions(T)), invalid);
    // Outside a transaction: refused, nothing sent.
    let e = p.send("txn-a", "k", "v").unwrap_err();
    assert_eq!(e.error.transaction_error(), invalid, "{e}");
    assert_eq!(kind(p.abort_transaction(T)), invalid);
    p.begin_transaction().unwrap();
    assert_eq!(kind(p.begin_transaction()), invalid);
    p.send("txn-a", "k", "v").unwrap();
    p.commit_transaction(T).unwrap();
    assert_eq!(kind(p.commit_transaction(T)), invalid);
    assert_eq!(p.metrics().records_sent, 1);
    // Not transactional at all.
    let plain = Producer::builder()
        .bootstrap_servers(&c.bootstrap_servers())
        .build()
        .unwrap();
    assert_eq!(kind(plain.begin_transaction()), invalid);
}

#[test]
fn coordinator_errors_are_retried_and_a_failed_record_makes_the_transaction_abortable() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr::*};
    let c = cluster();
    c.request_errors(
        RDKafkaApiKey::FindCoordinator,
        &[RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE],
    );
    c.request_errors(
        RDKafkaApiKey::InitProducerId,
        &[
            RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
            RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
        ],
    );
    let p = producer(&c, "kprod-txn-errors");
    p.init_transactions(T).unwrap();
    // Retriable answers to every step: the calls still succeed.
    c.request_errors(
        RDKafkaApiKey::AddPartitionsToTxn,
        &[
            RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS,
            RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
        ],
    );
    c.request_errors(
        RDKafkaApiKey::EndTxn,
        &[
            RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS,
            RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
        ],
    );
    p.begin_transaction().unwrap();
    p.produce("txn-a", "k", "retried").unwrap();
    p.commit_transaction(T).unwrap();

    // A record refused for good: the commit is refused as abortable, nothing is committed.
    p.begin_transaction().unwrap();
    c.request_errors(RDKafkaApiKey::Produce, &[RD_KAFKA_RESP_ERR_INVALID_RECORD]);
    let failed = p.produce("txn-a", "k", "refused").unwrap_err();
    assert_eq!(
        failed.kafka_code(),
        Some(kprod::protocol::ErrorCode::INVALID_RECORD)
    );
    let e = p.commit_transaction(T).unwrap_err();
    assert_eq!(
        e.transaction_error(),
        Some(TransactionError::Abortable),
        "{e}"
    );
    // Only abort is allowed now; then the producer goes on.
    let e = p.send("txn-a", "k", "v").unwrap_err();
    assert_eq!(
        e.error.transaction_error(),
        Some(TransactionError::Abortable)
    );
    assert_eq!(
        kind(p.begin_transaction()),
        Some(TransactionError::Abortable)
    );
    p.abort_transaction(T).unwrap();
    p.begin_transaction().unwrap();
    p.produce("txn-b", "k", "after").unwrap();
    p.commit_transaction(T).unwrap();
}

#[test]
fn abort_fails_unsent_records_with_the_reason() {
    let c = cluster();
    let p = Producer::builder()
        .bootstrap_servers(&c.bootstrap_servers())
        .transactional_id("kprod-txn-abort")
        .linger(Duration::from_secs(30)) // held in the open batch until the abort
        .build()
        .unwrap();
    p.init_transactions(T).unwrap();
    p.begin_transaction().unwrap();
    let handles: Vec<_> = (0..20)
        .map(|i| {
            p.produce_async(kprod::ProducerRecord::new("txn-a").value(format!("{i}").into_bytes()))
                .unwrap()
        })
        .collect();
    p.abort_transaction(T).unwrap();
    for h in handles {
        let e = h.wait().unwrap_err();
        assert_eq!(
            e.transaction_error(),
            Some(TransactionError::Abortable),
            "{e}"
        );
        assert!(
            e.to_string()
                .contains("aborted before this record was delivered"),
            "{e}"
        );
        // Never sent (the broker was not reached): certainly not in the log.
        assert_eq!(
            e.delivery_status(),
            kprod::DeliveryStatus::NotPersisted,
            "{e}"
        );
    }
    assert_eq!(p.metrics().records_acked, 0);
}
