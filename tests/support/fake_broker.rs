//! A loopback broker that answers ApiVersions, Metadata, InitProducerId and Produce with
//! kprod's encoders and keeps every Produce request's decoded batches.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kprod::protocol::messages::api_versions::{
    ApiVersion, ApiVersionsRequest, ApiVersionsResponse,
};
use kprod::protocol::messages::fetch::*;
use kprod::protocol::messages::init_producer_id::{InitProducerIdRequest, InitProducerIdResponse};
use kprod::protocol::messages::list_offsets::*;
use kprod::protocol::messages::metadata::*;
use kprod::protocol::messages::produce::*;
use kprod::protocol::record_batch::{decode_one, decode_record_batches, RecordBatch};
use kprod::protocol::{
    decode_request, decode_request_header, encode_response, ApiKey, FrameSplitter, Writer,
};

/// The highest version the broker claims per API.
#[derive(Debug, Clone, Copy)]
pub struct Profile {
    pub api_versions_max: i16,
    pub metadata_max: i16,
    pub produce_max: i16,
    pub init_producer_id_max: i16,
    pub fetch_max: i16,
    pub list_offsets_max: i16,
}

impl Profile {
    /// Everything kprod implements: flexible versions everywhere.
    pub const MODERN: Profile = Profile {
        api_versions_max: 3,
        metadata_max: 12,
        produce_max: 11,
        init_producer_id_max: 4,
        fetch_max: 12,
        list_offsets_max: 7,
    };
    /// A pre-KIP-482 broker: no flexible versions, so clients must fall back from
    /// ApiVersions v3 and use classic encodings.
    pub const LEGACY: Profile = Profile {
        api_versions_max: 2,
        metadata_max: 8,
        produce_max: 8,
        init_producer_id_max: 1,
        fetch_max: 11,
        list_offsets_max: 5,
    };
}

/// One partition's data from one Produce request.
#[derive(Debug, Clone)]
pub struct Captured {
    pub version: i16,
    pub acks: i16,
    pub topic: String,
    pub partition: i32,
    pub batches: Vec<RecordBatch>,
}

/// A stored batch: base offset, record count, bytes as stored.
type Stored = (i64, i64, Bytes);

#[derive(Default)]
pub struct State {
    pub captured: Vec<Captured>,
    /// API key → versions clients used.
    pub versions_seen: BTreeMap<i16, BTreeSet<i16>>,
    /// Anything the broker could not decode or did not expect.
    pub errors: Vec<String>,
    /// Per partition: stored batches.
    logs: BTreeMap<(String, i32), Vec<Stored>>,
}

impl State {
    /// Appends raw batches to a partition's log, assigning offsets as a broker does (by
    /// rewriting each batch's base offset, which the CRC does not cover). Returns the first
    /// offset assigned.
    pub fn append(&mut self, topic: &str, partition: i32, mut data: Bytes) -> Result<i64, String> {
        let log = self.logs.entry((topic.to_string(), partition)).or_default();
        let first = log.last().map_or(0, |(b, n, _)| b + n);
        let mut next = first;
        while !data.is_empty() {
            let (batch, used) = decode_one(&data, 64 << 20).map_err(|e| e.to_string())?;
            let mut raw = data.split_to(used).to_vec();
            raw[0..8].copy_from_slice(&next.to_be_bytes());
            let n = batch.records.len() as i64;
            log.push((next, n, Bytes::from(raw)));
            next += n;
        }
        Ok(first)
    }

    /// The next offset of a partition.
    pub fn end_offset(&self, topic: &str, partition: i32) -> i64 {
        self.logs
            .get(&(topic.to_string(), partition))
            .and_then(|l| l.last())
            .map_or(0, |(b, n, _)| b + n)
    }

    /// Batches holding offsets from `offset` on, at least one, up to about `max_bytes`.
    fn read(&self, topic: &str, partition: i32, offset: i64, max_bytes: usize) -> Bytes {
        let mut out = Vec::new();
        for (base, n, raw) in self
            .logs
            .get(&(topic.to_string(), partition))
            .into_iter()
            .flatten()
        {
            if base + n <= offset {
                continue;
            }
            if !out.is_empty() && out.len() + raw.len() > max_bytes {
                break;
            }
            out.extend_from_slice(raw);
        }
        Bytes::from(out)
    }
}

pub struct FakeBroker {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

pub const PRODUCER_ID: i64 = 4242;

impl FakeBroker {
    pub fn start(profile: Profile, partitions: i32) -> FakeBroker {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let accept = std::thread::spawn(move || {
            let mut conns = Vec::new();
            for stream in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (st, sp) = (st.clone(), sp.clone());
                conns.push(std::thread::spawn(move || {
                    serve(stream, addr, profile, partitions, &st, &sp)
                }));
            }
            for c in conns {
                let _ = c.join();
            }
        });
        FakeBroker {
            addr,
            state,
            stop,
            accept: Some(accept),
        }
    }

    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wake the accept loop
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn serve(
    mut stream: TcpStream,
    addr: SocketAddr,
    profile: Profile,
    partitions: i32,
    state: &Mutex<State>,
    stop: &AtomicBool,
) {
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    stream.set_nodelay(true).unwrap();
    let mut splitter = FrameSplitter::new(64 << 20);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::SeqCst) {
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return,
        }
        loop {
            let frame = match splitter.next_frame(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    state.lock().unwrap().errors.push(format!("framing: {e}"));
                    return;
                }
            };
            match handle(&frame, addr, profile, partitions, state) {
                Ok(Some(resp)) => {
                    if stream.write_all(&resp).is_err() {
                        return;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    state.lock().unwrap().errors.push(e);
                    return;
                }
            }
        }
    }
}

fn handle(
    frame: &[u8],
    addr: SocketAddr,
    profile: Profile,
    partitions: i32,
    state: &Mutex<State>,
) -> Result<Option<Vec<u8>>, String> {
    let (h, body) = decode_request_header(frame).map_err(|e| format!("header: {e}"))?;
    let v = h.api_version;
    let cid = h.correlation_id;
    state
        .lock()
        .unwrap()
        .versions_seen
        .entry(h.api_key.0)
        .or_default()
        .insert(v);
    let mut out = Vec::new();
    let err = |what: &str, e: kprod::protocol::DecodeError| format!("{what} v{v}: {e}");
    match h.api_key {
        ApiKey::API_VERSIONS => {
            let ranges = vec![
                ApiVersion {
                    api_key: 0,
                    min_version: 3,
                    max_version: profile.produce_max,
                },
                // Fetch and ListOffsets serve consumers reading back. librdkafka enables the v2
                // record format only
                // when the broker offers Fetch v4+ (zstd: v10+), and lz4 only when it offers
                // FindCoordinator — as every real broker does.
                ApiVersion {
                    api_key: 1,
                    min_version: 4,
                    max_version: profile.fetch_max,
                },
                ApiVersion {
                    api_key: 2,
                    min_version: 1,
                    max_version: profile.list_offsets_max,
                },
                ApiVersion {
                    api_key: 10,
                    min_version: 0,
                    max_version: 2,
                },
                ApiVersion {
                    api_key: 3,
                    min_version: 1,
                    max_version: profile.metadata_max,
                },
                ApiVersion {
                    api_key: 18,
                    min_version: 0,
                    max_version: profile.api_versions_max,
                },
                ApiVersion {
                    api_key: 22,
                    min_version: 0,
                    max_version: profile.init_producer_id_max,
                },
            ];
            if v > profile.api_versions_max {
                // What a real broker does: UNSUPPORTED_VERSION in a v0 body.
                let resp = ApiVersionsResponse {
                    error_code: 35,
                    api_keys: ranges,
                    ..Default::default()
                };
                encode_response::<ApiVersionsRequest>(&resp, 0, cid, &mut out).unwrap();
            } else {
                let _req: ApiVersionsRequest =
                    decode_request(body, v).map_err(|e| err("ApiVersions", e))?;
                let resp = ApiVersionsResponse {
                    api_keys: ranges,
                    ..Default::default()
                };
                encode_response::<ApiVersionsRequest>(&resp, v, cid, &mut out).unwrap();
            }
        }
        ApiKey::METADATA => {
            let req: MetadataRequest = decode_request(body, v).map_err(|e| err("Metadata", e))?;
            let names: Vec<String> = req
                .topics
                .unwrap_or_default()
                .into_iter()
                .filter_map(|t| t.name)
                .collect();
            let resp = MetadataResponse {
                brokers: vec![MetadataBroker {
                    node_id: 1,
                    host: addr.ip().to_string(),
                    port: i32::from(addr.port()),
                    rack: None,
                }],
                cluster_id: Some("kprod-fake".into()),
                controller_id: 1,
                topics: names
                    .into_iter()
                    .map(|name| MetadataTopic {
                        name: Some(name),
                        topic_id: kprod::protocol::Uuid([7; 16]),
                        partitions: (0..partitions)
                            .map(|p| MetadataPartition {
                                partition_index: p,
                                leader_id: 1,
                                leader_epoch: 0,
                                replica_nodes: vec![1],
                                isr_nodes: vec![1],
                                ..Default::default()
                            })
                            .collect(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            };
            encode_response::<MetadataRequest>(&resp, v, cid, &mut out).unwrap();
        }
        ApiKey::INIT_PRODUCER_ID => {
            let _req: InitProducerIdRequest =
                decode_request(body, v).map_err(|e| err("InitProducerId", e))?;
            let resp = InitProducerIdResponse {
                producer_id: PRODUCER_ID,
                producer_epoch: 0,
                ..Default::default()
            };
            encode_response::<InitProducerIdRequest>(&resp, v, cid, &mut out).unwrap();
        }
        ApiKey::PRODUCE => {
            let req: ProduceRequest = decode_request(body, v).map_err(|e| err("Produce", e))?;
            let mut st = state.lock().unwrap();
            let mut responses = Vec::new();
            for t in req.topic_data {
                let mut parts = Vec::new();
                for p in t.partition_data {
                    let records = p.records.unwrap_or_else(Bytes::new);
                    let batches = decode_record_batches(&records, 64 << 20).map_err(|e| {
                        format!("record batch in Produce v{v}: {e}; body {:02x?}", body)
                    })?;
                    let base = st.append(&t.name, p.index, records)?;
                    st.captured.push(Captured {
                        version: v,
                        acks: req.acks,
                        topic: t.name.clone(),
                        partition: p.index,
                        batches,
                    });
                    parts.push(PartitionProduceResponse {
                        index: p.index,
                        base_offset: base,
                        log_start_offset: 0,
                        ..Default::default()
                    });
                }
                responses.push(TopicProduceResponse {
                    name: t.name,
                    partition_responses: parts,
                });
            }
            if req.acks == 0 {
                return Ok(None);
            }
            let resp = ProduceResponse {
                responses,
                ..Default::default()
            };
            encode_response::<ProduceRequest>(&resp, v, cid, &mut out).unwrap();
        }
        ApiKey::LIST_OFFSETS => {
            let req: ListOffsetsRequest =
                decode_request(body, v).map_err(|e| err("ListOffsets", e))?;
            let st = state.lock().unwrap();
            let topics = req
                .topics
                .into_iter()
                .map(|t| ListOffsetsTopicResponse {
                    partitions: t
                        .partitions
                        .iter()
                        .map(|p| ListOffsetsPartitionResponse {
                            partition_index: p.partition_index,
                            offset: match p.timestamp {
                                -2 => 0,
                                _ => st.end_offset(&t.name, p.partition_index),
                            },
                            leader_epoch: 0,
                            ..Default::default()
                        })
                        .collect(),
                    name: t.name,
                })
                .collect();
            let resp = ListOffsetsResponse {
                topics,
                ..Default::default()
            };
            encode_response::<ListOffsetsRequest>(&resp, v, cid, &mut out).unwrap();
        }
        ApiKey::FETCH => {
            let req: FetchRequest = decode_request(body, v).map_err(|e| err("Fetch", e))?;
            let st = state.lock().unwrap();
            let responses = req
                .topics
                .into_iter()
                .map(|t| FetchTopicResponse {
                    partitions: t
                        .partitions
                        .iter()
                        .map(|p| {
                            let end = st.end_offset(&t.topic, p.partition);
                            FetchPartitionResponse {
                                partition_index: p.partition,
                                high_watermark: end,
                                last_stable_offset: end,
                                log_start_offset: 0,
                                aborted_transactions: Some(Vec::new()),
                                records: Some(st.read(
                                    &t.topic,
                                    p.partition,
                                    p.fetch_offset,
                                    p.partition_max_bytes.max(0) as usize,
                                )),
                                ..Default::default()
                            }
                        })
                        .collect(),
                    topic: t.topic,
                })
                .collect();
            let resp = FetchResponse {
                responses,
                session_id: req.session_id,
                ..Default::default()
            };
            encode_response::<FetchRequest>(&resp, v, cid, &mut out).unwrap();
        }
        ApiKey::FIND_COORDINATOR if v <= 2 => {
            // Consumers with a group id look for their coordinator even when they only assign
            // partitions; answer "not available" (v0–2 are classic encodings), which they
            // tolerate and retry later.
            let at = kprod::protocol::frame::begin_frame(&mut out);
            out.put_i32(cid);
            if v >= 1 {
                out.put_i32(0); // throttle
            }
            out.put_i16(15); // COORDINATOR_NOT_AVAILABLE
            if v >= 1 {
                out.put_nullable_string(None, false);
            }
            out.put_i32(-1);
            out.put_string("", false);
            out.put_i32(-1);
            kprod::protocol::frame::end_frame(&mut out, at);
        }
        other => return Err(format!("unexpected request {other:?} v{v}")),
    }
    Ok(Some(out))
}
