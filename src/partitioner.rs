//! Partitioners: which partition a record without an explicit one goes to.
//!
//! - **Keyed records** default to the Java client's choice, `murmur2(key) & 0x7fffffff % n`, so
//!   a key lands on the same partition as it would from a Java (or librdkafka `murmur2_random`)
//!   producer — consumers that rely on key locality keep working when producers are mixed.
//! - **Keyless records** are left to the producer engine, which keeps them on one partition
//!   until that partition's batch is sent (sticky partitioning, KIP-480), then moves on; a
//!   partitioner returns `None` to ask for that.
//! - librdkafka's `consistent_random` (CRC-32 of the key) is available for compatibility with
//!   librdkafka producers using its default, and any closure or type implementing
//!   [`Partitioner`] can be supplied.

use std::fmt;

/// Chooses a partition for a record that does not name one.
///
/// Return `Some(p)` with `p < partition_count`, or `None` to let the producer place the record
/// with sticky partitioning. A value out of range is rejected by the producer with an error on
/// that record.
pub trait Partitioner: Send + Sync {
    /// The partition for a record with `key` on `topic`, which has `partition_count` (> 0)
    /// partitions.
    fn partition(&self, topic: &str, key: Option<&[u8]>, partition_count: u32) -> Option<u32>;
}

impl<F> Partitioner for F
where
    F: Fn(&str, Option<&[u8]>, u32) -> Option<u32> + Send + Sync,
{
    fn partition(&self, topic: &str, key: Option<&[u8]>, partition_count: u32) -> Option<u32> {
        self(topic, key, partition_count)
    }
}

/// The partitioners kprod provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BuiltinPartitioner {
    /// Keyed: Java-compatible murmur2; keyless: sticky. The Java client's default and
    /// librdkafka's `murmur2_random` for keyed records. The default.
    #[default]
    Murmur2,
    /// Keyed: CRC-32 of the key, as librdkafka's default `consistent_random`; keyless: sticky.
    Crc32,
}

impl BuiltinPartitioner {
    /// The partitioner named as librdkafka or Java configure it (`partitioner`):
    /// `murmur2`, `murmur2_random`, `default` → [`Murmur2`](Self::Murmur2);
    /// `consistent`, `consistent_random` → [`Crc32`](Self::Crc32).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "murmur2" | "murmur2_random" | "default" => Some(BuiltinPartitioner::Murmur2),
            "consistent" | "consistent_random" => Some(BuiltinPartitioner::Crc32),
            _ => None,
        }
    }
}

impl Partitioner for BuiltinPartitioner {
    fn partition(&self, _topic: &str, key: Option<&[u8]>, partition_count: u32) -> Option<u32> {
        let key = key?;
        Some(match self {
            BuiltinPartitioner::Murmur2 => murmur2_partition(key, partition_count),
            BuiltinPartitioner::Crc32 => crc32_partition(key, partition_count),
        })
    }
}

impl fmt::Display for BuiltinPartitioner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BuiltinPartitioner::Murmur2 => "murmur2",
            BuiltinPartitioner::Crc32 => "consistent_random",
        })
    }
}

/// MurmurHash2 (32-bit, seed `0x9747b28c`) exactly as the Java client's `Utils.murmur2`
/// computes it, returned as the bits of Java's `int`.
///
/// ```
/// use kprod::partitioner::murmur2;
/// assert_eq!(murmur2(b"21") as i32, -973_932_308);
/// ```
pub fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h = SEED ^ len as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The Java client's partition for a key: `toPositive(murmur2(key)) % partition_count`.
///
/// ```
/// use kprod::partitioner::murmur2_partition;
/// assert!(murmur2_partition(b"order-42", 6) < 6);
/// ```
pub fn murmur2_partition(key: &[u8], partition_count: u32) -> u32 {
    (murmur2(key) & 0x7fff_ffff) % partition_count.max(1)
}

/// librdkafka's `consistent` partition for a key: `crc32(key) % partition_count` (CRC-32/IEEE).
pub fn crc32_partition(key: &[u8], partition_count: u32) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(key);
    crc.sum() % partition_count.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client_vectors() {
        // From the Java client's UtilsTest.testMurmur2.
        for (input, want) in [
            (&b"21"[..], -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ] {
            assert_eq!(
                murmur2(input) as i32,
                want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn keyless_records_are_left_to_sticky_partitioning() {
        assert_eq!(BuiltinPartitioner::Murmur2.partition("t", None, 3), None);
        assert_eq!(BuiltinPartitioner::Crc32.partition("t", None, 3), None);
        let fixed = |_: &str, _: Option<&[u8]>, _n: u32| Some(1);
        assert_eq!(Partitioner::partition(&fixed, "t", Some(b"k"), 3), Some(1));
    }

    #[test]
    fn names() {
        assert_eq!(
            BuiltinPartitioner::from_name("murmur2_random"),
            Some(BuiltinPartitioner::Murmur2)
        );
        assert_eq!(
            BuiltinPartitioner::from_name("consistent_random"),
            Some(BuiltinPartitioner::Crc32)
        );
        assert_eq!(BuiltinPartitioner::from_name("random"), None);
        assert_eq!(BuiltinPartitioner::default().to_string(), "murmur2");
    }
}
