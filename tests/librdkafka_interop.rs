//! Golden interop: a real librdkafka producer (the `rdkafka` crate, librdkafka 2.12) talks to
//! `kprod::mock::MockCluster`, a loopback broker made of kprod's broker-side encoders. Every Produce request it sends is decoded
//! with kprod's decoders, and the records must equal exactly what librdkafka was given — for
//! every codec, with keys, null keys and values, duplicate and null-valued headers, and
//! timestamps; idempotent and not; against a modern (flexible-version) broker and a legacy one
//! that forces the ApiVersions v0 fallback.

#![cfg(feature = "mock")]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kprod::mock::MockCluster;
use kprod::protocol::compression::Compression;
use kprod::protocol::record_batch::TimestampType;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header as RdHeader, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

const TOPIC: &str = "interop";
const PARTITIONS: i32 = 3;
/// The producer id the cluster hands out first.
const PRODUCER_ID: i64 = 4242;

/// Which versions the broker offers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Profile {
    /// Everything kprod implements: flexible versions everywhere.
    Modern,
    /// A pre-KIP-482 broker: no flexible versions, so clients must fall back from ApiVersions
    /// v3 and use classic encodings.
    Legacy,
}

fn start(profile: Profile, partitions: i32) -> MockCluster {
    MockCluster::builder()
        .legacy(profile == Profile::Legacy)
        .topic(TOPIC, partitions)
        .first_producer_id(PRODUCER_ID)
        .build()
        .expect("mock cluster")
}

/// API key → versions clients used, for messages.
fn versions_seen(cluster: &MockCluster) -> BTreeMap<i16, Vec<i16>> {
    [0, 1, 2, 3, 10, 18, 19, 22]
        .into_iter()
        .map(|k| (k, cluster.api_versions_used(k)))
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

#[derive(Debug, Clone, PartialEq)]
struct Sent {
    partition: i32,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Deterministic, varied, compressible records.
fn records(n: usize) -> Vec<Sent> {
    (0..n)
        .map(|i| {
            let key = match i % 5 {
                0 => None,
                1 => Some(Vec::new()),
                _ => Some(format!("key-{}", i % 17).into_bytes()),
            };
            let value = match i % 7 {
                0 => None, // tombstone
                1 => Some(Vec::new()),
                _ => {
                    Some(format!("value {i} {}", "lorem ipsum dolor ".repeat(i % 13)).into_bytes())
                }
            };
            let headers = match i % 4 {
                0 => vec![],
                1 => vec![("trace".to_string(), Some(format!("t{i}").into_bytes()))],
                2 => vec![
                    ("dup".to_string(), Some(b"first".to_vec())),
                    ("dup".to_string(), Some(b"second".to_vec())),
                    ("null-valued".to_string(), None),
                ],
                _ => vec![("\u{e9}t\u{e9}".to_string(), Some(vec![0, 255, 1]))],
            };
            Sent {
                partition: (i % PARTITIONS as usize) as i32,
                timestamp: 1_700_000_000_000 + (i as i64) * 3 - (i as i64 % 4),
                key,
                value,
                headers,
            }
        })
        .collect()
}

struct Counts {
    ok: AtomicUsize,
    failed: AtomicUsize,
}

struct Ctx(Arc<Counts>);
impl ClientContext for Ctx {}
impl ProducerContext for Ctx {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.0.ok.fetch_add(1, Ordering::SeqCst),
            Err(_) => self.0.failed.fetch_add(1, Ordering::SeqCst),
        };
    }
}

fn run_case(profile: Profile, codec: Compression, idempotent: bool, n: usize) {
    let broker = start(profile, PARTITIONS);
    let counts = Arc::new(Counts {
        ok: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
    });
    let producer: BaseProducer<Ctx> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap_servers())
        .set("compression.codec", codec.name())
        .set("linger.ms", "5")
        .set("batch.num.messages", "64")
        .set("enable.idempotence", idempotent.to_string())
        .set("acks", "all")
        .set("message.timeout.ms", "20000")
        .create_with_context(Ctx(counts.clone()))
        .expect("librdkafka producer");

    let sent = records(n);
    for r in &sent {
        let mut headers = OwnedHeaders::new();
        for (k, v) in &r.headers {
            headers = headers.insert(RdHeader {
                key: k,
                value: v.as_ref(),
            });
        }
        let mut rec: BaseRecord<'_, Vec<u8>, Vec<u8>> = BaseRecord::to(TOPIC)
            .partition(r.partition)
            .timestamp(r.timestamp)
            .headers(headers);
        if let Some(k) = &r.key {
            rec = rec.key(k);
        }
        if let Some(v) = &r.value {
            rec = rec.payload(v);
        }
        producer.send(rec).map_err(|(e, _)| e).expect("enqueue");
        producer.poll(Duration::ZERO);
    }
    let flushed = producer.flush(Duration::from_secs(30));
    drop(producer);
    let broker_errors = broker.errors();
    let errors: Vec<_> = broker_errors
        .iter()
        .map(|e| &e[..e.len().min(300)])
        .collect();
    assert!(errors.is_empty(), "{codec:?}: broker errors: {errors:?}");
    assert!(flushed.is_ok(), "{flushed:?}");
    assert_eq!(counts.failed.load(Ordering::SeqCst), 0);
    assert_eq!(counts.ok.load(Ordering::SeqCst), n);

    // Group decoded records by partition, in the order the broker received them.
    let mut got: BTreeMap<i32, Vec<Sent>> = BTreeMap::new();
    let mut codecs_seen = Vec::new();
    let mut next_seq: BTreeMap<i32, i32> = BTreeMap::new();
    for c in &broker.produce_requests() {
        assert_eq!(c.topic, TOPIC);
        assert_eq!(c.acks, -1);
        for b in &c.batches {
            codecs_seen.push(b.compression);
            assert_eq!(b.timestamp_type, TimestampType::CreateTime);
            assert!(!b.transactional && !b.control);
            if idempotent {
                assert_eq!(b.producer_id, PRODUCER_ID);
                assert_eq!(b.producer_epoch, 0);
                let seq = next_seq.entry(c.partition).or_insert(0);
                assert_eq!(b.base_sequence, *seq, "contiguous sequences");
                *seq += b.records.len() as i32;
            } else {
                assert_eq!((b.producer_id, b.base_sequence), (-1, -1));
            }
            for r in &b.records {
                got.entry(c.partition).or_default().push(Sent {
                    partition: c.partition,
                    timestamp: r.timestamp,
                    key: r.key.as_ref().map(|k| k.to_vec()),
                    value: r.value.as_ref().map(|v| v.to_vec()),
                    headers: r
                        .headers
                        .iter()
                        .map(|h| (h.key.clone(), h.value.as_ref().map(|v| v.to_vec())))
                        .collect(),
                });
            }
        }
    }
    let mut want: BTreeMap<i32, Vec<Sent>> = BTreeMap::new();
    for r in sent {
        want.entry(r.partition).or_default().push(r);
    }
    for p in 0..PARTITIONS {
        let (g, w) = (&got[&p], &want[&p]);
        assert_eq!(g.len(), w.len(), "partition {p} record count");
        for (i, (g, w)) in g.iter().zip(w).enumerate() {
            assert_eq!(g, w, "partition {p} record {i}");
        }
    }
    // librdkafka sends a batch uncompressed when compression does not shrink it; the values
    // here are compressible, so the codec must show up.
    assert!(
        codecs_seen.contains(&codec),
        "{codec:?} never used; saw {codecs_seen:?}"
    );
    eprintln!(
        "{profile:?} {codec:?} idempotent={idempotent}: {} batches, versions {:?}",
        codecs_seen.len(),
        versions_seen(&broker)
    );
}

const ALL: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

#[test]
fn librdkafka_produce_decodes_modern_broker_every_codec() {
    for codec in ALL {
        run_case(Profile::Modern, codec, false, 400);
    }
}

#[test]
fn librdkafka_idempotent_produce_decodes_every_codec() {
    for codec in ALL {
        run_case(Profile::Modern, codec, true, 400);
    }
}

#[test]
fn librdkafka_against_legacy_broker_uses_apiversions_fallback() {
    for codec in ALL {
        run_case(Profile::Legacy, codec, true, 200);
    }
}

#[test]
fn negotiated_versions_are_flexible_on_modern_and_classic_on_legacy() {
    for (profile, want_flexible) in [(Profile::Modern, true), (Profile::Legacy, false)] {
        let broker = start(profile, PARTITIONS);
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap_servers())
            .set("enable.idempotence", "true")
            .set("linger.ms", "0")
            .create()
            .unwrap();
        producer
            .send(
                BaseRecord::<'_, str, str>::to(TOPIC)
                    .partition(0)
                    .payload("x"),
            )
            .map_err(|(e, _)| e)
            .unwrap();
        let flushed = producer.flush(Duration::from_secs(20));
        drop(producer);
        let versions = versions_seen(&broker);
        let errors = broker.errors();
        assert!(
            flushed.is_ok(),
            "{flushed:?}; broker saw {versions:?}, errors {errors:?}"
        );
        assert!(errors.is_empty(), "{errors:?}");
        let max = |k: i16| *versions[&k].iter().max().unwrap();
        if want_flexible {
            assert_eq!(max(18), 3, "ApiVersions");
            assert!(max(3) >= 9, "Metadata v{}", max(3));
            assert!(max(0) >= 9, "Produce v{}", max(0));
            assert!(max(22) >= 2, "InitProducerId v{}", max(22));
        } else {
            // It asked v3 first, got UNSUPPORTED_VERSION in a v0 body, and retried lower.
            assert!(versions[&18].contains(&3), "{versions:?}");
            assert!(max(18) == 3 && versions[&18].iter().any(|&v| v <= 2));
            assert!(max(3) <= 8 && max(0) <= 8 && max(22) <= 1);
        }
    }
}

/// kprod's partitioners choose the partition librdkafka's do, key for key: `murmur2_random`
/// (the Java client's murmur2) and `consistent_random` (CRC-32).
#[test]
fn partitioners_agree_with_librdkafka() {
    use kprod::partitioner::{BuiltinPartitioner, Partitioner};
    const PARTS: i32 = 7;
    for (name, ours) in [
        ("murmur2_random", BuiltinPartitioner::Murmur2),
        ("consistent_random", BuiltinPartitioner::Crc32),
    ] {
        let broker = start(Profile::Modern, PARTS);
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap_servers())
            .set("partitioner", name)
            .set("linger.ms", "5")
            .create()
            .unwrap();
        // librdkafka's consistent partitioners place empty keys randomly; murmur2 hashes them.
        let first = if name == "murmur2_random" { 0 } else { 1 };
        let keys: Vec<Vec<u8>> = (first..500)
            .map(|i: u32| match i {
                0 => Vec::new(),
                i if i % 3 == 0 => i.to_be_bytes().to_vec(),
                i => format!("user-{i}-{}", "x".repeat((i % 9) as usize)).into_bytes(),
            })
            .collect();
        for k in &keys {
            producer
                .send(BaseRecord::<'_, [u8], [u8]>::to(TOPIC).key(k).payload(k))
                .map_err(|(e, _)| e)
                .unwrap();
        }
        producer.flush(Duration::from_secs(20)).unwrap();
        drop(producer);
        let errors = broker.errors();
        assert!(errors.is_empty(), "{errors:?}");
        let mut seen = 0;
        for c in &broker.produce_requests() {
            for b in &c.batches {
                for r in &b.records {
                    let key = r.key.as_deref().unwrap();
                    let want = ours.partition(TOPIC, Some(key), PARTS as u32);
                    assert_eq!(Some(c.partition as u32), want, "{name}: key {key:?}");
                    seen += 1;
                }
            }
        }
        assert_eq!(seen, keys.len(), "{name}");
    }
}
