//! The transaction APIs, answered without a coordinator's state: with
//! [`accept_transactions`](super::MockClusterBuilder::accept_transactions) on, every broker
//! says it coordinates every group and transactional id, and every AddPartitionsToTxn,
//! AddOffsetsToTxn, TxnOffsetCommit and EndTxn succeeds (or fails with an error injected by
//! `fail_requests`). No transaction is tracked, no marker is written and nothing is isolated:
//! this lets a client's transactional flow run to its end so its requests can be captured and
//! checked (`MockCluster::requests`); a real coordinator is later work.
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
use crate::protocol::messages::txn_offset_commit::{
    TxnOffsetCommitRequest, TxnOffsetCommitResponse, TxnOffsetCommitResponsePartition,
    TxnOffsetCommitResponseTopic,
};
use crate::protocol::{ApiKey, ErrorCode};

use super::handler::{respond, Outcome};
use super::server::Shared;

/// The error to answer with: an injected one, else none.
fn injected(shared: &Shared, api: ApiKey) -> ErrorCode {
    shared
        .state
        .lock()
        .take_failure(api.0)
        .unwrap_or(ErrorCode::NONE)
}

pub(super) fn find_coordinator(
    shared: &Shared,
    broker: i32,
    v: i16,
    cid: i32,
    req: FindCoordinatorRequest,
) -> Outcome {
    let forced = shared.state.lock().take_failure(ApiKey::FIND_COORDINATOR.0);
    let code = match forced {
        Some(code) => code,
        None if shared.config.transactions => ErrorCode::NONE,
        None => ErrorCode::COORDINATOR_NOT_AVAILABLE,
    };
    let me = shared.brokers.iter().find(|b| b.id == broker);
    let (node_id, host, port) = match (code, me) {
        (ErrorCode::NONE, Some(b)) => (
            b.id,
            b.advertised_addr().ip().to_string(),
            i32::from(b.advertised_addr().port()),
        ),
        _ => (-1, String::new(), -1),
    };
    let resp = if v >= 4 {
        FindCoordinatorResponse {
            coordinators: req
                .coordinator_keys
                .into_iter()
                .map(|key| Coordinator {
                    key,
                    node_id,
                    host: host.clone(),
                    port,
                    error_code: code.0,
                    error_message: None,
                })
                .collect(),
            ..Default::default()
        }
    } else {
        FindCoordinatorResponse {
            error_code: code.0,
            node_id,
            host,
            port,
            ..Default::default()
        }
    };
    respond::<FindCoordinatorRequest>(&resp, v, cid)
}

pub(super) fn add_partitions_to_txn(
    shared: &Shared,
    v: i16,
    cid: i32,
    req: AddPartitionsToTxnRequest,
) -> Outcome {
    let code = injected(shared, ApiKey::ADD_PARTITIONS_TO_TXN);
    let resp = AddPartitionsToTxnResponse {
        results: req
            .topics
            .into_iter()
            .map(|t| AddPartitionsToTxnTopicResult {
                name: t.name,
                results_by_partition: t
                    .partitions
                    .into_iter()
                    .map(|p| AddPartitionsToTxnPartitionResult {
                        partition_index: p,
                        partition_error_code: code.0,
                    })
                    .collect(),
            })
            .collect(),
        ..Default::default()
    };
    respond::<AddPartitionsToTxnRequest>(&resp, v, cid)
}

pub(super) fn add_offsets_to_txn(
    shared: &Shared,
    v: i16,
    cid: i32,
    _req: AddOffsetsToTxnRequest,
) -> Outcome {
    let resp = AddOffsetsToTxnResponse {
        error_code: injected(shared, ApiKey::ADD_OFFSETS_TO_TXN).0,
        ..Default::default()
    };
    respond::<AddOffsetsToTxnRequest>(&resp, v, cid)
}

pub(super) fn txn_offset_commit(
    shared: &Shared,
    v: i16,
    cid: i32,
    req: TxnOffsetCommitRequest,
) -> Outcome {
    let code = injected(shared, ApiKey::TXN_OFFSET_COMMIT);
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

pub(super) fn end_txn(shared: &Shared, v: i16, cid: i32, req: EndTxnRequest) -> Outcome {
    let code = injected(shared, ApiKey::END_TXN);
    let resp = EndTxnResponse {
        error_code: code.0,
        // v5 (transactions v2) hands back the ids to use next: the same, as nothing is bumped.
        producer_id: req.producer_id,
        producer_epoch: req.producer_epoch,
        ..Default::default()
    };
    respond::<EndTxnRequest>(&resp, v, cid)
}
