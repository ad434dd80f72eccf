//! The I/O driver: the only module that touches sockets (through mio). It moves bytes between
//! sockets and the engine core, carries out the core's commands (connect: resolve off-thread,
//! then try each address; close), and sleeps until the core's next deadline, a socket's
//! readiness, or a wake-up. It decides nothing.
//!
//! ```text
//!  loop:  core.handle_timeout(now) ──► commands (connect / close) ──► write what transmit holds
//!         park in poll(min(deadline, 1 s)) ◄── callers' wake-ups, resolver answers
//!         readiness ──► core.handle_connected / handle_received / handle_closed
//! ```

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::{unbounded, Receiver, Sender};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};

use super::core::{Command, EngineCore};
use super::resolver::{Resolved, Resolver};
use super::wake::{ThreadWake, PARKED_IDLE, PARKED_TIMED};
use super::Shared;

const WAKER: Token = Token(usize::MAX);
/// Longest park, as a backstop.
const MAX_PARK: Duration = Duration::from_secs(1);

/// Creates the polls for `n` threads and the wake-ups callers use to reach them.
pub(crate) fn polls(n: usize) -> std::io::Result<(Vec<Poll>, Vec<ThreadWake>)> {
    let mut polls = Vec::with_capacity(n);
    let mut wakes = Vec::with_capacity(n);
    for _ in 0..n {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER)?;
        polls.push(poll);
        wakes.push(ThreadWake::new(move || {
            let _ = waker.wake();
        }));
    }
    Ok((polls, wakes))
}

/// One connection's socket, and where its connect stands.
#[derive(Default)]
struct Slot {
    stream: Option<TcpStream>,
    /// Bumped at each connect and close: a resolver answer for an older attempt is dropped.
    attempt: u64,
    /// Where `stream` is still connecting.
    connecting: bool,
    addr: String,
    /// The addresses the name resolved to, and the next to try.
    addrs: Vec<SocketAddr>,
    next: usize,
}

/// An I/O thread: its poll, its sockets, and the core that decides.
pub(crate) struct Driver {
    core: EngineCore,
    shared: Arc<Shared>,
    poll: Poll,
    slots: Vec<Slot>,
    resolver: Arc<Resolver>,
    resolved_tx: Sender<Resolved>,
    resolved_rx: Receiver<Resolved>,
    wake: Arc<dyn Fn() + Send + Sync>,
    read_buf: Vec<u8>,
    /// Shutting down: close sockets gently.
    gentle: bool,
}

impl Driver {
    pub fn new(core: EngineCore, shared: Arc<Shared>, poll: Poll, resolver: Arc<Resolver>) -> Self {
        let (resolved_tx, resolved_rx) = unbounded();
        let index = core.index();
        let waker = shared.clone();
        Driver {
            core,
            poll,
            slots: Vec::new(),
            resolver,
            resolved_tx,
            resolved_rx,
            wake: Arc::new(move || waker.io[index].wake()),
            read_buf: vec![0; 64 * 1024],
            gentle: false,
            shared,
        }
    }

    /// Runs until the producer aborts, or closes with nothing left to do.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(256);
        loop {
            let now = Instant::now();
            if self.shared.abort.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            let deadline = self.core.handle_timeout(now);
            self.apply_commands(now);
            for i in 0..self.slots.len() {
                self.write(i, now);
            }
            if self.core.is_finished() {
                break;
            }
            self.park(now, deadline, &mut events);
            while let Ok(r) = self.resolved_rx.try_recv() {
                self.on_resolved(r, Instant::now());
            }
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
        self.core.shutdown();
        self.gentle = true;
        self.apply_commands(Instant::now());
    }

    /// Parks in `poll` until `deadline` (or a wake-up, or socket readiness) — after spinning
    /// for up to the configured `idle_spin` first.
    fn park(&mut self, now: Instant, deadline: Option<Instant>, events: &mut Events) {
        let linger = self.shared.config.linger;
        let timeout = deadline.map_or(MAX_PARK, |d| d.saturating_duration_since(now).min(MAX_PARK));
        let state = if !timeout.is_zero() && timeout <= linger {
            PARKED_TIMED
        } else {
            PARKED_IDLE
        };
        let spin = self.shared.config.idle_spin.min(timeout);
        if !spin.is_zero() && self.spin(now + spin, state, events) {
            return;
        }
        let wake = &self.shared.io[self.core.index()];
        wake.parking(state);
        // Anything pushed before the store above is seen here; anything after, wakes us.
        let work =
            timeout.is_zero() || self.core.must_not_park(state) || !self.resolved_rx.is_empty();
        let timeout = if work { Duration::ZERO } else { timeout };
        if let Err(e) = self.poll.poll(events, Some(timeout)) {
            if e.kind() != ErrorKind::Interrupted {
                log::error!("kprod: poll: {e}");
            }
            events.clear();
        }
        wake.running();
    }

    /// The idle strategy's busy phase: until `until`, polls the sockets without blocking,
    /// checks the rings and yields the core between turns, staying `RUNNING` so that callers pushing records need not wake this
    /// thread (no system call on their side, no scheduler pass on this one). Work is what
    /// would keep it from parking in `state`. True if work turned up (`events` holds the
    /// sockets that have some).
    fn spin(&mut self, until: Instant, state: u8, events: &mut Events) -> bool {
        loop {
            if let Err(e) = self.poll.poll(events, Some(Duration::ZERO)) {
                if e.kind() != ErrorKind::Interrupted {
                    log::error!("kprod: poll: {e}");
                }
                events.clear();
            }
            if !events.is_empty() || self.core.must_not_park(state) || !self.resolved_rx.is_empty()
            {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            // Polite: a thread of the broker's, or the caller, runnable on this core runs
            // first (on a machine with fewer cores than busy threads, a hard spin took the
            // broker's turn and tripled p99); with nobody waiting, it returns at once.
            std::thread::yield_now();
        }
    }

    fn slot(&mut self, i: usize) -> &mut Slot {
        if i >= self.slots.len() {
            self.slots.resize_with(i + 1, Slot::default);
        }
        &mut self.slots[i]
    }

    /// Carries out what the core asked for, until it asks nothing more.
    fn apply_commands(&mut self, now: Instant) {
        while let Some(c) = self.core.poll_command() {
            match c {
                Command::Connect { conn, addr } => self.start_connect(conn, addr, now),
                Command::Close { conn } => self.close(conn),
            }
        }
    }

    fn start_connect(&mut self, i: usize, addr: String, now: Instant) {
        self.close(i);
        let slot = self.slot(i);
        slot.addr = addr;
        slot.addrs.clear();
        slot.next = 0;
        let attempt = slot.attempt;
        let addr = slot.addr.clone();
        // None: on a resolver thread, whose answer wakes this one.
        if let Some(result) =
            self.resolver
                .resolve(&addr, i, attempt, &self.resolved_tx, &self.wake)
        {
            let r = Resolved {
                conn: i,
                attempt,
                result,
            };
            self.on_resolved(r, now);
        }
    }

    fn on_resolved(&mut self, r: Resolved, now: Instant) {
        let Some(slot) = self.slots.get_mut(r.conn) else {
            return;
        };
        if slot.attempt != r.attempt {
            return; // closed or reconnected since
        }
        match r.result {
            Ok(addrs) => {
                slot.addrs = addrs;
                slot.next = 0;
                self.try_next_address(r.conn, None, now);
            }
            Err(e) => {
                let why = format!("cannot resolve {}: {e}", slot.addr);
                self.core.handle_connect_failed(r.conn, &why, now);
                self.apply_commands(now);
            }
        }
    }

    /// Connects to the next resolved address (after `failed`, why the last one failed); when
    /// none is left, tells the core.
    fn try_next_address(&mut self, i: usize, failed: Option<String>, now: Instant) {
        let mut last = failed;
        let slot = &mut self.slots[i];
        if let Some(mut s) = slot.stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
        }
        slot.connecting = false;
        while slot.next < slot.addrs.len() {
            let a = slot.addrs[slot.next];
            slot.next += 1;
            if let Some(why) = &last {
                log::debug!("kprod: {}: trying {a} ({why})", slot.addr);
            }
            let mut s = match TcpStream::connect(a) {
                Ok(s) => s,
                Err(e) => {
                    last = Some(format!("{a}: {e}"));
                    continue;
                }
            };
            let registered = self.poll.registry().register(
                &mut s,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            );
            if let Err(e) = registered {
                last = Some(format!("{a}: register: {e}"));
                continue;
            }
            slot.stream = Some(s);
            slot.connecting = true;
            return;
        }
        let why = last.unwrap_or_else(|| "no address to connect to".into());
        let why = format!("{}: {why}", slot.addr);
        self.core.handle_connect_failed(i, &why, now);
        self.apply_commands(now);
    }

    fn close(&mut self, i: usize) {
        let gentle = self.gentle;
        let slot = self.slot(i);
        slot.attempt += 1;
        let connected = !slot.connecting;
        slot.connecting = false;
        if let Some(mut s) = slot.stream.take() {
            let _ = self.poll.registry().deregister(&mut s);
            if gentle && connected {
                close_gently(s, &mut self.read_buf);
            }
        }
    }

    fn on_writable(&mut self, i: usize, now: Instant) {
        let Some(slot) = self.slots.get(i) else {
            return;
        };
        if slot.connecting {
            self.check_connect(i, now);
        }
        self.write(i, now);
    }

    /// Whether the connect on slot `i` finished, and how.
    fn check_connect(&mut self, i: usize, now: Instant) {
        let Some(s) = self.slots[i].stream.as_ref() else {
            return;
        };
        match s.take_error() {
            Ok(Some(e)) | Err(e) => {
                let why = e.to_string();
                return self.try_next_address(i, Some(why), now);
            }
            Ok(None) => {}
        }
        match s.peer_addr() {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotConnected => return,
            Err(e) => return self.try_next_address(i, Some(e.to_string()), now),
        }
        let _ = s.set_nodelay(true);
        self.slots[i].connecting = false;
        self.core.handle_connected(i, now);
        self.apply_commands(now);
    }

    fn write(&mut self, i: usize, now: Instant) {
        loop {
            let Some(slot) = self.slots.get_mut(i) else {
                return;
            };
            if slot.connecting {
                return;
            }
            let Some(s) = slot.stream.as_mut() else {
                return;
            };
            let buf = self.core.transmit(i);
            if buf.is_empty() {
                return;
            }
            match s.write(buf) {
                Ok(0) => return self.lost(i, "connection closed", now),
                Ok(n) => self.core.consumed(i, n, Instant::now()),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return self.lost(i, &e.to_string(), now),
            }
        }
    }

    fn on_readable(&mut self, i: usize, now: Instant) {
        let Some(slot) = self.slots.get(i) else {
            return;
        };
        if slot.connecting {
            // An error or hang-up while connecting shows here.
            let failed = slot.stream.as_ref().and_then(|s| match s.take_error() {
                Ok(Some(e)) | Err(e) => Some(e.to_string()),
                Ok(None) => None,
            });
            if let Some(why) = failed {
                self.try_next_address(i, Some(why), now);
            }
            return;
        }
        loop {
            let Some(s) = self.slots.get_mut(i).and_then(|s| s.stream.as_mut()) else {
                return;
            };
            match s.read(&mut self.read_buf) {
                Ok(0) => return self.lost(i, "connection closed by the broker", now),
                Ok(n) => {
                    self.core.handle_received(i, &self.read_buf[..n], now);
                    self.apply_commands(now);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return self.lost(i, &e.to_string(), now),
            }
        }
        self.write(i, now);
    }

    /// The socket of slot `i` failed.
    fn lost(&mut self, i: usize, why: &str, now: Instant) {
        self.core.handle_closed(i, why, now);
        self.apply_commands(now);
        // The core may not have known it (already down): the socket goes either way.
        self.close(i);
    }
}

/// Spawns the thread running `driver`, pinned to a core when configured.
pub(crate) fn spawn(
    driver: Driver,
    pin: Option<core_affinity::CoreId>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let index = driver.core.index();
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
            driver.run();
        })
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
