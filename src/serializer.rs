//! Serializers for typed producers ([`TypedProducer`](crate::TypedProducer)): how a `K` or `V`
//! becomes the bytes on the wire.
//!
//! The built-ins use the encodings of Kafka's own serializers, so consumers in other languages
//! read them back with their standard deserializers: integers and floats big-endian
//! (`IntegerSerializer`, `LongSerializer`, `DoubleSerializer`, ...), strings as UTF-8, `()` as
//! null, byte types as they are, and — with the `serde_json` feature — any `serde::Serialize`
//! value as JSON.

use bytes::Bytes;

use crate::error::Error;

/// Turns a `T` into a key or value: `Ok(None)` is null.
///
/// ```
/// use kprod::serializer::{Serializer, BigEndian};
/// assert_eq!(BigEndian.serialize("t", &258i32).unwrap().unwrap().as_ref(), &[0, 0, 1, 2]);
/// // A closure is a serializer too.
/// let upper = |_: &str, s: &String| Ok(Some(bytes::Bytes::from(s.to_uppercase())));
/// assert_eq!(upper.serialize("t", &"a".to_string()).unwrap().unwrap().as_ref(), b"A");
/// ```
pub trait Serializer<T: ?Sized>: Send + Sync {
    /// Serializes `value` for `topic`. An error fails the call that produced it, before
    /// anything is enqueued.
    fn serialize(&self, topic: &str, value: &T) -> Result<Option<Bytes>, Error>;
}

impl<T: ?Sized, F> Serializer<T> for F
where
    F: Fn(&str, &T) -> Result<Option<Bytes>, Error> + Send + Sync,
{
    fn serialize(&self, topic: &str, value: &T) -> Result<Option<Bytes>, Error> {
        self(topic, value)
    }
}

/// Bytes as they are: `Bytes` (no copy), `Vec<u8>`, `[u8]`, and `Option`s of them (null).
#[derive(Debug, Clone, Copy, Default)]
pub struct Raw;

impl Serializer<Bytes> for Raw {
    fn serialize(&self, _: &str, v: &Bytes) -> Result<Option<Bytes>, Error> {
        Ok(Some(v.clone()))
    }
}
impl Serializer<Vec<u8>> for Raw {
    fn serialize(&self, _: &str, v: &Vec<u8>) -> Result<Option<Bytes>, Error> {
        Ok(Some(Bytes::copy_from_slice(v)))
    }
}
impl Serializer<[u8]> for Raw {
    fn serialize(&self, _: &str, v: &[u8]) -> Result<Option<Bytes>, Error> {
        Ok(Some(Bytes::copy_from_slice(v)))
    }
}
impl<T> Serializer<Option<T>> for Raw
where
    Raw: Serializer<T>,
{
    fn serialize(&self, topic: &str, v: &Option<T>) -> Result<Option<Bytes>, Error> {
        match v {
            Some(v) => self.serialize(topic, v),
            None => Ok(None),
        }
    }
}

/// UTF-8 text, as Kafka's `StringSerializer`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Utf8;

impl Serializer<str> for Utf8 {
    fn serialize(&self, _: &str, v: &str) -> Result<Option<Bytes>, Error> {
        Ok(Some(Bytes::copy_from_slice(v.as_bytes())))
    }
}
impl Serializer<String> for Utf8 {
    fn serialize(&self, _: &str, v: &String) -> Result<Option<Bytes>, Error> {
        Ok(Some(Bytes::copy_from_slice(v.as_bytes())))
    }
}
impl Serializer<&str> for Utf8 {
    fn serialize(&self, _: &str, v: &&str) -> Result<Option<Bytes>, Error> {
        Ok(Some(Bytes::copy_from_slice(v.as_bytes())))
    }
}

/// Numbers big-endian, as Kafka's `ShortSerializer` (i16), `IntegerSerializer` (i32),
/// `LongSerializer` (i64), `FloatSerializer` (f32) and `DoubleSerializer` (f64); also the
/// unsigned types at the same widths.
#[derive(Debug, Clone, Copy, Default)]
pub struct BigEndian;

macro_rules! big_endian {
    ($($t:ty),*) => {$(
        impl Serializer<$t> for BigEndian {
            fn serialize(&self, _: &str, v: &$t) -> Result<Option<Bytes>, Error> {
                Ok(Some(Bytes::copy_from_slice(&v.to_be_bytes())))
            }
        }
    )*};
}
big_endian!(i8, i16, i32, i64, u8, u16, u32, u64, f32, f64);

/// Always null, whatever the value: Kafka's `VoidSerializer`. For keyless producers
/// (`TypedProducer<(), V>`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Null;

impl<T: ?Sized> Serializer<T> for Null {
    fn serialize(&self, _: &str, _: &T) -> Result<Option<Bytes>, Error> {
        Ok(None)
    }
}

/// Any `serde::Serialize` value as JSON (feature `serde_json`). A value that cannot be
/// serialized fails the call with [`Error::Serialization`].
#[cfg(feature = "serde_json")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

#[cfg(feature = "serde_json")]
impl<T: serde::Serialize + ?Sized> Serializer<T> for Json {
    fn serialize(&self, topic: &str, v: &T) -> Result<Option<Bytes>, Error> {
        serde_json::to_vec(v)
            .map(|b| Some(Bytes::from(b)))
            .map_err(|e| Error::Serialization {
                topic: topic.to_owned(),
                reason: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_encodings() {
        let b = |r: Result<Option<Bytes>, Error>| r.unwrap().map(|b| b.to_vec());
        assert_eq!(b(BigEndian.serialize("t", &-2i16)), Some(vec![0xff, 0xfe]));
        assert_eq!(
            b(BigEndian.serialize("t", &1i64)),
            Some(vec![0, 0, 0, 0, 0, 0, 0, 1])
        );
        assert_eq!(
            b(BigEndian.serialize("t", &1.0f64)),
            Some(1.0f64.to_be_bytes().to_vec())
        );
        assert_eq!(b(Utf8.serialize("t", "é")), Some("é".as_bytes().to_vec()));
        assert_eq!(b(Null.serialize("t", &5u8)), None);
        assert_eq!(b(Raw.serialize("t", &None::<Bytes>)), None);
        assert_eq!(b(Raw.serialize("t", &vec![1u8])), Some(vec![1]));
    }

    #[cfg(feature = "serde_json")]
    #[test]
    fn json() {
        #[derive(serde::Serialize)]
        struct Order {
            id: u32,
        }
        let out = Json.serialize("t", &Order { id: 7 }).unwrap().unwrap();
        assert_eq!(out.as_ref(), br#"{"id":7}"#);
    }
}
