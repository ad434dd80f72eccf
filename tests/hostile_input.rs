//! Bad bytes from a broker (or a client, on the broker side) give a typed error — never a
//! panic, never an allocation sized by a hostile length. One test per kind of damage.

use bytes::{Bytes, BytesMut};
use kprod::protocol::compression::{Compression, CompressionConfig, Compressor};
use kprod::protocol::messages::metadata::{MetadataRequest, MetadataResponse, MetadataTopic};
use kprod::protocol::messages::produce::{ProduceRequest, ProduceResponse};
use kprod::protocol::messages::Response;
use kprod::protocol::record_batch::{
    decode_record_batches, BatchHeader, Header, RecordBatchBuilder,
};
use kprod::protocol::{decode_response, encode_response, DecodeError, FrameError, FrameSplitter};

fn batch(codec: Compression) -> Vec<u8> {
    let mut b = RecordBatchBuilder::new();
    for i in 0..20u8 {
        b.append(
            1_700_000_000_000 + i64::from(i),
            Some(&[i]),
            Some(&[i; 50]),
            &[Header::new("h", vec![i])],
        );
    }
    let mut out = Vec::new();
    let mut c = Compressor::new(CompressionConfig::new(codec, None).unwrap());
    b.finish(&BatchHeader::default(), &mut c, &mut out).unwrap();
    out
}

fn reseal(b: &mut [u8]) {
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
}

fn metadata_frame() -> Vec<u8> {
    let resp = MetadataResponse {
        topics: vec![MetadataTopic {
            name: Some("t".into()),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut out = Vec::new();
    encode_response::<MetadataRequest>(&resp, 12, 5, &mut out).unwrap();
    out.split_off(4)
}

#[test]
fn truncated_inputs_are_truncated_errors() {
    let frame = metadata_frame();
    for cut in 0..frame.len() {
        let e = decode_response::<MetadataRequest>(&frame[..cut], 12).unwrap_err();
        assert!(
            matches!(
                e,
                DecodeError::Truncated { .. }
                    | DecodeError::InvalidLength { .. }
                    | DecodeError::UnexpectedNull { .. }
            ),
            "cut {cut}: {e:?}"
        );
    }
    let b = batch(Compression::None);
    for cut in [1, 11, 12, 60, 61, b.len() - 1] {
        let e = decode_record_batches(&Bytes::copy_from_slice(&b[..cut]), 1 << 20).unwrap_err();
        assert!(
            matches!(e, DecodeError::Truncated { .. }),
            "cut {cut}: {e:?}"
        );
    }
}

#[test]
fn oversized_frames_and_lengths_are_rejected_before_allocation() {
    let mut s = FrameSplitter::new(1 << 20);
    let mut buf = BytesMut::from(&i32::MAX.to_be_bytes()[..]);
    assert_eq!(
        s.next_frame(&mut buf),
        Err(FrameError::TooLarge {
            size: i32::MAX as usize,
            max: 1 << 20
        })
    );
    // A Produce response claiming 2^31-1 topics in a 10-byte body.
    let mut frame = 1i32.to_be_bytes().to_vec();
    frame.extend_from_slice(&i32::MAX.to_be_bytes());
    frame.extend_from_slice(&[0; 6]);
    let e = decode_response::<ProduceRequest>(&frame, 8).unwrap_err();
    assert!(
        matches!(
            e,
            DecodeError::InvalidLength {
                what: "responses",
                ..
            }
        ),
        "{e:?}"
    );
    // A batch whose length field exceeds the bytes present.
    let mut b = batch(Compression::None);
    b[8..12].copy_from_slice(&(i32::MAX).to_be_bytes());
    let e = decode_record_batches(&Bytes::from(b), 1 << 20).unwrap_err();
    assert!(
        matches!(
            e,
            DecodeError::Truncated {
                what: "record batch",
                ..
            }
        ),
        "{e:?}"
    );
    // A record count far beyond what the bytes could hold.
    let mut b = batch(Compression::None);
    b[57..61].copy_from_slice(&1_000_000i32.to_be_bytes());
    reseal(&mut b);
    let e = decode_record_batches(&Bytes::from(b), 1 << 20).unwrap_err();
    assert!(
        matches!(
            e,
            DecodeError::InvalidLength {
                what: "record count",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn decompression_bomb_is_bounded() {
    // 20 records × 50 B compress well; allow only 100 bytes of decompressed output.
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let b = batch(codec);
        let e = decode_record_batches(&Bytes::from(b), 100).unwrap_err();
        assert!(
            matches!(e, DecodeError::TooLarge { .. }),
            "{codec:?}: {e:?}"
        );
    }
}

#[test]
fn wrong_crc_is_a_crc_error() {
    for codec in [Compression::None, Compression::Zstd] {
        let mut b = batch(codec);
        let last = b.len() - 1;
        b[last] ^= 0x40;
        let e = decode_record_batches(&Bytes::from(b), 1 << 20).unwrap_err();
        assert!(matches!(e, DecodeError::CrcMismatch { .. }), "{e:?}");
    }
}

#[test]
fn bad_varints_are_varint_errors() {
    // Replace the first record's length varint with an over-long one and re-seal the CRC.
    let mut b = batch(Compression::None);
    b.truncate(61);
    b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    b[57..61].copy_from_slice(&0i32.to_be_bytes()); // count 0 … but bytes remain
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    reseal(&mut b);
    let e = decode_record_batches(&Bytes::from(b.clone()), 1 << 20).unwrap_err();
    assert!(matches!(e, DecodeError::TrailingBytes { .. }), "{e:?}");
    b[57..61].copy_from_slice(&0i32.to_be_bytes());
    // One record (7+ bytes present) whose length varint never terminates.
    b.extend_from_slice(&[0xff; 4]);
    b[57..61].copy_from_slice(&1i32.to_be_bytes());
    let len = (b.len() - 12) as i32;
    b[8..12].copy_from_slice(&len.to_be_bytes());
    reseal(&mut b);
    let e = decode_record_batches(&Bytes::from(b), 1 << 20).unwrap_err();
    assert!(
        matches!(e, DecodeError::BadVarint { max_bytes: 5 }),
        "{e:?}"
    );
    // A compact array length in a flexible response that never terminates.
    let mut frame = 1i32.to_be_bytes().to_vec();
    frame.push(0); // empty header tags
    frame.extend_from_slice(&[0xff; 8]);
    let e = decode_response::<ProduceRequest>(&frame, 9).unwrap_err();
    assert!(matches!(e, DecodeError::BadVarint { .. }), "{e:?}");
}

#[test]
fn garbage_gives_errors_not_panics() {
    let mut x: u32 = 12345;
    for len in 0..400usize {
        let g: Vec<u8> = (0..len)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect();
        for v in 3..=11 {
            let _ = decode_response::<ProduceRequest>(&g, v);
            let _ = ProduceResponse::decode(&mut kprod::protocol::Reader::new(&g), v);
        }
        for v in 1..=12 {
            let _ = decode_response::<MetadataRequest>(&g, v);
        }
        let _ = decode_record_batches(&Bytes::from(g), 1 << 16);
    }
    // Legacy message sets are named as such.
    let mut legacy = vec![0u8; 30];
    legacy[8..12].copy_from_slice(&18i32.to_be_bytes());
    legacy[16] = 1;
    assert_eq!(
        decode_record_batches(&Bytes::from(legacy), 1 << 20),
        Err(DecodeError::UnsupportedMagic(1))
    );
    // Non-UTF-8 header keys.
    let mut b = RecordBatchBuilder::new();
    b.append(0, None, None, &[Header::new("\u{e9}", "v")]);
    let mut out = Vec::new();
    b.finish(
        &BatchHeader::default(),
        &mut Compressor::new(CompressionConfig::new(Compression::None, None).unwrap()),
        &mut out,
    )
    .unwrap();
    let pos = out.iter().position(|&c| c == 0xc3).unwrap();
    out[pos] = 0xff;
    reseal(&mut out);
    assert_eq!(
        decode_record_batches(&Bytes::from(out), 1 << 20),
        Err(DecodeError::InvalidUtf8 { what: "header key" })
    );
}

/// Every decoder of every message kprod speaks (the generated table), at every version, both
/// directions: hostile counts and lengths (`i32::MAX`, `-2`, varints that overflow) and every
/// truncation of such a body give an error, never a panic or an allocation sized by the count.
#[test]
fn every_decoder_rejects_hostile_counts_at_every_version() {
    use kprod::protocol::messages::{decode_any, MESSAGES};
    let hostile: Vec<Vec<u8>> = vec![
        [0x7f, 0xff, 0xff, 0xff].repeat(8), // i32::MAX counts and lengths
        [0xff, 0xff, 0xff, 0xfe].repeat(8), // -2
        [0xff, 0xff, 0xff, 0xff, 0x0f].repeat(6), // compact: u32::MAX - 1 elements
        vec![0xff; 40],                     // varints that never end
        vec![
            0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0x80, 0x80, 0x80, 0x80, 0x10,
        ],
    ];
    let mut checked = 0;
    for m in MESSAGES {
        for v in m.versions() {
            for response in [false, true] {
                for body in &hostile {
                    for cut in 0..=body.len() {
                        if let Ok(()) = decode_any(m.api_key, v, response, &body[..cut]) {
                            // Only a body this short can be a whole message (all fields
                            // absent at this version, or a few fixed-size ones).
                            assert!(
                                cut <= 24,
                                "{:?} v{v}: {cut} hostile bytes decoded",
                                m.api_key
                            );
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 10_000, "{checked}");
}
