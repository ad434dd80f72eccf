//! The cluster's data: topics, partition logs, producer state, statistics and armed faults.
//! Everything here sits behind one mutex owned by [`super::Shared`]; nothing here does I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use bytes::Bytes;

use crate::protocol::codec::DecodeError;
use crate::protocol::codec::Uuid;
use crate::protocol::record_batch::{check_one, decode_one, RecordBatch};
use crate::protocol::{ErrorCode, RequestHeader};

use super::{AppendError, CapturedRequest, ProduceCapture, StoredRecord, MAX_CAPTURED_REQUESTS};

/// The largest decompressed size of one batch the mock accepts.
pub(crate) const MAX_BATCH_DECOMPRESSED: usize = 64 << 20;

/// The batches of `data` (a Produce request's records), each with the bytes it occupies:
/// decoded with their records, or with `records` left empty (sink mode, which keeps none)
/// after the same checks. All or nothing: an error in any batch is the error.
pub(crate) fn read_batches(
    data: &Bytes,
    records: bool,
) -> Result<Vec<(RecordBatch, usize)>, DecodeError> {
    let read = if records { decode_one } else { check_one };
    let mut batches = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let (batch, used) = read(&data.slice(pos..), MAX_BATCH_DECOMPRESSED)?;
        batches.push((batch, used));
        pos += used;
    }
    Ok(batches)
}

/// How many recent batches per producer and partition are remembered for duplicate detection
/// (Kafka's `NUM_BATCHES_TO_RETAIN`).
const RECENT_BATCHES: usize = 5;

/// One stored batch: where it ends and its bytes as stored (base offset rewritten).
#[derive(Debug, Clone)]
pub(crate) struct StoredBatch {
    /// One past the batch's last offset.
    pub next_offset: i64,
    pub max_timestamp: i64,
    pub raw: Bytes,
}

/// A partition: its leader and its log.
#[derive(Debug, Clone)]
pub(crate) struct Partition {
    pub leader: i32,
    pub leader_epoch: i32,
    pub log: Vec<StoredBatch>,
    /// The next offset to assign (advances in sink mode too, where `log` stays empty).
    pub end_offset: i64,
}

/// A topic.
#[derive(Debug, Clone)]
pub(crate) struct Topic {
    pub id: Uuid,
    pub partitions: Vec<Partition>,
    /// The topic's `max.message.bytes`: a batch larger than this on the wire is refused with
    /// MESSAGE_TOO_LARGE, before anything is appended (`None`: no limit).
    pub max_message_bytes: Option<usize>,
}

/// Idempotence state of one producer on one partition.
#[derive(Debug, Clone)]
pub(crate) struct SequenceState {
    pub epoch: i16,
    pub last_sequence: i32,
    /// (first sequence, last sequence, base offset) of the last few batches, oldest first.
    pub recent: VecDeque<(i32, i32, i64)>,
}

/// What the idempotence check decided for one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SequenceCheck {
    /// Not an idempotent batch (producer id -1): append without checks.
    Plain,
    /// Append, then record the batch.
    Append,
    /// A retry of a batch already stored at this base offset: store nothing.
    Duplicate(i64),
}

/// Statistics per API.
#[derive(Debug, Default, Clone)]
pub(crate) struct ApiStats {
    pub count: u64,
    pub versions: BTreeSet<i16>,
}

/// Everything mutable about the cluster.
#[derive(Debug)]
pub(crate) struct State {
    pub brokers: i32,
    pub topics: BTreeMap<String, Topic>,
    /// Producer id → its current epoch, for ids this cluster handed out.
    pub producers: HashMap<i64, i16>,
    pub next_producer_id: i64,
    pub sequences: HashMap<(i64, String, i32), SequenceState>,
    pub stats: BTreeMap<i16, ApiStats>,
    pub errors: Vec<String>,
    pub captures: Vec<ProduceCapture>,
    /// Requests other than Produce and Fetch, the last `MAX_CAPTURED_REQUESTS`.
    pub requests: VecDeque<CapturedRequest>,
    /// Armed faults.
    pub fail: HashMap<i16, VecDeque<ErrorCode>>,
    /// Produce requests to answer with these codes after appending their batches.
    pub fail_after_append: VecDeque<ErrorCode>,
    /// Broker id → the `throttle_time_ms` its Produce responses carry (a quota).
    pub throttle_ms: BTreeMap<i32, i32>,
    /// Per broker (index = id - 1): requests left until one is answered by closing.
    pub drop_on_request: Vec<Option<u32>>,
    /// Per broker: bytes left until the connection reading them is cut.
    pub drop_after_bytes: Vec<Option<u64>>,
    /// The transaction coordinator's data ([`super::coordinator`]).
    pub txn: super::coordinator::TxnData,
    /// The simulation's virtual clock, for the coordinator's timeouts and marker delays
    /// (`None`: the wall clock).
    pub clock: Option<std::sync::Arc<parking_lot::Mutex<std::time::Instant>>>,
    next_topic_id: u64,
}

/// Whether Kafka would accept `name` as a topic name.
pub(crate) fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The sequence after `s`, wrapping at `i32::MAX` to 0 as Kafka does.
fn next_sequence(s: i32) -> i32 {
    if s == i32::MAX {
        0
    } else {
        s + 1
    }
}

/// The last sequence of a batch starting at `first` with `last_offset_delta`.
fn last_sequence(first: i32, last_offset_delta: i32) -> i32 {
    ((i64::from(first) + i64::from(last_offset_delta.max(0))) % (i64::from(i32::MAX) + 1)) as i32
}

impl State {
    pub fn new(brokers: i32, first_producer_id: i64) -> State {
        State {
            brokers,
            topics: BTreeMap::new(),
            producers: HashMap::new(),
            next_producer_id: first_producer_id,
            sequences: HashMap::new(),
            stats: BTreeMap::new(),
            errors: Vec::new(),
            captures: Vec::new(),
            throttle_ms: BTreeMap::new(),
            requests: VecDeque::new(),
            fail: HashMap::new(),
            fail_after_append: VecDeque::new(),
            drop_on_request: vec![None; brokers as usize],
            drop_after_bytes: vec![None; brokers as usize],
            txn: Default::default(),
            clock: None,
            next_topic_id: 1,
        }
    }

    /// The default leader of partition `p`: brokers take turns.
    pub fn default_leader(&self, p: i32) -> i32 {
        1 + p.rem_euclid(self.brokers)
    }

    /// Creates a topic unless it exists; `leaders[p]`, when given, places partition `p`.
    /// Returns whether it was created.
    pub fn create_topic(&mut self, name: &str, partitions: i32, leaders: Option<&[i32]>) -> bool {
        if self.topics.contains_key(name) {
            return false;
        }
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&0x6b70_726f_645f_6d6bu64.to_be_bytes()); // "kprod_mk"
        id[8..].copy_from_slice(&self.next_topic_id.to_be_bytes());
        self.next_topic_id += 1;
        let partitions = (0..partitions.max(0))
            .map(|p| Partition {
                leader: leaders
                    .and_then(|l| l.get(p as usize).copied())
                    .unwrap_or_else(|| self.default_leader(p)),
                leader_epoch: 0,
                log: Vec::new(),
                end_offset: 0,
            })
            .collect();
        self.topics.insert(
            name.to_string(),
            Topic {
                id: Uuid(id),
                partitions,
                max_message_bytes: None,
            },
        );
        true
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&Partition> {
        let p = usize::try_from(partition).ok()?;
        self.topics.get(topic)?.partitions.get(p)
    }

    pub fn partition_mut(&mut self, topic: &str, partition: i32) -> Option<&mut Partition> {
        let p = usize::try_from(partition).ok()?;
        self.topics.get_mut(topic)?.partitions.get_mut(p)
    }

    /// Takes the next armed error for `api`, if any.
    /// Keeps a request for [`super::MockCluster::requests`], dropping the oldest at the cap.
    pub fn capture_request(&mut self, broker: i32, header: &RequestHeader, body: &[u8]) {
        if self.requests.len() == MAX_CAPTURED_REQUESTS {
            self.requests.pop_front();
        }
        self.requests.push_back(CapturedRequest {
            broker,
            api_key: header.api_key.0,
            api_version: header.api_version,
            client_id: header.client_id.clone(),
            body: Bytes::copy_from_slice(body),
        });
    }

    pub fn take_failure(&mut self, api: i16) -> Option<ErrorCode> {
        let q = self.fail.get_mut(&api)?;
        let e = q.pop_front();
        if q.is_empty() {
            self.fail.remove(&api);
        }
        e
    }

    /// Now, by the coordinator's clock.
    pub fn now(&self) -> std::time::Instant {
        self.clock
            .as_ref()
            .map_or_else(std::time::Instant::now, |c| *c.lock())
    }

    /// Appends `data`'s raw batches, as [`read_batches`] read them into `batches`, to a
    /// partition, assigning offsets by rewriting each batch's base offset (which the CRC does
    /// not cover). Returns the first offset assigned. With `keep == false` only the offsets
    /// advance.
    pub fn append(
        &mut self,
        topic: &str,
        partition: i32,
        data: &Bytes,
        batches: &[(RecordBatch, usize)],
        keep: bool,
    ) -> Result<i64, AppendError> {
        let mut pos = 0;
        let batches: Vec<_> = batches
            .iter()
            .map(|(batch, used)| {
                let at = pos;
                pos += used;
                (batch.last_offset_delta, batch.max_timestamp, at, *used)
            })
            .collect();
        let p = self
            .partition_mut(topic, partition)
            .ok_or(AppendError::UnknownPartition)?;
        let first = p.end_offset;
        for (last_delta, max_timestamp, at, used) in batches {
            let base = p.end_offset;
            let next = base + i64::from(last_delta.max(0)) + 1;
            if keep {
                let mut raw = data[at..at + used].to_vec();
                raw[0..8].copy_from_slice(&base.to_be_bytes());
                p.log.push(StoredBatch {
                    next_offset: next,
                    max_timestamp,
                    raw: Bytes::from(raw),
                });
            }
            p.end_offset = next;
        }
        Ok(first)
    }

    /// The idempotence check for one batch bound for `topic`/`partition`. Changes nothing
    /// unless the batch is to be appended, in which case the producer's sequence state advances;
    /// the caller then records the batch's base offset with [`State::record_offset`].
    pub fn check_sequence(
        &mut self,
        topic: &str,
        partition: i32,
        batch: &RecordBatch,
    ) -> Result<SequenceCheck, ErrorCode> {
        let pid = batch.producer_id;
        if pid < 0 {
            return Ok(SequenceCheck::Plain);
        }
        let Some(&known_epoch) = self.producers.get(&pid) else {
            return Err(ErrorCode::UNKNOWN_PRODUCER_ID);
        };
        let epoch = batch.producer_epoch;
        if epoch < known_epoch {
            return Err(ErrorCode::INVALID_PRODUCER_EPOCH);
        }
        let first = batch.base_sequence;
        let last = last_sequence(first, batch.last_offset_delta);
        let key = (pid, topic.to_string(), partition);
        let fresh = SequenceState {
            epoch,
            last_sequence: last,
            recent: VecDeque::from([(first, last, -1)]),
        };
        match self.sequences.get_mut(&key) {
            None => {
                if first != 0 {
                    return Err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER);
                }
                self.sequences.insert(key, fresh);
            }
            Some(s) if epoch < s.epoch => return Err(ErrorCode::INVALID_PRODUCER_EPOCH),
            Some(s) if epoch > s.epoch => {
                if first != 0 {
                    return Err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER);
                }
                *s = fresh;
            }
            Some(s) => {
                if let Some(&(_, _, base)) =
                    s.recent.iter().find(|&&(f, l, _)| f == first && l == last)
                {
                    return Ok(SequenceCheck::Duplicate(base));
                }
                if first != next_sequence(s.last_sequence) {
                    return Err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER);
                }
                s.last_sequence = last;
                s.recent.push_back((first, last, -1));
                while s.recent.len() > RECENT_BATCHES {
                    s.recent.pop_front();
                }
            }
        }
        // A producer may bump its own epoch (KIP-360); follow it.
        self.producers.insert(pid, epoch);
        Ok(SequenceCheck::Append)
    }

    /// Records where an appended idempotent batch landed, for duplicate answers.
    pub fn record_offset(&mut self, topic: &str, partition: i32, batch: &RecordBatch, base: i64) {
        let key = (batch.producer_id, topic.to_string(), partition);
        let first = batch.base_sequence;
        if let Some(s) = self.sequences.get_mut(&key) {
            if let Some(entry) = s.recent.iter_mut().rev().find(|e| e.0 == first) {
                entry.2 = base;
            }
        }
    }

    /// The decoded records of a partition, in offset order.
    pub fn records(&self, topic: &str, partition: i32) -> Vec<StoredRecord> {
        self.records_where(topic, partition, |_| true)
    }

    /// What a read_committed consumer reads: up to the last stable offset, without the
    /// records of aborted transactions.
    pub fn committed_records(&self, topic: &str, partition: i32) -> Vec<StoredRecord> {
        let end = self.partition(topic, partition).map_or(0, |p| p.end_offset);
        let lso = self.last_stable_offset(topic, partition, end);
        let aborted = self
            .txn
            .aborted
            .get(&(topic.to_string(), partition))
            .map_or(&[][..], Vec::as_slice);
        self.records_where(topic, partition, |b| {
            b.base_offset < lso
                && !(b.transactional
                    && aborted.iter().any(|&(pid, first, marker)| {
                        pid == b.producer_id && (first..marker).contains(&b.base_offset)
                    }))
        })
    }

    /// The records of the batches `keep` accepts (control batches never), in offset order.
    fn records_where(
        &self,
        topic: &str,
        partition: i32,
        keep: impl Fn(&RecordBatch) -> bool,
    ) -> Vec<StoredRecord> {
        let mut out = Vec::new();
        for b in self.batches(topic, partition) {
            if b.control || !keep(&b) {
                continue;
            }
            for (i, r) in b.records.into_iter().enumerate() {
                out.push(StoredRecord {
                    offset: r.offset,
                    timestamp: r.timestamp,
                    key: r.key,
                    value: r.value,
                    headers: r.headers,
                    producer_id: b.producer_id,
                    sequence: if b.producer_id >= 0 {
                        last_sequence(b.base_sequence, i as i32)
                    } else {
                        -1
                    },
                });
            }
        }
        out
    }

    /// The decoded batches of a partition, in offset order.
    pub fn batches(&self, topic: &str, partition: i32) -> Vec<RecordBatch> {
        self.partition(topic, partition)
            .map(|p| {
                p.log
                    .iter()
                    .filter_map(|b| decode_one(&b.raw, MAX_BATCH_DECOMPRESSED).ok())
                    .map(|(b, _)| b)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Stored batches holding offsets from `offset` on: at least one, then up to about
    /// `max_bytes`; none that starts at or past `upto` (the last stable offset, for
    /// read_committed; `i64::MAX` otherwise).
    pub fn read(&self, p: &Partition, offset: i64, max_bytes: usize, upto: i64) -> Bytes {
        let start = p.log.partition_point(|b| b.next_offset <= offset);
        let mut out = Vec::new();
        for b in &p.log[start..] {
            let base = i64::from_be_bytes(b.raw[0..8].try_into().expect("8 bytes"));
            if base >= upto {
                break;
            }
            if !out.is_empty() && out.len() + b.raw.len() > max_bytes {
                break;
            }
            out.extend_from_slice(&b.raw);
        }
        Bytes::from(out)
    }

    /// The offset of the first record with a timestamp at or after `ts`, or -1.
    pub fn offset_for_timestamp(&self, p: &Partition, ts: i64) -> (i64, i64) {
        for b in p.log.iter().filter(|b| b.max_timestamp >= ts) {
            if let Ok((batch, _)) = decode_one(&b.raw, MAX_BATCH_DECOMPRESSED) {
                if let Some(r) = batch.records.iter().find(|r| r.timestamp >= ts) {
                    return (r.offset, r.timestamp);
                }
            }
        }
        (-1, -1)
    }

    /// The offset and timestamp of the record with the largest timestamp, or (-1, -1).
    pub fn max_timestamp_offset(&self, p: &Partition) -> (i64, i64) {
        let mut best = (-1, -1);
        for b in &p.log {
            if let Ok((batch, _)) = decode_one(&b.raw, MAX_BATCH_DECOMPRESSED) {
                for r in &batch.records {
                    if best.0 < 0 || r.timestamp > best.1 {
                        best = (r.offset, r.timestamp);
                    }
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_arithmetic_wraps() {
        assert_eq!(next_sequence(i32::MAX), 0);
        assert_eq!(last_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(last_sequence(5, 4), 9);
    }

    #[test]
    fn topic_names() {
        assert!(valid_topic_name("a.b_c-D9"));
        for bad in ["", ".", "..", "a b", "é", &"x".repeat(250)] {
            assert!(!valid_topic_name(bad), "{bad:?}");
        }
    }
}
