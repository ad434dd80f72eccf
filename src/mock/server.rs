//! Sockets and threads: one accept thread per broker polling a non-blocking listener, one
//! thread per connection. Every thread polls the cluster's stop flag at least every
//! [`POLL`], and every connection is registered so that it can be shut down from outside
//! (broker down, cluster dropped).

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use parking_lot::Mutex;

use crate::protocol::frame::DEFAULT_MAX_FRAME;
use crate::protocol::{decode_request_header, FrameSplitter, RequestHeader};

use super::handler::{fetch_again, handle, Outcome, PendingFetch, Profile};
use super::security::{Gate, SaslServer, Session, TlsServer, Wire};
use super::state::State;

/// How often idle threads look at the stop flag and at stalls.
pub(crate) const POLL: Duration = Duration::from_millis(5);

/// Cluster-wide settings fixed at build time.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub profile: Profile,
    pub sink: bool,
    pub duplicate_as_error: bool,
    pub auto_create: bool,
    pub auto_create_partitions: i32,
    /// Answer the transaction APIs ([`super::txn`]).
    pub transactions: bool,
    /// The finalized `transaction.version` feature advertised (0: none).
    pub transaction_version: i16,
    /// TLS on every listener.
    pub tls: Option<TlsServer>,
    /// SASL on every listener.
    pub sasl: Option<Arc<SaslServer>>,
}

/// One broker's sockets and knobs.
#[derive(Debug)]
pub(crate) struct Broker {
    pub id: i32,
    pub addr: SocketAddr,
    /// `None` while the broker is down.
    listener: Mutex<Option<TcpListener>>,
    /// Clones of the live connections' streams, to shut them down from outside.
    conns: Mutex<Vec<(u64, TcpStream)>>,
    pub stalled: AtomicBool,
    pub latency: Mutex<Duration>,
    /// The address Metadata gives clients for this broker, if not `addr` (a proxy's).
    pub advertised: Mutex<Option<SocketAddr>>,
}

impl Broker {
    /// The address clients are told to connect to.
    pub fn advertised_addr(&self) -> SocketAddr {
        self.advertised.lock().unwrap_or(self.addr)
    }
}

impl Broker {
    /// Closes the listener and every connection (idempotent).
    pub fn down(&self) {
        let mut l = self.listener.lock();
        *l = None;
        for (_, s) in self.conns.lock().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Listens again on the same address (idempotent). Retries for a while if the port is
    /// briefly unavailable.
    pub fn up(&self) -> std::io::Result<()> {
        let mut l = self.listener.lock();
        if l.is_some() {
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match TcpListener::bind(self.addr) {
                Ok(listener) => {
                    listener.set_nonblocking(true)?;
                    *l = Some(listener);
                    return Ok(());
                }
                Err(e) if e.kind() == ErrorKind::AddrInUse && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        }
    }

    pub fn is_up(&self) -> bool {
        self.listener.lock().is_some()
    }
}

/// Everything the threads share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: Config,
    pub state: Mutex<State>,
    pub brokers: Vec<Broker>,
    pub stop: AtomicBool,
    /// Connection threads, joined on drop.
    pub threads: Mutex<Vec<JoinHandle<()>>>,
    next_conn: AtomicU64,
    /// Authentications refused, and re-authentications completed, on every connection.
    pub auth_failures: AtomicU64,
    pub reauthentications: AtomicU64,
    /// The SNI names TLS clients sent, one per connection that sent one.
    pub server_names: Mutex<Vec<String>>,
    /// The extensions of each accepted OAUTHBEARER authentication (bounded: the last 1,024).
    pub sasl_extensions: Mutex<Vec<Vec<(String, String)>>>,
}

impl Broker {
    /// Broker `id` at `addr`, listening on `listener` (`None`: no socket, for the simulation).
    fn new(id: i32, addr: SocketAddr, listener: Option<TcpListener>) -> Broker {
        Broker {
            id,
            addr,
            listener: Mutex::new(listener),
            conns: Mutex::new(Vec::new()),
            stalled: AtomicBool::new(false),
            latency: Mutex::new(Duration::ZERO),
            advertised: Mutex::new(None),
        }
    }
}

impl Shared {
    fn with_brokers(config: Config, state: State, brokers: Vec<Broker>) -> Shared {
        Shared {
            config,
            state: Mutex::new(state),
            brokers,
            stop: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
            next_conn: AtomicU64::new(1),
            auth_failures: AtomicU64::new(0),
            reauthentications: AtomicU64::new(0),
            server_names: Mutex::new(Vec::new()),
            sasl_extensions: Mutex::new(Vec::new()),
        }
    }

    /// Binds one listener per broker.
    pub fn bind(config: Config, state: State, brokers: usize) -> std::io::Result<Shared> {
        let mut list = Vec::with_capacity(brokers);
        for i in 0..brokers {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            listener.set_nonblocking(true)?;
            let addr = listener.local_addr()?;
            list.push(Broker::new(i as i32 + 1, addr, Some(listener)));
        }
        Ok(Shared::with_brokers(config, state, list))
    }

    /// Brokers without sockets, for the deterministic simulation: broker `n` is addressed as
    /// `10.0.0.n:9092`, and a harness feeds the request handler itself.
    #[cfg(test)]
    pub fn unbound(config: Config, state: State, brokers: usize) -> Shared {
        let list = (0..brokers)
            .map(|i| {
                let addr = SocketAddr::from(([10, 0, 0, i as u8 + 1], 9092));
                Broker::new(i as i32 + 1, addr, None)
            })
            .collect();
        Shared::with_brokers(config, state, list)
    }

    /// The broker with this id.
    pub fn broker(&self, id: i32) -> Option<&Broker> {
        usize::try_from(id - 1)
            .ok()
            .and_then(|i| self.brokers.get(i))
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Joins connection threads that have finished.
    fn reap(&self) {
        let mut threads = self.threads.lock();
        let (done, running): (Vec<_>, Vec<_>) =
            threads.drain(..).partition(JoinHandle::is_finished);
        *threads = running;
        drop(threads);
        for t in done {
            let _ = t.join();
        }
    }

    /// Stops every thread and closes every socket; returns once all connection threads are
    /// joined (the caller joins the accept threads first).
    pub fn shutdown_connections(&self) {
        loop {
            let threads: Vec<_> = self.threads.lock().drain(..).collect();
            if threads.is_empty() {
                break;
            }
            for b in &self.brokers {
                for (_, s) in b.conns.lock().iter() {
                    let _ = s.shutdown(Shutdown::Both);
                }
            }
            for t in threads {
                let _ = t.join();
            }
        }
    }
}

/// Broker `idx`'s accept loop; returns when the cluster stops.
pub(crate) fn accept_loop(shared: Arc<Shared>, idx: usize) {
    let broker = &shared.brokers[idx];
    let mut last_reap = Instant::now();
    while !shared.stopping() {
        let accepted = {
            let listener = broker.listener.lock();
            match listener.as_ref().map(TcpListener::accept) {
                Some(Ok((stream, _))) => {
                    // Registered while the listener lock is held, so a concurrent
                    // `broker_down` sees it.
                    let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
                    match stream.try_clone() {
                        Ok(clone) => {
                            broker.conns.lock().push((id, clone));
                            Some((id, stream))
                        }
                        Err(_) => None,
                    }
                }
                _ => None,
            }
        };
        match accepted {
            Some((id, stream)) => {
                let sh = shared.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("km{}c{id}", broker.addr.port()))
                    .spawn(move || serve(&sh, idx, id, stream));
                match spawned {
                    Ok(h) => shared.threads.lock().push(h),
                    Err(_) => unregister(broker, id),
                }
            }
            None => std::thread::sleep(POLL),
        }
        if last_reap.elapsed() > Duration::from_secs(1) {
            shared.reap();
            last_reap = Instant::now();
        }
    }
}

fn unregister(broker: &Broker, id: u64) {
    let mut conns = broker.conns.lock();
    if let Some(i) = conns.iter().position(|(c, _)| *c == id) {
        let (_, s) = conns.swap_remove(i);
        let _ = s.shutdown(Shutdown::Both);
    }
}

/// A response waiting for its time.
enum Pending {
    Ready(Vec<u8>),
    Fetch(Box<PendingFetch>),
}

/// One connection: reads frames, hands them to the handler, writes responses in request
/// order, each no earlier than its arrival plus the broker's latency.
fn serve(shared: &Shared, idx: usize, id: u64, stream: TcpStream) {
    let broker = &shared.brokers[idx];
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(Duration::from_secs(30)));
    let wire = match &shared.config.tls {
        Some(tls) => tls.wrap(stream),
        None => Ok(Wire::Plain(stream)),
    };
    match wire {
        Ok(mut wire) => {
            if let Err(e) = run(shared, idx, &mut wire) {
                shared.state.lock().errors.push(e);
            }
            let _ = wire.tcp().shutdown(Shutdown::Both);
        }
        Err(e) => shared.state.lock().errors.push(format!("TLS: {e}")),
    }
    unregister(broker, id);
}

/// Why a connection ended: `Err` carries an error for the cluster's list.
fn run(shared: &Shared, idx: usize, stream: &mut Wire) -> Result<(), String> {
    let broker = &shared.brokers[idx];
    let mut splitter = FrameSplitter::new(DEFAULT_MAX_FRAME);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    // Requests read but not yet handled (held while the broker is stalled).
    let mut inbox: VecDeque<(RequestHeader, BytesMut, usize, Instant)> = VecDeque::new();
    // Responses in request order, each with the time it may be sent.
    let mut outbox: VecDeque<(Instant, Pending)> = VecDeque::new();
    let mut session = Session::default();
    let mut sni_seen = false;
    loop {
        if shared.stopping() {
            return Ok(());
        }
        // Handle what has arrived, unless stalled.
        while !broker.stalled.load(Ordering::SeqCst) {
            let Some((header, frame, body_at, arrived)) = inbox.pop_front() else {
                break;
            };
            let due = arrived + *broker.latency.lock();
            if let Some(sasl) = &shared.config.sasl {
                let reauths = session.reauthentications;
                let gate = session.gate(sasl, &header, &frame[body_at..], Instant::now());
                if session.reauthentications > reauths {
                    shared.reauthentications.fetch_add(1, Ordering::Relaxed);
                }
                if !session.oauth_extensions.is_empty() {
                    let mut seen = shared.sasl_extensions.lock();
                    if seen.len() == 1024 {
                        seen.remove(0);
                    }
                    seen.push(std::mem::take(&mut session.oauth_extensions));
                }
                match gate {
                    Gate::Serve => {}
                    Gate::Answer(out) => {
                        outbox.push_back((due, Pending::Ready(out)));
                        continue;
                    }
                    Gate::AnswerAndClose(out, why) => {
                        // What was answered before goes first, then the refusal, then the
                        // connection: nothing is served after a failed authentication.
                        shared.auth_failures.fetch_add(1, Ordering::Relaxed);
                        log::debug!("mock broker {}: {why}", broker.id);
                        for (_, p) in outbox.drain(..) {
                            if let Pending::Ready(o) = p {
                                let _ = stream.write_all(&o);
                            }
                        }
                        let _ = stream.write_all(&out);
                        let _ = stream.flush();
                        return Ok(());
                    }
                    Gate::Close(why) => return Err(format!("broker {}: {why}", broker.id)),
                }
            }
            match handle(shared, broker.id, &header, &frame[body_at..]) {
                Outcome::Respond(out) => outbox.push_back((due, Pending::Ready(out))),
                Outcome::Silent => {}
                Outcome::Wait(f) => outbox.push_back((due, Pending::Fetch(f))),
                Outcome::Close(e) => return Err(format!("broker {}: {e}", broker.id)),
            }
        }
        // Send what is due, in order.
        while let Some((due, pending)) = outbox.front_mut() {
            let now = Instant::now();
            if *due > now {
                break;
            }
            let out = match pending {
                Pending::Ready(out) => std::mem::take(out),
                Pending::Fetch(f) => match fetch_again(shared, broker.id, f) {
                    Some(out) => out,
                    None => {
                        *due = now + POLL;
                        break;
                    }
                },
            };
            outbox.pop_front();
            if stream.write_all(&out).is_err() {
                return Ok(());
            }
        }
        // Read, waking in time for the next due response.
        let wait = outbox
            .front()
            .map_or(POLL, |(due, _)| {
                due.saturating_duration_since(Instant::now())
            })
            .clamp(Duration::from_millis(1), POLL);
        let _ = stream.tcp().set_read_timeout(Some(wait));
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(_) => return Ok(()),
        };
        let (n, cut) = take_byte_budget(shared, idx, n);
        buf.extend_from_slice(&chunk[..n]);
        if !sni_seen {
            sni_seen = true;
            if let Some(name) = stream.server_name() {
                shared.server_names.lock().push(name);
            }
        }
        let now = Instant::now();
        loop {
            let frame = match splitter.next_frame(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return Err(format!("broker {}: framing: {e}", broker.id)),
            };
            let (header, body_at) = match decode_request_header(&frame) {
                Ok((h, body)) => (h, frame.len() - body.len()),
                Err(e) => return Err(format!("broker {}: request header: {e}", broker.id)),
            };
            if arrive(shared, idx, &header) {
                // Told to drop this request: close without answering.
                return Ok(());
            }
            inbox.push_back((header, frame, body_at, now));
        }
        if cut {
            // The requests read in full before the cut are handled, as a broker would, but
            // the connection goes before any answer.
            if !broker.stalled.load(Ordering::SeqCst) {
                for (header, frame, body_at, _) in inbox.drain(..) {
                    if let Outcome::Close(e) = handle(shared, broker.id, &header, &frame[body_at..])
                    {
                        return Err(format!("broker {}: {e}", broker.id));
                    }
                }
            }
            return Ok(());
        }
    }
}

/// Counts a request's arrival; true if the connection must be dropped instead of answering.
pub(crate) fn arrive(shared: &Shared, idx: usize, h: &RequestHeader) -> bool {
    let mut st = shared.state.lock();
    let stats = st.stats.entry(h.api_key.0).or_default();
    stats.count += 1;
    stats.versions.insert(h.api_version);
    match st.drop_on_request[idx] {
        Some(n) if n <= 1 => {
            st.drop_on_request[idx] = None;
            true
        }
        Some(n) => {
            st.drop_on_request[idx] = Some(n - 1);
            false
        }
        None => false,
    }
}

/// Charges `n` bytes read against broker `idx`'s byte budget: returns how many of them to
/// keep and whether the connection must be cut after them.
fn take_byte_budget(shared: &Shared, idx: usize, n: usize) -> (usize, bool) {
    let mut st = shared.state.lock();
    match st.drop_after_bytes[idx] {
        Some(left) if left <= n as u64 => {
            st.drop_after_bytes[idx] = None;
            (left as usize, true)
        }
        Some(left) => {
            st.drop_after_bytes[idx] = Some(left - n as u64);
            (n, false)
        }
        None => (n, false),
    }
}
