//! Wire primitives: the Kafka protocol's integer, varint, string, bytes, array, UUID and
//! tagged-field encodings, as a [`Writer`] extension over `Vec<u8>` and a bounds-checked
//! [`Reader`] over a byte slice.
//!
//! Every read is bounds-checked and every length read from the wire is validated against the
//! bytes that remain *before* anything is allocated, so a hostile length prefix costs nothing.

use std::fmt;

/// Why bytes could not be decoded. Decoders return this instead of panicking, whatever they
/// are given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended before a field did.
    #[error("truncated input: needed {needed} more bytes for {what}, {remaining} remain")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes the field needed.
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },
    /// A varint ran past its maximum length.
    #[error("malformed varint: more than {max_bytes} bytes")]
    BadVarint {
        /// The longest legal encoding for the type.
        max_bytes: usize,
    },
    /// A length or count was negative (where null is not allowed) or impossible.
    #[error("invalid length {length} for {what}")]
    InvalidLength {
        /// What was being read.
        what: &'static str,
        /// The length read from the wire.
        length: i64,
    },
    /// A length exceeded a configured limit.
    #[error("{what} of {length} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// What was being read.
        what: &'static str,
        /// The declared or actual length.
        length: u64,
        /// The limit in force.
        limit: u64,
    },
    /// A string was not UTF-8.
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 {
        /// What was being read.
        what: &'static str,
    },
    /// A null appeared where the field is not nullable.
    #[error("unexpected null for {what}")]
    UnexpectedNull {
        /// What was being read.
        what: &'static str,
    },
    /// Bytes were left over after a complete message.
    #[error("{count} trailing bytes after {what}")]
    TrailingBytes {
        /// What was decoded.
        what: &'static str,
        /// How many bytes were left.
        count: usize,
    },
    /// A record batch's CRC32C did not match its contents.
    #[error(
        "record batch CRC mismatch: header says {expected:#010x}, contents give {actual:#010x}"
    )]
    CrcMismatch {
        /// The CRC stored in the batch.
        expected: u32,
        /// The CRC computed over the batch.
        actual: u32,
    },
    /// A record batch had a magic byte other than 2.
    #[error("unsupported record batch magic {0} (only magic 2 is supported)")]
    UnsupportedMagic(i8),
    /// A compression codec id that Kafka does not define.
    #[error("unknown compression codec id {0}")]
    UnknownCodec(u8),
    /// The compressed payload could not be decompressed.
    #[error("{codec} decompression failed: {reason}")]
    Decompress {
        /// The codec's name.
        codec: &'static str,
        /// What the codec reported.
        reason: String,
    },
    /// A message version outside the range this crate implements.
    #[error("{api} version {version} is not supported (supported: {min}..={max})")]
    UnsupportedVersion {
        /// The API's name.
        api: &'static str,
        /// The version asked for.
        version: i16,
        /// Lowest supported version.
        min: i16,
        /// Highest supported version.
        max: i16,
    },
    /// A field held a value the protocol forbids.
    #[error("invalid value for {what}: {value}")]
    InvalidValue {
        /// The field.
        what: &'static str,
        /// The offending value, rendered.
        value: i64,
    },
}

/// Writes protocol primitives onto the end of a buffer.
///
/// Implemented for `Vec<u8>`; all writes are infallible and append.
pub trait Writer {
    /// Appends raw bytes.
    fn put_slice(&mut self, b: &[u8]);
    /// Current length of the buffer (to reserve fields and patch them later).
    fn position(&self) -> usize;
    /// Overwrites `b.len()` bytes at `at` (which must already be written).
    fn patch(&mut self, at: usize, b: &[u8]);

    /// INT8.
    #[inline]
    fn put_i8(&mut self, v: i8) {
        self.put_slice(&[v as u8]);
    }
    /// BOOLEAN.
    #[inline]
    fn put_bool(&mut self, v: bool) {
        self.put_slice(&[v as u8]);
    }
    /// INT16, big-endian.
    #[inline]
    fn put_i16(&mut self, v: i16) {
        self.put_slice(&v.to_be_bytes());
    }
    /// INT32, big-endian.
    #[inline]
    fn put_i32(&mut self, v: i32) {
        self.put_slice(&v.to_be_bytes());
    }
    /// UINT32, big-endian.
    #[inline]
    fn put_u32(&mut self, v: u32) {
        self.put_slice(&v.to_be_bytes());
    }
    /// INT64, big-endian.
    #[inline]
    fn put_i64(&mut self, v: i64) {
        self.put_slice(&v.to_be_bytes());
    }
    /// UNSIGNED_VARINT (LEB128, at most 5 bytes).
    #[inline]
    fn put_uvarint(&mut self, mut v: u32) {
        if v < 0x80 {
            // Most varints (lengths, counts, deltas) take one byte: a copy of a known length,
            // which compiles to a store, where a slice's is a call to `memcpy`.
            self.put_slice(&[v as u8]);
            return;
        }
        let mut buf = [0u8; 5];
        let mut n = 0;
        while v >= 0x80 {
            buf[n] = (v as u8) | 0x80;
            v >>= 7;
            n += 1;
        }
        buf[n] = v as u8;
        self.put_slice(&buf[..=n]);
    }
    /// UNSIGNED_VARLONG (at most 10 bytes).
    #[inline]
    fn put_uvarlong(&mut self, mut v: u64) {
        let mut buf = [0u8; 10];
        let mut n = 0;
        while v >= 0x80 {
            buf[n] = (v as u8) | 0x80;
            v >>= 7;
            n += 1;
        }
        buf[n] = v as u8;
        self.put_slice(&buf[..=n]);
    }
    /// VARINT (zigzag).
    #[inline]
    fn put_varint(&mut self, v: i32) {
        self.put_uvarint(((v << 1) ^ (v >> 31)) as u32);
    }
    /// VARLONG (zigzag).
    #[inline]
    fn put_varlong(&mut self, v: i64) {
        self.put_uvarlong(((v << 1) ^ (v >> 63)) as u64);
    }
    /// UUID: 16 raw bytes.
    #[inline]
    fn put_uuid(&mut self, v: &Uuid) {
        self.put_slice(&v.0);
    }
    /// STRING (`compact == false`, INT16 length) or COMPACT_STRING (UNSIGNED_VARINT length + 1).
    fn put_string(&mut self, s: &str, compact: bool) {
        self.put_bytes_len(s.len(), compact, false);
        self.put_slice(s.as_bytes());
    }
    /// NULLABLE_STRING / COMPACT_NULLABLE_STRING.
    fn put_nullable_string(&mut self, s: Option<&str>, compact: bool) {
        match s {
            Some(s) => self.put_string(s, compact),
            None if compact => self.put_uvarint(0),
            None => self.put_i16(-1),
        }
    }
    /// BYTES (INT32 length) / COMPACT_BYTES.
    fn put_bytes(&mut self, b: &[u8], compact: bool) {
        self.put_bytes_len(b.len(), compact, true);
        self.put_slice(b);
    }
    /// NULLABLE_BYTES / COMPACT_NULLABLE_BYTES.
    fn put_nullable_bytes(&mut self, b: Option<&[u8]>, compact: bool) {
        match b {
            Some(b) => self.put_bytes(b, compact),
            None if compact => self.put_uvarint(0),
            None => self.put_i32(-1),
        }
    }
    /// The length prefix of a string (`wide == false`, INT16) or bytes (`wide`, INT32) field.
    #[doc(hidden)]
    fn put_bytes_len(&mut self, len: usize, compact: bool, wide: bool) {
        if compact {
            self.put_uvarint(len as u32 + 1);
        } else if wide {
            self.put_i32(len as i32);
        } else {
            self.put_i16(len as i16);
        }
    }
    /// The length prefix of an ARRAY (INT32) or COMPACT_ARRAY (UNSIGNED_VARINT length + 1);
    /// `None` is the null array.
    fn put_array_len(&mut self, len: Option<usize>, compact: bool) {
        match (len, compact) {
            (Some(n), true) => self.put_uvarint(n as u32 + 1),
            (Some(n), false) => self.put_i32(n as i32),
            (None, true) => self.put_uvarint(0),
            (None, false) => self.put_i32(-1),
        }
    }
    /// A tagged-field section with no fields (the single byte 0), written only for flexible
    /// versions.
    #[inline]
    fn put_empty_tags(&mut self, flexible: bool) {
        if flexible {
            self.put_uvarint(0);
        }
    }
}

impl Writer for Vec<u8> {
    #[inline]
    fn put_slice(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }
    #[inline]
    fn position(&self) -> usize {
        self.len()
    }
    #[inline]
    fn patch(&mut self, at: usize, b: &[u8]) {
        self[at..at + b.len()].copy_from_slice(b);
    }
}

/// A 128-bit UUID as Kafka puts it on the wire (topic ids).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// The all-zero UUID Kafka uses for "no topic id".
    pub const ZERO: Uuid = Uuid([0; 16]);
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Size of the smallest wire element a counted array element can occupy; used to reject
/// element counts that could not possibly fit in the remaining bytes before allocating.
pub const MIN_ELEMENT_SIZE: usize = 1;

/// A bounds-checked cursor over a byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    /// Bytes not yet read.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// Bytes consumed so far.
    #[inline]
    pub fn position(&self) -> usize {
        self.pos
    }
    /// The unread bytes, without consuming them.
    #[inline]
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
    /// Errors unless every byte was consumed.
    pub fn finish(&self, what: &'static str) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes { what, count }),
        }
    }
    /// Takes the next `n` bytes.
    #[inline]
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::Truncated {
                what,
                needed: n,
                remaining: self.remaining(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    #[inline]
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    /// INT8.
    #[inline]
    pub fn i8(&mut self, what: &'static str) -> Result<i8, DecodeError> {
        Ok(self.array::<1>(what)?[0] as i8)
    }
    /// BOOLEAN (any non-zero byte is true, as the Java client reads it).
    #[inline]
    pub fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        Ok(self.array::<1>(what)?[0] != 0)
    }
    /// INT16.
    #[inline]
    pub fn i16(&mut self, what: &'static str) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array(what)?))
    }
    /// INT32.
    #[inline]
    pub fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }
    /// UINT32.
    #[inline]
    pub fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }
    /// INT64.
    #[inline]
    pub fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }
    /// UUID.
    #[inline]
    pub fn uuid(&mut self, what: &'static str) -> Result<Uuid, DecodeError> {
        Ok(Uuid(self.array(what)?))
    }
    /// UNSIGNED_VARINT.
    pub fn uvarint(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let mut v: u32 = 0;
        for i in 0..5 {
            let b = self.array::<1>(what)?[0];
            if i == 4 && b > 0x0f {
                return Err(DecodeError::BadVarint { max_bytes: 5 });
            }
            v |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::BadVarint { max_bytes: 5 })
    }
    /// UNSIGNED_VARLONG.
    pub fn uvarlong(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.array::<1>(what)?[0];
            if i == 9 && b > 0x01 {
                return Err(DecodeError::BadVarint { max_bytes: 10 });
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::BadVarint { max_bytes: 10 })
    }
    /// VARINT (zigzag).
    #[inline]
    pub fn varint(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        let u = self.uvarint(what)?;
        Ok(((u >> 1) as i32) ^ -((u & 1) as i32))
    }
    /// VARLONG (zigzag).
    #[inline]
    pub fn varlong(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        let u = self.uvarlong(what)?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// Reads a string/bytes length prefix. Returns `None` for null.
    fn len_prefix(
        &mut self,
        compact: bool,
        wide: bool,
        what: &'static str,
    ) -> Result<Option<usize>, DecodeError> {
        let len: i64 = if compact {
            i64::from(self.uvarint(what)?) - 1
        } else if wide {
            i64::from(self.i32(what)?)
        } else {
            i64::from(self.i16(what)?)
        };
        match len {
            -1 => Ok(None),
            l if l < -1 => Err(DecodeError::InvalidLength { what, length: l }),
            l if l as u64 > self.remaining() as u64 => Err(DecodeError::Truncated {
                what,
                needed: l as usize,
                remaining: self.remaining(),
            }),
            l => Ok(Some(l as usize)),
        }
    }
    fn str_of(&mut self, len: usize, what: &'static str) -> Result<&'a str, DecodeError> {
        let b = self.take(len, what)?;
        std::str::from_utf8(b).map_err(|_| DecodeError::InvalidUtf8 { what })
    }
    /// NULLABLE_STRING / COMPACT_NULLABLE_STRING, borrowed.
    pub fn nullable_str(
        &mut self,
        compact: bool,
        what: &'static str,
    ) -> Result<Option<&'a str>, DecodeError> {
        match self.len_prefix(compact, false, what)? {
            None => Ok(None),
            Some(len) => self.str_of(len, what).map(Some),
        }
    }
    /// STRING / COMPACT_STRING, borrowed.
    pub fn str(&mut self, compact: bool, what: &'static str) -> Result<&'a str, DecodeError> {
        self.nullable_str(compact, what)?
            .ok_or(DecodeError::UnexpectedNull { what })
    }
    /// STRING / COMPACT_STRING, owned.
    pub fn string(&mut self, compact: bool, what: &'static str) -> Result<String, DecodeError> {
        self.str(compact, what).map(str::to_owned)
    }
    /// NULLABLE_STRING / COMPACT_NULLABLE_STRING, owned.
    pub fn nullable_string(
        &mut self,
        compact: bool,
        what: &'static str,
    ) -> Result<Option<String>, DecodeError> {
        Ok(self.nullable_str(compact, what)?.map(str::to_owned))
    }
    /// NULLABLE_BYTES / COMPACT_NULLABLE_BYTES, borrowed.
    pub fn nullable_bytes(
        &mut self,
        compact: bool,
        what: &'static str,
    ) -> Result<Option<&'a [u8]>, DecodeError> {
        match self.len_prefix(compact, true, what)? {
            None => Ok(None),
            Some(len) => self.take(len, what).map(Some),
        }
    }
    /// BYTES / COMPACT_BYTES, borrowed.
    pub fn bytes(&mut self, compact: bool, what: &'static str) -> Result<&'a [u8], DecodeError> {
        self.nullable_bytes(compact, what)?
            .ok_or(DecodeError::UnexpectedNull { what })
    }
    /// An ARRAY / COMPACT_ARRAY element count; `None` is the null array. The count is checked
    /// against the remaining bytes (each element takes at least `min_elem` bytes) so a hostile
    /// count cannot make the caller allocate.
    pub fn array_len(
        &mut self,
        compact: bool,
        min_elem: usize,
        what: &'static str,
    ) -> Result<Option<usize>, DecodeError> {
        let len: i64 = if compact {
            i64::from(self.uvarint(what)?) - 1
        } else {
            i64::from(self.i32(what)?)
        };
        match len {
            -1 => Ok(None),
            l if l < -1 => Err(DecodeError::InvalidLength { what, length: l }),
            l if (l as u64).saturating_mul(min_elem.max(1) as u64) > self.remaining() as u64 => {
                Err(DecodeError::InvalidLength { what, length: l })
            }
            l => Ok(Some(l as usize)),
        }
    }
    /// A non-null array count.
    pub fn array_len_nn(
        &mut self,
        compact: bool,
        min_elem: usize,
        what: &'static str,
    ) -> Result<usize, DecodeError> {
        self.array_len(compact, min_elem, what)?
            .ok_or(DecodeError::UnexpectedNull { what })
    }
    /// Reads a non-null array, decoding each element with `f`.
    pub fn vec<T>(
        &mut self,
        compact: bool,
        min_elem: usize,
        what: &'static str,
        mut f: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let n = self.array_len_nn(compact, min_elem, what)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(f(self)?);
        }
        Ok(v)
    }
    /// Reads a nullable array.
    pub fn nullable_vec<T>(
        &mut self,
        compact: bool,
        min_elem: usize,
        what: &'static str,
        mut f: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<Vec<T>>, DecodeError> {
        let Some(n) = self.array_len(compact, min_elem, what)? else {
            return Ok(None);
        };
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(f(self)?);
        }
        Ok(Some(v))
    }
    /// Reads a tagged-field section, handing each `(tag, payload)` to `f`; `f` returns
    /// `Ok(false)` for a tag it does not know, which is skipped (as the protocol requires).
    /// Does nothing for non-flexible versions.
    pub fn tagged_fields(
        &mut self,
        flexible: bool,
        mut f: impl FnMut(u32, &mut Reader<'a>) -> Result<bool, DecodeError>,
    ) -> Result<(), DecodeError> {
        if !flexible {
            return Ok(());
        }
        let n = self.uvarint("tagged field count")?;
        if n as usize > self.remaining() {
            return Err(DecodeError::InvalidLength {
                what: "tagged field count",
                length: i64::from(n),
            });
        }
        let mut last: Option<u32> = None;
        for _ in 0..n {
            let tag = self.uvarint("tag")?;
            if last.is_some_and(|l| tag <= l) {
                return Err(DecodeError::InvalidValue {
                    what: "tag order",
                    value: i64::from(tag),
                });
            }
            last = Some(tag);
            let size = self.uvarint("tagged field size")? as usize;
            let body = self.take(size, "tagged field")?;
            let mut sub = Reader::new(body);
            if f(tag, &mut sub)? {
                sub.finish("tagged field")?;
            }
        }
        Ok(())
    }
    /// Skips a tagged-field section without interpreting any tag.
    pub fn skip_tags(&mut self, flexible: bool) -> Result<(), DecodeError> {
        self.tagged_fields(flexible, |_, _| Ok(false))
    }
}

/// Writes one tagged field (`tag`, then the size of what `body` writes, then the bytes).
pub fn put_tagged_field(out: &mut Vec<u8>, tag: u32, body: impl FnOnce(&mut Vec<u8>)) {
    let mut tmp = Vec::new();
    body(&mut tmp);
    out.put_uvarint(tag);
    out.put_uvarint(tmp.len() as u32);
    out.put_slice(&tmp);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn varint_known_vectors() {
        // Vectors from the Kafka protocol guide / Java ByteUtils tests.
        let cases: &[(i32, &[u8])] = &[
            (0, &[0x00]),
            (-1, &[0x01]),
            (1, &[0x02]),
            (63, &[0x7e]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (i32::MAX, &[0xfe, 0xff, 0xff, 0xff, 0x0f]),
            (i32::MIN, &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ];
        for (v, bytes) in cases {
            let mut out = Vec::new();
            out.put_varint(*v);
            assert_eq!(&out[..], *bytes, "encoding {v}");
            assert_eq!(Reader::new(bytes).varint("t").unwrap(), *v);
        }
    }

    #[test]
    fn overlong_varint_is_rejected() {
        let bad = [0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(
            Reader::new(&bad).uvarint("t"),
            Err(DecodeError::BadVarint { max_bytes: 5 })
        );
        let bad = [0xff; 11];
        assert_eq!(
            Reader::new(&bad).uvarlong("t"),
            Err(DecodeError::BadVarint { max_bytes: 10 })
        );
        // The fifth byte of a u32 varint may carry only 4 bits.
        assert!(Reader::new(&[0xff, 0xff, 0xff, 0xff, 0x1f])
            .uvarint("t")
            .is_err());
    }

    #[test]
    fn hostile_lengths_do_not_allocate() {
        // An array claiming 2^31-1 elements with 4 bytes left.
        let mut b = Vec::new();
        b.put_i32(i32::MAX);
        b.put_i32(0);
        let r = Reader::new(&b).vec(false, 4, "arr", |r| r.i32("x"));
        assert!(matches!(r, Err(DecodeError::InvalidLength { .. })));
        // A string claiming more bytes than remain.
        let r = Reader::new(&[0x00, 0x10, b'a']).string(false, "s");
        assert!(matches!(r, Err(DecodeError::Truncated { .. })));
        // A negative length other than -1.
        let r = Reader::new(&[0xff, 0xfe]).nullable_string(false, "s");
        assert!(matches!(
            r,
            Err(DecodeError::InvalidLength { length: -2, .. })
        ));
    }

    #[test]
    fn compact_and_classic_nulls() {
        let mut b = Vec::new();
        b.put_nullable_string(None, false);
        b.put_nullable_string(None, true);
        b.put_nullable_bytes(None, false);
        b.put_nullable_bytes(None, true);
        b.put_array_len(None, true);
        assert_eq!(b, [0xff, 0xff, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00]);
        let mut r = Reader::new(&b);
        assert_eq!(r.nullable_string(false, "a").unwrap(), None);
        assert_eq!(r.nullable_string(true, "b").unwrap(), None);
        assert_eq!(r.nullable_bytes(false, "c").unwrap(), None);
        assert_eq!(r.nullable_bytes(true, "d").unwrap(), None);
        assert_eq!(r.array_len(true, 1, "e").unwrap(), None);
        r.finish("all").unwrap();
    }

    #[test]
    fn tagged_fields_skip_unknown_and_reject_disorder() {
        let mut b = Vec::new();
        b.put_uvarint(2);
        put_tagged_field(&mut b, 1, |o| o.put_i32(7));
        put_tagged_field(&mut b, 5, |o| o.put_slice(b"xyz"));
        let mut seen = None;
        let mut r = Reader::new(&b);
        r.tagged_fields(true, |tag, r| {
            if tag == 1 {
                seen = Some(r.i32("v")?);
                return Ok(true);
            }
            Ok(false)
        })
        .unwrap();
        r.finish("t").unwrap();
        assert_eq!(seen, Some(7));

        let mut b = Vec::new();
        b.put_uvarint(2);
        put_tagged_field(&mut b, 5, |_| {});
        put_tagged_field(&mut b, 1, |_| {});
        assert!(Reader::new(&b).skip_tags(true).is_err());
    }

    proptest! {
        #[test]
        fn varlong_roundtrip(v: i64) {
            let mut b = Vec::new();
            b.put_varlong(v);
            let mut r = Reader::new(&b);
            prop_assert_eq!(r.varlong("v").unwrap(), v);
            prop_assert_eq!(r.remaining(), 0);
        }

        #[test]
        fn varint_roundtrip(v: i32) {
            let mut b = Vec::new();
            b.put_varint(v);
            let mut r = Reader::new(&b);
            prop_assert_eq!(r.varint("v").unwrap(), v);
            prop_assert_eq!(r.remaining(), 0);
        }

        #[test]
        fn strings_roundtrip(s in ".{0,64}", n: Option<String>, compact: bool) {
            let mut b = Vec::new();
            b.put_string(&s, compact);
            b.put_nullable_string(n.as_deref(), compact);
            let mut r = Reader::new(&b);
            prop_assert_eq!(r.string(compact, "s").unwrap(), s);
            prop_assert_eq!(r.nullable_string(compact, "n").unwrap(), n);
            prop_assert_eq!(r.remaining(), 0);
        }

        #[test]
        fn reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::new(&bytes);
            let _ = r.nullable_string(true, "a");
            let _ = r.vec(true, 1, "b", |r| r.varlong("c"));
            let _ = r.skip_tags(true);
            let _ = r.nullable_bytes(false, "d");
        }
    }
}
