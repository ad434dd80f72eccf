//! Adaptive partitioning for keyless records (KIP-794, as the Java client's
//! `BuiltInPartitioner` does it): when the sticky partitioner moves on, it prefers partitions
//! whose leader keeps up, and skips those whose leader has not taken a batch for
//! `partitioner_availability_timeout`.
//!
//! The owning I/O thread notes, each turn, how many records wait in each partition's closed
//! batches ([`Load::observe`]) and when a batch last went to the broker. On a move, the partitioner reads those counts: if they differ by
//! [`UNEVEN`] batches' worth or more (a broker falling behind, not a batch closing a moment
//! earlier on one partition than another), it draws the next partition at random, weighted
//! as Java weighs them — `max + 1 − waiting` — so the partition with the longest queue gets
//! one share and an idle one `max + 1`. Otherwise it goes on in
//! turn, which spreads records more evenly than a draw. Reading the counts costs one load per
//! partition, once per `batch_size` bytes of keyless records; nothing on the other calls.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::PartitionState;

/// What the partitioner knows of one partition's load.
#[derive(Debug, Default)]
pub(crate) struct Load {
    /// Records in closed batches waiting to be sent (the ring's are read when needed).
    queued: AtomicU32,
    /// When a batch last went to the broker, or the partition last had none waiting (ms on
    /// [`clock_ms`]); 0: not yet observed.
    drained_ms: AtomicU64,
}

/// Milliseconds on the process-wide monotonic clock the stage stamps use, offset so that
/// instants somewhat before its zero (taken before its first use) still read right; never 0.
fn clock_ms(now: Instant) -> u64 {
    const OFFSET: u64 = 1 << 40;
    let base = super::batch::SentAt::base();
    match now.checked_duration_since(base) {
        Some(d) => OFFSET + d.as_millis() as u64,
        None => OFFSET
            .saturating_sub((base - now).as_millis() as u64)
            .max(1),
    }
}

impl Load {
    /// Notes, at `now`, that `queued` records wait in closed batches (the owner, each turn).
    pub fn observe(&self, queued: usize, now: Instant) {
        self.queued
            .store(queued.min(u32::MAX as usize) as u32, Relaxed);
        if queued == 0 || self.drained_ms.load(Relaxed) == 0 {
            self.drained_ms.store(clock_ms(now), Relaxed);
        }
    }

    /// Notes that a batch went to the broker at `now`.
    pub fn drained(&self, now: Instant) {
        self.drained_ms.store(clock_ms(now), Relaxed);
    }

    /// Whether the partition's leader has taken nothing for longer than `timeout` while
    /// batches waited (never with a zero timeout).
    fn unavailable(&self, timeout: Duration, now_ms: u64) -> bool {
        if timeout.is_zero() || self.queued.load(Relaxed) == 0 {
            return false;
        }
        let drained = self.drained_ms.load(Relaxed);
        drained != 0 && now_ms.saturating_sub(drained) > timeout.as_millis() as u64
    }
}

/// How many more batches the busiest partition must have waiting than the least busy before
/// the draw replaces turns: below it, what differs is batches closing a moment apart.
const UNEVEN: u32 = 2;

/// The partitioner's adaptive settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Adaptive {
    /// `partitioner.adaptive.partitioning.enable`.
    pub enabled: bool,
    /// `partitioner.availability.timeout.ms` (zero: off).
    pub availability_timeout: Duration,
}

/// Records waiting in partition `q`'s closed batches. (Not its ring's: when the I/O thread
/// lags behind the callers every ring is full, and counting them drowned the brokers'
/// differences: a 20 ms-slow broker kept 27% of the records in one run of four, against 13–19% without them.)
fn waiting(parts: &[Arc<PartitionState>], q: u32) -> u32 {
    parts[q as usize].load.queued.load(Relaxed)
}

/// The partition to move to after `p`, among those with a leader; `None` if none has one.
/// `per_batch`: about how many records make a batch (the draw needs the queues to differ by
/// [`UNEVEN`] batches).
pub(crate) fn next(
    parts: &[Arc<PartitionState>],
    p: u32,
    a: Adaptive,
    per_batch: u32,
) -> Option<u32> {
    let n = parts.len() as u32;
    let led = |q: u32| parts[q as usize].route().0 >= 0;
    let in_turn = || (1..=n).map(|k| (p + k) % n).find(|&q| led(q));
    if !a.enabled && a.availability_timeout.is_zero() {
        return in_turn();
    }
    let now_ms = if a.availability_timeout.is_zero() {
        0
    } else {
        clock_ms(Instant::now())
    };
    let (mut min, mut max, mut skipped, mut any) = (u32::MAX, 0u32, false, false);
    for q in 0..n {
        let l = &parts[q as usize].load;
        if !led(q) {
            continue;
        }
        if l.unavailable(a.availability_timeout, now_ms) {
            skipped = true;
            continue;
        }
        let queued = waiting(parts, q);
        min = min.min(queued);
        max = max.max(queued);
        any = true;
    }
    if !any {
        // Every led partition is unavailable: better one of them than none.
        return in_turn();
    }
    let usable = |q: u32| {
        led(q)
            && !parts[q as usize]
                .load
                .unavailable(a.availability_timeout, now_ms)
    };
    if !a.enabled || max - min < UNEVEN.saturating_mul(per_batch.max(1)) {
        // Even enough: in turn, skipping unavailable partitions.
        return if skipped {
            (1..=n).map(|k| (p + k) % n).find(|&q| usable(q))
        } else {
            in_turn()
        };
    }
    // Weighted draw: max + 1 - queued per usable partition.
    let weight = |q: u32| (max + 1).saturating_sub(waiting(parts, q));
    let total: u64 = (0..n)
        .filter(|&q| usable(q))
        .map(|q| u64::from(weight(q)))
        .sum();
    if total == 0 {
        return in_turn();
    }
    let mut r = random() % total;
    for q in (0..n).filter(|&q| usable(q)) {
        let w = u64::from(weight(q));
        if r < w {
            return Some(q);
        }
        r -= w;
    }
    in_turn()
}

/// A per-thread xorshift generator, seeded from the thread's stack address and the clock.
fn random() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = const { Cell::new(0) };
    }
    STATE.with(|s| {
        let mut x = s.get();
        if x == 0 {
            let here = &x as *const u64 as u64;
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            x = (here ^ t.rotate_left(32)) | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x
    })
}
