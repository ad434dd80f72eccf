//! Seeds for the fuzz targets: valid record batches under every codec (with and without
//! headers, null keys and values), so mutations start from inputs that pass the CRC and reach
//! the record parser and decompressors.

use std::fs;
use std::path::Path;

use kprod::protocol::compression::{Compression, CompressionConfig, Compressor};
use kprod::protocol::record_batch::{BatchHeader, Header, RecordBatchBuilder};

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/record_batch");
    fs::create_dir_all(&dir).unwrap();
    let mut n = 0;
    for codec in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
        for records in [1usize, 3, 17] {
            let mut b = RecordBatchBuilder::new();
            for i in 0..records {
                let key = (i % 2 == 0).then(|| vec![i as u8; i]);
                let value = (i % 3 != 2).then(|| format!("value-{i}-{}", "z".repeat(i * 5)).into_bytes());
                let headers = if i % 2 == 1 { vec![Header::new("h", vec![i as u8])] } else { vec![] };
                b.append(1_700_000_000_000 + i as i64, key.as_deref(), value.as_deref(), &headers);
            }
            let mut out = vec![0u8]; // the target's mode byte: 0 = as is
            b.finish(
                &BatchHeader { producer_id: 5, producer_epoch: 1, base_sequence: 0, ..Default::default() },
                &mut Compressor::new(CompressionConfig::new(codec, None).unwrap()),
                &mut out,
            )
            .unwrap();
            fs::write(dir.join(format!("{}-{records}", codec.name())), &out).unwrap();
            n += 1;
        }
    }
    println!("wrote {n} seeds to {}", dir.display());
}
