//! The engine core of one I/O thread: every decision the producer makes, and no socket.
//!
//! In quinn-proto's shape: the driver ([`super::driver`], the only module that imports mio)
//! tells the core what happened — a connection is up, bytes arrived, a connection is gone, time
//! passed — and the core answers with what to do: bytes to write ([`transmit`]), connections
//! to open or close ([`poll_command`]), and when it next needs a turn ([`handle_timeout`]
//! returns the deadline). Time comes in as `now`. The deterministic simulation
//! (`tests/simulation.rs`, through [`crate::sim`]) drives the same core over a simulated
//! network on a virtual clock.
//!
//! - [`connections`]: the connection manager (per-broker state, connect deadline, backoff
//!   with jitter, ApiVersions negotiation).
//! - [`security`]: TLS (rustls, sans-IO) and SASL on a connection, re-authentication.
//! - [`control`]: the control plane on thread 0 (metadata schedule, producer id, epoch bumps,
//!   bootstrap rotation).
//! - [`admin`]: callers' admin requests (CreateTopics), sent on thread 0's control connection.
//! - [`txn`]: a transactional producer's coordinator requests, on thread 0.
//! - [`produce`]: the produce pipeline (drain rings into batches, build requests, classify
//!   answers, retry).
//! - [`completion`]: completing records and shutting down.
//!
//! [`transmit`]: EngineCore::transmit
//! [`poll_command`]: EngineCore::poll_command
//! [`handle_timeout`]: EngineCore::handle_timeout

pub(crate) mod admin;
mod completion;
mod connections;
mod control;
mod produce;
mod security;
mod txn;

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::batch::{Encoder, ProducerBatch};
use super::callbacks::JobSender;
use super::wake::PARKED_IDLE;
use super::{PartitionState, Shared};
use crate::protocol::compression::Compressor;

use connections::BrokerConn;
use control::Control;

/// What the driver must do for the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    /// Open connection `conn` to `addr` (`host:port`; resolving it is the driver's job, off
    /// this thread, trying every address it resolves to), then report
    /// [`handle_connected`](EngineCore::handle_connected) or
    /// [`handle_connect_failed`](EngineCore::handle_connect_failed).
    Connect { conn: usize, addr: String },
    /// Close connection `conn`'s socket (the core has already failed what was on it).
    Close { conn: usize },
}

/// What a request in flight was for.
#[derive(Debug)]
pub(crate) enum Ctx {
    ApiVersions,
    SaslHandshake,
    SaslAuthenticate,
    Metadata,
    InitProducerId,
    /// A caller's CreateTopics ([`crate::Producer::create_topics`]): where its answer goes.
    CreateTopics(admin::Reply),
    Produce(Vec<(Arc<PartitionState>, ProducerBatch)>),
    /// A transaction step (see [`txn`]).
    Txn(super::transaction::Step),
}

/// One I/O thread's decisions.
pub(crate) struct EngineCore {
    index: usize,
    shared: Arc<Shared>,
    conns: Vec<Option<BrokerConn>>,
    by_broker: HashMap<i32, usize>,
    owned: Vec<Arc<PartitionState>>,
    seen_version: u64,
    /// In a cell: completing a batch (from `&self`) gives its buffer back.
    encoder: RefCell<Encoder>,
    rng: u64,
    callbacks: JobSender,
    control: Control,
    /// `send_produce`'s scratch list (leader, place in `owned`, partition), kept between
    /// turns.
    wanted: Vec<(i32, usize, Arc<PartitionState>)>,
    commands: VecDeque<Command>,
    /// The latest purge request carried out.
    purged: u64,
    /// Thread 0: a transactional producer's coordinator requests.
    txn: txn::TxnClient,
}

impl EngineCore {
    pub fn new(index: usize, shared: Arc<Shared>, callbacks: JobSender) -> Self {
        let mut encoder = Encoder::new(Compressor::new(shared.config.compression));
        encoder.transactional = shared.txn.is_some();
        let encoder = RefCell::new(encoder);
        EngineCore {
            index,
            conns: Vec::new(),
            by_broker: HashMap::new(),
            owned: Vec::new(),
            seen_version: u64::MAX,
            encoder,
            rng: 0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9),
            callbacks,
            control: Control::default(),
            wanted: Vec::new(),
            commands: VecDeque::new(),
            purged: 0,
            txn: txn::TxnClient::default(),
            shared,
        }
    }

    /// This core's I/O thread.
    pub fn index(&self) -> usize {
        self.index
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

    /// One turn at `now`: metadata and the producer id (thread 0), rings drained into batches,
    /// due batches closed and sent, timeouts checked. Returns when the next turn is due
    /// (`None`: only an event or a wake-up needs one). Then the driver writes what
    /// [`transmit`](Self::transmit) holds and carries out [`poll_command`](Self::poll_command).
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Instant> {
        let version = self.shared.metadata_version.load(SeqCst);
        if version != self.seen_version {
            self.seen_version = version;
            self.refresh_owned();
        }
        self.purge_if_asked();
        if self.shared.flushing.load(SeqCst) > 0 || self.shared.closing.load(SeqCst) {
            // A flush or close waits for callbacks too: passive ones run now.
            self.callbacks.hurry();
        }
        let mut deadline: Option<Instant> = None;
        merge(&mut deadline, self.lift_throttles(now));
        if self.index == 0 {
            merge(&mut deadline, self.control_duties(now));
            if self.shared.txn.is_some() {
                merge(&mut deadline, self.txn_duties(now));
                self.txn_deadline(&mut deadline);
            }
        }
        merge(&mut deadline, self.accumulate(now));
        self.send_produce(now, &mut deadline);
        merge(&mut deadline, self.check_connections(now));
        for c in self.conns.iter().flatten() {
            c.gauge.in_flight.store(c.conn.in_flight() as u64, Relaxed);
        }
        deadline
    }

    /// Whether the thread should stop: the producer aborts, or it closes with nothing left.
    pub fn is_finished(&self) -> bool {
        self.shared.abort.load(SeqCst)
            || (self.shared.closing.load(SeqCst)
                && self.shared.outstanding() == 0
                && self.conns.iter().flatten().all(|c| c.conn.in_flight() == 0))
    }

    /// The next thing the driver must do, if any.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// Checked after the thread published that it parks in `state`: whether something is
    /// already waiting that the thread must see before it sleeps (records pushed before the
    /// publication, a flush, work a wake-up could have been missed for).
    pub fn must_not_park(&self, state: u8) -> bool {
        // A flush or close waits: records not yet in a closed batch go now.
        let urgent = self.shared.flushing.load(SeqCst) > 0 || self.shared.closing.load(SeqCst);
        self.shared.abort.load(SeqCst)
            || self.shared.purges.due(self.purged).is_some()
            || (self.index == 0
                && self.shared.metadata_wanted.load(SeqCst)
                && self.can_ask_metadata())
            || (self.index == 0 && self.admin_due())
            || (self.index == 0 && self.txn_due())
            || self.owned.iter().any(|p| {
                let n = p.ring.len();
                n > 0
                    && (urgent
                        || state == PARKED_IDLE
                        || n >= p.wake_threshold()
                        || !p.lingering.load(SeqCst))
            })
            || (urgent && self.has_open_batches())
            || self.owned.iter().any(|p| {
                // A caller waits for a record lingering here, and its batch can go now.
                p.urgent.load(SeqCst) && {
                    let acc = p.acc.lock();
                    (acc.open_len() > 0 || !p.ring.is_empty()) && self.urgent_due(p, &acc)
                }
            })
    }

    /// What a stuck simulation run prints about this core.
    #[cfg(test)]
    pub fn debug_state(&self) -> String {
        let parts: Vec<String> = self
            .owned
            .iter()
            .map(|p| {
                let acc = p.acc.lock();
                format!(
                    "{p:?} route {:?} ring {} open {} ready {} in flight {} to {} front {:?} gap {}",
                    p.route(),
                    p.ring.len(),
                    acc.open_len(),
                    acc.ready.len(),
                    acc.in_flight,
                    acc.in_flight_to,
                    acc.ready
                        .front()
                        .map(|b| (b.base_sequence, b.maybe_written, b.not_before.is_some())),
                    acc.gap
                )
            })
            .collect();
        let conns: Vec<String> = self
            .conns
            .iter()
            .flatten()
            .map(|c| format!("{}:{:?}/{}", c.broker, c.state, c.conn.in_flight()))
            .collect();
        format!(
            "producer {:?} metadata_wanted {} control {:?} | must_not_park(idle) {}, \
             owned [{}], conns [{}]",
            self.shared.producer.get(),
            self.shared.metadata_wanted.load(SeqCst),
            self.control,
            self.must_not_park(PARKED_IDLE),
            parts.join(", "),
            conns.join(", ")
        )
    }

    /// Rebuilds the list of partitions this thread drives, in (topic, partition) order so a
    /// run does not depend on hash order (the simulation replays exactly).
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
        self.owned
            .sort_unstable_by(|a, b| (&*a.topic, a.partition).cmp(&(&*b.topic, b.partition)));
    }

    /// Whether a partition has records not yet closed into a batch. A flush closes them at
    /// once; closed batches wait for their connection, whose readiness (or the deadline
    /// `send_produce` merged) wakes this thread.
    fn has_open_batches(&self) -> bool {
        self.owned.iter().any(|p| p.acc.lock().open_len() > 0)
    }
}

/// The earlier of `acc` and `t`.
pub(crate) fn merge(acc: &mut Option<Instant>, t: Option<Instant>) {
    if let Some(t) = t {
        *acc = Some(acc.map_or(t, |a| a.min(t)));
    }
}
