//! The producer's error type: one `#[non_exhaustive]` enum whose variants say what went wrong
//! and for which topic and partition, and whether trying again can help.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::protocol::{DecodeError, ErrorCode};

/// Which deadline expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Deadline {
    /// `delivery_timeout`: from `send` to the record's completion.
    Delivery,
    /// `request_timeout`: one request to one broker.
    Request,
    /// `metadata_timeout`: waiting for a topic's metadata.
    Metadata,
    /// `max_block`: waiting for room in the buffer.
    QueueFull,
    /// The timeout given to `flush`.
    Flush,
    /// The timeout given to `close`.
    Close,
    /// The timeout given to `purge`.
    Purge,
    /// The timeout given to a transaction call (`init_transactions`,
    /// `send_offsets_to_transaction`, `commit_transaction`, `abort_transaction`). The call may
    /// be repeated: it carries on where it stopped.
    Transaction,
}

impl fmt::Display for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Deadline::Delivery => "delivery timeout",
            Deadline::Request => "request timeout",
            Deadline::Metadata => "metadata timeout",
            Deadline::QueueFull => "max block (buffer full)",
            Deadline::Flush => "flush timeout",
            Deadline::Close => "close timeout",
            Deadline::Purge => "purge timeout",
            Deadline::Transaction => "transaction call timeout",
        })
    }
}

/// What a transactional producer's failed call or record means for the application (as the
/// Java client's and librdkafka's transaction errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransactionError {
    /// Another producer with the same `transactional.id` has started (PRODUCER_FENCED,
    /// INVALID_PRODUCER_EPOCH): this one can do nothing more; close it.
    Fenced,
    /// The producer cannot go on (an authorization failure, a broker without transactions,
    /// an invalid transition the coordinator refused): close it.
    Fatal,
    /// The current transaction cannot commit (a record failed, a group's offsets were
    /// refused): call [`abort_transaction`](crate::Producer::abort_transaction), then start
    /// again.
    Abortable,
    /// The call is not allowed in the producer's transaction state (e.g. `begin` twice,
    /// `commit` without `begin`, a send outside a transaction): refused at the call, nothing
    /// changed.
    InvalidState,
}

impl fmt::Display for TransactionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransactionError::Fenced => "fenced: close the producer",
            TransactionError::Fatal => "fatal: close the producer",
            TransactionError::Abortable => "abortable: abort the transaction",
            TransactionError::InvalidState => "invalid state",
        })
    }
}

/// Whether a record is in the partition's log (librdkafka's `rd_kafka_msg_status_t`): what
/// an application needs to know before it sends a failed record again, since sending again a
/// record that may already be in the log can write it twice.
///
/// ```
/// use kprod::{DeliveryStatus, Error, protocol::ErrorCode};
/// // An error returned at the call, or a broker's definite refusal: not written.
/// let e = Error::kafka(ErrorCode::MESSAGE_TOO_LARGE, "orders", 0);
/// assert_eq!(e.delivery_status(), DeliveryStatus::NotPersisted);
/// assert!(!e.delivery_status().may_be_in_log());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum DeliveryStatus {
    /// Certainly not in the log: it was never sent, or every attempt was refused by a broker
    /// answer that means it was not written. Sending it again cannot duplicate it.
    #[default]
    NotPersisted,
    /// Perhaps in the log: an attempt was sent and no definite answer came back (the
    /// connection was lost, the request timed out, the broker answered REQUEST_TIMED_OUT, the
    /// record was purged or the producer closed while in flight), or it was sent with
    /// `acks=0`. Sending it again may write it twice.
    PossiblyPersisted,
    /// In the log: the broker acknowledged it.
    Persisted,
}

impl DeliveryStatus {
    /// The status of a record's outcome: `Persisted` for a delivered record (
    /// `PossiblyPersisted` with `acks=0`, where the broker does not answer), the error's
    /// [`Error::delivery_status`] for a failed one.
    pub fn of(result: &crate::DeliveryResult) -> DeliveryStatus {
        match result {
            Ok(m) => m.status(),
            Err(e) => e.delivery_status(),
        }
    }

    /// Whether the record may be in the log (`PossiblyPersisted` or `Persisted`).
    pub fn may_be_in_log(self) -> bool {
        self != DeliveryStatus::NotPersisted
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeliveryStatus::NotPersisted => "not persisted",
            DeliveryStatus::PossiblyPersisted => "possibly persisted",
            DeliveryStatus::Persisted => "persisted",
        })
    }
}

/// Where an error applies: a topic, and a partition when one was chosen; and, for a record's
/// delivery error, whether the record may be in the log anyway.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    /// The topic, if the error concerns one.
    pub topic: Option<Arc<str>>,
    /// The partition, if one was chosen.
    pub partition: Option<i32>,
    /// Whether the record is in the log ([`DeliveryStatus::NotPersisted`] for an error
    /// returned at the call).
    pub status: DeliveryStatus,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.topic, self.partition) {
            (Some(t), Some(p)) => write!(f, "{t}[{p}]: "),
            (Some(t), None) => write!(f, "{t}: "),
            _ => Ok(()),
        }
    }
}

/// Everything that can go wrong producing a record. Cheap to clone: one failure of a batch is
/// delivered to each of its records.
///
/// ```
/// use kprod::{Error, protocol::ErrorCode};
/// let e = Error::kafka(ErrorCode::NOT_ENOUGH_REPLICAS, "orders", 3);
/// assert!(e.is_retriable());
/// assert_eq!(e.topic(), Some("orders"));
/// assert_eq!(e.to_string(), "orders[3]: broker error NOT_ENOUGH_REPLICAS (19), retriable: Messages are rejected since there are fewer in-sync replicas than required.");
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The broker answered with a Kafka error code.
    #[error("{at}broker error {} ({}), {}: {}{}", code.name(), code.code(),
        if code.is_retriable() { "retriable" } else { "not retriable" },
        code.description(),
        message.as_deref().filter(|m| *m != code.description())
            .map(|m| format!(" ({m})")).unwrap_or_default())]
    Kafka {
        /// The code.
        code: ErrorCode,
        /// The broker's message, if it sent one.
        message: Option<String>,
        /// Where.
        at: Location,
    },
    /// A deadline expired.
    #[error("{at}{deadline} of {after:?} expired")]
    Timeout {
        /// Which one.
        deadline: Deadline,
        /// Its length.
        after: Duration,
        /// Where.
        at: Location,
    },
    /// The buffer was full (`try_send`, or `send` after `max_block`).
    #[error("{at}the producer's buffer is full")]
    QueueFull {
        /// Where.
        at: Location,
    },
    /// The record is larger than the producer's or the broker's limit.
    #[error("{at}record of {size} bytes exceeds the limit of {limit} bytes ({which})")]
    RecordTooLarge {
        /// The record's encoded size.
        size: usize,
        /// The limit.
        limit: usize,
        /// Which limit (`max_request_size`, `batch_size`, the broker's `message.max.bytes`).
        which: &'static str,
        /// Where.
        at: Location,
    },
    /// The topic does not exist (after waiting for metadata).
    #[error("{at}unknown topic")]
    UnknownTopic {
        /// Where.
        at: Location,
    },
    /// The topic name is not a legal Kafka topic name.
    #[error("invalid topic name {topic:?}: {reason}")]
    InvalidTopic {
        /// The name given.
        topic: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The record names a partition the topic does not have.
    #[error("{at}partition out of range: the topic has {partition_count} partitions")]
    InvalidPartition {
        /// How many the topic has.
        partition_count: u32,
        /// Where.
        at: Location,
    },
    /// The producer is closed (a send after [`close`](crate::Producer::close), or a record
    /// still pending when the producer was dropped or closed).
    #[error("{at}the producer is closed")]
    Closed {
        /// Where (for a pending record), and whether it was in flight.
        at: Location,
    },
    /// A typed producer's serializer could not encode a key or value.
    #[error("{topic}: serialization failed: {reason}")]
    Serialization {
        /// The topic.
        topic: String,
        /// Why.
        reason: String,
    },
    /// A configuration option is invalid.
    #[error("invalid configuration `{option}`: {reason}")]
    Config {
        /// The option's name.
        option: String,
        /// Why.
        reason: String,
    },
    /// SASL authentication with a broker failed: wrong credentials, a mechanism the broker
    /// does not enable, or a broker that could not prove it knows the credential (SCRAM).
    /// Not retriable: the configuration must change.
    #[error("{at}authentication with {broker} failed ({mechanism}): {message}")]
    Authentication {
        /// The broker's address.
        broker: String,
        /// The SASL mechanism.
        mechanism: &'static str,
        /// What failed: the broker's message, or the client's finding.
        message: String,
        /// Where.
        at: Location,
    },
    /// The TLS handshake with a broker failed. Not retriable: trust, names or certificates
    /// must change.
    #[error("{at}TLS with {broker} failed: {kind}: {message}")]
    Tls {
        /// The broker's address.
        broker: String,
        /// What kind of failure.
        kind: crate::tls::TlsFailure,
        /// rustls' description.
        message: String,
        /// Where.
        at: Location,
    },
    /// A connection failed.
    #[error("{at}I/O error talking to {broker}: {source}")]
    Io {
        /// The broker's address.
        broker: String,
        /// The cause.
        source: Arc<std::io::Error>,
        /// Where.
        at: Location,
    },
    /// The application purged the record ([`Producer::purge`](crate::Producer::purge))
    /// before it was delivered. `in_flight`: it had been sent, and the broker may still
    /// write it (purged with [`PurgeScope::BufferedAndInFlight`](crate::PurgeScope));
    /// otherwise it certainly was not written. Not retriable: the application asked for it.
    #[error("{at}purged before delivery{}", if *in_flight { " (in flight: the broker may still write it)" } else { "" })]
    Purged {
        /// Whether it had been sent.
        in_flight: bool,
        /// Where.
        at: Location,
    },
    /// A transactional producer's call or record failed: [`TransactionError`] says what the
    /// application may do next. Not retriable as such (a timed-out transaction call is
    /// [`Error::Timeout`] with [`Deadline::Transaction`], and may be repeated).
    #[error("{at}transaction error ({kind}){}: {message}", code.map(|c| format!(" {}", c.name())).unwrap_or_default())]
    Transaction {
        /// What the application may do.
        kind: TransactionError,
        /// The broker's code, when it gave one.
        code: Option<ErrorCode>,
        /// What happened.
        message: String,
        /// Where (for a record's failure).
        at: Location,
    },
    /// A [`ProducerInterceptor`](crate::ProducerInterceptor)'s `on_send` refused the record
    /// (or panicked): the call fails and the record is handed back. Not retriable as such:
    /// the interceptor decided.
    #[error("interceptor {interceptor} refused the record: {reason}")]
    Interceptor {
        /// The interceptor's name.
        interceptor: String,
        /// Its reason.
        reason: String,
    },
    /// A broker sent bytes that are not valid Kafka protocol.
    #[error("{at}protocol error from {broker}: {source}")]
    Protocol {
        /// The broker's address.
        broker: String,
        /// What was wrong.
        source: DecodeError,
        /// Where.
        at: Location,
    },
}

impl Location {
    /// A topic and partition.
    pub fn at(topic: &str, partition: i32) -> Self {
        Location {
            topic: Some(topic.into()),
            partition: Some(partition),
            status: DeliveryStatus::NotPersisted,
        }
    }

    /// A topic, with no partition chosen.
    pub fn topic(topic: &str) -> Self {
        Location {
            topic: Some(topic.into()),
            partition: None,
            status: DeliveryStatus::NotPersisted,
        }
    }
}

/// Matches the variants that carry a [`Location`], binding it to `$at`.
macro_rules! located {
    ($e:expr, $at:ident => $then:expr, $otherwise:expr) => {
        match $e {
            Error::Kafka { $at, .. }
            | Error::Timeout { $at, .. }
            | Error::QueueFull { $at }
            | Error::RecordTooLarge { $at, .. }
            | Error::UnknownTopic { $at }
            | Error::InvalidPartition { $at, .. }
            | Error::Io { $at, .. }
            | Error::Authentication { $at, .. }
            | Error::Tls { $at, .. }
            | Error::Purged { $at, .. }
            | Error::Closed { $at }
            | Error::Transaction { $at, .. }
            | Error::Protocol { $at, .. } => $then,
            _ => $otherwise,
        }
    };
}

impl Error {
    /// A broker error for a topic and partition.
    pub fn kafka(code: ErrorCode, topic: &str, partition: i32) -> Self {
        Error::Kafka {
            code,
            message: None,
            at: Location::at(topic, partition),
        }
    }

    /// The error a record or call gets from a closed producer.
    pub fn closed() -> Self {
        Error::Closed {
            at: Location::default(),
        }
    }

    /// A configuration error naming the option.
    pub fn config(option: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Config {
            option: option.into(),
            reason: reason.into(),
        }
    }

    /// A short, stable name for the kind of error: the Kafka error code's name
    /// (`NOT_LEADER_OR_FOLLOWER`) for [`Error::Kafka`], else the variant's (`Timeout`,
    /// `QueueFull`, …). It is what the OpenTelemetry `error.type` attribute carries; it never
    /// holds a message or a secret.
    ///
    /// ```
    /// let e = kprod::Error::kafka(kprod::protocol::ErrorCode::NOT_LEADER_OR_FOLLOWER, "t", 0);
    /// assert_eq!(e.error_type(), "NOT_LEADER_OR_FOLLOWER");
    /// assert_eq!(kprod::Error::closed().error_type(), "Closed");
    /// ```
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::Kafka { code, .. } => code.name(),
            Error::Timeout { .. } => "Timeout",
            Error::QueueFull { .. } => "QueueFull",
            Error::RecordTooLarge { .. } => "RecordTooLarge",
            Error::UnknownTopic { .. } => "UnknownTopic",
            Error::InvalidTopic { .. } => "InvalidTopic",
            Error::InvalidPartition { .. } => "InvalidPartition",
            Error::Closed { .. } => "Closed",
            Error::Serialization { .. } => "Serialization",
            Error::Config { .. } => "Config",
            Error::Authentication { .. } => "Authentication",
            Error::Tls { .. } => "Tls",
            Error::Io { .. } => "Io",
            Error::Purged { .. } => "Purged",
            Error::Transaction { .. } => "Transaction",
            Error::Interceptor { .. } => "Interceptor",
            Error::Protocol { .. } => "Protocol",
        }
    }

    /// Whether sending the same record again may succeed: retriable Kafka errors, timeouts,
    /// a full buffer, connection and protocol failures. Not: invalid input, unknown topics,
    /// non-retriable Kafka errors, a closed producer.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Kafka { code, .. } => code.is_retriable(),
            Error::Timeout { .. } | Error::QueueFull { .. } | Error::Io { .. } => true,
            Error::Protocol { .. } => true,
            Error::RecordTooLarge { .. }
            | Error::UnknownTopic { .. }
            | Error::InvalidTopic { .. }
            | Error::InvalidPartition { .. }
            | Error::Closed { .. }
            | Error::Serialization { .. }
            | Error::Config { .. }
            | Error::Authentication { .. }
            | Error::Purged { .. }
            | Error::Transaction { .. }
            | Error::Interceptor { .. }
            | Error::Tls { .. } => false,
        }
    }

    fn location(&self) -> Option<&Location> {
        located!(self, at => Some(at), None)
    }

    /// The same error at `loc` (for the errors that carry a location).
    pub(crate) fn at(mut self, loc: Location) -> Self {
        located!(&mut self, at => *at = loc, ());
        self
    }

    /// Whether the record this error failed may be in the log anyway ([`DeliveryStatus`]).
    /// An error returned at the call is always `NotPersisted`; a record's delivery error
    /// says what its batch's attempts left behind.
    ///
    /// ```
    /// use kprod::{DeliveryStatus, Error};
    /// assert_eq!(Error::closed().delivery_status(), DeliveryStatus::NotPersisted);
    /// ```
    pub fn delivery_status(&self) -> DeliveryStatus {
        located!(self, at => at.status, DeliveryStatus::NotPersisted)
    }

    /// The same error with `status` (for the errors that carry a location).
    pub(crate) fn with_status(mut self, status: DeliveryStatus) -> Self {
        located!(&mut self, at => at.status = status, ());
        self
    }

    /// The topic the error concerns, if any.
    pub fn topic(&self) -> Option<&str> {
        match self {
            Error::InvalidTopic { topic, .. } | Error::Serialization { topic, .. } => Some(topic),
            _ => self.location()?.topic.as_deref(),
        }
    }

    /// The partition the error concerns, if one was chosen.
    pub fn partition(&self) -> Option<i32> {
        self.location()?.partition
    }

    /// The Kafka error code, if the broker sent one.
    pub fn kafka_code(&self) -> Option<ErrorCode> {
        match self {
            Error::Kafka { code, .. } => Some(*code),
            Error::Transaction { code, .. } => *code,
            _ => None,
        }
    }

    /// For a transactional producer's error: what the application may do
    /// ([`TransactionError`]); `None` for other errors.
    pub fn transaction_error(&self) -> Option<TransactionError> {
        match self {
            Error::Transaction { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    pub(crate) fn transaction(
        kind: TransactionError,
        code: Option<ErrorCode>,
        message: impl Into<String>,
    ) -> Self {
        Error::Transaction {
            kind,
            code,
            message: message.into(),
            at: Location::default(),
        }
    }
}

/// The longest legal topic name.
pub const MAX_TOPIC_LEN: usize = 249;

/// Checks a topic name as the broker would: 1–249 characters from `[a-zA-Z0-9._-]`, and not
/// `.` or `..`.
///
/// ```
/// use kprod::error::validate_topic;
/// assert!(validate_topic("orders.v2_eu-west").is_ok());
/// assert!(validate_topic("..").is_err());
/// assert!(validate_topic("no spaces").is_err());
/// ```
pub fn validate_topic(topic: &str) -> Result<(), Error> {
    let reason = if topic.is_empty() {
        "it is empty"
    } else if topic.len() > MAX_TOPIC_LEN {
        "it is longer than 249 characters"
    } else if topic == "." || topic == ".." {
        "`.` and `..` are not allowed"
    } else if !topic
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        "only ASCII letters, digits, `.`, `_` and `-` are allowed"
    } else {
        return Ok(());
    };
    Err(Error::InvalidTopic {
        topic: topic.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retriability() {
        assert!(Error::kafka(ErrorCode::NOT_LEADER_OR_FOLLOWER, "t", 0).is_retriable());
        assert!(!Error::kafka(ErrorCode::MESSAGE_TOO_LARGE, "t", 0).is_retriable());
        assert!(!Error::closed().is_retriable());
        assert!(!validate_topic("").unwrap_err().is_retriable());
        let t = Error::Timeout {
            deadline: Deadline::Delivery,
            after: Duration::from_secs(120),
            at: Location::at("t", 2),
        };
        assert!(t.is_retriable());
        assert_eq!(t.to_string(), "t[2]: delivery timeout of 120s expired");
        assert_eq!((t.topic(), t.partition()), (Some("t"), Some(2)));
    }

    #[test]
    fn topic_names() {
        for ok in ["a", "A-b_c.d", &"x".repeat(249)] {
            assert!(validate_topic(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            (".", "`.`"),
            ("..", "`..`"),
            (&"x".repeat(250) as &str, "249"),
            ("a b", "ASCII"),
            ("caf\u{e9}", "ASCII"),
            ("a/b", "ASCII"),
        ] {
            let e = validate_topic(bad).unwrap_err();
            assert!(e.to_string().contains(why), "{bad:?}: {e}");
            assert_eq!(e.topic(), Some(bad));
        }
    }

    #[test]
    fn errors_are_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<Error>();
    }
}
