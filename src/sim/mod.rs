//! Deterministic simulation: the real engine core — every I/O thread's decisions — against the
//! mock cluster's request handler, over a simulated network, in one thread, on a virtual
//! clock, with every choice drawn from one seeded RNG (FoundationDB's and TigerBeetle's way).
//!
//! Each seed draws a scenario: I/O threads, brokers, partitions, latency and jitter, a fast or
//! slow caller, and faults — connections cut mid-request and mid-response (answers lost with
//! them), brokers down and back, leaders moving, leaderless partitions, retriable and
//! non-retriable error codes (some answered after the batch was stored, as a replication
//! timeout is), stalled brokers, producer state lost by the brokers. Faults stop,
//! then a quiet phase sends more records, which must all be delivered. Then the producer
//! flushes and closes. Each run is checked for the promises `tests/support/scenario.rs` checks
//! through real sockets ([`check`]): one completion per record; every record reported
//! delivered is in the log exactly once, at its offset; per-partition send order; every
//! failure names why; the delivery timeout holds on the virtual clock; nothing is left running.
//!
//! ```text
//! cargo test --features mock --lib sim::           # 2,000 seeds (KPROD_SIM_SEEDS=N for more)
//! KPROD_SIM_SEED=1234 cargo test --features mock --lib sim::   # replays one seed, traced
//! ```
//!
//! A failure prints its seed; the same seed replays the same run exactly (no thread, no wall
//! clock, no hash order in the engine's decisions).

mod check;
mod network;
mod scenario;
mod txn;

use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::{unbounded, Receiver};
use parking_lot::Mutex;

use crate::config::{Acks, ProducerConfigBuilder};
use crate::delivery::Completer;
use crate::engine::batch::PendingRecord;
use crate::engine::callbacks::{Job, JobSender};
use crate::engine::core::{Command, EngineCore};
use crate::engine::headers::Headers;
use crate::engine::wake::{ThreadWake, PARKED_IDLE, PARKED_TIMED};
use crate::engine::{Clock, Shared};
use crate::metrics::Metrics;
use crate::mock::MockCluster;
use crate::partitioner::BuiltinPartitioner;
use crate::protocol::ApiKey;

use check::Ledger;
use network::Link;
pub(crate) use scenario::Rng;
use scenario::{Event, Scenario};

const TOPIC: &str = "sim";

/// How a record's story ended, for the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Sending,
    Quiet,
    Flushing,
    Closing,
}

/// One run: the engine (shared state and one core per I/O thread), the cluster, the network.
struct World {
    seed: u64,
    rng: Rng,
    sc: Scenario,
    start: Instant,
    now: Instant,
    clock: Arc<Mutex<Instant>>,
    shared: Arc<Shared>,
    cores: Vec<EngineCore>,
    deadlines: Vec<Option<Instant>>,
    jobs: Receiver<Job>,
    cluster: MockCluster,
    links: Vec<Link>,
    down: Vec<bool>,
    stalled: Vec<bool>,
    events: Vec<(Instant, Event)>,
    ledger: Arc<Ledger>,
    next_record: usize,
    next_send: Instant,
    phase: Phase,
    quiet_from: usize,
    /// Broker-side protocol violations (the mock closed a connection on a bad request).
    violations: Vec<String>,
    trace: bool,
    /// A transactional run's application ([`txn`]).
    txn: Option<txn::Driver>,
}

impl World {
    fn new(seed: u64, trace: bool, transactional: bool) -> World {
        let mut rng = Rng::new(seed);
        let sc = Scenario::draw(&mut rng);
        let start = Instant::now();
        let clock = Arc::new(Mutex::new(start));
        let bootstrap = (1..=sc.brokers)
            .map(|b| format!("10.0.0.{b}:9092"))
            .collect::<Vec<_>>()
            .join(",");
        let config = ProducerConfigBuilder::new()
            .bootstrap_servers(&bootstrap)
            .acks(Acks::All)
            .io_threads(sc.io_threads)
            .linger(sc.linger)
            .batch_size(rng.range(200, 20_000) as usize)
            .delivery_timeout(sc.delivery_timeout)
            .request_timeout(sc.request_timeout)
            .retry_backoff(Duration::from_millis(rng.range(5, 100)))
            .retry_backoff_max(Duration::from_millis(rng.range(200, 1_000)))
            .metadata_max_age(Duration::from_secs(rng.range(1, 20)))
            .metadata_timeout(Duration::from_secs(5))
            .metadata_rebootstrap_trigger(Duration::from_millis(rng.range(300, 10_000)))
            .connection_setup_timeout(Duration::from_secs(2))
            .queue_capacity(rng.range(4, 64) as usize);
        // The coordinator's timeout (its longest) outlasts every run.
        let config = if transactional {
            config
                .transactional_id("sim-txn")
                .transaction_timeout(Duration::from_secs(900))
        } else {
            config
        };
        let config = config.build_config().expect("a valid simulated config");
        let wakes = (0..sc.io_threads).map(|_| ThreadWake::new(|| {})).collect();
        let mut shared = Shared::new(
            config,
            Arc::new(BuiltinPartitioner::Murmur2),
            wakes,
            Arc::new(Metrics::default()),
        );
        shared.clock = Clock::Virtual(clock.clone());
        let shared = Arc::new(shared);
        let (tx, jobs) = unbounded();
        let cores = (0..sc.io_threads)
            .map(|i| EngineCore::new(i, shared.clone(), JobSender::detached(tx.clone())))
            .collect();
        let mut builder = MockCluster::builder()
            .brokers(sc.brokers)
            .topic(TOPIC, sc.partitions);
        if transactional {
            let delay = Duration::from_micros(rng.range(0, 20_000));
            let level = if rng.chance(0.3) { 2 } else { 0 };
            if trace {
                eprintln!("transactions: marker delay {delay:?}, transaction.version {level}");
            }
            builder = builder
                .transaction_marker_delay(delay)
                .transaction_version(level);
        }
        let cluster = builder.build_simulated();
        cluster.set_clock(clock.clone());
        cluster.set_max_message_bytes(TOPIC, sc.max_message_bytes);
        let events = sc
            .events
            .iter()
            .map(|(at, e)| (start + *at, e.clone()))
            .collect();
        let total = sc.records + sc.quiet_records;
        World {
            seed,
            deadlines: vec![None; sc.io_threads],
            down: vec![false; sc.brokers + 1],
            stalled: vec![false; sc.brokers + 1],
            ledger: Arc::new(Ledger::new(total)),
            quiet_from: sc.records,
            rng,
            sc,
            start,
            now: start,
            clock,
            shared,
            cores,
            jobs,
            cluster,
            links: Vec::new(),
            events,
            next_record: 0,
            next_send: start,
            phase: Phase::Sending,
            violations: Vec::new(),
            trace,
            txn: transactional.then(txn::Driver::new),
        }
    }

    fn log(&self, what: impl FnOnce() -> String) {
        if self.trace {
            eprintln!("[{:>10.3} ms] {}", self.ms(), what());
        }
    }

    fn ms(&self) -> f64 {
        (self.now - self.start).as_secs_f64() * 1e3
    }

    fn latency(&mut self) -> Duration {
        Duration::from_micros(self.rng.range(self.sc.latency.0, self.sc.latency.1))
    }

    /// Runs to the end; `Err` names the first broken promise.
    fn run(&mut self) -> Result<(), String> {
        let mut same_instant = 0u32;
        let mut last = self.now;
        let mut dumped = u128::MAX;
        for _step in 0..3_000_000u32 {
            self.fire_events();
            self.caller();
            self.network()?;
            let again = self.turn() | self.txn_ready();
            if self.phase == Phase::Closing && self.cores.iter().all(EngineCore::is_finished) {
                return self.finish();
            }
            if self.phase == Phase::Flushing && self.shared.outstanding() == 0 {
                self.log(|| "flushed; closing".into());
                self.phase = Phase::Closing;
                self.shared.flushing.store(0, SeqCst);
                self.shared.closing.store(true, SeqCst);
                continue;
            }
            let every = std::env::var("KPROD_SIM_DUMP_MS")
                .ok()
                .and_then(|s| s.parse::<u128>().ok())
                .unwrap_or(500)
                .max(1);
            if self.trace && (self.now - self.start).as_millis() / every != dumped {
                dumped = (self.now - self.start).as_millis() / every;
                for (i, c) in self.cores.iter().enumerate() {
                    eprintln!("[{:>10.3} ms] core {i}: {}", self.ms(), c.debug_state());
                }
            }
            let next = if again {
                Some(self.now)
            } else {
                self.next_due()
            };
            let Some(next) = next else {
                return Err(format!(
                    "nothing left to happen with {} records outstanding (phase {:?})",
                    self.shared.outstanding(),
                    self.phase
                ));
            };
            let limit = self.start + Duration::from_secs(3_600);
            if next > limit {
                return Err(format!(
                    "an hour of virtual time passed ({} outstanding, phase {:?})",
                    self.shared.outstanding(),
                    self.phase
                ));
            }
            self.now = next.max(self.now);
            *self.clock.lock() = self.now;
            if self.now == last {
                same_instant += 1;
                if same_instant > 50_000 {
                    let why: Vec<String> = (0..self.cores.len())
                        .map(|c| {
                            format!(
                                "core {c}: deadline {:?} ahead, {}",
                                self.deadlines[c].map(|d| d.saturating_duration_since(self.now)),
                                self.cores[c].debug_state()
                            )
                        })
                        .collect();
                    return Err(format!(
                        "the engine asks for a turn at the same instant without end (a busy \
                         loop): {}",
                        why.join("; ")
                    ));
                }
            } else {
                same_instant = 0;
                last = self.now;
            }
        }
        Err("too many steps".into())
    }

    /// The earliest thing due.
    fn next_due(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut take = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n: Instant| n.min(t)));
            }
        };
        take(self.events.first().map(|e| e.0));
        // A transactional caller keeps pace only inside a transaction.
        if self.sending() && self.txn.as_ref().is_none_or(txn::Driver::open) {
            take(Some(self.next_send));
        }
        for l in &self.links {
            take(l.next_due());
        }
        for d in &self.deadlines {
            take(*d);
        }
        next.map(|t| t.max(self.now))
    }

    fn sending(&self) -> bool {
        match self.phase {
            Phase::Sending => self.next_record < self.quiet_from,
            Phase::Quiet => self.next_record < self.ledger.len(),
            _ => false,
        }
    }

    fn fire_events(&mut self) {
        while self.events.first().is_some_and(|e| e.0 <= self.now) {
            let (_, e) = self.events.remove(0);
            self.log(|| format!("fault: {e:?}"));
            match e {
                Event::Cut => {
                    let live: Vec<usize> = (0..self.links.len())
                        .filter(|&i| self.links[i].connect_at.is_none())
                        .collect();
                    if !live.is_empty() {
                        let i = live[self.rng.below(live.len() as u64) as usize];
                        self.cut(i);
                    }
                }
                Event::BrokerDown(b, d) => {
                    self.down[b as usize] = true;
                    while let Some(i) = self.links.iter().position(|l| l.broker == b) {
                        self.cut(i);
                    }
                    self.schedule(d, Event::BrokerUp(b));
                }
                Event::BrokerUp(b) => self.down[b as usize] = false,
                Event::LeaderMove(p, b) => self.cluster.set_partition_leader(TOPIC, p, b),
                Event::Leaderless(p, d) => {
                    self.cluster.set_partition_leaderless(TOPIC, p);
                    let b = self.rng.range(1, self.sc.brokers as u64) as i32;
                    self.schedule(d, Event::LeaderMove(p, b));
                }
                Event::Errors(codes) => self.cluster.fail_requests(ApiKey::PRODUCE.0, &codes),
                Event::ErrorsAfterAppend(codes) => self.cluster.fail_after_append(&codes),
                Event::Stall(b, d) => {
                    self.stalled[b as usize] = true;
                    self.schedule(d, Event::Unstall(b));
                }
                Event::Unstall(b) => self.stalled[b as usize] = false,
                Event::Throttle(b, ms, d) => {
                    self.cluster
                        .set_throttle(b, Duration::from_millis(ms as u64));
                    self.schedule(d, Event::Unthrottle(b));
                }
                Event::Unthrottle(b) => self.cluster.set_throttle(b, Duration::ZERO),
                Event::LoseState => {
                    // Only for partitions the producer is idle on (every record sent to it has
                    // completed): a broker forgets a producer that went quiet, never one with a
                    // batch whose answer is on its way — then no client could tell a retry
                    // from a new batch.
                    for p in 0..self.sc.partitions {
                        if self.ledger.idle(p, self.sc.partitions) {
                            self.cluster.lose_producer_state(TOPIC, p);
                        }
                    }
                }
                Event::Quiet => {
                    // Codes armed but never used (no request came) are not faults of the
                    // quiet phase.
                    self.cluster.clear_failures();
                    for b in 1..=self.sc.brokers as i32 {
                        self.cluster.set_throttle(b, Duration::ZERO);
                    }
                    if self.trace {
                        for (i, c) in self.cores.iter().enumerate() {
                            eprintln!("at quiet, core {i}: {}", c.debug_state());
                        }
                    }
                    self.phase = Phase::Quiet;
                    self.next_send = self.now;
                }
            }
        }
    }

    fn schedule(&mut self, after: Duration, e: Event) {
        let at = self.now + after;
        let pos = self.events.partition_point(|x| x.0 <= at);
        self.events.insert(pos, (at, e));
    }

    /// The caller: a burst of records when due; then, once every fault-phase record is sent
    /// and every fault is over, the quiet phase; then the flush.
    fn caller(&mut self) {
        if self.txn.is_some() {
            self.txn_caller();
        } else if self.sending() && self.next_send <= self.now {
            let end = match self.phase {
                Phase::Sending => self.quiet_from,
                _ => self.ledger.len(),
            };
            let mut sent = 0;
            while self.next_record < end && sent < self.sc.burst {
                match self.send(self.next_record) {
                    Ok(true) => {}
                    Ok(false) => break, // buffer or ring full: try again after the next gap
                    Err(e) => panic!(
                        "seed {}: record {} refused: {e}",
                        self.seed, self.next_record
                    ),
                }
                self.next_record += 1;
                sent += 1;
            }
            let gap = self.rng.range(self.sc.gap_us.0, self.sc.gap_us.1);
            self.next_send = self.now + Duration::from_micros(gap);
        }
        // A transactional caller first ends its transaction.
        let settled = self.txn.as_ref().is_none_or(txn::Driver::idle);
        if settled
            && self.phase == Phase::Sending
            && self.next_record == self.quiet_from
            && self.events.is_empty()
        {
            // Every fault is over (its end included): let the producer settle — every batch of
            // the fault phase ends by then, and a periodic metadata refresh has shown it where
            // the leaders are now — then go quiet.
            let settle = self.sc.delivery_timeout
                + self.sc.request_timeout
                + self.shared.config.metadata_max_age;
            self.schedule(settle, Event::Quiet);
        }
        if settled && self.phase == Phase::Quiet && self.next_record == self.ledger.len() {
            self.log(|| "every record sent; flushing".into());
            self.phase = Phase::Flushing;
            self.shared.flushing.store(1, SeqCst);
        }
    }

    /// Sends record `i` with a callback that books its outcome; `Ok(false)` if it could not
    /// be enqueued now (full), which is not a failure; `Err`: refused (a transaction's state).
    fn send(&mut self, i: usize) -> Result<bool, crate::Error> {
        let key = format!("k{}", i % 29);
        let value = format!("{i:08}");
        let ledger = self.ledger.clone();
        let clock = self.clock.clone();
        let completer = Completer::callback(move |r| {
            ledger.complete(i, r.map(|m| (m.partition, m.offset)), *clock.lock());
        });
        let reserved = PendingRecord::buffer_size(
            Some(key.as_bytes()),
            Some(value.as_bytes()),
            &Headers::none(),
        );
        let r = PendingRecord {
            key: Some(key.into()),
            value: Some(value.into()),
            headers: Headers::none(),
            timestamp: (self.now - self.start).as_millis() as i64,
            completer,
            room: PendingRecord::room(reserved),
            // Stage latency reads the real clock, not the simulation's.
            enqueued: None,
        };
        match self.shared.enqueue(TOPIC, None, r, None) {
            Ok(()) => {
                self.ledger.sent(i, self.now);
                Ok(true)
            }
            Err((e, r)) => {
                r.completer.disarm();
                match e {
                    crate::Error::QueueFull { .. } => Ok(false),
                    e => Err(e),
                }
            }
        }
    }

    /// Connects, deliveries, answers.
    fn network(&mut self) -> Result<(), String> {
        let mut k = 0;
        while k < self.links.len() {
            let (core, conn) = (self.links[k].core, self.links[k].conn);
            let now = self.now;
            if self.links[k].connect_at.is_some_and(|t| t <= now) {
                self.links[k].connect_at = None;
                if self.links[k].refused {
                    self.links.remove(k);
                    self.cores[core].handle_connect_failed(conn, "connection refused", now);
                    self.apply(core);
                    continue;
                }
                self.cores[core].handle_connected(conn, now);
                self.apply(core);
            }
            let Some(k2) = self.find(core, conn) else {
                continue;
            };
            k = k2;
            let b = self.links[k].broker;
            let stalled = self.stalled[b as usize];
            let lat = self.sc.latency;
            let cluster = self.cluster.sim_shared();
            if let Err(e) =
                self.links[k].deliver_to_broker(cluster, now, stalled, &mut self.rng, lat)
            {
                self.violations
                    .push(format!("broker {b} closed a connection: {e}"));
                self.links.remove(k);
                self.cores[core].handle_closed(conn, "closed by the broker", now);
                self.apply(core);
                continue;
            }
            for chunk in self.links[k].take_for_client(now) {
                self.cores[core].handle_received(conn, &chunk, now);
                self.apply(core);
                if self.find(core, conn).is_none() {
                    break;
                }
            }
            if let Some(k2) = self.find(core, conn) {
                k = k2 + 1;
            }
        }
        Ok(())
    }

    fn find(&self, core: usize, conn: usize) -> Option<usize> {
        self.links
            .iter()
            .position(|l| l.core == core && l.conn == conn)
    }

    /// Cuts link `i`: a random part of what is in flight still arrives, then both ends see
    /// the connection close.
    fn cut(&mut self, i: usize) {
        let now = self.now;
        let (core, conn, b) = (self.links[i].core, self.links[i].conn, self.links[i].broker);
        let l = &mut self.links[i];
        if l.has_to_broker() {
            // Mid-request: whole requests before the cut are handled, the cut one is not.
            l.truncate_to_broker(&mut self.rng);
            let cluster = self.cluster.sim_shared();
            let _ = l.deliver_to_broker(
                cluster,
                now + Duration::from_secs(3_600),
                false,
                &mut self.rng,
                (0, 0),
            );
        }
        // Answers: the first may arrive in part, the rest are lost.
        let partial = self.links[i].partial_for_client(&mut self.rng);
        self.links.remove(i);
        self.log(|| format!("cut core {core} conn {conn} (broker {b})"));
        if let Some(p) = partial {
            self.cores[core].handle_received(conn, &p, now);
        }
        self.cores[core].handle_closed(conn, "connection cut", now);
        self.apply(core);
    }

    /// Every core takes a turn; returns whether one must take another at once.
    fn turn(&mut self) -> bool {
        let mut again = false;
        for c in 0..self.cores.len() {
            let d = self.cores[c].handle_timeout(self.now);
            self.deadlines[c] = d;
            self.apply(c);
            let timeout = d.map_or(Duration::from_secs(1), |d| {
                d.saturating_duration_since(self.now)
            });
            let state = if !timeout.is_zero() && timeout <= self.shared.config.linger {
                PARKED_TIMED
            } else {
                PARKED_IDLE
            };
            again |= timeout.is_zero() || self.cores[c].must_not_park(state);
        }
        while let Ok(job) = self.jobs.try_recv() {
            job.run(&self.shared);
        }
        again
    }

    /// Carries out core `c`'s commands and moves what it has to write onto its links.
    fn apply(&mut self, c: usize) {
        while let Some(cmd) = self.cores[c].poll_command() {
            match cmd {
                Command::Connect { conn, addr } => {
                    if let Some(k) = self.find(c, conn) {
                        self.links.remove(k);
                    }
                    let broker = addr
                        .strip_prefix("10.0.0.")
                        .and_then(|r| r.strip_suffix(":9092"))
                        .and_then(|n| n.parse::<i32>().ok())
                        .expect("a simulated broker address");
                    let at = self.now + self.latency();
                    let refused = self.down[broker as usize];
                    self.links.push(Link::new(c, conn, broker, at, refused));
                }
                Command::Close { conn } => {
                    if let Some(k) = self.find(c, conn) {
                        self.links.remove(k);
                    }
                }
            }
        }
        for k in 0..self.links.len() {
            if self.links[k].core != c || self.links[k].connect_at.is_some() {
                continue;
            }
            let conn = self.links[k].conn;
            let n = self.cores[c].transmit(conn).len();
            if n > 0 {
                let lat = self.latency();
                let bytes = self.cores[c].transmit(conn).to_vec();
                self.links[k].send_to_broker(&bytes, self.now, lat);
                self.cores[c].consumed(conn, n, self.now);
            }
        }
    }

    /// Shuts the cores down and checks the run.
    fn finish(&mut self) -> Result<(), String> {
        for c in 0..self.cores.len() {
            self.cores[c].shutdown();
            self.apply(c);
        }
        while let Ok(job) = self.jobs.try_recv() {
            job.run(&self.shared);
        }
        if !self.links.is_empty() {
            return Err(format!(
                "{} connections left open after close",
                self.links.len()
            ));
        }
        if self.shared.outstanding() != 0 {
            return Err(format!(
                "{} records outstanding after close",
                self.shared.outstanding()
            ));
        }
        if let Some(v) = self.violations.first() {
            return Err(v.clone());
        }
        let errors = self.cluster.errors();
        if let Some(e) = errors.first() {
            return Err(format!("the cluster saw a protocol error: {e}"));
        }
        check::check(self)?;
        if self.txn.is_some() {
            // The last markers are due by now.
            *self.clock.lock() = self.now + Duration::from_secs(60);
            self.check_transactions()?;
        }
        Ok(())
    }
}

/// Runs seed `seed`; `Err` says what broke, with the seed.
fn run_seed(seed: u64, trace: bool, transactional: bool) -> Result<(), String> {
    let mut w = World::new(seed, trace, transactional);
    let r = w.run();
    if trace && r.is_err() {
        for (i, c) in w.cores.iter().enumerate() {
            eprintln!("core {i}: {}", c.debug_state());
        }
        for c in w.cluster.produce_requests() {
            for b in &c.batches {
                let first = b
                    .records
                    .first()
                    .and_then(|r| r.value.as_deref())
                    .map(|v| String::from_utf8_lossy(v).to_string());
                eprintln!(
                    "produce to {} p{}: pid {} epoch {} seq {} n {} first {:?} -> offset {}{}",
                    c.broker,
                    c.partition,
                    b.producer_id,
                    b.producer_epoch,
                    b.base_sequence,
                    b.records.len(),
                    first,
                    c.base_offset,
                    if c.duplicate { " (duplicate)" } else { "" }
                );
            }
        }
    }
    r.map_err(|e| {
        format!(
            "seed {seed}{}: {e}\n  scenario: {:?}\n  metrics: {:?}{}\n  replay: {}={seed} \
             cargo test --features mock --lib sim::",
            if transactional {
                " (transactional)"
            } else {
                ""
            },
            w.sc,
            w.shared.metrics.snapshot(0, 0),
            w.txn
                .as_ref()
                .map(|d| {
                    format!(
                        "\n  transactions: {:?} committed/aborted, at {:?}{}",
                        d.counts,
                        d.stage,
                        d.fatal
                            .as_ref()
                            .map(|e| format!(" ({e})"))
                            .unwrap_or_default()
                    )
                })
                .unwrap_or_default(),
            if transactional {
                "KPROD_SIM_TXN_SEED"
            } else {
                "KPROD_SIM_SEED"
            },
        )
    })
}

/// Runs the seeds the environment names (`{prefix}_SEED` replays one, traced;
/// `{prefix}_SEEDS` and `{prefix}_FIRST` a range), else `default` seeds from 0.
fn run_seeds(transactional: bool, prefix: &str, default: u64) {
    let var = |name: &str| {
        std::env::var(format!("{prefix}_{name}"))
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
    };
    if let Some(seed) = var("SEED") {
        if let Err(e) = run_seed(seed, true, transactional) {
            panic!("{e}");
        }
        return;
    }
    let n = var("SEEDS").unwrap_or(default);
    let first = var("FIRST").unwrap_or(0);
    let t = Instant::now();
    let mut failures = Vec::new();
    for seed in first..first + n {
        if let Err(e) = run_seed(seed, false, transactional) {
            failures.push(e);
            if failures.len() >= 3 {
                break;
            }
        }
    }
    let took = t.elapsed();
    eprintln!(
        "simulation{}: {n} seeds from {first} in {took:?} ({:.0} seeds/s)",
        if transactional {
            " (transactional)"
        } else {
            ""
        },
        n as f64 / took.as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn simulated_runs_keep_every_promise() {
    run_seeds(false, "KPROD_SIM", 2_000);
}

/// Transactional runs ([`txn`]): `KPROD_SIM_TXN_SEED`, `KPROD_SIM_TXN_SEEDS`,
/// `KPROD_SIM_TXN_FIRST`.
#[test]
fn simulated_transactional_runs_keep_every_promise() {
    run_seeds(true, "KPROD_SIM_TXN", 1_000);
}

#[test]
fn the_same_seed_replays_the_same_run() {
    for seed in [3, 17, 101] {
        let a = World::new(seed, false, seed == 17);
        let mut a = a;
        let ra = a.run();
        let mut b = World::new(seed, false, seed == 17);
        let rb = b.run();
        assert_eq!(ra, rb);
        assert_eq!(
            a.now - a.start,
            b.now - b.start,
            "seed {seed}: virtual end time"
        );
        assert_eq!(
            a.ledger.outcomes(a.start),
            b.ledger.outcomes(b.start),
            "seed {seed}"
        );
    }
}
