//! Name resolution off the I/O threads: a `host:port` that is not an IP address is looked up
//! on a small pool of resolver threads, so a slow resolver stalls only the connection waiting
//! for it — never the partitions, lingers and timeouts of the thread that asked.
//!
//! Every address a name resolves to is kept, in the resolver's order; the driver tries them in
//! turn (the Java client's `client.dns.lookup=use_all_dns_ips`, its default).

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam::channel::{unbounded, Receiver, Sender};
use parking_lot::Mutex;

/// Turns a host and port into the addresses to try, in order. The default uses the system
/// resolver (`getaddrinfo`); supply your own with
/// [`ProducerConfigBuilder::resolver`](crate::config::ProducerConfigBuilder::resolver), e.g. to
/// map advertised names, or to test. It runs on a resolver thread, never an I/O thread, and may
/// block.
///
/// ```
/// use std::net::SocketAddr;
/// use kprod::Resolve;
/// // Every broker name to one local address (as a test or a tunnel would).
/// let local = |_host: &str, port: u16| -> std::io::Result<Vec<SocketAddr>> {
///     Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
/// };
/// assert_eq!(local.resolve("broker-1.example", 9092)?[0].to_string(), "127.0.0.1:9092");
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait Resolve: Send + Sync {
    /// The addresses of `host`, each with `port`.
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>>;
}

impl<F> Resolve for F
where
    F: Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync,
{
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        self(host, port)
    }
}

/// The system resolver.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        Ok((host, port).to_socket_addrs()?.collect())
    }
}

/// Splits `host:port` (`[v6]:port` too).
pub(crate) fn split_host_port(addr: &str) -> io::Result<(&str, u16)> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{addr:?} is not host:port"),
        )
    };
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse().map_err(|_| bad())?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Ok((host, port))
}

/// A lookup's result, for connection `conn` at its attempt `attempt`.
pub(crate) struct Resolved {
    pub conn: usize,
    pub attempt: u64,
    pub result: io::Result<Vec<SocketAddr>>,
}

struct Lookup {
    host: String,
    port: u16,
    conn: usize,
    attempt: u64,
    reply: Sender<Resolved>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

/// Resolver threads, started on demand (at most [`Resolver::MAX_THREADS`]), stopped and joined
/// by [`shutdown`](Self::shutdown).
pub(crate) struct Resolver {
    custom: Option<Arc<dyn Resolve>>,
    tx: Mutex<Option<Sender<Lookup>>>,
    rx: Receiver<Lookup>,
    idle: Arc<AtomicUsize>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Resolver {
    /// Most resolver threads: this many slow names at once before a lookup waits its turn.
    pub const MAX_THREADS: usize = 4;

    pub fn new(custom: Option<Arc<dyn Resolve>>) -> Self {
        let (tx, rx) = unbounded();
        Resolver {
            custom,
            tx: Mutex::new(Some(tx)),
            rx,
            idle: Arc::new(AtomicUsize::new(0)),
            threads: Mutex::new(Vec::new()),
        }
    }

    /// Resolves `addr` for connection `conn`: at once if it is an IP address and no custom
    /// resolver is set (`Some`), else on a resolver thread, which sends the result to `reply`
    /// and calls `wake` (`None`).
    pub fn resolve(
        &self,
        addr: &str,
        conn: usize,
        attempt: u64,
        reply: &Sender<Resolved>,
        wake: &Arc<dyn Fn() + Send + Sync>,
    ) -> Option<io::Result<Vec<SocketAddr>>> {
        let (host, port) = match split_host_port(addr) {
            Ok(hp) => hp,
            Err(e) => return Some(Err(e)),
        };
        if self.custom.is_none() {
            if let Ok(ip) = host.parse::<std::net::IpAddr>() {
                return Some(Ok(vec![SocketAddr::new(ip, port)]));
            }
        }
        let lookup = Lookup {
            host: host.to_string(),
            port,
            conn,
            attempt,
            reply: reply.clone(),
            wake: wake.clone(),
        };
        let tx = self.tx.lock();
        let Some(tx) = tx.as_ref() else {
            return Some(Err(io::Error::other("producer closed")));
        };
        if self.idle.load(SeqCst) == 0 {
            self.spawn_worker();
        }
        let _ = tx.send(lookup);
        None
    }

    fn spawn_worker(&self) {
        let mut threads = self.threads.lock();
        if threads.len() >= Self::MAX_THREADS {
            return;
        }
        let (rx, idle) = (self.rx.clone(), self.idle.clone());
        let custom = self.custom.clone();
        let n = threads.len();
        let spawned = std::thread::Builder::new()
            .name(format!("kprod-resolve-{n}"))
            .spawn(move || {
                let system = SystemResolver;
                let resolver: &dyn Resolve = custom.as_deref().unwrap_or(&system);
                loop {
                    idle.fetch_add(1, SeqCst);
                    let got = rx.recv();
                    idle.fetch_sub(1, SeqCst);
                    let Ok(l) = got else { break };
                    let started = Instant::now();
                    let result = resolver.resolve(&l.host, l.port).and_then(|a| {
                        if a.is_empty() {
                            Err(io::Error::new(
                                io::ErrorKind::NotFound,
                                format!("{} resolved to no address", l.host),
                            ))
                        } else {
                            Ok(a)
                        }
                    });
                    log::trace!("kprod: resolved {} in {:?}", l.host, started.elapsed());
                    let _ = l.reply.send(Resolved {
                        conn: l.conn,
                        attempt: l.attempt,
                        result,
                    });
                    (l.wake)();
                }
            });
        match spawned {
            Ok(h) => threads.push(h),
            Err(e) => log::error!("kprod: starting a resolver thread: {e}"),
        }
    }

    /// Stops taking lookups and joins the resolver threads (each finishes the lookup it is
    /// in; the system resolver's own timeouts bound that).
    pub fn shutdown(&self) {
        drop(self.tx.lock().take());
        let threads: Vec<_> = self.threads.lock().drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_split() {
        assert_eq!(split_host_port("b1:9092").unwrap(), ("b1", 9092));
        assert_eq!(split_host_port("[::1]:9092").unwrap(), ("::1", 9092));
        assert!(split_host_port("b1").is_err());
        assert!(split_host_port("b1:x").is_err());
    }

    #[test]
    fn ip_addresses_need_no_thread_and_names_are_resolved_on_one() {
        let r = Resolver::new(None);
        let (tx, rx) = unbounded();
        let wake: Arc<dyn Fn() + Send + Sync> = Arc::new(|| {});
        let now = r
            .resolve("127.0.0.1:9092", 0, 1, &tx, &wake)
            .unwrap()
            .unwrap();
        assert_eq!(now, vec!["127.0.0.1:9092".parse().unwrap()]);
        assert!(r.threads.lock().is_empty());
        assert!(r.resolve("localhost:9092", 3, 7, &tx, &wake).is_none());
        let got = rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        assert_eq!((got.conn, got.attempt), (3, 7));
        assert!(got.result.unwrap().iter().all(|a| a.port() == 9092));
        r.shutdown();
        assert!(r.threads.lock().is_empty());
        assert!(r.resolve("localhost:1", 0, 1, &tx, &wake).unwrap().is_err());
    }
}
