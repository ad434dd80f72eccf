//! Shared by the benches: the encoded records region of a batch (what a codec compresses) and
//! each codec's own library compressing it, at the level kprod uses by default.

use std::io::Write;

use kprod::protocol::compression::{Compression, CompressionConfig, Compressor};
use kprod::protocol::record_batch::{BatchHeader, RecordBatchBuilder};

/// The encoded (uncompressed) records region of a batch of `vals`, as the codecs see it.
pub fn records_region<V: AsRef<[u8]>>(vals: &[V]) -> Vec<u8> {
    let mut b = RecordBatchBuilder::new();
    for v in vals {
        b.append(1_700_000_000_000, None, Some(v.as_ref()), &[]);
    }
    let mut out = Vec::new();
    let none = CompressionConfig::new(Compression::None, None).unwrap();
    b.finish(
        &BatchHeader::default(),
        &mut Compressor::new(none),
        &mut out,
    )
    .unwrap();
    out.split_off(61)
}

/// Each codec's own library compressing `input` into `out`, at kprod's default level, with a
/// fresh encoder each call (the libraries' plain one-shot use).
#[allow(dead_code)] // not every bench uses every function
pub fn raw_codec(codec: Compression, input: &[u8], out: &mut Vec<u8>) {
    out.clear();
    match codec {
        Compression::None => out.extend_from_slice(input),
        Compression::Gzip => {
            let level = Compression::Gzip.default_level().unwrap() as u32;
            let mut e = flate2::write::GzEncoder::new(&mut *out, flate2::Compression::new(level));
            e.write_all(input).unwrap();
            e.finish().unwrap();
        }
        Compression::Snappy => {
            out.resize(snap::raw::max_compress_len(input.len()), 0);
            let n = snap::raw::Encoder::new().compress(input, out).unwrap();
            out.truncate(n);
        }
        Compression::Lz4 => {
            let mut e = lz4_flex::frame::FrameEncoder::new(&mut *out);
            e.write_all(input).unwrap();
            e.finish().unwrap();
        }
        Compression::Zstd => {
            let level = Compression::Zstd.default_level().unwrap();
            *out = zstd::bulk::compress(input, level).unwrap();
        }
    }
}

/// The codec's core at its cheapest, reusing its state across calls as a long-lived producer
/// would: lz4 as raw blocks of at most 64 KiB (the frame's block size; no frame around them),
/// zstd through one reused context at kprod's default level. The floor a producer's
/// compression cost is measured against.
#[allow(dead_code)]
pub struct CodecFloor {
    codec: Compression,
    zstd: Option<zstd::bulk::Compressor<'static>>,
}

#[allow(dead_code)]
impl CodecFloor {
    pub fn new(codec: Compression) -> Self {
        let zstd = (codec == Compression::Zstd).then(|| {
            zstd::bulk::Compressor::new(Compression::Zstd.default_level().unwrap()).unwrap()
        });
        CodecFloor { codec, zstd }
    }

    /// Compresses `input` into `out`; returns the compressed length.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        match (self.codec, &mut self.zstd) {
            (Compression::Zstd, Some(z)) => {
                out.clear();
                out.reserve(zstd::zstd_safe::compress_bound(input.len()));
                z.compress_to_buffer(input, out).unwrap()
            }
            (Compression::Lz4, _) => {
                let mut n = 0;
                for chunk in input.chunks(64 * 1024) {
                    let bound = lz4_flex::block::get_maximum_output_size(chunk.len());
                    if out.len() < n + bound {
                        out.resize(n + bound, 0);
                    }
                    n += lz4_flex::block::compress_into(chunk, &mut out[n..]).unwrap();
                }
                n
            }
            _ => {
                raw_codec(self.codec, input, out);
                out.len()
            }
        }
    }
}
