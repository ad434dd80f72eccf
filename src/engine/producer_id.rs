//! The producer id: what an InitProducerId answer means for an idempotent producer. No
//! sockets, no clock: a code in, a decision out, unit-tested row by row.
//!
//! - Success: the id and epoch to use (after a bump, partitions renumber from sequence 0).
//! - Retriable codes (coordinator loading or moving, concurrent transactions, ...): ask again
//!   after a backoff that doubles up to `retry_backoff_max`. Records waiting for the id are
//!   still bounded by their delivery timeout.
//! - A refused KIP-360 bump (same id, next epoch) that is not an authorization failure: ask
//!   for a fresh id instead.
//! - Anything else (`CLUSTER_AUTHORIZATION_FAILED`: the principal lacks IdempotentWrite; a
//!   broker without InitProducerId): the producer cannot be idempotent. Every waiting record
//!   fails with the code at once, and so does every later send, as the Java client's fatal
//!   state does.

use crate::error::{Error, Location};
use crate::protocol::ErrorCode;

use super::batch::ProducerIds;

/// What to do after an InitProducerId answer.
#[derive(Debug, Clone)]
pub(crate) enum PidDecision {
    /// Use these ids.
    Ready(ProducerIds),
    /// Ask again after the backoff; `fresh`: for a new id, not a bump of the current one.
    Retry { fresh: bool },
    /// Idempotence is impossible: fail everything with this.
    Fatal(Error),
}

/// Decides what an InitProducerId answer (`code`, ids) means; `bumping` says whether the
/// request asked to bump the current epoch.
pub(crate) fn decide(code: ErrorCode, ids: ProducerIds, bumping: bool) -> PidDecision {
    if code == ErrorCode::NONE {
        return PidDecision::Ready(ids);
    }
    if code.is_retriable() {
        return PidDecision::Retry { fresh: false };
    }
    let authorization = matches!(
        code,
        ErrorCode::CLUSTER_AUTHORIZATION_FAILED | ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    );
    if bumping && !authorization {
        // INVALID_PRODUCER_EPOCH, PRODUCER_FENCED, UNKNOWN_PRODUCER_ID, ...: the broker will
        // not bump this id; a new one starts clean.
        return PidDecision::Retry { fresh: true };
    }
    PidDecision::Fatal(fatal(code, None))
}

/// The error every record fails with once idempotence is impossible.
pub(crate) fn fatal(code: ErrorCode, why: Option<&str>) -> Error {
    Error::Kafka {
        code,
        message: Some(
            why.unwrap_or(
                "InitProducerId refused: an idempotent producer needs a producer id (allow \
                 IdempotentWrite on the cluster, or turn idempotence off)",
            )
            .to_string(),
        ),
        at: Location::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: ProducerIds = ProducerIds {
        producer_id: 7,
        epoch: 3,
    };

    #[test]
    fn each_answer_maps_to_one_decision() {
        use ErrorCode as E;
        use PidDecision::*;
        let rows: &[(ErrorCode, bool, PidDecision)] = &[
            (E::NONE, false, Ready(IDS)),
            (E::NONE, true, Ready(IDS)),
            (
                E::COORDINATOR_LOAD_IN_PROGRESS,
                false,
                Retry { fresh: false },
            ),
            (E::COORDINATOR_NOT_AVAILABLE, true, Retry { fresh: false }),
            (E::NOT_COORDINATOR, false, Retry { fresh: false }),
            (E::CONCURRENT_TRANSACTIONS, false, Retry { fresh: false }),
            (E::REQUEST_TIMED_OUT, false, Retry { fresh: false }),
            (E::INVALID_PRODUCER_EPOCH, true, Retry { fresh: true }),
            (E::PRODUCER_FENCED, true, Retry { fresh: true }),
            (E::UNKNOWN_PRODUCER_ID, true, Retry { fresh: true }),
            (
                E::CLUSTER_AUTHORIZATION_FAILED,
                false,
                Fatal(fatal(E::CLUSTER_AUTHORIZATION_FAILED, None)),
            ),
            (
                E::CLUSTER_AUTHORIZATION_FAILED,
                true,
                Fatal(fatal(E::CLUSTER_AUTHORIZATION_FAILED, None)),
            ),
            (
                E::INVALID_PRODUCER_EPOCH,
                false,
                Fatal(fatal(E::INVALID_PRODUCER_EPOCH, None)),
            ),
            (
                E::UNSUPPORTED_VERSION,
                false,
                Fatal(fatal(E::UNSUPPORTED_VERSION, None)),
            ),
        ];
        for (code, bumping, want) in rows {
            // Error is not PartialEq (it carries io::Error): compare what Debug shows.
            assert_eq!(
                format!("{:?}", decide(*code, IDS, *bumping)),
                format!("{want:?}"),
                "{} bump={bumping}",
                code.name()
            );
        }
    }

    #[test]
    fn the_fatal_error_names_the_code_and_is_not_retriable() {
        let e = fatal(ErrorCode::CLUSTER_AUTHORIZATION_FAILED, None);
        assert!(!e.is_retriable());
        assert!(
            e.to_string().contains("CLUSTER_AUTHORIZATION_FAILED"),
            "{e}"
        );
    }
}
