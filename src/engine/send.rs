//! The send path: what a caller's `send()` does — reserve buffer room, find the topic, place
//! the record on a partition, push it on that partition's ring (or the topic's queue while its
//! metadata is unknown) and wake the owning I/O thread only if it is parked. No lock and no
//! allocation in the common case (`tests/send_allocations.rs`).

// The send path's error hands the record back with the reason; that path is cold, so a large
// `Err` costs nothing where it matters.
#![allow(clippy::result_large_err)]

use std::collections::VecDeque;
use std::sync::atomic::{fence, AtomicBool, AtomicU32, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use parking_lot::Mutex;

use super::batch::{self, PendingRecord};
use super::{PartitionState, Shared, Sticky, TopicState, Unplaced};
use crate::error::{validate_topic, Error, Location};
use crate::metrics::Metrics;

/// How long a call may block for room, counted from its first wait: the clock is read only
/// when the call has to wait (the send path's fast case reads none).
pub(crate) struct Budget {
    max_block: Option<Duration>,
    deadline: Option<Instant>,
}

impl Budget {
    /// `None`: never wait.
    pub fn new(max_block: Option<Duration>) -> Self {
        Budget {
            max_block,
            deadline: None,
        }
    }

    /// When waiting must end; `None` if the call must not wait at all.
    fn deadline(&mut self) -> Option<Instant> {
        let max = self.max_block?;
        Some(*self.deadline.get_or_insert_with(|| Instant::now() + max))
    }
}

impl Shared {
    /// Takes room for one record if there is some. A failed attempt briefly raised the
    /// counters, which may have made another caller fail too; `notify` then wakes space
    /// waiters so none sleeps on that transient. Waiters re-check under the signal's lock
    /// (`notify: false`, as `notify` takes that lock) and need no such wake: only one
    /// checks at a time, and callers outside the lock notify after their own attempts.
    fn try_reserve(&self, bytes: usize, notify: bool) -> bool {
        let b = self.buffered_bytes.fetch_add(bytes, SeqCst);
        let r = self.buffered_records.fetch_add(1, SeqCst);
        // Callbacks waiting for the pool count against the record limit too, so slow
        // callbacks slow senders down instead of queueing without bound.
        let r = r + self.callbacks_queued.load(SeqCst);
        if b + bytes > self.config.buffer_memory || r >= self.config.buffer_records {
            self.buffered_bytes.fetch_sub(bytes, SeqCst);
            self.buffered_records.fetch_sub(1, SeqCst);
            if notify {
                self.space.notify();
            }
            return false;
        }
        true
    }

    /// Reserves room for one record of `bytes`, waiting as `budget` allows.
    fn reserve(&self, bytes: usize, budget: &mut Budget) -> bool {
        if self.try_reserve(bytes, true) {
            return true;
        }
        match budget.deadline() {
            None => false,
            Some(d) => {
                self.space.wait_until(d, || {
                    self.try_reserve(bytes, false) || self.abort.load(SeqCst)
                }) && !self.abort.load(SeqCst)
            }
        }
    }

    /// The topic's state, created (waiting for metadata) on first use.
    pub(super) fn topic(&self, name: &str) -> Result<Arc<TopicState>, Error> {
        if let Some(t) = self.topics.load().get(name) {
            return Ok(t.clone());
        }
        validate_topic(name)?;
        let _w = self.topics_write.lock();
        let current = self.topics.load_full();
        if let Some(t) = current.get(name) {
            return Ok(t.clone());
        }
        let name: Arc<str> = name.into();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let t = Arc::new(TopicState {
            name: name.clone(),
            partitions: ArcSwapOption::empty(),
            partition_count: Arc::new(AtomicU32::new(0)),
            sticky: Arc::new(Sticky::new(seed)),
            pending: Mutex::new(VecDeque::new()),
            has_pending: AtomicBool::new(false),
            error: Mutex::new(None),
        });
        let mut next = (*current).clone();
        next.insert(name, t.clone());
        self.topics.store(Arc::new(next));
        drop(_w);
        self.request_metadata();
        Ok(t)
    }

    /// Chooses the partition for a record when the topic has `parts`.
    pub(super) fn place(
        &self,
        topic: &TopicState,
        parts: &[Arc<PartitionState>],
        explicit: Option<i32>,
        key: Option<&[u8]>,
        size: usize,
    ) -> Result<usize, Error> {
        let n = parts.len() as u32;
        let key = key.filter(|_| !self.config.partitioner_ignore_keys);
        let p = match explicit {
            Some(p) => p,
            None => match self.partitioner.partition(&topic.name, key, n) {
                Some(p) => p as i32,
                None => {
                    let adaptive = super::adaptive::Adaptive {
                        enabled: self.config.partitioner_adaptive,
                        availability_timeout: self.config.partitioner_availability_timeout,
                    };
                    topic
                        .sticky
                        .place(parts, size, self.config.batch_size, adaptive)
                        as i32
                }
            },
        };
        if p < 0 || p as u32 >= n {
            return Err(Error::InvalidPartition {
                partition_count: n,
                at: Location::at(&topic.name, p),
            });
        }
        Ok(p as usize)
    }

    /// The send path: reserve buffer room, place the record, push it on its partition's ring
    /// (or the topic's pending queue) and wake the owning thread if it is parked. On failure
    /// the record comes back with the error.
    pub fn enqueue(
        &self,
        topic: &str,
        explicit: Option<i32>,
        record: PendingRecord,
        max_block: Option<Duration>,
    ) -> Result<(), (Error, PendingRecord)> {
        self.enqueue_placed(topic, explicit, record, max_block, false)
            .map(|_| ())
    }

    /// [`enqueue`](Self::enqueue), also giving the partition the record was pushed to when
    /// `want` (for a caller that will wait for it: see [`PartitionState::urge`]); `None` for a
    /// record waiting for metadata.
    pub fn enqueue_placed(
        &self,
        topic: &str,
        explicit: Option<i32>,
        record: PendingRecord,
        max_block: Option<Duration>,
        want: bool,
    ) -> Result<Option<Arc<PartitionState>>, (Error, PendingRecord)> {
        if self.closing.load(Relaxed) {
            return Err((Error::closed(), record));
        }
        if self.fatal.load(Relaxed) {
            return Err((self.fatal_error(), record));
        }
        if let Some(t) = &self.txn {
            // A transactional producer sends inside a transaction only.
            if !t.accepting.load(Relaxed) {
                return Err((t.refusal(), record));
            }
        }
        let limit = self.config.max_request_size;
        if record.reserved() + batch::BATCH_OVERHEAD > limit {
            // Measured again: `room` saturates at 4 GiB.
            let size = PendingRecord::buffer_size(
                record.key.as_deref(),
                record.value.as_deref(),
                &record.headers,
            );
            return Err((
                Error::RecordTooLarge {
                    size,
                    limit,
                    which: "max_request_size",
                    at: Location::topic(topic),
                },
                record,
            ));
        }
        // The topic table is read without touching the topic's reference count (a shared
        // cache line): the guard keeps it alive for the call.
        let topics = self.topics.load();
        let created;
        let t: &TopicState = match topics.get(topic) {
            Some(t) => t,
            None => match self.topic(topic) {
                Ok(t) => {
                    created = t;
                    &created
                }
                Err(e) => return Err((e, record)),
            },
        };
        let mut budget = Budget::new(max_block);
        if !self.reserve(record.reserved(), &mut budget) {
            let e = if self.abort.load(Relaxed) {
                Error::closed()
            } else {
                Error::QueueFull {
                    at: Location::topic(topic),
                }
            };
            return Err((e, record));
        }
        let reserved = record.reserved();
        let parts = t.partitions.load();
        let result = match &*parts {
            Some(parts) if !t.has_pending.load(SeqCst) => {
                self.push_placed(t, parts, explicit, record, &mut budget, want)
            }
            _ => self.push_pending(t, explicit, record, &mut budget, want),
        };
        match result {
            Ok(placed) => {
                Metrics::add(&self.metrics.records_sent, 1);
                Ok(placed)
            }
            Err(e) => {
                self.release(1, reserved);
                Err(e)
            }
        }
    }

    fn push_placed(
        &self,
        t: &TopicState,
        parts: &[Arc<PartitionState>],
        explicit: Option<i32>,
        record: PendingRecord,
        budget: &mut Budget,
        want: bool,
    ) -> Result<Option<Arc<PartitionState>>, (Error, PendingRecord)> {
        let p = match self.place(t, parts, explicit, record.key.as_deref(), record.reserved()) {
            Ok(p) => &parts[p],
            Err(e) => return Err((e, record)),
        };
        let mut record = record;
        loop {
            match p.ring.push(record) {
                Ok(()) => break,
                Err(back) => {
                    record = back;
                    // Full: make sure the owner is draining, then wait for room.
                    let owner = &self.io[p.owner()];
                    owner.wake();
                    let Some(d) = budget.deadline() else {
                        return Err((
                            Error::QueueFull {
                                at: Location::at(&t.name, p.partition),
                            },
                            record,
                        ));
                    };
                    let room = self
                        .space
                        .wait_until(d, || !p.ring.is_full() || self.abort.load(SeqCst));
                    if !room || self.abort.load(SeqCst) {
                        let e = if self.abort.load(SeqCst) {
                            Error::closed()
                        } else {
                            Error::QueueFull {
                                at: Location::at(&t.name, p.partition),
                            }
                        };
                        return Err((e, record));
                    }
                }
            }
        }
        self.pushed(p);
        Ok(want.then(|| p.clone()))
    }

    /// After a push on `p`'s ring: wake its owner if it is parked (and needs to be).
    pub fn pushed(&self, p: &PartitionState) {
        fence(SeqCst);
        let ring = || {
            let len = p.ring.len();
            // The first record for a partition without an open batch starts a linger the
            // parked thread does not know about yet (as the Java client wakes its sender for
            // a new batch).
            (len, len == 1 && !p.lingering.load(Relaxed))
        };
        self.io[p.owner()].record_pushed(ring, p.wake_threshold(), &self.metrics);
    }

    fn push_pending(
        &self,
        t: &TopicState,
        explicit: Option<i32>,
        record: PendingRecord,
        budget: &mut Budget,
        want: bool,
    ) -> Result<Option<Arc<PartitionState>>, (Error, PendingRecord)> {
        {
            let mut q = t.pending.lock();
            // Metadata may have arrived, and the queue emptied, while we took the lock.
            if t.partitions.load().is_none() || t.has_pending.load(SeqCst) {
                q.push_back(Unplaced {
                    since: self.clock.now(),
                    partition: explicit,
                    record,
                    urge: want,
                });
                t.has_pending.store(true, SeqCst);
                drop(q);
                self.io[0].wake();
                return Ok(None);
            }
        }
        let parts = t.partitions.load_full().expect("checked above");
        self.push_placed(t, &parts, explicit, record, budget, want)
    }
}
