//! The transaction messages decoded from real librdkafka requests: librdkafka's transactional
//! producer (the `rdkafka` crate, librdkafka 2.12) runs a committed transaction with offsets
//! and an aborted one against `kprod::mock::MockCluster` (which, with `accept_transactions`,
//! says yes to everything without coordinating), every request it sends is captured, decoded
//! with kprod's generated codecs, and every field is checked against what librdkafka was told
//! to do: FindCoordinator (transaction and group), InitProducerId with the transactional id
//! and timeout, AddPartitionsToTxn, AddOffsetsToTxn, TxnOffsetCommit and EndTxn, and the
//! Produce batches marked transactional under the producer id.

#![cfg(feature = "mock")]

use std::collections::BTreeSet;
use std::time::Duration;

use kprod::mock::{CapturedRequest, MockCluster};
use kprod::protocol::codec::Reader;
use kprod::protocol::messages::add_offsets_to_txn::AddOffsetsToTxnRequest;
use kprod::protocol::messages::add_partitions_to_txn::AddPartitionsToTxnRequest;
use kprod::protocol::messages::end_txn::EndTxnRequest;
use kprod::protocol::messages::find_coordinator::FindCoordinatorRequest;
use kprod::protocol::messages::init_producer_id::InitProducerIdRequest;
use kprod::protocol::messages::txn_offset_commit::TxnOffsetCommitRequest;
use kprod::protocol::messages::Request;
use kprod::protocol::ApiKey;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

const TXN_ID: &str = "kprod-capture-txn";
const GROUP: &str = "kprod-capture-group";
const TIMEOUT_MS: i32 = 45_000;
const PRODUCER_ID: i64 = 7000;
const WAIT: Duration = Duration::from_secs(30);

/// Every captured request of `R`'s API, decoded with nothing left over.
fn decoded<R: Request>(c: &MockCluster) -> Vec<(i16, R)> {
    c.requests(R::API_KEY.0)
        .iter()
        .map(
            |CapturedRequest {
                 api_version, body, ..
             }| {
                let mut r = Reader::new(body);
                let m = R::decode(&mut r, *api_version)
                    .unwrap_or_else(|e| panic!("{:?} v{api_version}: {e}", R::API_KEY));
                r.finish("request").unwrap();
                (*api_version, m)
            },
        )
        .collect()
}

#[test]
fn librdkafka_transaction_requests_decode_to_what_it_was_told() {
    let c = MockCluster::builder()
        .topic("txn-a", 3)
        .topic("txn-b", 2)
        .accept_transactions(true)
        .first_producer_id(PRODUCER_ID)
        .build()
        .unwrap();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", c.bootstrap_servers())
        .set("transactional.id", TXN_ID)
        .set("transaction.timeout.ms", TIMEOUT_MS.to_string())
        .set("linger.ms", "1")
        .create()
        .expect("librdkafka producer");
    producer.init_transactions(WAIT).expect("init_transactions");

    // A committed transaction: three partitions of two topics, and a group's offsets.
    producer.begin_transaction().unwrap();
    for (topic, partition) in [("txn-a", 0), ("txn-a", 2), ("txn-b", 1)] {
        producer
            .send(
                BaseRecord::<(), str>::to(topic)
                    .partition(partition)
                    .payload("in a transaction"),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(WAIT).unwrap();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", c.bootstrap_servers())
        .set("group.id", GROUP)
        .create()
        .expect("librdkafka consumer");
    let group = consumer.group_metadata().expect("group metadata");
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("txn-a", 0, Offset::Offset(42))
        .unwrap();
    offsets
        .add_partition_offset("txn-b", 1, Offset::Offset(7))
        .unwrap();
    producer
        .send_offsets_to_transaction(&offsets, &group, WAIT)
        .expect("send_offsets_to_transaction");
    producer.commit_transaction(WAIT).expect("commit");

    // An aborted one, on a partition of its own.
    producer.begin_transaction().unwrap();
    producer
        .send(
            BaseRecord::<(), str>::to("txn-a")
                .partition(1)
                .payload("aborted"),
        )
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(WAIT).unwrap();
    producer.abort_transaction(WAIT).expect("abort");
    drop(producer);
    drop(consumer);
    assert!(c.errors().is_empty(), "the mock refused: {:?}", c.errors());

    // FindCoordinator: the transaction coordinator for the id, the group's for the group.
    let keys: BTreeSet<(i8, String)> = decoded::<FindCoordinatorRequest>(&c)
        .into_iter()
        .flat_map(|(v, m)| {
            let keys = if v >= 4 {
                m.coordinator_keys
            } else {
                vec![m.key]
            };
            keys.into_iter().map(move |k| (m.key_type, k))
        })
        .collect();
    assert!(keys.contains(&(1, TXN_ID.to_owned())), "{keys:?}");
    assert!(keys.contains(&(0, GROUP.to_owned())), "{keys:?}");

    // InitProducerId with the transactional id and the timeout it was given.
    let init = decoded::<InitProducerIdRequest>(&c);
    assert!(!init.is_empty());
    for (v, m) in &init {
        assert_eq!(m.transactional_id.as_deref(), Some(TXN_ID), "v{v}");
        assert_eq!(m.transaction_timeout_ms, TIMEOUT_MS, "v{v}");
        if *v >= 3 {
            assert_eq!((m.producer_id, m.producer_epoch), (-1, -1), "a first init");
        }
    }

    // AddPartitionsToTxn: exactly the partitions written, under the id and epoch handed out.
    let mut added = BTreeSet::new();
    for (v, m) in decoded::<AddPartitionsToTxnRequest>(&c) {
        assert_eq!(m.transactional_id, TXN_ID, "v{v}");
        assert_eq!((m.producer_id, m.producer_epoch), (PRODUCER_ID, 0), "v{v}");
        for t in m.topics {
            for p in t.partitions {
                added.insert((t.name.clone(), p));
            }
        }
    }
    let want: BTreeSet<(String, i32)> = [("txn-a", 0), ("txn-a", 1), ("txn-a", 2), ("txn-b", 1)]
        .into_iter()
        .map(|(t, p)| (t.to_owned(), p))
        .collect();
    assert_eq!(added, want);

    // AddOffsetsToTxn then TxnOffsetCommit: the group and the offsets it was given.
    let add_offsets = decoded::<AddOffsetsToTxnRequest>(&c);
    assert_eq!(add_offsets.len(), 1, "{add_offsets:?}");
    let (v, m) = &add_offsets[0];
    assert_eq!(m.transactional_id, TXN_ID, "v{v}");
    assert_eq!(m.group_id, GROUP, "v{v}");
    assert_eq!((m.producer_id, m.producer_epoch), (PRODUCER_ID, 0), "v{v}");
    let commits = decoded::<TxnOffsetCommitRequest>(&c);
    assert_eq!(commits.len(), 1, "{commits:?}");
    let (v, m) = &commits[0];
    assert_eq!(m.transactional_id, TXN_ID, "v{v}");
    assert_eq!(m.group_id, GROUP, "v{v}");
    assert_eq!((m.producer_id, m.producer_epoch), (PRODUCER_ID, 0), "v{v}");
    if *v >= 3 {
        // A consumer that never joined: no generation, no member id (KIP-447).
        assert_eq!(m.generation_id, -1, "v{v}");
        assert_eq!(m.member_id, "", "v{v}");
        assert_eq!(m.group_instance_id, None, "v{v}");
    }
    let committed: BTreeSet<(String, i32, i64)> = m
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.clone(), p.partition_index, p.committed_offset))
        })
        .collect();
    let want: BTreeSet<(String, i32, i64)> = [("txn-a", 0, 42), ("txn-b", 1, 7)]
        .into_iter()
        .map(|(t, p, o)| (t.to_owned(), p, o))
        .collect();
    assert_eq!(committed, want);

    // EndTxn: a commit, then an abort.
    let ends: Vec<bool> = decoded::<EndTxnRequest>(&c)
        .into_iter()
        .map(|(v, m)| {
            assert_eq!(m.transactional_id, TXN_ID, "v{v}");
            assert_eq!((m.producer_id, m.producer_epoch), (PRODUCER_ID, 0), "v{v}");
            m.committed
        })
        .collect();
    assert_eq!(ends, [true, false]);

    // The records went out as transactional batches of that producer.
    let produced = c.produce_requests();
    assert_eq!(produced.len(), 4, "{produced:?}");
    for p in &produced {
        for b in &p.batches {
            assert!(b.transactional, "{}/{}", p.topic, p.partition);
            assert_eq!(b.producer_id, PRODUCER_ID);
        }
    }
    // Each transaction API was offered, so librdkafka chose its versions from the table.
    for api in [
        ApiKey::ADD_PARTITIONS_TO_TXN,
        ApiKey::ADD_OFFSETS_TO_TXN,
        ApiKey::TXN_OFFSET_COMMIT,
        ApiKey::END_TXN,
    ] {
        eprintln!("{api:?}: versions used {:?}", c.api_versions_used(api.0));
    }
    eprintln!(
        "FindCoordinator: {:?}, InitProducerId: {:?}",
        c.api_versions_used(ApiKey::FIND_COORDINATOR.0),
        c.api_versions_used(ApiKey::INIT_PRODUCER_ID.0)
    );
}
