//! The record-batch codecs: gzip, snappy, lz4 and zstd, with levels, and bounded decompression.
//!
//! What goes on the wire is what Kafka's own clients write and read:
//! - gzip: a gzip stream (RFC 1952); multi-member streams decode.
//! - snappy: written as one raw snappy block (as librdkafka does); read both raw and the
//!   xerial / snappy-java framing Java clients write (`\x82SNAPPY\0`, two i32 versions, then
//!   `[i32 length][raw block]`...).
//! - lz4: the LZ4 *frame* format with independent 64 KiB blocks and no content checksum, which
//!   every Kafka client reads. Without a level, lz4_flex's fast compressor (librdkafka's default
//!   behaviour); with a level (Kafka's 1–17, KIP-390), liblz4's frame compressor at that level
//!   (levels above 2 use its HC mode; liblz4 caps them at 12).
//! - zstd: a zstd frame (content size included).
//!
//! Decompression is bounded: output beyond `max_size` stops it with
//! [`DecodeError::TooLarge`] before more memory is taken.

use std::io::{Read, Write};
use std::ops::RangeInclusive;

use zstd::zstd_safe;

use super::codec::DecodeError;

/// The codec of a record batch (attribute bits 0–2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// No compression.
    #[default]
    None,
    /// gzip (id 1).
    Gzip,
    /// snappy (id 2).
    Snappy,
    /// lz4 frame (id 3).
    Lz4,
    /// zstd (id 4; needs Produce v7+).
    Zstd,
}

impl Compression {
    /// Kafka's codec id, as stored in batch attributes.
    pub const fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec for an id; ids 5–7 are undefined.
    pub fn from_id(id: u8) -> Result<Self, DecodeError> {
        Ok(match id {
            0 => Compression::None,
            1 => Compression::Gzip,
            2 => Compression::Snappy,
            3 => Compression::Lz4,
            4 => Compression::Zstd,
            other => return Err(DecodeError::UnknownCodec(other)),
        })
    }

    /// The name Kafka configuration uses (`compression.type`).
    pub const fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// The codec for a `compression.type` name, case-insensitive.
    pub fn from_name(s: &str) -> Option<Self> {
        [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ]
        .into_iter()
        .find(|c| c.name().eq_ignore_ascii_case(s))
    }

    /// The levels the codec accepts (Kafka's ranges), or `None` if it has none.
    pub fn level_range(self) -> Option<RangeInclusive<i32>> {
        match self {
            Compression::Gzip => Some(1..=9),
            Compression::Lz4 => Some(1..=17),
            Compression::Zstd => Some(-131_072..=22),
            Compression::None | Compression::Snappy => None,
        }
    }

    /// The level used when none is given: gzip 6 and zstd 3 (Kafka's defaults). lz4 has none:
    /// without a level it uses the fast, non-HC compressor.
    pub fn default_level(self) -> Option<i32> {
        match self {
            Compression::Gzip => Some(6),
            Compression::Zstd => Some(3),
            _ => None,
        }
    }
}

/// A compression level outside its codec's range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} compression level {level} is invalid: {}", codec.name(), match codec.level_range() {
    Some(r) => format!("valid levels are {}..={}", r.start(), r.end()),
    None => "this codec takes no level".to_string(),
})]
pub struct InvalidLevel {
    /// The codec.
    pub codec: Compression,
    /// The rejected level.
    pub level: i32,
}

/// A validated codec and optional level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompressionConfig {
    /// The codec.
    pub compression: Compression,
    /// The level; `None` for the codec's default.
    pub level: Option<i32>,
}

impl CompressionConfig {
    /// Validates `level` against the codec's range.
    pub fn new(compression: Compression, level: Option<i32>) -> Result<Self, InvalidLevel> {
        if let Some(level) = level {
            match compression.level_range() {
                Some(r) if r.contains(&level) => {}
                _ => {
                    return Err(InvalidLevel {
                        codec: compression,
                        level,
                    })
                }
            }
        }
        Ok(CompressionConfig { compression, level })
    }
}

enum State {
    None,
    Gzip { deflate: flate2::Compress },
    Snappy(Box<snap::raw::Encoder>),
    Lz4Fast,
    Lz4Level(u32),
    Zstd(Box<zstd_safe::CCtx<'static>>),
}

/// A reusable compressor: keeps per-codec state (deflate stream, snappy tables, zstd context)
/// between batches, so a long-lived compressor does not rebuild it for each batch.
///
/// ```
/// use kprod::protocol::compression::{decompress, Compression, CompressionConfig, Compressor};
/// let mut c = Compressor::new(CompressionConfig::new(Compression::Zstd, Some(3)).unwrap());
/// let input = b"hello hello hello hello hello".repeat(10);
/// let mut packed = Vec::new();
/// c.compress(&input, &mut packed).unwrap();
/// assert!(packed.len() < input.len());
/// let mut back = Vec::new();
/// decompress(Compression::Zstd, &packed, 1 << 20, &mut back).unwrap();
/// assert_eq!(back, input);
/// ```
pub struct Compressor {
    config: CompressionConfig,
    state: State,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor")
            .field("config", &self.config)
            .finish()
    }
}

impl Compressor {
    /// A compressor for `config`.
    pub fn new(config: CompressionConfig) -> Self {
        let state = match config.compression {
            Compression::None => State::None,
            Compression::Gzip => {
                let level = config
                    .level
                    .or(Compression::Gzip.default_level())
                    .unwrap_or(6);
                State::Gzip {
                    deflate: flate2::Compress::new(flate2::Compression::new(level as u32), false),
                }
            }
            Compression::Snappy => State::Snappy(Box::new(snap::raw::Encoder::new())),
            Compression::Lz4 => match config.level {
                None => State::Lz4Fast,
                Some(l) => State::Lz4Level(l as u32),
            },
            Compression::Zstd => {
                let level = config
                    .level
                    .or(Compression::Zstd.default_level())
                    .unwrap_or(3);
                let mut cctx = zstd_safe::CCtx::create();
                // Cannot fail for a level inside zstd's range, which CompressionConfig checked.
                let _ = cctx.set_parameter(zstd_safe::CParameter::CompressionLevel(level));
                State::Zstd(Box::new(cctx))
            }
        };
        Compressor { config, state }
    }

    /// The codec and level.
    pub fn config(&self) -> CompressionConfig {
        self.config
    }

    /// Appends the compressed form of `input` to `out` (never clears it). For
    /// [`Compression::None`] appends `input` itself.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        match &mut self.state {
            State::None => out.extend_from_slice(input),
            State::Gzip { deflate } => gzip(deflate, input, out)?,
            State::Snappy(enc) => {
                let start = out.len();
                out.resize(start + snap::raw::max_compress_len(input.len()), 0);
                let n = enc
                    .compress(input, &mut out[start..])
                    .map_err(std::io::Error::other)?;
                out.truncate(start + n);
            }
            State::Lz4Fast => {
                let info = lz4_flex::frame::FrameInfo::new()
                    .block_size(lz4_flex::frame::BlockSize::Max64KB)
                    .block_mode(lz4_flex::frame::BlockMode::Independent);
                let mut enc = lz4_flex::frame::FrameEncoder::with_frame_info(info, out);
                enc.write_all(input)?;
                enc.finish().map_err(std::io::Error::other)?;
            }
            State::Lz4Level(level) => {
                let mut enc = lz4::EncoderBuilder::new()
                    .level(*level)
                    .block_size(lz4::BlockSize::Max64KB)
                    .block_mode(lz4::BlockMode::Independent)
                    .checksum(lz4::ContentChecksum::NoChecksum)
                    .build(out)?;
                enc.write_all(input)?;
                let (_, r) = enc.finish();
                r?;
            }
            State::Zstd(cctx) => {
                let start = out.len();
                out.reserve(zstd_safe::compress_bound(input.len()));
                let mut cursor = std::io::Cursor::new(&mut *out);
                cursor.set_position(start as u64);
                cctx.compress2(&mut cursor, input)
                    .map_err(|code| std::io::Error::other(zstd_safe::get_error_name(code)))?;
            }
        }
        Ok(())
    }
}

/// gzip with a reused deflate stream: 10-byte header, raw deflate, CRC-32 and size trailer.
fn gzip(deflate: &mut flate2::Compress, input: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
    // ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=255 (unknown)
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
    deflate.reset();
    out.reserve(input.len() / 2 + 64);
    loop {
        let consumed = deflate.total_in() as usize;
        let status = deflate
            .compress_vec(&input[consumed..], out, flate2::FlushCompress::Finish)
            .map_err(std::io::Error::other)?;
        match status {
            flate2::Status::StreamEnd => break,
            _ => out.reserve(out.capacity().max(4096)),
        }
    }
    let mut crc = flate2::Crc::new();
    crc.update(input);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(input.len() as u32).to_le_bytes());
    Ok(())
}

fn fail(codec: Compression, reason: impl std::fmt::Display) -> DecodeError {
    DecodeError::Decompress {
        codec: codec.name(),
        reason: reason.to_string(),
    }
}

fn too_large(length: u64, max_size: usize) -> DecodeError {
    DecodeError::TooLarge {
        what: "decompressed records",
        length,
        limit: max_size as u64,
    }
}

/// Reads `r` to its end into `out`, failing once more than `max_size` bytes come out.
fn read_bounded(
    codec: Compression,
    r: impl Read,
    max_size: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    let start = out.len();
    let n = r
        .take(max_size as u64 + 1)
        .read_to_end(out)
        .map_err(|e| fail(codec, e))?;
    if n > max_size {
        out.truncate(start);
        return Err(too_large(n as u64, max_size));
    }
    Ok(())
}

const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\x00";

/// Decompresses `input` written with `codec`, appending to `out`; more than `max_size` bytes of
/// output is [`DecodeError::TooLarge`], checked as output is produced.
pub fn decompress(
    codec: Compression,
    input: &[u8],
    max_size: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    match codec {
        Compression::None => {
            if input.len() > max_size {
                return Err(too_large(input.len() as u64, max_size));
            }
            out.extend_from_slice(input);
            Ok(())
        }
        Compression::Gzip => read_bounded(
            codec,
            flate2::read::MultiGzDecoder::new(input),
            max_size,
            out,
        ),
        Compression::Lz4 => read_bounded(
            codec,
            lz4_flex::frame::FrameDecoder::new(input),
            max_size,
            out,
        ),
        Compression::Zstd => {
            let dec =
                zstd::stream::read::Decoder::with_buffer(input).map_err(|e| fail(codec, e))?;
            read_bounded(codec, dec, max_size, out)
        }
        Compression::Snappy => {
            if input.len() >= 16 && input.starts_with(XERIAL_MAGIC) {
                let mut rest = &input[16..];
                let mut budget = max_size;
                while !rest.is_empty() {
                    if rest.len() < 4 {
                        return Err(fail(codec, "truncated xerial block length"));
                    }
                    let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                    rest = &rest[4..];
                    if len > rest.len() {
                        return Err(fail(codec, "xerial block longer than its input"));
                    }
                    let used = snappy_block(&rest[..len], budget, max_size, out)?;
                    budget -= used;
                    rest = &rest[len..];
                }
                Ok(())
            } else {
                snappy_block(input, max_size, max_size, out).map(|_| ())
            }
        }
    }
}

/// One raw snappy block, whose declared length must fit in `budget`; returns its length.
fn snappy_block(
    block: &[u8],
    budget: usize,
    max_size: usize,
    out: &mut Vec<u8>,
) -> Result<usize, DecodeError> {
    let codec = Compression::Snappy;
    let len = snap::raw::decompress_len(block).map_err(|e| fail(codec, e))?;
    if len > budget {
        return Err(too_large((max_size - budget + len) as u64, max_size));
    }
    let start = out.len();
    out.resize(start + len, 0);
    match snap::raw::Decoder::new().decompress(block, &mut out[start..]) {
        Ok(n) if n == len => Ok(len),
        Ok(_) => {
            out.truncate(start);
            Err(fail(codec, "block shorter than its declared length"))
        }
        Err(e) => {
            out.truncate(start);
            Err(fail(codec, e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn configs() -> Vec<CompressionConfig> {
        let mut v = vec![
            CompressionConfig::new(Compression::None, None).unwrap(),
            CompressionConfig::new(Compression::Snappy, None).unwrap(),
        ];
        for (c, levels) in [
            (Compression::Gzip, vec![None, Some(1), Some(9)]),
            (Compression::Lz4, vec![None, Some(1), Some(9), Some(17)]),
            (Compression::Zstd, vec![None, Some(-5), Some(1), Some(19)]),
        ] {
            for l in levels {
                v.push(CompressionConfig::new(c, l).unwrap());
            }
        }
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn roundtrip_every_codec_and_level(
            input in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..2000),
                "[ab ]{0,5000}".prop_map(String::into_bytes),
            ],
            prefix in proptest::collection::vec(any::<u8>(), 0..5),
        ) {
            for cfg in configs() {
                let mut c = Compressor::new(cfg);
                // Twice, to exercise reuse of the compressor's state.
                for _ in 0..2 {
                    let mut packed = prefix.clone();
                    c.compress(&input, &mut packed).unwrap();
                    prop_assert_eq!(&packed[..prefix.len()], &prefix[..]);
                    let mut back = vec![7u8];
                    decompress(cfg.compression, &packed[prefix.len()..], input.len(), &mut back)
                        .map_err(|e| TestCaseError::fail(format!("{cfg:?}: {e}")))?;
                    prop_assert_eq!(&back[1..], &input[..], "{:?}", cfg);
                }
            }
        }

        #[test]
        fn garbage_never_panics(input in proptest::collection::vec(any::<u8>(), 0..300)) {
            for codec in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
                let _ = decompress(codec, &input, 1 << 16, &mut Vec::new());
                let mut x = XERIAL_MAGIC.to_vec();
                x.extend_from_slice(&input);
                let _ = decompress(Compression::Snappy, &x, 1 << 16, &mut Vec::new());
            }
        }
    }

    #[test]
    fn levels_change_the_output() {
        let input: Vec<u8> = (0..200_000u32)
            .map(|i| (i % 251) as u8 ^ (i / 1000) as u8)
            .collect();
        for (codec, lo, hi) in [
            (Compression::Gzip, 1, 9),
            (Compression::Lz4, 1, 12),
            (Compression::Zstd, 1, 19),
        ] {
            let size = |l| {
                let mut out = Vec::new();
                Compressor::new(CompressionConfig::new(codec, Some(l)).unwrap())
                    .compress(&input, &mut out)
                    .unwrap();
                out.len()
            };
            assert!(
                size(hi) < size(lo),
                "{codec:?}: level {hi} not smaller than {lo}"
            );
        }
    }

    #[test]
    fn xerial_framing_decodes() {
        let a = b"first block first block first block".to_vec();
        let b = b"second, different block".to_vec();
        let mut framed = XERIAL_MAGIC.to_vec();
        framed.extend_from_slice(&1i32.to_be_bytes());
        framed.extend_from_slice(&1i32.to_be_bytes());
        for block in [&a, &b] {
            let packed = snap::raw::Encoder::new().compress_vec(block).unwrap();
            framed.extend_from_slice(&(packed.len() as u32).to_be_bytes());
            framed.extend_from_slice(&packed);
        }
        let mut out = Vec::new();
        decompress(Compression::Snappy, &framed, 1 << 10, &mut out).unwrap();
        assert_eq!(out, [a.clone(), b.clone()].concat());
        // Bounded across blocks: room for the first but not the second.
        let e = decompress(Compression::Snappy, &framed, a.len() + 3, &mut Vec::new()).unwrap_err();
        assert!(matches!(e, DecodeError::TooLarge { .. }), "{e:?}");
        // A block length past the end.
        let mut bad = framed[..20].to_vec();
        bad[16..20].copy_from_slice(&1000u32.to_be_bytes());
        assert!(matches!(
            decompress(Compression::Snappy, &bad, 1 << 10, &mut Vec::new()),
            Err(DecodeError::Decompress { .. })
        ));
    }

    #[test]
    fn bombs_and_garbage_are_typed_errors() {
        let input = vec![0u8; 1 << 20];
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut packed = Vec::new();
            Compressor::new(CompressionConfig::new(codec, None).unwrap())
                .compress(&input, &mut packed)
                .unwrap();
            let mut out = Vec::new();
            let e = decompress(codec, &packed, 64 << 10, &mut out).unwrap_err();
            assert!(
                matches!(e, DecodeError::TooLarge { .. }),
                "{codec:?}: {e:?}"
            );
            assert!(
                out.capacity() <= 1 << 20,
                "{codec:?} allocated {}",
                out.capacity()
            );
            // Truncated.
            let e = decompress(codec, &packed[..packed.len() / 2], 2 << 20, &mut Vec::new())
                .unwrap_err();
            assert!(
                matches!(e, DecodeError::Decompress { .. }),
                "{codec:?} truncated: {e:?}"
            );
            // Garbage.
            let e = decompress(
                codec,
                b"this is not compressed at all",
                1 << 20,
                &mut Vec::new(),
            )
            .unwrap_err();
            assert!(
                matches!(e, DecodeError::Decompress { .. }),
                "{codec:?} garbage: {e:?}"
            );
        }
    }

    #[test]
    fn level_validation_names_codec_and_range() {
        let e = CompressionConfig::new(Compression::Gzip, Some(10)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "gzip compression level 10 is invalid: valid levels are 1..=9"
        );
        let e = CompressionConfig::new(Compression::Snappy, Some(1)).unwrap_err();
        assert!(e.to_string().contains("takes no level"));
        assert!(CompressionConfig::new(Compression::Lz4, Some(18)).is_err());
        assert!(CompressionConfig::new(Compression::Zstd, Some(22)).is_ok());
        assert!(CompressionConfig::new(Compression::None, Some(0)).is_err());
        assert_eq!(Compression::from_name("ZSTD"), Some(Compression::Zstd));
        assert_eq!(Compression::from_name("brotli"), None);
        for id in 0..8u8 {
            assert_eq!(
                Compression::from_id(id).map(Compression::id),
                if id < 5 {
                    Ok(id)
                } else {
                    Err(DecodeError::UnknownCodec(id))
                }
            );
        }
    }
}
