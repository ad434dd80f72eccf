//! The control plane, on thread 0: when to ask for metadata, the producer id and epoch bumps,
//! and which address to ask (known brokers and bootstrap addresses in turn).

use std::sync::atomic::Ordering::*;
use std::time::{Duration, Instant};

use super::connections::State;
use super::{merge, Ctx, EngineCore};
use crate::engine::batch::ProducerIds;
use crate::engine::producer_id::{self, PidDecision};
use crate::metrics::Metrics;
use crate::protocol::messages::init_producer_id::InitProducerIdRequest;
use crate::protocol::messages::metadata::MetadataRequest;
use crate::protocol::messages::Request;
use crate::protocol::{decode_response_lenient, DecodeError, ErrorCode};

/// Where a thread sends Metadata and InitProducerId.
#[derive(Debug, Default)]
pub(crate) struct Control {
    pub conn: Option<usize>,
    /// Next bootstrap address to try.
    next_bootstrap: usize,
    pub metadata_in_flight: bool,
    next_metadata: Option<Instant>,
    pub pid_in_flight: bool,
    pid_retry_at: Option<Instant>,
    /// The next wait after a retriable InitProducerId error (doubles up to the maximum).
    pid_backoff: Duration,
    /// The InitProducerId in flight is an epoch bump.
    bumping: bool,
    /// A bump with the current id and epoch was refused: ask for a new id instead.
    bump_fresh: bool,
    /// After a control connection fails: not before this, and the next backoff.
    pub retry_at: Option<Instant>,
    pub backoff: Duration,
    /// Since when metadata has been wanted without an answer (the rebootstrap trigger).
    metadata_wanted_since: Option<Instant>,
    /// Asking `bootstrap_servers` again, not the known brokers, until metadata comes
    /// (KIP-899).
    pub rebootstrapping: bool,
    /// The control connection a re-bootstrap left, to close.
    abandoned: Option<usize>,
}

impl EngineCore {
    /// Thread 0: metadata, the producer id, and records waiting for metadata.
    pub(super) fn control_duties(&mut self, now: Instant) -> Option<Instant> {
        let mut next = None;
        self.close_abandoned(now);
        // A transactional producer's InitProducerId goes to its coordinator (`super::txn`).
        let may_ask = self.shared.config.idempotence
            && self.shared.txn.is_none()
            && !self.shared.fatal.load(SeqCst)
            && !self.control.pid_in_flight
            && self.control.pid_retry_at.is_none_or(|t| now >= t);
        let st = self.shared.producer.get();
        let bump = may_ask && st.ready && st.bump_wanted && self.all_settled();
        let want_pid = may_ask && (!st.ready || bump);
        let wanted = self.shared.metadata_wanted.load(SeqCst);
        let due = self.control.next_metadata.is_none_or(|t| now >= t);
        // A transactional producer may need the brokers before it has topics (to reach its
        // coordinator): then a refresh asked for goes with no topics.
        let want_meta = !self.control.metadata_in_flight
            && (wanted || due)
            && (!self.shared.topics.load().is_empty() || (wanted && self.shared.txn.is_some()));
        let want_admin = self.shared.admin_wanted.load(SeqCst);
        if want_admin {
            if let Some(i) = self.control_conn(now) {
                self.send_admin(i, now);
            }
        }
        if want_meta {
            // KIP-899: no known broker has given metadata for the trigger's time: start again
            // from the bootstrap servers.
            let since = *self.control.metadata_wanted_since.get_or_insert(now);
            let cfg = &self.shared.config;
            if cfg.metadata_rebootstrap && !self.control.rebootstrapping {
                let at = since + cfg.metadata_rebootstrap_trigger;
                if now >= at && !self.shared.brokers.load().is_empty() {
                    self.rebootstrap("no known broker gave metadata for the trigger's time");
                } else {
                    merge(&mut next, Some(at));
                }
            }
        }
        if want_pid || want_meta {
            if let Some(i) = self.control_conn(now) {
                let c = self.conns[i].as_mut().expect("live conn");
                if c.state == State::Ready && !c.auth.reauthenticating {
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
                                let ids = st.ids;
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
        if self.shared.producer.get().bump_wanted && !self.control.pid_in_flight {
            // Partitions settle on other threads: look again soon (rare, and short-lived).
            merge(&mut next, Some(now + Duration::from_millis(5)));
        }
        if want_pid || want_meta || want_admin {
            merge(&mut next, self.control.retry_at);
        }
        // What is due and still not done waits on something that wakes this thread by itself:
        // the answer in flight, the control connection's readiness. Counted, a refresh due
        // while its request was in flight kept thread 0 turning without a pause until the
        // answer came (found by the simulation).
        let mut next = next.filter(|&t| t > now);
        let mut deliver = self.deliver();
        merge(&mut next, self.shared.place_pending(now, &mut deliver));
        next
    }

    /// Whether a Metadata request could go now. While it cannot (no control connection yet,
    /// backing off, one in flight), what unblocks it — readiness, the backoff deadline, the
    /// answer — wakes the thread; a wanted refresh alone must not keep it from parking.
    pub(super) fn can_ask_metadata(&self) -> bool {
        if self.control.metadata_in_flight {
            return false;
        }
        match self.control.conn.and_then(|i| self.conns[i].as_ref()) {
            Some(c) => c.accepts_requests(),
            // No control connection: one is opened unless backing off.
            None => self.control.retry_at.is_none(),
        }
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
    pub(super) fn control_conn(&mut self, now: Instant) -> Option<usize> {
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
        // The brokers metadata named, in turn; the bootstrap addresses (resolved afresh by
        // the driver) before the first metadata and while re-bootstrapping.
        let brokers = self.shared.brokers.load();
        let (id, addr) = if brokers.is_empty() || self.control.rebootstrapping {
            let list = &self.shared.config.bootstrap_servers;
            let a = list[self.control.next_bootstrap % list.len()].clone();
            (-1, a)
        } else {
            let mut ids: Vec<_> = brokers.keys().copied().collect();
            ids.sort_unstable();
            let id = ids[self.control.next_bootstrap % ids.len()];
            (id, brokers[&id].clone())
        };
        drop(brokers);
        self.control.next_bootstrap += 1;
        let i = self.add_conn(id, addr);
        self.connect(i, now);
        self.control.conn = Some(i);
        Some(i)
    }

    /// The control connection `i` failed: back off before the next address once every one
    /// was tried quickly; a bootstrap connection is not reused.
    pub(super) fn control_conn_failed(&mut self, i: usize, now: Instant) {
        self.control.conn = None;
        let cfg = &self.shared.config;
        let b = self.control.backoff.max(cfg.retry_backoff);
        let known = self.shared.brokers.load().len();
        let n = if known == 0 || self.control.rebootstrapping {
            cfg.bootstrap_servers.len()
        } else {
            known
        };
        if self.control.next_bootstrap % n.max(1) == 0 {
            self.control.backoff = (b * 2).min(cfg.retry_backoff_max);
            let wait = self.jitter(b);
            self.control.retry_at = Some(now + wait);
        }
        // Not reused: the next attempt opens a new one (keeping it, each failure during an
        // outage left a dead connection behind).
        self.conns[i] = None;
    }

    /// Starts again from `bootstrap_servers` (KIP-899, KIP-1102): the control connection
    /// goes to them, at once, until a Metadata answer comes; the known brokers' connections
    /// stay, and take the addresses that answer names when they next connect.
    fn rebootstrap(&mut self, why: &str) {
        log::warn!("kprod: re-bootstrapping from bootstrap.servers: {why}");
        Metrics::add(&self.shared.metrics.rebootstraps, 1);
        self.control.rebootstrapping = true;
        self.control.next_bootstrap = 0;
        self.control.retry_at = None;
        // Closed at the next turn (this may run while its answer is being read).
        self.control.abandoned = self.control.conn.take().or(self.control.abandoned);
    }

    /// Closes the control connection a re-bootstrap left, forgetting what was on it.
    fn close_abandoned(&mut self, now: Instant) {
        let Some(i) = self.control.abandoned.take() else {
            return;
        };
        let Some(c) = self.conns[i].as_mut() else {
            return;
        };
        if c.state != State::Down {
            self.commands.push_back(super::Command::Close { conn: i });
        }
        let lost = c.conn.fail_all();
        self.conns[i] = None;
        for f in lost {
            self.lost(f.context, "", "re-bootstrapping", now);
        }
    }

    pub(super) fn on_metadata(
        &mut self,
        frame: &[u8],
        version: i16,
        now: Instant,
    ) -> Result<(), String> {
        self.control.metadata_in_flight = false;
        let (_, resp) =
            lenient::<MetadataRequest>(frame, version).map_err(|e| format!("Metadata: {e}"))?;
        let cfg = &self.shared.config;
        if resp.error_code != 0 {
            // A whole-response error (v13+, KIP-1102, e.g. REBOOTSTRAP_REQUIRED): nothing in
            // it is the cluster's state; ask again after the backoff.
            let code = ErrorCode(resp.error_code);
            log::warn!("kprod: Metadata answered {code}; asking again");
            self.control.next_metadata = Some(now + cfg.retry_backoff);
            if code == ErrorCode::REBOOTSTRAP_REQUIRED && cfg.metadata_rebootstrap {
                self.shared.metadata_wanted.store(true, SeqCst);
                self.rebootstrap("a broker answered REBOOTSTRAP_REQUIRED");
            }
            return Ok(());
        }
        self.control.metadata_wanted_since = None;
        self.control.rebootstrapping = false;
        let applied = self.shared.apply_metadata(&resp);
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

    pub(super) fn on_init_producer_id(
        &mut self,
        frame: &[u8],
        version: i16,
        now: Instant,
    ) -> Result<(), String> {
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
                // Partitions adopt the new ids (sequences from 0) before sending.
                self.shared.producer.set_ids(ids, bumping);
                self.control.pid_backoff = self.shared.config.retry_backoff;
                if bumping {
                    self.control.bump_fresh = false;
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
                self.control.pid_backoff = (b * 2).min(self.shared.config.retry_backoff_max);
                let wait = self.jitter(b);
                self.control.pid_retry_at = Some(now + wait);
            }
            PidDecision::Fatal(e) => self.shared.set_fatal(e),
        }
        Ok(())
    }
}

/// Decodes a response, tolerating trailing bytes (logged).
pub(super) fn lenient<R: Request>(
    frame: &[u8],
    version: i16,
) -> Result<(i32, R::Response), DecodeError> {
    let (cid, resp, extra) = decode_response_lenient::<R>(frame, version)?;
    if extra > 0 {
        log::trace!(
            "kprod: {extra} trailing bytes after {} v{version}",
            R::API_KEY.name()
        );
    }
    Ok((cid, resp))
}
