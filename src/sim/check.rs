//! The promises every simulated run is checked for, as `tests/support/scenario.rs` checks
//! them through real sockets: one completion per record; every record reported delivered is
//! in the log exactly once, at its offset; per-partition send order; every failure names why,
//! and one said not to be persisted is not in the log;
//! the delivery timeout holds on the virtual clock; records sent once the faults are over are
//! all delivered.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{World, TOPIC};
use crate::error::{Deadline, DeliveryStatus, Error};
use crate::protocol::ErrorCode;

/// A record's story.
#[derive(Debug, Clone, Default)]
struct Entry {
    sent_at: Option<Instant>,
    fired: u32,
    outcome: Option<Result<(i32, i64), Error>>,
    done_at: Option<Instant>,
}

/// What happened to each record, written by its completion callback.
pub(super) struct Ledger {
    entries: Mutex<Vec<Entry>>,
}

impl Ledger {
    pub fn new(n: usize) -> Ledger {
        Ledger {
            entries: Mutex::new(vec![Entry::default(); n]),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn sent(&self, i: usize, at: Instant) {
        self.entries.lock()[i].sent_at = Some(at);
    }

    pub fn complete(&self, i: usize, outcome: Result<(i32, i64), Error>, at: Instant) {
        let mut e = self.entries.lock();
        let e = &mut e[i];
        e.fired += 1;
        e.outcome = Some(outcome);
        e.done_at = Some(at);
    }

    /// Whether every record sent so far to partition `p` (of `n`) has completed.
    pub fn idle(&self, p: i32, n: i32) -> bool {
        self.entries.lock().iter().enumerate().all(|(i, e)| {
            e.sent_at.is_none()
                || e.fired > 0
                || crate::partitioner::murmur2_partition(
                    format!("k{}", i % 29).as_bytes(),
                    n as u32,
                ) != p as u32
        })
    }

    /// Each record's outcome and when it came (from `start`), as text (to compare runs).
    pub fn outcomes(&self, start: Instant) -> Vec<String> {
        self.entries
            .lock()
            .iter()
            .map(|e| format!("{:?}@{:?}", e.outcome, e.done_at.map(|t| t - start)))
            .collect()
    }
}

/// Checks a finished run.
pub(super) fn check(w: &World) -> Result<(), String> {
    let entries = w.ledger.entries.lock().clone();
    // Where each record is in the log, and the send order per partition.
    let mut at: HashMap<usize, (i32, i64)> = HashMap::new();
    for p in 0..w.sc.partitions {
        let mut last: Option<usize> = None;
        for r in w.cluster.records(TOPIC, p) {
            let v = r.value.as_deref().ok_or("a record without a value")?;
            let i: usize = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or("a value nobody sent")?;
            if i >= entries.len() {
                return Err(format!("record {i} in the log was never sent"));
            }
            if let Some(first) = at.insert(i, (p, r.offset)) {
                return Err(format!(
                    "record {i} is in the log twice: {}/{} and {p}/{}",
                    first.0, first.1, r.offset
                ));
            }
            if let Some(l) = last {
                if i < l {
                    return Err(format!(
                        "partition {p}: record {i} at offset {} follows record {l}: out of send \
                         order",
                        r.offset
                    ));
                }
            }
            last = Some(i);
        }
    }
    // Completing takes up to a request timeout past the deadline for a batch in flight when
    // it passes (its answer, or the request timeout, settles it), plus the linger it waited.
    let bound =
        w.sc.delivery_timeout + w.sc.request_timeout + w.sc.linger + Duration::from_millis(1);
    for (i, e) in entries.iter().enumerate() {
        let sent = e
            .sent_at
            .ok_or_else(|| format!("record {i} was never sent"))?;
        if e.fired != 1 {
            return Err(format!("record {i}: {} completions", e.fired));
        }
        let done = e.done_at.expect("fired");
        if done - sent > bound {
            return Err(format!(
                "record {i} completed {:?} after it was sent, past the delivery timeout {:?} \
                 (+ request timeout + linger): {:?}",
                done - sent,
                w.sc.delivery_timeout,
                e.outcome
            ));
        }
        match e.outcome.as_ref().expect("fired") {
            Ok((p, off)) => match at.get(&i) {
                Some(&(lp, lo)) if (lp, lo) == (*p, *off) => {}
                Some(&(lp, lo)) => {
                    return Err(format!(
                        "record {i} reported at {p}/{off} but is in the log at {lp}/{lo}"
                    ))
                }
                None => return Err(format!("record {i} reported at {p}/{off}, not in the log")),
            },
            Err(err) => {
                // What the error says of the log must be true: a record said not to be
                // persisted is not there (one in the log said so could be sent again and
                // written twice).
                if let (DeliveryStatus::NotPersisted, Some((p, off))) =
                    (err.delivery_status(), at.get(&i))
                {
                    return Err(format!(
                        "record {i} failed as not persisted ({err}) but is in the log at {p}/{off}"
                    ));
                }
                // (A transactional run's abort after the faults is checked with the
                // transactions.)
                let aborted = w.txn.as_ref().is_some_and(|d| d.aborted.contains(&i));
                if i >= w.quiet_from && !aborted {
                    return Err(format!(
                        "record {i}, sent after every fault was over, failed: {err}"
                    ));
                }
                let named = match err {
                    Error::Timeout { deadline, .. } => {
                        matches!(deadline, Deadline::Delivery | Deadline::Metadata)
                    }
                    Error::Kafka { code, .. } => {
                        w.sc.fatal_codes.contains(code)
                            // A maybe-written batch the broker answers as if it lost the
                            // producer's state fails with that answer (it cannot be settled).
                            || matches!(
                                *code,
                                ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER
                                    | ErrorCode::UNKNOWN_PRODUCER_ID
                                    | ErrorCode::INVALID_PRODUCER_EPOCH
                            )
                    }
                    // Failed by the abort of its transaction before it was sent.
                    Error::Transaction {
                        kind: crate::TransactionError::Abortable,
                        ..
                    } => w.txn.as_ref().is_some_and(|d| d.aborted.contains(&i)),
                    _ => false,
                };
                if !named {
                    return Err(format!(
                        "record {i} failed without a reason the run explains: {err:?}"
                    ));
                }
            }
        }
    }
    Ok(())
}
