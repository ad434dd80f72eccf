//! Completing records (inline for handles, on the callback pool for callbacks) and shutting
//! down: what a thread still holds when it stops fails, each record exactly once.

use std::sync::atomic::Ordering::*;

use super::{Command, Ctx, EngineCore};
use crate::delivery::{Completer, DeliveryResult};
use crate::engine::batch::{Completions, ProducerBatch};
use crate::engine::callbacks::Job;
use crate::engine::PartitionState;
use crate::error::Error;
use crate::metrics::Metrics;

/// Queues `job` on the callback pool, counted before its records are released; runs it here
/// if the pool has stopped.
fn queue(shared: &crate::engine::Shared, tx: &crossbeam::channel::Sender<Job>, job: Job) {
    shared.callbacks_queued(job.len());
    if let Err(e) = tx.send(job) {
        e.into_inner().run(shared);
    }
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
        outcome: Result<(i64, Option<i64>), Error>,
    ) {
        let (n, bytes) = (b.record_count(), b.reserved);
        let m = &self.shared.metrics;
        let (records, sizes) = if outcome.is_ok() {
            (&m.records_acked, &m.bytes_acked)
        } else {
            (&m.records_failed, &m.bytes_failed)
        };
        Metrics::add(records, n as u64);
        Metrics::add(sizes, b.bytes.len() as u64);
        let mut b = b;
        // Its buffer goes to the next batch (once the write is done, the batch holds the only
        // reference).
        self.encoder
            .borrow_mut()
            .recycle(std::mem::take(&mut b.bytes));
        // The callback records go to the pool as one job; handles complete here.
        let callbacks = b.completions.take_callbacks();
        if callbacks.waiting() > 0 {
            let job = Job::Batch {
                topic: p.topic.clone(),
                partition: p.partition,
                outcome: outcome.clone(),
                completions: callbacks,
            };
            queue(&self.shared, &self.callbacks, job);
        }
        b.complete(&p.topic, p.partition, outcome, &mut self.deliver());
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
                        let e = match &err {
                            Error::Closed => Error::Closed,
                            other => other.clone(),
                        };
                        self.complete(&p, b, Err(e));
                    }
                }
            }
        }
        self.conns.clear();
        // Every partition, not only owned ones: leadership may have moved mid-close.
        self.fail_everything(&err);
    }

    pub(super) fn fail_everything(&self, err: &Error) {
        for t in self.shared.topics.load().values() {
            if self.index == 0 {
                let pending: Vec<_> = t.pending.lock().drain(..).collect();
                t.has_pending.store(false, SeqCst);
                for u in pending {
                    let reserved = u.record.reserved;
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
                let mut cs = Completions::default();
                let mut reserved = 0;
                while let Some(r) = p.ring.pop() {
                    reserved += r.reserved;
                    cs.push(r.timestamp, r.completer);
                }
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
