//! The idempotence policy: what each answer to a batch means for that batch and for the
//! producer's epoch, decided in one place, from the code and the batch's state, unit-tested
//! row by row. The mechanism (sequence numbers, renumbering, the hold) is in [`super::batch`];
//! the produce pipeline carries the decisions out.
//!
//! The words:
//! - **maybe written**: an attempt ended without a definite answer (the connection died, the
//!   request timed out, or an error the broker can give after appending). Such a batch is
//!   never renumbered: only resending it under its own ids can settle what happened.
//! - **given up**: a batch fails (non-retriable error, delivery timeout). Its sequences leave
//!   a gap: if the broker certainly does not have it, the later batches are **rewound** (take
//!   its sequences) once the partition is settled; if it may have it, only an **epoch bump**
//!   (KIP-360) makes the partition usable again.
//! - **hold**: while a bump is wanted or a gap waits, a partition sends nothing new; a
//!   maybe-written batch at its front goes alone, to learn its fate.
//!
//! The producer's id and epoch, whether they are known, and whether a bump is wanted are one
//! versioned value ([`ProducerState`]) that every I/O thread reads without a lock.

use arc_swap::ArcSwap;

use super::batch::ProducerIds;
use crate::protocol::ErrorCode;

/// The producer id state every thread sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdState {
    pub ids: ProducerIds,
    /// An InitProducerId has answered (the ids are usable).
    pub ready: bool,
    /// The epoch must be bumped: partitions hold new batches until thread 0 has it.
    pub bump_wanted: bool,
    /// Bumped at every change.
    pub version: u64,
}

/// [`IdState`], shared: lock-free reads, copy-on-write changes (rare: errors and answers).
pub(crate) struct ProducerState(ArcSwap<IdState>);

impl Default for ProducerState {
    fn default() -> Self {
        ProducerState(ArcSwap::from_pointee(IdState {
            ids: ProducerIds::NONE,
            ready: false,
            bump_wanted: false,
            version: 0,
        }))
    }
}

impl ProducerState {
    /// The state now.
    #[inline]
    pub fn get(&self) -> IdState {
        **self.0.load()
    }

    /// Asks for an epoch bump (idempotent).
    pub fn want_bump(&self) {
        self.0.rcu(|s| {
            if s.bump_wanted {
                **s
            } else {
                IdState {
                    bump_wanted: true,
                    version: s.version + 1,
                    ..**s
                }
            }
        });
    }

    /// New ids arrived; after a bump, the bump is done.
    pub fn set_ids(&self, ids: ProducerIds, bumped: bool) {
        self.0.rcu(|s| IdState {
            ids,
            ready: true,
            bump_wanted: s.bump_wanted && !bumped,
            version: s.version + 1,
        });
    }
}

impl IdState {
    /// Whether a partition numbering its batches under `uses` holds new batches (see the
    /// module docs): no ids yet (idempotent producers), a bump wanted, or ids it has not
    /// adopted yet.
    pub fn hold(&self, idempotence: bool, partition_uses_current: bool) -> bool {
        (idempotence && !self.ready) || self.bump_wanted || !partition_uses_current
    }
}

/// What to do with a batch after an answer or an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Delivered (`duplicate`: an earlier attempt was, and the broker says so).
    Ack { duplicate: bool },
    /// Back in line, after the backoff, until its delivery timeout.
    Retry,
    /// Failed with the answer's error (given up: see the module docs).
    Fail,
    /// Too large for the broker (MESSAGE_TOO_LARGE): split in two halves that keep the
    /// batch's sequences, sent again without a backoff (as the Java client does). A batch of
    /// one record cannot be split: it fails.
    Split,
}

/// A decision: the action, and what it implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Decision {
    pub action: Action,
    /// The batch may have been written by this attempt.
    pub maybe_written: bool,
    /// Ask for an epoch bump.
    pub bump: bool,
    /// The partition's leadership changed: learn where it is now (a leader hint, or
    /// metadata).
    pub leadership: bool,
}

impl Decision {
    const fn of(action: Action) -> Decision {
        Decision {
            action,
            maybe_written: false,
            bump: false,
            leadership: false,
        }
    }
}

/// What a partition's error code in a Produce answer means for the batch it answers.
///
/// `idempotent`: the batch carries a producer id. `maybe_written`: an earlier attempt of it
/// ended without a definite answer. `explained`: for OUT_OF_ORDER_SEQUENCE_NUMBER, whether the
/// producer's own state accounts for it (a bump already wanted, a gap waiting for its rewind,
/// or an earlier batch of the partition still outstanding that this one overtook); if not, the
/// broker lost track of the producer's sequences.
///
/// A maybe-written batch that the broker answers as if it had lost the producer's state
/// (unexplained OUT_OF_ORDER, UNKNOWN_PRODUCER_ID, INVALID_PRODUCER_EPOCH) fails at once: sent
/// again under its own ids it can never be settled, and it must not be renumbered (the broker
/// may have it). It used to be resent until its delivery timeout, holding its partition — and
/// the epoch bump — all that time.
pub(crate) fn on_answer(
    code: ErrorCode,
    idempotent: bool,
    maybe_written: bool,
    explained: bool,
) -> Decision {
    use Action::*;
    let leadership = matches!(
        code,
        ErrorCode::NOT_LEADER_OR_FOLLOWER
            | ErrorCode::LEADER_NOT_AVAILABLE
            | ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
            | ErrorCode::FENCED_LEADER_EPOCH
            | ErrorCode::UNKNOWN_LEADER_EPOCH
    );
    let mut d = match code {
        ErrorCode::NONE => Decision::of(Ack { duplicate: false }),
        ErrorCode::DUPLICATE_SEQUENCE_NUMBER => Decision::of(Ack { duplicate: true }),
        // Not written by this attempt (an earlier one may have been: the batch's own flag
        // stays as it is).
        ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER if idempotent => Decision {
            bump: !explained,
            ..Decision::of(if maybe_written && !explained {
                Fail
            } else {
                Retry
            })
        },
        ErrorCode::UNKNOWN_PRODUCER_ID | ErrorCode::INVALID_PRODUCER_EPOCH if idempotent => {
            Decision {
                bump: true,
                ..Decision::of(if maybe_written { Fail } else { Retry })
            }
        }
        // These the broker may give after appending (a replication timeout; leadership
        // lost while waiting for acks=all).
        ErrorCode::REQUEST_TIMED_OUT
        | ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND
        | ErrorCode::NETWORK_EXCEPTION
        | ErrorCode::NOT_LEADER_OR_FOLLOWER => Decision {
            maybe_written: true,
            ..Decision::of(Retry)
        },
        // The broker checks the size before it appends, so this attempt was not written; nor
        // was an earlier one (a batch over the limit cannot have been, unless the limit was
        // lowered since — then the first half meets the stored batch's sequences, is answered
        // OUT_OF_ORDER, and fails as a maybe-written batch must). The halves keep the batch's
        // maybe-written flag: neither is ever renumbered. The simulation found batches
        // flagged by a cut connection failing whole when this split only unflagged ones.
        ErrorCode::MESSAGE_TOO_LARGE => Decision::of(Split),
        c if c.is_retriable() => Decision::of(Retry),
        _ => Decision::of(Fail),
    };
    d.leadership = leadership;
    d
}

/// An attempt that ended without an answer: the connection died with the request on it, the
/// request timed out, or the answer could not be read. The broker may have it.
pub(crate) const UNANSWERED: Decision = Decision {
    action: Action::Retry,
    maybe_written: true,
    bump: false,
    leadership: false,
};

/// A batch given up (failed): whether its partition now has a gap to close, and whether only
/// an epoch bump can close it (the broker may have the batch).
pub(crate) fn given_up(idempotent: bool, maybe_written: bool) -> (bool, bool) {
    (idempotent, idempotent && maybe_written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    /// (code, idempotent, maybe written before, explained) → (action, maybe written, bump,
    /// leadership).
    #[test]
    fn every_answer_row_by_row() {
        use ErrorCode as E;
        /// (code, idempotent, maybe written before, explained, action, maybe written, bump,
        /// leadership).
        type Row = (ErrorCode, bool, bool, bool, Action, bool, bool, bool);
        #[rustfmt::skip]
        let rows: &[Row] = &[
            // code                               idem   maybe  expl.  action                   maybe  bump   leader
            (E::NONE,                             true,  false, false, Ack { duplicate: false }, false, false, false),
            (E::DUPLICATE_SEQUENCE_NUMBER,        true,  true,  false, Ack { duplicate: true },  false, false, false),
            // The broker lost this producer's sequences: bump, and resend after it.
            (E::OUT_OF_ORDER_SEQUENCE_NUMBER,     true,  false, false, Retry, false, true,  false),
            // ... unless the broker may have the batch: it can never be settled, fail it.
            (E::OUT_OF_ORDER_SEQUENCE_NUMBER,     true,  true,  false, Fail,  false, true,  false),
            // Our own state explains it (a gap, a bump under way, an overtaking batch).
            (E::OUT_OF_ORDER_SEQUENCE_NUMBER,     true,  false, true,  Retry, false, false, false),
            (E::OUT_OF_ORDER_SEQUENCE_NUMBER,     true,  true,  true,  Retry, false, false, false),
            // Without idempotence it is just a non-retriable code.
            (E::OUT_OF_ORDER_SEQUENCE_NUMBER,     false, false, false, Fail,  false, false, false),
            (E::UNKNOWN_PRODUCER_ID,              true,  false, false, Retry, false, true,  false),
            (E::UNKNOWN_PRODUCER_ID,              true,  true,  false, Fail,  false, true,  false),
            (E::INVALID_PRODUCER_EPOCH,           true,  false, true,  Retry, false, true,  false),
            (E::INVALID_PRODUCER_EPOCH,           true,  true,  false, Fail,  false, true,  false),
            (E::UNKNOWN_PRODUCER_ID,              false, false, false, Fail,  false, false, false),
            // What a broker may answer after appending: maybe written.
            (E::REQUEST_TIMED_OUT,                true,  false, false, Retry, true,  false, false),
            (E::REQUEST_TIMED_OUT,                true,  true,  false, Retry, true,  false, false),
            (E::NOT_ENOUGH_REPLICAS_AFTER_APPEND, true,  false, false, Retry, true,  false, false),
            (E::NETWORK_EXCEPTION,                false, false, false, Retry, true,  false, false),
            (E::NOT_LEADER_OR_FOLLOWER,           true,  false, false, Retry, true,  false, true),
            // Leadership moved: learn where (a leader hint, or metadata).
            (E::LEADER_NOT_AVAILABLE,             true,  true,  false, Retry, false, false, true),
            (E::UNKNOWN_TOPIC_OR_PARTITION,       true,  false, false, Retry, false, false, true),
            (E::FENCED_LEADER_EPOCH,              true,  false, false, Retry, false, false, true),
            (E::NOT_ENOUGH_REPLICAS,              true,  false, false, Retry, false, false, false),
            (E::CORRUPT_MESSAGE,                  true,  false, false, Retry, false, false, false),
            // Non-retriable: given up (a gap; a bump too if it may be written: `given_up`).
            // Too large: split (a single record then fails).
            (E::MESSAGE_TOO_LARGE,                true,  false, false, Split, false, false, false),
            (E::MESSAGE_TOO_LARGE,                false, false, false, Split, false, false, false),
            (E::MESSAGE_TOO_LARGE,                true,  true,  false, Split, false, false, false),
            (E::RECORD_LIST_TOO_LARGE,            true,  false, false, Fail,  false, false, false),
            (E::INVALID_RECORD,                   true,  false, false, Fail,  false, false, false),
            (E::TOPIC_AUTHORIZATION_FAILED,       true,  false, false, Fail,  false, false, false),
            (E::CLUSTER_AUTHORIZATION_FAILED,     true,  false, false, Fail,  false, false, false),
        ];
        for &(code, idem, was_maybe, explained, action, maybe, bump, leadership) in rows {
            let want = Decision {
                action,
                maybe_written: maybe,
                bump,
                leadership,
            };
            assert_eq!(
                on_answer(code, idem, was_maybe, explained),
                want,
                "{} idempotent={idem} maybe_written={was_maybe} explained={explained}",
                code.name()
            );
        }
    }

    #[test]
    fn unanswered_attempts_may_be_written_and_given_up_batches_leave_a_gap() {
        let retry_maybe_written = Decision {
            action: Retry,
            maybe_written: true,
            bump: false,
            leadership: false,
        };
        assert_eq!(UNANSWERED, retry_maybe_written);
        assert_eq!(given_up(true, false), (true, false), "gap: rewind");
        assert_eq!(given_up(true, true), (true, true), "gap: bump");
        assert_eq!(given_up(false, true), (false, false), "nothing to renumber");
    }

    #[test]
    fn the_shared_state_is_versioned() {
        let s = ProducerState::default();
        let a = s.get();
        assert!(!a.ready && !a.bump_wanted);
        assert!(a.hold(true, true), "no ids yet");
        assert!(!a.hold(false, true), "not idempotent");
        let ids = ProducerIds {
            producer_id: 4,
            epoch: 0,
        };
        s.set_ids(ids, false);
        let b = s.get();
        assert_eq!((b.ids, b.ready, b.version), (ids, true, 1));
        assert!(!b.hold(true, true));
        assert!(b.hold(true, false), "ids not adopted yet");
        s.want_bump();
        s.want_bump();
        let c = s.get();
        assert!(c.bump_wanted && c.hold(true, true));
        assert_eq!(c.version, 2, "a second ask changes nothing");
        s.set_ids(ProducerIds { epoch: 1, ..ids }, true);
        let d = s.get();
        assert!(!d.bump_wanted);
        assert_eq!((d.ids.epoch, d.version), (1, 3));
    }
}
