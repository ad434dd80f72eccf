//! The connection manager: one state per broker connection (down, connecting, negotiating,
//! authenticating, ready), the connect deadline, reconnect backoff with jitter, the ApiVersions
//! exchange, and moving bytes between the driver and each connection's request matcher —
//! through TLS when the connection has it ([`super::security`]). No socket: opening and closing
//! are [`Command`]s for the driver.

use std::io::ErrorKind;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::security::{Auth, Fail, Tls};
use super::{merge, Command, Ctx, EngineCore};
use crate::connection::{Connection, InFlight};
use crate::engine::idempotence;
use crate::error::{Error, Location};
use crate::metrics::{BrokerGauge, Metrics};
use crate::protocol::messages::add_offsets_to_txn::AddOffsetsToTxnRequest;
use crate::protocol::messages::add_partitions_to_txn::AddPartitionsToTxnRequest;
use crate::protocol::messages::api_versions::ApiVersionsRequest;
use crate::protocol::messages::create_topics::CreateTopicsRequest;
use crate::protocol::messages::end_txn::EndTxnRequest;
use crate::protocol::messages::find_coordinator::FindCoordinatorRequest;
use crate::protocol::messages::init_producer_id::InitProducerIdRequest;
use crate::protocol::messages::metadata::MetadataRequest;
use crate::protocol::messages::produce::ProduceRequest;
use crate::protocol::messages::sasl_authenticate::SaslAuthenticateRequest;
use crate::protocol::messages::sasl_handshake::SaslHandshakeRequest;
use crate::protocol::messages::txn_offset_commit::TxnOffsetCommitRequest;
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
    /// The ApiVersions exchange (behind the TLS handshake, if any).
    Negotiating,
    /// SaslHandshake and SaslAuthenticate.
    Authenticating,
    Ready,
}

/// The versions this connection speaks, from its ApiVersions exchange.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Versions {
    pub produce: i16,
    pub metadata: i16,
    pub init_producer_id: Option<i16>,
    pub sasl_handshake: Option<i16>,
    pub sasl_authenticate: Option<i16>,
    pub create_topics: Option<i16>,
    /// The transaction APIs (`None`: the broker has no transactions).
    pub txn: Option<TxnVersions>,
}

/// The versions of the transaction APIs a broker and kprod share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TxnVersions {
    pub find_coordinator: i16,
    pub add_partitions: i16,
    pub add_offsets: i16,
    pub txn_offset_commit: i16,
    pub end_txn: i16,
    /// The Produce version for transactional batches: v12+ only under transactions v2.
    pub produce: i16,
    /// Transactions v2 (KIP-890): the cluster's `transaction.version` is 2 or more and this
    /// broker speaks Produce v12 and EndTxn v5. Partitions join the transaction by being
    /// produced to (no AddPartitionsToTxn), and every EndTxn hands out the next epoch.
    pub v2: bool,
}

impl TxnVersions {
    /// Settles the v1 or v2 flow: v2 when the cluster enables it and the broker speaks
    /// it; otherwise the versions stay below what v2 means to a broker (Produce v11,
    /// EndTxn v4), as the Java client does.
    fn with_transaction_version(mut self, level: i16) -> TxnVersions {
        self.v2 = level >= 2 && self.produce >= 12 && self.end_txn >= 5;
        if !self.v2 {
            self.produce = self.produce.min(11);
            self.end_txn = self.end_txn.min(4);
        }
        self
    }
}

impl Versions {
    fn negotiate(v: &BrokerVersions) -> Result<Versions, String> {
        let produce = v
            .negotiate(ApiKey::PRODUCE, ProduceRequest::versions())
            .map_err(|e| e.to_string())?;
        Ok(Versions {
            produce,
            metadata: v
                .negotiate(ApiKey::METADATA, MetadataRequest::versions())
                .map_err(|e| e.to_string())?,
            init_producer_id: v
                .negotiate(ApiKey::INIT_PRODUCER_ID, InitProducerIdRequest::versions())
                .ok(),
            sasl_handshake: v
                .negotiate(ApiKey::SASL_HANDSHAKE, SaslHandshakeRequest::versions())
                .ok(),
            sasl_authenticate: v
                .negotiate(
                    ApiKey::SASL_AUTHENTICATE,
                    SaslAuthenticateRequest::versions(),
                )
                .ok(),
            create_topics: v
                .negotiate(ApiKey::CREATE_TOPICS, CreateTopicsRequest::versions())
                .ok(),
            txn: (|| {
                Some(
                    TxnVersions {
                        find_coordinator: v
                            .negotiate(ApiKey::FIND_COORDINATOR, FindCoordinatorRequest::versions())
                            .ok()?,
                        add_partitions: v
                            .negotiate(
                                ApiKey::ADD_PARTITIONS_TO_TXN,
                                AddPartitionsToTxnRequest::versions(),
                            )
                            .ok()?,
                        add_offsets: v
                            .negotiate(
                                ApiKey::ADD_OFFSETS_TO_TXN,
                                AddOffsetsToTxnRequest::versions(),
                            )
                            .ok()?,
                        txn_offset_commit: v
                            .negotiate(
                                ApiKey::TXN_OFFSET_COMMIT,
                                TxnOffsetCommitRequest::versions(),
                            )
                            .ok()?,
                        end_txn: v
                            .negotiate(ApiKey::END_TXN, EndTxnRequest::versions())
                            .ok()?,
                        produce,
                        v2: false,
                    }
                    .with_transaction_version(v.transaction_version()),
                )
            })(),
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
    /// Until ready: when the attempt fails if not done (TCP, TLS, ApiVersions and SASL
    /// together, as the Java client's `socket.connection.setup.timeout.ms`).
    connect_deadline: Option<Instant>,
    /// The TLS session, on a TLS connection that is up (boxed: a rustls session is large, and
    /// the plaintext path walks these structs every turn).
    pub tls: Option<Box<Tls>>,
    /// SASL progress and the re-authentication timer.
    pub auth: Auth,
    /// A quota throttle the broker asked for (KIP-219): no request goes on this connection
    /// before then.
    pub throttled_until: Option<Instant>,
    /// Its requests in flight, as `metrics()` reads them (stored once a turn).
    pub gauge: Arc<BrokerGauge>,
}

impl BrokerConn {
    /// Whether the socket is up and bytes move (negotiating, authenticating or ready).
    pub fn is_open(&self) -> bool {
        matches!(
            self.state,
            State::Negotiating | State::Authenticating | State::Ready
        )
    }

    /// Whether a request may be sent now: ready, not re-authenticating, not throttled, room
    /// in flight.
    pub fn accepts_requests(&self) -> bool {
        self.state == State::Ready
            && !self.auth.reauthenticating
            && self.throttled_until.is_none()
            && self.conn.can_send()
    }

    /// The broker asked this connection to hold back for `ms` (a response's
    /// `throttle_time_ms`, KIP-219; from brokers that delay the response themselves, i.e.
    /// Produce before v6, the caller passes nothing).
    pub fn throttle(&mut self, now: Instant, ms: i32) {
        if ms > 0 {
            let until = now + Duration::from_millis(ms as u64);
            self.throttled_until = Some(self.throttled_until.map_or(until, |t| t.max(until)));
        }
    }
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
            tls: None,
            auth: Auth::default(),
            throttled_until: None,
            gauge: self.shared.metrics.broker_gauge(broker),
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
        if c.broker >= 0 {
            // The address metadata gives now: a broker that moved (new host or port,
            // learned from a re-bootstrap) is reached where it is.
            if let Some(a) = self.shared.brokers.load().get(&c.broker) {
                if *a != c.addr {
                    log::info!("kprod: broker {} is now at {a} (was {})", c.broker, c.addr);
                    c.addr = a.clone();
                }
            }
        }
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
        c.auth = Auth::default();
        // TLS: the handshake starts now; the ApiVersions request below waits in the session
        // and goes once it is done.
        if let Some(config) = &self.shared.tls {
            match Tls::new(config.clone(), &c.addr) {
                Ok(t) => c.tls = Some(Box::new(t)),
                Err(e) => return self.security_failed(conn, now, e),
            }
        }
        let c = self.conns[conn].as_mut().expect("live conn");
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
        if let Some(e) = self.closed_in_handshake(conn, why) {
            return self.security_failed(conn, now, e);
        }
        if self
            .conns
            .get(conn)
            .and_then(Option::as_ref)
            .is_some_and(|c| c.state != State::Down)
        {
            self.fail_conn(conn, now, Some(why.to_string()));
        }
    }

    /// Bytes to write on `conn` (empty: nothing, or not connected yet): the requests queued,
    /// encrypted first on a TLS connection.
    pub fn transmit(&mut self, conn: usize) -> &[u8] {
        match self.conns.get_mut(conn).and_then(Option::as_mut) {
            Some(c) if c.is_open() => match &mut c.tls {
                Some(tls) => tls.transmit(&mut c.conn),
                None => c.conn.transmit(),
            },
            _ => &[],
        }
    }

    /// The driver wrote `n` bytes of [`transmit`](Self::transmit) at `now`.
    pub fn consumed(&mut self, conn: usize, n: usize, now: Instant) {
        if let Some(c) = self.conns.get_mut(conn).and_then(Option::as_mut) {
            match &mut c.tls {
                Some(tls) => tls.consumed(n),
                None => c.conn.consumed(n),
            }
            c.conn.written(now);
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
            if !c.is_open() {
                return;
            }
            match &mut c.tls {
                Some(tls) => {
                    if let Err(f) = tls.received(data, &mut c.conn) {
                        failure = Some(f);
                    }
                }
                None => c.conn.received(data),
            }
            while failure.is_none() {
                match c.conn.poll_response() {
                    Ok(Some(r)) => responses.push(r),
                    Ok(None) => break,
                    Err(e) => failure = Some(Fail::Conn(e.to_string())),
                }
            }
            // A TLS record (alert or handshake, version 3.x) where a Kafka answer should be:
            // the listener wants TLS and this connection does not speak it.
            if c.tls.is_none()
                && c.state == State::Negotiating
                && matches!(data, [0x15 | 0x16, 0x03, ..])
                && matches!(failure, Some(Fail::Conn(_)))
            {
                failure = Some(Fail::Security(Error::Tls {
                    broker: c.addr.clone(),
                    kind: crate::tls::TlsFailure::Other,
                    message: "the broker answered in TLS: use security.protocol SSL or SASL_SSL"
                        .into(),
                    at: Location::default(),
                }));
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
            let why = f.to_string();
            for (inflight, _) in responses {
                self.lost(inflight.context, &addr, &why, now);
            }
            match f {
                Fail::Conn(why) => self.fail_conn(conn, now, Some(why)),
                Fail::Security(e) => self.security_failed(conn, now, e),
            }
        }
    }

    fn on_response(
        &mut self,
        i: usize,
        inflight: InFlight<Ctx>,
        frame: &[u8],
        now: Instant,
    ) -> Result<(), Fail> {
        let version = inflight.version;
        match inflight.context {
            Ctx::ApiVersions => self.on_api_versions(i, frame, now),
            Ctx::SaslHandshake => self.on_sasl_handshake(i, frame, version, now),
            Ctx::SaslAuthenticate => self.on_sasl_authenticate(i, frame, version, now),
            Ctx::Metadata => self.on_metadata(frame, version, now).map_err(Fail::Conn),
            Ctx::InitProducerId => self
                .on_init_producer_id(frame, version, now)
                .map_err(Fail::Conn),
            Ctx::CreateTopics(reply) => {
                self.on_create_topics(frame, version, reply);
                Ok(())
            }
            Ctx::Txn(step) => self.on_txn(step, frame, version, now).map_err(Fail::Conn),
            Ctx::Produce(mut batches) => {
                let broker = self.conns[i].as_ref().map_or(-1, |c| c.broker);
                self.shared
                    .metrics
                    .request_latency(broker, now.saturating_duration_since(inflight.sent_at));
                let written = inflight.written_at.unwrap_or(inflight.sent_at);
                for s in batches.iter_mut().filter_map(|(_, b)| b.stages.as_mut()) {
                    s.written = Some(written);
                }
                self.on_produce(i, batches, frame, version, now)
                    .map_err(Fail::Conn)
            }
        }
    }

    fn on_api_versions(&mut self, i: usize, frame: &[u8], now: Instant) -> Result<(), Fail> {
        let c = self.conns[i].as_mut().expect("live conn");
        match c.exchange.on_response(frame) {
            Step::AskAgain(v) => c
                .conn
                .send(&ApiVersionsRequest::kprod(), v, true, now, Ctx::ApiVersions)
                .map(|_| ())
                .map_err(|e| Fail::Conn(e.to_string())),
            Step::Failed(why) => Err(Fail::Conn(why)),
            Step::Done(v) => {
                c.versions = Some(Versions::negotiate(&v)?);
                if self.shared.config.security.sasl.is_some() {
                    c.state = State::Authenticating;
                    self.start_authentication(i, now)
                } else {
                    self.became_ready(i);
                    Ok(())
                }
            }
        }
    }

    /// Connection `i` is set up (connected, negotiated, authenticated): requests may go.
    pub(super) fn became_ready(&mut self, i: usize) {
        let c = self.conns[i].as_mut().expect("live conn");
        c.state = State::Ready;
        c.connect_deadline = None;
        // The backoff resets only here: a connection that fails at TLS or SASL every time
        // keeps backing off longer, as one that cannot connect does.
        c.backoff = self.shared.config.retry_backoff;
        if self.control.conn == Some(i) {
            self.control.backoff = self.shared.config.retry_backoff;
        }
        *self.shared.security_failure.lock() = None;
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
        c.tls = None;
        c.auth = Auth::default();
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
        } else if self.conns[i].as_ref().is_some_and(|c| c.broker >= 0) {
            // A broker's connection failed: it may have moved or gone (as the Java client,
            // ask where things are now; the answer may name a new address or leader).
            self.shared.request_metadata();
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
            Ctx::CreateTopics(reply) => {
                // The caller learns it; whether the broker created the topics is unknown.
                let _ = reply.send(Err(Error::Io {
                    broker: addr.to_string(),
                    source: Arc::new(std::io::Error::new(
                        ErrorKind::ConnectionAborted,
                        why.to_string(),
                    )),
                    at: Location::default(),
                }));
            }
            Ctx::Txn(step) => self.txn_lost(step, now),
            Ctx::ApiVersions | Ctx::SaslHandshake | Ctx::SaslAuthenticate => {}
        }
    }

    /// Request timeouts, connect deadlines and reconnect timers. Returns the next one.
    /// Lifts the throttles that have run out; returns when the next one does.
    pub(super) fn lift_throttles(&mut self, now: Instant) -> Option<Instant> {
        let mut next = None;
        for c in self.conns.iter_mut().flatten() {
            match c.throttled_until {
                Some(t) if now >= t => c.throttled_until = None,
                Some(t) => merge(&mut next, Some(t)),
                None => {}
            }
        }
        next
    }

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
            merge(&mut next, self.check_reauthentication(i, now));
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::TxnVersions;

    fn offered() -> TxnVersions {
        TxnVersions {
            find_coordinator: 4,
            add_partitions: 3,
            add_offsets: 4,
            txn_offset_commit: 4,
            end_txn: 5,
            produce: 12,
            v2: false,
        }
    }

    #[test]
    fn transactions_v2_only_when_the_cluster_enables_it_and_the_broker_speaks_it() {
        let v2 = offered().with_transaction_version(2);
        assert!(v2.v2);
        assert_eq!((v2.produce, v2.end_txn), (12, 5));
        for level in [0, 1] {
            let v1 = offered().with_transaction_version(level);
            assert!(!v1.v2, "level {level}");
            assert_eq!((v1.produce, v1.end_txn), (11, 4), "level {level}");
        }
        // Enabled, but this broker is older: v1, and below v2's versions.
        let old = TxnVersions {
            end_txn: 4,
            ..offered()
        }
        .with_transaction_version(2);
        assert!(!old.v2);
        assert_eq!((old.produce, old.end_txn), (11, 4));
    }
}
