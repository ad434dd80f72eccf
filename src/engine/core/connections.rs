//! The connection manager: one state per broker connection (down, connecting, negotiating,
//! ready), the connect deadline, reconnect backoff with jitter, the ApiVersions exchange, and
//! moving bytes between the driver and each connection's request matcher. No socket: opening
//! and closing are [`Command`]s for the driver.

use std::io::ErrorKind;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{merge, Command, Ctx, EngineCore};
use crate::connection::{Connection, InFlight};
use crate::engine::idempotence;
use crate::error::{Error, Location};
use crate::metrics::Metrics;
use crate::protocol::messages::api_versions::ApiVersionsRequest;
use crate::protocol::messages::init_producer_id::InitProducerIdRequest;
use crate::protocol::messages::metadata::MetadataRequest;
use crate::protocol::messages::produce::ProduceRequest;
use crate::protocol::messages::Request;
use crate::protocol::negotiation::{ApiVersionsExchange, Step};
use crate::protocol::{ApiKey, BrokerVersions};

/// Largest response frame accepted (a Kafka broker's `socket.request.max.bytes` is 100 MiB;
/// Fetch-sized answers never come to a producer).
pub(crate) const MAX_FRAME: usize = 100 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    Down,
    /// Resolving and connecting (the driver's job), until the connect deadline.
    Connecting,
    Negotiating,
    Ready,
}

/// The versions this connection speaks, from its ApiVersions exchange.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Versions {
    pub produce: i16,
    pub metadata: i16,
    pub init_producer_id: Option<i16>,
}

impl Versions {
    fn negotiate(v: &BrokerVersions) -> Result<Versions, String> {
        Ok(Versions {
            produce: v
                .negotiate(ApiKey::PRODUCE, ProduceRequest::versions())
                .map_err(|e| e.to_string())?,
            metadata: v
                .negotiate(ApiKey::METADATA, MetadataRequest::versions())
                .map_err(|e| e.to_string())?,
            init_producer_id: v
                .negotiate(ApiKey::INIT_PRODUCER_ID, InitProducerIdRequest::versions())
                .ok(),
        })
    }
}

pub(crate) struct BrokerConn {
    /// Broker id, or -1 for a bootstrap address.
    pub broker: i32,
    pub addr: String,
    pub state: State,
    pub conn: Connection<Ctx>,
    pub versions: Option<Versions>,
    exchange: ApiVersionsExchange,
    backoff: Duration,
    pub retry_at: Option<Instant>,
    /// While connecting: when the attempt fails if not done.
    connect_deadline: Option<Instant>,
}

impl EngineCore {
    /// The connection to `broker`, connecting if needed (None while backing off).
    pub(super) fn broker_conn(&mut self, broker: i32, now: Instant) -> Option<usize> {
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

    pub(super) fn add_conn(&mut self, broker: i32, addr: String) -> usize {
        let cfg = &self.shared.config;
        let c = BrokerConn {
            broker,
            addr,
            state: State::Down,
            conn: Connection::new(
                Some(&cfg.client_id),
                cfg.max_in_flight,
                cfg.request_timeout,
                MAX_FRAME,
            ),
            versions: None,
            exchange: ApiVersionsExchange::new(),
            backoff: cfg.retry_backoff,
            retry_at: None,
            connect_deadline: None,
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

    /// Asks the driver to open connection `i`.
    pub(super) fn connect(&mut self, i: usize, now: Instant) {
        let setup = self.shared.config.connection_setup_timeout;
        let c = self.conns[i].as_mut().expect("live conn");
        c.state = State::Connecting;
        c.connect_deadline = Some(now + setup);
        c.exchange = ApiVersionsExchange::new();
        self.commands.push_back(Command::Connect {
            conn: i,
            addr: c.addr.clone(),
        });
    }

    /// The driver connected `conn`: the ApiVersions exchange starts.
    pub fn handle_connected(&mut self, conn: usize, now: Instant) {
        let Some(c) = self.conns.get_mut(conn).and_then(Option::as_mut) else {
            return;
        };
        if c.state != State::Connecting {
            return;
        }
        Metrics::add(&self.shared.metrics.connects, 1);
        c.state = State::Negotiating;
        c.connect_deadline = None;
        let v = c.exchange.version();
        if let Err(e) = c
            .conn
            .send(&ApiVersionsRequest::kprod(), v, true, now, Ctx::ApiVersions)
        {
            self.fail_conn(conn, now, Some(e.to_string()));
        }
    }

    /// The driver could not connect `conn` (every address it resolved to failed, or none).
    pub fn handle_connect_failed(&mut self, conn: usize, why: &str, now: Instant) {
        let Some(c) = self.conns.get(conn).and_then(Option::as_ref) else {
            return;
        };
        if c.state != State::Connecting {
            return;
        }
        log::warn!("kprod: connect to {}: {why}", c.addr);
        self.fail_conn(conn, now, Some(why.to_string()));
    }

    /// The socket of `conn` is gone (read or write error, end of stream).
    pub fn handle_closed(&mut self, conn: usize, why: &str, now: Instant) {
        if self
            .conns
            .get(conn)
            .and_then(Option::as_ref)
            .is_some_and(|c| c.state != State::Down)
        {
            self.fail_conn(conn, now, Some(why.to_string()));
        }
    }

    /// Bytes to write on `conn` (empty: nothing, or not connected yet).
    pub fn transmit(&self, conn: usize) -> &[u8] {
        match self.conns.get(conn).and_then(Option::as_ref) {
            Some(c) if matches!(c.state, State::Negotiating | State::Ready) => c.conn.transmit(),
            _ => &[],
        }
    }

    /// The driver wrote `n` bytes of [`transmit`](Self::transmit).
    pub fn consumed(&mut self, conn: usize, n: usize) {
        if let Some(c) = self.conns.get_mut(conn).and_then(Option::as_mut) {
            c.conn.consumed(n);
        }
    }

    /// Bytes read from `conn`: whole answers are matched to their requests and handled.
    pub fn handle_received(&mut self, conn: usize, data: &[u8], now: Instant) {
        let mut responses = Vec::new();
        let mut failure = None;
        {
            let Some(c) = self.conns.get_mut(conn).and_then(Option::as_mut) else {
                return;
            };
            if !matches!(c.state, State::Negotiating | State::Ready) {
                return;
            }
            c.conn.received(data);
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
        let mut responses = responses.into_iter();
        for (inflight, frame) in responses.by_ref() {
            if let Err(e) = self.on_response(conn, inflight, &frame, now) {
                failure = Some(e);
                break;
            }
        }
        if let Some(f) = failure {
            // Answers read after the one that failed go with the connection's unanswered
            // requests: back in line (nothing is dropped uncounted).
            let addr = self.conns[conn]
                .as_ref()
                .map_or(String::new(), |c| c.addr.clone());
            for (inflight, _) in responses {
                self.lost(inflight.context, &addr, &f, now);
            }
            self.fail_conn(conn, now, Some(f));
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
        match inflight.context {
            Ctx::ApiVersions => self.on_api_versions(i, frame, now),
            Ctx::Metadata => self.on_metadata(frame, version, now),
            Ctx::InitProducerId => self.on_init_producer_id(frame, version, now),
            Ctx::Produce(batches) => {
                let broker = self.conns[i].as_ref().map_or(-1, |c| c.broker);
                self.shared
                    .metrics
                    .request_latency(broker, now.saturating_duration_since(inflight.sent_at));
                self.on_produce(i, batches, frame, version, now)
            }
        }
    }

    fn on_api_versions(&mut self, i: usize, frame: &[u8], now: Instant) -> Result<(), String> {
        let c = self.conns[i].as_mut().expect("live conn");
        match c.exchange.on_response(frame) {
            Step::AskAgain(v) => c
                .conn
                .send(&ApiVersionsRequest::kprod(), v, true, now, Ctx::ApiVersions)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Step::Failed(why) => Err(why),
            Step::Done(v) => {
                c.versions = Some(Versions::negotiate(&v)?);
                c.state = State::Ready;
                c.backoff = self.shared.config.retry_backoff;
                if self.control.conn == Some(i) {
                    self.control.backoff = self.shared.config.retry_backoff;
                }
                Ok(())
            }
        }
    }

    /// Closes connection `i` and puts its requests' batches back in line.
    pub(super) fn fail_conn(&mut self, i: usize, now: Instant, why: Option<String>) {
        let Some(c) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        if c.state != State::Down {
            self.commands.push_back(Command::Close { conn: i });
            if c.state != State::Connecting {
                Metrics::add(&self.shared.metrics.disconnects, 1);
            }
        }
        if let Some(w) = &why {
            log::debug!("kprod: connection to {} lost: {w}", c.addr);
        }
        c.state = State::Down;
        c.versions = None;
        c.connect_deadline = None;
        let backoff = c.backoff;
        c.backoff = (c.backoff * 2).min(self.shared.config.retry_backoff_max);
        let addr = c.addr.clone();
        let lost = c.conn.fail_all();
        let wait = self.jitter(backoff);
        self.conns[i].as_mut().expect("live conn").retry_at = Some(now + wait);
        let why = why.unwrap_or_else(|| "connection lost".into());
        for f in lost {
            self.lost(f.context, &addr, &why, now);
        }
        if self.control.conn == Some(i) {
            self.control_conn_failed(i, now);
        }
    }

    /// A request sent on a connection that failed, whose answer will not come: its batches
    /// go back in line (the broker may have them), other requests are forgotten.
    pub(super) fn lost(&mut self, ctx: Ctx, addr: &str, why: &str, now: Instant) {
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
                    b.maybe_written |= idempotence::UNANSWERED.maybe_written;
                    self.retry_or_fail(&p, b, err.clone(), now);
                }
            }
            Ctx::Metadata => self.control.metadata_in_flight = false,
            Ctx::InitProducerId => self.control.pid_in_flight = false,
            Ctx::ApiVersions => {}
        }
    }

    /// Request timeouts, connect deadlines and reconnect timers. Returns the next one.
    pub(super) fn check_connections(&mut self, now: Instant) -> Option<Instant> {
        let mut next = None;
        for i in 0..self.conns.len() {
            let Some(c) = self.conns[i].as_ref() else {
                continue;
            };
            if c.conn.timed_out(now) {
                self.fail_conn(i, now, Some("request timed out".into()));
                continue;
            }
            if let Some(d) = c.connect_deadline {
                if now >= d {
                    let why = format!(
                        "connection setup timed out after {:?}",
                        self.shared.config.connection_setup_timeout
                    );
                    self.fail_conn(i, now, Some(why));
                    continue;
                }
                merge(&mut next, Some(d));
            }
            merge(&mut next, c.conn.poll_timeout());
        }
        next
    }
}
