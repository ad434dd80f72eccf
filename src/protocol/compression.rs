//! Record-batch compression: the four codecs Kafka defines, compression levels, a reusable
//! [`Compressor`] and bounded [`decompress`]ion.
//!
//! What goes on the wire is what Kafka's own clients write and read:
//!
//! | codec  | id | written as                                     | read                                |
//! |--------|----|------------------------------------------------|-------------------------------------|
//! | none   | 0  | the records as they are                        | same                                |
//! | gzip   | 1  | one gzip member (RFC 1952)                     | one or more gzip members            |
//! | snappy | 2  | one raw snappy block (as librdkafka writes)    | raw, or xerial / snappy-java framed |
//! | lz4    | 3  | one LZ4 frame, independent 64 KiB blocks       | one or more LZ4 frames              |
//! | zstd   | 4  | one zstd frame that states its content size    | one or more zstd frames             |
//!
//! The xerial framing that Java clients write for snappy is the 8-byte magic
//! `0x82 'S' 'N' 'A' 'P' 'P' 'Y' 0x00`, an `i32` big-endian version and an `i32` big-endian
//! minimum compatible version (both 1), then any number of `[u32 big-endian length][raw snappy
//! block]` chunks. A raw snappy block can never begin with that magic, so the two are told
//! apart by it.
//!
//! Levels follow Kafka's `compression.<codec>.level` settings (KIP-390): gzip 1..=9 (default 6,
//! and Kafka's `-1` is accepted as "default"), lz4 1..=17 (default 9) and zstd
//! -131072..=22 (default 3). lz4 without a level uses `lz4_flex`'s fast compressor (as
//! librdkafka does by default); with a level, liblz4's frame compressor at that level (HC from
//! level 3; liblz4 caps levels at 12). Both write the same frame settings.
//!
//! Decompression is bounded: output is produced in bounded steps into the caller's buffer and
//! stops with [`DecodeError::TooLarge`] as soon as it would pass the caller's limit, so a small
//! hostile payload cannot make the output buffer grow past that limit. (The codecs' own working
//! memory is bounded separately: an LZ4 block buffer of at most a few MiB, a zstd window of at
//! most zstd's default decoder limit.)

use std::fmt;
use std::io::{self, Read, Write};
use std::ops::RangeInclusive;

use flate2::{Compress, Crc, FlushCompress, Status};
use lz4_flex::frame::{BlockMode, BlockSize, FrameDecoder, FrameEncoder, FrameInfo};

use crate::protocol::codec::DecodeError;

/// The `what` of every [`DecodeError::TooLarge`] that [`decompress`] returns.
const WHAT: &str = "decompressed records";

/// The codec of a record batch (attributes bits 0–2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// No compression (id 0).
    #[default]
    None,
    /// gzip (id 1).
    Gzip,
    /// snappy (id 2).
    Snappy,
    /// lz4, frame format (id 3).
    Lz4,
    /// zstd (id 4; brokers accept it from Produce v7 on).
    Zstd,
}

impl Compression {
    /// Every codec, in id order.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// Kafka's id for the codec, as stored in the batch attributes: 0..=4.
    pub const fn id(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// The codec with Kafka id `id`; [`DecodeError::UnknownCodec`] for ids Kafka does not
    /// define (5..=7 fit in the attribute bits).
    pub fn from_id(id: u8) -> Result<Self, DecodeError> {
        match id {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(DecodeError::UnknownCodec(other)),
        }
    }

    /// The name Kafka's `compression.type` setting uses: `"none"`, `"gzip"`, `"snappy"`,
    /// `"lz4"` or `"zstd"`.
    pub const fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    /// The codec called `s` (one of [`name`](Self::name)'s answers, in any case).
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s))
    }

    /// The levels the codec accepts, as Kafka defines them; `None` for codecs without levels
    /// (none, snappy).
    pub fn level_range(self) -> Option<RangeInclusive<i32>> {
        match self {
            Compression::None | Compression::Snappy => None,
            Compression::Gzip => Some(1..=9),
            Compression::Lz4 => Some(1..=17),
            Compression::Zstd => Some(-131_072..=22),
        }
    }

    /// The level used when none is given (Kafka's defaults); `None` for codecs without levels,
    /// and for lz4, whose default is the fast (non-HC) compressor.
    pub fn default_level(self) -> Option<i32> {
        match self {
            Compression::None | Compression::Snappy => None,
            Compression::Gzip => Some(6),
            Compression::Lz4 => None,
            Compression::Zstd => Some(3),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// A compression level the codec does not accept (see [`Compression::level_range`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid {codec} compression level {level}: {}", ValidLevels(*.codec))]
pub struct InvalidLevel {
    /// The codec the level was given for.
    pub codec: Compression,
    /// The level given.
    pub level: i32,
}

impl InvalidLevel {
    /// The levels the codec accepts; `None` if it takes no level at all.
    pub fn valid_range(&self) -> Option<RangeInclusive<i32>> {
        self.codec.level_range()
    }
}

/// Renders what a codec accepts, for [`InvalidLevel`]'s message.
struct ValidLevels(Compression);

impl fmt::Display for ValidLevels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.level_range() {
            None => write!(f, "{} takes no level", self.0),
            Some(r) if self.0 == Compression::Gzip => write!(
                f,
                "valid levels are {}..={} (or -1 for the default)",
                r.start(),
                r.end()
            ),
            Some(r) => write!(f, "valid levels are {}..={}", r.start(), r.end()),
        }
    }
}

/// A codec and an optional level, checked against the codec's range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompressionConfig {
    /// The codec.
    pub compression: Compression,
    /// The level; `None` for the codec's default (and always `None` for none and snappy).
    pub level: Option<i32>,
}

impl CompressionConfig {
    /// A checked config. `level` must lie in [`Compression::level_range`]; codecs without
    /// levels take only `None`. For gzip, `Some(-1)` (Kafka's "default" value) is accepted and
    /// stored as `None`.
    pub fn new(compression: Compression, level: Option<i32>) -> Result<Self, InvalidLevel> {
        let level = match (level, compression.level_range()) {
            (None, _) => None,
            (Some(-1), Some(_)) if compression == Compression::Gzip => None,
            (Some(l), Some(range)) if range.contains(&l) => Some(l),
            (Some(l), _) => {
                return Err(InvalidLevel {
                    codec: compression,
                    level: l,
                })
            }
        };
        Ok(CompressionConfig { compression, level })
    }

    /// The level compression runs at: the given one (if in range), else the codec's default;
    /// `None` for codecs without levels.
    pub fn effective_level(&self) -> Option<i32> {
        let range = self.compression.level_range()?;
        let level = self
            .level
            .filter(|l| range.contains(l))
            .or(self.compression.default_level())?;
        Some(level)
    }
}

/// The per-codec state a [`Compressor`] keeps between calls.
enum State {
    None,
    Gzip(Box<GzipState>),
    Snappy(Box<snap::raw::Encoder>),
    Lz4(Box<Lz4State>),
    /// lz4 at an explicit level, through liblz4 (lz4_flex has no levels).
    Lz4Level(u32),
    /// `None` only if zstd could not create its context (out of memory); retried on use.
    Zstd(Option<zstd::bulk::Compressor<'static>>),
}

struct GzipState {
    deflate: Compress,
    /// The header's XFL byte: 2 for the slowest level, 4 for the fastest, else 0.
    xfl: u8,
}

/// lz4's frame, written here around blocks from `lz4_flex`'s block compressor: going through
/// its `FrameEncoder` cost a copy of every input byte into the encoder's buffer and ran its
/// slower frame path (1.35× the block compressor's time on 1 KiB records; BENCHMARKS.md).
struct Lz4State {
    /// The frame header (magic, FLG, BD, header checksum) for [`lz4_frame_info`]'s settings,
    /// as `lz4_flex`'s frame encoder writes it.
    header: Vec<u8>,
    /// One block's compressed form, before it is copied out (so `out` is never zero-filled).
    scratch: Vec<u8>,
}

/// Reusable compressor: holds per-codec state (a deflate stream, a snappy hash table, an lz4
/// frame encoder and its buffers, a zstd context) so compressing many batches on one thread
/// does not allocate codec state again for each batch.
///
/// ```
/// use kprod::protocol::compression::{decompress, Compression, CompressionConfig, Compressor};
///
/// let records = b"some records, some records, some records".repeat(100);
/// let mut compressor = Compressor::new(CompressionConfig::new(Compression::Zstd, Some(5))?);
///
/// let mut wire = Vec::new();
/// compressor.compress(&records, &mut wire)?;
/// assert!(wire.len() < records.len());
///
/// let mut back = Vec::new();
/// decompress(Compression::Zstd, &wire, 1 << 20, &mut back)?;
/// assert_eq!(back, records);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Compressor {
    config: CompressionConfig,
    state: State,
}

impl fmt::Debug for Compressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compressor")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The LZ4 frame settings written: independent 64 KiB blocks, no checksums, no content size —
/// what Kafka's Java client writes and every Kafka client reads.
fn lz4_frame_info() -> FrameInfo {
    FrameInfo::new()
        .block_size(BlockSize::Max64KB)
        .block_mode(BlockMode::Independent)
        .block_checksums(false)
        .content_checksum(false)
        .content_size(None)
}

const LZ4_BLOCK: usize = 64 * 1024;

/// An LZ4 frame's end mark: a zero block size.
const LZ4_END_MARK: [u8; 4] = [0; 4];
/// A block size's high bit: the block is stored uncompressed.
const LZ4_UNCOMPRESSED: u32 = 1 << 31;

fn new_lz4_state() -> Lz4State {
    // The empty frame, as the frame encoder writes it, is the header and the end mark.
    let mut encoder = FrameEncoder::with_frame_info(lz4_frame_info(), Vec::new());
    let mut header = match encoder.try_finish() {
        Ok(()) => std::mem::take(encoder.get_mut()),
        Err(_) => Vec::new(),
    };
    debug_assert!(header.len() == 11 && header.ends_with(&LZ4_END_MARK));
    header.truncate(header.len().saturating_sub(LZ4_END_MARK.len()));
    Lz4State {
        header,
        scratch: vec![0; lz4_flex::block::get_maximum_output_size(LZ4_BLOCK)],
    }
}

impl Compressor {
    /// A compressor for `config`. Levels outside the codec's range (possible only by building
    /// the config without [`CompressionConfig::new`]) fall back to the codec's default.
    pub fn new(config: CompressionConfig) -> Self {
        let level = config.effective_level();
        let state = match config.compression {
            Compression::None => State::None,
            Compression::Gzip => {
                let level = level.unwrap_or(6).clamp(1, 9) as u32;
                State::Gzip(Box::new(GzipState {
                    deflate: Compress::new(flate2::Compression::new(level), false),
                    xfl: match level {
                        9 => 2,
                        1 => 4,
                        _ => 0,
                    },
                }))
            }
            Compression::Snappy => State::Snappy(Box::new(snap::raw::Encoder::new())),
            Compression::Lz4 => match level {
                None => State::Lz4(Box::new(new_lz4_state())),
                Some(l) => State::Lz4Level(l.clamp(1, 17) as u32),
            },
            Compression::Zstd => State::Zstd(zstd::bulk::Compressor::new(level.unwrap_or(3)).ok()),
        };
        Compressor { config, state }
    }

    /// The config this compressor was made with.
    pub fn config(&self) -> CompressionConfig {
        self.config
    }

    /// The most [`compress`](Self::compress) can append for `input_len` bytes of input (the
    /// codec's worst case, for input that does not compress). An `out` with this much spare
    /// capacity is never reallocated while compressing: a reallocation copies the whole old
    /// allocation and touches fresh pages (perf showed it at 6–8% of a producer's CPU with lz4).
    pub fn max_output_len(&self, input_len: usize) -> usize {
        let n = input_len;
        let blocks = n.div_ceil(LZ4_BLOCK);
        match &self.state {
            State::None => n,
            State::Gzip(_) => GZIP_HEADER.len() + deflate_bound(n) + 8,
            State::Snappy(_) => snap::raw::max_compress_len(n).max(n),
            // Header, per block its size and the block stored as is, end mark.
            State::Lz4(_) => 7 + n + 4 * blocks + 4,
            // liblz4's frame bound: each block at its own worst case, plus framing.
            State::Lz4Level(_) => 19 + n + n / 255 + 20 * blocks + 4,
            State::Zstd(_) => zstd::zstd_safe::compress_bound(n),
        }
    }

    /// Appends the compressed form of `input` to `out` (never clears `out`). For
    /// [`Compression::None`], appends `input` itself.
    ///
    /// On error `out` is left as it was.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        let start = out.len();
        let result = match &mut self.state {
            State::None => {
                out.extend_from_slice(input);
                Ok(())
            }
            State::Gzip(gz) => gzip_compress(gz, input, out),
            State::Snappy(enc) => snappy_compress(enc, input, out),
            State::Lz4(lz4) => lz4_compress(lz4, input, out),
            State::Lz4Level(level) => lz4_compress_level(*level, input, out),
            State::Zstd(ctx) => {
                if ctx.is_none() {
                    *ctx = Some(zstd::bulk::Compressor::new(
                        self.config.effective_level().unwrap_or(3),
                    )?);
                }
                match ctx {
                    Some(c) => zstd_compress(c, input, out),
                    None => Err(io::Error::other("zstd context unavailable")),
                }
            }
        };
        if result.is_err() {
            out.truncate(start);
        }
        result
    }
}

// ---------------------------------------------------------------------------------------------
// Compression, per codec
// ---------------------------------------------------------------------------------------------

/// gzip member header: magic, CM = deflate, no flags, MTIME = 0, then XFL and OS (255: unknown).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

/// An upper bound on raw deflate output for `n` input bytes. zlib's `deflateBound` (n/4096 +
/// n/16384 + ...) is not enough for miniz at level 1, which on incompressible input can end
/// blocks every few KiB (5 bytes of stored-block header each; the proptest
/// `output_fits_max_output_len` found 4 bytes over it): n/512 covers blocks down to 2.5 KiB.
fn deflate_bound(n: usize) -> usize {
    n.saturating_add((n >> 9) + 64)
}

fn gzip_compress(gz: &mut GzipState, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    gz.deflate.reset();
    out.reserve(GZIP_HEADER.len() + deflate_bound(input.len()) + 8);
    let mut header = GZIP_HEADER;
    header[8] = gz.xfl;
    out.extend_from_slice(&header);
    let base = gz.deflate.total_in();
    loop {
        let (before_in, before_out) = (gz.deflate.total_in(), gz.deflate.total_out());
        let consumed = (before_in - base) as usize;
        let status = gz
            .deflate
            .compress_vec(&input[consumed..], out, FlushCompress::Finish)
            .map_err(io::Error::other)?;
        if status == Status::StreamEnd {
            break;
        }
        let progressed = gz.deflate.total_in() != before_in || gz.deflate.total_out() != before_out;
        if out.capacity() - out.len() < 64 {
            out.reserve((input.len() >> 4).max(4096));
        } else if !progressed {
            return Err(io::Error::other("deflate made no progress"));
        }
    }
    let mut crc = Crc::new();
    crc.update(input);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    // ISIZE: the input length modulo 2^32.
    out.extend_from_slice(&(input.len() as u32).to_le_bytes());
    Ok(())
}

fn snappy_compress(
    enc: &mut snap::raw::Encoder,
    input: &[u8],
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let bound = snap::raw::max_compress_len(input.len());
    if bound == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "input too large for snappy",
        ));
    }
    let start = out.len();
    out.resize(start + bound, 0);
    match enc.compress(input, &mut out[start..]) {
        Ok(n) => {
            out.truncate(start + n);
            Ok(())
        }
        Err(e) => Err(io::Error::other(e)),
    }
}

/// One LZ4 frame: the header, each 64 KiB of `input` as an independent block (stored as is
/// when compressing does not shrink it, as the frame format allows), the end mark.
fn lz4_compress(lz4: &mut Lz4State, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    let blocks = input.len().div_ceil(LZ4_BLOCK);
    // At most: header, per block a 4-byte size and the block stored as is, end mark.
    out.reserve(lz4.header.len() + input.len() + 4 * blocks + LZ4_END_MARK.len());
    out.extend_from_slice(&lz4.header);
    for block in input.chunks(LZ4_BLOCK) {
        let n =
            lz4_flex::block::compress_into(block, &mut lz4.scratch).map_err(io::Error::other)?;
        if n < block.len() {
            out.extend_from_slice(&(n as u32).to_le_bytes());
            out.extend_from_slice(&lz4.scratch[..n]);
        } else {
            out.extend_from_slice(&(block.len() as u32 | LZ4_UNCOMPRESSED).to_le_bytes());
            out.extend_from_slice(block);
        }
    }
    out.extend_from_slice(&LZ4_END_MARK);
    Ok(())
}

fn lz4_compress_level(level: u32, input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
    let mut enc = lz4::EncoderBuilder::new()
        .level(level)
        .block_size(lz4::BlockSize::Max64KB)
        .block_mode(lz4::BlockMode::Independent)
        .checksum(lz4::ContentChecksum::NoChecksum)
        .build(out)?;
    enc.write_all(input)?;
    let (_, result) = enc.finish();
    result
}

fn zstd_compress(
    ctx: &mut zstd::bulk::Compressor<'static>,
    input: &[u8],
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let start = out.len();
    out.reserve(zstd::zstd_safe::compress_bound(input.len()));
    // The cursor makes zstd write after the bytes already in `out` rather than over them.
    let mut cursor = io::Cursor::new(&mut *out);
    cursor.set_position(start as u64);
    ctx.compress_to_buffer(input, &mut cursor)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Decompression
// ---------------------------------------------------------------------------------------------

/// Decompresses `input`, compressed with `codec`, appending the result to `out`.
///
/// Fails with [`DecodeError::TooLarge`] (`what`: `"decompressed records"`) once the output
/// would exceed `max_size` bytes — checked while decompressing (and against declared sizes
/// before it), so `out` never grows by more than about `max_size` bytes — and with
/// [`DecodeError::Decompress`] for input the codec rejects, truncated input and empty input
/// (for any codec but none). Snappy input may be raw or xerial-framed; gzip input may hold
/// several members, lz4 and zstd input several frames. On error `out` is left as it was.
pub fn decompress(
    codec: Compression,
    input: &[u8],
    max_size: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    if codec != Compression::None && input.is_empty() {
        return Err(failed(codec, "empty input"));
    }
    let start = out.len();
    let result = match codec {
        Compression::None => {
            if input.len() > max_size {
                Err(too_large(input.len(), max_size))
            } else {
                out.extend_from_slice(input);
                Ok(())
            }
        }
        Compression::Gzip => gzip_decompress(input, max_size, out),
        Compression::Snappy => snappy_decompress(input, max_size, out),
        Compression::Lz4 => lz4_decompress(input, max_size, out),
        Compression::Zstd => zstd_decompress(input, max_size, out),
    };
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn failed(codec: Compression, reason: impl fmt::Display) -> DecodeError {
    DecodeError::Decompress {
        codec: codec.name(),
        reason: reason.to_string(),
    }
}

fn too_large(length: usize, limit: usize) -> DecodeError {
    DecodeError::TooLarge {
        what: WHAT,
        length: length as u64,
        limit: limit as u64,
    }
}

/// The first window to decompress into when nothing better is known.
const MIN_WINDOW: usize = 4 * 1024;
/// Size of the stack buffer that checks for more output once the window is full.
const PROBE: usize = 4 * 1024;

/// Reads `reader` to its end into `out`, failing with [`DecodeError::TooLarge`] as soon as more
/// than `max` bytes come out. Output goes straight into `out`, whose length and capacity never
/// pass `max` bytes beyond where they started (plus a probe's worth while checking for more);
/// `hint` sizes the first window.
fn read_bounded<R: Read>(
    codec: Compression,
    mut reader: R,
    hint: usize,
    max: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    let start = out.len();
    let mut filled = start;
    let first = hint.max(MIN_WINDOW).min(max);
    out.reserve_exact(first);
    out.resize(start + first, 0);
    loop {
        if filled < out.len() {
            match reader.read(&mut out[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(failed(codec, e)),
            }
            continue;
        }
        // The window is full: is there more? Read a little into a side buffer to find out
        // without growing `out` for nothing.
        let mut probe = [0u8; PROBE];
        let n = match reader.read(&mut probe) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(failed(codec, e)),
        };
        let produced = filled - start;
        if n > max - produced {
            return Err(too_large(produced + n, max));
        }
        // Grow geometrically, but never past the budget.
        let room = max - produced - n;
        let grow = produced.max(MIN_WINDOW).min(room);
        out.reserve_exact(n + grow);
        out.extend_from_slice(&probe[..n]);
        filled += n;
        out.resize(filled + grow, 0);
    }
    out.truncate(filled);
    Ok(())
}

fn gzip_decompress(input: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    // A gzip member ends with ISIZE, its length modulo 2^32; deflate cannot expand more than
    // ~1032:1, which keeps a lying trailer from sizing the first window beyond reason.
    let hint = match input.len().checked_sub(4) {
        Some(at) => {
            let isize =
                u32::from_le_bytes([input[at], input[at + 1], input[at + 2], input[at + 3]]);
            (isize as usize).min(input.len().saturating_mul(1032))
        }
        None => 0,
    };
    let reader = flate2::bufread::MultiGzDecoder::new(input);
    read_bounded(Compression::Gzip, reader, hint, max, out)
}

/// Magic number of an LZ4 frame (little-endian on the wire).
const LZ4_MAGIC: u32 = 0x184D_2204;

fn lz4_decompress(input: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    // lz4_flex's decoder reads one frame, and treats input that stops between blocks or inside
    // a header or end mark as a clean end. So find each frame's extent first (which rejects
    // truncated frames) and decode the frames one at a time.
    let start = out.len();
    let mut rest = input;
    while !rest.is_empty() {
        let len = lz4_frame_len(rest).map_err(|reason| failed(Compression::Lz4, reason))?;
        let (frame, next) = rest.split_at(len);
        let produced = out.len() - start;
        let hint = frame.len().saturating_mul(2);
        read_bounded(
            Compression::Lz4,
            FrameDecoder::new(frame),
            hint,
            max - produced,
            out,
        )
        .map_err(|e| whole_output(e, produced, max))?;
        rest = next;
    }
    Ok(())
}

/// Restates a [`DecodeError::TooLarge`] about one part of the output (after `produced` bytes
/// of earlier parts) in terms of the whole output and the caller's `max`.
fn whole_output(e: DecodeError, produced: usize, max: usize) -> DecodeError {
    match e {
        DecodeError::TooLarge { length, .. } => DecodeError::TooLarge {
            what: WHAT,
            length: length + produced as u64,
            limit: max as u64,
        },
        other => other,
    }
}

/// The length of the complete LZ4 frame that starts `input`: its header, every block (with
/// checksum), the end mark and the content checksum must all be there. Only the structure is
/// checked; decoding checks the rest.
fn lz4_frame_len(input: &[u8]) -> Result<usize, &'static str> {
    fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], &'static str> {
        if input.len() < n {
            return Err("truncated lz4 frame");
        }
        let (head, tail) = input.split_at(n);
        *input = tail;
        Ok(head)
    }
    fn u32_le(input: &mut &[u8]) -> Result<u32, &'static str> {
        let b = take(input, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    let mut rest = input;
    if u32_le(&mut rest)? != LZ4_MAGIC {
        return Err("not an lz4 frame (bad magic number)");
    }
    let flg = take(&mut rest, 2)?[0]; // FLG and BD
    let content_size = if flg & 0x08 != 0 { 8 } else { 0 };
    let dict_id = if flg & 0x01 != 0 { 4 } else { 0 };
    take(&mut rest, content_size + dict_id + 1)?; // ... and the header checksum
    let block_checksum = if flg & 0x10 != 0 { 4 } else { 0 };
    loop {
        let size = u32_le(&mut rest)? & 0x7FFF_FFFF;
        if size == 0 {
            break;
        }
        take(&mut rest, size as usize + block_checksum)?;
    }
    if flg & 0x04 != 0 {
        take(&mut rest, 4)?; // content checksum
    }
    Ok(input.len() - rest.len())
}

fn zstd_decompress(input: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let hint = match zstd::zstd_safe::get_frame_content_size(input) {
        Ok(Some(n)) if n > max as u64 => {
            return Err(DecodeError::TooLarge {
                what: WHAT,
                length: n,
                limit: max as u64,
            })
        }
        Ok(Some(n)) => {
            // The usual case: one frame that states its size. Decode it in one call into
            // exactly that much room; zstd fails rather than write past it. Anything else
            // (more frames, a wrong size) goes the streaming way below, which reports it.
            if zstd_one_shot(input, n as usize, max, out) {
                return Ok(());
            }
            n as usize
        }
        _ => input.len().saturating_mul(2),
    };
    let reader = zstd::stream::read::Decoder::with_buffer(input)
        .map_err(|e| failed(Compression::Zstd, e))?;
    read_bounded(Compression::Zstd, reader, hint, max, out)
}

/// Decodes `input` whole into `out` if it fits in `size` more bytes (and `max`); `false`, with
/// `out` as it was, if it does not or zstd reports any error.
fn zstd_one_shot(input: &[u8], size: usize, max: usize, out: &mut Vec<u8>) -> bool {
    let start = out.len();
    out.reserve_exact(size);
    let Ok(mut ctx) = zstd::bulk::Decompressor::new() else {
        return false;
    };
    let mut cursor = io::Cursor::new(&mut *out);
    cursor.set_position(start as u64);
    match ctx.decompress_to_buffer(input, &mut cursor) {
        // `out` may have had spare room beyond `size`: hold the result to the limit too.
        Ok(n) if n <= max => true,
        _ => {
            out.truncate(start);
            false
        }
    }
}

/// The magic that starts xerial / snappy-java framed data.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
/// Magic, version (i32 BE) and minimum compatible version (i32 BE).
const XERIAL_HEADER_LEN: usize = 16;

fn snappy_decompress(input: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    if !input.starts_with(&XERIAL_MAGIC) {
        return snappy_block(input, max, out);
    }
    // The versions are not checked: every writer uses 1 and 1, and readers (librdkafka,
    // snappy-java) accept what follows regardless.
    let mut rest = input
        .get(XERIAL_HEADER_LEN..)
        .ok_or_else(|| failed(Compression::Snappy, "truncated snappy-java header"))?;
    let start = out.len();
    while !rest.is_empty() {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            return Err(failed(
                Compression::Snappy,
                format_args!(
                    "{} trailing bytes after the last snappy-java chunk",
                    rest.len()
                ),
            ));
        };
        let len = u32::from_be_bytes(*len) as usize;
        if len > tail.len() {
            return Err(failed(
                Compression::Snappy,
                format_args!(
                    "snappy-java chunk of {len} bytes but only {} remain",
                    tail.len()
                ),
            ));
        }
        let (block, next) = tail.split_at(len);
        let produced = out.len() - start;
        snappy_block(block, max - produced, out).map_err(|e| whole_output(e, produced, max))?;
        rest = next;
    }
    Ok(())
}

/// Decompresses one raw snappy block, appending to `out`, if its declared length fits `max`.
fn snappy_block(block: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let len = snap::raw::decompress_len(block).map_err(|e| failed(Compression::Snappy, e))?;
    if len > max {
        return Err(too_large(len, max));
    }
    // Snappy cannot expand more than 64 bytes out per 3 bytes in (a 2-byte-offset copy), so a
    // larger declared length is a lie: refuse it before allocating for it.
    if len / 21 > block.len() {
        return Err(failed(
            Compression::Snappy,
            format_args!(
                "declared length {len} is impossible for {} compressed bytes",
                block.len()
            ),
        ));
    }
    let start = out.len();
    out.resize(start + len, 0);
    match snap::raw::Decoder::new().decompress(block, &mut out[start..]) {
        Ok(n) if n == len => Ok(()),
        Ok(n) => Err(failed(
            Compression::Snappy,
            format_args!("block declared {len} bytes but held {n}"),
        )),
        Err(e) => Err(failed(Compression::Snappy, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cfg(c: Compression, level: Option<i32>) -> CompressionConfig {
        CompressionConfig::new(c, level).unwrap()
    }

    /// Configs covering every codec and several levels.
    fn configs() -> Vec<CompressionConfig> {
        vec![
            cfg(Compression::None, None),
            cfg(Compression::Gzip, None),
            cfg(Compression::Gzip, Some(1)),
            cfg(Compression::Gzip, Some(9)),
            cfg(Compression::Snappy, None),
            cfg(Compression::Lz4, None),
            cfg(Compression::Lz4, Some(1)),
            cfg(Compression::Lz4, Some(17)),
            cfg(Compression::Zstd, None),
            cfg(Compression::Zstd, Some(-131_072)),
            cfg(Compression::Zstd, Some(-5)),
            cfg(Compression::Zstd, Some(1)),
            cfg(Compression::Zstd, Some(19)),
            cfg(Compression::Zstd, Some(22)),
        ]
    }

    fn round_trip(c: &mut Compressor, input: &[u8]) -> Vec<u8> {
        let mut wire = b"prefix".to_vec();
        c.compress(input, &mut wire).unwrap();
        assert_eq!(&wire[..6], b"prefix", "compress must append");
        let mut back = b"kept".to_vec();
        decompress(c.config().compression, &wire[6..], input.len(), &mut back)
            .unwrap_or_else(|e| panic!("{:?}: {e}", c.config()));
        assert_eq!(&back[..4], b"kept", "decompress must append");
        back.split_off(4)
    }

    /// Text-like data that compresses, of about `len` bytes.
    fn compressible(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| b"key=value; topic=orders; partition=7\n"[i % 37] ^ ((i / 4096) as u8 & 1))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn output_fits_max_output_len(
            input in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..200_000),
                (0usize..300_000).prop_map(compressible),
            ],
        ) {
            // With max_output_len of spare room, compressing never reallocates `out`.
            for config in configs() {
                let mut c = Compressor::new(config);
                let bound = c.max_output_len(input.len());
                let mut out = b"head".to_vec();
                out.reserve_exact(bound);
                let capacity = out.capacity();
                c.compress(&input, &mut out).unwrap();
                prop_assert!(out.len() - 4 <= bound, "{config:?}: {} > {bound}", out.len() - 4);
                prop_assert_eq!(out.capacity(), capacity, "{:?} reallocated", config);
            }
        }

        #[test]
        fn round_trips_every_codec(
            input in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..3000),
                (0usize..200_000).prop_map(compressible),
            ],
        ) {
            for config in configs() {
                let mut c = Compressor::new(config);
                prop_assert_eq!(round_trip(&mut c, &input), input.clone());
                // Again with the same compressor: its reused state must not leak between calls.
                prop_assert_eq!(round_trip(&mut c, &input), input.clone());
            }
        }

        #[test]
        fn garbage_never_panics(
            input in proptest::collection::vec(any::<u8>(), 0..512),
            max in 0usize..4096,
        ) {
            for codec in Compression::ALL {
                let mut out = vec![1, 2, 3];
                match decompress(codec, &input, max, &mut out) {
                    Ok(()) => prop_assert!(out.len() - 3 <= max),
                    Err(_) => prop_assert_eq!(&out, &[1, 2, 3]),
                }
            }
        }

        #[test]
        fn corrupted_payloads_never_panic(
            seed in proptest::collection::vec(any::<u8>(), 1..2000),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
            max in 0usize..8192,
        ) {
            let input = [seed.clone(), compressible(3000)].concat();
            for codec in Compression::ALL {
                let mut wire = Vec::new();
                Compressor::new(cfg(codec, None)).compress(&input, &mut wire).unwrap();
                for &(at, x) in &flips {
                    let at = at % wire.len();
                    wire[at] ^= x | 1;
                }
                let mut out = Vec::new();
                if decompress(codec, &wire, max, &mut out).is_ok() {
                    prop_assert!(out.len() <= max);
                }
            }
        }

        #[test]
        fn xerial_with_random_chunks(
            chunks in proptest::collection::vec(
                proptest::collection::vec(0u8..4, 0..5000), 0..5),
        ) {
            let framed = xerial(&chunks.iter().map(Vec::as_slice).collect::<Vec<_>>());
            let all = chunks.concat();
            let mut out = Vec::new();
            decompress(Compression::Snappy, &framed, all.len(), &mut out).unwrap();
            prop_assert_eq!(&out, &all);
            if !all.is_empty() {
                let r = decompress(Compression::Snappy, &framed, all.len() - 1, &mut out);
                let is_too_large = matches!(r, Err(DecodeError::TooLarge { .. }));
                prop_assert!(is_too_large);
            }
        }
    }

    #[test]
    fn one_compressor_many_inputs() {
        // Sizes across lz4's 64 KiB block edge, and empty inputs between non-empty ones.
        let sizes = [0, 1, 100, 0, 65_535, 65_536, 65_537, 0, 300_000, 7];
        for config in configs() {
            let mut c = Compressor::new(config);
            for &n in &sizes {
                let input = compressible(n);
                assert_eq!(round_trip(&mut c, &input), input, "{config:?} size {n}");
            }
        }
    }

    #[test]
    fn empty_input_round_trips() {
        for config in configs() {
            let mut c = Compressor::new(config);
            let mut wire = Vec::new();
            c.compress(&[], &mut wire).unwrap();
            assert_eq!(wire.is_empty(), config.compression == Compression::None);
            let mut back = Vec::new();
            decompress(config.compression, &wire, 0, &mut back).unwrap();
            assert!(back.is_empty());
        }
    }

    #[test]
    fn exact_limit_is_allowed() {
        let input = compressible(100_000);
        for config in configs() {
            let mut wire = Vec::new();
            Compressor::new(config).compress(&input, &mut wire).unwrap();
            let mut back = Vec::new();
            decompress(config.compression, &wire, input.len(), &mut back).unwrap();
            assert_eq!(back, input);
            let r = decompress(config.compression, &wire, input.len() - 1, &mut back);
            assert!(
                matches!(
                    r,
                    Err(DecodeError::TooLarge {
                        what: WHAT,
                        limit: 99_999,
                        ..
                    })
                ),
                "{config:?}: {r:?}"
            );
            assert_eq!(back, input, "a failed decompress leaves `out` alone");
        }
    }

    #[test]
    fn bombs_are_stopped_at_the_limit() {
        let bomb = vec![0u8; 1 << 20];
        for config in configs() {
            let mut wire = Vec::new();
            Compressor::new(config).compress(&bomb, &mut wire).unwrap();
            let mut out = Vec::new();
            let r = decompress(config.compression, &wire, 64 * 1024, &mut out);
            match r {
                Err(DecodeError::TooLarge {
                    what: WHAT,
                    length,
                    limit: 65_536,
                }) => assert!(length > 65_536, "{config:?}"),
                other => panic!("{config:?}: {other:?}"),
            }
            assert!(out.is_empty());
            assert!(
                out.capacity() <= 64 * 1024 + PROBE,
                "{config:?}: capacity {}",
                out.capacity()
            );
        }
    }

    #[test]
    fn zstd_without_content_size_is_still_bounded() {
        // A streamed zstd frame does not declare its size up front.
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        enc.include_contentsize(false).unwrap();
        enc.write_all(&vec![7u8; 1 << 20]).unwrap();
        let wire = enc.finish().unwrap();
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&wire).unwrap(),
            None
        );
        let mut out = Vec::new();
        let r = decompress(Compression::Zstd, &wire, 64 * 1024, &mut out);
        assert!(matches!(r, Err(DecodeError::TooLarge { .. })), "{r:?}");
        decompress(Compression::Zstd, &wire, 1 << 20, &mut out).unwrap();
        assert_eq!(out, vec![7u8; 1 << 20]);
    }

    fn assert_decompress_error(codec: Compression, input: &[u8]) {
        let mut out = Vec::new();
        match decompress(codec, input, 1 << 20, &mut out) {
            Err(DecodeError::Decompress {
                codec: name,
                reason,
            }) => {
                assert_eq!(name, codec.name());
                assert!(!reason.is_empty());
            }
            other => panic!("{codec}: {input:02x?} gave {other:?}"),
        }
        assert!(out.is_empty());
    }

    #[test]
    fn truncated_and_garbage_input_is_an_error() {
        let input = compressible(200_000);
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut wire = Vec::new();
            Compressor::new(cfg(codec, None))
                .compress(&input, &mut wire)
                .unwrap();
            for cut in [1, 5, wire.len() / 2, wire.len() - 1] {
                assert_decompress_error(codec, &wire[..cut]);
            }
            assert_decompress_error(codec, &[]);
            assert_decompress_error(codec, b"definitely not compressed at all, no sir");
            assert_decompress_error(codec, &[0xff; 64]);
            // Valid data followed by junk.
            let mut junk = wire.clone();
            junk.extend_from_slice(b"junk!");
            assert_decompress_error(codec, &junk);
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        let input = compressible(150_000);
        let framed = xerial(&[&input[..70_000], &input[70_000..]]);
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut wire = Vec::new();
            Compressor::new(cfg(codec, None))
                .compress(&input, &mut wire)
                .unwrap();
            for cut in 1..wire.len() {
                assert_decompress_error(codec, &wire[..cut]);
            }
        }
        // xerial framing has no end mark: a cut between chunks is a shorter valid input.
        let first_chunk_end = 16 + 4 + u32::from_be_bytes(framed[16..20].try_into().unwrap());
        for cut in 1..framed.len() {
            if cut != 16 && cut != first_chunk_end as usize {
                assert_decompress_error(Compression::Snappy, &framed[..cut]);
            }
        }
    }

    #[test]
    fn lz4_frames_with_optional_fields_decode() {
        // Content size, checksums and linked blocks are all legal in frames other writers make.
        let input = compressible(150_000);
        let info = FrameInfo::new()
            .block_size(BlockSize::Max256KB)
            .block_mode(BlockMode::Linked)
            .block_checksums(true)
            .content_checksum(true)
            .content_size(Some(input.len() as u64));
        let mut enc = FrameEncoder::with_frame_info(info, Vec::new());
        enc.write_all(&input).unwrap();
        let mut wire = enc.finish().unwrap();
        // Two frames back to back.
        let second = wire.clone();
        wire.extend_from_slice(&second);
        let mut out = Vec::new();
        decompress(Compression::Lz4, &wire, 2 * input.len(), &mut out).unwrap();
        let input_len = input.len();
        assert_eq!(out, [input.clone(), input].concat());
        for cut in [wire.len() - 1, wire.len() - 4, second.len() + 6] {
            assert_decompress_error(Compression::Lz4, &wire[..cut]);
        }
        // The limit covers all frames together.
        let r = decompress(Compression::Lz4, &wire, input_len + 10, &mut out);
        assert!(
            matches!(r, Err(DecodeError::TooLarge { length, limit, .. })
                if length > limit && limit == (input_len + 10) as u64),
            "{r:?}"
        );
    }

    #[test]
    fn concatenated_zstd_frames_decode() {
        let mut c = Compressor::new(cfg(Compression::Zstd, None));
        let mut wire = Vec::new();
        c.compress(b"one frame, ", &mut wire).unwrap();
        c.compress(b"another frame", &mut wire).unwrap();
        let mut out = Vec::new();
        decompress(Compression::Zstd, &wire, 100, &mut out).unwrap();
        assert_eq!(out, b"one frame, another frame");
    }

    #[test]
    fn corrupted_gzip_checksum_is_an_error() {
        let mut wire = Vec::new();
        Compressor::new(cfg(Compression::Gzip, None))
            .compress(b"hello hello hello", &mut wire)
            .unwrap();
        let crc_at = wire.len() - 8;
        wire[crc_at] ^= 1;
        assert_decompress_error(Compression::Gzip, &wire);
    }

    #[test]
    fn none_codec_copies_and_bounds() {
        let mut out = Vec::new();
        decompress(Compression::None, b"abc", 3, &mut out).unwrap();
        decompress(Compression::None, b"", 0, &mut out).unwrap();
        assert_eq!(out, b"abc");
        assert_eq!(
            decompress(Compression::None, b"abcd", 3, &mut out),
            Err(DecodeError::TooLarge {
                what: WHAT,
                length: 4,
                limit: 3
            })
        );
        let mut wire = Vec::new();
        Compressor::new(CompressionConfig::default())
            .compress(b"xyz", &mut wire)
            .unwrap();
        assert_eq!(wire, b"xyz");
    }

    // --- wire format details --------------------------------------------------------------

    #[test]
    fn gzip_is_a_standard_member_and_multi_member_decodes() {
        let mut c = Compressor::new(cfg(Compression::Gzip, Some(9)));
        let mut wire = Vec::new();
        c.compress(b"first member, ", &mut wire).unwrap();
        assert_eq!(&wire[..4], &[0x1f, 0x8b, 8, 0]);
        assert_eq!(wire[8], 2, "XFL for the slowest level");
        // Any gzip reader decodes one member.
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&wire[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, b"first member, ");
        // Two members back to back (as a Java writer can produce) decode as one stream.
        c.compress(b"second member", &mut wire).unwrap();
        let mut other = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        other.write_all(b", third").unwrap();
        wire.extend_from_slice(&other.finish().unwrap());
        let mut out = Vec::new();
        decompress(Compression::Gzip, &wire, 1000, &mut out).unwrap();
        assert_eq!(out, b"first member, second member, third");
    }

    #[test]
    fn gzip_levels_are_real() {
        let input = compressible(500_000);
        let size = |level| {
            let mut wire = Vec::new();
            Compressor::new(cfg(Compression::Gzip, Some(level)))
                .compress(&input, &mut wire)
                .unwrap();
            wire.len()
        };
        assert!(size(9) < size(1));
    }

    #[test]
    fn zstd_levels_are_real_and_frames_are_standard() {
        let input: Vec<u8> = (0..400_000u32)
            .flat_map(|i| (i.wrapping_mul(2_654_435_761) % 1000).to_le_bytes())
            .collect();
        let compress = |level| {
            let mut wire = Vec::new();
            Compressor::new(cfg(Compression::Zstd, Some(level)))
                .compress(&input, &mut wire)
                .unwrap();
            wire
        };
        let fast = compress(-50);
        let slow = compress(19);
        assert!(slow.len() < fast.len(), "{} vs {}", slow.len(), fast.len());
        assert_eq!(&slow[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd frame magic");
        assert_eq!(zstd::bulk::decompress(&slow, input.len()).unwrap(), input);
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&slow).unwrap(),
            Some(input.len() as u64)
        );
        assert_eq!(
            Compression::Zstd.level_range(),
            Some(zstd::compression_level_range())
        );
    }

    #[test]
    fn lz4_frame_is_what_kafka_reads() {
        let mut wire = Vec::new();
        Compressor::new(cfg(Compression::Lz4, None))
            .compress(&compressible(200_000), &mut wire)
            .unwrap();
        assert_eq!(&wire[..4], &[0x04, 0x22, 0x4d, 0x18], "frame magic");
        // FLG: version 01, independent blocks, no block checksums, no content size, no content
        // checksum, no dictionary. BD: 64 KiB blocks.
        assert_eq!(wire[4], 0b0110_0000);
        assert_eq!(wire[5], 0b0100_0000);
        assert_eq!(&wire[wire.len() - 4..], &[0, 0, 0, 0], "end mark");
        // Blocks never exceed 64 KiB of output.
        let mut decoder = FrameDecoder::new(&wire[..]);
        let mut out = Vec::new();
        decoder.read_to_end(&mut out).unwrap();
        assert_eq!(out, compressible(200_000));
    }

    #[test]
    fn lz4_frames_decode_with_liblz4() {
        // liblz4 (the C library, through the `lz4` crate) is an implementation independent of
        // the block compressor and of our frame writing: every shape of input it must read —
        // empty, tiny, exactly one and two blocks, a partial last block, and incompressible
        // data, which goes out as stored blocks.
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let random: Vec<u8> = (0..150_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut c = Compressor::new(cfg(Compression::Lz4, None));
        for input in [
            Vec::new(),
            b"k".to_vec(),
            compressible(LZ4_BLOCK),
            compressible(2 * LZ4_BLOCK),
            compressible(200_000),
            random.clone(),
            [compressible(70_000), random].concat(),
        ] {
            let mut wire = b"kept".to_vec();
            c.compress(&input, &mut wire).unwrap();
            assert_eq!(&wire[..4], b"kept", "compress must append");
            let mut back = Vec::new();
            lz4::Decoder::new(&wire[4..])
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, input, "liblz4 reads back {} bytes", input.len());
            let stored = wire[4 + 7..]
                .windows(4)
                .next()
                .map(|w| u32::from_le_bytes(w.try_into().unwrap()) & LZ4_UNCOMPRESSED != 0);
            if input.len() == 150_000 {
                assert_eq!(stored, Some(true), "incompressible data is stored");
            }
        }
    }

    #[test]
    fn lz4_empty_frame_is_a_full_frame() {
        let mut c = Compressor::new(cfg(Compression::Lz4, None));
        let mut first = Vec::new();
        c.compress(b"", &mut first).unwrap();
        c.compress(b"data", &mut Vec::new()).unwrap();
        let mut again = Vec::new();
        c.compress(b"", &mut again).unwrap();
        assert_eq!(first, again);
        assert_eq!(first.len(), 4 + 3 + 4, "magic, descriptor, end mark");
        assert_eq!(&first[..4], &[0x04, 0x22, 0x4d, 0x18]);
    }

    #[test]
    fn snappy_is_written_raw() {
        let input = compressible(10_000);
        let mut wire = Vec::new();
        Compressor::new(cfg(Compression::Snappy, None))
            .compress(&input, &mut wire)
            .unwrap();
        assert_eq!(
            snap::raw::Decoder::new().decompress_vec(&wire).unwrap(),
            input
        );
    }

    /// Builds xerial / snappy-java framed data with one raw snappy block per chunk.
    fn xerial(chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = XERIAL_MAGIC.to_vec();
        out.extend_from_slice(&1i32.to_be_bytes()); // version
        out.extend_from_slice(&1i32.to_be_bytes()); // minimum compatible version
        for chunk in chunks {
            let block = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
            out.extend_from_slice(&(block.len() as u32).to_be_bytes());
            out.extend_from_slice(&block);
        }
        out
    }

    #[test]
    fn snappy_java_framing_decodes() {
        let a = compressible(32 * 1024);
        let b = b"the second chunk".repeat(50);
        let framed = xerial(&[&a, &b]);
        assert_eq!(
            &framed[..16],
            &[0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1]
        );
        let mut out = b"pre".to_vec();
        decompress(Compression::Snappy, &framed, a.len() + b.len(), &mut out).unwrap();
        assert_eq!(&out[..3], b"pre");
        assert_eq!(out[3..], [a.clone(), b.clone()].concat());

        // Each chunk fits the limit, together they do not.
        let mut out = Vec::new();
        let r = decompress(Compression::Snappy, &framed, a.len() + 10, &mut out);
        assert_eq!(
            r,
            Err(DecodeError::TooLarge {
                what: WHAT,
                length: (a.len() + b.len()) as u64,
                limit: (a.len() + 10) as u64,
            })
        );
        assert!(out.is_empty());

        // A header with no chunks is empty data.
        decompress(Compression::Snappy, &xerial(&[]), 0, &mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn snappy_java_framing_errors() {
        let framed = xerial(&[b"hello hello hello hello", b"world"]);
        // Short header, chunk running past the end, stray bytes after the last chunk.
        assert_decompress_error(Compression::Snappy, &framed[..12]);
        assert_decompress_error(Compression::Snappy, &framed[..framed.len() - 1]);
        let mut stray = framed.clone();
        stray.extend_from_slice(&[0, 0]);
        assert_decompress_error(Compression::Snappy, &stray);
        // A zero-length chunk is not a snappy block.
        let mut empty_chunk = xerial(&[]);
        empty_chunk.extend_from_slice(&0u32.to_be_bytes());
        assert_decompress_error(Compression::Snappy, &empty_chunk);
        // A chunk declaring a huge length with a tiny body: refused, not allocated.
        let mut lying = xerial(&[]);
        lying.extend_from_slice(&3u32.to_be_bytes());
        lying.extend_from_slice(&[0x80, 0x80, 0x20]); // varint 2^19
        assert_decompress_error(Compression::Snappy, &lying);
    }

    #[test]
    fn snappy_declared_length_is_checked_before_allocating() {
        // Raw block declaring 4 GiB - 1 bytes.
        let block = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        let mut out = Vec::new();
        assert_eq!(
            decompress(Compression::Snappy, &block, 1 << 20, &mut out),
            Err(DecodeError::TooLarge {
                what: WHAT,
                length: u32::MAX as u64,
                limit: 1 << 20
            })
        );
        assert_eq!(out.capacity(), 0);
    }

    // --- ids, names, levels ---------------------------------------------------------------

    #[test]
    fn ids_and_names() {
        for (id, c) in Compression::ALL.into_iter().enumerate() {
            assert_eq!(c.id() as usize, id);
            assert_eq!(Compression::from_id(id as u8), Ok(c));
            assert_eq!(Compression::from_name(c.name()), Some(c));
            assert_eq!(Compression::from_name(&c.name().to_uppercase()), Some(c));
            assert_eq!(c.to_string(), c.name());
        }
        for id in 5..=7 {
            assert_eq!(Compression::from_id(id), Err(DecodeError::UnknownCodec(id)));
        }
        assert_eq!(Compression::from_name("Zstd"), Some(Compression::Zstd));
        assert_eq!(Compression::from_name("brotli"), None);
        assert_eq!(Compression::from_name(""), None);
        assert_eq!(Compression::default(), Compression::None);
    }

    #[test]
    fn levels_are_validated() {
        for (codec, lo, hi) in [
            (Compression::Gzip, 1, 9),
            (Compression::Lz4, 1, 17),
            (Compression::Zstd, -131_072, 22),
        ] {
            assert_eq!(codec.level_range(), Some(lo..=hi));
            // lz4's default is the fast compressor, which has no level.
            let default = codec.default_level();
            assert!(default.is_none_or(|d| (lo..=hi).contains(&d)));
            for ok in [lo, hi].into_iter().chain(default) {
                assert_eq!(cfg(codec, Some(ok)).level, Some(ok));
            }
            assert_eq!(cfg(codec, None).effective_level(), default);
            for bad in [lo - 1, hi + 1, i32::MIN, i32::MAX] {
                let err = CompressionConfig::new(codec, Some(bad)).unwrap_err();
                assert_eq!(err, InvalidLevel { codec, level: bad });
                assert_eq!(err.valid_range(), Some(lo..=hi));
                let msg = err.to_string();
                assert!(msg.contains(codec.name()), "{msg}");
                assert!(msg.contains(&bad.to_string()), "{msg}");
                assert!(msg.contains(&format!("{lo}..={hi}")), "{msg}");
            }
        }
        assert_eq!(Compression::Gzip.default_level(), Some(6));
        assert_eq!(Compression::Lz4.default_level(), None);
        assert_eq!(Compression::Zstd.default_level(), Some(3));
        assert_eq!(
            CompressionConfig::new(Compression::Gzip, Some(-1)),
            Ok(cfg(Compression::Gzip, None))
        );
        assert!(CompressionConfig::new(Compression::Lz4, Some(-1)).is_err());
        assert_eq!(cfg(Compression::Zstd, Some(0)).level, Some(0));
        assert_eq!(
            InvalidLevel {
                codec: Compression::Gzip,
                level: 10
            }
            .to_string(),
            "invalid gzip compression level 10: valid levels are 1..=9 (or -1 for the default)"
        );
    }

    #[test]
    fn codecs_without_levels_reject_any_level() {
        for codec in [Compression::None, Compression::Snappy] {
            assert_eq!(codec.level_range(), None);
            assert_eq!(codec.default_level(), None);
            assert_eq!(cfg(codec, None).effective_level(), None);
            for level in [0, 1, -1] {
                let err = CompressionConfig::new(codec, Some(level)).unwrap_err();
                assert_eq!(err.valid_range(), None);
                assert_eq!(
                    err.to_string(),
                    format!("invalid {codec} compression level {level}: {codec} takes no level")
                );
            }
        }
    }

    #[test]
    fn unchecked_configs_do_not_break_the_compressor() {
        // The fields are public, so a config can skip validation: fall back to the default.
        for compression in Compression::ALL {
            for level in [Some(i32::MIN), Some(-1), Some(0), Some(1000)] {
                let config = CompressionConfig { compression, level };
                let mut c = Compressor::new(config);
                assert_eq!(c.config(), config);
                let input = compressible(5000);
                assert_eq!(round_trip(&mut c, &input), input);
            }
        }
    }

    #[test]
    fn compressor_is_send() {
        fn send<T: Send>() {}
        send::<Compressor>();
        send::<InvalidLevel>();
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
                let mut back = Vec::new();
                decompress(codec, &out, input.len(), &mut back).unwrap();
                assert_eq!(back, input, "{codec:?} level {l}");
                out.len()
            };
            assert!(
                size(hi) < size(lo),
                "{codec:?}: level {hi} not smaller than {lo}"
            );
        }
    }
}
