//! Batch-building cost: 1,000 × 100 B and 100 × 1 KiB records into one RecordBatch v2, per
//! codec; beside each codec, that codec's own speed compressing the same record bytes (so the
//! cost of kprod's framing is the difference); for lz4 and zstd, kprod's compressor alone against
//! the codec's core with its state reused (`codec_floor`); and CRC-32C alone.
//!
//! `cargo bench --bench batch_encode`

#[path = "support/codec.rs"]
mod codec;

use std::io::Write;

use codec::{raw_codec, records_region, CodecFloor};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kprod::protocol::compression::{Compression, CompressionConfig, Compressor};
use kprod::protocol::record_batch::{BatchHeader, RecordBatchBuilder};

/// Deterministic, moderately compressible values (JSON-ish text with varying numbers), like
/// typical event payloads.
fn values(n: usize, size: usize) -> Vec<Vec<u8>> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n)
        .map(|i| {
            let mut v = Vec::with_capacity(size);
            while v.len() < size {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                write!(
                    v,
                    "{{\"id\":{i},\"user\":{},\"amount\":{}.{:02},\"ok\":true}}",
                    x % 100_000,
                    x % 997,
                    x % 100
                )
                .unwrap();
            }
            v.truncate(size);
            v
        })
        .collect()
}

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

fn bench_encode(c: &mut Criterion) {
    for (n, size) in [(1000usize, 100usize), (100, 1024)] {
        let vals = values(n, size);
        let region = records_region(&vals);
        let mut g = c.benchmark_group(format!("batch_{n}x{size}B"));
        g.throughput(Throughput::Elements(n as u64));
        for codec in CODECS {
            let cfg = CompressionConfig::new(codec, None).unwrap();
            let mut compressor = Compressor::new(cfg);
            let mut builder = RecordBatchBuilder::with_capacity(n * (size + 16));
            let mut out = Vec::with_capacity(n * (size + 16) + 61);
            g.bench_function(BenchmarkId::new("kprod_encode", codec.name()), |b| {
                b.iter(|| {
                    out.clear();
                    for v in &vals {
                        builder.append(1_700_000_000_000, None, Some(black_box(v)), &[]);
                    }
                    builder
                        .finish(&BatchHeader::default(), &mut compressor, &mut out)
                        .unwrap();
                    black_box(out.len())
                })
            });
            let mut raw = Vec::with_capacity(region.len() + 1024);
            g.bench_function(BenchmarkId::new("codec_alone", codec.name()), |b| {
                b.iter(|| {
                    raw_codec(codec, black_box(&region), &mut raw);
                    black_box(raw.len())
                })
            });
            if matches!(codec, Compression::Lz4 | Compression::Zstd) {
                // kprod's compressor alone (no record encoding) against the codec's core with
                // its state reused: what kprod's compression step costs over the floor.
                let mut kprod_compressor = Compressor::new(cfg);
                g.bench_function(BenchmarkId::new("kprod_compressor", codec.name()), |b| {
                    b.iter(|| {
                        raw.clear();
                        kprod_compressor
                            .compress(black_box(&region), &mut raw)
                            .unwrap();
                        black_box(raw.len())
                    })
                });
                let mut floor = CodecFloor::new(codec);
                g.bench_function(BenchmarkId::new("codec_floor", codec.name()), |b| {
                    b.iter(|| black_box(floor.compress(black_box(&region), &mut raw)))
                });
            }
        }
        g.finish();
    }
}

fn bench_crc(c: &mut Criterion) {
    let mut g = c.benchmark_group("crc32c");
    for len in [100usize, 100_000] {
        let data = values(1, len).pop().unwrap();
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(BenchmarkId::from_parameter(len), |b| {
            b.iter(|| crc32c::crc32c(black_box(&data)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_encode, bench_crc);
criterion_main!(benches);
