//! The produce pipeline: rings drained into batches, due batches closed and grouped into one
//! Produce request per broker, answers classified (acknowledged, retried, given up), retries
//! scheduled with backoff, and the idempotence bookkeeping around each.

use std::sync::atomic::Ordering::*;
use std::sync::Arc;
use std::time::Instant;

use super::connections::State;
use super::control::lenient;
use super::{merge, Ctx, EngineCore};
use crate::engine::batch::{Accumulator, ProducerBatch, ProducerIds, Urgency};
use crate::engine::idempotence::{self, Action};
use crate::engine::PartitionState;
use crate::error::{Deadline, Error, Location};
use crate::metrics::Metrics;
use crate::protocol::messages::produce::{PartitionProduceData, ProduceRequest, TopicProduceData};
use crate::protocol::{DecodeError, ErrorCode};

impl EngineCore {
    /// Whether an urged batch of `p` should close now: nothing waits ahead of it, and its
    /// leader's connection is not a ready one that is full (then the batch keeps gathering
    /// until an answer frees room). Without a connection yet, the closed batch is what opens
    /// one.
    pub(super) fn urgent_due(&self, p: &PartitionState, acc: &Accumulator) -> bool {
        let (leader, _) = p.route();
        acc.ready.is_empty()
            && self
                .by_broker
                .get(&leader)
                .and_then(|&i| self.conns.get(i)?.as_ref())
                .is_none_or(|c| c.state != State::Ready || c.accepts_requests())
    }

    /// Whether `p`'s leader has an established connection that takes no request now (its
    /// in-flight window is full, or a quota holds it back).
    fn leader_conn_is_busy(&self, p: &PartitionState) -> bool {
        let (leader, _) = p.route();
        self.by_broker
            .get(&leader)
            .and_then(|&i| self.conns.get(i)?.as_ref())
            .is_some_and(|c| c.state == State::Ready && !c.accepts_requests())
    }

    /// Drains rings into batches and closes the batches that are due. Returns the next
    /// batch deadline.
    pub(super) fn accumulate(&mut self, now: Instant) -> Option<Instant> {
        let cfg = &self.shared.config;
        let (linger, delivery_timeout, batch_size) =
            (cfg.linger, cfg.delivery_timeout, cfg.batch_size);
        let urgency = if self.shared.flushing.load(SeqCst) > 0 || self.shared.closing.load(SeqCst) {
            Urgency::Flush
        } else {
            Urgency::Normal
        };
        if self.shared.fatal.load(SeqCst) {
            // Idempotence is impossible: nothing here can be sent.
            self.fail_everything(&self.shared.fatal_error());
            return None;
        }
        // Without a producer id yet, records still go into batches (their delivery timeout
        // runs from there), held until the id comes and numbers them.
        let st = self.shared.producer.get();
        let ids = if cfg.idempotence {
            st.ids
        } else {
            ProducerIds::NONE
        };
        let mut deadline = None;
        for k in 0..self.owned.len() {
            let p = self.owned[k].clone();
            if p.owner() != self.index {
                // Its leader moved to another thread's broker since `owned` was built: one
                // thread drains a ring, so records enter batches in the order they came.
                continue;
            }
            let mut acc = p.acc.lock();
            // After an epoch bump: sequences restart under the new ids.
            let _ = acc.adopt(ids);
            let mut drained = 0;
            let mut failed = None;
            // Records that waited for metadata come first on the ring: the batch they join
            // counts its delivery timeout from their send.
            let mut waited = p.take_waited();
            while let Some(r) = p.ring.pop() {
                drained += 1;
                if let Err(e) = acc.append(r, now, batch_size, ids, self.encoder.get_mut()) {
                    failed = Some(e);
                    break;
                }
                if let Some(t) = waited.take() {
                    acc.waited_since(t);
                }
            }
            if drained > 0 {
                self.shared.ring_drained();
                self.join_transaction(&p);
            }
            // A caller waits for a record here: its batch goes now rather than after the
            // linger, once it can go at once (the connection takes another request, nothing
            // queued ahead of it); until then it keeps gathering records, as batches do while
            // requests are in flight.
            let mut urgency = urgency;
            if urgency == Urgency::Normal && p.urgent.load(Relaxed) {
                if acc.open_len() == 0 {
                    // Nothing lingers: the record went in an earlier batch.
                    p.urgent.store(false, Relaxed);
                } else if self.urgent_due(&p, &acc) {
                    p.urgent.store(false, Relaxed);
                    urgency = Urgency::Flush;
                }
            }
            // While an earlier batch of the partition waits for its connection (full, or held
            // back by a quota), the open batch keeps gathering past its linger, up to the batch
            // size, as the Java client's accumulator does: closing it would queue small batch
            // after small batch behind the first (under a 200 ms throttle, 10 records each).
            // Only on an established connection (one that is down or connecting closes it as
            // before), and never past the open records' delivery timeout: the simulation
            // found a record completed 45 s after its send, with a 27 s timeout, when the
            // open batch gathered while its broker was stalled and cut.
            let expires = acc.linger_deadline(delivery_timeout);
            let gathering = urgency == Urgency::Normal
                && !acc.ready.is_empty()
                && self.leader_conn_is_busy(&p)
                && expires.is_some_and(|t| now < t);
            if gathering {
                merge(&mut deadline, expires);
            } else {
                if let Err(e) = acc.close_if_due(now, linger, urgency, ids, self.encoder.get_mut())
                {
                    failed = Some(e);
                }
            }
            if let Some(e) = failed {
                // Compression failed: the open records cannot be sent.
                log::error!("kprod: compressing a batch for {p:?} failed: {e}");
                let (cs, reserved) = acc.drain_all();
                let err = Error::Io {
                    broker: "(compression)".into(),
                    source: Arc::new(e),
                    at: Location::at(&p.topic, p.partition),
                };
                self.shared
                    .fail_all(cs, reserved, &err, &mut self.deliver());
            }
            let expired = acc.expire(now, delivery_timeout);
            for b in &expired {
                self.given_up(&mut acc, b);
            }
            let st = self.shared.producer.get();
            if acc.gap && !st.bump_wanted && acc.rewind_if_settled() {
                Metrics::add(&self.shared.metrics.sequence_rewinds, 1);
                log::debug!("kprod: {p:?}: sequences rewound past a failed batch");
            }
            let hold = st.hold(cfg.idempotence, acc.uses(ids));
            let next = if p.route().0 < 0 {
                // No leader: nothing can go, whatever its backoff says (a passed backoff would
                // bring the thread straight back, round and round). Metadata brings the leader.
                acc.unsendable_deadline(linger, delivery_timeout)
            } else {
                acc.next_deadline(linger, delivery_timeout, hold)
            };
            // Due lingers were closed and due expiries failed above: what is still due now is
            // a passed retry backoff, and `send_produce` owns what happens to that batch (it
            // goes, or waits on its connection: readiness, an answer, the reconnect backoff).
            // Counting it here kept the thread turning without a pause while a broker was
            // down (found by the simulation).
            let next = next.filter(|&t| t > now);
            let lingering = acc.open_len() > 0;
            if p.lingering.load(Relaxed) != lingering {
                p.lingering.store(lingering, SeqCst);
            }
            drop(acc);
            for b in expired {
                let e = self
                    .shared
                    .timeout(Deadline::Delivery, Location::at(&p.topic, p.partition));
                self.complete(&p, b, Err(e));
            }
            merge(&mut deadline, next);
        }
        deadline
    }

    /// Sends one Produce request to each ready broker that has sendable batches.
    pub(super) fn send_produce(&mut self, now: Instant, deadline: &mut Option<Instant>) {
        let idempotence = self.shared.config.idempotence;
        let st = self.shared.producer.get();
        let ids = if idempotence {
            st.ids
        } else {
            ProducerIds::NONE
        };
        let hold = st.hold(idempotence, true);
        // Adaptive partitioning reads what waits in each partition (nothing when it is off).
        let cfg = &self.shared.config;
        let watch_load =
            cfg.partitioner_adaptive || !cfg.partitioner_availability_timeout.is_zero();
        let mut wanted = std::mem::take(&mut self.wanted);
        for (k, p) in self.owned.iter().enumerate() {
            let (leader, owner) = p.route();
            if leader < 0 || owner != self.index {
                // No leader, or the leader moved to another thread's broker: that thread
                // sends for it once it has taken it (one sender per partition keeps order).
                continue;
            }
            if !self.in_transaction(p) {
                // Not in the coordinator's transaction yet: thread 0 adds it, then wakes us.
                continue;
            }
            let acc = p.acc.lock();
            if watch_load {
                p.load.observe(acc.ready_records(), now);
            }
            if acc.in_flight > 0 && acc.in_flight_to != leader {
                // The leader changed: let the old leader answer first (order).
                continue;
            }
            match acc.next_batch(hold || !acc.uses(ids)) {
                Some(b) if b.not_before.is_none_or(|t| now >= t) => {
                    wanted.push((leader, k, p.clone()));
                }
                Some(b) => merge(deadline, b.not_before),
                None => {}
            }
        }
        // Grouped by broker, each group in the order the partitions are owned.
        wanted.sort_unstable_by_key(|&(leader, k, _)| (leader, k));
        for parts in wanted.chunk_by(|a, b| a.0 == b.0) {
            let broker = parts[0].0;
            let Some(i) = self.broker_conn(broker, now) else {
                // Backing off before reconnecting: come round when the backoff ends.
                if let Some(c) = self
                    .by_broker
                    .get(&broker)
                    .and_then(|&i| self.conns[i].as_ref())
                {
                    merge(deadline, c.retry_at);
                }
                continue;
            };
            let c = self.conns[i].as_mut().expect("live conn");
            if !c.accepts_requests() {
                // Connecting (its socket's readiness wakes us) or the window is full (an
                // answer wakes us).
                continue;
            }
            let versions = c.versions.expect("ready");
            // A transactional producer's Produce version says which transaction flow it
            // follows ([`TxnVersions`](super::connections::TxnVersions)).
            let version = match (&self.shared.txn, versions.txn) {
                (Some(_), Some(t)) => t.produce,
                _ => versions.produce,
            };
            let limit = self.shared.config.max_request_size;
            let mut size = 0;
            let mut batches: Vec<(Arc<PartitionState>, ProducerBatch)> = Vec::new();
            // Whether a partition still has a sendable batch after this request.
            let mut more = false;
            for (_, _, p) in parts {
                let mut acc = p.acc.lock();
                // Read again under the partition's lock: an epoch bump checks that nothing is
                // in flight under the same lock, after asking for the hold.
                let st = self.shared.producer.get();
                let ids = if idempotence {
                    st.ids
                } else {
                    ProducerIds::NONE
                };
                let hold = st.hold(idempotence, acc.uses(ids));
                let Some(b) = acc.sendable(now, hold) else {
                    continue;
                };
                if !batches.is_empty() && size + b.bytes.len() > limit {
                    more = true;
                    continue;
                }
                size += b.bytes.len();
                let mut b = acc.ready.pop_front().expect("sendable");
                if watch_load {
                    p.load.drained(now);
                }
                acc.in_flight += 1;
                acc.in_flight_to = broker;
                b.attempts += 1;
                let m = &self.shared.metrics;
                if b.attempts > 1 {
                    Metrics::add(&m.retries, 1);
                    Metrics::add(&m.records_retried, b.record_count() as u64);
                    Metrics::add(&p.counters.batches_retried, 1);
                } else {
                    Metrics::add(&m.records_batched, b.record_count() as u64);
                    Metrics::add(&m.batch_bytes_uncompressed, b.uncompressed as u64);
                    Metrics::add(&m.batch_bytes_compressed, b.bytes.len() as u64);
                }
                more |= acc.sendable(now, hold).is_some();
                drop(acc);
                batches.push((p.clone(), b));
            }
            if batches.is_empty() {
                continue;
            }
            if let (Some(t), Some(tv)) = (&self.shared.txn, versions.txn) {
                if tv.v2 {
                    // Transactions v2: this Produce may add its partitions to the
                    // transaction, so ending it takes an EndTxn (records purged unsent never
                    // reached the coordinator: an empty transaction ends locally).
                    t.joined.store(true, SeqCst);
                }
            }
            let mut topics: Vec<TopicProduceData> = Vec::new();
            for (p, b) in &batches {
                let data = PartitionProduceData {
                    index: p.partition,
                    records: Some(b.bytes.clone()),
                };
                match topics.iter_mut().find(|t| *t.name == *p.topic) {
                    Some(t) => t.partition_data.push(data),
                    None => topics.push(TopicProduceData {
                        name: p.topic.to_string(),
                        partition_data: vec![data],
                    }),
                }
            }
            let acks = self.shared.config.acks.wire();
            let req = ProduceRequest {
                transactional_id: self.shared.txn.as_ref().map(|t| t.id.clone()),
                acks,
                timeout_ms: self
                    .shared
                    .config
                    .request_timeout
                    .as_millis()
                    .min(i32::MAX as u128) as i32,
                topic_data: topics,
            };
            let m = &self.shared.metrics;
            Metrics::add(&m.requests_sent, 1);
            Metrics::add(&m.batches_sent, batches.len() as u64);
            Metrics::add(&m.bytes_sent, size as u64);
            let c = self.conns[i].as_mut().expect("live conn");
            match c
                .conn
                .send(&req, version, acks != 0, now, Ctx::Produce(batches))
            {
                Ok((_, None)) => {}
                Ok((_, Some(Ctx::Produce(batches)))) => {
                    // acks=0: written is done; the broker says nothing.
                    for (p, b) in batches {
                        p.acc.lock().in_flight -= 1;
                        self.complete(&p, b, Ok((-1, None)));
                    }
                }
                Ok(_) => unreachable!("context comes back unchanged"),
                Err(e) => {
                    log::error!("kprod: encoding a Produce request failed: {e}");
                    self.fail_conn(i, now, Some(e.to_string()));
                    continue;
                }
            }
            let c = self.conns[i].as_ref().expect("live conn");
            if more && c.conn.can_send() {
                // Room for another request and batches to fill it: come straight round.
                merge(deadline, Some(now));
            }
        }
        wanted.clear();
        self.wanted = wanted;
    }

    /// The answer to a Produce request on connection `i`: each batch acknowledged, retried,
    /// or failed, as its partition's error code says.
    pub(super) fn on_produce(
        &mut self,
        i: usize,
        batches: Vec<(Arc<PartitionState>, ProducerBatch)>,
        frame: &[u8],
        version: i16,
        now: Instant,
    ) -> Result<(), String> {
        let resp = match lenient::<ProduceRequest>(frame, version) {
            Ok((_, r)) => r,
            Err(e) => {
                // Put the batches back before closing the connection.
                let err = Error::Protocol {
                    broker: self.conns[i]
                        .as_ref()
                        .map_or(String::new(), |c| c.addr.clone()),
                    source: e.clone(),
                    at: Location::default(),
                };
                for (p, mut b) in batches {
                    b.maybe_written |= idempotence::UNANSWERED.maybe_written;
                    self.retry_or_fail(&p, b, err.clone(), now);
                }
                return Err(format!("Produce: {e}"));
            }
        };
        // KIP-219: from v6 the broker answers at once and leaves the wait to the client.
        if version >= 6 && resp.throttle_time_ms > 0 {
            if let Some(c) = self.conns[i].as_mut() {
                c.throttle(now, resp.throttle_time_ms);
            }
            let m = &self.shared.metrics;
            Metrics::add(&m.throttled_responses, 1);
            Metrics::add(&m.throttle_time_ms, resp.throttle_time_ms as u64);
        }
        for (p, b) in batches {
            let pr = resp
                .responses
                .iter()
                .filter(|t| *t.name == *p.topic)
                .flat_map(|t| t.partition_responses.iter())
                .find(|r| r.index == p.partition);
            let Some(pr) = pr else {
                let err = Error::Protocol {
                    broker: self.conns[i]
                        .as_ref()
                        .map_or(String::new(), |c| c.addr.clone()),
                    source: DecodeError::UnexpectedNull {
                        what: "a partition's answer in the Produce response",
                    },
                    at: Location::at(&p.topic, p.partition),
                };
                let mut b = b;
                b.maybe_written |= idempotence::UNANSWERED.maybe_written;
                self.retry_or_fail(&p, b, err, now);
                continue;
            };
            let code = ErrorCode(pr.error_code);
            let explained = code == ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER && {
                // A bump under way, a gap waiting for its rewind, or an earlier batch of this
                // partition still outstanding that this one overtook.
                let acc = p.acc.lock();
                self.shared.producer.get().bump_wanted || acc.gap || !acc.is_next(&b)
            };
            let mut d =
                idempotence::on_answer(code, b.ids.idempotent(), b.maybe_written, explained);
            if self.shared.txn.is_some()
                && matches!(
                    code,
                    ErrorCode::PRODUCER_FENCED
                        | ErrorCode::INVALID_PRODUCER_EPOCH
                        | ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
                )
            {
                // A transactional producer is fenced (another with its id started), or not
                // allowed: no new epoch helps; the batch fails, and the producer with it
                // (`complete` makes that fatal).
                d.action = Action::Fail;
                d.bump = false;
            }
            if let Action::Ack { duplicate } = d.action {
                {
                    let mut acc = p.acc.lock();
                    acc.in_flight -= 1;
                    acc.acked(&b);
                }
                self.wake_owner(&p);
                let append = (pr.log_append_time_ms >= 0).then_some(pr.log_append_time_ms);
                // A duplicate's offset is not in the answer.
                let base = if duplicate { -1 } else { pr.base_offset };
                self.complete(&p, b, Ok((base, append)));
                continue;
            }
            let err = Error::Kafka {
                code,
                message: pr.error_message.clone(),
                at: Location::at(&p.topic, p.partition),
            };
            let mut b = b;
            let mut hinted = false;
            if d.leadership {
                // KIP-951: the answer may name the new leader; then go there now, without
                // a Metadata round trip or a backoff.
                let hint = &pr.current_leader;
                hinted = self.shared.apply_leader_hint(
                    &p,
                    hint.leader_id,
                    hint.leader_epoch,
                    &resp.node_endpoints,
                );
                if hinted {
                    Metrics::add(&self.shared.metrics.leader_hints, 1);
                    self.shared.wake_all();
                } else {
                    self.shared.request_metadata();
                }
            }
            if d.bump {
                log::warn!("kprod: {p:?}: {err}; bumping the producer epoch");
                self.shared.producer.want_bump();
            }
            b.maybe_written |= d.maybe_written;
            let mut action = d.action;
            if b.purged {
                // Purged in flight: never sent again, given up as a failed batch is.
                action = Action::Fail;
            }
            if action == Action::Split {
                match b.split(self.encoder.get_mut()) {
                    Some(second) => {
                        let first = b;
                        Metrics::add(&self.shared.metrics.batches_split, 1);
                        log::debug!(
                            "kprod: {p:?}: a batch of {} records was too large; sending it \
                             as {} and {}",
                            first.record_count() + second.record_count(),
                            first.record_count(),
                            second.record_count()
                        );
                        {
                            let mut acc = p.acc.lock();
                            acc.in_flight -= 1;
                            acc.requeue_split(first, second, now, err);
                        }
                        self.wake_owner(&p);
                        continue;
                    }
                    // One record (or not re-encodable): it fails with the broker's answer.
                    None => action = Action::Fail,
                }
            }
            match action {
                Action::Retry => {
                    let backoff = hinted.then_some(std::time::Duration::ZERO);
                    self.retry_with(&p, b, err, now, backoff);
                }
                Action::Fail => {
                    {
                        let mut acc = p.acc.lock();
                        acc.in_flight -= 1;
                        self.given_up(&mut acc, &b);
                    }
                    self.wake_owner(&p);
                    self.complete(&p, b, Err(err));
                }
                Action::Ack { .. } | Action::Split => unreachable!("handled above"),
            }
        }
        Ok(())
    }

    /// Idempotence bookkeeping for a batch about to fail: its sequences leave a gap. If the
    /// broker certainly does not have it, the partition's later batches are renumbered once
    /// settled; if it may have it, only a new epoch makes the partition usable again.
    pub(super) fn given_up(&self, acc: &mut Accumulator, b: &ProducerBatch) {
        let (gap, bump) = idempotence::given_up(b.ids.idempotent(), b.maybe_written);
        acc.gap |= gap;
        if bump {
            self.shared.producer.want_bump();
        }
    }

    /// A batch sent without success: back in line after a backoff, or failed when its
    /// delivery timeout has passed.
    pub(super) fn retry_or_fail(
        &self,
        p: &Arc<PartitionState>,
        b: ProducerBatch,
        err: Error,
        now: Instant,
    ) {
        self.retry_with(p, b, err, now, None);
    }

    /// [`retry_or_fail`](Self::retry_or_fail), with `backoff` instead of the doubling one
    /// when given (zero after a leader hint: the new leader has not seen this batch).
    fn retry_with(
        &self,
        p: &Arc<PartitionState>,
        b: ProducerBatch,
        err: Error,
        now: Instant,
        backoff: Option<std::time::Duration>,
    ) {
        let cfg = &self.shared.config;
        let mut acc = p.acc.lock();
        acc.in_flight -= 1;
        if b.purged || now >= b.created + cfg.delivery_timeout || self.shared.abort.load(SeqCst) {
            self.given_up(&mut acc, &b);
            drop(acc);
            let e = self
                .shared
                .timeout(Deadline::Delivery, Location::at(&p.topic, p.partition));
            log::debug!(
                "kprod: {p:?}: giving up after {} attempts: {err}",
                b.attempts
            );
            self.complete(p, b, Err(e));
            return;
        }
        let exp = b.attempts.saturating_sub(1).min(16);
        let backoff = backoff.unwrap_or_else(|| {
            cfg.retry_backoff
                .saturating_mul(1 << exp)
                .min(cfg.retry_backoff_max)
        });
        acc.requeue(b, now + backoff, err);
        drop(acc);
        self.wake_owner(p);
    }

    /// An answer for `p` came on this thread's connection, but `p` may now belong to another
    /// thread (its leader moved), which waits for that answer before it sends: wake it.
    fn wake_owner(&self, p: &PartitionState) {
        let owner = p.owner();
        if owner != self.index {
            self.shared.io[owner].wake();
        }
    }
}
