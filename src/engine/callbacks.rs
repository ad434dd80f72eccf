//! The callback pool: delivery callbacks run here, never on an I/O thread. A panicking
//! callback is caught, logged and counted; the pool lives on.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam::channel::{unbounded, Receiver, Sender};

use crate::delivery::{Completer, DeliveryResult};
use crate::metrics::Metrics;

use super::Shared;

/// One callback to run.
pub(crate) type Job = (Completer, DeliveryResult);

pub(crate) struct CallbackPool {
    tx: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

/// Runs one completion, catching a panic from a callback.
pub(crate) fn run_job((completer, result): Job, metrics: &Metrics) {
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
                            run_job(job, &shared.metrics);
                            shared.callback_ran();
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
