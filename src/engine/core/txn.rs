//! A transactional producer's coordinator requests, on thread 0: FindCoordinator,
//! InitProducerId with the transactional id, AddPartitionsToTxn before a partition's first
//! batch in a transaction, AddOffsetsToTxn and TxnOffsetCommit, EndTxn. One request at a
//! time, in the order the call's steps say; what each answer means is decided in
//! [`crate::engine::transaction`].
//!
//! - FindCoordinator goes on the control connection; the rest to the coordinator's broker
//!   (thread 0's connection to it). NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE or a lost
//!   connection: the coordinator is found again, the step sent again.
//! - Retriable answers (CONCURRENT_TRANSACTIONS, COORDINATOR_LOAD_IN_PROGRESS, ...) are sent
//!   again after a backoff that doubles up to `retry_backoff_max`.
//! - Partitions join a transaction when their owner first drains records for them
//!   ([`EngineCore::join_transaction`]); their batches wait until the coordinator has them.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::control::lenient;
use super::{merge, Ctx, EngineCore};
use crate::engine::batch::ProducerIds;
use crate::engine::transaction::{self, Call, GroupOffsets, Reaction, Step, Target, Transactions};
use crate::engine::PartitionState;
use crate::error::{Error, TransactionError};
use crate::metrics::Metrics;
use crate::protocol::messages::add_offsets_to_txn::AddOffsetsToTxnRequest;
use crate::protocol::messages::add_partitions_to_txn::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnTopic,
};
use crate::protocol::messages::end_txn::EndTxnRequest;
use crate::protocol::messages::find_coordinator::FindCoordinatorRequest;
use crate::protocol::messages::init_producer_id::InitProducerIdRequest;
use crate::protocol::messages::txn_offset_commit::{
    TxnOffsetCommitRequest, TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use crate::protocol::ErrorCode;

/// Thread 0's side of the transactions.
#[derive(Debug, Default)]
pub(crate) struct TxnClient {
    /// The transaction coordinator's broker id.
    coordinator: Option<i32>,
    /// A group and its coordinator's broker id.
    group_coordinator: Option<(String, i32)>,
    /// The call being carried out, and its steps left (the first is next, or in flight).
    call: Option<Call>,
    plan: VecDeque<Step>,
    in_flight: bool,
    retry_at: Option<Instant>,
    backoff: Duration,
    /// The partitions of the AddPartitionsToTxn in flight.
    adding: Vec<Arc<PartitionState>>,
    /// The coordinator has something of the open transaction (a partition, a group's
    /// offsets): only then does ending it take an EndTxn (as the Java client, an empty
    /// transaction ends locally; a coordinator answers EndTxn on it INVALID_TXN_STATE).
    touched: bool,
}

impl EngineCore {
    fn txn_shared(&self) -> &Transactions {
        self.shared.txn.as_ref().expect("a transactional producer")
    }

    /// An owner drained records for `p`: it joins the current transaction (once), through
    /// thread 0.
    pub(super) fn join_transaction(&self, p: &Arc<PartitionState>) {
        let Some(t) = &self.shared.txn else {
            return;
        };
        let cur = t.current.load(SeqCst);
        if t.v2.load(SeqCst) {
            // Transactions v2: the Produce itself adds the partition (and marks the
            // transaction joined when it goes).
            p.txn_added.store(cur, SeqCst);
            return;
        }
        if p.txn_added.load(SeqCst) != cur && p.txn_queued.swap(cur, SeqCst) != cur {
            t.to_add.lock().push(p.clone());
            t.wanted.store(true, SeqCst);
            self.shared.io[0].wake();
        }
    }

    /// Whether `p`'s batches may go: not transactional, or `p` is in the current
    /// transaction.
    pub(super) fn in_transaction(&self, p: &PartitionState) -> bool {
        self.shared
            .txn
            .as_ref()
            .is_none_or(|t| p.txn_added.load(SeqCst) == t.current.load(SeqCst))
    }

    /// Whether thread 0 has transaction work it has not picked up.
    pub(super) fn txn_due(&self) -> bool {
        self.shared
            .txn
            .as_ref()
            .is_some_and(|t| t.wanted.load(SeqCst))
    }

    /// Thread 0: picks up callers' calls and partitions to add, and sends the next step.
    /// Returns when it next needs a turn.
    pub(super) fn txn_duties(&mut self, now: Instant) -> Option<Instant> {
        let t = self.shared.txn.as_ref()?;
        t.wanted.store(false, SeqCst);
        // The produce path lost the producer's sequence state with the broker (it wants a
        // new epoch): the open transaction cannot commit; its abort bumps the epoch.
        if self.shared.producer.get().bump_wanted
            && matches!(
                t.machine.lock().state,
                transaction::State::InTransaction | transaction::State::Committing
            )
        {
            t.fail(Error::transaction(
                TransactionError::Abortable,
                None,
                "the broker lost this producer's sequence state; abort the transaction (the \
                 abort gets a new epoch)",
            ));
            // A commit waiting for its records stops waiting.
            self.shared.notify_done();
        }
        if self.txn.call.is_none() {
            if let Some(op) = t.op.lock().take() {
                self.txn.call = Some(op.call);
                // After what is under way (an AddPartitionsToTxn for records sent before
                // the call): the answer to the step in flight pops the front of the plan.
                self.txn.plan.extend(op.steps);
            }
        }
        if self.txn.in_flight {
            return None;
        }
        if let Some(at) = self.txn.retry_at {
            if now < at {
                return Some(at);
            }
            self.txn.retry_at = None;
        }
        // Partitions first: an EndTxn must find them in the transaction.
        let adding = !t.to_add.lock().is_empty()
            && !self
                .txn
                .plan
                .iter()
                .any(|s| matches!(s, Step::AddPartitions))
            && !matches!(self.txn.call, Some(Call::Init))
            && self.shared.producer.get().ready;
        if adding {
            self.txn.plan.push_front(Step::AddPartitions);
        }
        loop {
            match self.txn.plan.front() {
                Some(Step::AddPartitions) if t.to_add.lock().is_empty() => {}
                Some(Step::EndTxn { .. }) if !self.txn.touched && !t.joined.load(SeqCst) => {}
                _ => break,
            }
            self.txn.plan.pop_front();
        }
        if self.txn.plan.is_empty() {
            if let Some(call) = self.txn.call {
                // An abort that must get a new epoch (KIP-360) does so before it returns.
                if call == Call::Abort && self.shared.producer.get().bump_wanted {
                    self.txn.plan.push_back(Step::InitProducerId { bump: true });
                } else {
                    self.txn.call = None;
                    t.finish(call, Ok(()));
                    return None;
                }
            } else {
                return None;
            }
        }
        let step = self.txn.plan.front().cloned().expect("checked");
        self.send_step(step, now)
    }

    /// Sends `step` if its connection is ready (connecting to it otherwise).
    fn send_step(&mut self, step: Step, now: Instant) -> Option<Instant> {
        let conn = match step.target() {
            Target::Any => self.control_conn(now),
            Target::Transaction => match self.txn.coordinator {
                Some(b) => self.broker_conn(b, now),
                None => {
                    self.txn
                        .plan
                        .push_front(Step::FindCoordinator { group: None });
                    return Some(now);
                }
            },
            Target::Group => {
                let Step::TxnOffsetCommit { group } = &step else {
                    unreachable!("only TxnOffsetCommit goes to a group")
                };
                match &self.txn.group_coordinator {
                    Some((g, b)) if *g == group.group.group_id => self.broker_conn(*b, now),
                    _ => {
                        self.txn.plan.push_front(Step::FindCoordinator {
                            group: Some(group.group.group_id.clone()),
                        });
                        return Some(now);
                    }
                }
            }
        };
        let Some(i) = conn else {
            // Backing off before reconnecting, or the coordinator is not a known broker yet.
            self.shared.request_metadata();
            return Some(now + self.shared.config.retry_backoff);
        };
        let c = self.conns[i].as_mut().expect("live conn");
        if !c.accepts_requests() {
            // Its readiness, or an answer, wakes this thread.
            return c.throttled_until;
        }
        let addr = c.addr.clone();
        let versions = c.versions.expect("ready");
        let Some(tv) = versions.txn else {
            self.step_failed(Error::transaction(
                TransactionError::Fatal,
                Some(ErrorCode::UNSUPPORTED_VERSION),
                format!("broker {addr} does not support transactions"),
            ));
            return None;
        };
        let t = self.shared.txn.as_ref().expect("transactional");
        if matches!(step, Step::InitProducerId { .. }) {
            t.v2.store(tv.v2, SeqCst);
        }
        let ids = self.shared.producer.get().ids;
        let id = t.id.clone();
        let ctx = Ctx::Txn(step.clone());
        let sent = match &step {
            Step::FindCoordinator { group } => {
                let (key, key_type) = match group {
                    Some(g) => (g.clone(), 0),
                    None => (id, 1),
                };
                let v = tv.find_coordinator;
                let req = FindCoordinatorRequest {
                    key: if v < 4 { key.clone() } else { String::new() },
                    key_type,
                    coordinator_keys: if v >= 4 { vec![key] } else { Vec::new() },
                };
                c.conn.send(&req, v, true, now, ctx)
            }
            Step::InitProducerId { bump } => {
                let Some(v) = versions.init_producer_id else {
                    self.step_failed(Error::transaction(
                        TransactionError::Fatal,
                        Some(ErrorCode::UNSUPPORTED_VERSION),
                        format!("broker {addr} does not support InitProducerId"),
                    ));
                    return None;
                };
                let keep = *bump && v >= 3;
                let req = InitProducerIdRequest {
                    transactional_id: Some(id),
                    transaction_timeout_ms: t.timeout_ms,
                    producer_id: if keep { ids.producer_id } else { -1 },
                    producer_epoch: if keep { ids.epoch } else { -1 },
                };
                c.conn.send(&req, v, true, now, ctx)
            }
            Step::AddPartitions => {
                let parts: Vec<_> = std::mem::take(&mut *t.to_add.lock());
                let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
                for p in &parts {
                    match topics.iter_mut().find(|x| *x.name == *p.topic) {
                        Some(x) => x.partitions.push(p.partition),
                        None => topics.push(AddPartitionsToTxnTopic {
                            name: p.topic.to_string(),
                            partitions: vec![p.partition],
                        }),
                    }
                }
                self.txn.adding = parts;
                let req = AddPartitionsToTxnRequest {
                    transactional_id: id,
                    producer_id: ids.producer_id,
                    producer_epoch: ids.epoch,
                    topics,
                };
                c.conn.send(&req, tv.add_partitions, true, now, ctx)
            }
            Step::AddOffsets { group } => {
                let req = AddOffsetsToTxnRequest {
                    transactional_id: id,
                    producer_id: ids.producer_id,
                    producer_epoch: ids.epoch,
                    group_id: group.group.group_id.clone(),
                };
                c.conn.send(&req, tv.add_offsets, true, now, ctx)
            }
            Step::TxnOffsetCommit { group } => {
                let req = offset_commit(id, ids, group);
                c.conn.send(&req, tv.txn_offset_commit, true, now, ctx)
            }
            Step::EndTxn { commit } => {
                let req = EndTxnRequest {
                    transactional_id: id,
                    producer_id: ids.producer_id,
                    producer_epoch: ids.epoch,
                    committed: *commit,
                };
                c.conn.send(&req, tv.end_txn, true, now, ctx)
            }
        };
        match sent {
            Ok(_) => {
                log::trace!("kprod: {} sent to {addr}", step.name());
                self.txn.in_flight = true;
            }
            Err(e) => {
                log::error!("kprod: encoding a transaction request failed: {e}");
                self.requeue_adding();
                self.step_failed(Error::transaction(
                    TransactionError::Fatal,
                    None,
                    format!("encoding a transaction request failed: {e}"),
                ));
            }
        }
        None
    }

    /// The partitions of a lost AddPartitionsToTxn go back in line.
    fn requeue_adding(&mut self) {
        let adding = std::mem::take(&mut self.txn.adding);
        if !adding.is_empty() {
            let t = self.txn_shared();
            t.to_add.lock().extend(adding);
        }
    }

    /// The call fails with `e` (a background step's failure makes the transaction abortable,
    /// or ends the producer).
    fn step_failed(&mut self, e: Error) {
        log::warn!("kprod: {e}");
        self.txn.plan.clear();
        self.txn.adding.clear();
        let fatal = matches!(
            e.transaction_error(),
            Some(TransactionError::Fenced | TransactionError::Fatal)
        );
        let t = self.shared.txn.as_ref().expect("transactional");
        match self.txn.call.take() {
            Some(call) => t.finish(call, Err(e.clone())),
            None => t.fail(e.clone()),
        }
        self.shared.notify_done();
        if fatal {
            self.shared.set_fatal(e);
        }
    }

    /// A step's request was lost with its connection: find the coordinator again, and send
    /// the step again after the backoff.
    pub(super) fn txn_lost(&mut self, step: Step, now: Instant) {
        self.txn.in_flight = false;
        if matches!(step, Step::AddPartitions) {
            self.requeue_adding();
        }
        self.rediscover(&step);
        self.backoff_step(now);
    }

    fn rediscover(&mut self, step: &Step) {
        match step.target() {
            Target::Group => self.txn.group_coordinator = None,
            _ => self.txn.coordinator = None,
        }
    }

    fn backoff_step(&mut self, now: Instant) {
        let cfg = &self.shared.config;
        let b = self.txn.backoff.max(cfg.retry_backoff);
        self.txn.backoff = (b * 2).min(cfg.retry_backoff_max);
        let wait = self.jitter(b);
        self.txn.retry_at = Some(now + wait);
        self.shared.io[0].wake();
    }

    /// The answer to `step`.
    pub(super) fn on_txn(
        &mut self,
        step: Step,
        frame: &[u8],
        version: i16,
        now: Instant,
    ) -> Result<(), String> {
        self.txn.in_flight = false;
        let name = |e: crate::protocol::DecodeError| format!("{step:?}: {e}");
        let (code, message) = match &step {
            Step::FindCoordinator { group } => {
                let (_, r) = lenient::<FindCoordinatorRequest>(frame, version).map_err(name)?;
                let (code, msg, node) = match r.coordinators.first() {
                    Some(c) if version >= 4 => (c.error_code, c.error_message.clone(), c.node_id),
                    _ => (r.error_code, r.error_message.clone(), r.node_id),
                };
                let code = ErrorCode(code);
                if code.is_ok() {
                    match group {
                        Some(g) => self.txn.group_coordinator = Some((g.clone(), node)),
                        None => self.txn.coordinator = Some(node),
                    }
                    if !self.shared.brokers.load().contains_key(&node) {
                        self.shared.request_metadata();
                    }
                }
                (code, msg)
            }
            Step::InitProducerId { bump } => {
                let (_, r) = lenient::<InitProducerIdRequest>(frame, version).map_err(name)?;
                let code = ErrorCode(r.error_code);
                if code.is_ok() {
                    let ids = ProducerIds {
                        producer_id: r.producer_id,
                        epoch: r.producer_epoch,
                    };
                    // Partitions adopt the ids (sequences from 0) before they send.
                    self.shared.producer.set_ids(ids, *bump);
                    if *bump {
                        Metrics::add(&self.shared.metrics.epoch_bumps, 1);
                    }
                    log::info!(
                        "kprod: transactional producer {:?}: id {} epoch {}",
                        self.txn_shared().id,
                        ids.producer_id,
                        ids.epoch
                    );
                    self.shared.wake_all();
                }
                (code, None)
            }
            Step::AddPartitions => {
                let (_, r) = lenient::<AddPartitionsToTxnRequest>(frame, version).map_err(name)?;
                let cur = self.txn_shared().current.load(SeqCst);
                let adding = std::mem::take(&mut self.txn.adding);
                let mut worst = ErrorCode::NONE;
                let mut again = Vec::new();
                for p in adding {
                    let code = r
                        .results
                        .iter()
                        .find(|t| *t.name == *p.topic)
                        .and_then(|t| {
                            t.results_by_partition
                                .iter()
                                .find(|x| x.partition_index == p.partition)
                        })
                        .map_or(ErrorCode::OPERATION_NOT_ATTEMPTED, |x| {
                            ErrorCode(x.partition_error_code)
                        });
                    if code.is_ok() {
                        p.txn_added.store(cur, SeqCst);
                        self.txn.touched = true;
                    } else {
                        if worst.is_ok() || worst == ErrorCode::OPERATION_NOT_ATTEMPTED {
                            worst = code;
                        }
                        again.push(p);
                    }
                }
                if !again.is_empty() {
                    self.txn_shared().to_add.lock().extend(again);
                }
                // Their batches may go now.
                self.shared.wake_all();
                (worst, None)
            }
            Step::AddOffsets { .. } => {
                let (_, r) = lenient::<AddOffsetsToTxnRequest>(frame, version).map_err(name)?;
                (ErrorCode(r.error_code), None)
            }
            Step::TxnOffsetCommit { .. } => {
                let (_, r) = lenient::<TxnOffsetCommitRequest>(frame, version).map_err(name)?;
                let worst = r
                    .topics
                    .iter()
                    .flat_map(|t| t.partitions.iter())
                    .map(|p| ErrorCode(p.error_code))
                    .find(|c| !c.is_ok())
                    .unwrap_or(ErrorCode::NONE);
                (worst, None)
            }
            Step::EndTxn { .. } => {
                let (_, r) = lenient::<EndTxnRequest>(frame, version).map_err(name)?;
                let code = ErrorCode(r.error_code);
                if code.is_ok() && version >= 5 && r.producer_id >= 0 {
                    // Transactions v2 (KIP-890): every transaction end bumps the epoch.
                    let ids = ProducerIds {
                        producer_id: r.producer_id,
                        epoch: r.producer_epoch,
                    };
                    self.shared.producer.set_ids(ids, false);
                }
                (code, None)
            }
        };
        match transaction::on_answer(&step, code, message.as_deref()) {
            Reaction::Done => {
                self.txn.backoff = self.shared.config.retry_backoff;
                match step {
                    Step::AddPartitions | Step::AddOffsets { .. } => self.txn.touched = true,
                    Step::EndTxn { .. } => {
                        self.txn.touched = false;
                        self.txn_shared().joined.store(false, SeqCst);
                    }
                    _ => {}
                }
                // The answered step is the plan's front (one step in flight; calls queue
                // behind it).
                debug_assert_eq!(self.txn.plan.front().map(Step::name), Some(step.name()));
                if self.txn.plan.front().map(Step::name) == Some(step.name()) {
                    self.txn.plan.pop_front();
                }
                self.shared.io[0].wake();
            }
            Reaction::Retry { rediscover } => {
                log::debug!("kprod: {} answered {}; again", step.name(), code.name());
                if rediscover {
                    self.rediscover(&step);
                }
                self.backoff_step(now);
            }
            Reaction::Fail(e) => {
                if matches!(step, Step::AddPartitions) {
                    self.txn_shared().to_add.lock().clear();
                }
                self.step_failed(e);
            }
        }
        Ok(())
    }

    /// When thread 0's transaction work next needs a turn (merged into its deadline).
    pub(super) fn txn_deadline(&self, next: &mut Option<Instant>) {
        if self.shared.txn.is_some() {
            merge(next, self.txn.retry_at);
        }
    }
}

/// The TxnOffsetCommit for a group's offsets.
fn offset_commit(id: String, ids: ProducerIds, g: &GroupOffsets) -> TxnOffsetCommitRequest {
    let mut topics: Vec<TxnOffsetCommitRequestTopic> = Vec::new();
    for o in g.offsets.iter() {
        let p = TxnOffsetCommitRequestPartition {
            partition_index: o.partition,
            committed_offset: o.offset,
            committed_leader_epoch: o.leader_epoch.unwrap_or(-1),
            committed_metadata: o.metadata.clone(),
        };
        match topics.iter_mut().find(|t| t.name == o.topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(TxnOffsetCommitRequestTopic {
                name: o.topic.clone(),
                partitions: vec![p],
            }),
        }
    }
    TxnOffsetCommitRequest {
        transactional_id: id,
        group_id: g.group.group_id.clone(),
        producer_id: ids.producer_id,
        producer_epoch: ids.epoch,
        generation_id: g.group.generation_id,
        member_id: g.group.member_id.clone(),
        group_instance_id: g.group.group_instance_id.clone(),
        topics,
    }
}
