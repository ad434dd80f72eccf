//! The park/wake handshake between callers and an I/O thread, without the poller: the driver
//! supplies how to wake its thread (a `mio::Waker`), the simulation a no-op.
//!
//! An I/O thread publishes that it is about to park (`PARKED_TIMED` while a linger deadline is
//! near, `PARKED_IDLE` otherwise), checks once more for work, then sleeps. A caller that pushed
//! a record reads that state after its push (a `SeqCst` fence orders the two: see
//! [`Shared::pushed`](super::Shared::pushed)) and wakes the thread only if it is parked and
//! needs the record now. Whoever swaps the state back to `RUNNING` first sends the one wake-up.

use std::sync::atomic::{AtomicU8, Ordering::SeqCst};

use crate::metrics::Metrics;

pub(crate) const RUNNING: u8 = 0;
/// Parked until a linger deadline: callers need not wake it for every record.
pub(crate) const PARKED_TIMED: u8 = 1;
/// Parked with nothing due soon: the first record must wake it.
pub(crate) const PARKED_IDLE: u8 = 2;

/// How callers reach a thread: its wake-up and whether it is parked.
pub(crate) struct ThreadWake {
    waker: Box<dyn Fn() + Send + Sync>,
    parked: AtomicU8,
}

impl ThreadWake {
    /// A thread woken by calling `waker`.
    pub fn new(waker: impl Fn() + Send + Sync + 'static) -> Self {
        ThreadWake {
            waker: Box::new(waker),
            parked: AtomicU8::new(RUNNING),
        }
    }

    /// Wakes the thread if it is parked.
    pub fn wake(&self) {
        if self.parked.swap(RUNNING, SeqCst) != RUNNING {
            (self.waker)();
        }
    }

    /// A record was pushed on a ring this thread drains. `ring` gives, only if the thread is
    /// parked until a linger deadline, what the ring now holds and whether the record starts
    /// its partition's batch (its linger starts with it); a running thread needs neither, so
    /// the caller does not read the ring's head, a cache line the draining thread writes.
    #[inline]
    pub fn record_pushed(
        &self,
        ring: impl FnOnce() -> (usize, bool),
        threshold: usize,
        metrics: &Metrics,
    ) {
        let needed = match self.parked.load(SeqCst) {
            RUNNING => false,
            PARKED_TIMED => {
                let (ring_len, starts_batch) = ring();
                starts_batch || ring_len >= threshold
            }
            _ => true,
        };
        if needed && self.parked.swap(RUNNING, SeqCst) != RUNNING {
            Metrics::add(&metrics.wakeups, 1);
            (self.waker)();
        }
    }

    /// The thread is about to park in `state` (then checks for work once more).
    pub fn parking(&self, state: u8) {
        self.parked.store(state, SeqCst);
    }

    /// The thread is running again.
    pub fn running(&self) {
        self.parked.store(RUNNING, SeqCst);
    }
}
