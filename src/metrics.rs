//! Counters the producer keeps, read with [`Producer::metrics`](crate::Producer::metrics).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Live counters (relaxed atomics, updated off the send path where possible).
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub records_sent: AtomicU64,
    pub records_acked: AtomicU64,
    pub records_failed: AtomicU64,
    pub batches_sent: AtomicU64,
    pub requests_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub retries: AtomicU64,
    pub metadata_requests: AtomicU64,
    pub connects: AtomicU64,
    pub disconnects: AtomicU64,
    pub callback_panics: AtomicU64,
    pub forget_delivered: AtomicU64,
    pub forget_failed: AtomicU64,
    pub forget_timed_out: AtomicU64,
    pub wakeups: AtomicU64,
}

impl Metrics {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let g = |c: &AtomicU64| c.load(Relaxed);
        MetricsSnapshot {
            records_sent: g(&self.records_sent),
            records_acked: g(&self.records_acked),
            records_failed: g(&self.records_failed),
            batches_sent: g(&self.batches_sent),
            requests_sent: g(&self.requests_sent),
            bytes_sent: g(&self.bytes_sent),
            retries: g(&self.retries),
            metadata_requests: g(&self.metadata_requests),
            connects: g(&self.connects),
            disconnects: g(&self.disconnects),
            callback_panics: g(&self.callback_panics),
            forget_delivered: g(&self.forget_delivered),
            forget_failed: g(&self.forget_failed),
            forget_timed_out: g(&self.forget_timed_out),
            wakeups: g(&self.wakeups),
        }
    }
}

/// A copy of the producer's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Records accepted into the buffer.
    pub records_sent: u64,
    /// Records acknowledged by the broker (or written with acks=0).
    pub records_acked: u64,
    /// Records completed with an error.
    pub records_failed: u64,
    /// RecordBatches sent (retries included).
    pub batches_sent: u64,
    /// Produce requests sent.
    pub requests_sent: u64,
    /// Bytes of RecordBatches sent.
    pub bytes_sent: u64,
    /// Batches sent again after a retriable failure.
    pub retries: u64,
    /// Metadata requests sent.
    pub metadata_requests: u64,
    /// Connections established.
    pub connects: u64,
    /// Connections lost or closed on error.
    pub disconnects: u64,
    /// Delivery callbacks that panicked (caught; the pool lives on).
    pub callback_panics: u64,
    /// `send_await_forget` records delivered within their budget.
    pub forget_delivered: u64,
    /// `send_await_forget` records that failed within their budget (error swallowed).
    pub forget_failed: u64,
    /// `send_await_forget` records still pending when their budget ran out.
    pub forget_timed_out: u64,
    /// Times a caller woke a parked I/O thread.
    pub wakeups: u64,
}
