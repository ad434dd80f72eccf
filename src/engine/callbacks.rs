//! The callback pool: delivery callbacks run here, never on an I/O thread. A panicking
//! callback is caught, logged and counted; the pool lives on.
//!
//! An acknowledged batch goes to the pool as one job: its callback records and the batch's
//! outcome. Each record's [`RecordMetadata`](crate::RecordMetadata) is built on the pool
//! thread, so the I/O thread pays one channel send per batch, not one per record (and the
//! topic's reference count is not bounced between the two threads per record).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam::channel::{unbounded, Receiver, Sender};

use crate::delivery::{Completer, DeliveryResult};
use crate::engine::batch::{Completions, StageStamps};
use crate::error::Error;
use crate::metrics::Metrics;

use super::Shared;

/// Callbacks to run.
pub(crate) enum Job {
    /// One record's.
    One(Completer, DeliveryResult),
    /// The callback records of one batch, and the batch's outcome: its base offset and the
    /// broker's append time, or the error every record fails with.
    Batch {
        topic: Arc<str>,
        partition: i32,
        outcome: Result<(i64, Option<i64>), Error>,
        completions: Completions,
        /// The batch's timed record's stamps and when it was acknowledged, if it has one.
        timed: Option<(StageStamps, Instant)>,
    },
}

impl Job {
    /// Callbacks in the job: what [`Shared::callbacks_queued`] counts for it.
    pub fn len(&self) -> usize {
        match self {
            Job::One(..) => 1,
            Job::Batch { completions, .. } => completions.waiting(),
        }
    }

    /// Runs every callback in order (a panic caught and counted for each), then counts them
    /// returned.
    pub fn run(self, shared: &Shared) {
        let n = self.len();
        let m = &shared.metrics;
        let mut one = |c: Completer, r: DeliveryResult| run_job((c, r), m);
        match self {
            Job::One(c, r) => one(c, r),
            Job::Batch {
                topic,
                partition,
                outcome,
                completions,
                timed,
            } => {
                match outcome {
                    Ok((base, append_time)) => {
                        completions.succeed(&topic, partition, base, append_time, &mut one)
                    }
                    Err(e) => completions.fail(&e, &mut one),
                }
                if let Some((stamps, acked)) = timed {
                    m.stages(&stamps, acked, Instant::now());
                }
            }
        }
        shared.callbacks_ran(n);
    }
}

pub(crate) struct CallbackPool {
    tx: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

/// Runs one completion, catching a panic from a callback.
pub(crate) fn run_job((completer, result): (Completer, DeliveryResult), metrics: &Metrics) {
    if catch_unwind(AssertUnwindSafe(|| completer.complete(result))).is_err() {
        Metrics::add(&metrics.callback_panics, 1);
        log::error!("kprod: a delivery callback panicked (caught; the callback pool goes on)");
    }
}

impl CallbackPool {
    /// Starts `threads` threads. Each job's callback is counted done in `shared` when it
    /// returns (so `flush` can wait for callbacks), whether or not it panicked.
    pub fn start(threads: usize, shared: Arc<Shared>) -> std::io::Result<Self> {
        let (tx, rx): (Sender<Job>, Receiver<Job>) = unbounded();
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let rx = rx.clone();
            let shared = shared.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("kprod-callback-{i}"))
                    .spawn(move || {
                        for job in rx.iter() {
                            job.run(&shared);
                        }
                    })?,
            );
        }
        Ok(CallbackPool {
            tx: Some(tx),
            threads: handles,
        })
    }

    pub fn sender(&self) -> Sender<Job> {
        self.tx.clone().expect("pool is running")
    }

    /// Runs what is queued, then stops and joins the threads. Every other sender must have
    /// been dropped first.
    pub fn shutdown(&mut self) {
        self.tx = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for CallbackPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}
