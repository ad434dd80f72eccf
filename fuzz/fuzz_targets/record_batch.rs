//! The record-batch decoder on arbitrary bytes, with a valid CRC re-computed half the time so
//! the fuzzer reaches the record parser and the decompressors. Never panics; decompression
//! stays within its bound; `check_one` accepts and rejects exactly what `decode_one` does.
#![no_main]
use bytes::Bytes;
use kprod::protocol::record_batch::{check_one, decode_one, decode_record_batches};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut bytes = rest.to_vec();
    if mode & 1 == 1 && bytes.len() >= 61 {
        let len = (bytes.len() - 12) as i32;
        bytes[8..12].copy_from_slice(&len.to_be_bytes());
        bytes[16] = 2;
        let crc = crc32c(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    let bytes = Bytes::from(bytes);
    // The checker (what a sink-mode mock uses) agrees with the decoder on every input.
    let decoded = decode_one(&bytes, 1 << 20).map(|(mut b, used)| {
        b.records.clear();
        (b, used)
    });
    assert_eq!(check_one(&bytes, 1 << 20), decoded);
    if let Ok(batches) = decode_record_batches(&bytes, 1 << 20) {
        for b in batches {
            let total: usize = b
                .records
                .iter()
                .map(|r| r.key.as_ref().map_or(0, |k| k.len()) + r.value.as_ref().map_or(0, |v| v.len()))
                .sum();
            assert!(total <= 1 << 20 || b.compression == kprod::protocol::compression::Compression::None);
        }
    }
});

/// CRC-32C (Castagnoli), bitwise: the fuzz crate recomputes it without depending on the
/// library's choice of implementation.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}
