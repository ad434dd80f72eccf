//! A loopback TCP proxy that injects network faults between a client and one broker: it cuts
//! connections at random moments in either direction (mid-request or mid-response), cuts every
//! live connection on demand, delays traffic, or swallows requests (a broker that accepts
//! connections but never answers).
//!
//! Point clients at it by making the broker advertise the proxy's address (kprod's
//! `MockCluster::set_advertised_addr`, tansu's `--advertised-listener-url`).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Random cuts: each new connection gets a byte budget per direction, drawn uniformly from
/// `up` (client → broker) and `down` (broker → client); once either runs out, the connection
/// is cut mid-stream — mid-request or mid-response.
///
/// A request cut waits (up to [`UP_CUT_GRACE`]) until the responses to the requests sent
/// whole before it have reached the client: the connection dies while a request is being
/// written, as one does, rather than with every pipelined request's answer lost too. Without
/// that wait the requests a connection carries before its cut would be answered or not
/// depending on how fast this machine wakes the proxy's threads, and a client that pipelines
/// ahead of the answers would see almost nothing through; lost answers are the `down` cut's
/// job.
#[derive(Debug, Clone, Copy)]
pub struct Chaos {
    pub up: (u64, u64),
    pub down: (u64, u64),
}

/// How long a request cut waits for the answers to the whole requests before it.
pub const UP_CUT_GRACE: Duration = Duration::from_secs(10);

/// Counts whole Kafka frames (4-byte big-endian length, then that many bytes) in a stream.
#[derive(Default)]
struct Frames {
    header: [u8; 4],
    have: usize,
    left: usize,
}

impl Frames {
    /// Feeds `bytes`; returns how many frames they completed.
    fn feed(&mut self, mut bytes: &[u8]) -> u64 {
        let mut done = 0;
        while !bytes.is_empty() {
            if self.left > 0 {
                let n = self.left.min(bytes.len());
                self.left -= n;
                bytes = &bytes[n..];
                if self.left == 0 {
                    done += 1;
                }
                continue;
            }
            self.header[self.have] = bytes[0];
            self.have += 1;
            bytes = &bytes[1..];
            if self.have == 4 {
                self.have = 0;
                self.left = i32::from_be_bytes(self.header).max(0) as usize;
                if self.left == 0 {
                    done += 1;
                }
            }
        }
        done
    }
}

/// What one connection has forwarded, for a request cut to wait on.
#[derive(Default)]
struct Exchange {
    counts: Mutex<Counts>,
    answered: Condvar,
}

#[derive(Default)]
struct Counts {
    /// Whole requests forwarded to the broker.
    requests: u64,
    /// Whole responses forwarded to the client.
    responses: u64,
    /// The responses' direction has stopped (closed or cut): nothing more will come.
    done: bool,
}

struct Shared {
    target: SocketAddr,
    stop: AtomicBool,
    /// Live connections' sockets (client side, broker side), to cut them from outside.
    conns: Mutex<Vec<(u64, TcpStream, TcpStream)>>,
    chaos: Mutex<Option<Chaos>>,
    /// Requests are read and dropped: the broker never sees them, the client never hears back.
    blackhole: AtomicBool,
    /// Added before forwarding each chunk, in each direction.
    delay: Mutex<Duration>,
    /// Connections cut so far (by chaos or `cut_all`).
    cuts: AtomicU64,
    next_id: AtomicU64,
    rng: Mutex<u64>,
    /// Every connection's pump threads, joined on drop (they hold the bytes in flight).
    pumps: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    fn random(&self) -> u64 {
        let mut s = self.rng.lock().unwrap();
        // xorshift64*
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        s.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn forget(&self, id: u64) {
        self.conns.lock().unwrap().retain(|(i, _, _)| *i != id);
    }
}

/// The proxy. Dropping it stops accepting and cuts every connection.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// A proxy on a free loopback port forwarding to `target`.
    pub fn start(target: SocketAddr, seed: u64) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            target,
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            chaos: Mutex::new(None),
            blackhole: AtomicBool::new(false),
            delay: Mutex::new(Duration::ZERO),
            cuts: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            rng: Mutex::new(seed | 1),
            pumps: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                for client in listener.incoming() {
                    if s.stop.load(SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let Ok(server) = TcpStream::connect(s.target) else {
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    start_pumps(&s, client, server);
                }
            })
            .unwrap();
        FaultProxy {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Random cuts on new connections (`None`: off). Connections already open keep theirs.
    pub fn set_chaos(&self, chaos: Option<Chaos>) {
        *self.shared.chaos.lock().unwrap() = chaos;
    }

    /// Swallow requests (on) or forward them again (off).
    pub fn set_blackhole(&self, on: bool) {
        self.shared.blackhole.store(on, SeqCst);
    }

    /// Delay each forwarded chunk by `d` in each direction (a round trip gains `2 × d`).
    pub fn set_delay(&self, d: Duration) {
        *self.shared.delay.lock().unwrap() = d;
    }

    /// Cuts every live connection now.
    pub fn cut_all(&self) {
        let conns: Vec<_> = std::mem::take(&mut *self.shared.conns.lock().unwrap());
        for (_, c, s) in conns {
            let _ = c.shutdown(Shutdown::Both);
            let _ = s.shutdown(Shutdown::Both);
            self.shared.cuts.fetch_add(1, SeqCst);
        }
    }

    /// Connections cut so far.
    pub fn cuts(&self) -> u64 {
        self.shared.cuts.load(SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, SeqCst);
        let _ = TcpStream::connect(self.addr); // unblocks accept
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for (_, c, s) in std::mem::take(&mut *self.shared.conns.lock().unwrap()) {
            let _ = c.shutdown(Shutdown::Both);
            let _ = s.shutdown(Shutdown::Both);
        }
        // Gone when this returns: no pump keeps bytes (or a thread) past the proxy.
        for t in std::mem::take(&mut *self.shared.pumps.lock().unwrap()) {
            let _ = t.join();
        }
    }
}

fn start_pumps(s: &Arc<Shared>, client: TcpStream, server: TcpStream) {
    let id = s.next_id.fetch_add(1, SeqCst);
    let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
        client.try_clone(),
        server.try_clone(),
        client.try_clone(),
        server.try_clone(),
    ) else {
        return;
    };
    s.conns.lock().unwrap().push((id, c3, s3));
    // The cut: a byte budget per direction.
    let chaos = *s.chaos.lock().unwrap();
    let draw = |(min, max): (u64, u64)| min + s.random() % (max.saturating_sub(min) + 1);
    let up_budget = chaos.map(|c| draw(c.up));
    let down_budget = chaos.map(|c| draw(c.down));
    let exchange = Arc::new(Exchange::default());
    let up = s.clone();
    let x = exchange.clone();
    let up_pump = std::thread::Builder::new()
        .name("fault-proxy-up".into())
        .spawn(move || pump(&up, id, client, server, up_budget, true, &x))
        .unwrap();
    let down = s.clone();
    let down_pump = std::thread::Builder::new()
        .name("fault-proxy-down".into())
        .spawn(move || pump(&down, id, s2, c2, down_budget, false, &exchange))
        .unwrap();
    let mut pumps = s.pumps.lock().unwrap();
    pumps.retain(|t| !t.is_finished());
    pumps.extend([up_pump, down_pump]);
}

/// Copies `from` → `to` until either side closes, the budget runs out (then cuts both
/// sockets), or the proxy stops. A reader thread stamps each chunk with its due time (now plus
/// the delay) and a writer forwards it then, so the delay adds latency without capping
/// throughput; the bounded queue between them keeps TCP's backpressure.
fn pump(
    s: &Arc<Shared>,
    id: u64,
    from: TcpStream,
    mut to: TcpStream,
    mut budget: Option<u64>,
    upstream: bool,
    exchange: &Exchange,
) {
    let mut frames = Frames::default();
    let (tx, rx) = std::sync::mpsc::sync_channel::<(Instant, Vec<u8>)>(64);
    let reader_shared = s.clone();
    let Ok(mut reader_from) = from.try_clone() else {
        return;
    };
    let reader = std::thread::Builder::new()
        .name("fault-proxy-read".into())
        .spawn(move || {
            let s = reader_shared;
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match reader_from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if s.stop.load(SeqCst) {
                    break;
                }
                if upstream && s.blackhole.load(SeqCst) {
                    continue;
                }
                let due = Instant::now() + *s.delay.lock().unwrap();
                if tx.send((due, buf[..n].to_vec())).is_err() {
                    break;
                }
            }
        })
        .unwrap();
    for (due, chunk) in rx.iter() {
        if s.stop.load(SeqCst) {
            break;
        }
        let wait = due.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            // Injected latency: the fault itself, not a test waiting for an outcome.
            std::thread::sleep(wait);
        }
        let mut n = chunk.len();
        let mut cut = false;
        if let Some(b) = budget.as_mut() {
            if (n as u64) >= *b {
                n = *b as usize;
                cut = true;
            } else {
                *b -= n as u64;
            }
        }
        if to.write_all(&chunk[..n]).is_err() {
            break;
        }
        let whole = frames.feed(&chunk[..n]);
        {
            let mut counts = exchange.counts.lock().unwrap();
            if upstream {
                counts.requests += whole;
            } else {
                counts.responses += whole;
            }
        }
        exchange.answered.notify_all();
        if cut {
            if upstream {
                // Let the answers to the whole requests before this one through first.
                let until = Instant::now() + UP_CUT_GRACE;
                let mut counts = exchange.counts.lock().unwrap();
                while counts.responses < counts.requests && !counts.done {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    counts = exchange.answered.wait_timeout(counts, left).unwrap().0;
                }
            }
            s.cuts.fetch_add(1, SeqCst);
            break;
        }
    }
    if !upstream {
        exchange.counts.lock().unwrap().done = true;
        exchange.answered.notify_all();
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
    drop(rx);
    let _ = reader.join();
    s.forget(id);
}

/// A proxy in front of each of `cluster`'s brokers (proxy `b`'s chaos seeded with
/// `seed * b`), with the brokers advertising the proxies' addresses, so clients that
/// bootstrap through [`bootstrap_of`] reach every broker only through its proxy.
pub fn proxy_every_broker(cluster: &kprod::mock::MockCluster, seed: u64) -> Vec<FaultProxy> {
    cluster
        .broker_ids()
        .into_iter()
        .map(|b| {
            let p = FaultProxy::start(cluster.broker_addr(b), seed * b as u64);
            cluster.set_advertised_addr(b, Some(p.addr()));
            p
        })
        .collect()
}

/// The proxies' addresses as a `bootstrap.servers` list.
pub fn bootstrap_of(proxies: &[FaultProxy]) -> String {
    proxies
        .iter()
        .map(|p| p.addr().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// A mock cluster whose brokers are reached only through fault proxies (each advertises its
/// proxy's address).
pub struct ProxiedCluster {
    pub cluster: kprod::mock::MockCluster,
    pub proxies: Vec<FaultProxy>,
}

impl ProxiedCluster {
    /// A proxy in front of every broker of `cluster`, seeded from `seed`.
    pub fn new(cluster: kprod::mock::MockCluster, seed: u64) -> ProxiedCluster {
        let proxies = proxy_every_broker(&cluster, seed);
        ProxiedCluster { cluster, proxies }
    }

    /// The proxies as a `bootstrap.servers` list.
    pub fn bootstrap(&self) -> String {
        bootstrap_of(&self.proxies)
    }

    /// Every fault off: no chaos, no blackhole, no delay, no stalled or stopped broker.
    pub fn heal(&self) {
        for p in &self.proxies {
            p.set_chaos(None);
            p.set_blackhole(false);
            p.set_delay(Duration::ZERO);
        }
        for b in self.cluster.broker_ids() {
            self.cluster.stall(b, false);
            if !self.cluster.is_broker_up(b) {
                self.cluster.broker_up(b);
            }
        }
    }
}
