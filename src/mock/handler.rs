//! Request handling: one decoded request frame in, what to send back out. No sockets here;
//! the connection loop in [`super::server`] does the I/O, ordering and timing.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::protocol::messages::api_versions::{
    ApiVersion, ApiVersionsRequest, ApiVersionsResponse, FinalizedFeature, SupportedFeature,
};
use crate::protocol::messages::create_topics::{
    CreatableTopicResult, CreateTopicsRequest, CreateTopicsResponse,
};
use crate::protocol::messages::fetch::{
    AbortedTransaction, FetchPartitionResponse, FetchRequest, FetchResponse, FetchTopicResponse,
};
use crate::protocol::messages::init_producer_id::{InitProducerIdRequest, InitProducerIdResponse};
use crate::protocol::messages::list_offsets::{
    ListOffsetsPartitionResponse, ListOffsetsRequest, ListOffsetsResponse, ListOffsetsTopicResponse,
};
use crate::protocol::messages::metadata::{
    MetadataBroker, MetadataPartition, MetadataRequest, MetadataResponse, MetadataTopic,
};
use crate::protocol::messages::produce::{
    LeaderIdAndEpoch, NodeEndpoint, PartitionProduceResponse, ProduceRequest, ProduceResponse,
    TopicProduceResponse,
};
use crate::protocol::messages::Request;
use crate::protocol::{decode_request, encode_response, ApiKey, ErrorCode, RequestHeader};

use super::server::Shared;
use super::state::{read_batches, valid_topic_name, SequenceCheck, State};
use super::txn;
use super::ProduceCapture;
use crate::protocol::messages::add_offsets_to_txn::AddOffsetsToTxnRequest;
use crate::protocol::messages::add_partitions_to_txn::AddPartitionsToTxnRequest;
use crate::protocol::messages::end_txn::EndTxnRequest;
use crate::protocol::messages::find_coordinator::FindCoordinatorRequest;
use crate::protocol::messages::message_info;
use crate::protocol::messages::offset_fetch::OffsetFetchRequest;
use crate::protocol::messages::sasl_authenticate::{
    SaslAuthenticateRequest, SaslAuthenticateResponse,
};
use crate::protocol::messages::sasl_handshake::{SaslHandshakeRequest, SaslHandshakeResponse};
use crate::protocol::messages::txn_offset_commit::TxnOffsetCommitRequest;

/// The most partitions CreateTopics may ask for (a hostile count must not exhaust memory).
const MAX_CREATE_PARTITIONS: i32 = 10_000;

/// The longest a Fetch with nothing to return is held back, whatever the client asked.
const MAX_FETCH_WAIT: Duration = Duration::from_millis(500);

/// The highest version the cluster offers per API.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Profile {
    api_versions: i16,
    metadata: i16,
    produce: i16,
    init_producer_id: i16,
    fetch: i16,
    list_offsets: i16,
    create_topics: i16,
}

impl Profile {
    /// Everything implemented, flexible versions everywhere.
    pub const MODERN: Profile = Profile {
        api_versions: 3,
        metadata: 13,
        produce: 12,
        init_producer_id: 5,
        fetch: 12,
        list_offsets: 7,
        create_topics: 7,
    };
    /// A pre-KIP-482 broker: no flexible versions.
    pub const LEGACY: Profile = Profile {
        api_versions: 2,
        metadata: 8,
        produce: 8,
        init_producer_id: 1,
        fetch: 11,
        list_offsets: 5,
        create_topics: 4,
    };

    /// (API, min, max) for every API offered; the transaction APIs only when the cluster
    /// accepts transactions ([`super::txn`]).
    pub fn ranges(&self, transactions: bool) -> Vec<(ApiKey, i16, i16)> {
        // A modern broker offers what kprod implements; a legacy one no flexible version.
        let modern = self.api_versions >= 3;
        let upto = |api: ApiKey, legacy: i16| {
            let m = message_info(api).expect("a message kprod implements");
            (
                api,
                m.min_version,
                if modern { m.max_version } else { legacy },
            )
        };
        let mut r = vec![
            (ApiKey::PRODUCE, 3, self.produce),
            // librdkafka uses the v2 record format only when Fetch v4+ is offered (zstd: v10+),
            // and lz4 only when FindCoordinator is, as every real broker does.
            (ApiKey::FETCH, 4, self.fetch),
            (ApiKey::LIST_OFFSETS, 1, self.list_offsets),
            (ApiKey::METADATA, 1, self.metadata),
            upto(ApiKey::FIND_COORDINATOR, 2),
            // Offered on every listener, as Kafka does; answered by the authenticator on a
            // SASL listener ([`super::security`]), with ILLEGAL_SASL_STATE otherwise.
            upto(ApiKey::SASL_HANDSHAKE, 1),
            upto(ApiKey::SASL_AUTHENTICATE, 1),
            (ApiKey::API_VERSIONS, 0, self.api_versions),
            (ApiKey::CREATE_TOPICS, 2, self.create_topics),
            (ApiKey::INIT_PRODUCER_ID, 0, self.init_producer_id),
        ];
        if transactions {
            r.extend([
                upto(ApiKey::ADD_PARTITIONS_TO_TXN, 2),
                upto(ApiKey::ADD_OFFSETS_TO_TXN, 2),
                upto(ApiKey::END_TXN, 2),
                upto(ApiKey::TXN_OFFSET_COMMIT, 2),
                upto(ApiKey::OFFSET_FETCH, 5),
            ]);
        }
        r
    }

    fn range(&self, api: ApiKey, transactions: bool) -> Option<(i16, i16)> {
        self.ranges(transactions)
            .iter()
            .find(|r| r.0 == api)
            .map(|&(_, lo, hi)| (lo, hi))
    }
}

/// A Fetch held back until data arrives or its wait ends.
#[derive(Debug)]
pub(crate) struct PendingFetch {
    req: FetchRequest,
    version: i16,
    correlation_id: i32,
    pub deadline: Instant,
}

/// What to do with a request.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Send this frame.
    Respond(Vec<u8>),
    /// Send nothing (Produce with acks=0).
    Silent,
    /// A Fetch to answer later: see [`fetch_again`].
    Wait(Box<PendingFetch>),
    /// Close the connection; the reason goes to the cluster's error list.
    Close(String),
}

pub(super) fn respond<R: Request>(
    resp: &R::Response,
    version: i16,
    correlation_id: i32,
) -> Outcome {
    let mut out = Vec::new();
    match encode_response::<R>(resp, version, correlation_id, &mut out) {
        Ok(()) => Outcome::Respond(out),
        Err(e) => Outcome::Close(format!("encoding {:?} v{version}: {e}", R::API_KEY)),
    }
}

/// Handles one request that arrived on broker `broker` (an id).
pub(crate) fn handle(shared: &Shared, broker: i32, header: &RequestHeader, body: &[u8]) -> Outcome {
    let v = header.api_version;
    let cid = header.correlation_id;
    let api = header.api_key;
    let profile = shared.config.profile;
    if api != ApiKey::PRODUCE && api != ApiKey::FETCH {
        shared.state.lock().capture_request(broker, header, body);
    }
    if shared.config.transactions {
        // The coordinator's clock: markers that are due, transactions past their timeout.
        let mut st = shared.state.lock();
        let now = st.now();
        st.expire_transactions(now);
    }
    let Some((lo, hi)) = profile.range(api, shared.config.transactions) else {
        return Outcome::Close(format!("unsupported API {api:?} v{v}"));
    };
    if api == ApiKey::API_VERSIONS {
        return api_versions(shared, v, cid, body);
    }
    if v < lo || v > hi {
        return Outcome::Close(format!(
            "{api:?} v{v} is outside the advertised range {lo}..={hi}"
        ));
    }
    macro_rules! decode {
        ($t:ty) => {
            match decode_request::<$t>(body, v) {
                Ok(r) => r,
                Err(e) => return Outcome::Close(format!("{api:?} v{v}: {e}")),
            }
        };
    }
    match api {
        ApiKey::METADATA => metadata(shared, v, cid, decode!(MetadataRequest)),
        ApiKey::PRODUCE => produce(shared, broker, v, cid, decode!(ProduceRequest)),
        ApiKey::INIT_PRODUCER_ID => {
            init_producer_id(shared, broker, v, cid, decode!(InitProducerIdRequest))
        }
        ApiKey::LIST_OFFSETS => list_offsets(shared, broker, v, cid, decode!(ListOffsetsRequest)),
        ApiKey::CREATE_TOPICS => create_topics(shared, v, cid, decode!(CreateTopicsRequest)),
        ApiKey::FETCH => {
            let req = decode!(FetchRequest);
            let forced = shared.state.lock().take_failure(ApiKey::FETCH.0);
            let wait = Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_FETCH_WAIT);
            let pending = PendingFetch {
                req,
                version: v,
                correlation_id: cid,
                deadline: Instant::now() + wait,
            };
            if let Some(code) = forced {
                return Outcome::Respond(fetch_response(shared, broker, &pending, Some(code)).0);
            }
            match fetch_again(shared, broker, &pending) {
                Some(out) => Outcome::Respond(out),
                None => Outcome::Wait(Box::new(pending)),
            }
        }
        ApiKey::SASL_HANDSHAKE => {
            decode!(SaslHandshakeRequest);
            let resp = SaslHandshakeResponse {
                error_code: ErrorCode::ILLEGAL_SASL_STATE.code(),
                mechanisms: Vec::new(),
            };
            respond::<SaslHandshakeRequest>(&resp, v, cid)
        }
        ApiKey::SASL_AUTHENTICATE => {
            decode!(SaslAuthenticateRequest);
            let resp = SaslAuthenticateResponse {
                error_code: ErrorCode::ILLEGAL_SASL_STATE.code(),
                error_message: Some("this listener does not authenticate".into()),
                ..SaslAuthenticateResponse::default()
            };
            respond::<SaslAuthenticateRequest>(&resp, v, cid)
        }
        ApiKey::FIND_COORDINATOR => {
            txn::find_coordinator(shared, broker, v, cid, decode!(FindCoordinatorRequest))
        }
        ApiKey::ADD_PARTITIONS_TO_TXN => {
            txn::add_partitions_to_txn(shared, broker, v, cid, decode!(AddPartitionsToTxnRequest))
        }
        ApiKey::ADD_OFFSETS_TO_TXN => {
            txn::add_offsets_to_txn(shared, broker, v, cid, decode!(AddOffsetsToTxnRequest))
        }
        ApiKey::TXN_OFFSET_COMMIT => {
            txn::txn_offset_commit(shared, broker, v, cid, decode!(TxnOffsetCommitRequest))
        }
        ApiKey::END_TXN => txn::end_txn(shared, broker, v, cid, decode!(EndTxnRequest)),
        ApiKey::OFFSET_FETCH => {
            txn::offset_fetch(shared, broker, v, cid, decode!(OffsetFetchRequest))
        }
        _ => Outcome::Close(format!("unsupported API {api:?} v{v}")),
    }
}

fn api_versions(shared: &Shared, v: i16, cid: i32, body: &[u8]) -> Outcome {
    let profile = shared.config.profile;
    let forced = shared.state.lock().take_failure(ApiKey::API_VERSIONS.0);
    let api_keys = profile
        .ranges(shared.config.transactions)
        .iter()
        .map(|&(k, lo, hi)| ApiVersion {
            api_key: k.0,
            min_version: lo,
            max_version: hi,
        })
        .collect();
    if v > profile.api_versions || v < 0 {
        // What a real broker does: UNSUPPORTED_VERSION in a v0 body, so the client can retry
        // with a version it finds there.
        let resp = ApiVersionsResponse {
            error_code: ErrorCode::UNSUPPORTED_VERSION.0,
            api_keys,
            ..Default::default()
        };
        return respond::<ApiVersionsRequest>(&resp, 0, cid);
    }
    if let Err(e) = decode_request::<ApiVersionsRequest>(body, v) {
        return Outcome::Close(format!("ApiVersions v{v}: {e}"));
    }
    let mut resp = ApiVersionsResponse {
        error_code: forced.map_or(0, |e| e.0),
        api_keys,
        ..Default::default()
    };
    let level = shared.config.transaction_version;
    if level > 0 && v >= 3 {
        resp.supported_features = vec![SupportedFeature {
            name: "transaction.version".into(),
            min_version: 0,
            max_version: level,
        }];
        resp.finalized_features_epoch = 1;
        resp.finalized_features = vec![FinalizedFeature {
            name: "transaction.version".into(),
            max_version_level: level,
            min_version_level: level,
        }];
    }
    respond::<ApiVersionsRequest>(&resp, v, cid)
}

fn brokers(shared: &Shared) -> Vec<MetadataBroker> {
    shared
        .brokers
        .iter()
        .map(|b| MetadataBroker {
            node_id: b.id,
            host: b.advertised_addr().ip().to_string(),
            port: i32::from(b.advertised_addr().port()),
            rack: None,
        })
        .collect()
}

fn describe_topic(st: &State, name: &str) -> MetadataTopic {
    match st.topics.get(name) {
        Some(t) => MetadataTopic {
            name: Some(name.to_string()),
            topic_id: t.id,
            partitions: t
                .partitions
                .iter()
                .enumerate()
                .map(|(i, p)| MetadataPartition {
                    // A partition without a leader says so, as Kafka does during an election.
                    error_code: if p.leader < 0 {
                        ErrorCode::LEADER_NOT_AVAILABLE.0
                    } else {
                        0
                    },
                    partition_index: i as i32,
                    leader_id: p.leader,
                    leader_epoch: p.leader_epoch,
                    replica_nodes: vec![p.leader],
                    isr_nodes: vec![p.leader],
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        },
        None => MetadataTopic {
            error_code: ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0,
            name: Some(name.to_string()),
            ..Default::default()
        },
    }
}

fn metadata(shared: &Shared, v: i16, cid: i32, req: MetadataRequest) -> Outcome {
    let cfg = &shared.config;
    let mut st = shared.state.lock();
    let forced = st.take_failure(ApiKey::METADATA.0);
    let may_create = cfg.auto_create && (v < 4 || req.allow_auto_topic_creation);
    let topics: Vec<MetadataTopic> = match req.topics {
        None => {
            let names: Vec<String> = st.topics.keys().cloned().collect();
            names.iter().map(|n| describe_topic(&st, n)).collect()
        }
        Some(asked) => asked
            .into_iter()
            .map(|t| {
                let name = match t.name {
                    Some(n) => n,
                    None => match st.topics.iter().find(|(_, x)| x.id == t.topic_id) {
                        Some((n, _)) => n.clone(),
                        None => {
                            return MetadataTopic {
                                error_code: ErrorCode::UNKNOWN_TOPIC_ID.0,
                                name: None,
                                topic_id: t.topic_id,
                                ..Default::default()
                            }
                        }
                    },
                };
                if !valid_topic_name(&name) {
                    return MetadataTopic {
                        error_code: ErrorCode::INVALID_TOPIC_EXCEPTION.0,
                        name: Some(name),
                        ..Default::default()
                    };
                }
                if may_create && forced.is_none() && !st.topics.contains_key(&name) {
                    st.create_topic(&name, cfg.auto_create_partitions, None);
                }
                describe_topic(&st, &name)
            })
            .collect(),
    };
    if forced == Some(ErrorCode::REBOOTSTRAP_REQUIRED) && v >= 13 {
        // A whole-response error (KIP-1102): no brokers, no topics.
        drop(st);
        let resp = MetadataResponse {
            error_code: ErrorCode::REBOOTSTRAP_REQUIRED.0,
            ..Default::default()
        };
        return respond::<MetadataRequest>(&resp, v, cid);
    }
    let topics = match forced {
        Some(code) => topics
            .into_iter()
            .map(|t| MetadataTopic {
                error_code: code.0,
                partitions: Vec::new(),
                ..t
            })
            .collect(),
        None => topics,
    };
    drop(st);
    let resp = MetadataResponse {
        brokers: brokers(shared),
        cluster_id: Some("kprod-mock".into()),
        controller_id: 1,
        topics,
        ..Default::default()
    };
    respond::<MetadataRequest>(&resp, v, cid)
}

/// The outcome for one partition of a Produce request.
struct PartitionOutcome {
    error: ErrorCode,
    base_offset: i64,
    leader: Option<(i32, i32)>,
}

impl PartitionOutcome {
    fn error(error: ErrorCode) -> Self {
        PartitionOutcome {
            error,
            base_offset: -1,
            leader: None,
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn produce_partition(
    shared: &Shared,
    st: &mut State,
    broker: i32,
    v: i16,
    acks: i16,
    topic: &str,
    partition: i32,
    records: Option<Bytes>,
) -> PartitionOutcome {
    let cfg = &shared.config;
    if !matches!(acks, -1..=1) {
        return PartitionOutcome::error(ErrorCode::INVALID_REQUIRED_ACKS);
    }
    let Some(p) = st.partition(topic, partition) else {
        return PartitionOutcome::error(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
    };
    if p.leader != broker {
        return PartitionOutcome {
            leader: Some((p.leader, p.leader_epoch)),
            ..PartitionOutcome::error(ErrorCode::NOT_LEADER_OR_FOLLOWER)
        };
    }
    let data = records.unwrap_or_default();
    // Kafka checks each batch's size on the wire against the topic's limit first.
    let limit = st.topics.get(topic).and_then(|t| t.max_message_bytes);
    if limit.is_some_and(|l| data.len() > l) {
        return PartitionOutcome::error(ErrorCode::MESSAGE_TOO_LARGE);
    }
    // Sink mode keeps no record, so it checks them all without building them.
    let batches = match read_batches(&data, !cfg.sink) {
        Ok(b) => b,
        Err(e) => {
            st.errors.push(format!(
                "CORRUPT_MESSAGE: Produce v{v} to {topic}-{partition}: {e}"
            ));
            return PartitionOutcome::error(ErrorCode::CORRUPT_MESSAGE);
        }
    };
    // Kafka accepts exactly one batch per partition from Produce v3 on.
    let [(batch, _)] = &batches[..] else {
        st.errors.push(format!(
            "INVALID_RECORD: Produce v{v} to {topic}-{partition} carries {} batches",
            batches.len()
        ));
        return PartitionOutcome::error(ErrorCode::INVALID_RECORD);
    };
    if batch.transactional && cfg.transactions {
        // Transactions v2: Produce v12+ adds the partition itself.
        let implicit = cfg.transaction_version >= 2 && v >= 12;
        if let Err(e) = st.check_transactional_batch(
            topic,
            partition,
            batch.producer_id,
            batch.producer_epoch,
            implicit,
        ) {
            return PartitionOutcome::error(e);
        }
    }
    let check = match st.check_sequence(topic, partition, batch) {
        Ok(c) => c,
        Err(e) => return PartitionOutcome::error(e),
    };
    let (base_offset, duplicate) = match check {
        SequenceCheck::Duplicate(_) if cfg.duplicate_as_error => {
            return PartitionOutcome::error(ErrorCode::DUPLICATE_SEQUENCE_NUMBER);
        }
        SequenceCheck::Duplicate(base) => (base, true),
        SequenceCheck::Plain | SequenceCheck::Append => {
            let base = match st.append(topic, partition, &data, &batches, !cfg.sink) {
                Ok(b) => b,
                Err(e) => {
                    st.errors
                        .push(format!("append to {topic}-{partition}: {e}"));
                    return PartitionOutcome::error(ErrorCode::CORRUPT_MESSAGE);
                }
            };
            if check == SequenceCheck::Append {
                st.record_offset(topic, partition, batch, base);
            }
            if batch.transactional && cfg.transactions {
                st.note_transactional_batch(topic, partition, batch.producer_id, base);
            }
            (base, false)
        }
    };
    if !cfg.sink {
        st.captures.push(ProduceCapture {
            broker,
            api_version: v,
            acks,
            topic: topic.to_string(),
            partition,
            batches: batches.into_iter().map(|(batch, _)| batch).collect(),
            base_offset,
            duplicate,
        });
    }
    PartitionOutcome {
        error: ErrorCode::NONE,
        base_offset,
        leader: None,
    }
}

fn produce(shared: &Shared, broker: i32, v: i16, cid: i32, req: ProduceRequest) -> Outcome {
    let mut st = shared.state.lock();
    let forced = st.take_failure(ApiKey::PRODUCE.0);
    // Answered with an error after the append (a replication timeout, leadership lost while
    // waiting for acks=all): the client cannot tell it was written.
    let after_append = if forced.is_none() {
        st.fail_after_append.pop_front()
    } else {
        None
    };
    let mut node_endpoints: Vec<NodeEndpoint> = Vec::new();
    let mut responses = Vec::new();
    for t in req.topic_data {
        let mut partition_responses = Vec::new();
        for p in t.partition_data {
            let mut out = match forced {
                Some(code) => PartitionOutcome::error(code),
                None => produce_partition(
                    shared, &mut st, broker, v, req.acks, &t.name, p.index, p.records,
                ),
            };
            if let Some(code) = after_append.filter(|_| out.error.is_ok()) {
                out = PartitionOutcome::error(code);
            }
            let mut resp = PartitionProduceResponse {
                index: p.index,
                error_code: out.error.0,
                base_offset: out.base_offset,
                log_start_offset: if out.error.is_ok() { 0 } else { -1 },
                ..Default::default()
            };
            if !out.error.is_ok() && v >= 8 {
                resp.error_message = Some(out.error.description().to_string());
            }
            if let Some((leader, epoch)) = out.leader.filter(|_| v >= 10) {
                resp.current_leader = LeaderIdAndEpoch {
                    leader_id: leader,
                    leader_epoch: epoch,
                };
                if !node_endpoints.iter().any(|n| n.node_id == leader) {
                    if let Some(b) = shared.broker(leader) {
                        node_endpoints.push(NodeEndpoint {
                            node_id: leader,
                            host: b.advertised_addr().ip().to_string(),
                            port: i32::from(b.advertised_addr().port()),
                            rack: None,
                        });
                    }
                }
            }
            partition_responses.push(resp);
        }
        responses.push(TopicProduceResponse {
            name: t.name,
            partition_responses,
        });
    }
    let throttle_time_ms = st.throttle_ms.get(&broker).copied().unwrap_or(0);
    drop(st);
    if req.acks == 0 {
        return Outcome::Silent;
    }
    let resp = ProduceResponse {
        responses,
        node_endpoints,
        throttle_time_ms,
    };
    respond::<ProduceRequest>(&resp, v, cid)
}

fn init_producer_id(
    shared: &Shared,
    broker: i32,
    v: i16,
    cid: i32,
    req: InitProducerIdRequest,
) -> Outcome {
    let mut st = shared.state.lock();
    let transactional = req
        .transactional_id
        .as_deref()
        .filter(|_| shared.config.transactions);
    let resp = if let Some(id) = transactional {
        let current = if v >= 3 {
            (req.producer_id, req.producer_epoch)
        } else {
            (-1, -1)
        };
        match txn::init_transactional(&mut st, broker, v, id, req.transaction_timeout_ms, current) {
            Ok((producer_id, producer_epoch)) => InitProducerIdResponse {
                producer_id,
                producer_epoch,
                ..Default::default()
            },
            Err(code) => InitProducerIdResponse {
                error_code: code.0,
                producer_id: -1,
                producer_epoch: -1,
                ..Default::default()
            },
        }
    } else if let Some(code) = st.take_failure(ApiKey::INIT_PRODUCER_ID.0) {
        InitProducerIdResponse {
            error_code: code.0,
            producer_id: -1,
            producer_epoch: -1,
            ..Default::default()
        }
    } else {
        let known = (v >= 3 && req.producer_id >= 0)
            .then(|| st.producers.get(&req.producer_id).copied())
            .flatten();
        match known {
            // KIP-360: the same id with the next epoch.
            Some(epoch) if epoch == req.producer_epoch && epoch < i16::MAX => {
                st.producers.insert(req.producer_id, epoch + 1);
                InitProducerIdResponse {
                    producer_id: req.producer_id,
                    producer_epoch: epoch + 1,
                    ..Default::default()
                }
            }
            Some(epoch) if epoch != req.producer_epoch => InitProducerIdResponse {
                error_code: ErrorCode::INVALID_PRODUCER_EPOCH.0,
                producer_id: -1,
                producer_epoch: -1,
                ..Default::default()
            },
            // A new id (also when the epoch would overflow).
            _ => {
                let id = st.next_producer_id;
                st.next_producer_id += 1;
                st.producers.insert(id, 0);
                InitProducerIdResponse {
                    producer_id: id,
                    producer_epoch: 0,
                    ..Default::default()
                }
            }
        }
    };
    drop(st);
    respond::<InitProducerIdRequest>(&resp, v, cid)
}

fn list_offsets(
    shared: &Shared,
    broker: i32,
    v: i16,
    cid: i32,
    req: ListOffsetsRequest,
) -> Outcome {
    let mut st = shared.state.lock();
    let forced = st.take_failure(ApiKey::LIST_OFFSETS.0);
    let read_committed = req.isolation_level == 1;
    let topics = req
        .topics
        .into_iter()
        .map(|t| ListOffsetsTopicResponse {
            partitions: t
                .partitions
                .iter()
                .map(|p| {
                    let mut r = ListOffsetsPartitionResponse {
                        partition_index: p.partition_index,
                        offset: -1,
                        timestamp: -1,
                        ..Default::default()
                    };
                    let part = st.partition(&t.name, p.partition_index);
                    r.error_code = match (forced, part) {
                        (Some(code), _) => code.0,
                        (None, None) => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0,
                        (None, Some(part)) if part.leader != broker => {
                            ErrorCode::NOT_LEADER_OR_FOLLOWER.0
                        }
                        (None, Some(part)) => {
                            let (offset, ts) = match p.timestamp {
                                -1 if read_committed => (
                                    st.last_stable_offset(
                                        &t.name,
                                        p.partition_index,
                                        part.end_offset,
                                    ),
                                    -1,
                                ),
                                -1 => (part.end_offset, -1),
                                -2 => (0, -1),
                                -3 => st.max_timestamp_offset(part),
                                ts => st.offset_for_timestamp(part, ts),
                            };
                            r.offset = offset;
                            r.timestamp = ts;
                            r.leader_epoch = part.leader_epoch;
                            0
                        }
                    };
                    r
                })
                .collect(),
            name: t.name,
        })
        .collect();
    drop(st);
    let resp = ListOffsetsResponse {
        topics,
        ..Default::default()
    };
    respond::<ListOffsetsRequest>(&resp, v, cid)
}

/// Builds the response to a Fetch; `.1` is whether it has anything worth sending before the
/// wait ends (records or an error).
fn fetch_response(
    shared: &Shared,
    broker: i32,
    f: &PendingFetch,
    forced: Option<ErrorCode>,
) -> (Vec<u8>, bool) {
    let mut st = shared.state.lock();
    if shared.config.transactions {
        let now = st.now();
        st.expire_transactions(now);
    }
    let read_committed = f.req.isolation_level == 1;
    let mut budget = f.req.max_bytes.max(0) as usize;
    let mut worth = false;
    let responses = f
        .req
        .topics
        .iter()
        .map(|t| FetchTopicResponse {
            topic: t.topic.clone(),
            partitions: t
                .partitions
                .iter()
                .map(|p| {
                    let mut r = FetchPartitionResponse {
                        partition_index: p.partition,
                        high_watermark: -1,
                        last_stable_offset: -1,
                        log_start_offset: -1,
                        ..Default::default()
                    };
                    let part = st.partition(&t.topic, p.partition);
                    let code = match (forced, part) {
                        (Some(code), _) => code,
                        (None, None) => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                        (None, Some(part)) if part.leader != broker => {
                            r.current_leader = crate::protocol::messages::fetch::LeaderIdAndEpoch {
                                leader_id: part.leader,
                                leader_epoch: part.leader_epoch,
                            };
                            ErrorCode::NOT_LEADER_OR_FOLLOWER
                        }
                        (None, Some(part)) => {
                            let lso = st.last_stable_offset(&t.topic, p.partition, part.end_offset);
                            // read_committed reads up to the last stable offset, and learns
                            // which of what it reads was aborted.
                            let upto = if read_committed { lso } else { i64::MAX };
                            r.high_watermark = part.end_offset;
                            r.last_stable_offset = lso;
                            r.log_start_offset = 0;
                            r.aborted_transactions = Some(if read_committed {
                                st.aborted_in(&t.topic, p.partition, p.fetch_offset, lso)
                                    .into_iter()
                                    .map(|(producer_id, first_offset)| AbortedTransaction {
                                        producer_id,
                                        first_offset,
                                    })
                                    .collect()
                            } else {
                                Vec::new()
                            });
                            if p.fetch_offset < 0 || p.fetch_offset > part.end_offset {
                                ErrorCode::OFFSET_OUT_OF_RANGE
                            } else {
                                let limit = (p.partition_max_bytes.max(0) as usize).min(budget);
                                let data = if limit == 0 {
                                    Bytes::new()
                                } else {
                                    st.read(part, p.fetch_offset, limit, upto)
                                };
                                budget = budget.saturating_sub(data.len());
                                worth |= !data.is_empty();
                                r.records = Some(data);
                                ErrorCode::NONE
                            }
                        }
                    };
                    r.error_code = code.0;
                    worth |= !code.is_ok();
                    r
                })
                .collect(),
        })
        .collect();
    drop(st);
    let resp = FetchResponse {
        error_code: 0,
        session_id: 0,
        responses,
        ..Default::default()
    };
    let mut out = Vec::new();
    encode_response::<FetchRequest>(&resp, f.version, f.correlation_id, &mut out)
        .expect("version checked on arrival");
    (out, worth)
}

/// The response to a held-back Fetch if it has data or its wait is over, else `None`.
pub(crate) fn fetch_again(shared: &Shared, broker: i32, f: &PendingFetch) -> Option<Vec<u8>> {
    let (out, worth) = fetch_response(shared, broker, f, None);
    (worth || f.req.min_bytes <= 0 || Instant::now() >= f.deadline).then_some(out)
}

fn create_topics(shared: &Shared, v: i16, cid: i32, req: CreateTopicsRequest) -> Outcome {
    let cfg = &shared.config;
    let mut st = shared.state.lock();
    let forced = st.take_failure(ApiKey::CREATE_TOPICS.0);
    let n_brokers = shared.brokers.len() as i32;
    let mut topics = Vec::new();
    for t in req.topics {
        let mut r = CreatableTopicResult {
            name: t.name.clone(),
            ..Default::default()
        };
        let partitions = if !t.assignments.is_empty() {
            t.assignments.len() as i32
        } else if t.num_partitions == -1 {
            cfg.auto_create_partitions
        } else {
            t.num_partitions
        };
        let mut leaders = Vec::new();
        let mut assignment_ok = true;
        for (i, a) in t.assignments.iter().enumerate() {
            match a.broker_ids.first() {
                Some(&b) if a.partition_index == i as i32 && (1..=n_brokers).contains(&b) => {
                    leaders.push(b)
                }
                _ => assignment_ok = false,
            }
        }
        let error = if let Some(code) = forced {
            code
        } else if !valid_topic_name(&t.name) {
            ErrorCode::INVALID_TOPIC_EXCEPTION
        } else if st.topics.contains_key(&t.name) {
            ErrorCode::TOPIC_ALREADY_EXISTS
        } else if !(1..=MAX_CREATE_PARTITIONS).contains(&partitions) {
            ErrorCode::INVALID_PARTITIONS
        } else if !assignment_ok {
            ErrorCode::INVALID_REPLICA_ASSIGNMENT
        } else if t.replication_factor != -1
            && !(1..=n_brokers as i16).contains(&t.replication_factor)
        {
            ErrorCode::INVALID_REPLICATION_FACTOR
        } else {
            ErrorCode::NONE
        };
        if error.is_ok() {
            if !req.validate_only {
                let l = (!leaders.is_empty()).then_some(&leaders[..]);
                st.create_topic(&t.name, partitions, l);
                // The one topic config the mock acts on.
                let limit = t
                    .configs
                    .iter()
                    .find(|c| c.name == "max.message.bytes")
                    .and_then(|c| c.value.as_deref()?.parse().ok());
                if let Some(topic) = st.topics.get_mut(&t.name) {
                    topic.max_message_bytes = limit;
                }
            }
            r.topic_id = st.topics.get(&t.name).map_or(r.topic_id, |x| x.id);
            r.num_partitions = partitions;
            r.replication_factor = 1;
            r.configs = Some(Vec::new());
        } else {
            r.error_code = error.0;
            r.error_message = Some(match error {
                ErrorCode::TOPIC_ALREADY_EXISTS => format!("Topic '{}' already exists.", t.name),
                e => e.description().to_string(),
            });
        }
        topics.push(r);
    }
    drop(st);
    let resp = CreateTopicsResponse {
        topics,
        ..Default::default()
    };
    respond::<CreateTopicsRequest>(&resp, v, cid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The modern profile offers, of every API the mock implements by message, exactly the
    /// versions the message table gives (so a version added to a spec is served and tested),
    /// and the legacy one a subset.
    #[test]
    fn profiles_follow_the_message_table() {
        for (api, lo, hi) in Profile::MODERN.ranges(true) {
            let m = message_info(api).expect("a message");
            assert_eq!((lo.max(m.min_version), hi), (lo, m.max_version), "{api:?}");
        }
        for (api, lo, hi) in Profile::LEGACY.ranges(true) {
            let m = message_info(api).expect("a message");
            assert!(lo >= m.min_version && hi <= m.max_version, "{api:?}");
        }
    }
}
