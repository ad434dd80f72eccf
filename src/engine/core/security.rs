//! A connection's security, without the socket: the TLS session and the SASL exchange.
//!
//! - **TLS** ([`Tls`]): rustls is sans-IO like the core. Bytes the driver read go into the
//!   session, plaintext comes out into the connection's request matcher; the matcher's queued
//!   requests go into the session, and the driver writes the ciphertext that comes out. The
//!   handshake starts when the socket connects; the ApiVersions request waits in the session
//!   and leaves once it is done.
//! - **SASL** ([`Auth`]): after ApiVersions, SaslHandshake names the mechanism, then
//!   SaslAuthenticate requests carry the mechanism's tokens ([`crate::sasl`]) until it is done;
//!   only then is the connection ready. With a session lifetime from the broker (KIP-368,
//!   SaslAuthenticate v1+), the connection re-authenticates at 85–95% of it: no new request is
//!   sent meanwhile, requests already in flight are answered first (a broker answers in order),
//!   so nothing is dropped or reordered.
//!
//! A TLS or SASL failure is a typed, non-retriable [`Error`] ([`Error::Tls`],
//! [`Error::Authentication`]): the connection closes and backs off like any broken one, and
//! the failure is what records waiting for this connection fail with at their deadline.

use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;
use std::time::Instant;

use super::{Ctx, EngineCore};
use crate::connection::Connection;
use crate::error::{Error, Location};
use crate::metrics::Metrics;
use crate::protocol::messages::sasl_authenticate::SaslAuthenticateRequest;
use crate::protocol::messages::sasl_handshake::SaslHandshakeRequest;
use crate::protocol::messages::Request;
use crate::protocol::{decode_response, ErrorCode};
use crate::sasl::{Exchange, Step};
use crate::tls::{classify, server_name, TlsFailure};

/// Ciphertext gathered per [`Tls::transmit`] before the driver writes it.
const MAX_TLS_OUT: usize = 256 * 1024;

/// Why a connection must close.
#[derive(Debug)]
pub(crate) enum Fail {
    /// Broken (a corrupt stream, an unexpected answer): reconnect after the backoff.
    Conn(String),
    /// TLS or SASL refused: the same, and the error is kept for the records waiting.
    Security(Error),
}

impl From<String> for Fail {
    fn from(s: String) -> Self {
        Fail::Conn(s)
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fail::Conn(s) => f.write_str(s),
            Fail::Security(e) => e.fmt(f),
        }
    }
}

fn tls_error(addr: &str, kind: TlsFailure, message: String) -> Error {
    Error::Tls {
        broker: addr.to_string(),
        kind,
        message,
        at: Location::default(),
    }
}

/// One connection's TLS session.
pub(crate) struct Tls {
    session: rustls::ClientConnection,
    addr: String,
    /// Ciphertext for the socket, and how much of it the socket has taken.
    out: Vec<u8>,
    pos: usize,
}

impl Tls {
    /// A session to `addr` (its host is the name checked and sent as SNI).
    pub fn new(config: Arc<rustls::ClientConfig>, addr: &str) -> Result<Tls, Error> {
        let name = server_name(addr).map_err(|why| tls_error(addr, TlsFailure::Other, why))?;
        let session = rustls::ClientConnection::new(config, name)
            .map_err(|e| tls_error(addr, classify(&e), e.to_string()))?;
        Ok(Tls {
            session,
            addr: addr.to_string(),
            out: Vec::new(),
            pos: 0,
        })
    }

    /// Whether the handshake is still going on.
    pub fn is_handshaking(&self) -> bool {
        self.session.is_handshaking()
    }

    /// Moves `conn`'s queued requests into the session and returns the ciphertext to write.
    pub fn transmit(&mut self, conn: &mut Connection<Ctx>) -> &[u8] {
        if self.pos == self.out.len() {
            self.out.clear();
            self.pos = 0;
        }
        while self.out.len() < MAX_TLS_OUT {
            let plain = conn.transmit();
            if !plain.is_empty() {
                // The session takes what its buffer allows (all of it but for very large
                // requests, which go over several turns).
                if let Ok(n) = self.session.writer().write(plain) {
                    conn.consumed(n);
                }
            }
            if !self.session.wants_write() {
                break;
            }
            // Writing to a Vec cannot fail.
            let _ = self.session.write_tls(&mut self.out);
        }
        &self.out[self.pos..]
    }

    /// The socket took `n` bytes of [`transmit`](Self::transmit).
    pub fn consumed(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.out.len());
    }

    /// Bytes read from the socket: plaintext goes to `conn`.
    pub fn received(&mut self, data: &[u8], conn: &mut Connection<Ctx>) -> Result<(), Fail> {
        let mut rest = data;
        let mut plain = [0u8; 16 * 1024];
        while !rest.is_empty() {
            self.session
                .read_tls(&mut rest)
                .map_err(|e| Fail::Conn(format!("TLS: {e}")))?;
            let state = self
                .session
                .process_new_packets()
                .map_err(|e| Fail::Security(tls_error(&self.addr, classify(&e), e.to_string())))?;
            let closed = state.peer_has_closed();
            loop {
                match self.session.reader().read(&mut plain) {
                    Ok(0) => break,
                    Ok(n) => conn.received(&plain[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Err(Fail::Conn(format!("TLS: {e}"))),
                }
            }
            if closed {
                return Err(Fail::Conn("the broker closed the TLS session".into()));
            }
        }
        Ok(())
    }
}

/// SASL progress on one connection.
#[derive(Debug, Default)]
pub(crate) struct Auth {
    exchange: Option<Box<Exchange>>,
    /// When to re-authenticate, on an authenticated connection whose broker gave a session
    /// lifetime.
    reauth_at: Option<Instant>,
    /// Re-authenticating: no other request goes until it is done.
    pub reauthenticating: bool,
}

impl EngineCore {
    fn mechanism(&self) -> &'static str {
        self.shared
            .config
            .security
            .sasl
            .as_ref()
            .map_or("SASL", |s| s.mechanism.name())
    }

    fn auth_error(&self, i: usize, message: String) -> Error {
        let mechanism = self.mechanism();
        Error::Authentication {
            broker: self.conns[i]
                .as_ref()
                .map_or(String::new(), |c| c.addr.clone()),
            mechanism,
            message,
            at: Location::default(),
        }
    }

    /// Connection `i` negotiated versions (or its session is due for renewal): SaslHandshake.
    pub(super) fn start_authentication(&mut self, i: usize, now: Instant) -> Result<(), Fail> {
        let sasl = self
            .shared
            .config
            .security
            .sasl
            .as_ref()
            .expect("authentication is configured");
        let token = match &self.shared.tokens {
            Some(t) => match t.current() {
                Ok(t) => Some(t),
                Err(why) => return Err(Fail::Security(self.auth_error(i, why))),
            },
            None => None,
        };
        let exchange = sasl
            .exchange(token)
            .map_err(|why| Fail::Security(self.auth_error(i, why)))?;
        let mechanism = sasl.mechanism.name().to_string();
        let c = self.conns[i].as_mut().expect("live conn");
        let version = c
            .versions
            .and_then(|v| v.sasl_handshake)
            .filter(|&v| v >= 1);
        let Some(version) = version else {
            let why = "the broker does not offer SaslHandshake v1 (Kafka 1.0 or later)".into();
            return Err(Fail::Security(self.auth_error(i, why)));
        };
        c.auth.exchange = Some(Box::new(exchange));
        let req = SaslHandshakeRequest { mechanism };
        self.queue_sasl(i, &req, version, Ctx::SaslHandshake, now)
    }

    /// Queues a SASL request on connection `i`.
    fn queue_sasl<R: Request>(
        &mut self,
        i: usize,
        req: &R,
        version: i16,
        ctx: Ctx,
        now: Instant,
    ) -> Result<(), Fail> {
        let c = self.conns[i].as_mut().expect("live conn");
        c.conn
            .send(req, version, true, now, ctx)
            .map(|_| ())
            .map_err(|e| Fail::Conn(e.to_string()))
    }

    pub(super) fn on_sasl_handshake(
        &mut self,
        i: usize,
        frame: &[u8],
        version: i16,
        now: Instant,
    ) -> Result<(), Fail> {
        let (_, r) = decode_response::<SaslHandshakeRequest>(frame, version)
            .map_err(|e| Fail::Conn(format!("SaslHandshake response: {e}")))?;
        if r.error_code != 0 {
            let why = format!(
                "the broker does not enable {} ({}); it enables: {}",
                self.mechanism(),
                ErrorCode(r.error_code).name(),
                if r.mechanisms.is_empty() {
                    "none".to_string()
                } else {
                    r.mechanisms.join(", ")
                }
            );
            return Err(Fail::Security(self.auth_error(i, why)));
        }
        let c = self.conns[i].as_mut().expect("live conn");
        let token = c.auth.exchange.as_mut().expect("exchange started").start();
        self.send_token(i, token, now)
    }

    fn send_token(&mut self, i: usize, token: Vec<u8>, now: Instant) -> Result<(), Fail> {
        let c = self.conns[i].as_mut().expect("live conn");
        let Some(version) = c.versions.and_then(|v| v.sasl_authenticate) else {
            let why = "the broker does not offer SaslAuthenticate (Kafka 1.0 or later)".into();
            return Err(Fail::Security(self.auth_error(i, why)));
        };
        let req = SaslAuthenticateRequest {
            auth_bytes: token.into(),
        };
        self.queue_sasl(i, &req, version, Ctx::SaslAuthenticate, now)
    }

    pub(super) fn on_sasl_authenticate(
        &mut self,
        i: usize,
        frame: &[u8],
        version: i16,
        now: Instant,
    ) -> Result<(), Fail> {
        let (_, r) = decode_response::<SaslAuthenticateRequest>(frame, version)
            .map_err(|e| Fail::Conn(format!("SaslAuthenticate response: {e}")))?;
        if r.error_code != 0 {
            let code = ErrorCode(r.error_code);
            let why = match r.error_message.filter(|m| !m.is_empty()) {
                Some(m) => format!("{} ({})", m, code.name()),
                None => format!("{} ({})", code.description(), code.name()),
            };
            return Err(Fail::Security(self.auth_error(i, why)));
        }
        let c = self.conns[i].as_mut().expect("live conn");
        let step = c
            .auth
            .exchange
            .as_mut()
            .ok_or_else(|| Fail::Conn("SaslAuthenticate answer with no exchange".into()))?
            .step(&r.auth_bytes);
        match step {
            Ok(Step::Send(token)) => self.send_token(i, token, now),
            Ok(Step::Done) => {
                let lifetime = u64::try_from(r.session_lifetime_ms).unwrap_or(0);
                // Java's choice: renew at a random 85–95% of the lifetime, so that a
                // client's connections do not all renew at once.
                let share = 850 + self.random() % 101;
                let c = self.conns[i].as_mut().expect("live conn");
                c.auth.exchange = None;
                c.auth.reauth_at = (lifetime > 0)
                    .then(|| now + std::time::Duration::from_millis(lifetime * share / 1000));
                if c.auth.reauthenticating {
                    c.auth.reauthenticating = false;
                    Metrics::add(&self.shared.metrics.reauthentications, 1);
                } else {
                    Metrics::add(&self.shared.metrics.authentications, 1);
                    self.became_ready(i);
                }
                Ok(())
            }
            Err(e) => Err(Fail::Security(self.auth_error(i, e.to_string()))),
        }
    }

    /// Starts re-authenticating connection `i` if its session is due; returns when it will be.
    pub(super) fn check_reauthentication(&mut self, i: usize, now: Instant) -> Option<Instant> {
        let c = self.conns.get_mut(i)?.as_mut()?;
        if c.state != super::connections::State::Ready || c.auth.reauthenticating {
            return None;
        }
        let at = c.auth.reauth_at?;
        if now < at {
            return Some(at);
        }
        c.auth.reauth_at = None;
        c.auth.reauthenticating = true;
        match self.start_authentication(i, now) {
            Ok(()) => {}
            Err(Fail::Conn(why)) => self.fail_conn(i, now, Some(why)),
            Err(Fail::Security(e)) => self.security_failed(i, now, e),
        }
        None
    }

    /// Connection `i` failed at TLS or SASL: counted, logged once per distinct failure, kept
    /// for the records waiting, and the connection closes and backs off.
    pub(super) fn security_failed(&mut self, i: usize, now: Instant, e: Error) {
        let counter = match e {
            Error::Tls { .. } => &self.shared.metrics.tls_failures,
            _ => &self.shared.metrics.authentication_failures,
        };
        Metrics::add(counter, 1);
        {
            let mut kept = self.shared.security_failure.lock();
            if kept.as_ref().map(ToString::to_string) != Some(e.to_string()) {
                log::warn!("kprod: {e}");
            }
            *kept = Some(e.clone());
        }
        self.fail_conn(i, now, Some(e.to_string()));
    }

    /// The socket of a TLS connection closed during the handshake: the broker refused it.
    pub(super) fn closed_in_handshake(&self, i: usize, why: &str) -> Option<Error> {
        let c = self.conns.get(i)?.as_ref()?;
        let tls = c.tls.as_ref()?;
        tls.is_handshaking().then(|| {
            tls_error(
                &c.addr,
                TlsFailure::Refused,
                format!("the connection closed during the handshake ({why})"),
            )
        })
    }
}
