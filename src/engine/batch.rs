//! The batch builder: records drained from a partition's ring become RecordBatches here.
//!
//! [`Accumulator`] is one partition's producer-side state, without sockets or clocks (time comes
//! in as `now`): the open batch being filled, the closed batches waiting to be sent (retries
//! first, in sequence order), how many are in flight, and the next idempotent sequence number.
//! The I/O thread that owns the partition's leader drives it.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::delivery::{Completer, DeliveryResult, RecordMetadata};
use crate::engine::headers::Headers;
use crate::error::{DeliveryStatus, Error};
use crate::protocol::compression::{Compression, Compressor};
use crate::protocol::record_batch::{
    decode_one, estimated_record_size, restamp_producer_state, BatchHeader, EncodeHeaders,
    RecordBatchBuilder,
};

/// A RecordBatch's fixed header, which every batch carries.
pub(crate) const BATCH_OVERHEAD: usize = 61;
/// How much a record's encoding can exceed [`estimated_record_size`] (timestamp and offset
/// deltas).
const DELTA_SLACK: usize = 14;

/// A record in a partition's ring, as the caller enqueued it.
#[derive(Debug)]
pub(crate) struct PendingRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Headers,
    /// Create time, ms since the epoch.
    pub timestamp: i64,
    pub completer: Completer,
    /// Bytes reserved from the producer's buffer for it ([`Self::reserved`]; 4 bytes, see
    /// [`SentAt`]).
    pub room: u32,
    /// When it was sent, if it is timed through its stages ([`crate::engine::Shared::stage_sample`]).
    pub enqueued: Option<SentAt>,
}

/// When a timed record was sent, in 4 bytes, so that a ring slot stays at 128 (an `Instant`
/// took it to 144, and the `send()` call bench ran ~20% slower): microseconds on a
/// process-wide monotonic clock, wrapping every 71 minutes. The I/O thread reads it back as an
/// [`Instant`] when it takes the record from the ring; a record that waited there longer than
/// that would be timed 71 minutes short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SentAt(NonZeroU32);

// Two cache lines per ring slot at most (the `send()` call copies the record into one).
const _: () = assert!(std::mem::size_of::<PendingRecord>() <= 128);

impl SentAt {
    /// Now.
    pub fn now() -> SentAt {
        SentAt::at(Instant::now())
    }

    fn at(t: Instant) -> SentAt {
        // Truncated to 32 bits on purpose: only differences are read.
        let us = t.saturating_duration_since(Self::base()).as_micros() as u32;
        SentAt(NonZeroU32::new(us).unwrap_or(NonZeroU32::MIN))
    }

    /// The instant it stands for, read at `now` (less than 71 minutes after it).
    pub fn instant(self, now: Instant) -> Instant {
        let ago = SentAt::at(now).0.get().wrapping_sub(self.0.get());
        now.checked_sub(Duration::from_micros(u64::from(ago)))
            .unwrap_or(now)
    }

    /// The clock's zero, fixed by its first use ([`crate::engine::Shared::new`]).
    pub fn base() -> Instant {
        static BASE: OnceLock<Instant> = OnceLock::new();
        *BASE.get_or_init(Instant::now)
    }
}

impl PendingRecord {
    /// The size a record counts for in the buffer: its encoding, bounded above.
    pub fn buffer_size(
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &(impl EncodeHeaders + ?Sized),
    ) -> usize {
        estimated_record_size(key, value, headers) + DELTA_SLACK
    }

    /// `size` as stored in [`room`](Self::room): a record too big for 32 bits counts as
    /// `u32::MAX`, more than `max.request.size` (an `i32`) allows, and is refused.
    pub fn room(size: usize) -> u32 {
        u32::try_from(size).unwrap_or(u32::MAX)
    }

    /// Bytes reserved from the producer's buffer for it.
    pub fn reserved(&self) -> usize {
        self.room as usize
    }
}

/// Producer id, epoch and whether to number batches (idempotence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerIds {
    pub producer_id: i64,
    pub epoch: i16,
}

impl ProducerIds {
    /// No idempotence.
    pub const NONE: ProducerIds = ProducerIds {
        producer_id: -1,
        epoch: -1,
    };
    pub fn idempotent(self) -> bool {
        self.producer_id >= 0
    }
}

/// The completions a batch owes, one per record. Fire-and-forget records are only counted;
/// the others keep their completer, index and timestamp. Completing a batch of `send()`s so
/// costs nothing per record.
#[derive(Debug, Default)]
pub(crate) struct Completions {
    records: usize,
    waiting: Vec<Waiting>,
}

/// A record whose outcome someone waits for (a handle or a callback).
#[derive(Debug)]
struct Waiting {
    /// Its place in the batch: its offset is the batch's base offset plus this.
    index: u32,
    timestamp: i64,
    completer: Completer,
}

impl Completions {
    /// One record's completion.
    pub fn one(completer: Completer) -> Self {
        let mut c = Completions::default();
        c.push(0, completer);
        c
    }

    /// Adds the next record.
    pub fn push(&mut self, timestamp: i64, completer: Completer) {
        if completer.is_forget() {
            completer.disarm();
        } else {
            self.waiting.push(Waiting {
                index: self.records as u32,
                timestamp,
                completer,
            });
        }
        self.records += 1;
    }

    /// Records counted, forgotten ones included.
    pub fn len(&self) -> usize {
        self.records
    }

    /// Records whose outcome someone waits for (handles and callbacks).
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Whether every waiting record's completer is passive ([`Completer::is_passive`]): only
    /// kprod's own hooks see their outcome.
    pub fn all_passive(&self) -> bool {
        self.waiting.iter().all(|w| w.completer.is_passive())
    }

    /// Moves the records with a callback out, keeping their places; the count and the other
    /// records stay. No allocation when all or none have one.
    pub fn take_callbacks(&mut self) -> Completions {
        let records = self.records;
        let callbacks = self
            .waiting
            .iter()
            .filter(|w| w.completer.is_callback())
            .count();
        let waiting = if callbacks == 0 {
            Vec::new()
        } else if callbacks == self.waiting.len() {
            std::mem::take(&mut self.waiting)
        } else {
            let (cb, rest) = std::mem::take(&mut self.waiting)
                .into_iter()
                .partition(|w| w.completer.is_callback());
            self.waiting = rest;
            cb
        };
        Completions { records, waiting }
    }

    /// Moves the records from `at` on into a new set, numbered from 0 there.
    pub fn split_off(&mut self, at: usize) -> Completions {
        let at = at.min(self.records);
        let first_later = self.waiting.partition_point(|w| (w.index as usize) < at);
        let waiting = self
            .waiting
            .split_off(first_later)
            .into_iter()
            .map(|w| Waiting {
                index: w.index - at as u32,
                ..w
            })
            .collect();
        let records = self.records - at;
        self.records = at;
        Completions { records, waiting }
    }

    /// Takes the records someone waits for (to fail them), keeping the count: the batch's
    /// sequences still span every record.
    pub fn take_waiting(&mut self) -> Completions {
        let waiting = std::mem::take(&mut self.waiting);
        Completions {
            records: waiting.len(),
            waiting,
        }
    }

    /// Takes them all, leaving room for as many waiting records as there were.
    fn take(&mut self) -> Completions {
        let cap = self.waiting.len();
        Completions {
            records: std::mem::take(&mut self.records),
            waiting: std::mem::replace(&mut self.waiting, Vec::with_capacity(cap)),
        }
    }

    /// Adds `other`'s records after these.
    pub fn append(&mut self, other: Completions) {
        let base = self.records as u32;
        self.waiting
            .extend(other.waiting.into_iter().map(|w| Waiting {
                index: base + w.index,
                ..w
            }));
        self.records += other.records;
    }

    /// Completes each waiting record: success from `base_offset` (offset -1 when unknown, as
    /// with acks=0), timestamps from the batch or the broker's append time.
    pub fn succeed(
        self,
        topic: &Arc<str>,
        partition: i32,
        base_offset: i64,
        append_time: Option<i64>,
        deliver: &mut dyn FnMut(Completer, DeliveryResult),
    ) {
        for w in self.waiting {
            let offset = if base_offset < 0 {
                -1
            } else {
                base_offset + i64::from(w.index)
            };
            deliver(
                w.completer,
                Ok(RecordMetadata {
                    topic: topic.clone(),
                    partition,
                    offset,
                    timestamp: append_time.unwrap_or(w.timestamp),
                }),
            );
        }
    }

    /// Completes each waiting record with `error`.
    pub fn fail(self, error: &Error, deliver: &mut dyn FnMut(Completer, DeliveryResult)) {
        for w in self.waiting {
            deliver(w.completer, Err(error.clone()));
        }
    }
}

/// A closed batch: the encoded RecordBatch and its records' completions.
#[derive(Debug)]
pub(crate) struct ProducerBatch {
    pub bytes: Bytes,
    /// The records' encoded size before compression.
    pub uncompressed: usize,
    pub completions: Completions,
    pub reserved: usize,
    pub base_sequence: i32,
    pub ids: ProducerIds,
    /// When its first record was drained from the ring: the delivery timeout runs from here.
    pub created: Instant,
    /// Sends so far.
    pub attempts: u32,
    /// Not before this (retry backoff).
    pub not_before: Option<Instant>,
    /// The last retriable failure, reported if the batch then times out.
    pub last_error: Option<Error>,
    /// An attempt ended without a definite answer (connection lost, request timed out,
    /// REQUEST_TIMED_OUT, ...): the broker may have written it. Such a batch is never
    /// renumbered; only resending it under its own ids can settle what happened.
    pub maybe_written: bool,
    /// Purged while in flight ([`crate::Producer::purge`]): its records have failed and
    /// their room is given back; what the broker answers now only settles its sequences, and
    /// it is never sent again.
    pub purged: bool,
    /// When its timed record (if it has one) passed the stages so far.
    pub stages: Option<StageStamps>,
}

/// When a record timed through its stages (`stage_sampling`) passed each: sent, in a closed
/// batch, written to the socket (the last attempt). Acknowledged and delivered are read when
/// they happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StageStamps {
    pub enqueued: Instant,
    pub batched: Instant,
    pub written: Option<Instant>,
}

impl ProducerBatch {
    pub fn record_count(&self) -> usize {
        self.completions.len()
    }

    /// Completes every record: success from `base_offset` (offset -1 when unknown, as with
    /// acks=0), timestamps from the batch or the broker's append time; or the same error for
    /// each. `deliver` routes each completion (inline, or to the callback pool).
    pub fn complete(
        self,
        topic: &Arc<str>,
        partition: i32,
        outcome: Result<(i64, Option<i64>), Error>,
        deliver: &mut dyn FnMut(Completer, DeliveryResult),
    ) {
        match outcome {
            Ok((base_offset, append_time)) => {
                self.completions
                    .succeed(topic, partition, base_offset, append_time, deliver)
            }
            Err(e) => {
                let e = e.with_status(self.failure_status());
                self.completions.fail(&e, deliver)
            }
        }
    }

    /// What a failure of this batch says of its records: possibly in the log if an attempt
    /// was sent and never definitely refused (or it was purged in flight), else not.
    pub fn failure_status(&self) -> DeliveryStatus {
        if self.maybe_written || self.purged {
            DeliveryStatus::PossiblyPersisted
        } else {
            DeliveryStatus::NotPersisted
        }
    }
}

impl ProducerBatch {
    /// Splits a batch the broker refused as too large (MESSAGE_TOO_LARGE) into two halves by
    /// record count, each re-encoded (and compressed) on its own under the same producer ids:
    /// the first keeps the base sequence and the second follows it, so the sequences the
    /// partition's later batches carry stay right. Both keep the batch's creation time (the
    /// delivery timeout does not start again), its attempts and its maybe-written flag. A
    /// batch becomes the first half and the second is returned. A batch of one record, or
    /// one that cannot be re-encoded, stays as it is (`None`).
    pub fn split(&mut self, encoder: &mut Encoder) -> Option<ProducerBatch> {
        let n = self.record_count();
        if n < 2 {
            return None;
        }
        // The batch was built here: decoding it again cannot meet anything unexpected, but a
        // failure is still only a reason not to split.
        let bound = self.uncompressed + BATCH_OVERHEAD;
        let records = match decode_one(&self.bytes, bound) {
            Ok((b, _)) if b.records.len() == n => b.records,
            Ok(_) | Err(_) => return None,
        };
        let mid = n / 2;
        let second_base = if self.ids.idempotent() {
            seq_add(self.base_sequence, mid)
        } else {
            -1
        };
        let halves = [
            (&records[..mid], self.base_sequence),
            (&records[mid..], second_base),
        ];
        let mut encoded = Vec::with_capacity(2);
        for (recs, base_sequence) in halves {
            let mut builder = RecordBatchBuilder::new();
            for r in recs {
                builder.append(
                    r.timestamp,
                    r.key.as_deref(),
                    r.value.as_deref(),
                    &r.headers,
                );
            }
            let header = BatchHeader {
                producer_id: self.ids.producer_id,
                producer_epoch: self.ids.epoch,
                base_sequence,
                transactional: encoder.transactional,
                ..BatchHeader::default()
            };
            let uncompressed = builder.size_uncompressed();
            let mut out = encoder.buffer();
            if builder
                .finish(&header, &mut encoder.compressor, &mut out)
                .is_err()
            {
                return None;
            }
            encoded.push((Bytes::from(out), uncompressed, base_sequence));
        }
        let later = self.completions.split_off(mid);
        let reserved_first = self.reserved / n * mid;
        let [(b1, u1, s1), (b2, u2, s2)]: [_; 2] = encoded.try_into().expect("two halves");
        let second = ProducerBatch {
            bytes: b2,
            uncompressed: u2,
            completions: later,
            reserved: self.reserved - reserved_first,
            base_sequence: s2,
            ids: self.ids,
            created: self.created,
            attempts: self.attempts,
            not_before: None,
            last_error: self.last_error.clone(),
            // Never renumbered if the whole may be written (see `Action::Split`).
            maybe_written: self.maybe_written,
            purged: false,
            // The first half keeps the timed record's stamps.
            stages: None,
        };
        encoder.recycle(std::mem::replace(&mut self.bytes, b1));
        self.uncompressed = u1;
        self.reserved = reserved_first;
        self.base_sequence = s1;
        self.not_before = None;
        Some(second)
    }
}

/// What an I/O thread lends its partitions' accumulators to close batches with: its
/// compressor, and the buffers of acknowledged batches to write the next ones into — so that
/// a batch's megabyte is not fresh memory each time (page faults, and the kernel zeroing every
/// page: 8% of the I/O thread's CPU in a profile of 1M records against tansu).
#[derive(Debug)]
pub(crate) struct Encoder {
    pub compressor: Compressor,
    /// Batches are marked transactional (a transactional producer's).
    pub transactional: bool,
    spare: Vec<Vec<u8>>,
    /// Their capacity in all.
    spare_bytes: usize,
}

/// Bytes of spare buffers an [`Encoder`] keeps, at most: enough for the batches of a few
/// requests in flight, and never more than the thread has just had in use.
const SPARE_BYTES: usize = 16 << 20;

impl Encoder {
    pub fn new(compressor: Compressor) -> Self {
        Encoder {
            compressor,
            transactional: false,
            spare: Vec::new(),
            spare_bytes: 0,
        }
    }

    /// Keeps an acknowledged batch's buffer for a later batch, if nothing else holds it and
    /// there is room among the spares.
    pub fn recycle(&mut self, bytes: Bytes) {
        if self.spare_bytes + bytes.len() > SPARE_BYTES {
            return;
        }
        if let Ok(b) = bytes.try_into_mut() {
            let mut v: Vec<u8> = b.into();
            v.clear();
            self.spare_bytes += v.capacity();
            self.spare.push(v);
        }
    }

    /// A buffer for the next batch: the most recently recycled one, or a new one.
    fn buffer(&mut self) -> Vec<u8> {
        let v = self.spare.pop().unwrap_or_default();
        self.spare_bytes -= v.capacity();
        v
    }
}

/// Why [`Accumulator::close_if_due`] closes the open batch regardless of linger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Urgency {
    /// Linger applies.
    Normal,
    /// A flush or close is waiting: send what there is.
    Flush,
}

/// One partition's batches on the producer side.
#[derive(Debug)]
pub(crate) struct Accumulator {
    builder: RecordBatchBuilder,
    completions: Completions,
    reserved: usize,
    /// When the open batch got its first record.
    open_since: Option<Instant>,
    /// When the open batch's first timed record was sent, if it has one.
    sample: Option<Instant>,
    /// Closed batches waiting to be sent, lowest sequence first.
    pub ready: VecDeque<ProducerBatch>,
    /// Batches sent and not yet answered.
    pub in_flight: usize,
    /// The broker those batches went to. After a leader change the partition waits for them
    /// before sending to the new leader, so order never depends on the broker checking
    /// sequences.
    pub in_flight_to: i32,
    next_sequence: i32,
    /// The producer id and epoch the sequences here count under.
    ids: ProducerIds,
    /// The sequence the broker expects next: the end of the last acknowledged batch.
    acked_end: i32,
    /// A batch was given up: the sequences of the batches after it must be rewound to
    /// `acked_end` once nothing is in flight and nothing unsettled is at the front.
    pub gap: bool,
    /// Capacity hint for the next batch's buffer (the last batch's size).
    last_batch_len: usize,
}

impl Default for Accumulator {
    fn default() -> Self {
        Accumulator {
            builder: RecordBatchBuilder::default(),
            completions: Completions::default(),
            reserved: 0,
            open_since: None,
            sample: None,
            ready: VecDeque::new(),
            in_flight: 0,
            in_flight_to: -1,
            next_sequence: 0,
            ids: ProducerIds::NONE,
            acked_end: 0,
            gap: false,
            last_batch_len: 0,
        }
    }
}

/// `s + n` in Kafka's sequence space, which wraps from `i32::MAX` to 0.
fn seq_add(s: i32, n: usize) -> i32 {
    ((i64::from(s) + n as i64) % (i64::from(i32::MAX) + 1)) as i32
}

/// Whether `s` is at or after `from` in Kafka's sequence space: less than half the space
/// ahead (sequences in use at once span far less).
fn ahead(from: i32, s: i32) -> bool {
    seq_distance(from, s) < (1 << 30)
}

/// How far `s` comes after `from` in Kafka's sequence space (which wraps from `i32::MAX` to 0).
fn seq_distance(from: i32, s: i32) -> i64 {
    (i64::from(s) - i64::from(from)).rem_euclid(i64::from(i32::MAX) + 1)
}

impl Accumulator {
    /// Records in closed batches waiting to be sent (adaptive partitioning's queue size).
    pub fn ready_records(&self) -> usize {
        self.ready.iter().map(|b| b.record_count()).sum()
    }

    /// Records in the open batch.
    pub fn open_len(&self) -> usize {
        self.completions.len()
    }

    /// Adds a record to the open batch, first closing it if the record would take it past
    /// `batch_size` (a record larger than `batch_size` gets a batch of its own).
    pub fn append(
        &mut self,
        r: PendingRecord,
        now: Instant,
        batch_size: usize,
        ids: ProducerIds,
        encoder: &mut Encoder,
    ) -> std::io::Result<()> {
        let size = r.reserved();
        if !self.builder.is_empty() && self.builder.size_uncompressed() + size > batch_size {
            self.close(ids, encoder)?;
        }
        if self.open_since.is_none() {
            self.open_since = Some(now);
        }
        if self.sample.is_none() {
            self.sample = r.enqueued.map(|s| s.instant(now));
        }
        self.builder.append(
            r.timestamp,
            r.key.as_deref(),
            r.value.as_deref(),
            &r.headers,
        );
        self.completions.push(r.timestamp, r.completer);
        self.reserved += size;
        Ok(())
    }

    /// Records that waited for metadata before reaching the ring joined the open batch: its
    /// delivery timeout (and linger) count from `since`, when the first of them was sent.
    pub fn waited_since(&mut self, since: Instant) {
        if let Some(t) = self.open_since.as_mut() {
            *t = (*t).min(since);
        }
    }

    /// When the open batch is due by linger.
    pub fn linger_deadline(&self, linger: Duration) -> Option<Instant> {
        self.open_since.map(|t| t + linger)
    }

    /// Closes the open batch if linger has passed (or `urgency` says not to wait). Returns
    /// whether it closed one.
    pub fn close_if_due(
        &mut self,
        now: Instant,
        linger: Duration,
        urgency: Urgency,
        ids: ProducerIds,
        encoder: &mut Encoder,
    ) -> std::io::Result<bool> {
        match self.open_since {
            Some(t) if urgency == Urgency::Flush || now >= t + linger => {
                self.close(ids, encoder)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Finishes the open batch (compressing it) and queues it for sending, numbering it when
    /// `ids` is idempotent.
    pub fn close(&mut self, ids: ProducerIds, encoder: &mut Encoder) -> std::io::Result<()> {
        let compressor = &mut encoder.compressor;
        let Some(created) = self.open_since.take() else {
            return Ok(());
        };
        let count = self.completions.len() as i32;
        self.adopt(ids);
        let ids = self.ids;
        let base_sequence = if ids.idempotent() {
            let s = self.next_sequence;
            // Sequences wrap from i32::MAX to 0, as in the Java client.
            self.next_sequence = seq_add(s, count as usize);
            s
        } else {
            -1
        };
        let header = BatchHeader {
            producer_id: ids.producer_id,
            producer_epoch: ids.epoch,
            base_sequence,
            transactional: encoder.transactional,
            ..BatchHeader::default()
        };
        let uncompressed = self.builder.size_uncompressed();
        // Uncompressed, the builder takes this buffer for the next batch and hands over its
        // own; compressed, the codec writes here, and must find room for its worst case.
        let capacity = if compressor.config().compression == Compression::None {
            self.last_batch_len.max(uncompressed)
        } else {
            BATCH_OVERHEAD + compressor.max_output_len(uncompressed)
        };
        let mut out = encoder.buffer();
        out.reserve(capacity);
        if let Err(e) = self
            .builder
            .finish(&header, &mut encoder.compressor, &mut out)
        {
            // Undo the numbering: nothing was queued.
            if ids.idempotent() {
                self.next_sequence = base_sequence;
            }
            self.open_since = Some(created);
            return Err(e);
        }
        self.last_batch_len = out.len();
        self.ready.push_back(ProducerBatch {
            bytes: Bytes::from(out),
            uncompressed,
            completions: self.completions.take(),
            reserved: std::mem::take(&mut self.reserved),
            base_sequence,
            ids,
            created,
            attempts: 0,
            not_before: None,
            last_error: None,
            maybe_written: false,
            purged: false,
            stages: self.sample.take().map(|enqueued| StageStamps {
                enqueued,
                batched: Instant::now(),
                written: None,
            }),
        });
        Ok(())
    }

    /// Switches to new producer ids (the first ones, or after an epoch bump): sequences start
    /// again at 0 and the waiting batches are renumbered from there. Not while batches are in
    /// flight under the old ids (an epoch bump waits for none to be, so this is a backstop):
    /// then it returns false and the partition keeps its old ids, and sends nothing new, until
    /// they are answered.
    pub fn adopt(&mut self, ids: ProducerIds) -> bool {
        if ids == self.ids {
            return true;
        }
        if self.in_flight > 0 {
            return false;
        }
        self.ids = ids;
        self.acked_end = 0;
        self.gap = false;
        self.renumber(0);
        true
    }

    /// Whether `b` is the batch the broker expects next: no earlier batch of this partition is
    /// outstanding.
    pub fn is_next(&self, b: &ProducerBatch) -> bool {
        b.ids == self.ids && b.base_sequence == self.acked_end
    }

    /// Whether this partition numbers its batches under `ids` (see [`adopt`](Self::adopt)).
    pub fn uses(&self, ids: ProducerIds) -> bool {
        self.ids == ids
    }

    /// An idempotent batch was acknowledged (or found a duplicate of one that was).
    pub fn acked(&mut self, b: &ProducerBatch) {
        if b.ids == self.ids && b.ids.idempotent() {
            let end = seq_add(b.base_sequence, b.record_count());
            // Never backwards: an earlier batch whose answer was lost may be acknowledged (as a
            // duplicate) after a later one.
            if ahead(self.acked_end, end) {
                self.acked_end = end;
            }
        }
    }

    /// Whether sequences here may be rewritten: nothing in flight, and the next batch to go
    /// is not one the broker may already have.
    pub fn settled(&self) -> bool {
        // Every waiting batch, not only the first: renumbering one the broker may have would
        // write it twice (the simulation found a maybe-written batch queued behind others).
        self.in_flight == 0 && !self.ready.iter().any(|b| b.maybe_written)
    }

    /// Closes the gap a given-up batch left, once [`settled`](Self::settled): the waiting
    /// batches take the sequences from `acked_end` on. Returns whether it did.
    pub fn rewind_if_settled(&mut self) -> bool {
        if !self.gap || !self.settled() {
            return false;
        }
        self.gap = false;
        self.renumber(self.acked_end);
        true
    }

    /// Gives the waiting batches consecutive sequences from `from`, under `self.ids`.
    fn renumber(&mut self, from: i32) {
        let ids = self.ids;
        let mut next = from;
        for b in self.ready.iter_mut() {
            if ids.idempotent() && (b.ids != ids || b.base_sequence != next) {
                let mut bytes = b.bytes.to_vec();
                restamp_producer_state(&mut bytes, ids.producer_id, ids.epoch, next)
                    .expect("a batch built here is one whole RecordBatch");
                b.bytes = Bytes::from(bytes);
                b.base_sequence = next;
                b.ids = ids;
            }
            next = seq_add(next, b.record_count());
        }
        if ids.idempotent() {
            self.next_sequence = next;
        }
    }

    /// Puts a batch back for another attempt, in sequence order ahead of newer batches.
    pub fn requeue(&mut self, mut batch: ProducerBatch, not_before: Instant, why: Error) {
        batch.not_before = Some(not_before);
        batch.last_error = Some(why);
        let pos = if batch.ids.idempotent() {
            // Sequence order counted from the acknowledged end, so it holds across the wrap. A
            // batch before that end (a later one was acknowledged first: this one's answer was
            // lost, and the broker has it) goes first.
            let from = self.acked_end;
            if !ahead(from, batch.base_sequence) && batch.base_sequence != from {
                0
            } else {
                let at = seq_distance(from, batch.base_sequence);
                self.ready
                    .iter()
                    .position(|b| b.ids == batch.ids && seq_distance(from, b.base_sequence) > at)
                    .unwrap_or(self.ready.len())
            }
        } else {
            0
        };
        self.ready.insert(pos, batch);
    }

    /// Puts the two halves of a split batch (in flight until now) back at their place, first
    /// half first, to go without a backoff.
    pub fn requeue_split(
        &mut self,
        first: ProducerBatch,
        second: ProducerBatch,
        now: Instant,
        why: Error,
    ) {
        if first.ids.idempotent() {
            // Sequence order puts them where the batch was, the first half ahead.
            self.requeue(first, now, why.clone());
            self.requeue(second, now, why);
        } else {
            // Without sequences a retry goes to the front: the second half, then the first
            // ahead of it.
            self.requeue(second, now, why.clone());
            self.requeue(first, now, why);
        }
    }

    /// The batch that would go next, ignoring retry backoff. While the partition is held —
    /// `hold` (an epoch bump is pending) or a gap to rewind — only a batch the broker may
    /// already have goes, alone, to learn its fate; everything else waits to be renumbered.
    pub fn next_batch(&self, hold: bool) -> Option<&ProducerBatch> {
        let b = self.ready.front()?;
        if (hold || self.gap) && !(b.maybe_written && self.in_flight == 0) {
            return None;
        }
        Some(b)
    }

    /// The batch to send next, if it may go at `now` (see [`next_batch`](Self::next_batch)).
    pub fn sendable(&self, now: Instant, hold: bool) -> Option<&ProducerBatch> {
        self.next_batch(hold)
            .filter(|b| b.not_before.is_none_or(|t| now >= t))
    }

    /// The earliest time something here needs attention: linger, a retry backoff, or a
    /// waiting batch's delivery timeout.
    /// A backoff counts only if the front batch may go when it ends ([`next_batch`] with
    /// `hold`): a held partition is woken by what releases it, not by a passed backoff.
    ///
    /// [`next_batch`]: Self::next_batch
    pub fn next_deadline(
        &self,
        linger: Duration,
        delivery_timeout: Duration,
        hold: bool,
    ) -> Option<Instant> {
        let may_go = self.next_batch(hold).is_some();
        let ready = self.ready.front().map(|b| {
            let expiry = b.created + delivery_timeout;
            match b.not_before {
                Some(t) if may_go => t.min(expiry),
                _ => expiry,
            }
        });
        [self.linger_deadline(linger), ready]
            .into_iter()
            .flatten()
            .min()
    }

    /// [`next_deadline`](Self::next_deadline) while nothing can be sent (the partition has no
    /// leader): linger, or a waiting batch's delivery timeout; no backoff.
    pub fn unsendable_deadline(
        &self,
        linger: Duration,
        delivery_timeout: Duration,
    ) -> Option<Instant> {
        let expiry = self
            .ready
            .iter()
            .map(|b| b.created + delivery_timeout)
            .min();
        [self.linger_deadline(linger), expiry]
            .into_iter()
            .flatten()
            .min()
    }

    /// Removes the waiting batches (not in flight) whose delivery timeout has passed.
    pub fn expire(&mut self, now: Instant, delivery_timeout: Duration) -> Vec<ProducerBatch> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.ready.len() {
            if now >= self.ready[i].created + delivery_timeout {
                out.extend(self.ready.remove(i));
            } else {
                i += 1;
            }
        }
        out
    }

    /// Takes the open batch's records, unnumbered (to purge them). Returns (completions,
    /// reserved bytes).
    pub fn take_open(&mut self) -> (Completions, usize) {
        let cs = std::mem::take(&mut self.completions);
        let reserved = std::mem::take(&mut self.reserved);
        self.open_since = None;
        self.sample = None;
        self.builder = RecordBatchBuilder::new();
        (cs, reserved)
    }

    /// Takes every record and batch here (for shutdown): the open batch's completions and the
    /// waiting batches'. Returns (completions, reserved bytes).
    pub fn drain_all(&mut self) -> (Completions, usize) {
        let (mut cs, mut reserved) = self.take_open();
        for b in self.ready.drain(..) {
            reserved += b.reserved;
            cs.append(b.completions);
        }
        (cs, reserved)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn sent_at_reads_back_within_a_microsecond() {
        SentAt::base();
        let t = Instant::now();
        let s = SentAt::at(t);
        let later = t + Duration::from_millis(1500);
        let back = s.instant(later);
        let err = if back > t { back - t } else { t - back };
        assert!(err <= Duration::from_micros(1), "{err:?}");
        // Read before it (a clock step the other way) it is `now`, never later.
        assert!(s.instant(t) <= t);
    }
    use super::*;
    use crate::delivery::delivery_channel;

    /// An acknowledged batch's buffer is reused when nothing else holds it, up to the cap.
    #[test]
    fn encoder_recycles_unshared_buffers_within_its_cap() {
        let mut e = none();
        let bytes = Bytes::from(vec![1u8; 1000]);
        let ptr = bytes.as_ptr();
        let held = bytes.clone();
        e.recycle(bytes);
        assert_eq!(e.spare.len(), 0, "a buffer still shared is not reused");
        e.recycle(held);
        let v = e.buffer();
        assert_eq!((v.as_ptr(), v.len(), e.spare_bytes), (ptr, 0, 0));
        e.recycle(Bytes::from(vec![0u8; SPARE_BYTES + 1]));
        assert!(e.spare.is_empty(), "over the cap");
    }

    /// Callbacks taken out of a batch's completions keep their offsets; the handles left
    /// behind keep theirs; each record completes once.
    #[test]
    fn callbacks_taken_out_keep_their_offsets() {
        use std::sync::{Arc, Mutex};
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut cs = Completions::default();
        let mut handles = Vec::new();
        for i in 0..6 {
            match i % 3 {
                0 => {
                    let seen = seen.clone();
                    cs.push(
                        i,
                        Completer::callback(move |r| seen.lock().unwrap().push(r.unwrap().offset)),
                    );
                }
                1 => {
                    let (c, h) = delivery_channel();
                    cs.push(i, c);
                    handles.push(h);
                }
                _ => cs.push(i, Completer::forget()),
            }
        }
        let callbacks = cs.take_callbacks();
        assert_eq!((callbacks.waiting(), cs.waiting(), cs.len()), (2, 2, 6));
        let topic: Arc<str> = "t".into();
        let mut run = |c: Completer, r: DeliveryResult| c.complete(r);
        callbacks.succeed(&topic, 0, 100, None, &mut run);
        cs.succeed(&topic, 0, 100, None, &mut run);
        assert_eq!(*seen.lock().unwrap(), vec![100, 103]);
        let offsets: Vec<i64> = handles
            .into_iter()
            .map(|h| h.wait().unwrap().offset)
            .collect();
        assert_eq!(offsets, vec![101, 104]);

        // All callbacks: the whole list moves, nothing is left to complete inline.
        let mut all = Completions::default();
        for i in 0..3 {
            all.push(i, Completer::callback(|_| {}));
        }
        let moved = all.take_callbacks();
        assert_eq!((moved.waiting(), all.waiting()), (3, 0));
        moved.fail(&Error::closed(), &mut run);
    }
    use crate::protocol::compression::{Compression, CompressionConfig};
    use crate::protocol::record_batch::decode_record_batches;

    fn rec(v: &str) -> (PendingRecord, crate::delivery::DeliveryHandle) {
        let (c, h) = delivery_channel();
        let value = Bytes::copy_from_slice(v.as_bytes());
        (
            PendingRecord {
                room: PendingRecord::room(PendingRecord::buffer_size(None, Some(&value), &[])),
                key: None,
                value: Some(value),
                headers: Headers::none(),
                timestamp: 1000,
                completer: c,
                enqueued: None,
            },
            h,
        )
    }

    fn none() -> Encoder {
        Encoder::new(Compressor::new(
            CompressionConfig::new(Compression::None, None).unwrap(),
        ))
    }

    const IDS: ProducerIds = ProducerIds {
        producer_id: 7,
        epoch: 1,
    };

    #[test]
    fn linger_then_close_numbers_batches() {
        let t0 = Instant::now();
        let linger = Duration::from_millis(5);
        let mut a = Accumulator::default();
        let mut c = none();
        let mut handles = vec![];
        for i in 0..3 {
            let (r, h) = rec(&format!("v{i}"));
            handles.push(h);
            a.append(r, t0, 1 << 20, IDS, &mut c).unwrap();
        }
        assert_eq!(a.linger_deadline(linger), Some(t0 + linger));
        assert!(!a
            .close_if_due(
                t0 + Duration::from_millis(4),
                linger,
                Urgency::Normal,
                IDS,
                &mut c
            )
            .unwrap());
        assert!(a
            .close_if_due(t0 + linger, linger, Urgency::Normal, IDS, &mut c)
            .unwrap());
        let (r, _h) = rec("next");
        a.append(r, t0, 1 << 20, IDS, &mut c).unwrap();
        assert!(a
            .close_if_due(t0, linger, Urgency::Flush, IDS, &mut c)
            .unwrap());
        assert_eq!(a.ready.len(), 2);
        assert_eq!((a.ready[0].base_sequence, a.ready[1].base_sequence), (0, 3));
        let decoded = decode_record_batches(&a.ready[0].bytes, 1 << 20).unwrap();
        assert_eq!(decoded[0].producer_id, 7);
        assert_eq!(decoded[0].records.len(), 3);
        assert_eq!(decoded[0].records[2].value.as_deref(), Some(&b"v2"[..]));
        // Completing fires each record's handle once, offsets counting from the base.
        let topic: Arc<str> = "t".into();
        let b = a.ready.pop_front().unwrap();
        b.complete(&topic, 4, Ok((100, None)), &mut |c, r| c.complete(r));
        let offsets: Vec<i64> = handles
            .into_iter()
            .map(|h| h.wait().unwrap().offset)
            .collect();
        assert_eq!(offsets, vec![100, 101, 102]);
    }

    #[test]
    fn completions_count_forgotten_records_and_keep_offsets() {
        // A mix of fire-and-forget and waited-for records, in two parts appended together:
        // only the waited-for ones are delivered, each at its own offset and timestamp.
        let mut first = Completions::default();
        let mut handles = vec![];
        for i in 0..5i64 {
            if i % 2 == 1 {
                let (c, h) = delivery_channel();
                first.push(1000 + i, c);
                handles.push((i, h));
            } else {
                first.push(1000 + i, Completer::forget());
            }
        }
        let mut second = Completions::default();
        second.push(2000, Completer::forget());
        let (c, h) = delivery_channel();
        second.push(2001, c);
        handles.push((6, h));
        first.append(second);
        assert_eq!(first.len(), 7);
        let topic: Arc<str> = "t".into();
        let mut delivered = 0;
        first.succeed(&topic, 2, 50, None, &mut |c, r| {
            delivered += 1;
            c.complete(r)
        });
        assert_eq!(delivered, 3, "only waited-for records are delivered");
        for (i, h) in handles {
            let m = h.wait().unwrap();
            assert_eq!(m.offset, 50 + i);
            assert_eq!(m.timestamp, if i < 5 { 1000 + i } else { 2001 });
        }
        // Failing: each waited-for record gets the error once.
        let mut c = Completions::one(Completer::forget());
        let (w, h) = delivery_channel();
        c.push(0, w);
        let mut failed = 0;
        c.fail(&Error::closed(), &mut |c, r| {
            failed += 1;
            c.complete(r)
        });
        assert_eq!(failed, 1);
        assert!(matches!(h.wait(), Err(Error::Closed { .. })));
    }

    #[test]
    fn full_batch_closes_before_append() {
        let t0 = Instant::now();
        let mut a = Accumulator::default();
        let mut c = none();
        let mut hs = vec![];
        for _ in 0..10 {
            let (r, h) = rec(&"x".repeat(100));
            hs.push(h);
            a.append(r, t0, 350, ProducerIds::NONE, &mut c).unwrap();
        }
        // 100-byte values take ~110 bytes each: three fit under 350 with the header.
        assert!(a.ready.len() >= 3);
        assert!(a
            .ready
            .iter()
            .all(|b| b.bytes.len() <= 350 + BATCH_OVERHEAD));
        assert!(a.ready.iter().all(|b| b.base_sequence == -1));
        let total: usize = a.ready.iter().map(|b| b.record_count()).sum::<usize>() + a.open_len();
        assert_eq!(total, 10);
    }

    #[test]
    fn requeue_keeps_sequence_order_and_expiry() {
        let t0 = Instant::now();
        let mut a = Accumulator::default();
        let mut c = none();
        for i in 0..3 {
            let (r, _h) = rec("v");
            a.append(r, t0 + Duration::from_millis(i), 1 << 20, IDS, &mut c)
                .unwrap();
            a.close(IDS, &mut c).unwrap();
        }
        // Batches 0 and 1 are sent; 1 fails and comes back, ahead of 2.
        let b0 = a.ready.pop_front().unwrap();
        let b1 = a.ready.pop_front().unwrap();
        drop(b0);
        a.requeue(b1, t0 + Duration::from_millis(100), Error::closed());
        assert_eq!(a.ready[0].base_sequence, 1);
        assert_eq!(a.ready[1].base_sequence, 2);
        assert!(
            a.sendable(t0, false).is_none(),
            "backoff holds the partition"
        );
        assert!(a.sendable(t0 + Duration::from_millis(100), false).is_some());
        let expired = a.expire(t0 + Duration::from_millis(1001), Duration::from_secs(1));
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].base_sequence, 1);
        assert_eq!(a.ready.len(), 1);
    }

    #[test]
    fn requeue_keeps_sequence_order_across_the_wrap() {
        let mut a = Accumulator::default();
        let mut c = none();
        assert!(a.adopt(IDS));
        a.next_sequence = i32::MAX - 1;
        a.acked_end = i32::MAX - 1;
        for _ in 0..3 {
            let (r, _h) = rec("v");
            a.append(r, Instant::now(), 1 << 20, IDS, &mut c).unwrap();
            a.close(IDS, &mut c).unwrap();
        }
        let seqs = |a: &Accumulator| a.ready.iter().map(|b| b.base_sequence).collect::<Vec<_>>();
        assert_eq!(seqs(&a), [i32::MAX - 1, i32::MAX, 0]);
        // The first two are sent and both come back, the later one first.
        let b0 = a.ready.pop_front().unwrap();
        let b1 = a.ready.pop_front().unwrap();
        a.requeue(b1, Instant::now(), Error::closed());
        assert_eq!(seqs(&a), [i32::MAX, 0]);
        a.requeue(b0, Instant::now(), Error::closed());
        assert_eq!(seqs(&a), [i32::MAX - 1, i32::MAX, 0]);
    }

    /// Found by the simulation (seed 12638): batches 0 and 1 go in two requests; the answer to
    /// 0 is lost, 1 is acknowledged, so 0 comes back behind the acknowledged end. It must go
    /// first, keep the partition unsettled (it is maybe written), and its late acknowledgement
    /// must not move the acknowledged end back. Before, it went to the back of the queue, the
    /// partition counted as settled, an epoch bump renumbered it and the broker stored it twice.
    #[test]
    fn a_batch_answered_after_a_later_one_goes_first_and_keeps_the_partition_unsettled() {
        let mut a = Accumulator::default();
        let mut c = none();
        assert!(a.adopt(IDS));
        for _ in 0..3 {
            let (r, _h) = rec("v");
            a.append(r, Instant::now(), 1 << 20, IDS, &mut c).unwrap();
            a.close(IDS, &mut c).unwrap();
        }
        let seqs = |a: &Accumulator| a.ready.iter().map(|b| b.base_sequence).collect::<Vec<_>>();
        let mut b0 = a.ready.pop_front().unwrap();
        let b1 = a.ready.pop_front().unwrap();
        a.in_flight = 2;
        a.in_flight -= 1;
        a.acked(&b1);
        assert_eq!(a.acked_end, 2);
        a.in_flight -= 1;
        b0.maybe_written = true;
        a.requeue(b0, Instant::now(), Error::closed());
        assert_eq!(seqs(&a), [0, 2], "the lost one first");
        assert!(!a.settled(), "a maybe-written batch waits: no renumbering");
        let b0 = a.ready.pop_front().unwrap();
        a.acked(&b0);
        assert_eq!(a.acked_end, 2, "the acknowledged end never goes back");
        assert!(a.settled());
        // A maybe-written batch anywhere in the queue keeps it unsettled.
        let mut b2 = a.ready.pop_front().unwrap();
        let (r, _h) = rec("v");
        a.append(r, Instant::now(), 1 << 20, IDS, &mut c).unwrap();
        a.close(IDS, &mut c).unwrap();
        b2.maybe_written = true;
        a.ready.push_back(b2);
        assert!(!a.settled());
    }

    /// A record that waited for metadata before reaching its ring brings its wait: the batch's
    /// delivery timeout counts from when it was sent, not from when it was drained (found by
    /// the simulation: seeds 12835 and 18464 of 32,000 completed records past the deadline).
    #[test]
    fn a_record_that_waited_for_metadata_keeps_its_deadline() {
        let t0 = Instant::now();
        let mut a = Accumulator::default();
        let mut c = none();
        let (r, _h) = rec("v");
        a.append(r, t0 + Duration::from_secs(3), 1 << 20, IDS, &mut c)
            .unwrap();
        a.waited_since(t0);
        let (r, _h) = rec("w");
        a.append(r, t0 + Duration::from_secs(4), 1 << 20, IDS, &mut c)
            .unwrap();
        a.close(IDS, &mut c).unwrap();
        assert_eq!(a.ready[0].created, t0);
        let expired = a.expire(t0 + Duration::from_secs(10), Duration::from_secs(10));
        assert_eq!(
            expired.len(),
            1,
            "10 s after it was sent, not after it was drained"
        );
    }

    /// Closes `n` one-record batches.
    fn batches(a: &mut Accumulator, n: usize, ids: ProducerIds) {
        let mut c = none();
        for _ in 0..n {
            let (r, _h) = rec("v");
            a.append(r, Instant::now(), 1 << 20, ids, &mut c).unwrap();
            a.close(ids, &mut c).unwrap();
        }
    }

    /// (producer id, epoch, base sequence) as the bytes on the wire say.
    fn stamped(b: &ProducerBatch) -> (i64, i16, i32) {
        let d = decode_record_batches(&b.bytes, 1 << 20).unwrap();
        (d[0].producer_id, d[0].producer_epoch, d[0].base_sequence)
    }

    /// A split batch: two halves under the batch's sequences (the second following the
    /// first), records and completions divided at the middle, offsets counted from each
    /// half's own base; back in line ahead of the later batch, first half first.
    #[test]
    fn a_split_batch_keeps_its_sequences_records_and_completions() {
        let t0 = Instant::now();
        let mut a = Accumulator::default();
        let mut c = none();
        let mut handles = vec![];
        for i in 0..5 {
            let (r, h) = rec(&format!("v{i}"));
            handles.push(h);
            a.append(r, t0, 1 << 20, IDS, &mut c).unwrap();
        }
        a.close(IDS, &mut c).unwrap();
        batches(&mut a, 1, IDS);
        let mut first = a.ready.pop_front().unwrap();
        let reserved = first.reserved;
        a.in_flight = 1;
        let second = first.split(&mut c).unwrap();
        assert_eq!((first.record_count(), second.record_count()), (2, 3));
        assert_eq!((first.base_sequence, second.base_sequence), (0, 2));
        assert_eq!((stamped(&first), stamped(&second)), ((7, 1, 0), (7, 1, 2)));
        assert_eq!(first.reserved + second.reserved, reserved);
        let values = |b: &ProducerBatch| -> Vec<Bytes> {
            decode_record_batches(&b.bytes, 1 << 20).unwrap()[0]
                .records
                .iter()
                .map(|r| r.value.clone().unwrap())
                .collect()
        };
        assert_eq!(values(&second), ["v2", "v3", "v4"]);
        a.in_flight = 0;
        a.requeue_split(first, second, t0, Error::closed());
        let seqs: Vec<i32> = a.ready.iter().map(|b| b.base_sequence).collect();
        assert_eq!(
            seqs,
            [0, 2, 5],
            "in sequence order, ahead of the later batch"
        );
        let topic: Arc<str> = "t".into();
        let (one, rest) = (a.ready.pop_front().unwrap(), a.ready.pop_front().unwrap());
        one.complete(&topic, 0, Ok((10, None)), &mut |c, r| c.complete(r));
        rest.complete(&topic, 0, Ok((40, None)), &mut |c, r| c.complete(r));
        let offsets: Vec<i64> = handles
            .into_iter()
            .map(|h| h.wait().unwrap().offset)
            .collect();
        assert_eq!(offsets, [10, 11, 40, 41, 42]);
        // One record cannot be split.
        let mut single = a.ready.pop_front().unwrap();
        assert!(single.split(&mut c).is_none());
        assert_eq!(single.record_count(), 1);
    }

    #[test]
    fn a_definite_failure_rewinds_the_later_batches() {
        let mut a = Accumulator::default();
        batches(&mut a, 4, IDS);
        // 0 acknowledged; 1 fails for good (never written); 2 and 3 wait.
        let b0 = a.ready.pop_front().unwrap();
        a.acked(&b0);
        let b1 = a.ready.pop_front().unwrap();
        assert_eq!(b1.base_sequence, 1);
        a.gap = true;
        assert!(a.next_batch(false).is_none(), "held until rewound");
        assert!(a.rewind_if_settled());
        let seqs: Vec<_> = a.ready.iter().map(stamped).collect();
        assert_eq!(seqs, [(7, 1, 1), (7, 1, 2)], "2 and 3 take 1 and 2");
        assert_eq!(a.ready[0].base_sequence, 1);
        assert!(a.next_batch(false).is_some());
        // The next batch continues from there.
        batches(&mut a, 1, IDS);
        assert_eq!(stamped(&a.ready[2]), (7, 1, 3));
    }

    #[test]
    fn a_batch_the_broker_may_have_is_resolved_before_any_rewind() {
        let mut a = Accumulator::default();
        batches(&mut a, 3, IDS);
        let mut b0 = a.ready.pop_front().unwrap();
        b0.maybe_written = true; // its connection was cut
        a.requeue(b0, Instant::now(), Error::closed());
        a.gap = true; // some other batch failed
        assert!(!a.settled());
        assert!(!a.rewind_if_settled(), "never renumber what may be written");
        let b = a.next_batch(true).expect("the unsettled batch goes alone");
        assert_eq!(b.base_sequence, 0);
        a.in_flight = 1;
        assert!(a.next_batch(true).is_none(), "one at a time");
    }

    #[test]
    fn new_ids_restart_sequences_and_renumber_waiting_batches() {
        let mut a = Accumulator::default();
        batches(&mut a, 3, IDS);
        let b0 = a.ready.pop_front().unwrap();
        a.acked(&b0);
        let bumped = ProducerIds {
            producer_id: 7,
            epoch: 2,
        };
        a.gap = true;
        a.adopt(bumped);
        assert!(!a.gap);
        let seqs: Vec<_> = a.ready.iter().map(stamped).collect();
        assert_eq!(seqs, [(7, 2, 0), (7, 2, 1)]);
        batches(&mut a, 1, bumped);
        assert_eq!(stamped(&a.ready[2]), (7, 2, 2));
    }
}
