//! The producer against librdkafka's own mock cluster (rdkafka::mocking): every API, every
//! codec, idempotence, retries, errors, timeouts, backpressure — with what was written read
//! back by librdkafka's consumer.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kprod::partitioner::murmur2_partition;
use kprod::protocol::ErrorCode;
use kprod::serializer::{BigEndian, Utf8};
use kprod::{Compression, Deadline, Error, Producer, ProducerBuilder, ProducerRecord};
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use support::readback::read_back;

fn cluster(
    brokers: i32,
    topic: &str,
    partitions: i32,
) -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let c = MockCluster::new(brokers).expect("librdkafka mock cluster");
    c.create_topic(topic, partitions, 1).unwrap();
    c
}

fn builder(c: &MockCluster<'static, rdkafka::producer::DefaultProducerContext>) -> ProducerBuilder {
    Producer::builder()
        .bootstrap_servers(&c.bootstrap_servers())
        .linger(Duration::from_millis(2))
        .io_threads(2)
        .retry_backoff(Duration::from_millis(10))
        .retry_backoff_max(Duration::from_millis(100))
}

const LONG: Duration = Duration::from_secs(30);

/// Every way of sending, under every codec, idempotent: each success is read back by
/// librdkafka exactly once, equal, in per-partition send order; keyed records sit where the
/// Java client would put them.
#[test]
fn every_api_every_codec_read_back_by_librdkafka() {
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let topic = format!("all-{}", codec.name());
        let c = cluster(3, &topic, 4);
        let p = builder(&c).compression(codec).build().unwrap();
        // What each call reported: (partition, offset) → (key, value, headers).
        type Want = (
            Option<Vec<u8>>,
            Option<Vec<u8>>,
            Vec<(String, Option<Vec<u8>>)>,
        );
        let acked: Arc<Mutex<HashMap<(i32, i64), Want>>> = Arc::default();
        let rec = |i: usize| {
            let mut r = ProducerRecord::new(topic.clone())
                .key(format!("key-{}", i % 17))
                .value(format!("value-{i}-{}", "x".repeat(i % 50)))
                .header("i", i.to_string())
                .header("dup", "a")
                .header("dup", None::<&[u8]>);
            if i % 11 == 0 {
                r.key = None; // sticky partitioning
            }
            if i % 13 == 0 {
                r.value = None; // tombstone
            }
            r
        };
        let want_of = |r: &ProducerRecord| -> Want {
            (
                r.key.as_ref().map(|k| k.to_vec()),
                r.value.as_ref().map(|v| v.to_vec()),
                r.headers
                    .iter()
                    .map(|h| (h.key.clone(), h.value.as_ref().map(|v| v.to_vec())))
                    .collect(),
            )
        };
        let mut i = 0;
        let note = |md: &kprod::RecordMetadata, r: &ProducerRecord| {
            if let Some(k) = &r.key {
                assert_eq!(
                    md.partition as u32,
                    murmur2_partition(k, 4),
                    "{codec:?} keyed placement"
                );
            }
            assert!(
                acked
                    .lock()
                    .unwrap()
                    .insert((md.partition, md.offset), want_of(r))
                    .is_none(),
                "{codec:?}: offset reported twice"
            );
        };
        // Blocking produce.
        for _ in 0..50 {
            let r = rec(i);
            i += 1;
            let md = p.produce_record(r.clone()).unwrap();
            note(&md, &r);
        }
        // Oneshot handles.
        let mut hs = Vec::new();
        for _ in 0..200 {
            let r = rec(i);
            i += 1;
            hs.push((p.produce_async(r.clone()).unwrap(), r));
        }
        for (h, r) in hs {
            note(&h.wait().unwrap(), &r);
        }
        // produce_all keeps input order.
        let batch: Vec<_> = (0..200).map(|k| rec(i + k)).collect();
        i += 200;
        let results = p.produce_all(batch.clone());
        assert!(results.all_ok());
        for (res, r) in results.results().iter().zip(&batch) {
            note(res.as_ref().unwrap(), r);
        }
        // Callbacks, exactly once each.
        let fired = Arc::new(AtomicUsize::new(0));
        for _ in 0..200 {
            let r = rec(i);
            i += 1;
            let (acked, fired, want) = (acked.clone(), fired.clone(), want_of(&r));
            p.send_with(r, move |res| {
                let md = res.unwrap();
                assert!(acked
                    .lock()
                    .unwrap()
                    .insert((md.partition, md.offset), want)
                    .is_none());
                fired.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        }
        // Fire-and-forget: counted, not individually known.
        for k in 0..200 {
            p.send(&topic, format!("ff-{k}"), format!("ff-value-{k}"))
                .unwrap();
        }
        p.flush(LONG).unwrap();
        p.close(LONG).unwrap();
        assert_eq!(fired.load(Ordering::SeqCst), 200, "{codec:?}: callbacks");
        let m = p.metrics();
        assert_eq!(
            (m.records_sent, m.records_acked, m.records_failed),
            (850, 850, 0),
            "{codec:?}"
        );

        let got = read_back(&c.bootstrap_servers(), &topic, 4, 850, LONG);
        assert_eq!(got.len(), 850, "{codec:?}: records read back");
        let acked = acked.lock().unwrap();
        let mut ff = 0;
        for g in &got {
            match acked.get(&(g.partition, g.offset)) {
                Some((k, v, h)) => {
                    assert_eq!(
                        (&g.key, &g.value, &g.headers),
                        (k, v, h),
                        "{codec:?} at {}:{}",
                        g.partition,
                        g.offset
                    )
                }
                None => {
                    ff += 1;
                    let k = g.key.as_deref().expect("fire-and-forget records have keys");
                    assert_eq!(g.partition as u32, murmur2_partition(k, 4));
                }
            }
        }
        assert_eq!(ff, 200, "{codec:?}: fire-and-forget records");
        // Per-partition send order: fire-and-forget records of one key keep their order.
        let mut last: HashMap<Vec<u8>, i64> = HashMap::new();
        for g in got
            .iter()
            .filter(|g| g.key.as_deref().is_some_and(|k| k.starts_with(b"ff-")))
        {
            let k = g.value.clone().unwrap();
            assert!(last.insert(k, g.offset).is_none());
        }
    }
}

#[test]
fn retriable_errors_are_retried_until_success() {
    let c = cluster(1, "retry", 1);
    let p = builder(&c).build().unwrap();
    p.produce("retry", "k", "first").unwrap(); // metadata and producer id in place
    c.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        ],
    );
    let md = p.produce("retry", "k", "second").unwrap();
    assert_eq!(md.offset, 1);
    assert!(p.metrics().retries >= 3, "{:?}", p.metrics());
    p.close(LONG).unwrap();
    let got = read_back(&c.bootstrap_servers(), "retry", 1, 2, LONG);
    let values: Vec<_> = got.iter().map(|g| g.value.clone().unwrap()).collect();
    assert_eq!(
        values,
        vec![b"first".to_vec(), b"second".to_vec()],
        "no duplicates"
    );
}

#[test]
fn non_retriable_error_fails_only_the_affected_record() {
    let c = cluster(1, "denied", 1);
    let p = builder(&c).build().unwrap();
    p.produce("denied", "k", "ok-1").unwrap();
    c.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED],
    );
    let e = p.produce("denied", "k", "refused").unwrap_err();
    assert_eq!(
        e.kafka_code(),
        Some(ErrorCode::TOPIC_AUTHORIZATION_FAILED),
        "{e}"
    );
    assert!(!e.is_retriable());
    assert_eq!((e.topic(), e.partition()), (Some("denied"), Some(0)));
    p.produce("denied", "k", "ok-2").unwrap();
    p.close(LONG).unwrap();
}

#[test]
fn broker_down_ends_in_delivery_timeout_and_close_is_bounded() {
    let c = cluster(1, "down", 1);
    let p = builder(&c)
        .request_timeout(Duration::from_millis(500))
        .delivery_timeout(Duration::from_millis(1500))
        .build()
        .unwrap();
    p.produce("down", "k", "v").unwrap();
    c.broker_down(1).unwrap();
    let t = Instant::now();
    let e = p.produce("down", "k", "lost").unwrap_err();
    assert!(
        matches!(
            e,
            Error::Timeout {
                deadline: Deadline::Delivery,
                ..
            }
        ),
        "{e}"
    );
    assert!(t.elapsed() < Duration::from_secs(10));
    // Pending records fail with the close timeout; close returns within its bound.
    let h = p
        .produce_async(ProducerRecord::new("down").value("pending"))
        .unwrap();
    let t = Instant::now();
    let r = p.close(Duration::from_millis(300));
    assert!(
        matches!(
            r,
            Err(Error::Timeout {
                deadline: Deadline::Close,
                ..
            })
        ),
        "{r:?}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "close took {:?}",
        t.elapsed()
    );
    let e = h.wait().unwrap_err();
    assert!(
        matches!(
            e,
            Error::Timeout {
                deadline: Deadline::Close,
                ..
            }
        ),
        "{e}"
    );
    assert!(matches!(
        p.send("down", (), "after").unwrap_err().error,
        Error::Closed { .. }
    ));
}

#[test]
fn unknown_topic_fails_after_metadata_timeout() {
    let c = cluster(1, "known", 1);
    c.topic_error(
        "nope",
        RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
    )
    .unwrap();
    let p = builder(&c)
        .metadata_timeout(Duration::from_millis(800))
        .build()
        .unwrap();
    let e = p.produce("nope", "k", "v").unwrap_err();
    assert!(matches!(e, Error::UnknownTopic { .. }), "{e}");
    assert!(matches!(
        p.produce("bad/name", "k", "v").unwrap_err(),
        Error::InvalidTopic { .. }
    ));
    let e = p
        .produce_record(ProducerRecord::new("known").value("v").partition(5))
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidPartition {
                partition_count: 1,
                ..
            }
        ),
        "{e}"
    );
    p.close(LONG).unwrap();
}

#[test]
fn panicking_callback_is_caught_and_the_pool_goes_on() {
    let c = cluster(1, "cb", 1);
    let p = builder(&c).build().unwrap();
    let ok = Arc::new(AtomicUsize::new(0));
    for i in 0..20 {
        let ok = ok.clone();
        p.send_with(ProducerRecord::new("cb").value("v"), move |r| {
            r.unwrap();
            if i == 3 {
                panic!("callback 3 panics on purpose");
            }
            ok.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    p.close(LONG).unwrap();
    assert_eq!(ok.load(Ordering::SeqCst), 19);
    assert_eq!(p.metrics().callback_panics, 1);
}

#[test]
fn full_buffer_blocks_then_hands_the_record_back() {
    // Nothing listens here: records wait for metadata and keep their buffer room.
    // Port 1: nothing listens there and no ephemeral port is ever it (a port bound and
    // dropped could be handed to another test's broker, which this producer would then
    // write into).
    let addr = "127.0.0.1:1".to_string();
    let p = Producer::builder()
        .bootstrap_servers(&addr)
        .buffer_records(10)
        .max_block(Duration::from_millis(200))
        .build()
        .unwrap();
    let fired = Arc::new(AtomicUsize::new(0));
    for _ in 0..10 {
        let fired = fired.clone();
        p.send_with(ProducerRecord::new("t").value("v"), move |r| {
            assert!(r.is_err());
            fired.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    let e = p
        .try_send(ProducerRecord::new("t").key("mine").value("v"))
        .unwrap_err();
    assert!(matches!(e.error, Error::QueueFull { .. }));
    assert_eq!(
        e.record.key.as_deref(),
        Some(&b"mine"[..]),
        "the record comes back"
    );
    let t = Instant::now();
    let e = p.send("t", (), "v").unwrap_err();
    assert!(matches!(e.error, Error::QueueFull { .. }));
    assert!(
        t.elapsed() >= Duration::from_millis(200),
        "send blocks up to max_block"
    );
    assert!(matches!(
        p.flush(Duration::from_millis(50)),
        Err(Error::Timeout {
            deadline: Deadline::Flush,
            ..
        })
    ));
    let _ = p.close(Duration::from_millis(100));
    assert_eq!(
        fired.load(Ordering::SeqCst),
        10,
        "every accepted record completes once"
    );
    assert_eq!(p.in_flight(), 0);
}

/// Completed records whose callbacks have not run yet count against `buffer_records`: slow
/// callbacks hold senders back instead of piling up, and `flush` waits for them.
#[test]
fn slow_callbacks_hold_buffer_room_and_flush_waits_for_them() {
    let c = cluster(1, "slow", 1);
    let p = builder(&c)
        .buffer_records(10)
        .callback_threads(1)
        .build()
        .unwrap();
    let (open, gate) = crossbeam::channel::unbounded::<()>();
    let ran = Arc::new(AtomicUsize::new(0));
    for _ in 0..10 {
        let (gate, ran) = (gate.clone(), ran.clone());
        p.send_with(ProducerRecord::new("slow").value("v"), move |r| {
            r.unwrap();
            gate.recv().unwrap();
            ran.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    let deadline = Instant::now() + LONG;
    while p.metrics().records_acked < 10 {
        assert!(Instant::now() < deadline, "records not acknowledged");
        std::thread::yield_now();
    }
    // All ten are acknowledged, but their callbacks are stuck: no room yet.
    let e = p
        .try_send(ProducerRecord::new("slow").value("w"))
        .unwrap_err();
    assert!(matches!(e.error, Error::QueueFull { .. }), "{:?}", e.error);
    assert!(matches!(
        p.flush(Duration::from_millis(50)),
        Err(Error::Timeout {
            deadline: Deadline::Flush,
            ..
        })
    ));
    for _ in 0..10 {
        open.send(()).unwrap();
    }
    p.flush(LONG).unwrap();
    assert_eq!(
        ran.load(Ordering::SeqCst),
        10,
        "flush returns after the callbacks"
    );
    p.try_send(ProducerRecord::new("slow").value("w")).unwrap();
    p.close(LONG).unwrap();
}

#[test]
fn typed_producer_and_await_forget() {
    let c = cluster(1, "typed", 2);
    let p = builder(&c)
        .build()
        .unwrap()
        .typed::<str, i64>(Utf8, BigEndian);
    let md = p.produce("typed", "alice", &42).unwrap();
    p.send_await_forget(
        ProducerRecord::new("typed").value("x"),
        Duration::from_secs(10),
    );
    assert_eq!(p.metrics().forget_delivered, 1);
    p.close(LONG).unwrap();
    let got = read_back(&c.bootstrap_servers(), "typed", 2, 2, LONG);
    let g = got
        .iter()
        .find(|g| g.partition == md.partition && g.offset == md.offset)
        .unwrap();
    assert_eq!(g.key.as_deref(), Some(&b"alice"[..]));
    assert_eq!(g.value.as_deref(), Some(&42i64.to_be_bytes()[..]));
}

#[test]
fn acks_none_and_leader_without_idempotence() {
    for acks in [kprod::Acks::None, kprod::Acks::Leader] {
        let c = cluster(1, "acks", 1);
        let p = builder(&c).acks(acks).build().unwrap();
        assert!(!p.config().idempotence);
        let md = p.produce("acks", "k", "v").unwrap();
        assert_eq!(
            md.offset >= 0,
            acks == kprod::Acks::Leader,
            "{acks:?}: {md:?}"
        );
        for i in 0..100 {
            p.send("acks", (), format!("{i}")).unwrap();
        }
        p.close(LONG).unwrap();
        let m = p.metrics();
        assert_eq!(
            read_back(&c.bootstrap_servers(), "acks", 1, 101, LONG).len(),
            101,
            "{acks:?} {m:?}"
        );
    }
}

/// `metrics()` adds up: what was batched was acknowledged, compression shows in the ratio,
/// each broker's round trips are counted, and nothing is left in flight after a flush.
#[test]
fn metrics_add_up() {
    let c = cluster(2, "metered", 4);
    let p = builder(&c).compression(Compression::Lz4).build().unwrap();
    let before = p.metrics();
    assert_eq!(
        (before.in_flight, before.queue_depth, before.records_sent),
        (0, 0, 0)
    );
    for i in 0..5000u32 {
        p.send("metered", i.to_be_bytes().to_vec(), vec![b'x'; 200])
            .unwrap();
    }
    p.flush(LONG).unwrap();
    let m = p.metrics();
    assert_eq!(
        (m.records_sent, m.records_acked, m.records_failed),
        (5000, 5000, 0)
    );
    assert_eq!((m.in_flight, m.queue_depth), (0, 0));
    assert_eq!(m.records_batched, 5000);
    assert!(m.batches_sent >= 4, "{m:?}");
    assert!(m.mean_batch_records() >= 1.0 && m.mean_batch_records() <= 5000.0);
    assert!(
        m.compression_ratio() > 5.0,
        "200 repeated bytes compress: {}",
        m.compression_ratio()
    );
    assert_eq!(m.bytes_acked, m.batch_bytes_compressed);
    let answered: u64 = m.request_latency.iter().map(|b| b.requests).sum();
    assert_eq!(answered, m.requests_sent, "{m:?}");
    assert_eq!(
        m.request_latency.len(),
        2,
        "both brokers lead partitions: {m:?}"
    );
    for b in &m.request_latency {
        assert!(
            b.p50_us > 0 && b.p50_us <= b.p99_us && b.p99_us <= b.max_us,
            "{b:?}"
        );
    }
    p.close(LONG).unwrap();
}
