//! The mock's transaction coordinator, without I/O: state per transactional id (empty,
//! ongoing, complete commit/abort), fencing by epoch, the transaction timeout, COMMIT/ABORT
//! markers written to every partition of a transaction, each partition's last stable offset
//! and aborted transactions (what a read_committed Fetch needs), and group offsets that a
//! committed transaction made visible. Kafka's TransactionCoordinator is the model; the
//! prepare phases are instantaneous here (markers are written while the EndTxn is handled).
//!
//! The timeout is checked lazily: every transaction request, Fetch and ListOffsets first
//! aborts the transactions that have outlived theirs (so a test sees it at the next request
//! after the timeout).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::protocol::compression::{CompressionConfig, Compressor};
use crate::protocol::record_batch::{BatchHeader, RecordBatchBuilder};
use crate::protocol::ErrorCode;

use super::state::State;

/// Where a transactional id's transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionState {
    /// No transaction since the producer initialised.
    Empty,
    /// Partitions or a group were added; not yet ended.
    Ongoing,
    /// Ended with a commit; its markers are not all written yet (with
    /// [`transaction_marker_delay`](super::MockClusterBuilder::transaction_marker_delay)).
    PrepareCommit,
    /// Ended with an abort (by the producer, a fencing init or the timeout); markers pending.
    PrepareAbort,
    /// The last transaction committed.
    CompleteCommit,
    /// The last transaction aborted (by the producer, a new producer's init, or the timeout).
    CompleteAbort,
}

/// One transactional id.
#[derive(Debug, Clone)]
pub(crate) struct TxnEntry {
    pub producer_id: i64,
    pub epoch: i16,
    /// The epoch the producer gave to the init that made `epoch` (-1: none), to answer a
    /// retry of it.
    pub last_epoch: i16,
    pub timeout: Duration,
    pub state: TransactionState,
    pub started: Option<Instant>,
    /// In a prepare state: when its markers are written.
    pub markers_due: Option<Instant>,
    pub partitions: BTreeSet<(String, i32)>,
    pub groups: BTreeSet<String>,
    /// (group, topic, partition) → offset, visible at commit.
    pub pending_offsets: BTreeMap<(String, String, i32), i64>,
}

/// An aborted transaction on one partition: (producer id, first offset, marker offset).
pub(crate) type Aborted = (i64, i64, i64);

/// The coordinator's data.
#[derive(Debug, Default)]
pub(crate) struct TxnData {
    pub ids: HashMap<String, TxnEntry>,
    /// Producer id → its transactional id.
    pub by_pid: HashMap<i64, String>,
    /// (topic, partition) → producer id → first offset of its ongoing transaction there.
    pub ongoing: HashMap<(String, i32), BTreeMap<i64, i64>>,
    /// (topic, partition) → its aborted transactions.
    pub aborted: HashMap<(String, i32), Vec<Aborted>>,
    /// (group, topic, partition) → committed offset.
    pub offsets: BTreeMap<(String, String, i32), i64>,
    /// Coordinator placement set by a test (key → broker id).
    pub placed: HashMap<String, i32>,
    /// Transactions aborted by their timeout.
    pub timed_out: u64,
    /// How long an ended transaction stays in its prepare state before its markers are
    /// written (zero: at once).
    pub marker_delay: Duration,
}

/// A producer's epoch check: PRODUCER_FENCED from versions that know it, else
/// INVALID_PRODUCER_EPOCH.
pub(crate) fn fenced(knows_fenced: bool) -> ErrorCode {
    if knows_fenced {
        ErrorCode::PRODUCER_FENCED
    } else {
        ErrorCode::INVALID_PRODUCER_EPOCH
    }
}

/// A marker batch: one control record (COMMIT or ABORT) under the producer's id and epoch.
fn marker(producer_id: i64, epoch: i16, commit: bool) -> Bytes {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes()); // version
    key.extend_from_slice(&i16::from(commit).to_be_bytes()); // 0 abort, 1 commit
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes()); // version
    value.extend_from_slice(&0i32.to_be_bytes()); // coordinator epoch
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let mut b = RecordBatchBuilder::new();
    b.append(
        now,
        Some(&key),
        Some(&value),
        &[] as &[crate::protocol::record_batch::Header],
    );
    let header = BatchHeader {
        producer_id,
        producer_epoch: epoch,
        base_sequence: -1,
        transactional: true,
        control: true,
        ..BatchHeader::default()
    };
    let mut out = Vec::new();
    let mut c = Compressor::new(CompressionConfig::default());
    b.finish(&header, &mut c, &mut out)
        .expect("an uncompressed marker encodes");
    Bytes::from(out)
}

impl State {
    /// The broker coordinating `key` (a transactional id or a group): placed by a test, else
    /// a stable hash over the brokers.
    pub fn coordinator_for(&self, key: &str) -> i32 {
        if let Some(&b) = self.txn.placed.get(key) {
            return b;
        }
        let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        1 + (h % self.brokers.max(1) as u64) as i32
    }

    /// The coordinator's clock: writes the markers that are due, then aborts the ongoing
    /// transactions that outlived their timeout (epoch bumped: the producer is fenced).
    pub fn expire_transactions(&mut self, now: Instant) {
        let due: Vec<String> = self
            .txn
            .ids
            .iter()
            .filter(|(_, e)| e.markers_due.is_some_and(|t| now >= t))
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            self.write_markers(&id);
        }
        let expired: Vec<String> = self
            .txn
            .ids
            .iter()
            .filter(|(_, e)| {
                e.state == TransactionState::Ongoing
                    && e.started
                        .is_some_and(|t| now.saturating_duration_since(t) > e.timeout)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            let bump = {
                let e = self.txn.ids.get_mut(&id).expect("listed");
                e.epoch = e.epoch.saturating_add(1);
                (e.producer_id, e.epoch)
            };
            self.producers.insert(bump.0, bump.1);
            self.end_transaction(&id, false, now);
            self.txn.timed_out += 1;
        }
    }

    /// Ends `id`'s ongoing transaction: its prepare state, and its markers written
    /// [`TxnData::marker_delay`] from `now` (at once with none).
    pub fn end_transaction(&mut self, id: &str, commit: bool, now: Instant) {
        let delay = self.txn.marker_delay;
        let Some(e) = self.txn.ids.get_mut(id) else {
            return;
        };
        e.state = if commit {
            TransactionState::PrepareCommit
        } else {
            TransactionState::PrepareAbort
        };
        e.started = None;
        e.markers_due = Some(now + delay);
        if delay.is_zero() {
            self.write_markers(id);
        }
    }

    /// Whether `id` is between its end and its markers.
    pub fn preparing(&self, id: &str) -> bool {
        self.txn.ids.get(id).is_some_and(|e| {
            matches!(
                e.state,
                TransactionState::PrepareCommit | TransactionState::PrepareAbort
            )
        })
    }

    /// Writes a prepared transaction's markers and completes it.
    fn write_markers(&mut self, id: &str) {
        let Some(e) = self.txn.ids.get_mut(id) else {
            return;
        };
        let commit = match e.state {
            TransactionState::PrepareCommit => true,
            TransactionState::PrepareAbort => false,
            _ => return,
        };
        let (pid, epoch) = (e.producer_id, e.epoch);
        let parts: Vec<(String, i32)> = std::mem::take(&mut e.partitions).into_iter().collect();
        let offsets = std::mem::take(&mut e.pending_offsets);
        e.groups.clear();
        e.markers_due = None;
        e.state = if commit {
            TransactionState::CompleteCommit
        } else {
            TransactionState::CompleteAbort
        };
        let m = marker(pid, epoch, commit);
        for (topic, p) in parts {
            let first = self
                .txn
                .ongoing
                .get_mut(&(topic.clone(), p))
                .and_then(|o| o.remove(&pid));
            let Ok(read) = super::state::read_batches(&m, true) else {
                continue;
            };
            let Ok(at) = self.append(&topic, p, &m, &read, true) else {
                continue;
            };
            if let (false, Some(first)) = (commit, first) {
                self.txn
                    .aborted
                    .entry((topic, p))
                    .or_default()
                    .push((pid, first, at));
            }
        }
        if commit {
            self.txn.offsets.extend(offsets);
        }
    }

    /// InitProducerId with a transactional id: a new id, or the next epoch of the known one
    /// (an ongoing transaction is aborted first). `current`: the (id, epoch) the producer
    /// gave (v3+, KIP-360), `(-1, -1)` for none.
    pub fn init_transactional(
        &mut self,
        id: &str,
        timeout_ms: i32,
        current: (i64, i16),
        knows_fenced: bool,
    ) -> Result<(i64, i16), ErrorCode> {
        if timeout_ms <= 0 || timeout_ms > 900_000 {
            return Err(ErrorCode::INVALID_TRANSACTION_TIMEOUT);
        }
        let timeout = Duration::from_millis(timeout_ms as u64);
        if let Some(e) = self.txn.ids.get(id) {
            // A retry of the bump that made this epoch (its answer was lost): answered as
            // it was (Kafka keeps the last epoch for this, KIP-360).
            if current.0 == e.producer_id
                && current.1 >= 0
                && current.1 == e.last_epoch
                && e.state == TransactionState::Empty
            {
                return Ok((e.producer_id, e.epoch));
            }
            if current.0 >= 0 && (current.0 != e.producer_id || current.1 < e.epoch) {
                return Err(fenced(knows_fenced));
            }
            if self.preparing(id) {
                return Err(ErrorCode::CONCURRENT_TRANSACTIONS);
            }
            if e.state == TransactionState::Ongoing {
                if !self.txn.marker_delay.is_zero() {
                    // Fenced now; the init is answered once the abort's markers are out
                    // (the client retries), as Kafka's coordinator does.
                    let e = self.txn.ids.get_mut(id).expect("known");
                    e.epoch = e.epoch.saturating_add(1);
                    self.producers.insert(e.producer_id, e.epoch);
                    self.end_transaction(id, false, self.now());
                    return Err(ErrorCode::CONCURRENT_TRANSACTIONS);
                }
                self.end_transaction(id, false, self.now());
            }
            let e = self.txn.ids.get_mut(id).expect("known");
            e.last_epoch = if current.0 == e.producer_id {
                current.1
            } else {
                -1
            };
            e.epoch = e.epoch.saturating_add(1);
            e.timeout = timeout;
            e.state = TransactionState::Empty;
            let ids = (e.producer_id, e.epoch);
            self.producers.insert(ids.0, ids.1);
            return Ok(ids);
        }
        let pid = self.next_producer_id;
        self.next_producer_id += 1;
        self.producers.insert(pid, 0);
        self.txn.by_pid.insert(pid, id.to_string());
        self.txn.ids.insert(
            id.to_string(),
            TxnEntry {
                producer_id: pid,
                epoch: 0,
                last_epoch: -1,
                timeout,
                state: TransactionState::Empty,
                started: None,
                markers_due: None,
                partitions: BTreeSet::new(),
                groups: BTreeSet::new(),
                pending_offsets: BTreeMap::new(),
            },
        );
        Ok((pid, 0))
    }

    /// The entry for `id` if `(pid, epoch)` is its producer now.
    pub fn txn_producer(
        &mut self,
        id: &str,
        pid: i64,
        epoch: i16,
        knows_fenced: bool,
    ) -> Result<&mut TxnEntry, ErrorCode> {
        let e = self
            .txn
            .ids
            .get_mut(id)
            .ok_or(ErrorCode::INVALID_PRODUCER_ID_MAPPING)?;
        if e.producer_id != pid {
            return Err(ErrorCode::INVALID_PRODUCER_ID_MAPPING);
        }
        if epoch != e.epoch {
            return Err(fenced(knows_fenced));
        }
        Ok(e)
    }

    /// Marks `e` ongoing (its timeout runs from its first addition).
    pub fn start_if_needed(e: &mut TxnEntry, now: Instant) {
        if e.state != TransactionState::Ongoing {
            e.state = TransactionState::Ongoing;
            e.started = Some(now);
        }
    }

    /// Whether a transactional batch from `(pid, epoch)` may go to `topic`/`partition`: the
    /// partition must be in the producer's ongoing transaction, or with `implicit`
    /// (transactions v2) the batch adds it.
    pub fn check_transactional_batch(
        &mut self,
        topic: &str,
        partition: i32,
        pid: i64,
        epoch: i16,
        implicit: bool,
    ) -> Result<(), ErrorCode> {
        let now = self.now();
        let e = self
            .txn
            .by_pid
            .get(&pid)
            .and_then(|id| self.txn.ids.get_mut(id))
            .ok_or(ErrorCode::INVALID_PRODUCER_ID_MAPPING)?;
        if epoch < e.epoch {
            return Err(ErrorCode::INVALID_PRODUCER_EPOCH);
        }
        let key = (topic.to_string(), partition);
        if matches!(
            e.state,
            TransactionState::PrepareCommit | TransactionState::PrepareAbort
        ) {
            return Err(ErrorCode::CONCURRENT_TRANSACTIONS);
        }
        if implicit && epoch == e.epoch {
            State::start_if_needed(e, now);
            e.partitions.insert(key);
            return Ok(());
        }
        if e.state != TransactionState::Ongoing || !e.partitions.contains(&key) {
            return Err(ErrorCode::INVALID_TXN_STATE);
        }
        Ok(())
    }

    /// A transactional batch of `pid` landed at `base`: the transaction's first offset there.
    pub fn note_transactional_batch(&mut self, topic: &str, partition: i32, pid: i64, base: i64) {
        self.txn
            .ongoing
            .entry((topic.to_string(), partition))
            .or_default()
            .entry(pid)
            .or_insert(base);
    }

    /// The last stable offset: the first offset of the earliest ongoing transaction, else the
    /// high watermark.
    pub fn last_stable_offset(&self, topic: &str, partition: i32, end: i64) -> i64 {
        self.txn
            .ongoing
            .get(&(topic.to_string(), partition))
            .and_then(|o| o.values().min().copied())
            .map_or(end, |first| first.min(end))
    }

    /// The aborted transactions overlapping offsets `from..upto` of a partition.
    pub fn aborted_in(&self, topic: &str, partition: i32, from: i64, upto: i64) -> Vec<(i64, i64)> {
        self.txn
            .aborted
            .get(&(topic.to_string(), partition))
            .map(|v| {
                v.iter()
                    .filter(|&&(_, first, last)| last >= from && first < upto)
                    .map(|&(pid, first, _)| (pid, first))
                    .collect()
            })
            .unwrap_or_default()
    }
}
