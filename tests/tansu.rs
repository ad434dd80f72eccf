//! Against a real broker: tansu 0.6 (a Kafka-compatible broker, memory storage, loopback).
//! kprod's client side — ApiVersions, version negotiation, Metadata and Produce at every
//! version both sides support, InitProducerId, idempotent batches under every codec — talks to
//! tansu over a plain socket; tansu's answers are decoded by kprod; and librdkafka's consumer
//! reads back from tansu exactly what kprod wrote.
//!
//! And the producer end to end: every API and codec read back by librdkafka, and its
//! delivery guarantees through a fault proxy that cuts connections.
//!
//! Needs the `tansu` binary (`scripts/test.sh` installs it and runs this with
//! `--features tansu-tests`; set `TANSU` to use another path).
#![cfg(feature = "tansu-tests")]

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kprod::protocol::compression::{Compression, CompressionConfig, Compressor};
use kprod::protocol::messages::api_versions::ApiVersionsRequest;
use kprod::protocol::messages::init_producer_id::InitProducerIdRequest;
use kprod::protocol::messages::metadata::MetadataRequest;
use kprod::protocol::messages::produce::{PartitionProduceData, ProduceRequest, TopicProduceData};
use kprod::protocol::messages::Request;
use kprod::protocol::negotiation::decode_api_versions_response;
use kprod::protocol::record_batch::{BatchHeader, Header, RecordBatchBuilder};
use kprod::protocol::{
    decode_response, encode_request, ApiKey, BrokerVersions, ErrorCode, FrameSplitter,
};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// A record as read back: partition, offset, key, value, headers, timestamp.
type ReadBack = (
    i32,
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(String, Option<Vec<u8>>)>,
    i64,
);

fn tansu_bin() -> String {
    std::env::var("TANSU").unwrap_or_else(|_| "tansu".into())
}

/// A tansu broker on a free loopback port, killed (and reaped) on drop.
struct Tansu {
    child: Child,
    port: u16,
}

impl Tansu {
    fn start() -> Tansu {
        Tansu::start_on(None, None)
    }

    /// A free loopback port.
    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// Listening on `port` (or a free one), telling clients to connect to `advertised`
    /// (a proxy in front of it) if given.
    fn start_on(port: Option<u16>, advertised: Option<std::net::SocketAddr>) -> Tansu {
        let port = port.unwrap_or_else(Tansu::free_port);
        let url = format!("tcp://127.0.0.1:{port}");
        let advertised = advertised.map_or_else(|| url.clone(), |a| format!("tcp://{a}"));
        let child = Command::new(tansu_bin())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &advertised,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `{}` ({e}); scripts/test.sh installs it",
                    tansu_bin()
                )
            });
        let t = Tansu { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        t
    }

    fn create_topic(&self, name: &str, partitions: u32) {
        let status = Command::new(tansu_bin())
            .args([
                "topic",
                "create",
                name,
                "--partitions",
                &partitions.to_string(),
            ])
            .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "tansu topic create {name}");
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking, one-request-at-a-time connection speaking kprod's protocol core.
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    splitter: FrameSplitter,
    correlation: i32,
}

impl Conn {
    fn open(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: BytesMut::new(),
            splitter: FrameSplitter::default(),
            correlation: 0,
        }
    }

    fn round_trip(&mut self, wire: &[u8]) -> BytesMut {
        self.stream.write_all(wire).unwrap();
        let mut chunk = [0u8; 65536];
        loop {
            if let Some(frame) = self.splitter.next_frame(&mut self.buf).unwrap() {
                return frame;
            }
            let n = self.stream.read(&mut chunk).unwrap();
            assert!(n > 0, "tansu closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn call<R: Request>(&mut self, req: &R, version: i16) -> R::Response {
        self.correlation += 1;
        let mut wire = Vec::new();
        encode_request(
            req,
            version,
            self.correlation,
            Some("kprod-test"),
            &mut wire,
        )
        .unwrap();
        let frame = self.round_trip(&wire);
        let (cid, resp) = decode_response::<R>(&frame, version)
            .unwrap_or_else(|e| panic!("{} v{version} response: {e}", R::API_KEY.name()));
        assert_eq!(cid, self.correlation);
        resp
    }

    fn api_versions(&mut self) -> BrokerVersions {
        self.correlation += 1;
        let mut wire = Vec::new();
        encode_request(
            &ApiVersionsRequest::kprod(),
            3,
            self.correlation,
            Some("kprod-test"),
            &mut wire,
        )
        .unwrap();
        let frame = self.round_trip(&wire);
        let (cid, resp, read_at) = decode_api_versions_response(&frame, 3).unwrap();
        assert_eq!((cid, resp.error_code, read_at), (self.correlation, 0, 3));
        BrokerVersions::from_response(&resp)
    }
}

#[test]
fn kprod_protocol_core_against_tansu_read_back_by_librdkafka() {
    const TOPIC: &str = "kprod-tansu";
    let tansu = Tansu::start();
    tansu.create_topic(TOPIC, 3);
    let mut conn = Conn::open(tansu.port);

    let versions = conn.api_versions();
    let metadata_max = versions
        .negotiate(ApiKey::METADATA, MetadataRequest::versions())
        .unwrap();
    let produce_max = versions
        .negotiate(ApiKey::PRODUCE, ProduceRequest::versions())
        .unwrap();
    let pid_max = versions
        .negotiate(ApiKey::INIT_PRODUCER_ID, InitProducerIdRequest::versions())
        .unwrap();
    eprintln!("tansu: Metadata v{metadata_max}, Produce v{produce_max}, InitProducerId v{pid_max}");
    let produce_lo_seen =
        (*versions.range(ApiKey::PRODUCE).unwrap().start()).max(ProduceRequest::MIN_VERSION);
    eprintln!("tansu: Produce sweep v{produce_lo_seen}..=v{produce_max}");

    // Metadata at every version both sides support.
    let lo = (*versions.range(ApiKey::METADATA).unwrap().start()).max(MetadataRequest::MIN_VERSION);
    for v in lo..=metadata_max {
        let md = conn.call(&MetadataRequest::for_topics([TOPIC]), v);
        let t = md
            .topics
            .iter()
            .find(|t| t.name.as_deref() == Some(TOPIC))
            .unwrap_or_else(|| panic!("v{v}: {md:?}"));
        assert_eq!(t.error_code, 0, "Metadata v{v}");
        assert_eq!(t.partitions.len(), 3, "Metadata v{v}");
        assert!(
            md.brokers.iter().any(|b| b.port == i32::from(tansu.port)),
            "Metadata v{v}"
        );
    }

    let pid = conn.call(&InitProducerIdRequest::default(), pid_max);
    assert_eq!(ErrorCode::from(pid.error_code), ErrorCode::NONE, "{pid:?}");
    assert!(pid.producer_id >= 0);

    // Idempotent batches: every codec, and every Produce version, spread over the partitions.
    let produce_lo =
        (*versions.range(ApiKey::PRODUCE).unwrap().start()).max(ProduceRequest::MIN_VERSION);
    // Every Produce version both sides support, cycling through the codecs (zstd lands on
    // v7, the first version that allows it), then every codec at the highest version.
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    let mut plan: Vec<(Compression, i16)> = (produce_lo..=produce_max)
        .map(|v| (codecs[(v - produce_lo) as usize % 5], v))
        .collect();
    plan.extend(codecs.iter().map(|&c| (c, produce_max)));
    let versions_used: std::collections::BTreeSet<i16> = plan.iter().map(|p| p.1).collect();
    assert_eq!(versions_used.len(), (produce_max - produce_lo + 1) as usize);
    let mut sequences = [0i32; 3];
    let mut offsets = [0i64; 3];
    let mut want: Vec<ReadBack> = Vec::new();
    for (n, (codec, version)) in plan.into_iter().enumerate() {
        let partition = (n % 3) as i32;
        let mut builder = RecordBatchBuilder::new();
        let count = 20 + n;
        for i in 0..count {
            let key = (i % 4 != 0).then(|| format!("k{n}-{i}").into_bytes());
            let value = (i % 5 != 0).then(|| {
                format!("{codec:?} via Produce v{version}: {}", "data ".repeat(i)).into_bytes()
            });
            let headers = if i % 2 == 0 {
                vec![
                    Header::new("n", n.to_string()),
                    Header::new("n", i.to_string()),
                ]
            } else {
                vec![]
            };
            let ts = 1_700_000_000_000 + (n * 1000 + i) as i64;
            builder.append(ts, key.as_deref(), value.as_deref(), &headers);
            want.push((
                partition,
                offsets[partition as usize] + i as i64,
                key,
                value,
                headers
                    .iter()
                    .map(|h| (h.key.clone(), h.value.as_ref().map(|v| v.to_vec())))
                    .collect(),
                ts,
            ));
        }
        let header = BatchHeader {
            producer_id: pid.producer_id,
            producer_epoch: pid.producer_epoch,
            base_sequence: sequences[partition as usize],
            ..Default::default()
        };
        let mut batch = Vec::new();
        builder
            .finish(
                &header,
                &mut Compressor::new(CompressionConfig::new(codec, None).unwrap()),
                &mut batch,
            )
            .unwrap();
        let req = ProduceRequest {
            transactional_id: None,
            acks: -1,
            timeout_ms: 10_000,
            topic_data: vec![TopicProduceData {
                name: TOPIC.into(),
                partition_data: vec![PartitionProduceData {
                    index: partition,
                    records: Some(Bytes::from(batch)),
                }],
            }],
        };
        let resp = conn.call(&req, version);
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(
            ErrorCode::from(p.error_code),
            ErrorCode::NONE,
            "{codec:?} Produce v{version}: {p:?}"
        );
        assert_eq!(
            p.base_offset, offsets[partition as usize],
            "{codec:?} Produce v{version}"
        );
        sequences[partition as usize] += count as i32;
        offsets[partition as usize] += count as i64;
    }

    // librdkafka's consumer reads it all back from tansu.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{}", tansu.port))
        .set("group.id", "kprod-tansu-readback")
        .set("enable.auto.commit", "false")
        .set("check.crcs", "true")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset(TOPIC, p, Offset::Offset(0))
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < want.len() && Instant::now() < deadline {
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.expect("consumer error");
        got.push((
            m.partition(),
            m.offset(),
            m.key().map(<[u8]>::to_vec),
            m.payload().map(<[u8]>::to_vec),
            m.headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
            m.timestamp().to_millis().unwrap_or(-1),
        ));
    }
    got.sort_by_key(|r| (r.0, r.1));
    want.sort_by_key(|r| (r.0, r.1));
    assert_eq!(got.len(), want.len(), "records read back from tansu");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w);
    }
    eprintln!(
        "librdkafka read back {} records kprod wrote to tansu",
        got.len()
    );
}

/// The producer itself against tansu: every API under every codec, idempotent, and what
/// librdkafka's consumer reads back from tansu equals what each completion reported — keys,
/// values, nulls, headers, timestamps, and the murmur2 partition of each key.
#[test]
fn producer_against_tansu_read_back_by_librdkafka() {
    use kprod::partitioner::murmur2_partition;
    use kprod::{Producer, ProducerRecord, RecordMetadata};
    use std::sync::{Arc, Mutex};

    let tansu = Tansu::start();
    let bootstrap = format!("127.0.0.1:{}", tansu.port);
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let topic = format!("producer-{}", codec.name());
        tansu.create_topic(&topic, 3);
        let p = Producer::builder()
            .bootstrap_servers(&bootstrap)
            .compression(codec)
            .linger(Duration::from_millis(2))
            .build()
            .unwrap();
        assert!(p.config().idempotence);
        type Sent = (RecordMetadata, ProducerRecord);
        let sent: Arc<Mutex<Vec<Sent>>> = Arc::default();
        let rec = |i: usize| {
            let mut r = ProducerRecord::new(topic.clone())
                .timestamp(1_700_000_000_000 + i as i64)
                .header("i", i.to_string())
                .header("i", "again");
            if i % 3 != 0 {
                r = r.key(format!("key-{i}"));
            }
            if i % 7 != 0 {
                r = r.value(format!("{} value {i}", codec.name()));
            }
            if i % 11 == 0 {
                r = r.header("null", None::<Vec<u8>>);
            }
            r
        };
        let mut n = 0;
        let mut next = || {
            n += 1;
            rec(n)
        };
        // Blocking produce.
        for _ in 0..20 {
            let r = next();
            let md = p.produce_record(r.clone()).unwrap();
            sent.lock().unwrap().push((md, r));
        }
        // Handles.
        let handles: Vec<_> = (0..50)
            .map(|_| {
                let r = next();
                (p.produce_async(r.clone()).unwrap(), r)
            })
            .collect();
        // Callbacks.
        for _ in 0..50 {
            let r = next();
            let s = sent.clone();
            let keep = r.clone();
            p.send_with(r, move |res| s.lock().unwrap().push((res.unwrap(), keep)))
                .unwrap();
        }
        // A batch.
        let batch: Vec<_> = (0..30).map(|_| next()).collect();
        let results = p.produce_all(batch.clone());
        assert!(results.all_ok());
        for (md, r) in results.into_results().into_iter().zip(batch) {
            sent.lock().unwrap().push((md.unwrap(), r));
        }
        // Fire-and-forget, then flush: counted through the read-back total.
        for _ in 0..50 {
            p.send_record(next()).unwrap();
        }
        p.flush(Duration::from_secs(30)).unwrap();
        for (h, r) in handles {
            sent.lock().unwrap().push((h.wait().unwrap(), r));
        }
        p.close(Duration::from_secs(30)).unwrap();

        let got = support::readback::read_back(&bootstrap, &topic, 3, 200, Duration::from_secs(60));
        assert_eq!(got.len(), 200, "{codec:?}: every record read back once");
        let sent = sent.lock().unwrap();
        assert_eq!(sent.len(), 150);
        for (md, r) in sent.iter() {
            let g = got
                .iter()
                .find(|g| g.partition == md.partition && g.offset == md.offset)
                .unwrap_or_else(|| panic!("{codec:?}: {md:?} not read back"));
            assert_eq!(g.key.as_deref(), r.key.as_deref(), "{codec:?} {md:?}");
            assert_eq!(g.value.as_deref(), r.value.as_deref(), "{codec:?} {md:?}");
            let headers: Vec<_> = r
                .headers
                .iter()
                .map(|h| (h.key.clone(), h.value.as_ref().map(|v| v.to_vec())))
                .collect();
            assert_eq!(g.headers, headers, "{codec:?} {md:?}");
            assert_eq!(Some(g.timestamp), r.timestamp, "{codec:?} {md:?}");
            if let Some(k) = &r.key {
                assert_eq!(
                    md.partition as u32,
                    murmur2_partition(k, 3),
                    "{codec:?}: key {k:?}"
                );
            }
        }
    }
}

/// Delivery guarantees against a real broker (issue #4): 100,000 records, idempotent, through a
/// fault proxy that cuts connections mid-request and mid-response; librdkafka's consumer reads
/// back each record reported delivered exactly once, at its offset, in send order.
#[test]
fn producer_through_cut_connections_to_tansu() {
    use support::fault_proxy::{Chaos, FaultProxy};
    use support::scenario::{send_all, verify};
    let port = Tansu::free_port();
    let proxy = FaultProxy::start(([127, 0, 0, 1], port).into(), 7);
    let tansu = Tansu::start_on(Some(port), Some(proxy.addr()));
    tansu.create_topic("cuts", 3);
    let p = kprod::Producer::builder()
        .bootstrap_servers(&proxy.addr().to_string())
        .linger(Duration::from_millis(5))
        .batch_size(16 << 10)
        .request_timeout(Duration::from_secs(5))
        .retry_backoff(Duration::from_millis(20))
        .retry_backoff_max(Duration::from_millis(200))
        .build()
        .unwrap();
    proxy.set_chaos(Some(Chaos {
        up: (16 << 10, 256 << 10),
        down: (2 << 10, 16 << 10),
    }));
    let n = 100_000;
    let sent = send_all(&p, "cuts", n, Duration::from_secs(300), |_| {});
    let m = p.metrics();
    p.close(Duration::from_secs(30)).unwrap();
    proxy.set_chaos(None);
    let cuts = proxy.cuts();
    let outcomes = sent.outcomes();
    let dup_acks = outcomes
        .iter()
        .filter(|o| matches!(o, Some(Ok((_, -1)))))
        .count();
    eprintln!(
        "acknowledged as duplicates (offset unknown): {dup_acks}; epoch bumps {}, rewinds {}",
        m.epoch_bumps, m.sequence_rewinds
    );
    let r = verify(&sent.outcomes(), &proxy.addr().to_string(), "cuts", 3);
    eprintln!("{r:?}; cuts {cuts}, retries {}", m.retries);
    assert!(cuts >= 5, "only {cuts} cuts");
    assert_eq!(r.acked, n, "every record delivered: {:?}", r.errors);
}

/// `Producer::create_topics` against tansu: the topic is made with its partition count (the
/// producer then sends to its last partition, which exists), and a second attempt is answered
/// TOPIC_ALREADY_EXISTS. librdkafka's consumer reads the record back from that partition.
#[test]
fn create_topics_against_tansu() {
    use kprod::admin::NewTopic;
    use kprod::{Producer, ProducerRecord};

    let tansu = Tansu::start();
    let bootstrap = format!("127.0.0.1:{}", tansu.port);
    let p = Producer::builder()
        .bootstrap_servers(&bootstrap)
        .build()
        .unwrap();
    let made = p
        .create_topics(
            &[
                NewTopic::new("made-by-kprod", 5),
                NewTopic::new("bad/name", 1),
            ],
            Duration::from_secs(20),
        )
        .unwrap();
    assert!(made[0].is_ok(), "{:?}", made[0]);
    assert!(
        matches!(made[1], Err(kprod::Error::InvalidTopic { .. })),
        "{:?}",
        made[1]
    );
    let again = p
        .create_topics(
            &[NewTopic::new("made-by-kprod", 5)],
            Duration::from_secs(20),
        )
        .unwrap();
    assert_eq!(
        again[0].as_ref().unwrap_err().kafka_code(),
        Some(ErrorCode::TOPIC_ALREADY_EXISTS),
        "{again:?}"
    );
    let m = p
        .produce_record(
            ProducerRecord::new("made-by-kprod")
                .partition(4)
                .value("in the last partition"),
        )
        .unwrap();
    assert_eq!((m.partition, m.offset), (4, 0));
    p.close(Duration::from_secs(5)).unwrap();
    let got =
        support::readback::read_back(&bootstrap, "made-by-kprod", 5, 1, Duration::from_secs(30));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].partition, 4);
    assert_eq!(got[0].value.as_deref(), Some(&b"in the last partition"[..]));
}
