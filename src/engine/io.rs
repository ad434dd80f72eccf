//! The I/O loop: the only module that touches sockets (through mio).
//!
//! Each I/O thread owns a `mio::Poll` and the connections to the brokers assigned to it
//! (balanced by count: `placement`); thread 0 also keeps a control connection for Metadata and
//! InitProducerId. Per loop turn a thread: drains the rings of the partitions whose leaders it
//! owns into their open batches, closes batches that are full or past linger, sends one
//! Produce request per ready broker connection (up to `max_in_flight` unanswered), moves
//! bytes, and turns responses into completions or retries. Then it parks in `poll` until the
//! next deadline; callers wake it through its `Waker` only when it is parked.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU8, Ordering::*};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::Sender;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};

use super::batch::{Accumulator, Completions, ProducerBatch, ProducerIds, Urgency};
use super::callbacks::{run_job, Job};
use super::producer_id::{self, PidDecision};
use super::{PartitionState, Shared};
use crate::connection::{Connection, InFlight};
use crate::delivery::{Completer, DeliveryResult};
use crate::error::{Deadline, Error, Location};
use crate::metrics::Metrics;
use crate::protocol::compression::Compressor;
use crate::protocol::messages::api_versions::{decode_api_versions_response, ApiVersionsRequest};
use crate::protocol::messages::init_producer_id::InitProducerIdRequest;
use crate::protocol::messages::metadata::MetadataRequest;
use crate::protocol::messages::produce::{PartitionProduceData, ProduceRequest, TopicProduceData};
use crate::protocol::messages::Request;
use crate::protocol::{decode_response_lenient, ApiKey, BrokerVersions, DecodeError, ErrorCode};

const RUNNING: u8 = 0;
/// Parked until a linger deadline: callers need not wake it for every record.
const PARKED_TIMED: u8 = 1;
/// Parked with nothing due soon: the first record must wake it.
const PARKED_IDLE: u8 = 2;

const WAKER: Token = Token(usize::MAX);
/// Largest response frame accepted.
const MAX_FRAME: usize = 256 << 20;
/// Longest park, as a backstop.
const MAX_PARK: Duration = Duration::from_secs(1);

/// How callers reach a thread: its waker and whether it is parked.
pub(crate) struct ThreadWake {
    waker: Waker,
    parked: AtomicU8,
}

impl ThreadWake {
    /// Wakes the thread if it is parked.
    pub fn wake(&self) {
        if self.parked.swap(RUNNING, SeqCst) != RUNNING {
            let _ = self.waker.wake();
        }
    }

    /// A record was pushed on a ring this thread drains, which now holds `ring_len`.
    #[inline]
    pub fn record_pushed(&self, ring_len: usize, threshold: usize, metrics: &Metrics) {
        let state = self.parked.load(SeqCst);
        let needed = state == PARKED_IDLE || (state == PARKED_TIMED && ring_len >= threshold);
        if needed && self.parked.swap(RUNNING, SeqCst) != RUNNING {
            Metrics::add(&metrics.wakeups, 1);
            let _ = self.waker.wake();
        }
    }
}

/// Creates the polls and their wakers for `n` threads.
pub(crate) fn polls(n: usize) -> std::io::Result<(Vec<Poll>, Vec<ThreadWake>)> {
    let mut polls = Vec::with_capacity(n);
    let mut wakes = Vec::with_capacity(n);
    for _ in 0..n {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        polls.push(poll);
        wakes.push(ThreadWake {
            waker,
            parked: AtomicU8::new(RUNNING),
        });
    }
    Ok((polls, wakes))
}

/// What a request in flight was for.
#[derive(Debug)]
enum Ctx {
    ApiVersions,
    Metadata,
    InitProducerId,
    Produce(Vec<(Arc<PartitionState>, ProducerBatch)>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Down,
    Connecting,
    Negotiating,
    Ready,
}

#[derive(Debug, Clone, Copy)]
struct Versions {
    produce: i16,
    metadata: i16,
    init_producer_id: Option<i16>,
}

struct BrokerConn {
    /// Broker id, or -1 for a bootstrap address.
    broker: i32,
    addr: String,
    stream: Option<TcpStream>,
    state: State,
    conn: Connection<Ctx>,
    versions: Option<Versions>,
    api_versions_version: i16,
    backoff: Duration,
    retry_at: Option<Instant>,
}

/// Where a thread sends Metadata and InitProducerId.
#[derive(Debug, Default)]
struct Control {
    conn: Option<usize>,
    /// Next bootstrap address to try.
    next_bootstrap: usize,
    metadata_in_flight: bool,
    next_metadata: Option<Instant>,
    pid_in_flight: bool,
    pid_retry_at: Option<Instant>,
    /// The next wait after a retriable InitProducerId error (doubles up to the maximum).
    pid_backoff: Duration,
    /// The InitProducerId in flight is an epoch bump.
    bumping: bool,
    /// A bump with the current id and epoch was refused: ask for a new id instead.
    bump_fresh: bool,
    /// After a control connection fails: not before this, and the next backoff.
    retry_at: Option<Instant>,
    backoff: Duration,
}

pub(crate) struct IoThread {
    index: usize,
    shared: Arc<Shared>,
    poll: Poll,
    conns: Vec<Option<BrokerConn>>,
    by_broker: HashMap<i32, usize>,
    owned: Vec<Arc<PartitionState>>,
    seen_version: u64,
    compressor: Compressor,
    rng: u64,
    read_buf: Vec<u8>,
    callbacks: Sender<Job>,
    control: Control,
    /// `send_produce`'s scratch list (leader, place in `owned`, partition), kept between
    /// loop turns.
    wanted: Vec<(i32, usize, Arc<PartitionState>)>,
}

impl IoThread {
    pub fn new(index: usize, shared: Arc<Shared>, poll: Poll, callbacks: Sender<Job>) -> Self {
        let compressor = Compressor::new(shared.config.compression);
        IoThread {
            index,
            poll,
            conns: Vec::new(),
            by_broker: HashMap::new(),
            owned: Vec::new(),
            seen_version: u64::MAX,
            compressor,
            rng: 0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9),
            read_buf: vec![0; 64 * 1024],
            callbacks,
            control: Control::default(),
            wanted: Vec::new(),
            shared,
        }
    }

    fn random(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// `d` with ±20% jitter (as the Java client and librdkafka spread reconnects), so clients
    /// that lost a broker together do not come back in step.
    fn jitter(&mut self, d: Duration) -> Duration {
        let r = self.random() % 401; // 0..=400 → 0.8..=1.2
        d.mul_f64(0.8 + r as f64 / 1000.0)
    }

    /// Runs until the producer aborts, or closes with nothing left to do.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(256);
        loop {
            let now = Instant::now();
            if self.shared.abort.load(SeqCst) {
                break;
            }
            let version = self.shared.metadata_version.load(SeqCst);
            if version != self.seen_version {
                self.seen_version = version;
                self.refresh_owned();
            }
            let mut deadline: Option<Instant> = None;
            if self.index == 0 {
                merge(&mut deadline, self.control_duties(now));
            }
            merge(&mut deadline, self.accumulate(now));
            self.send_produce(now, &mut deadline);
            for i in 0..self.conns.len() {
                self.write(i, now);
            }
            merge(&mut deadline, self.check_connections(now));
            if self.shared.closing.load(SeqCst)
                && self.shared.outstanding() == 0
                && self.conns.iter().flatten().all(|c| c.conn.in_flight() == 0)
            {
                break;
            }
            self.park(now, deadline, &mut events);
            for ev in events.iter() {
                if ev.token() == WAKER {
                    continue;
                }
                let i = ev.token().0;
                if ev.is_writable() {
                    self.on_writable(i, Instant::now());
                }
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    self.on_readable(i, Instant::now());
                }
            }
        }
        self.shutdown();
    }

    /// Rebuilds the list of partitions this thread drives.
    fn refresh_owned(&mut self) {
        self.owned.clear();
        for t in self.shared.topics.load().values() {
            if let Some(parts) = t.partitions.load_full() {
                for p in parts.iter() {
                    if p.owner() == self.index {
                        self.owned.push(p.clone());
                    }
                }
            }
        }
    }

    fn deliver(&self) -> impl FnMut(Completer, DeliveryResult) + '_ {
        let shared = &self.shared;
        let metrics = &self.shared.metrics;
        let tx = &self.callbacks;
        move |c: Completer, r: DeliveryResult| {
            if c.is_callback() {
                shared.callback_queued();
                if let Err(e) = tx.send((c, r)) {
                    run_job(e.into_inner(), metrics);
                    shared.callback_ran();
                }
            } else {
                c.complete(r);
            }
        }
    }

    /// Completes a batch and gives its records' room back.
    fn complete(
        &self,
        p: &PartitionState,
        b: ProducerBatch,
        outcome: Result<(i64, Option<i64>), Error>,
    ) {
        let (n, bytes) = (b.record_count(), b.reserved);
        let m = &self.shared.metrics;
        let (records, sizes) = if outcome.is_ok() {
            (&m.records_acked, &m.bytes_acked)
        } else {
            (&m.records_failed, &m.bytes_failed)
        };
        Metrics::add(records, n as u64);
        Metrics::add(sizes, b.bytes.len() as u64);
        b.complete(&p.topic, p.partition, outcome, &mut self.deliver());
        self.shared.release(n, bytes);
    }

    /// Drains rings into batches and closes the batches that are due. Returns the next
    /// batch deadline.
    fn accumulate(&mut self, now: Instant) -> Option<Instant> {
        let cfg = &self.shared.config;
        let (linger, delivery_timeout, batch_size) =
            (cfg.linger, cfg.delivery_timeout, cfg.batch_size);
        let urgency = if self.shared.flushing.load(SeqCst) > 0 || self.shared.closing.load(SeqCst) {
            Urgency::Flush
        } else {
            Urgency::Normal
        };
        if self.shared.fatal.load(SeqCst) {
            // Idempotence is impossible: nothing here can be sent.
            self.fail_everything(&self.shared.fatal_error());
            return None;
        }
        // Without a producer id yet, records still go into batches (their delivery timeout
        // runs from there), held until the id comes and numbers them.
        let no_ids = cfg.idempotence && !self.shared.ids_ready.load(SeqCst);
        let ids = if cfg.idempotence {
            *self.shared.ids.lock()
        } else {
            ProducerIds::NONE
        };
        let mut deadline = None;
        for k in 0..self.owned.len() {
            let p = self.owned[k].clone();
            if p.owner() != self.index {
                // Its leader moved to another thread's broker since `owned` was built: one
                // thread drains a ring, so records enter batches in the order they came.
                continue;
            }
            let mut acc = p.acc.lock();
            // After an epoch bump: sequences restart under the new ids.
            let _ = acc.adopt(ids);
            let mut drained = 0;
            let mut failed = None;
            while let Some(r) = p.ring.pop() {
                drained += 1;
                if let Err(e) = acc.append(r, now, batch_size, ids, &mut self.compressor) {
                    failed = Some(e);
                    break;
                }
            }
            if drained > 0 {
                self.shared.ring_drained();
            }
            let closed = match acc.close_if_due(now, linger, urgency, ids, &mut self.compressor) {
                Ok(c) => c,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            };
            if let Some(e) = failed {
                // Compression failed: the open records cannot be sent.
                log::error!("kprod: compressing a batch for {p:?} failed: {e}");
                let (cs, reserved) = acc.drain_all();
                let err = Error::Io {
                    broker: "(compression)".into(),
                    source: Arc::new(e),
                    at: Location::at(&p.topic, p.partition),
                };
                self.shared
                    .fail_all(cs, reserved, &err, &mut self.deliver());
            }
            if closed || acc.ready.len() > 1 {
                let n = p.partition_count.load(Relaxed);
                p.sticky.rotate(p.partition as u32, n);
            }
            let expired = acc.expire(now, delivery_timeout);
            for b in &expired {
                self.given_up(&mut acc, b);
            }
            if acc.gap && !self.shared.bump_wanted.load(SeqCst) && acc.rewind_if_settled() {
                Metrics::add(&self.shared.metrics.sequence_rewinds, 1);
                log::debug!("kprod: {p:?}: sequences rewound past a failed batch");
            }
            let hold = no_ids || self.shared.bump_wanted.load(SeqCst) || !acc.uses(ids);
            let next = acc.next_deadline(linger, delivery_timeout, hold);
            drop(acc);
            for b in expired {
                let e = self
                    .shared
                    .timeout(Deadline::Delivery, Location::at(&p.topic, p.partition));
                self.complete(&p, b, Err(e));
            }
            merge(&mut deadline, next);
        }
        deadline
    }

    /// Sends one Produce request to each ready broker that has sendable batches.
    fn send_produce(&mut self, now: Instant, deadline: &mut Option<Instant>) {
        let ids = if self.shared.config.idempotence {
            *self.shared.ids.lock()
        } else {
            ProducerIds::NONE
        };
        let no_ids = self.shared.config.idempotence && !self.shared.ids_ready.load(SeqCst);
        let hold = no_ids || self.shared.bump_wanted.load(SeqCst);
        let mut wanted = std::mem::take(&mut self.wanted);
        for (k, p) in self.owned.iter().enumerate() {
            let (leader, owner) = p.route();
            if leader < 0 || owner != self.index {
                // No leader, or the leader moved to another thread's broker: that thread
                // sends for it once it has taken it (one sender per partition keeps order).
                continue;
            }
            let acc = p.acc.lock();
            if acc.in_flight > 0 && acc.in_flight_to != leader {
                // The leader changed: let the old leader answer first (order).
                continue;
            }
            match acc.next_batch(hold || !acc.uses(ids)) {
                Some(b) if b.not_before.is_none_or(|t| now >= t) => {
                    wanted.push((leader, k, p.clone()));
                }
                Some(b) => merge(deadline, b.not_before),
                None => {}
            }
        }
        // Grouped by broker, each group in the order the partitions are owned.
        wanted.sort_unstable_by_key(|&(leader, k, _)| (leader, k));
        for parts in wanted.chunk_by(|a, b| a.0 == b.0) {
            let broker = parts[0].0;
            let Some(i) = self.broker_conn(broker, now) else {
                // Backing off before reconnecting: come round when the backoff ends.
                if let Some(c) = self
                    .by_broker
                    .get(&broker)
                    .and_then(|&i| self.conns[i].as_ref())
                {
                    merge(deadline, c.retry_at);
                }
                continue;
            };
            let c = self.conns[i].as_mut().expect("live conn");
            if c.state != State::Ready || !c.conn.can_send() {
                // Connecting (its socket's readiness wakes us) or the window is full (an
                // answer wakes us).
                continue;
            }
            let version = c.versions.expect("ready").produce;
            let limit = self.shared.config.max_request_size;
            let mut size = 0;
            let mut batches: Vec<(Arc<PartitionState>, ProducerBatch)> = Vec::new();
            // Whether a partition still has a sendable batch after this request.
            let mut more = false;
            for (_, _, p) in parts {
                let mut acc = p.acc.lock();
                // Read again under the partition's lock: an epoch bump checks that nothing is
                // in flight under the same lock, after asking for the hold.
                let ids = if self.shared.config.idempotence {
                    *self.shared.ids.lock()
                } else {
                    ProducerIds::NONE
                };
                let hold = no_ids || self.shared.bump_wanted.load(SeqCst) || !acc.uses(ids);
                let Some(b) = acc.sendable(now, hold) else {
                    continue;
                };
                if !batches.is_empty() && size + b.bytes.len() > limit {
                    more = true;
                    continue;
                }
                size += b.bytes.len();
                let mut b = acc.ready.pop_front().expect("sendable");
                acc.in_flight += 1;
                acc.in_flight_to = broker;
                b.attempts += 1;
                let m = &self.shared.metrics;
                if b.attempts > 1 {
                    Metrics::add(&m.retries, 1);
                    Metrics::add(&m.records_retried, b.record_count() as u64);
                } else {
                    Metrics::add(&m.records_batched, b.record_count() as u64);
                    Metrics::add(&m.batch_bytes_uncompressed, b.uncompressed as u64);
                    Metrics::add(&m.batch_bytes_compressed, b.bytes.len() as u64);
                }
                more |= acc.sendable(now, hold).is_some();
                drop(acc);
                batches.push((p.clone(), b));
            }
            if batches.is_empty() {
                continue;
            }
            let mut topics: Vec<TopicProduceData> = Vec::new();
            for (p, b) in &batches {
                let data = PartitionProduceData {
                    index: p.partition,
                    records: Some(b.bytes.clone()),
                };
                match topics.iter_mut().find(|t| *t.name == *p.topic) {
                    Some(t) => t.partition_data.push(data),
                    None => topics.push(TopicProduceData {
                        name: p.topic.to_string(),
                        partition_data: vec![data],
                    }),
                }
            }
            let acks = self.shared.config.acks.wire();
            let req = ProduceRequest {
                transactional_id: None,
                acks,
                timeout_ms: self
                    .shared
                    .config
                    .request_timeout
                    .as_millis()
                    .min(i32::MAX as u128) as i32,
                topic_data: topics,
            };
            let m = &self.shared.metrics;
            Metrics::add(&m.requests_sent, 1);
            Metrics::add(&m.batches_sent, batches.len() as u64);
            Metrics::add(&m.bytes_sent, size as u64);
            let c = self.conns[i].as_mut().expect("live conn");
            match c
                .conn
                .send(&req, version, acks != 0, now, Ctx::Produce(batches))
            {
                Ok((_, None)) => {}
                Ok((_, Some(Ctx::Produce(batches)))) => {
                    // acks=0: written is done; the broker says nothing.
                    for (p, b) in batches {
                        p.acc.lock().in_flight -= 1;
                        self.complete(&p, b, Ok((-1, None)));
                    }
                }
                Ok(_) => unreachable!("context comes back unchanged"),
                Err(e) => {
                    log::error!("kprod: encoding a Produce request failed: {e}");
                    self.fail_conn(i, now, Some(e.to_string()));
                    continue;
                }
            }
            let c = self.conns[i].as_ref().expect("live conn");
            if more && c.conn.can_send() {
                // Room for another request and batches to fill it: come straight round.
                merge(deadline, Some(now));
            }
        }
        wanted.clear();
        self.wanted = wanted;
    }

    /// The connection to `broker`, connecting if needed (None while backing off).
    fn broker_conn(&mut self, broker: i32, now: Instant) -> Option<usize> {
        if let Some(&i) = self.by_broker.get(&broker) {
            let c = self.conns[i].as_ref().expect("live conn");
            if c.state == State::Down {
                if c.retry_at.is_none_or(|t| now >= t) {
                    self.connect(i, now);
                } else {
                    return None;
                }
            }
            return Some(i);
        }
        let addr = self.shared.brokers.load().get(&broker)?.clone();
        let i = self.add_conn(broker, addr);
        self.by_broker.insert(broker, i);
        self.connect(i, now);
        Some(i)
    }

    fn add_conn(&mut self, broker: i32, addr: String) -> usize {
        let cfg = &self.shared.config;
        let c = BrokerConn {
            broker,
            addr,
            stream: None,
            state: State::Down,
            conn: Connection::new(
                Some(&cfg.client_id),
                cfg.max_in_flight,
                cfg.request_timeout,
                MAX_FRAME,
            ),
            versions: None,
            api_versions_version: ApiVersionsRequest::MAX_VERSION,
            backoff: cfg.retry_backoff,
            retry_at: None,
        };
        match self.conns.iter().position(Option::is_none) {
            Some(i) => {
                self.conns[i] = Some(c);
                i
            }
            None => {
                self.conns.push(Some(c));
                self.conns.len() - 1
            }
        }
    }

    fn connect(&mut self, i: usize, now: Instant) {
        let c = self.conns[i].as_mut().expect("live conn");
        let addr: Option<SocketAddr> = c.addr.to_socket_addrs().ok().and_then(|mut a| a.next());
        let result = match addr {
            Some(a) => TcpStream::connect(a),
            None => Err(std::io::Error::new(
                ErrorKind::NotFound,
                format!("cannot resolve {}", c.addr),
            )),
        };
        match result {
            Ok(mut s) => {
                if let Err(e) = self.poll.registry().register(
                    &mut s,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    log::warn!("kprod: register {}: {e}", c.addr);
                    c.state = State::Down;
                    c.retry_at = Some(now + c.backoff);
                    return;
                }
                c.stream = Some(s);
                c.state = State::Connecting;
            }
            Err(e) => {
                log::warn!("kprod: connect to {}: {e}", c.addr);
                c.state = State::Down;
                let backoff = c.backoff;
                c.backoff = (c.backoff * 2).min(self.shared.config.retry_backoff_max);
                let wait = self.jitter(backoff);
                self.conns[i].as_mut().expect("live conn").retry_at = Some(now + wait);
            }
        }
    }

    fn on_writable(&mut self, i: usize, now: Instant) {
        let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        if c.state == State::Connecting {
            let s = c.stream.as_ref().expect("connecting has a stream");
            match s.take_error() {
                Ok(Some(e)) | Err(e) => {
                    log::warn!("kprod: connect to {}: {e}", c.addr);
                    self.fail_conn(i, now, Some(e.to_string()));
                    return;
                }
                Ok(None) => {}
            }
            match s.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotConnected => return,
                Err(e) => {
                    self.fail_conn(i, now, Some(e.to_string()));
                    return;
                }
            }
            let _ = s.set_nodelay(true);
            Metrics::add(&self.shared.metrics.connects, 1);
            c.state = State::Negotiating;
            let v = c.api_versions_version;
            if let Err(e) = c
                .conn
                .send(&api_versions_request(), v, true, now, Ctx::ApiVersions)
            {
                self.fail_conn(i, now, Some(e.to_string()));
                return;
            }
        }
        self.write(i, now);
    }

    fn write(&mut self, i: usize, now: Instant) {
        let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        if c.state == State::Down || c.state == State::Connecting {
            return;
        }
        let Some(s) = c.stream.as_mut() else { return };
        loop {
            let buf = c.conn.transmit();
            if buf.is_empty() {
                return;
            }
            match s.write(buf) {
                Ok(0) => {
                    self.fail_conn(i, now, Some("connection closed".into()));
                    return;
                }
                Ok(n) => c.conn.consumed(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.fail_conn(i, now, Some(e.to_string()));
                    return;
                }
            }
        }
    }

    fn on_readable(&mut self, i: usize, now: Instant) {
        let mut responses = Vec::new();
        let mut failure = None;
        {
            let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) else {
                return;
            };
            if c.state == State::Connecting {
                // An error or hang-up while connecting shows here.
                if let Some(s) = c.stream.as_ref() {
                    if let Ok(Some(e)) | Err(e) = s.take_error() {
                        failure = Some(e.to_string());
                    }
                }
                if failure.is_none() {
                    return;
                }
            }
            if failure.is_none() {
                let Some(s) = c.stream.as_mut() else { return };
                loop {
                    match s.read(&mut self.read_buf) {
                        Ok(0) => {
                            failure = Some("connection closed by the broker".into());
                            break;
                        }
                        Ok(n) => c.conn.received(&self.read_buf[..n]),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => {
                            failure = Some(e.to_string());
                            break;
                        }
                    }
                }
                loop {
                    match c.conn.poll_response() {
                        Ok(Some(r)) => responses.push(r),
                        Ok(None) => break,
                        Err(e) => {
                            failure = Some(e.to_string());
                            break;
                        }
                    }
                }
            }
        }
        let mut responses = responses.into_iter();
        for (inflight, frame) in responses.by_ref() {
            if let Err(e) = self.on_response(i, inflight, &frame, now) {
                failure = Some(e);
                break;
            }
        }
        if let Some(f) = failure {
            // Answers read after the one that failed go with the connection's unanswered
            // requests: back in line (nothing is dropped uncounted).
            let addr = self.conns[i]
                .as_ref()
                .map_or(String::new(), |c| c.addr.clone());
            for (inflight, _) in responses {
                self.lost(inflight.context, &addr, &f, now);
            }
            self.fail_conn(i, now, Some(f));
        } else {
            self.write(i, now);
        }
    }

    fn on_response(
        &mut self,
        i: usize,
        inflight: InFlight<Ctx>,
        frame: &[u8],
        now: Instant,
    ) -> Result<(), String> {
        let version = inflight.version;
        if matches!(inflight.context, Ctx::Produce(_)) {
            let broker = self.conns[i].as_ref().map_or(-1, |c| c.broker);
            self.shared
                .metrics
                .request_latency(broker, now.saturating_duration_since(inflight.sent_at));
        }
        match inflight.context {
            Ctx::ApiVersions => {
                let resp = match decode_api_versions_response(frame, version) {
                    Ok((_, resp, _)) => resp,
                    // UNSUPPORTED_VERSION in a body we cannot read (librdkafka's mock answers
                    // a v3 request so): ask again at v0, which every broker answers.
                    Err(_) if version > 0 && frame.get(4..6) == Some(&[0, 35]) => {
                        let c = self.conns[i].as_mut().expect("live conn");
                        c.api_versions_version = 0;
                        return c
                            .conn
                            .send(&api_versions_request(), 0, true, now, Ctx::ApiVersions)
                            .map(|_| ())
                            .map_err(|e| e.to_string());
                    }
                    Err(e) => return Err(format!("ApiVersions v{version}: {e}")),
                };
                let c = self.conns[i].as_mut().expect("live conn");
                let code = ErrorCode(resp.error_code);
                if code == ErrorCode::UNSUPPORTED_VERSION && version > 0 {
                    let max = resp
                        .api_keys
                        .iter()
                        .find(|k| k.api_key == ApiKey::API_VERSIONS.0)
                        .map_or(0, |k| k.max_version);
                    c.api_versions_version = max.clamp(0, version - 1);
                    return c
                        .conn
                        .send(
                            &api_versions_request(),
                            c.api_versions_version,
                            true,
                            now,
                            Ctx::ApiVersions,
                        )
                        .map(|_| ())
                        .map_err(|e| e.to_string());
                }
                if code != ErrorCode::NONE {
                    return Err(format!("ApiVersions: {}", code.name()));
                }
                let v = BrokerVersions::from_response(&resp);
                let produce = v
                    .negotiate(ApiKey::PRODUCE, ProduceRequest::versions())
                    .map_err(|e| e.to_string())?;
                let metadata = v
                    .negotiate(ApiKey::METADATA, MetadataRequest::versions())
                    .map_err(|e| e.to_string())?;
                let init_producer_id = v
                    .negotiate(ApiKey::INIT_PRODUCER_ID, InitProducerIdRequest::versions())
                    .ok();
                c.versions = Some(Versions {
                    produce,
                    metadata,
                    init_producer_id,
                });
                c.state = State::Ready;
                c.backoff = self.shared.config.retry_backoff;
                if self.control.conn == Some(i) {
                    self.control.backoff = self.shared.config.retry_backoff;
                }
                Ok(())
            }
            Ctx::Metadata => {
                self.control.metadata_in_flight = false;
                let (_, resp) = lenient::<MetadataRequest>(frame, version)
                    .map_err(|e| format!("Metadata: {e}"))?;
                let applied = self.shared.apply_metadata(&resp);
                let cfg = &self.shared.config;
                self.control.next_metadata = Some(if applied.unresolved > 0 {
                    now + cfg.retry_backoff
                } else {
                    now + cfg.metadata_max_age
                });
                if applied.changed {
                    self.shared.wake_all();
                }
                Ok(())
            }
            Ctx::InitProducerId => {
                self.control.pid_in_flight = false;
                let (_, resp) = lenient::<InitProducerIdRequest>(frame, version)
                    .map_err(|e| format!("InitProducerId: {e}"))?;
                let code = ErrorCode(resp.error_code);
                let bumping = std::mem::take(&mut self.control.bumping);
                let ids = ProducerIds {
                    producer_id: resp.producer_id,
                    epoch: resp.producer_epoch,
                };
                match producer_id::decide(code, ids, bumping) {
                    PidDecision::Ready(ids) => {
                        *self.shared.ids.lock() = ids;
                        self.shared.ids_ready.store(true, SeqCst);
                        self.control.pid_backoff = self.shared.config.retry_backoff;
                        if bumping {
                            // Partitions adopt the new ids (sequences from 0) before sending.
                            self.control.bump_fresh = false;
                            self.shared.bump_wanted.store(false, SeqCst);
                            Metrics::add(&self.shared.metrics.epoch_bumps, 1);
                            log::info!(
                                "kprod: producer epoch bumped: id {} epoch {}",
                                ids.producer_id,
                                ids.epoch
                            );
                        }
                        self.shared.wake_all();
                    }
                    PidDecision::Retry { fresh } => {
                        log::warn!("kprod: InitProducerId failed: {}", code.name());
                        self.control.bump_fresh |= fresh;
                        let b = self
                            .control
                            .pid_backoff
                            .max(self.shared.config.retry_backoff);
                        self.control.pid_backoff =
                            (b * 2).min(self.shared.config.retry_backoff_max);
                        let wait = self.jitter(b);
                        self.control.pid_retry_at = Some(now + wait);
                    }
                    PidDecision::Fatal(e) => self.shared.set_fatal(e),
                }
                Ok(())
            }
            Ctx::Produce(batches) => {
                let resp = match lenient::<ProduceRequest>(frame, version) {
                    Ok((_, r)) => r,
                    Err(e) => {
                        // Put the batches back before closing the connection.
                        let err = Error::Protocol {
                            broker: self.conns[i]
                                .as_ref()
                                .map_or(String::new(), |c| c.addr.clone()),
                            source: e.clone(),
                            at: Location::default(),
                        };
                        for (p, mut b) in batches {
                            b.maybe_written = true;
                            self.retry_or_fail(&p, b, err.clone(), now);
                        }
                        return Err(format!("Produce: {e}"));
                    }
                };
                for (p, b) in batches {
                    let pr = resp
                        .responses
                        .iter()
                        .filter(|t| *t.name == *p.topic)
                        .flat_map(|t| t.partition_responses.iter())
                        .find(|r| r.index == p.partition);
                    let Some(pr) = pr else {
                        let err = Error::Protocol {
                            broker: self.conns[i]
                                .as_ref()
                                .map_or(String::new(), |c| c.addr.clone()),
                            source: DecodeError::UnexpectedNull {
                                what: "a partition's answer in the Produce response",
                            },
                            at: Location::at(&p.topic, p.partition),
                        };
                        let mut b = b;
                        b.maybe_written = true;
                        self.retry_or_fail(&p, b, err, now);
                        continue;
                    };
                    let code = ErrorCode(pr.error_code);
                    if code == ErrorCode::NONE || code == ErrorCode::DUPLICATE_SEQUENCE_NUMBER {
                        {
                            let mut acc = p.acc.lock();
                            acc.in_flight -= 1;
                            acc.acked(&b);
                        }
                        self.wake_owner(&p);
                        let append = (pr.log_append_time_ms >= 0).then_some(pr.log_append_time_ms);
                        let base = if code == ErrorCode::NONE {
                            pr.base_offset
                        } else {
                            -1
                        };
                        self.complete(&p, b, Ok((base, append)));
                        continue;
                    }
                    let err = Error::Kafka {
                        code,
                        message: pr.error_message.clone(),
                        at: Location::at(&p.topic, p.partition),
                    };
                    if matches!(
                        code,
                        ErrorCode::NOT_LEADER_OR_FOLLOWER
                            | ErrorCode::LEADER_NOT_AVAILABLE
                            | ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
                            | ErrorCode::FENCED_LEADER_EPOCH
                            | ErrorCode::UNKNOWN_LEADER_EPOCH
                    ) {
                        self.shared.request_metadata();
                    }
                    let mut b = b;
                    let idempotent = b.ids.idempotent();
                    match code {
                        ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER if idempotent => {
                            // This attempt was not written (an earlier one may have been:
                            // `maybe_written` stays as it is).
                            let explained = self.shared.bump_wanted.load(SeqCst) || {
                                // Held for a rewind, or an earlier batch of this partition is
                                // still outstanding and this one overtook it.
                                let acc = p.acc.lock();
                                acc.gap || !acc.is_next(&b)
                            };
                            if !explained {
                                // The broker lost track of this producer's sequences.
                                log::warn!("kprod: {p:?}: {err}; bumping the producer epoch");
                                self.shared.bump_wanted.store(true, SeqCst);
                            }
                            self.retry_or_fail(&p, b, err, now);
                        }
                        ErrorCode::UNKNOWN_PRODUCER_ID | ErrorCode::INVALID_PRODUCER_EPOCH
                            if idempotent =>
                        {
                            log::warn!("kprod: {p:?}: {err}; bumping the producer epoch");
                            self.shared.bump_wanted.store(true, SeqCst);
                            self.retry_or_fail(&p, b, err, now);
                        }
                        _ if code.is_retriable() => {
                            // These say the broker may have written the batch.
                            // (NOT_LEADER_OR_FOLLOWER too: with acks=all the old leader
                            // may have appended it before losing leadership.)
                            if matches!(
                                code,
                                ErrorCode::REQUEST_TIMED_OUT
                                    | ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND
                                    | ErrorCode::NETWORK_EXCEPTION
                                    | ErrorCode::NOT_LEADER_OR_FOLLOWER
                            ) {
                                b.maybe_written = true;
                            }
                            self.retry_or_fail(&p, b, err, now);
                        }
                        _ => {
                            {
                                let mut acc = p.acc.lock();
                                acc.in_flight -= 1;
                                self.given_up(&mut acc, &b);
                            }
                            self.wake_owner(&p);
                            self.complete(&p, b, Err(err));
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// Idempotence bookkeeping for a batch about to fail: its sequences leave a gap. If the
    /// broker certainly does not have it, the partition's later batches are renumbered once
    /// settled; if it may have it, only a new epoch makes the partition usable again.
    fn given_up(&self, acc: &mut Accumulator, b: &ProducerBatch) {
        if b.ids.idempotent() {
            acc.gap = true;
            if b.maybe_written {
                self.shared.bump_wanted.store(true, SeqCst);
            }
        }
    }

    /// A batch sent without success: back in line after a backoff, or failed when its
    /// delivery timeout has passed.
    fn retry_or_fail(&self, p: &Arc<PartitionState>, b: ProducerBatch, err: Error, now: Instant) {
        let cfg = &self.shared.config;
        let mut acc = p.acc.lock();
        acc.in_flight -= 1;
        if now >= b.created + cfg.delivery_timeout || self.shared.abort.load(SeqCst) {
            self.given_up(&mut acc, &b);
            drop(acc);
            let e = self
                .shared
                .timeout(Deadline::Delivery, Location::at(&p.topic, p.partition));
            log::debug!(
                "kprod: {p:?}: giving up after {} attempts: {err}",
                b.attempts
            );
            self.complete(p, b, Err(e));
            return;
        }
        let exp = b.attempts.saturating_sub(1).min(16);
        let backoff = cfg
            .retry_backoff
            .saturating_mul(1 << exp)
            .min(cfg.retry_backoff_max);
        acc.requeue(b, now + backoff, err);
        drop(acc);
        self.wake_owner(p);
    }

    /// An answer for `p` came on this thread's connection, but `p` may now belong to another
    /// thread (its leader moved), which waits for that answer before it sends: wake it.
    fn wake_owner(&self, p: &PartitionState) {
        let owner = p.owner();
        if owner != self.index {
            self.shared.io[owner].wake();
        }
    }

    /// A request sent on a connection that failed, whose answer will not come: its batches
    /// go back in line (the broker may have them), other requests are forgotten.
    fn lost(&mut self, ctx: Ctx, addr: &str, why: &str, now: Instant) {
        match ctx {
            Ctx::Produce(batches) => {
                let err = Error::Io {
                    broker: addr.to_string(),
                    source: Arc::new(std::io::Error::new(
                        ErrorKind::ConnectionAborted,
                        why.to_string(),
                    )),
                    at: Location::default(),
                };
                for (p, mut b) in batches {
                    // Sent, unanswered: the broker may have it.
                    b.maybe_written = true;
                    self.retry_or_fail(&p, b, err.clone(), now);
                }
            }
            Ctx::Metadata => self.control.metadata_in_flight = false,
            Ctx::InitProducerId => self.control.pid_in_flight = false,
            Ctx::ApiVersions => {}
        }
    }

    /// Closes connection `i` and puts its requests' batches back in line.
    fn fail_conn(&mut self, i: usize, now: Instant, why: Option<String>) {
        let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        if let Some(mut s) = c.stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
            Metrics::add(&self.shared.metrics.disconnects, 1);
        }
        if let Some(w) = &why {
            log::debug!("kprod: connection to {} lost: {w}", c.addr);
        }
        c.state = State::Down;
        c.versions = None;
        c.api_versions_version = ApiVersionsRequest::MAX_VERSION;
        let backoff = c.backoff;
        c.backoff = (c.backoff * 2).min(self.shared.config.retry_backoff_max);
        let addr = c.addr.clone();
        let wait = self.jitter(backoff);
        let c = self.conns[i].as_mut().expect("live conn");
        c.retry_at = Some(now + wait);
        let lost = c.conn.fail_all();
        let why = why.unwrap_or_else(|| "connection lost".into());
        for f in lost {
            self.lost(f.context, &addr, &why, now);
        }
        if self.control.conn == Some(i) {
            self.control.conn = None;
            let cfg = &self.shared.config;
            let b = self.control.backoff.max(cfg.retry_backoff);
            // Every address is tried once quickly; then the backoff grows.
            let n = cfg.bootstrap_servers.len() + self.shared.brokers.load().len();
            if self.control.next_bootstrap % n.max(1) == 0 {
                self.control.retry_at = Some(now + b);
                self.control.backoff = (b * 2).min(cfg.retry_backoff_max);
            }
            // A bootstrap connection is not reused.
            if self.conns[i].as_ref().is_some_and(|c| c.broker < 0) {
                self.conns[i] = None;
            }
        }
    }

    /// Request timeouts and reconnect timers. Returns the next one.
    fn check_connections(&mut self, now: Instant) -> Option<Instant> {
        let mut next = None;
        for i in 0..self.conns.len() {
            let Some(c) = self.conns[i].as_ref() else {
                continue;
            };
            if c.conn.timed_out(now) {
                self.fail_conn(i, now, Some("request timed out".into()));
                continue;
            }
            merge(&mut next, c.conn.poll_timeout());
        }
        next
    }

    /// Thread 0: metadata, the producer id, and records waiting for metadata.
    fn control_duties(&mut self, now: Instant) -> Option<Instant> {
        let mut next = None;
        let may_ask = self.shared.config.idempotence
            && !self.control.pid_in_flight
            && self.control.pid_retry_at.is_none_or(|t| now >= t);
        let bump = may_ask
            && self.shared.ids_ready.load(SeqCst)
            && self.shared.bump_wanted.load(SeqCst)
            && self.all_settled();
        let want_pid = may_ask && (!self.shared.ids_ready.load(SeqCst) || bump);
        let wanted = self.shared.metadata_wanted.load(SeqCst);
        let due = self.control.next_metadata.is_none_or(|t| now >= t);
        let want_meta = !self.control.metadata_in_flight
            && (wanted || due)
            && !self.shared.topics.load().is_empty();
        if want_pid || want_meta {
            if let Some(i) = self.control_conn(now) {
                let c = self.conns[i].as_mut().expect("live conn");
                if c.state == State::Ready {
                    let v = c.versions.expect("ready");
                    if want_meta && c.conn.can_send() {
                        self.shared.metadata_wanted.store(false, SeqCst);
                        let mut req = MetadataRequest::for_topics(self.shared.topic_names());
                        req.allow_auto_topic_creation = true;
                        if c.conn
                            .send(&req, v.metadata, true, now, Ctx::Metadata)
                            .is_ok()
                        {
                            self.control.metadata_in_flight = true;
                            Metrics::add(&self.shared.metrics.metadata_requests, 1);
                        }
                    }
                    if want_pid && c.conn.can_send() {
                        match v.init_producer_id {
                            Some(pv) => {
                                // KIP-360 (v3+): the same id, the next epoch. Otherwise (or
                                // if that was refused) a new id; sequences restart either way.
                                let ids = *self.shared.ids.lock();
                                let keep = bump && pv >= 3 && !self.control.bump_fresh;
                                let req = InitProducerIdRequest {
                                    transactional_id: None,
                                    transaction_timeout_ms: i32::MAX,
                                    producer_id: if keep { ids.producer_id } else { -1 },
                                    producer_epoch: if keep { ids.epoch } else { -1 },
                                };
                                if c.conn
                                    .send(&req, pv, true, now, Ctx::InitProducerId)
                                    .is_ok()
                                {
                                    self.control.pid_in_flight = true;
                                    self.control.bumping = bump;
                                }
                            }
                            None => {
                                let why = format!(
                                    "broker {} does not support InitProducerId; idempotence \
                                     needs it (turn idempotence off for this cluster)",
                                    c.addr
                                );
                                self.shared.set_fatal(producer_id::fatal(
                                    ErrorCode::UNSUPPORTED_VERSION,
                                    Some(&why),
                                ));
                            }
                        }
                    }
                }
            }
        }
        merge(&mut next, self.control.next_metadata);
        merge(&mut next, self.control.pid_retry_at);
        if self.shared.bump_wanted.load(SeqCst) && !self.control.pid_in_flight {
            // Partitions settle on other threads: look again soon (rare, and short-lived).
            merge(&mut next, Some(now + Duration::from_millis(5)));
        }
        if want_pid || want_meta {
            merge(&mut next, self.control.retry_at);
        }
        let mut deliver = self.deliver();
        merge(&mut next, self.shared.place_pending(now, &mut deliver));
        next
    }

    /// Whether no partition has a batch in flight or one the broker may have at the front of
    /// its queue: the precondition of an epoch bump.
    fn all_settled(&self) -> bool {
        self.shared.topics.load().values().all(|t| {
            t.partitions
                .load()
                .as_ref()
                .is_none_or(|ps| ps.iter().all(|p| p.acc.lock().settled()))
        })
    }

    /// The control connection, connecting to a known broker or a bootstrap address.
    fn control_conn(&mut self, now: Instant) -> Option<usize> {
        if let Some(i) = self.control.conn {
            let c = self.conns[i].as_ref().expect("live conn");
            if c.state != State::Down {
                return Some(i);
            }
            if c.retry_at.is_some_and(|t| now < t) {
                return None;
            }
            self.control.conn = None;
        }
        if let Some(t) = self.control.retry_at {
            if now < t {
                return None;
            }
            self.control.retry_at = None;
        }
        // Prefer a broker from metadata; else the next bootstrap address.
        let brokers = self.shared.brokers.load();
        let (id, addr) = if brokers.is_empty() || self.control.next_bootstrap % 2 == 1 {
            let list = &self.shared.config.bootstrap_servers;
            let a = list[self.control.next_bootstrap / 2 % list.len()].clone();
            (-1, a)
        } else {
            let mut ids: Vec<_> = brokers.keys().copied().collect();
            ids.sort_unstable();
            let id = ids[self.control.next_bootstrap / 2 % ids.len()];
            (id, brokers[&id].clone())
        };
        drop(brokers);
        self.control.next_bootstrap += 1;
        let i = self.add_conn(id, addr);
        self.connect(i, now);
        self.control.conn = Some(i);
        Some(i)
    }

    /// Parks in `poll` until `deadline` (or a wake-up, or socket readiness).
    fn park(&mut self, now: Instant, deadline: Option<Instant>, events: &mut Events) {
        let linger = self.shared.config.linger;
        let timeout = deadline.map_or(MAX_PARK, |d| d.saturating_duration_since(now).min(MAX_PARK));
        let wake = &self.shared.io[self.index];
        let state = if !timeout.is_zero() && timeout <= linger {
            PARKED_TIMED
        } else {
            PARKED_IDLE
        };
        wake.parked.store(state, SeqCst);
        // Anything pushed before the store above is seen here; anything after, wakes us.
        let threshold = self.shared.wake_threshold;
        // A flush or close waits: records not yet in a closed batch go now.
        let urgent = self.shared.flushing.load(SeqCst) > 0 || self.shared.closing.load(SeqCst);
        let work = timeout.is_zero()
            || self.shared.abort.load(SeqCst)
            || (self.index == 0
                && self.shared.metadata_wanted.load(SeqCst)
                && self.can_ask_metadata())
            || self.owned.iter().any(|p| {
                let n = p.ring.len();
                n > 0 && (urgent || state == PARKED_IDLE || n >= threshold)
            })
            || (urgent && self.has_open_batches());
        let timeout = if work { Duration::ZERO } else { timeout };
        if let Err(e) = self.poll.poll(events, Some(timeout)) {
            if e.kind() != ErrorKind::Interrupted {
                log::error!("kprod: poll: {e}");
            }
            events.clear();
        }
        wake.parked.store(RUNNING, SeqCst);
    }

    /// Whether a Metadata request could go now. While it cannot (no control connection yet,
    /// backing off, one in flight), what unblocks it — readiness, the backoff deadline, the
    /// answer — wakes the thread; a wanted refresh alone must not keep it from parking.
    fn can_ask_metadata(&self) -> bool {
        if self.control.metadata_in_flight {
            return false;
        }
        match self.control.conn.and_then(|i| self.conns[i].as_ref()) {
            Some(c) => c.state == State::Ready && c.conn.can_send(),
            // No control connection: one is opened unless backing off.
            None => self.control.retry_at.is_none(),
        }
    }

    /// Whether a partition has records not yet closed into a batch. A flush closes them at
    /// once; closed batches wait for their connection, whose readiness (or the deadline
    /// `send_produce` merged) wakes this thread.
    fn has_open_batches(&self) -> bool {
        self.owned.iter().any(|p| p.acc.lock().open_len() > 0)
    }

    /// Fails everything this thread holds, and closes its connections.
    fn shutdown(&mut self) {
        let err = self.shared.shutdown_error();
        for i in 0..self.conns.len() {
            let Some(c) = self.conns[i].as_mut() else {
                continue;
            };
            if let Some(mut s) = c.stream.take() {
                let _ = self.poll.registry().deregister(&mut s);
                close_gently(s, &mut self.read_buf);
            }
            for f in c.conn.fail_all() {
                if let Ctx::Produce(batches) = f.context {
                    for (p, b) in batches {
                        p.acc.lock().in_flight -= 1;
                        let e = match &err {
                            Error::Closed => Error::Closed,
                            other => other.clone(),
                        };
                        self.complete(&p, b, Err(e));
                    }
                }
            }
        }
        self.conns.clear();
        // Every partition, not only owned ones: leadership may have moved mid-close.
        self.fail_everything(&err);
    }

    fn fail_everything(&self, err: &Error) {
        for t in self.shared.topics.load().values() {
            if self.index == 0 {
                let pending: Vec<_> = t.pending.lock().drain(..).collect();
                t.has_pending.store(false, SeqCst);
                for u in pending {
                    let reserved = u.record.reserved;
                    self.shared.fail_all(
                        Completions::one(u.record.completer),
                        reserved,
                        err,
                        &mut self.deliver(),
                    );
                }
            }
            let Some(parts) = t.partitions.load_full() else {
                continue;
            };
            for p in parts.iter() {
                let mut acc = p.acc.lock();
                let mut cs = Completions::default();
                let mut reserved = 0;
                while let Some(r) = p.ring.pop() {
                    reserved += r.reserved;
                    cs.push(r.timestamp, r.completer);
                }
                let (more, more_reserved) = acc.drain_all();
                drop(acc);
                cs.append(more);
                self.shared
                    .fail_all(cs, reserved + more_reserved, err, &mut self.deliver());
            }
        }
        self.shared.ring_drained();
    }
}

/// Spawns thread `index` running `io`, pinned to a core when configured.
pub(crate) fn spawn(
    io: IoThread,
    pin: Option<core_affinity::CoreId>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let index = io.index;
    std::thread::Builder::new()
        .name(format!("kprod-io-{index}"))
        .spawn(move || {
            if let Some(core) = pin {
                if !core_affinity::set_for_current(core) {
                    log::warn!(
                        "kprod: could not pin I/O thread {index} to core {}",
                        core.id
                    );
                }
            }
            io.run();
        })
}

/// Decodes a response, tolerating trailing bytes (logged).
fn lenient<R: Request>(frame: &[u8], version: i16) -> Result<(i32, R::Response), DecodeError> {
    let (cid, resp, extra) = decode_response_lenient::<R>(frame, version)?;
    if extra > 0 {
        log::trace!(
            "kprod: {extra} trailing bytes after {} v{version}",
            R::API_KEY.name()
        );
    }
    Ok((cid, resp))
}

fn api_versions_request() -> ApiVersionsRequest {
    ApiVersionsRequest {
        client_software_name: "kprod".into(),
        client_software_version: env!("CARGO_PKG_VERSION").into(),
    }
}

/// Closes a socket at shutdown without a reset: the write side first (the broker reads our
/// last requests, then end of stream), then what the broker already sent is read and dropped
/// (up to 16 reads) — closing with unread bytes makes the kernel send a reset, and a reset can
/// make the broker's side drop requests it received but had not read yet.
fn close_gently(mut s: TcpStream, buf: &mut [u8]) {
    let _ = s.shutdown(std::net::Shutdown::Write);
    for _ in 0..16 {
        match s.read(buf) {
            Ok(n) if n > 0 => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            _ => break,
        }
    }
}

fn merge(acc: &mut Option<Instant>, t: Option<Instant>) {
    if let Some(t) = t {
        *acc = Some(acc.map_or(t, |a| a.min(t)));
    }
}
