//! What a caller hands the producer: [`ProducerRecord`], and [`Payload`], the conversion that
//! lets keys and values be given as `&str`, `&[u8]`, `String`, `Vec<u8>` or [`Bytes`] (the last
//! three without copying).

use std::borrow::Cow;

use bytes::Bytes;

use crate::protocol::record_batch::Header;

/// A key or a value: converts into the bytes sent, or `None` for null.
///
/// Owned buffers (`Vec<u8>`, `String`, [`Bytes`], `&'static` data via [`Bytes::from_static`])
/// are taken without copying; borrowed slices are copied once.
pub trait Payload {
    /// The bytes, or `None` for a null key or value.
    fn into_payload(self) -> Option<Bytes>;
}

impl Payload for Bytes {
    #[inline]
    fn into_payload(self) -> Option<Bytes> {
        Some(self)
    }
}
impl Payload for Vec<u8> {
    #[inline]
    fn into_payload(self) -> Option<Bytes> {
        Some(Bytes::from(self))
    }
}
impl Payload for String {
    #[inline]
    fn into_payload(self) -> Option<Bytes> {
        Some(Bytes::from(self))
    }
}
impl Payload for &[u8] {
    #[inline]
    fn into_payload(self) -> Option<Bytes> {
        Some(Bytes::copy_from_slice(self))
    }
}
impl<const N: usize> Payload for &[u8; N] {
    #[inline]
    fn into_payload(self) -> Option<Bytes> {
        Some(Bytes::copy_from_slice(self))
    }
}
impl Payload for &str {
    #[inline]
    fn into_payload(self) -> Option<Bytes> {
        Some(Bytes::copy_from_slice(self.as_bytes()))
    }
}
impl Payload for &String {
    #[inline]
    fn into_payload(self) -> Option<Bytes> {
        Some(Bytes::copy_from_slice(self.as_bytes()))
    }
}
impl Payload for &Bytes {
    #[inline]
    fn into_payload(self) -> Option<Bytes> {
        Some(self.clone())
    }
}
impl<T: Payload> Payload for Option<T> {
    #[inline]
    fn into_payload(self) -> Option<Bytes> {
        self.and_then(Payload::into_payload)
    }
}
/// `()` is null: `producer.send("t", (), "value")` sends a keyless record.
impl Payload for () {
    #[inline]
    fn into_payload(self) -> Option<Bytes> {
        None
    }
}

/// One record to produce.
///
/// ```
/// use kprod::ProducerRecord;
/// let r = ProducerRecord::new("orders")
///     .key("customer-7")
///     .value(r#"{"total": 12}"#)
///     .header("trace-id", "abc")
///     .header("trace-id", "def") // duplicate keys are kept, in order
///     .partition(2)
///     .timestamp(1_700_000_000_000);
/// assert_eq!(r.headers.len(), 2);
/// let tombstone = ProducerRecord::new("orders").key("customer-7"); // no value: a tombstone
/// assert!(tombstone.value.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRecord {
    /// The topic.
    pub topic: Cow<'static, str>,
    /// The key, or `None` (partitioned by the sticky partitioner).
    pub key: Option<Bytes>,
    /// The value, or `None` (a tombstone on a compacted topic).
    pub value: Option<Bytes>,
    /// Headers, in order; keys may repeat.
    pub headers: Vec<Header>,
    /// An explicit partition, or `None` for the partitioner's choice.
    pub partition: Option<i32>,
    /// Create time in ms since the Unix epoch, or `None` for the time of the send.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record for `topic` with no key, value or headers.
    pub fn new(topic: impl Into<Cow<'static, str>>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            key: None,
            value: None,
            headers: Vec::new(),
            partition: None,
            timestamp: None,
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Payload) -> Self {
        self.key = key.into_payload();
        self
    }

    /// Sets the value.
    pub fn value(mut self, value: impl Payload) -> Self {
        self.value = value.into_payload();
        self
    }

    /// Appends a header (keys may repeat; order is kept). A `None` value is a null header.
    pub fn header(mut self, key: impl Into<String>, value: impl Payload) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value: value.into_payload(),
        });
        self
    }

    /// Sends to this partition instead of the partitioner's choice.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the create time (ms since the Unix epoch).
    pub fn timestamp(mut self, ms: i64) -> Self {
        self.timestamp = Some(ms);
        self
    }
}

/// Now, in ms since the Unix epoch: the create time a record gets when its caller gives none,
/// read once per `send()`. On Unix through rustix (the vDSO's `CLOCK_REALTIME`, the raw
/// timespec turned into ms with two integer operations: 26 ns a call on the bench machine
/// against 37 ns for std's `SystemTime::now().duration_since(UNIX_EPOCH)`, 15% of a
/// fire-and-forget `send()`'s whole-process CPU in a profile). A clock before 1970 reads 0,
/// as std's does here.
#[inline]
pub(crate) fn now_ms() -> i64 {
    #[cfg(unix)]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
        let ms = t.tv_sec as i64 * 1000 + t.tv_nsec as i64 / 1_000_000;
        ms.max(0)
    }
    #[cfg(not(unix))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    #[test]
    fn now_ms_is_the_wall_clock_in_ms() {
        let ms = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
        let before = ms(SystemTime::now());
        let now = super::now_ms();
        let after = ms(SystemTime::now());
        assert!(
            before <= now && now <= after,
            "{before} <= {now} <= {after}"
        );
    }
}
