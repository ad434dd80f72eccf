//! Completing records (inline for handles, on the callback pool for callbacks) and shutting
//! down: what a thread still holds when it stops fails, each record exactly once.

use std::sync::atomic::Ordering::*;

use super::{Command, Ctx, EngineCore};
use crate::delivery::{Completer, DeliveryResult};
use crate::engine::batch::{Completions, ProducerBatch};
use crate::engine::callbacks::{Job, JobSender};
use crate::engine::transaction;
use crate::engine::PartitionState;
use crate::error::{DeliveryStatus, Error, Location, TransactionError};
use crate::metrics::Metrics;

/// Queues `job` on the callback pool, counted before its records are released; runs it here
/// if the pool has stopped.
fn queue(shared: &crate::engine::Shared, tx: &JobSender, job: Job) {
    shared.callbacks_queued(job.len());
    // During a flush or close, nothing waits for the pool's timer.
    let hurried = shared.flushing.load(SeqCst) > 0 || shared.closing.load(SeqCst);
    let sent = if job.is_passive() && !hurried {
        tx.send_passive(job)
    } else {
        tx.send(job)
    };
    if let Err(job) = sent {
        job.run(shared);
    }
}

/// Takes every record on `p`'s ring (under its accumulator's lock, as its owner drains it):
/// their completions and reserved bytes.
fn drain_ring(p: &PartitionState) -> (Completions, usize) {
    let mut cs = Completions::default();
    let mut reserved = 0;
    while let Some(r) = p.ring.pop() {
        reserved += r.reserved();
        cs.push(r.timestamp, r.completer);
    }
    (cs, reserved)
}

impl EngineCore {
    pub(super) fn deliver(&self) -> impl FnMut(Completer, DeliveryResult) + '_ {
        let shared = &self.shared;
        let tx = &self.callbacks;
        move |c: Completer, r: DeliveryResult| {
            if c.is_callback() {
                queue(shared, tx, Job::One(c, r));
            } else {
                c.complete(r);
            }
        }
    }

    /// Completes a batch and gives its records' room back.
    pub(super) fn complete(
        &self,
        p: &PartitionState,
        b: ProducerBatch,
        mut outcome: Result<(i64, Option<i64>), Error>,
    ) {
        let (n, bytes) = (b.record_count(), b.reserved);
        let mut b = b;
        let size = b.bytes.len() as u64;
        // Its buffer goes to the next batch (once the write is done, the batch holds the only
        // reference).
        self.encoder
            .borrow_mut()
            .recycle(std::mem::take(&mut b.bytes));
        if b.purged {
            // Its records failed (and were counted) and gave their room back when it was
            // purged. Counting them here again made acked + failed exceed sent (found by
            // tests/completions.rs).
            return;
        }
        if let (Some(t), Err(e)) = (&self.shared.txn, &outcome) {
            // A transaction cannot commit without its records: it must abort (or, fenced,
            // the producer is done).
            let te = transaction::record_failure(e);
            let fatal = te.transaction_error() != Some(TransactionError::Abortable);
            t.fail(te.clone());
            if fatal {
                // The records say so too: fenced (or not allowed) is what the caller must
                // act on, not the broker's code.
                self.shared.set_fatal(te.clone());
                outcome = Err(te);
            }
            self.shared.notify_done();
        }
        if let Err(e) = outcome {
            outcome = Err(e.with_status(b.failure_status()));
        }
        let m = &self.shared.metrics;
        let (records, sizes) = if outcome.is_ok() {
            (&m.records_acked, &m.bytes_acked)
        } else {
            (&m.records_failed, &m.bytes_failed)
        };
        Metrics::add(records, n as u64);
        Metrics::add(sizes, size);
        p.counters.completed(n as u64, size, outcome.is_ok());
        // A timed record's stages, if the batch has one and it was delivered.
        let timed = match (&outcome, b.stages) {
            (Ok(_), Some(s)) => Some((s, std::time::Instant::now())),
            _ => None,
        };
        // The callback records go to the pool as one job; handles complete here.
        let callbacks = b.completions.take_callbacks();
        let mut timed = timed;
        if callbacks.waiting() > 0 {
            // Only spans to end (fire-and-forget records with tracing): nobody waits, so the
            // pool runs them on its timer, and they end at this time.
            let passive = callbacks.all_passive();
            let job = Job::Batch {
                topic: p.topic.clone(),
                partition: p.partition,
                outcome: outcome.clone(),
                completions: callbacks,
                // Delivered once its callbacks have run (a passive job's records are
                // delivered as far as anyone waits now).
                timed: if passive { None } else { timed.take() },
                acknowledged: passive.then(std::time::SystemTime::now),
            };
            queue(&self.shared, &self.callbacks, job);
        }
        b.complete(&p.topic, p.partition, outcome, &mut self.deliver());
        if let Some((stamps, acked)) = timed {
            self.shared
                .metrics
                .stages(&stamps, acked, std::time::Instant::now());
        }
        self.shared.release(n, bytes);
    }

    /// Fails everything this thread holds, and asks the driver to close its connections.
    pub fn shutdown(&mut self) {
        let err = self.shared.shutdown_error();
        for i in 0..self.conns.len() {
            let Some(c) = self.conns[i].as_mut() else {
                continue;
            };
            if c.state != super::connections::State::Down {
                // The driver closes the socket gently (the broker reads our last requests).
                self.commands.push_back(Command::Close { conn: i });
            }
            for f in c.conn.fail_all() {
                if let Ctx::Produce(batches) = f.context {
                    for (p, b) in batches {
                        p.acc.lock().in_flight -= 1;
                        // In flight: the broker may have written it.
                        let mut b = b;
                        b.maybe_written = true;
                        self.complete(&p, b, Err(err.clone()));
                    }
                }
            }
        }
        self.conns.clear();
        // Every partition, not only owned ones: leadership may have moved mid-close.
        self.fail_everything(&err);
    }

    /// Carries out the purges asked for since the last turn (see [`crate::engine::Purges`]).
    pub(super) fn purge_if_asked(&mut self) {
        let Some((n, in_flight)) = self.shared.purges.due(self.purged) else {
            return;
        };
        // Every thread clears every partition (a record may be drained into a batch by a
        // thread that has not had its turn yet, and sent by it before that turn: it is then in
        // that thread's flight, which its turn purges), and what it has in flight.
        self.purge_buffered();
        if in_flight {
            self.purge_in_flight();
        }
        self.purged = n;
        self.shared.purges.carried_out(self.index, n);
        self.shared.wake_all();
    }

    /// Fails every record not yet sent, on every partition (their owners may be other
    /// threads: a partition's ring is drained and its batches taken under its lock, as its
    /// owner does): waiting for metadata, in rings, in open batches and in closed batches
    /// waiting to go (not those a thread has taken to send: they are in its flight). A closed batch had its sequences: it is given up as a failed batch is
    /// (its partition's later batches are renumbered, or the epoch bumped if an earlier
    /// attempt may have been written).
    fn purge_buffered(&self) {
        // An abort fails what was not sent with the transaction's own reason.
        let aborting = self
            .shared
            .txn
            .as_ref()
            .is_some_and(|t| t.machine.lock().state == transaction::State::Aborting);
        let purged = |at: Location| {
            if aborting {
                Error::transaction(
                    TransactionError::Abortable,
                    None,
                    "the transaction was aborted before this record was delivered (its \
                     delivery status says whether an earlier attempt may have been written)",
                )
                .at(at)
            } else {
                Error::Purged {
                    in_flight: false,
                    at,
                }
            }
        };
        let mut n = 0;
        for t in self.shared.topics.load().values() {
            let pending: Vec<_> = t.pending.lock().drain(..).collect();
            t.has_pending.store(false, SeqCst);
            for u in pending {
                n += 1;
                let reserved = u.record.reserved();
                self.shared.fail_all(
                    Completions::one(u.record.completer),
                    reserved,
                    &purged(Location::topic(&t.name)),
                    &mut self.deliver(),
                );
            }
            let Some(parts) = t.partitions.load_full() else {
                continue;
            };
            for p in parts.iter() {
                let at = Location::at(&p.topic, p.partition);
                let mut acc = p.acc.lock();
                let (mut cs, reserved) = drain_ring(p);
                let (open, open_reserved) = acc.take_open();
                cs.append(open);
                let ready: Vec<ProducerBatch> = acc.ready.drain(..).collect();
                for b in &ready {
                    self.given_up(&mut acc, b);
                }
                drop(acc);
                n += cs.len();
                self.shared.fail_all(
                    cs,
                    reserved + open_reserved,
                    &purged(at.clone()),
                    &mut self.deliver(),
                );
                for b in ready {
                    n += b.record_count();
                    self.complete(p, b, Err(purged(at.clone())));
                }
            }
        }
        self.shared.ring_drained();
        if n > 0 {
            log::info!("kprod: purged {n} buffered records");
        }
    }

    /// Fails the records of every batch this thread has in flight. The batches stay on their
    /// requests (marked purged): the answer settles their sequences, and none is sent again.
    fn purge_in_flight(&mut self) {
        let mut n = 0;
        for i in 0..self.conns.len() {
            let Some(c) = self.conns[i].as_mut() else {
                continue;
            };
            let mut failed = Vec::new();
            for f in c.conn.in_flight_mut() {
                if let Ctx::Produce(batches) = &mut f.context {
                    for (p, b) in batches.iter_mut().filter(|(_, b)| !b.purged) {
                        b.purged = true;
                        Metrics::add(&self.shared.metrics.bytes_failed, b.bytes.len() as u64);
                        failed.push((
                            Location::at(&p.topic, p.partition),
                            b.completions.take_waiting(),
                            b.record_count(),
                            b.reserved,
                        ));
                    }
                }
            }
            for (at, waiting, records, reserved) in failed {
                n += records;
                let e = Error::Purged {
                    in_flight: true,
                    at,
                }
                .with_status(DeliveryStatus::PossiblyPersisted);
                Metrics::add(&self.shared.metrics.records_failed, records as u64);
                waiting.fail(&e, &mut self.deliver());
                self.shared.release(records, reserved);
            }
        }
        if n > 0 {
            log::info!("kprod: purged {n} records in flight");
        }
    }

    pub(super) fn fail_everything(&self, err: &Error) {
        for t in self.shared.topics.load().values() {
            if self.index == 0 {
                let pending: Vec<_> = t.pending.lock().drain(..).collect();
                t.has_pending.store(false, SeqCst);
                for u in pending {
                    let reserved = u.record.reserved();
                    self.shared.fail_all(
                        Completions::one(u.record.completer),
                        reserved,
                        err,
                        &mut self.deliver(),
                    );
                }
            }
            let Some(parts) = t.partitions.load_full() else {
                continue;
            };
            for p in parts.iter() {
                let mut acc = p.acc.lock();
                let (mut cs, reserved) = drain_ring(p);
                let (more, more_reserved) = acc.drain_all();
                drop(acc);
                cs.append(more);
                self.shared
                    .fail_all(cs, reserved + more_reserved, err, &mut self.deliver());
            }
        }
        self.shared.ring_drained();
    }
}
