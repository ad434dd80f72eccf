//! `kprod::mock::MockCluster`: real clients against it, and one test per fault knob showing
//! what a client sees. librdkafka (the `rdkafka` crate) plays the client where its behaviour
//! (retries, reconnects) is the point; a small raw client built from kprod's protocol encoders
//! plays it where exact error codes and EOFs are. Every wait is bounded by a deadline and
//! ends in an assertion.
#![cfg(feature = "mock")]

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kprod::mock::MockCluster;
use kprod::protocol::compression::{Compression, CompressionConfig, Compressor};
use kprod::protocol::messages::api_versions::{ApiVersionsRequest, ApiVersionsResponse};
use kprod::protocol::messages::create_topics::{
    CreatableReplicaAssignment, CreatableTopic, CreateTopicsRequest,
};
use kprod::protocol::messages::fetch::{FetchPartition, FetchRequest, FetchTopic};
use kprod::protocol::messages::init_producer_id::InitProducerIdRequest;
use kprod::protocol::messages::list_offsets::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use kprod::protocol::messages::metadata::{MetadataRequest, MetadataResponse};
use kprod::protocol::messages::produce::{
    PartitionProduceData, PartitionProduceResponse, ProduceRequest, TopicProduceData,
};
use kprod::protocol::messages::Request;
use kprod::protocol::record_batch::{
    decode_record_batches, BatchHeader, Header, RecordBatchBuilder,
};
use kprod::protocol::{decode_response, encode_request, ApiKey, ErrorCode, Uuid};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header as RdHeader, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, Timestamp, TopicPartitionList};

const PRODUCE: i16 = ApiKey::PRODUCE.0;
const METADATA: i16 = ApiKey::METADATA.0;
const API_VERSIONS: i16 = ApiKey::API_VERSIONS.0;
const INIT_PRODUCER_ID: i16 = ApiKey::INIT_PRODUCER_ID.0;

// ---------------------------------------------------------------------------------------------
// Helpers

/// Polls `cond` until it holds or `limit` passes; returns whether it held.
fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A minimal blocking Kafka client made of kprod's encoders and decoders.
struct Raw {
    s: TcpStream,
    cid: i32,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Raw { s, cid: 0 }
    }

    fn send<R: Request>(&mut self, req: &R, v: i16) -> i32 {
        self.cid += 1;
        let mut out = Vec::new();
        encode_request(req, v, self.cid, Some("raw"), &mut out).unwrap();
        self.s.write_all(&out).expect("write");
        self.cid
    }

    fn read_frame(&mut self) -> std::io::Result<Vec<u8>> {
        let mut len = [0u8; 4];
        self.s.read_exact(&mut len)?;
        let mut frame = vec![0u8; i32::from_be_bytes(len) as usize];
        self.s.read_exact(&mut frame)?;
        Ok(frame)
    }

    fn recv<R: Request>(&mut self, v: i16, cid: i32) -> R::Response {
        let frame = self.read_frame().expect("response");
        let (got, resp) = decode_response::<R>(&frame, v).expect("decode response");
        assert_eq!(got, cid, "responses in request order");
        resp
    }

    fn call<R: Request>(&mut self, req: &R, v: i16) -> R::Response {
        let cid = self.send(req, v);
        self.recv::<R>(v, cid)
    }

    /// Asserts the broker closed the connection (EOF or reset) within 5 s.
    fn expect_closed(&mut self) {
        self.s
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut b = [0u8; 1];
        match self.s.read(&mut b) {
            Ok(0) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted
                ) => {}
            other => panic!("expected the connection closed, got {other:?}"),
        }
    }

    fn produce(
        &mut self,
        v: i16,
        topic: &str,
        partition: i32,
        data: Bytes,
    ) -> PartitionProduceResponse {
        let req = produce_request(topic, partition, data);
        let resp = self.call(&req, v);
        resp.responses[0].partition_responses[0].clone()
    }
}

fn produce_request(topic: &str, partition: i32, data: Bytes) -> ProduceRequest {
    ProduceRequest {
        acks: -1,
        timeout_ms: 5000,
        topic_data: vec![TopicProduceData {
            name: topic.into(),
            partition_data: vec![PartitionProduceData {
                index: partition,
                records: Some(data),
            }],
        }],
        ..Default::default()
    }
}

/// One batch of `n` records; `seq` < 0 means not idempotent.
fn batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Bytes {
    let mut b = RecordBatchBuilder::new();
    for i in 0..n {
        let v = format!("v{seq}-{i}");
        b.append(1_000 + i as i64, Some(b"k"), Some(v.as_bytes()), &[]);
    }
    let header = BatchHeader {
        producer_id: pid,
        producer_epoch: epoch,
        base_sequence: seq,
        ..Default::default()
    };
    let mut out = Vec::new();
    let mut c = Compressor::new(CompressionConfig::new(Compression::None, None).unwrap());
    b.finish(&header, &mut c, &mut out).unwrap();
    Bytes::from(out)
}

fn code(p: &PartitionProduceResponse) -> ErrorCode {
    ErrorCode::from(p.error_code)
}

/// Delivery reports: Ok((partition, offset)) or the error code.
type Reports = Arc<Mutex<Vec<Result<(i32, i64), RDKafkaErrorCode>>>>;

struct Ctx(Reports);
impl ClientContext for Ctx {}
impl ProducerContext for Ctx {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let r = match result {
            Ok(m) => Ok((m.partition(), m.offset())),
            Err((e, _)) => Err(e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail)),
        };
        self.0.lock().unwrap().push(r);
    }
}

fn producer(cluster: &MockCluster, extra: &[(&str, &str)]) -> (BaseProducer<Ctx>, Reports) {
    let reports: Reports = Arc::default();
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", cluster.bootstrap_servers())
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("retry.backoff.ms", "20")
        .set("reconnect.backoff.ms", "20")
        .set("reconnect.backoff.max.ms", "200")
        .set("message.timeout.ms", "20000");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    let p = cfg
        .create_with_context(Ctx(reports.clone()))
        .expect("producer");
    (p, reports)
}

fn send(p: &BaseProducer<Ctx>, topic: &str, partition: i32, value: &str) {
    p.send(
        BaseRecord::<'_, str, str>::to(topic)
            .partition(partition)
            .key(value)
            .payload(value),
    )
    .map_err(|(e, _)| e)
    .expect("enqueue");
    p.poll(Duration::ZERO);
}

fn values(cluster: &MockCluster, topic: &str, partition: i32) -> Vec<String> {
    cluster
        .records(topic, partition)
        .iter()
        .map(|r| String::from_utf8(r.value.as_ref().unwrap().to_vec()).unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Real clients, every codec

#[derive(Debug, Clone, PartialEq)]
struct Rec {
    partition: i32,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

fn rec(i: usize, partitions: i32) -> Rec {
    Rec {
        partition: (i % partitions as usize) as i32,
        timestamp: 1_700_000_000_000 + i as i64 * 5 - (i as i64 % 3),
        key: Some(format!("key-{}", i % 23).into_bytes()),
        value: match i % 9 {
            0 => None,
            _ => Some(format!("value {i} {}", "abcdef".repeat(i % 11)).into_bytes()),
        },
        headers: match i % 3 {
            0 => vec![],
            1 => vec![("h".into(), Some(format!("{i}").into_bytes()))],
            _ => vec![
                ("dup".into(), Some(b"1".to_vec())),
                ("dup".into(), Some(b"2".to_vec())),
                ("null".into(), None),
            ],
        },
    }
}

fn headers_of(h: &[Header]) -> Vec<(String, Option<Vec<u8>>)> {
    h.iter()
        .map(|h| (h.key.clone(), h.value.as_ref().map(|v| v.to_vec())))
        .collect()
}

/// librdkafka produces idempotently to three brokers under every codec; `records()` returns
/// exactly what it was given, per partition in order, with contiguous sequences; and
/// librdkafka's consumer reads back the same records at the same offsets.
#[test]
fn librdkafka_roundtrip_every_codec_three_brokers() {
    const PARTS: i32 = 6;
    const N: usize = 300;
    let mut builder = MockCluster::builder().brokers(3);
    let codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
    for c in codecs {
        builder = builder.topic(&format!("rt-{c}"), PARTS);
    }
    let cluster = builder.build().unwrap();
    assert_eq!(cluster.broker_ids(), [1, 2, 3]);
    for p in 0..PARTS {
        assert_eq!(cluster.partition_leader("rt-none", p), Some(1 + p % 3));
    }
    for codec in codecs {
        let topic = format!("rt-{codec}");
        let (producer, reports) = producer(
            &cluster,
            &[("compression.codec", codec), ("batch.num.messages", "40")],
        );
        let sent: Vec<Rec> = (0..N).map(|i| rec(i, PARTS)).collect();
        for r in &sent {
            let mut headers = OwnedHeaders::new();
            for (k, v) in &r.headers {
                headers = headers.insert(RdHeader {
                    key: k,
                    value: v.as_ref(),
                });
            }
            let mut br: BaseRecord<'_, Vec<u8>, Vec<u8>> = BaseRecord::to(&topic)
                .partition(r.partition)
                .timestamp(r.timestamp)
                .headers(headers);
            if let Some(k) = &r.key {
                br = br.key(k);
            }
            if let Some(v) = &r.value {
                br = br.payload(v);
            }
            producer.send(br).map_err(|(e, _)| e).expect("enqueue");
            producer.poll(Duration::ZERO);
        }
        producer.flush(Duration::from_secs(30)).expect("flush");
        drop(producer);
        let reports = reports.lock().unwrap().clone();
        assert_eq!(reports.len(), N);
        assert!(reports.iter().all(Result::is_ok), "{codec}: {reports:?}");

        let mut want: BTreeMap<i32, Vec<Rec>> = BTreeMap::new();
        for r in sent {
            want.entry(r.partition).or_default().push(r);
        }
        let mut stored_by_partition = BTreeMap::new();
        for p in 0..PARTS {
            let stored = cluster.records(&topic, p);
            assert_eq!(stored.len(), want[&p].len(), "{codec} partition {p}");
            assert_eq!(cluster.end_offset(&topic, p), stored.len() as i64);
            for (i, (s, w)) in stored.iter().zip(&want[&p]).enumerate() {
                assert_eq!(s.offset, i as i64);
                assert_eq!(s.sequence, i as i32, "{codec} p{p}: contiguous sequences");
                assert!(s.producer_id >= 0);
                let got = Rec {
                    partition: p,
                    timestamp: s.timestamp,
                    key: s.key.as_ref().map(|k| k.to_vec()),
                    value: s.value.as_ref().map(|v| v.to_vec()),
                    headers: headers_of(&s.headers),
                };
                assert_eq!(&got, w, "{codec} partition {p} record {i}");
            }
            if codec != "none" {
                let used: Vec<_> = cluster
                    .batches(&topic, p)
                    .iter()
                    .map(|b| b.compression)
                    .collect();
                assert!(
                    used.iter().any(|c| *c != Compression::None),
                    "{codec}: {used:?}"
                );
            }
            stored_by_partition.insert(p, stored);
        }

        // Read it all back with librdkafka's consumer.
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("group.id", "mock-readback")
            .set("enable.auto.commit", "false")
            .set("check.crcs", "true")
            .set("fetch.wait.max.ms", "50")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTS {
            tpl.add_partition_offset(&topic, p, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).unwrap();
        let mut got: BTreeMap<i32, Vec<(i64, Rec)>> = BTreeMap::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut n = 0;
        while n < N && Instant::now() < deadline {
            let Some(m) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let m = m.unwrap_or_else(|e| panic!("{codec}: consumer error {e}"));
            let Timestamp::CreateTime(ts) = m.timestamp() else {
                panic!("timestamp type")
            };
            got.entry(m.partition()).or_default().push((
                m.offset(),
                Rec {
                    partition: m.partition(),
                    timestamp: ts,
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec),
                    headers: m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                                .collect()
                        })
                        .unwrap_or_default(),
                },
            ));
            n += 1;
        }
        drop(consumer);
        assert_eq!(n, N, "{codec}: records read back");
        for p in 0..PARTS {
            let read = &got[&p];
            let stored = &stored_by_partition[&p];
            assert_eq!(read.len(), stored.len());
            for ((off, r), s) in read.iter().zip(stored) {
                assert_eq!(*off, s.offset);
                assert_eq!(r, &want[&p][s.offset as usize]);
            }
        }
    }
    assert!(cluster.errors().is_empty(), "{:?}", cluster.errors());
    assert_eq!(cluster.request_count(INIT_PRODUCER_ID), codecs.len() as u64);
}

// ---------------------------------------------------------------------------------------------
// fail_requests

#[test]
fn fail_requests_retriable_error_is_retried_by_librdkafka() {
    let cluster = MockCluster::builder().topic("t", 1).build().unwrap();
    cluster.fail_requests(
        PRODUCE,
        &[
            ErrorCode::NOT_ENOUGH_REPLICAS,
            ErrorCode::NOT_ENOUGH_REPLICAS,
        ],
    );
    let (p, reports) = producer(&cluster, &[]);
    send(&p, "t", 0, "a");
    p.flush(Duration::from_secs(20)).expect("flush");
    assert_eq!(*reports.lock().unwrap(), [Ok((0, 0))]);
    assert_eq!(values(&cluster, "t", 0), ["a"]);
    assert!(
        cluster.request_count(PRODUCE) >= 3,
        "two failures, then success"
    );
    assert!(cluster.errors().is_empty());
}

#[test]
fn fail_requests_non_retriable_error_fails_the_delivery_with_that_code() {
    let cluster = MockCluster::builder().topic("t", 1).build().unwrap();
    cluster.fail_requests(PRODUCE, &[ErrorCode::TOPIC_AUTHORIZATION_FAILED]);
    let (p, reports) = producer(&cluster, &[("enable.idempotence", "false")]);
    send(&p, "t", 0, "denied");
    let _ = p.flush(Duration::from_secs(20));
    assert_eq!(
        *reports.lock().unwrap(),
        [Err(RDKafkaErrorCode::TopicAuthorizationFailed)]
    );
    assert!(cluster.records("t", 0).is_empty(), "nothing stored");
    assert_eq!(cluster.end_offset("t", 0), 0);
    // The knob is spent: the next record goes through. (A fresh producer: librdkafka may
    // refuse to enqueue to a topic it was just denied until its metadata is refreshed.)
    drop(p);
    let (p, reports) = producer(&cluster, &[("enable.idempotence", "false")]);
    send(&p, "t", 0, "ok");
    p.flush(Duration::from_secs(20)).expect("flush");
    assert_eq!(*reports.lock().unwrap(), [Ok((0, 0))]);
    assert_eq!(values(&cluster, "t", 0), ["ok"]);
}

/// A topic's `max.message.bytes`: librdkafka's batch above it is refused with
/// MESSAGE_TOO_LARGE (librdkafka does not split; each record fails with the code), one below
/// it is stored.
#[test]
fn max_message_bytes_refuses_larger_batches_as_librdkafka_expects() {
    let cluster = MockCluster::builder().topic("small", 1).build().unwrap();
    cluster.set_max_message_bytes("small", Some(2_000));
    assert_eq!(cluster.max_message_bytes("small"), Some(2_000));
    let (p, reports) = producer(&cluster, &[("linger.ms", "50"), ("batch.size", "100000")]);
    // 30 records of ~100 B in one batch: ~3.5 KB, over the limit.
    for i in 0..30 {
        send(&p, "small", 0, &format!("{i:0100}"));
    }
    let _ = p.flush(Duration::from_secs(20));
    let got = std::mem::take(&mut *reports.lock().unwrap());
    assert_eq!(got, vec![Err(RDKafkaErrorCode::MessageSizeTooLarge); 30]);
    assert!(cluster.records("small", 0).is_empty(), "nothing stored");
    // One record alone fits.
    send(&p, "small", 0, "fits");
    p.flush(Duration::from_secs(20)).expect("flush");
    assert_eq!(*reports.lock().unwrap(), [Ok((0, 0))]);
    assert_eq!(values(&cluster, "small", 0), ["fits"]);
}

#[test]
fn fail_requests_answers_codes_in_order_for_each_api() {
    let cluster = MockCluster::builder().topic("t", 2).build().unwrap();
    let mut c = Raw::connect(cluster.broker_addr(1));
    cluster.fail_requests(
        METADATA,
        &[
            ErrorCode::LEADER_NOT_AVAILABLE,
            ErrorCode::TOPIC_AUTHORIZATION_FAILED,
        ],
    );
    let req = MetadataRequest::for_topics(["t"]);
    for want in [
        ErrorCode::LEADER_NOT_AVAILABLE,
        ErrorCode::TOPIC_AUTHORIZATION_FAILED,
        ErrorCode::NONE,
    ] {
        let resp: MetadataResponse = c.call(&req, 12);
        assert_eq!(ErrorCode::from(resp.topics[0].error_code), want);
        assert_eq!(resp.brokers.len(), 1);
    }
    cluster.fail_requests(INIT_PRODUCER_ID, &[ErrorCode::COORDINATOR_LOAD_IN_PROGRESS]);
    let r = c.call(&InitProducerIdRequest::default(), 4);
    assert_eq!(
        ErrorCode::from(r.error_code),
        ErrorCode::COORDINATOR_LOAD_IN_PROGRESS
    );
    let r = c.call(&InitProducerIdRequest::default(), 4);
    assert_eq!((r.error_code, r.producer_epoch), (0, 0));
    // Produce: every partition gets the code; nothing is stored.
    cluster.fail_requests(PRODUCE, &[ErrorCode::NOT_ENOUGH_REPLICAS]);
    let mut req = produce_request("t", 0, batch(-1, -1, -1, 2));
    req.topic_data[0].partition_data.push(PartitionProduceData {
        index: 1,
        records: Some(batch(-1, -1, -1, 2)),
    });
    let resp = c.call(&req, 11);
    let codes: Vec<_> = resp.responses[0]
        .partition_responses
        .iter()
        .map(code)
        .collect();
    assert_eq!(codes, [ErrorCode::NOT_ENOUGH_REPLICAS; 2]);
    assert_eq!(
        (cluster.end_offset("t", 0), cluster.end_offset("t", 1)),
        (0, 0)
    );
    let resp = c.call(&req, 11);
    assert!(resp.responses[0]
        .partition_responses
        .iter()
        .all(|p| p.error_code == 0));
    assert_eq!(
        (cluster.end_offset("t", 0), cluster.end_offset("t", 1)),
        (2, 2)
    );
}

// ---------------------------------------------------------------------------------------------
// drop_connection_on_request

#[test]
fn drop_connection_on_request_closes_instead_of_answering() {
    let cluster = MockCluster::builder().topic("t", 1).build().unwrap();
    let mut c = Raw::connect(cluster.broker_addr(1));
    cluster.drop_connection_on_request(1, 2);
    let _: MetadataResponse = c.call(&MetadataRequest::for_topics(["t"]), 12); // 1st: answered
    c.send(&produce_request("t", 0, batch(-1, -1, -1, 3)), 11); // 2nd: dropped
    c.expect_closed();
    assert_eq!(
        cluster.end_offset("t", 0),
        0,
        "the dropped Produce is not stored"
    );
    assert_eq!(cluster.request_count(PRODUCE), 1, "it was read");
    // One-shot: a new connection is served.
    let mut c = Raw::connect(cluster.broker_addr(1));
    assert_eq!(
        code(&c.produce(11, "t", 0, batch(-1, -1, -1, 3))),
        ErrorCode::NONE
    );
    assert_eq!(cluster.end_offset("t", 0), 3);
    assert!(cluster.errors().is_empty());
}

#[test]
fn drop_connection_on_request_librdkafka_reconnects_and_delivers() {
    let cluster = MockCluster::builder().topic("t", 1).build().unwrap();
    let (p, reports) = producer(&cluster, &[]);
    send(&p, "t", 0, "before");
    p.flush(Duration::from_secs(20)).expect("flush");
    let handshakes = cluster.request_count(API_VERSIONS);
    cluster.drop_connection_on_request(1, 1);
    for i in 0..50 {
        send(&p, "t", 0, &format!("m{i}"));
    }
    p.flush(Duration::from_secs(20))
        .expect("flush after the drop");
    assert!(
        cluster.request_count(API_VERSIONS) > handshakes,
        "librdkafka reconnected"
    );
    let want: Vec<String> = std::iter::once("before".to_string())
        .chain((0..50).map(|i| format!("m{i}")))
        .collect();
    assert_eq!(
        values(&cluster, "t", 0),
        want,
        "every record once, in order"
    );
    assert!(reports.lock().unwrap().iter().all(Result::is_ok));
}

// ---------------------------------------------------------------------------------------------
// drop_connection_after_bytes

#[test]
fn drop_connection_after_bytes_cuts_mid_request() {
    let cluster = MockCluster::builder().topic("t", 1).build().unwrap();
    let mut c = Raw::connect(cluster.broker_addr(1));
    let _: MetadataResponse = c.call(&MetadataRequest::for_topics(["t"]), 12);
    cluster.drop_connection_after_bytes(1, 40);
    c.send(&produce_request("t", 0, batch(-1, -1, -1, 10)), 11); // a few hundred bytes
    c.expect_closed();
    assert_eq!(cluster.end_offset("t", 0), 0);
    assert_eq!(cluster.request_count(PRODUCE), 0, "never read in full");
    assert!(cluster.errors().is_empty(), "{:?}", cluster.errors());
    let mut c = Raw::connect(cluster.broker_addr(1));
    assert_eq!(
        code(&c.produce(11, "t", 0, batch(-1, -1, -1, 10))),
        ErrorCode::NONE
    );
}

#[test]
fn drop_connection_after_bytes_librdkafka_reconnects_and_delivers() {
    let cluster = MockCluster::builder().topic("t", 1).build().unwrap();
    let (p, reports) = producer(&cluster, &[]);
    send(&p, "t", 0, "before");
    p.flush(Duration::from_secs(20)).expect("flush");
    let handshakes = cluster.request_count(API_VERSIONS);
    cluster.drop_connection_after_bytes(1, 300);
    for i in 0..200 {
        send(&p, "t", 0, &format!("record {i} {}", "x".repeat(20)));
    }
    p.flush(Duration::from_secs(20))
        .expect("flush after the cut");
    assert!(
        cluster.request_count(API_VERSIONS) > handshakes,
        "librdkafka reconnected"
    );
    let got = values(&cluster, "t", 0);
    assert_eq!(got.len(), 201, "each record stored once");
    for (i, v) in got[1..].iter().enumerate() {
        assert!(v.starts_with(&format!("record {i} ")), "{v}");
    }
    assert!(reports.lock().unwrap().iter().all(Result::is_ok));
}

// ---------------------------------------------------------------------------------------------
// set_latency

#[test]
fn set_latency_delays_every_response() {
    let cluster = MockCluster::builder().brokers(2).build().unwrap();
    let latency = Duration::from_millis(300);
    cluster.set_latency(1, latency);
    let mut c = Raw::connect(cluster.broker_addr(1));
    let t = Instant::now();
    let _: ApiVersionsResponse = c.call(&ApiVersionsRequest::kprod(), 3);
    assert!(t.elapsed() >= latency, "{:?}", t.elapsed());
    // Pipelined requests: answered in order, none before its latency.
    let t = Instant::now();
    let a = c.send(&MetadataRequest::default(), 12);
    let b = c.send(&MetadataRequest::default(), 12);
    let _ = c.recv::<MetadataRequest>(12, a);
    let _ = c.recv::<MetadataRequest>(12, b);
    assert!(t.elapsed() >= latency);
    // The other broker is unaffected, and zero turns it off.
    let mut other = Raw::connect(cluster.broker_addr(2));
    let t = Instant::now();
    let _: ApiVersionsResponse = other.call(&ApiVersionsRequest::kprod(), 3);
    assert!(t.elapsed() < latency, "{:?}", t.elapsed());
    cluster.set_latency(1, Duration::ZERO);
    let t = Instant::now();
    let _: ApiVersionsResponse = c.call(&ApiVersionsRequest::kprod(), 3);
    assert!(t.elapsed() < latency, "{:?}", t.elapsed());
}

/// The mock's throttle is what a broker enforcing a quota sends, as librdkafka reads it: its
/// statistics show the throttle time the Produce responses carried.
#[test]
fn set_throttle_is_seen_by_librdkafka() {
    struct Stats(Arc<Mutex<i64>>);
    impl ClientContext for Stats {
        fn stats(&self, s: rdkafka::Statistics) {
            let max = s
                .brokers
                .values()
                .filter_map(|b| b.throttle.as_ref())
                .map(|w| w.max)
                .max()
                .unwrap_or(0);
            let mut m = self.0.lock().unwrap();
            *m = (*m).max(max);
        }
    }
    impl ProducerContext for Stats {
        type DeliveryOpaque = ();
        fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
            assert!(r.is_ok(), "librdkafka delivery failed");
        }
    }
    let cluster = MockCluster::builder().topic("t", 1).build().unwrap();
    cluster.set_throttle(1, Duration::from_millis(200));
    let seen = Arc::new(Mutex::new(0));
    let p: BaseProducer<Stats> = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .set("statistics.interval.ms", "100")
        .set("linger.ms", "0")
        .create_with_context(Stats(seen.clone()))
        .unwrap();
    for _ in 0..3 {
        p.send(BaseRecord::<'_, str, str>::to("t").payload("v"))
            .map_err(|(e, _)| e)
            .unwrap();
        p.flush(Duration::from_secs(10)).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while *seen.lock().unwrap() < 200 {
        assert!(
            Instant::now() < deadline,
            "librdkafka saw a throttle of at most {} ms",
            seen.lock().unwrap()
        );
        p.poll(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// broker_down / broker_up

#[test]
fn broker_down_refuses_connections_until_broker_up() {
    let cluster = MockCluster::builder()
        .brokers(2)
        .topic("t", 2)
        .build()
        .unwrap();
    let addr = cluster.broker_addr(2);
    let mut live = Raw::connect(addr);
    let _: ApiVersionsResponse = live.call(&ApiVersionsRequest::kprod(), 3);
    cluster.broker_down(2);
    assert!(!cluster.is_broker_up(2));
    live.expect_closed();
    let e = TcpStream::connect(addr).expect_err("refused while down");
    assert_eq!(e.kind(), ErrorKind::ConnectionRefused);
    // The rest of the cluster still works.
    let mut one = Raw::connect(cluster.broker_addr(1));
    assert_eq!(
        code(&one.produce(11, "t", 0, batch(-1, -1, -1, 1))),
        ErrorCode::NONE
    );
    cluster.broker_up(2);
    let mut back = Raw::connect(addr);
    let r: ApiVersionsResponse = back.call(&ApiVersionsRequest::kprod(), 3);
    assert_eq!(r.error_code, 0);
    assert_eq!(
        code(&back.produce(11, "t", 1, batch(-1, -1, -1, 1))),
        ErrorCode::NONE
    );
}

#[test]
fn broker_down_librdkafka_delivers_after_broker_up() {
    let cluster = MockCluster::builder()
        .brokers(2)
        .topic("t", 2)
        .build()
        .unwrap();
    let (p, reports) = producer(&cluster, &[]);
    send(&p, "t", 1, "first");
    p.flush(Duration::from_secs(20)).expect("flush");
    cluster.broker_down(2); // leads partition 1
    send(&p, "t", 1, "while down");
    // Nothing can be delivered to a partition whose only broker is down.
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(500) {
        p.poll(Duration::from_millis(50));
    }
    assert_eq!(reports.lock().unwrap().len(), 1);
    assert_eq!(values(&cluster, "t", 1), ["first"]);
    cluster.broker_up(2);
    p.flush(Duration::from_secs(20))
        .expect("delivered after broker_up");
    assert_eq!(values(&cluster, "t", 1), ["first", "while down"]);
    assert!(reports.lock().unwrap().iter().all(Result::is_ok));
}

// ---------------------------------------------------------------------------------------------
// set_partition_leader

#[test]
fn set_partition_leader_moves_leadership() {
    let cluster = MockCluster::builder()
        .brokers(2)
        .topic("t", 1)
        .build()
        .unwrap();
    assert_eq!(cluster.partition_leader("t", 0), Some(1));
    let mut b1 = Raw::connect(cluster.broker_addr(1));
    let mut b2 = Raw::connect(cluster.broker_addr(2));
    assert_eq!(
        code(&b2.produce(11, "t", 0, batch(-1, -1, -1, 1))),
        ErrorCode::NOT_LEADER_OR_FOLLOWER
    );
    assert_eq!(
        code(&b1.produce(11, "t", 0, batch(-1, -1, -1, 1))),
        ErrorCode::NONE
    );

    cluster.set_partition_leader("t", 0, 2);
    assert_eq!(cluster.partition_leader("t", 0), Some(2));
    let md: MetadataResponse = b1.call(&MetadataRequest::for_topics(["t"]), 12);
    let p = &md.topics[0].partitions[0];
    assert_eq!((p.leader_id, p.leader_epoch), (2, 1));
    // The old leader refuses and names the new one (Produce v10+, KIP-951).
    let old = b1.call(&produce_request("t", 0, batch(-1, -1, -1, 1)), 11);
    let pr = &old.responses[0].partition_responses[0];
    assert_eq!(code(pr), ErrorCode::NOT_LEADER_OR_FOLLOWER);
    assert_eq!(
        (pr.current_leader.leader_id, pr.current_leader.leader_epoch),
        (2, 1)
    );
    assert_eq!(
        old.node_endpoints[0].port,
        i32::from(cluster.broker_addr(2).port())
    );
    assert_eq!(
        code(&b2.produce(11, "t", 0, batch(-1, -1, -1, 1))),
        ErrorCode::NONE
    );
    assert_eq!(cluster.end_offset("t", 0), 2);
}

#[test]
fn set_partition_leaderless_reports_no_leader_until_one_is_named() {
    let cluster = MockCluster::builder()
        .brokers(2)
        .topic("t", 2)
        .build()
        .unwrap();
    let mut b1 = Raw::connect(cluster.broker_addr(1));
    cluster.set_partition_leaderless("t", 0);
    assert_eq!(cluster.partition_leader("t", 0), Some(-1));
    let md: MetadataResponse = b1.call(&MetadataRequest::for_topics(["t"]), 12);
    let p = &md.topics[0].partitions[0];
    assert_eq!(
        (ErrorCode(p.error_code), p.leader_id, p.leader_epoch),
        (ErrorCode::LEADER_NOT_AVAILABLE, -1, 1)
    );
    assert_eq!(
        ErrorCode(md.topics[0].partitions[1].error_code),
        ErrorCode::NONE
    );
    for b in [1, 2] {
        let mut raw = Raw::connect(cluster.broker_addr(b));
        assert_eq!(
            code(&raw.produce(11, "t", 0, batch(-1, -1, -1, 1))),
            ErrorCode::NOT_LEADER_OR_FOLLOWER
        );
    }
    cluster.set_partition_leader("t", 0, 2);
    let mut b2 = Raw::connect(cluster.broker_addr(2));
    assert_eq!(
        code(&b2.produce(11, "t", 0, batch(-1, -1, -1, 1))),
        ErrorCode::NONE
    );
}

#[test]
fn set_advertised_addr_changes_what_metadata_tells_clients() {
    let cluster = MockCluster::builder()
        .brokers(2)
        .topic("t", 2)
        .build()
        .unwrap();
    let proxy: SocketAddr = "127.0.0.1:9".parse().unwrap();
    cluster.set_advertised_addr(2, Some(proxy));
    let mut b1 = Raw::connect(cluster.broker_addr(1));
    let md: MetadataResponse = b1.call(&MetadataRequest::for_topics(["t"]), 12);
    let addr = |id: i32| {
        let b = md.brokers.iter().find(|b| b.node_id == id).unwrap();
        format!("{}:{}", b.host, b.port)
    };
    assert_eq!(addr(1), cluster.broker_addr(1).to_string());
    assert_eq!(addr(2), "127.0.0.1:9");
    // Bootstrap addresses stay the brokers' own.
    assert!(
        !cluster.bootstrap_servers().contains(":9,")
            && !cluster.bootstrap_servers().ends_with(":9")
    );
    cluster.set_advertised_addr(2, None);
    let md: MetadataResponse = b1.call(&MetadataRequest::for_topics(["t"]), 12);
    let b = md.brokers.iter().find(|b| b.node_id == 2).unwrap();
    assert_eq!(i32::from(cluster.broker_addr(2).port()), b.port);
}

#[test]
fn set_partition_leader_librdkafka_follows_the_new_leader() {
    let cluster = MockCluster::builder()
        .brokers(2)
        .topic("t", 1)
        .build()
        .unwrap();
    let (p, reports) = producer(&cluster, &[]);
    for i in 0..10 {
        send(&p, "t", 0, &format!("a{i}"));
    }
    p.flush(Duration::from_secs(20)).expect("flush");
    cluster.set_partition_leader("t", 0, 2);
    for i in 0..10 {
        send(&p, "t", 0, &format!("b{i}"));
    }
    p.flush(Duration::from_secs(20))
        .expect("flush to the new leader");
    let want: Vec<String> = (0..10)
        .map(|i| format!("a{i}"))
        .chain((0..10).map(|i| format!("b{i}")))
        .collect();
    assert_eq!(values(&cluster, "t", 0), want);
    assert!(reports.lock().unwrap().iter().all(Result::is_ok));
    let brokers: Vec<i32> = cluster
        .produce_requests()
        .iter()
        .map(|c| c.broker)
        .collect();
    assert_eq!(brokers.first(), Some(&1));
    assert_eq!(brokers.last(), Some(&2));
}

// ---------------------------------------------------------------------------------------------
// stall

#[test]
fn stall_holds_answers_until_released() {
    let cluster = MockCluster::builder().topic("t", 1).build().unwrap();
    let mut c = Raw::connect(cluster.broker_addr(1));
    cluster.stall(1, true);
    let cid = c.send(&produce_request("t", 0, batch(-1, -1, -1, 2)), 11);
    assert!(
        wait_for(Duration::from_secs(5), || cluster.request_count(PRODUCE)
            == 1),
        "read while stalled"
    );
    c.s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut b = [0u8; 1];
    let e = c.s.peek(&mut b).expect_err("no answer while stalled");
    assert!(
        matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{e}"
    );
    assert_eq!(cluster.end_offset("t", 0), 0, "not handled while stalled");
    cluster.stall(1, false);
    c.s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let resp = c.recv::<ProduceRequest>(11, cid);
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(cluster.end_offset("t", 0), 2);
}

// ---------------------------------------------------------------------------------------------
// sink

#[test]
fn sink_mode_advances_offsets_and_keeps_no_records() {
    let cluster = MockCluster::builder()
        .brokers(2)
        .topic("s", 4)
        .sink(true)
        .build()
        .unwrap();
    let (p, reports) = producer(&cluster, &[("compression.codec", "lz4")]);
    for i in 0..500 {
        send(&p, "s", i % 4, &format!("r{i}"));
    }
    p.flush(Duration::from_secs(20)).expect("flush");
    let reports = reports.lock().unwrap().clone();
    assert_eq!(reports.len(), 500);
    for p in 0..4 {
        assert_eq!(cluster.end_offset("s", p), 125);
        assert!(cluster.records("s", p).is_empty());
        let mut offsets: Vec<i64> = reports
            .iter()
            .filter_map(|r| r.ok())
            .filter(|r| r.0 == p)
            .map(|r| r.1)
            .collect();
        offsets.sort();
        assert_eq!(
            offsets,
            (0..125).collect::<Vec<_>>(),
            "acknowledged with correct offsets"
        );
    }
    assert!(cluster.produce_requests().is_empty());
}

/// Sink mode keeps no record but still reads every one: what a real broker would refuse, it
/// refuses, and nothing it refuses moves the log's end.
#[test]
fn sink_mode_checks_every_record_it_does_not_keep() {
    let cluster = MockCluster::builder()
        .topic("s", 1)
        .sink(true)
        .build()
        .unwrap();
    let mut c = Raw::connect(cluster.broker_addr(1));
    assert_eq!(
        code(&c.produce(11, "s", 0, batch(-1, -1, -1, 3))),
        ErrorCode::NONE
    );
    // A broken CRC.
    let mut bad = batch(-1, -1, -1, 2).to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert_eq!(
        code(&c.produce(11, "s", 0, Bytes::from(bad))),
        ErrorCode::CORRUPT_MESSAGE
    );
    // A record count above the records present, the CRC sealed over it: only reading the
    // records finds it.
    let mut over = batch(-1, -1, -1, 2).to_vec();
    over[57..61].copy_from_slice(&3i32.to_be_bytes());
    let crc = crc32c::crc32c(&over[21..]);
    over[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(
        code(&c.produce(11, "s", 0, Bytes::from(over))),
        ErrorCode::CORRUPT_MESSAGE
    );
    assert_eq!(cluster.errors().len(), 2, "{:?}", cluster.errors());
    assert_eq!(cluster.end_offset("s", 0), 3);
    assert!(cluster.records("s", 0).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Produce validation and idempotence

#[test]
fn idempotence_validation_answers_like_kafka() {
    let cluster = MockCluster::builder()
        .brokers(2)
        .topic("t", 2)
        .build()
        .unwrap();
    let mut c = Raw::connect(cluster.broker_addr(1));
    let init = c.call(&InitProducerIdRequest::default(), 4);
    let (pid, epoch) = (init.producer_id, init.producer_epoch);
    assert_eq!((init.error_code, epoch), (0, 0));

    let first = c.produce(11, "t", 0, batch(pid, 0, 0, 5));
    assert_eq!((code(&first), first.base_offset), (ErrorCode::NONE, 0));
    // A retry of a stored batch: success at its original offset, nothing stored again.
    let dup = c.produce(11, "t", 0, batch(pid, 0, 0, 5));
    assert_eq!((code(&dup), dup.base_offset), (ErrorCode::NONE, 0));
    assert_eq!(cluster.end_offset("t", 0), 5);
    // A gap.
    assert_eq!(
        code(&c.produce(11, "t", 0, batch(pid, 0, 10, 1))),
        ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    let next = c.produce(11, "t", 0, batch(pid, 0, 5, 3));
    assert_eq!((code(&next), next.base_offset), (ErrorCode::NONE, 5));
    // Retries of any of the last five batches are recognised.
    assert_eq!(c.produce(11, "t", 0, batch(pid, 0, 0, 5)).base_offset, 0);
    // A new partition (led by broker 2) must start at sequence 0.
    let mut b2 = Raw::connect(cluster.broker_addr(2));
    assert_eq!(
        code(&b2.produce(11, "t", 1, batch(pid, 0, 9, 1))),
        ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    // KIP-360: bump the epoch with the current id and epoch.
    let bumped = c.call(
        &InitProducerIdRequest {
            producer_id: pid,
            producer_epoch: 0,
            ..Default::default()
        },
        4,
    );
    assert_eq!(
        (bumped.error_code, bumped.producer_id, bumped.producer_epoch),
        (0, pid, 1)
    );
    assert_eq!(
        code(&c.produce(11, "t", 0, batch(pid, 0, 8, 1))),
        ErrorCode::INVALID_PRODUCER_EPOCH
    );
    assert_eq!(
        code(&c.produce(11, "t", 0, batch(pid, 1, 8, 1))),
        ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    assert_eq!(
        code(&c.produce(11, "t", 0, batch(pid, 1, 0, 2))),
        ErrorCode::NONE
    );
    // An id the cluster never handed out.
    assert_eq!(
        code(&c.produce(11, "t", 0, batch(pid + 100, 0, 0, 1))),
        ErrorCode::UNKNOWN_PRODUCER_ID
    );
    // Not the leader, unknown topic, unknown partition.
    assert_eq!(
        code(&b2.produce(11, "t", 0, batch(-1, -1, -1, 1))),
        ErrorCode::NOT_LEADER_OR_FOLLOWER
    );
    assert_eq!(
        code(&c.produce(11, "nope", 0, batch(-1, -1, -1, 1))),
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        code(&c.produce(11, "t", 7, batch(-1, -1, -1, 1))),
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
    );
    assert!(cluster.errors().is_empty(), "{:?}", cluster.errors());
    // A broken CRC.
    let mut bad = batch(-1, -1, -1, 2).to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert_eq!(
        code(&c.produce(11, "t", 0, Bytes::from(bad))),
        ErrorCode::CORRUPT_MESSAGE
    );
    assert!(
        cluster.errors()[0].starts_with("CORRUPT_MESSAGE"),
        "{:?}",
        cluster.errors()
    );
    // What was stored: 5 + 3 + 2 records with their sequences.
    let seqs: Vec<(i64, i32)> = cluster
        .records("t", 0)
        .iter()
        .map(|r| (r.producer_id, r.sequence))
        .collect();
    let want: Vec<(i64, i32)> = (0..8)
        .map(|s| (pid, s))
        .chain((0..2).map(|s| (pid, s)))
        .collect();
    assert_eq!(seqs, want);
    let dups = cluster
        .produce_requests()
        .iter()
        .filter(|c| c.duplicate)
        .count();
    assert_eq!(dups, 2);
}

#[test]
fn duplicate_as_error_answers_duplicate_sequence_number() {
    let cluster = MockCluster::builder()
        .topic("t", 1)
        .duplicate_as_error(true)
        .build()
        .unwrap();
    let mut c = Raw::connect(cluster.broker_addr(1));
    let init = c.call(&InitProducerIdRequest::default(), 1);
    let pid = init.producer_id;
    assert_eq!(
        code(&c.produce(8, "t", 0, batch(pid, 0, 0, 3))),
        ErrorCode::NONE
    );
    assert_eq!(
        code(&c.produce(8, "t", 0, batch(pid, 0, 0, 3))),
        ErrorCode::DUPLICATE_SEQUENCE_NUMBER
    );
    assert_eq!(cluster.end_offset("t", 0), 3);
}

#[test]
fn acks_zero_gets_no_response_but_is_stored() {
    let cluster = MockCluster::builder().topic("t", 1).build().unwrap();
    let mut c = Raw::connect(cluster.broker_addr(1));
    let mut req = produce_request("t", 0, batch(-1, -1, -1, 4));
    req.acks = 0;
    c.send(&req, 9);
    // The next response is the Metadata one: the Produce got none.
    let cid = c.send(&MetadataRequest::default(), 9);
    let _ = c.recv::<MetadataRequest>(9, cid);
    assert_eq!(cluster.end_offset("t", 0), 4);
}

// ---------------------------------------------------------------------------------------------
// CreateTopics, auto-creation, Metadata

#[test]
fn create_topics_creates_validates_and_refuses() {
    let cluster = MockCluster::builder()
        .brokers(3)
        .auto_create_topics(false, 1)
        .build()
        .unwrap();
    let mut c = Raw::connect(cluster.broker_addr(2));
    let req = CreateTopicsRequest {
        topics: vec![
            CreatableTopic::new("orders", 4),
            CreatableTopic {
                name: "placed".into(),
                assignments: vec![
                    CreatableReplicaAssignment {
                        partition_index: 0,
                        broker_ids: vec![3],
                    },
                    CreatableReplicaAssignment {
                        partition_index: 1,
                        broker_ids: vec![1, 2],
                    },
                ],
                ..Default::default()
            },
            CreatableTopic::new("bad name!", 1),
            CreatableTopic {
                replication_factor: 5,
                ..CreatableTopic::new("too-many-replicas", 1)
            },
            CreatableTopic::new("zero", 0),
        ],
        ..Default::default()
    };
    let resp = c.call(&req, 7);
    let codes: Vec<_> = resp
        .topics
        .iter()
        .map(|t| ErrorCode::from(t.error_code))
        .collect();
    assert_eq!(
        codes,
        [
            ErrorCode::NONE,
            ErrorCode::NONE,
            ErrorCode::INVALID_TOPIC_EXCEPTION,
            ErrorCode::INVALID_REPLICATION_FACTOR,
            ErrorCode::INVALID_PARTITIONS,
        ]
    );
    assert_eq!(resp.topics[0].num_partitions, 4);
    assert_ne!(resp.topics[0].topic_id, Uuid::ZERO);
    assert_eq!(cluster.partition_count("orders"), Some(4));
    assert_eq!(cluster.partition_leader("orders", 3), Some(1));
    assert_eq!(cluster.partition_leader("placed", 0), Some(3));
    assert_eq!(cluster.partition_leader("placed", 1), Some(1));
    assert_eq!(cluster.partition_count("zero"), None);

    // Again: already exists (classic v2 encoding this time).
    let again = c.call(
        &CreateTopicsRequest {
            topics: vec![CreatableTopic::new("orders", 4)],
            ..Default::default()
        },
        2,
    );
    assert_eq!(
        ErrorCode::from(again.topics[0].error_code),
        ErrorCode::TOPIC_ALREADY_EXISTS
    );
    // validate_only creates nothing; -1 partitions means the default.
    let dry = c.call(
        &CreateTopicsRequest {
            topics: vec![CreatableTopic::new("dry", -1)],
            validate_only: true,
            ..Default::default()
        },
        5,
    );
    assert_eq!(
        (dry.topics[0].error_code, dry.topics[0].num_partitions),
        (0, 1)
    );
    assert_eq!(cluster.partition_count("dry"), None);
    // The API-side helper is idempotent.
    cluster.create_topic("orders", 9);
    assert_eq!(cluster.partition_count("orders"), Some(4));
    cluster.create_topic("fresh", 2);
    let md: MetadataResponse = c.call(
        &MetadataRequest {
            topics: None,
            ..Default::default()
        },
        12,
    );
    let names: Vec<_> = md.topics.iter().map(|t| t.name.clone().unwrap()).collect();
    assert_eq!(names, ["fresh", "orders", "placed"]);
    assert_eq!(
        cluster.api_versions_used(ApiKey::CREATE_TOPICS.0),
        [2, 5, 7]
    );
}

#[test]
fn auto_create_topics_on_metadata_when_allowed() {
    let cluster = MockCluster::builder()
        .brokers(2)
        .auto_create_topics(true, 3)
        .build()
        .unwrap();
    let mut c = Raw::connect(cluster.broker_addr(1));
    let mut req = MetadataRequest::for_topics(["not-yet"]);
    req.allow_auto_topic_creation = false;
    let md: MetadataResponse = c.call(&req, 12);
    assert_eq!(
        ErrorCode::from(md.topics[0].error_code),
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(cluster.partition_count("not-yet"), None);
    req.allow_auto_topic_creation = true;
    let md: MetadataResponse = c.call(&req, 12);
    assert_eq!(md.topics[0].error_code, 0);
    assert_eq!(md.topics[0].partitions.len(), 3);
    assert_eq!(cluster.partition_count("not-yet"), Some(3));
    // Metadata v1-v3 always allow it.
    let md: MetadataResponse = c.call(
        &MetadataRequest {
            allow_auto_topic_creation: false,
            ..MetadataRequest::for_topics(["old-style"])
        },
        3,
    );
    assert_eq!(md.topics[0].partitions.len(), 3);

    // librdkafka producing to an unknown topic creates it.
    let (p, reports) = producer(&cluster, &[]);
    send(&p, "by-librdkafka", 2, "x");
    p.flush(Duration::from_secs(20)).expect("flush");
    assert_eq!(*reports.lock().unwrap(), [Ok((2, 0))]);
    assert_eq!(values(&cluster, "by-librdkafka", 2), ["x"]);

    // Off: unknown stays unknown.
    let off = MockCluster::builder()
        .auto_create_topics(false, 1)
        .build()
        .unwrap();
    let mut c = Raw::connect(off.broker_addr(1));
    let md: MetadataResponse = c.call(&MetadataRequest::for_topics(["x"]), 12);
    assert_eq!(
        ErrorCode::from(md.topics[0].error_code),
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(off.partition_count("x"), None);
}

// ---------------------------------------------------------------------------------------------
// Fetch and ListOffsets

#[test]
fn fetch_waits_for_data_and_list_offsets_by_timestamp() {
    let cluster = MockCluster::builder().topic("t", 1).build().unwrap();
    let mut consumer = Raw::connect(cluster.broker_addr(1));
    let fetch = FetchRequest {
        max_wait_ms: 5000,
        min_bytes: 1,
        topics: vec![FetchTopic {
            topic: "t".into(),
            partitions: vec![FetchPartition {
                partition: 0,
                fetch_offset: 0,
                partition_max_bytes: 1 << 20,
                ..Default::default()
            }],
        }],
        ..Default::default()
    };
    let t = Instant::now();
    let cid = consumer.send(&fetch, 12);
    let mut producer = Raw::connect(cluster.broker_addr(1));
    assert_eq!(
        code(&producer.produce(9, "t", 0, batch(-1, -1, -1, 3))),
        ErrorCode::NONE
    );
    let resp = consumer.recv::<FetchRequest>(12, cid);
    assert!(
        t.elapsed() < Duration::from_millis(4000),
        "answered when data arrived"
    );
    let p = &resp.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark), (0, 3));
    let batches = decode_record_batches(p.records.as_ref().unwrap(), 1 << 20).unwrap();
    assert_eq!(batches[0].records.len(), 3);
    // An empty fetch waits max_wait_ms and then answers empty.
    let mut empty = fetch.clone();
    empty.max_wait_ms = 200;
    empty.topics[0].partitions[0].fetch_offset = 3;
    let t = Instant::now();
    let resp = consumer.call(&empty, 11);
    assert!(t.elapsed() >= Duration::from_millis(200));
    assert_eq!(
        resp.responses[0].partitions[0]
            .records
            .as_ref()
            .map(Bytes::len),
        Some(0)
    );
    // Beyond the end.
    empty.topics[0].partitions[0].fetch_offset = 4;
    let resp = consumer.call(&empty, 12);
    assert_eq!(
        ErrorCode::from(resp.responses[0].partitions[0].error_code),
        ErrorCode::OFFSET_OUT_OF_RANGE
    );

    // ListOffsets: earliest, latest, by timestamp (records have timestamps 1000..1002).
    let lo = |ts: i64| ListOffsetsRequest {
        topics: vec![ListOffsetsTopic {
            name: "t".into(),
            partitions: vec![ListOffsetsPartition {
                partition_index: 0,
                timestamp: ts,
                ..Default::default()
            }],
        }],
        ..Default::default()
    };
    for (ts, want) in [(-2, 0), (-1, 3), (1001, 1), (999, 0), (5000, -1), (-3, 2)] {
        let r = consumer.call(&lo(ts), 7);
        assert_eq!(r.topics[0].partitions[0].offset, want, "timestamp {ts}");
    }
}

// ---------------------------------------------------------------------------------------------
// Versions, statistics, hostile input, shutdown

#[test]
fn versions_and_counts_are_recorded_and_out_of_range_versions_are_refused() {
    let cluster = MockCluster::builder().build().unwrap();
    let mut c = Raw::connect(cluster.broker_addr(1));
    for v in [3, 0, 2] {
        let r: ApiVersionsResponse = c.call(&ApiVersionsRequest::kprod(), v);
        assert_eq!(r.error_code, 0);
        assert!(r
            .api_keys
            .iter()
            .any(|k| k.api_key == 19 && k.max_version == 7));
    }
    for v in [1, 12, 4] {
        let _: MetadataResponse = c.call(&MetadataRequest::default(), v);
    }
    assert_eq!(cluster.api_versions_used(API_VERSIONS), [0, 2, 3]);
    assert_eq!(cluster.api_versions_used(METADATA), [1, 4, 12]);
    assert_eq!(cluster.request_count(METADATA), 3);
    assert_eq!(cluster.request_count(PRODUCE), 0);
    assert!(cluster.api_versions_used(PRODUCE).is_empty());
    assert!(cluster.errors().is_empty());

    // A legacy cluster offers no flexible versions and refuses them.
    let legacy = MockCluster::builder()
        .legacy(true)
        .topic("t", 1)
        .build()
        .unwrap();
    let mut c = Raw::connect(legacy.broker_addr(1));
    // ApiVersions v3 gets UNSUPPORTED_VERSION in a v0 body.
    let cid = c.send(&ApiVersionsRequest::kprod(), 3);
    let frame = c.read_frame().unwrap();
    let (got, r) = decode_response::<ApiVersionsRequest>(&frame, 0).unwrap();
    assert_eq!(
        (got, ErrorCode::from(r.error_code)),
        (cid, ErrorCode::UNSUPPORTED_VERSION)
    );
    let produce = r.api_keys.iter().find(|k| k.api_key == 0).unwrap();
    assert_eq!((produce.min_version, produce.max_version), (3, 8));
    assert_eq!(
        code(&c.produce(8, "t", 0, batch(-1, -1, -1, 1))),
        ErrorCode::NONE
    );
    c.send(&produce_request("t", 0, batch(-1, -1, -1, 1)), 9);
    c.expect_closed();
    assert!(
        legacy.errors()[0].contains("outside the advertised range"),
        "{:?}",
        legacy.errors()
    );
}

#[test]
fn hostile_input_closes_the_connection_and_is_recorded() {
    let cluster = MockCluster::builder().topic("t", 1).build().unwrap();
    // A frame too short for a header.
    let mut c = Raw::connect(cluster.broker_addr(1));
    c.s.write_all(&[0, 0, 0, 3, 1, 2, 3]).unwrap();
    c.expect_closed();
    // A negative length.
    let mut c = Raw::connect(cluster.broker_addr(1));
    c.s.write_all(&[0xff, 0xff, 0xff, 0xf0]).unwrap();
    c.expect_closed();
    // A body that does not decode (Produce v9 cut short).
    let mut out = Vec::new();
    encode_request(
        &produce_request("t", 0, batch(-1, -1, -1, 1)),
        9,
        1,
        None,
        &mut out,
    )
    .unwrap();
    let keep = out.len() - 20;
    out.truncate(keep);
    out[0..4].copy_from_slice(&((keep - 4) as i32).to_be_bytes());
    let mut c = Raw::connect(cluster.broker_addr(1));
    c.s.write_all(&out).unwrap();
    c.expect_closed();
    // An API the mock does not serve (OffsetCommit).
    let mut c = Raw::connect(cluster.broker_addr(1));
    c.s.write_all(&[0, 0, 0, 10, 0, 8, 0, 2, 0, 0, 0, 1, 0xff, 0xff])
        .unwrap();
    c.expect_closed();
    assert!(
        wait_for(Duration::from_secs(5), || cluster.errors().len() == 4),
        "{:?}",
        cluster.errors()
    );
    // Still serving.
    let mut c = Raw::connect(cluster.broker_addr(1));
    assert_eq!(
        code(&c.produce(11, "t", 0, batch(-1, -1, -1, 1))),
        ErrorCode::NONE
    );
}

/// Names of this process's threads that belong to the broker listening on `port`.
#[cfg(target_os = "linux")]
fn threads_of(port: u16) -> Vec<String> {
    let mut names = Vec::new();
    for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        if let Ok(n) = std::fs::read_to_string(t.path().join("comm")) {
            let n = n.trim().to_string();
            if n == format!("km{port}") || n.starts_with(&format!("km{port}c")) {
                names.push(n);
            }
        }
    }
    names
}

#[test]
fn drop_joins_every_thread_and_closes_every_socket() {
    let cluster = MockCluster::builder()
        .brokers(2)
        .topic("t", 1)
        .build()
        .unwrap();
    let addrs = [cluster.broker_addr(1), cluster.broker_addr(2)];
    let mut idle = Raw::connect(addrs[0]);
    let _: ApiVersionsResponse = idle.call(&ApiVersionsRequest::kprod(), 3);
    let mut stalled = Raw::connect(addrs[1]);
    cluster.stall(2, true);
    stalled.send(&ApiVersionsRequest::kprod(), 3);
    let mut slow = Raw::connect(addrs[0]);
    cluster.set_latency(1, Duration::from_secs(60));
    slow.send(&ApiVersionsRequest::kprod(), 3);
    #[cfg(target_os = "linux")]
    assert!(wait_for(Duration::from_secs(5), || threads_of(
        addrs[0].port()
    )
    .len()
        == 3));
    let t = Instant::now();
    drop(cluster);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    idle.expect_closed();
    stalled.expect_closed();
    slow.expect_closed();
    for a in addrs {
        assert_eq!(
            TcpStream::connect(a).unwrap_err().kind(),
            ErrorKind::ConnectionRefused
        );
        // Joined, but a joined thread's `/proc` entry goes a moment after `join` returns
        // (the kernel reaps it after waking the joiner): wait for that, with a deadline.
        #[cfg(target_os = "linux")]
        assert!(
            wait_for(Duration::from_secs(2), || threads_of(a.port()).is_empty()),
            "{:?}",
            threads_of(a.port())
        );
    }
}
