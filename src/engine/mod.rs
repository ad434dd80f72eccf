//! The producer engine: the state callers and I/O threads share, and the send path.
//!
//! ```text
//!  caller ──send──► topic table (ArcSwap, lock-free read) ──► partition ring (ArrayQueue)
//!                        │ unknown topic                              │ drained by the I/O
//!                        ▼                                            ▼ thread owning the leader
//!                  pending queue ──(metadata arrives)──►   batch::Accumulator ──► Produce
//!                                                                                   │
//!  DeliveryHandle / callback pool / nothing  ◄──────── completions ◄── response ◄───┘
//! ```
//!
//! - [`send`]: the send path (callers' side: room, placement, ring, wake-up).
//! - [`batch`]: the batch builder (sans-IO).
//! - [`core`]: the engine core, every decision of an I/O thread, without sockets: connection
//!   manager, control plane, produce pipeline, completion.
//! - [`driver`]: the I/O threads' loop (the only module that touches sockets).
//! - [`resolver`]: name resolution off the I/O threads.
//! - [`wake`]: the park/wake handshake between callers and I/O threads.
//! - [`metadata`]: applying Metadata responses to the topic table (sans-IO).
//! - [`placement`]: which I/O thread owns which broker.
//! - [`producer_id`]: what an InitProducerId answer means.
//! - [`idempotence`]: what each Produce answer means for a batch and the epoch, and the
//!   producer id state every thread reads.
//! - [`transaction`]: the transaction state machine and what coordinator answers mean.
//! - [`callbacks`]: the callback pool.

pub(crate) mod adaptive;
pub(crate) mod batch;
pub(crate) mod callbacks;
pub(crate) mod core;
pub(crate) mod driver;
pub(crate) mod headers;
pub(crate) mod idempotence;
pub(crate) mod metadata;
pub(crate) mod placement;
pub(crate) mod producer_id;
pub(crate) mod resolver;
pub(crate) mod send;
pub(crate) mod transaction;
pub(crate) mod wake;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use crossbeam::queue::ArrayQueue;
use crossbeam::utils::CachePadded;
use parking_lot::{Condvar, Mutex};

use crate::config::ProducerConfig;
use crate::delivery::Completer;
use crate::error::{Deadline, Error, Location};
use crate::metrics::Metrics;
use crate::partitioner::Partitioner;
use crate::protocol::ErrorCode;

use batch::{Accumulator, Completions, PendingRecord};

/// Keyless-record placement shared by a topic's partitions: KIP-794's uniform sticky
/// partitioner. Keyless records go to one partition until `batch_size` bytes of them have,
/// then to the next partition that has a leader — so every partition gets the same bytes in
/// turn, however large each batch turns out (switching when a batch closed gave a partition
/// whatever arrived during its linger: 2 records to one, 57,652 to another in a test). Each
/// producer starts at a random partition.
#[derive(Debug)]
pub(crate) struct Sticky {
    /// The turn (high 32 bits) and the partition now (low 32 bits; the seed may exceed the
    /// partition count until the first move, and counts modulo it). Keeping the partition
    /// itself, not a counter to reduce modulo the count, spares every keyless `send()` an
    /// integer division (~25 cycles, 14% of placement's samples in a profile).
    current: AtomicU64,
    /// Bytes of keyless records placed on it since it was chosen.
    placed: AtomicUsize,
}

impl Sticky {
    pub fn new(seed: u32) -> Self {
        Sticky {
            current: AtomicU64::new(u64::from(seed)),
            placed: AtomicUsize::new(0),
        }
    }

    /// The partition for a keyless record of `size` bytes among `parts`, moving on once
    /// `switch_after` bytes have gone to the current one. A partition without a leader is
    /// never chosen while another has one.
    ///
    /// Any caller that finds the share used up moves `current` on, by a compare-and-swap
    /// from the value it read (so one move per turn): if only the caller that crossed the
    /// line moved it, a preemption between its count and its move would send everybody
    /// else's records to the old partition meanwhile (seen: +20% on one partition of 12
    /// under load). Every move starts a new turn, so a stale value never matches again.
    #[inline]
    pub fn place(
        &self,
        parts: &[Arc<PartitionState>],
        size: usize,
        switch_after: usize,
        adaptive: adaptive::Adaptive,
    ) -> u32 {
        let n = parts.len() as u32;
        let cur = self.current.load(Relaxed);
        let mut p = cur as u32;
        if p >= n {
            // The seed, before the first move.
            p %= n;
        }
        let led = parts[p as usize].route().0 >= 0;
        if !led {
            if let Some(q) = adaptive::next(parts, p, adaptive, per_batch(size, switch_after)) {
                self.advance(cur, q);
                self.placed.fetch_add(size, Relaxed);
                return q;
            }
        }
        let before = self.placed.fetch_add(size, Relaxed);
        if before.saturating_add(size) >= switch_after {
            let q = adaptive::next(parts, p, adaptive, per_batch(size, switch_after))
                .unwrap_or((p + 1) % n);
            self.advance(cur, q);
        }
        p
    }

    /// Moves `current` from `cur` on to partition `q` in a new turn, if nobody has yet.
    fn advance(&self, cur: u64, q: u32) {
        let next = ((cur >> 32).wrapping_add(1) << 32) | u64::from(q);
        if self
            .current
            .compare_exchange(cur, next, Relaxed, Relaxed)
            .is_ok()
        {
            self.placed.store(0, Relaxed);
        }
    }
}

/// About how many records of `size` bytes make a batch of `batch_size`.
fn per_batch(size: usize, batch_size: usize) -> u32 {
    (batch_size / size.max(1)).clamp(1, u32::MAX as usize) as u32
}

/// One partition: its ring (callers push, the owning I/O thread pops) and its batches.
pub(crate) struct PartitionState {
    pub topic: Arc<str>,
    pub partition: i32,
    pub ring: ArrayQueue<PendingRecord>,
    /// The leader's broker id (-1 while unknown) and the I/O thread that owns the partition,
    /// in one word so that every reader sees the two agree (see [`route`](Self::route)).
    /// Read by every keyless `send()`: on a cache line of its own, away from what the I/O
    /// threads write.
    pub route: CachePadded<AtomicU64>,
    /// The leader epoch `route` was learnt at (-1: unknown), so an older leader hint (KIP-951)
    /// never overrides a newer leader.
    pub leader_epoch: AtomicI32,
    /// Batch state; locked only by I/O threads (the owner, and whoever gets its responses).
    /// Padded: the owner writes it for every record it drains.
    pub acc: CachePadded<Mutex<Accumulator>>,
    /// Whether the open batch has records (its linger is running): set by the owner, read by
    /// callers to know whether their record starts a batch (then a parked owner is woken).
    pub lingering: AtomicBool,
    /// A caller waits for a record of this partition's open batch: the owner closes it
    /// without waiting out the linger, as soon as its leader's connection can take it.
    pub urgent: AtomicBool,
    /// Every I/O thread's wake-up, to reach the owner from a waiting caller.
    io: Arc<[wake::ThreadWake]>,
    /// A transactional producer: the transaction the coordinator has this partition in, and
    /// the one it was queued to join (`u64::MAX`: none).
    pub txn_added: AtomicU64,
    pub txn_queued: AtomicU64,
    /// The earliest send time of records that waited for metadata and were then pushed on the
    /// ring (rare): the owner backdates the batch they join to it. `waited` says it is set.
    waited: AtomicBool,
    waited_since: Mutex<Option<Instant>>,
    /// What became of its batches, for `metrics()`.
    pub counters: crate::metrics::PartitionCounters,
    /// Its waiting batches, for adaptive partitioning.
    pub load: adaptive::Load,
}

/// A partition's leader and owning thread as one word.
pub(crate) fn route_word(leader: i32, owner: usize) -> u64 {
    (u64::from(leader as u32) << 32) | owner as u64
}

/// Records a topic's rings hold together, at most: a topic of many partitions gets smaller
/// rings than `queue_capacity` (2,000 partitions × 4,096 slots of ~136 bytes would be 1.1 GB,
/// written whole when the rings are made).
pub(crate) const TOPIC_RING_BUDGET: usize = 65_536;
/// The smallest ring a partition gets from the budget (unless `queue_capacity` is smaller).
pub(crate) const MIN_RING: usize = 256;

/// The ring size for a partition of a topic with `partitions`: `queue_capacity`, or the
/// topic's share of [`TOPIC_RING_BUDGET`] if smaller, but not below [`MIN_RING`].
pub(crate) fn ring_capacity(queue_capacity: usize, partitions: usize) -> usize {
    let share = (TOPIC_RING_BUDGET / partitions.max(1)).max(MIN_RING);
    queue_capacity.min(share)
}

impl PartitionState {
    /// Ring occupancy at which a caller wakes an owner that is waiting out a linger: half
    /// the ring.
    #[inline]
    pub fn wake_threshold(&self) -> usize {
        (self.ring.capacity() / 2).max(1)
    }

    /// The leader's broker id (-1: none) and the I/O thread that owns the partition.
    #[inline]
    pub fn route(&self) -> (i32, usize) {
        let r = self.route.load(SeqCst);
        ((r >> 32) as u32 as i32, (r & 0xFFFF_FFFF) as usize)
    }

    /// A caller is about to wait for a record it pushed here: its batch goes without the
    /// linger. The owner is woken if it is parked (one atomic store and load otherwise).
    pub fn urge(&self) {
        if !self.urgent.swap(true, SeqCst) {
            self.io[self.owner()].wake();
        }
    }

    /// Records that waited for metadata since `since` are about to be pushed on the ring.
    pub fn note_waited(&self, since: Instant) {
        let mut w = self.waited_since.lock();
        *w = Some(w.map_or(since, |t: Instant| t.min(since)));
        self.waited.store(true, SeqCst);
    }

    /// Takes what [`note_waited`](Self::note_waited) left (one relaxed load when nothing).
    pub fn take_waited(&self) -> Option<Instant> {
        if !self.waited.load(Relaxed) {
            return None;
        }
        self.waited.store(false, SeqCst);
        self.waited_since.lock().take()
    }

    /// The I/O thread that drains this partition's ring and sends its batches.
    #[inline]
    pub fn owner(&self) -> usize {
        self.route().1
    }
}

impl std::fmt::Debug for PartitionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}[{}]", self.topic, self.partition)
    }
}

/// A record waiting for its topic's metadata.
pub(crate) struct Unplaced {
    pub since: Instant,
    pub partition: Option<i32>,
    pub record: PendingRecord,
    /// Its caller holds a handle and may wait: once placed, its partition is urged (the
    /// record has waited for metadata already; it does not wait out a linger too).
    pub urge: bool,
}

/// One topic.
pub(crate) struct TopicState {
    pub name: Arc<str>,
    /// Known once metadata arrives.
    pub partitions: ArcSwapOption<Vec<Arc<PartitionState>>>,
    pub partition_count: Arc<AtomicU32>,
    pub sticky: Arc<Sticky>,
    /// Records sent before the topic's metadata was known (and, to keep order, those sent
    /// while earlier ones still wait here).
    pub pending: Mutex<VecDeque<Unplaced>>,
    /// Whether `pending` is non-empty (changed under its lock).
    pub has_pending: AtomicBool,
    /// The last error metadata gave for the topic.
    pub error: Mutex<Option<ErrorCode>>,
}

/// Purges callers asked for ([`crate::Producer::purge`]), carried out by every I/O thread at
/// its next turn: each fails what is buffered (rings, metadata queues, open and waiting
/// batches, every partition's), and what it has in flight when asked.
pub(crate) struct Purges {
    /// Serialises requests, so the two counters agree.
    lock: Mutex<()>,
    /// Bumped by each request.
    requested: AtomicU64,
    /// The latest request that includes records in flight.
    in_flight: AtomicU64,
    /// Per I/O thread: the latest request it has carried out.
    done: Box<[AtomicU64]>,
    signal: Signal,
}

impl Purges {
    fn new(threads: usize) -> Purges {
        Purges {
            lock: Mutex::new(()),
            requested: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            done: (0..threads).map(|_| AtomicU64::new(0)).collect(),
            signal: Signal::default(),
        }
    }

    /// Asks for a purge; returns its number.
    pub fn request(&self, in_flight: bool) -> u64 {
        let _g = self.lock.lock();
        let n = self.requested.load(SeqCst) + 1;
        if in_flight {
            self.in_flight.store(n, SeqCst);
        }
        self.requested.store(n, SeqCst);
        n
    }

    /// For a thread that has carried out every request up to `seen`: the latest request, if
    /// there is a newer one, and whether one since `seen` includes records in flight.
    pub fn due(&self, seen: u64) -> Option<(u64, bool)> {
        let n = self.requested.load(SeqCst);
        (n > seen).then(|| (n, self.in_flight.load(SeqCst) > seen))
    }

    /// Thread `thread` has carried out the requests up to `n`.
    pub fn carried_out(&self, thread: usize, n: u64) {
        self.done[thread].store(n, SeqCst);
        self.signal.notify();
    }

    /// Whether every thread has carried out request `n`.
    pub fn carried(&self, n: u64) -> bool {
        self.done.iter().all(|d| d.load(SeqCst) >= n)
    }

    /// Waits until every thread has carried out request `n`, or `deadline`.
    pub fn wait(&self, n: u64, deadline: Instant) -> bool {
        self.carried(n) || self.signal.wait_until(deadline, || self.carried(n))
    }
}

/// Flush waiters and space waiters park here.
#[derive(Default)]
struct Signal {
    lock: Mutex<()>,
    cv: Condvar,
    waiters: AtomicUsize,
}

impl Signal {
    fn notify(&self) {
        if self.waiters.load(SeqCst) > 0 {
            let _g = self.lock.lock();
            self.cv.notify_all();
        }
    }

    /// Waits until `ready()` or `deadline`; returns `ready()`'s last answer. `ready` is
    /// only called under the signal's lock (callers do their own lock-free first check).
    fn wait_until(&self, deadline: Instant, mut ready: impl FnMut() -> bool) -> bool {
        let mut g = self.lock.lock();
        self.waiters.fetch_add(1, SeqCst);
        let ok = loop {
            if ready() {
                break true;
            }
            if self.cv.wait_until(&mut g, deadline).timed_out() {
                break ready();
            }
        };
        self.waiters.fetch_sub(1, SeqCst);
        ok
    }
}

/// Where the engine reads the time outside the I/O loop (when a record starts waiting for its
/// topic's metadata): the system clock, or the deterministic simulation's virtual one.
#[derive(Clone, Default)]
pub(crate) enum Clock {
    #[default]
    System,
    #[cfg(test)]
    Virtual(Arc<Mutex<Instant>>),
}

impl Clock {
    pub fn now(&self) -> Instant {
        match self {
            Clock::System => Instant::now(),
            #[cfg(test)]
            Clock::Virtual(t) => *t.lock(),
        }
    }
}

/// Topic name → its state; looked up by name on every `send()`, so hashed with foldhash (a few
/// ns for a short name) rather than SipHash.
pub(crate) type TopicMap = HashMap<Arc<str>, Arc<TopicState>, foldhash::fast::RandomState>;

/// State shared by callers and I/O threads.
pub(crate) struct Shared {
    pub config: ProducerConfig,
    pub partitioner: Arc<dyn Partitioner>,
    pub topics: ArcSwap<TopicMap>,
    topics_write: Mutex<()>,
    /// Broker id → `host:port`.
    pub brokers: ArcSwap<HashMap<i32, String>>,
    /// Broker id → I/O thread; changed only where metadata is applied, read through each
    /// partition's [`route`](PartitionState::route).
    pub placement: Mutex<placement::Placement>,
    /// Bumped whenever leaders or partitions change.
    pub metadata_version: AtomicU64,
    pub metadata_wanted: AtomicBool,
    pub io: Arc<[wake::ThreadWake]>,
    /// The producer id and epoch, whether they are known, and whether a bump is wanted.
    pub producer: idempotence::ProducerState,
    buffered_bytes: AtomicUsize,
    buffered_records: AtomicUsize,
    /// Completions handed to the callback pool whose callback has not finished yet.
    callbacks_queued: AtomicUsize,
    space: Signal,
    done: Signal,
    pub flushing: AtomicUsize,
    pub closing: AtomicBool,
    /// Idempotence turned out impossible (InitProducerId refused for good): every record
    /// waiting, and every later send, fails with [`fatal_error`](Self::fatal_error).
    pub fatal: AtomicBool,
    fatal_error: Mutex<Option<Error>>,
    /// Threads stop now; what is left fails with this.
    pub abort: AtomicBool,
    pub abort_error: Mutex<Option<Error>>,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
    /// The TLS client configuration, when connections use TLS (built once, at start).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The latest TLS or authentication failure, until a connection next becomes ready:
    /// records whose metadata or delivery deadline passes meanwhile fail with it rather than
    /// with a bare timeout, since it is why they could not be sent.
    pub security_failure: Mutex<Option<Error>>,
    /// The current OAUTHBEARER token, kept fresh by the producer's refresher thread.
    pub tokens: Option<Arc<crate::sasl::tokens::TokenSource>>,
    /// The application's interceptors; `None` when there are none.
    pub interceptors: Option<Arc<crate::interceptor::Interceptors>>,
    /// Producer spans and trace context for each record (feature `opentelemetry`).
    #[cfg(feature = "opentelemetry")]
    pub telemetry: Option<crate::otel::Telemetry>,
    pub purges: Purges,
    /// Callers' admin requests for thread 0 (see `core::admin`).
    pub admin: Mutex<VecDeque<core::admin::AdminJob>>,
    pub admin_wanted: AtomicBool,
    /// A transactional producer's state (`None`: not transactional).
    pub txn: Option<transaction::Transactions>,
}

thread_local! {
    /// Sends on this thread since its last record timed through its stages.
    static STAGE_COUNT: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

impl Shared {
    /// The snapshot behind `Producer::metrics()`.
    pub fn metrics_snapshot(&self) -> crate::MetricsSnapshot {
        let mut m = self
            .metrics
            .snapshot(self.outstanding() as u64, self.queue_depth() as u64);
        m.token_refreshes = self.tokens.as_ref().map_or(0, |t| t.refreshes());
        m.interceptor_panics = self.interceptors.as_ref().map_or(0, |i| i.panics());
        m.partitions = self.partition_metrics();
        m.buffer_bytes = self.buffered_bytes() as u64;
        m.buffer_limit_bytes = self.config.buffer_memory as u64;
        m
    }

    /// Whether the record being sent is timed through its stages (one in
    /// `stage_sampling`, counted per calling thread): when it was sent, if so.
    #[inline]
    pub fn stage_sample(&self) -> Option<batch::SentAt> {
        let every = self.config.stage_sampling;
        if every == 0 {
            return None;
        }
        STAGE_COUNT.with(|c| {
            let n = c.get();
            c.set(if n + 1 >= every { 0 } else { n + 1 });
            (n == 0).then(batch::SentAt::now)
        })
    }

    pub fn new(
        config: ProducerConfig,
        partitioner: Arc<dyn Partitioner>,
        io: Vec<wake::ThreadWake>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let txn = config
            .transactional_id
            .clone()
            .map(|id| transaction::Transactions::new(id, config.transaction_timeout));
        // Fix the stage clock's zero before any record is timed.
        batch::SentAt::base();
        Shared {
            config,
            partitioner,
            topics: ArcSwap::from_pointee(TopicMap::default()),
            topics_write: Mutex::new(()),
            brokers: ArcSwap::from_pointee(HashMap::new()),
            placement: Mutex::new(placement::Placement::new(io.len())),
            purges: Purges::new(io.len()),
            admin: Mutex::new(VecDeque::new()),
            admin_wanted: AtomicBool::new(false),
            txn,
            metadata_version: AtomicU64::new(0),
            metadata_wanted: AtomicBool::new(false),
            io: io.into(),
            producer: idempotence::ProducerState::default(),
            buffered_bytes: AtomicUsize::new(0),
            buffered_records: AtomicUsize::new(0),
            callbacks_queued: AtomicUsize::new(0),
            space: Signal::default(),
            done: Signal::default(),
            flushing: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            fatal: AtomicBool::new(false),
            fatal_error: Mutex::new(None),
            abort: AtomicBool::new(false),
            abort_error: Mutex::new(None),
            metrics,
            clock: Clock::System,
            tls: None,
            security_failure: Mutex::new(None),
            tokens: None,
            interceptors: None,
            #[cfg(feature = "opentelemetry")]
            telemetry: None,
        }
    }

    /// Records enqueued and not yet completed.
    /// Bytes of the buffer (`buffer_memory`) the outstanding records hold.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes.load(SeqCst)
    }

    pub fn outstanding(&self) -> usize {
        self.buffered_records.load(SeqCst)
    }

    /// Records waiting in rings and metadata queues, not yet in a batch.
    /// Every known partition's counters, by topic and partition.
    pub fn partition_metrics(&self) -> Vec<crate::metrics::PartitionMetrics> {
        let mut out = Vec::new();
        for t in self.topics.load().values() {
            if let Some(parts) = t.partitions.load_full() {
                out.extend(parts.iter().map(|p| p.counters.snapshot(p)));
            }
        }
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        out
    }

    pub fn queue_depth(&self) -> usize {
        let mut n = 0;
        for t in self.topics.load().values() {
            if t.has_pending.load(SeqCst) {
                n += t.pending.lock().len();
            }
            if let Some(parts) = t.partitions.load_full() {
                n += parts.iter().map(|p| p.ring.len()).sum::<usize>();
            }
        }
        n
    }

    /// Wakes every I/O thread (flush, close, metadata changes).
    pub fn wake_all(&self) {
        for t in self.io.iter() {
            t.wake();
        }
    }

    /// Asks thread 0 for a metadata refresh.
    pub fn request_metadata(&self) {
        self.metadata_wanted.store(true, SeqCst);
        self.io[0].wake();
    }

    /// Gives back `records` records' `bytes` (they completed).
    pub fn release(&self, records: usize, bytes: usize) {
        if records == 0 {
            return;
        }
        self.buffered_bytes.fetch_sub(bytes, SeqCst);
        let left = self.buffered_records.fetch_sub(records, SeqCst) - records;
        self.space.notify();
        if left == 0 {
            self.done.notify();
        }
    }

    /// Ring slots were freed: callers blocked on a full ring may go on.
    pub fn ring_drained(&self) {
        self.space.notify();
    }

    /// Waits until nothing is outstanding and every callback has run, or `deadline`.
    pub fn wait_idle(&self, deadline: Instant) -> bool {
        self.idle() || self.done.wait_until(deadline, || self.idle())
    }

    /// [`wait_idle`](Self::wait_idle), also returning (true) as soon as `stop()` holds: a
    /// commit stops waiting for its records once the transaction cannot commit anyway.
    /// Whoever makes `stop` hold calls [`notify_done`](Self::notify_done).
    pub fn wait_idle_unless(&self, deadline: Instant, stop: impl Fn() -> bool) -> bool {
        let ready = || self.idle() || stop();
        ready() || self.done.wait_until(deadline, ready)
    }

    /// Wakes the callers waiting in [`wait_idle_unless`](Self::wait_idle_unless).
    pub fn notify_done(&self) {
        self.done.notify();
    }

    /// No record is outstanding and every callback of a completed one has returned.
    fn idle(&self) -> bool {
        // Order matters: a completion queues its callback before it releases its record.
        self.buffered_records.load(SeqCst) == 0 && self.callbacks_queued.load(SeqCst) == 0
    }

    /// `n` completions are about to go to the callback pool (before their records are
    /// released).
    pub fn callbacks_queued(&self, n: usize) {
        self.callbacks_queued.fetch_add(n, SeqCst);
    }

    /// `n` callbacks queued with [`callbacks_queued`](Self::callbacks_queued) have returned.
    pub fn callbacks_ran(&self, n: usize) {
        if self.callbacks_queued.fetch_sub(n, SeqCst) == n {
            self.done.notify();
        }
        self.space.notify();
    }

    /// Fails `completions` (and releases their `reserved` bytes) with `error`.
    pub fn fail_all(
        &self,
        completions: Completions,
        reserved: usize,
        error: &Error,
        deliver: &mut dyn FnMut(Completer, crate::delivery::DeliveryResult),
    ) {
        let n = completions.len();
        Metrics::add(&self.metrics.records_failed, n as u64);
        completions.fail(error, deliver);
        self.release(n, reserved);
        if let (Some(t), true) = (&self.txn, n > 0) {
            // Records of the open transaction failed before they had a batch (the topic's
            // metadata never came, a purge, close): it cannot commit without them. Without
            // this a commit succeeded with them missing (found by the transactional
            // simulation, seed 924).
            t.fail(transaction::record_failure(error));
            self.notify_done();
        }
    }

    /// Puts the producer in its fatal state (see [`fatal`](Self::fatal)); the first error
    /// stays.
    pub fn set_fatal(&self, e: Error) {
        let mut f = self.fatal_error.lock();
        if f.is_none() {
            log::error!("kprod: {e}; every record now fails with it");
            *f = Some(e);
        }
        drop(f);
        self.fatal.store(true, SeqCst);
        self.wake_all();
    }

    /// The error of the fatal state.
    pub fn fatal_error(&self) -> Error {
        self.fatal_error.lock().clone().unwrap_or(Error::closed())
    }

    /// The error records left at shutdown fail with.
    pub fn shutdown_error(&self) -> Error {
        self.abort_error.lock().clone().unwrap_or(Error::closed())
    }

    /// A timeout error for `deadline` at a topic/partition: the security failure that kept
    /// the record from being sent, if there is one.
    pub fn timeout(&self, deadline: Deadline, at: Location) -> Error {
        if matches!(deadline, Deadline::Delivery | Deadline::Metadata) {
            if let Some(e) = self.security_failure.lock().as_ref() {
                return e.clone().at(at);
            }
        }
        let after = match deadline {
            Deadline::Delivery => self.config.delivery_timeout,
            Deadline::Request => self.config.request_timeout,
            Deadline::Metadata => self.config.metadata_timeout,
            _ => Duration::ZERO,
        };
        Error::Timeout {
            deadline,
            after,
            at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partitions(n: usize, leaderless: &[usize]) -> Vec<Arc<PartitionState>> {
        let io: Arc<[wake::ThreadWake]> = Arc::from(vec![wake::ThreadWake::new(|| {})]);
        (0..n)
            .map(|i| {
                let leader = if leaderless.contains(&i) { -1 } else { 1 };
                Arc::new(PartitionState {
                    topic: "t".into(),
                    partition: i as i32,
                    ring: ArrayQueue::new(1),
                    route: CachePadded::new(AtomicU64::new(route_word(leader, 0))),
                    leader_epoch: AtomicI32::new(-1),
                    acc: CachePadded::new(Mutex::new(Accumulator::default())),
                    lingering: AtomicBool::new(false),
                    urgent: AtomicBool::new(false),
                    io: io.clone(),
                    txn_added: AtomicU64::new(u64::MAX),
                    txn_queued: AtomicU64::new(u64::MAX),
                    waited: AtomicBool::new(false),
                    waited_since: Mutex::new(None),
                    counters: Default::default(),
                    load: Default::default(),
                })
            })
            .collect()
    }

    /// Every partition gets `switch_after` bytes in turn, whatever the seed; a leaderless one
    /// gets none.
    #[test]
    fn uniform_sticky_gives_each_partition_its_share_in_turn() {
        for seed in [0, 7, 11, 734_123_456, u32::MAX] {
            let parts = partitions(12, &[5]);
            let s = Sticky::new(seed);
            let mut bytes = [0usize; 12];
            for _ in 0..12 * 100 {
                bytes[s.place(&parts, 10, 1000, ADAPTIVE) as usize] += 10;
            }
            assert_eq!(bytes[5], 0, "seed {seed}: {bytes:?}");
            let led: Vec<usize> = (0..12).filter(|&i| i != 5).map(|i| bytes[i]).collect();
            let (min, max) = (led.iter().min().unwrap(), led.iter().max().unwrap());
            assert!(max - min <= 1000, "seed {seed}: {bytes:?}");
        }
        // No partition with a leader: records stay put (they wait for metadata there).
        let parts = partitions(3, &[0, 1, 2]);
        let s = Sticky::new(1);
        assert_eq!(s.place(&parts, 10, 5, ADAPTIVE), 1);
    }

    const ADAPTIVE: adaptive::Adaptive = adaptive::Adaptive {
        enabled: true,
        availability_timeout: Duration::ZERO,
    };

    /// A partition whose batches pile up gets fewer turns, in Java's proportions; a
    /// difference of one batch changes nothing.
    #[test]
    fn adaptive_partitioning_sends_less_where_batches_wait() {
        let now = Instant::now();
        let parts = partitions(3, &[]);
        let turns = |parts: &[Arc<PartitionState>]| {
            let s = Sticky::new(0);
            let mut n = [0usize; 3];
            for _ in 0..30_000 {
                n[s.place(parts, 10, 10, ADAPTIVE) as usize] += 1;
            }
            n
        };
        parts[2].load.observe(1, now);
        let even = turns(&parts);
        assert_eq!(even, [10_000; 3], "one batch more: still in turn");
        // Partition 2 has 8 batches waiting: weights 9, 9, 1.
        parts[2].load.observe(8, now);
        let n = turns(&parts);
        let share = n[2] as f64 / 30_000.0;
        assert!((0.03..0.08).contains(&share), "{n:?}");
        assert!(n[0].abs_diff(n[1]) < 1_500, "{n:?}");
        // Off: in turn whatever waits.
        let s = Sticky::new(0);
        let off = adaptive::Adaptive {
            enabled: false,
            ..ADAPTIVE
        };
        let mut m = [0usize; 3];
        for _ in 0..300 {
            m[s.place(&parts, 10, 10, off) as usize] += 1;
        }
        assert_eq!(m, [100; 3]);
    }

    /// A partition whose leader has taken none of its waiting batches for the availability
    /// timeout gets no keyless record; with the timeout off it still gets its turn.
    #[test]
    fn an_unavailable_partition_is_skipped() {
        let parts = partitions(3, &[]);
        let long_ago = Instant::now() - Duration::from_secs(5);
        parts[1].load.observe(1, long_ago);
        let timed = adaptive::Adaptive {
            enabled: false,
            availability_timeout: Duration::from_secs(1),
        };
        let s = Sticky::new(0);
        let mut n = [0usize; 3];
        for _ in 0..300 {
            n[s.place(&parts, 10, 10, timed) as usize] += 1;
        }
        // The first call may land on it before the partitioner first moves.
        assert!(n[1] <= 1, "{n:?}");
        parts[1].load.drained(Instant::now());
        let mut m = [0usize; 3];
        for _ in 0..300 {
            m[s.place(&parts, 10, 10, timed) as usize] += 1;
        }
        assert!(m[1] >= 99, "available again: {m:?}");
    }
}
