//! The other direction: record batches built by kprod's `RecordBatchBuilder` — every codec,
//! idempotent producer fields, keys, null keys and values, duplicate and null-valued headers,
//! timestamps, several batches per partition — are served by `kprod::mock::MockCluster` and read back
//! by librdkafka's consumer (the `rdkafka` crate, librdkafka 2.12, with CRC checking on). What it
//! reads must equal what kprod encoded, offset for offset.

#![cfg(feature = "mock")]

use std::time::{Duration, Instant};

use bytes::Bytes;
use kprod::mock::MockCluster;
use kprod::protocol::compression::{Compression, CompressionConfig, Compressor};
use kprod::protocol::record_batch::{BatchHeader, Header, RecordBatchBuilder};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, Timestamp, TopicPartitionList};

/// Which versions the broker offers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Profile {
    /// Flexible versions everywhere (Fetch v12, ListOffsets v7).
    Modern,
    /// No flexible versions (Fetch v11, ListOffsets v5).
    Legacy,
}

const TOPIC: &str = "readback";
const PARTITIONS: i32 = 2;
const PER_BATCH: usize = 37;

#[derive(Debug, Clone, PartialEq)]
struct Rec {
    partition: i32,
    offset: i64,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

fn record(i: usize) -> (Option<Vec<u8>>, Option<Vec<u8>>, Vec<Header>) {
    let key = match i % 4 {
        0 => None,
        1 => Some(Vec::new()),
        _ => Some(format!("k{}", i % 11).into_bytes()),
    };
    let value = match i % 6 {
        0 => None,
        1 => Some(Vec::new()),
        _ => Some(format!("payload {i} {}", "abc".repeat(i % 40)).into_bytes()),
    };
    let headers = match i % 3 {
        0 => vec![],
        1 => vec![Header::new("a", format!("{i}"))],
        _ => vec![
            Header::new("dup", "1"),
            Header::new("dup", "2"),
            Header {
                key: "nul".into(),
                value: None,
            },
        ],
    };
    (key, value, headers)
}

fn run(profile: Profile, codec: Compression, level: Option<i32>, n: usize) {
    let broker = MockCluster::builder()
        .legacy(profile == Profile::Legacy)
        .topic(TOPIC, PARTITIONS)
        .build()
        .expect("mock cluster");
    let mut compressor = Compressor::new(CompressionConfig::new(codec, level).unwrap());
    let mut want = Vec::new();
    for partition in 0..PARTITIONS {
        let mut builder = RecordBatchBuilder::new();
        let mut seq = 0;
        let mut offset = 0i64;
        let mut wire = Vec::new();
        for chunk in (0..n).collect::<Vec<_>>().chunks(PER_BATCH) {
            for &i in chunk {
                let (key, value, headers) = record(i);
                let ts = 1_700_000_000_000 + i as i64 * 7 - (i as i64 % 5);
                builder.append(ts, key.as_deref(), value.as_deref(), &headers);
                want.push(Rec {
                    partition,
                    offset,
                    timestamp: ts,
                    key,
                    value,
                    headers: headers
                        .iter()
                        .map(|h| (h.key.clone(), h.value.as_ref().map(|v| v.to_vec())))
                        .collect(),
                });
                offset += 1;
            }
            let header = BatchHeader {
                producer_id: 77,
                producer_epoch: 3,
                base_sequence: seq,
                ..Default::default()
            };
            builder.finish(&header, &mut compressor, &mut wire).unwrap();
            seq += chunk.len() as i32;
        }
        broker
            .append_batches(TOPIC, partition, Bytes::from(wire))
            .unwrap();
    }

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("group.id", "kprod-readback")
        .set("enable.auto.commit", "false")
        .set("check.crcs", "true")
        .set("fetch.wait.max.ms", "10")
        .set("max.partition.fetch.bytes", "8000")
        .create()
        .expect("librdkafka consumer");
    let mut tpl = TopicPartitionList::new();
    // One partition from a logical offset (exercises ListOffsets), one from an absolute one.
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .unwrap();
    tpl.add_partition_offset(TOPIC, 1, Offset::Offset(0))
        .unwrap();
    consumer.assign(&tpl).unwrap();

    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < want.len() && Instant::now() < deadline {
        let Some(msg) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let msg = msg.unwrap_or_else(|e| panic!("{codec:?}: consumer error {e}"));
        let timestamp = match msg.timestamp() {
            Timestamp::CreateTime(t) => t,
            other => panic!("{codec:?}: timestamp type {other:?}"),
        };
        got.push(Rec {
            partition: msg.partition(),
            offset: msg.offset(),
            timestamp,
            key: msg.key().map(<[u8]>::to_vec),
            value: msg.payload().map(<[u8]>::to_vec),
            headers: msg
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    drop(consumer);
    let errors = broker.errors();
    assert!(errors.is_empty(), "{codec:?}: broker errors {errors:?}");
    assert_eq!(got.len(), want.len(), "{codec:?}: records read back");
    got.sort_by_key(|r| (r.partition, r.offset));
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "{codec:?} level {level:?}");
    }
    eprintln!(
        "{codec:?} level {level:?}: librdkafka read {} records; versions {:?}",
        got.len(),
        [1i16, 2, 3, 10, 18].map(|k| (k, broker.api_versions_used(k)))
    );
}

#[test]
fn librdkafka_consumer_reads_kprod_batches_every_codec() {
    for (codec, level) in [
        (Compression::None, None),
        (Compression::Gzip, None),
        (Compression::Snappy, None),
        (Compression::Lz4, None),
        (Compression::Lz4, Some(9)),
        (Compression::Zstd, None),
    ] {
        run(Profile::Modern, codec, level, 300);
    }
}

#[test]
fn librdkafka_consumer_reads_kprod_batches_from_legacy_broker() {
    for codec in [Compression::None, Compression::Lz4, Compression::Zstd] {
        run(Profile::Legacy, codec, None, 120);
    }
}
