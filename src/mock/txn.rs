//! The transaction APIs, with [`accept_transactions`](super::MockClusterBuilder::accept_transactions)
//! on: FindCoordinator names each key's coordinator, and AddPartitionsToTxn, AddOffsetsToTxn,
//! TxnOffsetCommit, EndTxn and OffsetFetch are answered by the coordinator's state
//! ([`super::coordinator`]), or fail with an error injected by `fail_requests`. A request for
//! a key at a broker that does not coordinate it gets NOT_COORDINATOR.
//!
//! With it off, FindCoordinator answers COORDINATOR_NOT_AVAILABLE (so consumers with a group
//! fall back to what the mock serves) and the other transaction APIs are not offered.

use crate::protocol::messages::add_offsets_to_txn::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse,
};
use crate::protocol::messages::add_partitions_to_txn::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnRequest, AddPartitionsToTxnResponse,
    AddPartitionsToTxnTopicResult,
};
use crate::protocol::messages::end_txn::{EndTxnRequest, EndTxnResponse};
use crate::protocol::messages::find_coordinator::{
    Coordinator, FindCoordinatorRequest, FindCoordinatorResponse,
};
use crate::protocol::messages::offset_fetch::{
    OffsetFetchRequest, OffsetFetchResponse, OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use crate::protocol::messages::txn_offset_commit::{
    TxnOffsetCommitRequest, TxnOffsetCommitResponse, TxnOffsetCommitResponsePartition,
    TxnOffsetCommitResponseTopic,
};
use crate::protocol::{ApiKey, ErrorCode};

use super::state::State;

use super::handler::{respond, Outcome};
use super::server::Shared;

/// The error for a request about `key` at `broker`: injected, or NOT_COORDINATOR at the
/// wrong broker; the state is locked and expired transactions aborted first.
fn precheck(st: &mut State, api: ApiKey, broker: i32, key: &str) -> ErrorCode {
    let now = st.now();
    st.expire_transactions(now);
    if let Some(code) = st.take_failure(api.0) {
        return code;
    }
    if st.coordinator_for(key) != broker {
        return ErrorCode::NOT_COORDINATOR;
    }
    ErrorCode::NONE
}

/// Between its end and its markers: the coordinator answers CONCURRENT_TRANSACTIONS.
fn preparing(e: &super::coordinator::TxnEntry) -> bool {
    use super::coordinator::TransactionState as S;
    matches!(e.state, S::PrepareCommit | S::PrepareAbort)
}

pub(super) fn find_coordinator(
    shared: &Shared,
    _broker: i32,
    v: i16,
    cid: i32,
    req: FindCoordinatorRequest,
) -> Outcome {
    let mut st = shared.state.lock();
    let base = match st.take_failure(ApiKey::FIND_COORDINATOR.0) {
        Some(code) => code,
        None if shared.config.transactions => ErrorCode::NONE,
        None => ErrorCode::COORDINATOR_NOT_AVAILABLE,
    };
    let answer = |key: &str| -> (i32, String, i32, ErrorCode) {
        let b = (base == ErrorCode::NONE)
            .then(|| shared.broker(st.coordinator_for(key)))
            .flatten();
        match b {
            Some(b) => (
                b.id,
                b.advertised_addr().ip().to_string(),
                i32::from(b.advertised_addr().port()),
                ErrorCode::NONE,
            ),
            None if base == ErrorCode::NONE => {
                (-1, String::new(), -1, ErrorCode::COORDINATOR_NOT_AVAILABLE)
            }
            None => (-1, String::new(), -1, base),
        }
    };
    let resp = if v >= 4 {
        FindCoordinatorResponse {
            coordinators: req
                .coordinator_keys
                .iter()
                .map(|key| {
                    let (node_id, host, port, code) = answer(key);
                    Coordinator {
                        key: key.clone(),
                        node_id,
                        host,
                        port,
                        error_code: code.0,
                        error_message: None,
                    }
                })
                .collect(),
            ..Default::default()
        }
    } else {
        let (node_id, host, port, code) = answer(&req.key);
        FindCoordinatorResponse {
            error_code: code.0,
            node_id,
            host,
            port,
            ..Default::default()
        }
    };
    drop(st);
    respond::<FindCoordinatorRequest>(&resp, v, cid)
}

/// InitProducerId with a transactional id (`None`: not one; the caller handles it).
pub(super) fn init_transactional(
    st: &mut State,
    broker: i32,
    v: i16,
    id: &str,
    timeout_ms: i32,
    current: (i64, i16),
) -> Result<(i64, i16), ErrorCode> {
    let code = precheck(st, ApiKey::INIT_PRODUCER_ID, broker, id);
    if !code.is_ok() {
        return Err(code);
    }
    st.init_transactional(id, timeout_ms, current, v >= 4)
}

pub(super) fn add_partitions_to_txn(
    shared: &Shared,
    broker: i32,
    v: i16,
    cid: i32,
    req: AddPartitionsToTxnRequest,
) -> Outcome {
    let mut st = shared.state.lock();
    let mut code = precheck(
        &mut st,
        ApiKey::ADD_PARTITIONS_TO_TXN,
        broker,
        &req.transactional_id,
    );
    let now = st.now();
    let unknown: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |&p| (t.name.clone(), p)))
        .filter(|(t, p)| st.partition(t, *p).is_none())
        .collect();
    if code.is_ok() {
        match st.txn_producer(
            &req.transactional_id,
            req.producer_id,
            req.producer_epoch,
            v >= 2,
        ) {
            Err(e) => code = e,
            Ok(e) if preparing(e) => code = ErrorCode::CONCURRENT_TRANSACTIONS,
            Ok(_) if !unknown.is_empty() => {}
            Ok(e) => {
                State::start_if_needed(e, now);
                for t in &req.topics {
                    for &p in &t.partitions {
                        e.partitions.insert((t.name.clone(), p));
                    }
                }
            }
        }
    }
    drop(st);
    let resp = AddPartitionsToTxnResponse {
        results: req
            .topics
            .into_iter()
            .map(|t| AddPartitionsToTxnTopicResult {
                results_by_partition: t
                    .partitions
                    .into_iter()
                    .map(|p| AddPartitionsToTxnPartitionResult {
                        partition_index: p,
                        partition_error_code: if !code.is_ok() {
                            code.0
                        } else if unknown.contains(&(t.name.clone(), p)) {
                            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.0
                        } else if !unknown.is_empty() {
                            ErrorCode::OPERATION_NOT_ATTEMPTED.0
                        } else {
                            0
                        },
                    })
                    .collect(),
                name: t.name,
            })
            .collect(),
        ..Default::default()
    };
    respond::<AddPartitionsToTxnRequest>(&resp, v, cid)
}

pub(super) fn add_offsets_to_txn(
    shared: &Shared,
    broker: i32,
    v: i16,
    cid: i32,
    req: AddOffsetsToTxnRequest,
) -> Outcome {
    let mut st = shared.state.lock();
    let mut code = precheck(
        &mut st,
        ApiKey::ADD_OFFSETS_TO_TXN,
        broker,
        &req.transactional_id,
    );
    let now = st.now();
    if code.is_ok() {
        match st.txn_producer(
            &req.transactional_id,
            req.producer_id,
            req.producer_epoch,
            v >= 2,
        ) {
            Err(e) => code = e,
            Ok(e) if preparing(e) => code = ErrorCode::CONCURRENT_TRANSACTIONS,
            Ok(e) => {
                State::start_if_needed(e, now);
                e.groups.insert(req.group_id.clone());
            }
        }
    }
    drop(st);
    let resp = AddOffsetsToTxnResponse {
        error_code: code.0,
        ..Default::default()
    };
    respond::<AddOffsetsToTxnRequest>(&resp, v, cid)
}

pub(super) fn txn_offset_commit(
    shared: &Shared,
    broker: i32,
    v: i16,
    cid: i32,
    req: TxnOffsetCommitRequest,
) -> Outcome {
    let mut st = shared.state.lock();
    // Sent to the group's coordinator.
    let mut code = precheck(&mut st, ApiKey::TXN_OFFSET_COMMIT, broker, &req.group_id);
    if code.is_ok() {
        match st.txn_producer(
            &req.transactional_id,
            req.producer_id,
            req.producer_epoch,
            true,
        ) {
            Err(e) => code = e,
            Ok(e) if !e.groups.contains(&req.group_id) => code = ErrorCode::INVALID_TXN_STATE,
            Ok(e) => {
                for t in &req.topics {
                    for p in &t.partitions {
                        e.pending_offsets.insert(
                            (req.group_id.clone(), t.name.clone(), p.partition_index),
                            p.committed_offset,
                        );
                    }
                }
            }
        }
    }
    drop(st);
    let resp = TxnOffsetCommitResponse {
        topics: req
            .topics
            .into_iter()
            .map(|t| TxnOffsetCommitResponseTopic {
                name: t.name,
                partitions: t
                    .partitions
                    .into_iter()
                    .map(|p| TxnOffsetCommitResponsePartition {
                        partition_index: p.partition_index,
                        error_code: code.0,
                    })
                    .collect(),
            })
            .collect(),
        ..Default::default()
    };
    respond::<TxnOffsetCommitRequest>(&resp, v, cid)
}

pub(super) fn end_txn(
    shared: &Shared,
    broker: i32,
    v: i16,
    cid: i32,
    req: EndTxnRequest,
) -> Outcome {
    use super::coordinator::TransactionState as S;
    let mut st = shared.state.lock();
    let mut code = precheck(&mut st, ApiKey::END_TXN, broker, &req.transactional_id);
    let mut next = (req.producer_id, req.producer_epoch);
    // Transactions v2: a retry of an end that completed carries the epoch before the bump;
    // it is answered as it was (Kafka's coordinator does the same).
    let retried = (v >= 5)
        .then(|| st.txn.ids.get(&req.transactional_id))
        .flatten()
        .filter(|e| {
            e.producer_id == req.producer_id && req.producer_epoch.checked_add(1) == Some(e.epoch)
        })
        .and_then(|e| match (e.state, req.committed) {
            (S::CompleteCommit, true) | (S::CompleteAbort, false) => {
                Some((ErrorCode::NONE, (e.producer_id, e.epoch)))
            }
            (S::PrepareCommit, true) | (S::PrepareAbort, false) => {
                Some((ErrorCode::CONCURRENT_TRANSACTIONS, next))
            }
            _ => None,
        });
    if let (true, Some((c, ids))) = (code.is_ok(), retried) {
        code = c;
        next = ids;
    } else if code.is_ok() {
        match st.txn_producer(
            &req.transactional_id,
            req.producer_id,
            req.producer_epoch,
            v >= 2,
        ) {
            Err(e) => code = e,
            Ok(e) => match (e.state, req.committed) {
                // Its markers are being written (Kafka: a transition in progress): retry.
                (S::PrepareCommit | S::PrepareAbort, _) => {
                    code = ErrorCode::CONCURRENT_TRANSACTIONS;
                }
                (S::Ongoing, commit) => {
                    let now = st.now();
                    st.end_transaction(&req.transactional_id, commit, now);
                    if v >= 5 {
                        // Transactions v2: every end bumps the epoch.
                        let e = st.txn.ids.get_mut(&req.transactional_id).expect("known");
                        e.epoch = e.epoch.saturating_add(1);
                        next = (e.producer_id, e.epoch);
                        st.producers.insert(next.0, next.1);
                    }
                }
                // A retry of an end that completed.
                (S::CompleteCommit, true) | (S::CompleteAbort, false) if v < 5 => {}
                // Transactions v2: aborting an empty transaction bumps the epoch too (a
                // retried end under v2 carries the epoch it was sent with, now stale: the
                // check above answers it).
                (S::Empty | S::CompleteCommit | S::CompleteAbort, false) if v >= 5 => {
                    let e = st.txn.ids.get_mut(&req.transactional_id).expect("known");
                    e.epoch = e.epoch.saturating_add(1);
                    e.state = S::CompleteAbort;
                    next = (e.producer_id, e.epoch);
                    st.producers.insert(next.0, next.1);
                }
                _ => code = ErrorCode::INVALID_TXN_STATE,
            },
        }
    }
    drop(st);
    let resp = EndTxnResponse {
        error_code: code.0,
        producer_id: next.0,
        producer_epoch: next.1,
        ..Default::default()
    };
    respond::<EndTxnRequest>(&resp, v, cid)
}

pub(super) fn offset_fetch(
    shared: &Shared,
    broker: i32,
    v: i16,
    cid: i32,
    req: OffsetFetchRequest,
) -> Outcome {
    let mut st = shared.state.lock();
    let code = precheck(&mut st, ApiKey::OFFSET_FETCH, broker, &req.group_id);
    let wanted: Vec<(String, Vec<i32>)> = match &req.topics {
        Some(ts) => ts
            .iter()
            .map(|t| (t.name.clone(), t.partition_indexes.clone()))
            .collect(),
        None => {
            let mut all: Vec<(String, Vec<i32>)> = Vec::new();
            for (g, t, p) in st.txn.offsets.keys() {
                if *g != req.group_id {
                    continue;
                }
                match all.iter_mut().find(|(n, _)| n == t) {
                    Some((_, ps)) => ps.push(*p),
                    None => all.push((t.clone(), vec![*p])),
                }
            }
            all
        }
    };
    let topics = wanted
        .into_iter()
        .map(|(name, parts)| OffsetFetchResponseTopic {
            partitions: parts
                .into_iter()
                .map(|p| OffsetFetchResponsePartition {
                    partition_index: p,
                    committed_offset: st
                        .txn
                        .offsets
                        .get(&(req.group_id.clone(), name.clone(), p))
                        .copied()
                        .unwrap_or(-1),
                    committed_leader_epoch: -1,
                    metadata: Some(String::new()),
                    error_code: if v < 2 { code.0 } else { 0 },
                })
                .collect(),
            name,
        })
        .collect();
    drop(st);
    let resp = OffsetFetchResponse {
        topics,
        error_code: code.0,
        ..Default::default()
    };
    respond::<OffsetFetchRequest>(&resp, v, cid)
}
