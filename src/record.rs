//! What a caller hands the producer: [`ProducerRecord`], and [`Payload`], the conversion that
//! lets keys and values be given as `&str`, `&[u8]`, `String`, `Vec<u8>` or [`Bytes`] (the last
//! three without copying).

use std::borrow::{Borrow, Cow};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

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
    pub topic: Topic,
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
    pub fn new(topic: impl Into<Topic>) -> Self {
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

/// A record's topic name, which reads as a `&str`. It is a `&'static str`, an `Arc<str>` or a
/// `String`.
///
/// Building a record for a topic named at run time needs no allocation if the name is an
/// `Arc<str>`: cloning it counts a reference. Cloning a `String` copies it, one heap
/// allocation per record.
///
/// ```
/// use std::sync::Arc;
/// use kprod::record::Topic;
/// use kprod::ProducerRecord;
///
/// let configured = String::from("orders"); // say, read from a configuration file
/// let name: Arc<str> = configured.into();
/// let a = ProducerRecord::new(name.clone()).value("1"); // no copy of the name
/// let b = ProducerRecord::new("orders").value("2"); // static: no copy either
/// assert_eq!(a.topic, b.topic);
/// assert_eq!(a.topic, "orders");
/// let t: Topic = String::from("orders").into();
/// assert_eq!(t.len(), 6); // a `str` method, through `Deref`
/// ```
#[derive(Clone)]
pub struct Topic(TopicName);

#[derive(Clone)]
enum TopicName {
    Static(&'static str),
    Shared(Arc<str>),
    Owned(String),
}

impl Topic {
    /// The name.
    #[inline]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            TopicName::Static(s) => s,
            TopicName::Shared(s) => s,
            TopicName::Owned(s) => s,
        }
    }

    /// The name as a `String` (copied unless it was one).
    pub fn into_string(self) -> String {
        match self.0 {
            TopicName::Owned(s) => s,
            _ => self.as_str().to_owned(),
        }
    }
}

impl Deref for Topic {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Topic {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Topic {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq for Topic {
    fn eq(&self, other: &Topic) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Topic {}

impl Hash for Topic {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl PartialEq<str> for Topic {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Topic {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Topic {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<Topic> for &str {
    fn eq(&self, other: &Topic) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Topic> for str {
    fn eq(&self, other: &Topic) -> bool {
        self == other.as_str()
    }
}

impl From<&'static str> for Topic {
    fn from(s: &'static str) -> Self {
        Topic(TopicName::Static(s))
    }
}

impl From<String> for Topic {
    fn from(s: String) -> Self {
        Topic(TopicName::Owned(s))
    }
}

impl From<&String> for Topic {
    fn from(s: &String) -> Self {
        Topic(TopicName::Owned(s.clone()))
    }
}

impl From<Arc<str>> for Topic {
    fn from(s: Arc<str>) -> Self {
        Topic(TopicName::Shared(s))
    }
}

impl From<&Arc<str>> for Topic {
    fn from(s: &Arc<str>) -> Self {
        Topic(TopicName::Shared(s.clone()))
    }
}

impl From<Cow<'static, str>> for Topic {
    fn from(s: Cow<'static, str>) -> Self {
        match s {
            Cow::Borrowed(s) => s.into(),
            Cow::Owned(s) => s.into(),
        }
    }
}

impl From<Topic> for String {
    fn from(t: Topic) -> String {
        t.into_string()
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
    use std::collections::HashSet;
    use std::sync::Arc;
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::Topic;

    /// Every form of a name is the same topic: equal, hashed alike, shown alike; a shared
    /// name is not copied by a clone.
    #[test]
    fn topic_names_compare_as_strings_whatever_holds_them() {
        let shared: Arc<str> = "orders".into();
        let forms: Vec<Topic> = vec![
            "orders".into(),
            String::from("orders").into(),
            shared.clone().into(),
            std::borrow::Cow::Borrowed("orders").into(),
        ];
        let set: HashSet<Topic> = forms.iter().cloned().collect();
        assert_eq!(set.len(), 1);
        for t in &forms {
            assert_eq!(t, &forms[0]);
            assert_eq!(*t, "orders");
            assert_eq!("orders", *t);
            assert_eq!(format!("{t} {t:?}"), "orders \"orders\"");
            assert!(set.contains("orders"));
            assert_eq!(t.clone().into_string(), "orders");
        }
        assert_ne!(forms[0], "payments");
        let t = forms[2].clone();
        assert_eq!(Arc::strong_count(&shared), 3, "a clone counts a reference");
        assert_eq!(t.as_ptr(), shared.as_ptr());
    }

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
