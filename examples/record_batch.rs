//! Builds a Produce request the way the producer will — records into a RecordBatch v2 under
//! each codec — frames it, then plays the broker: splits the frame, decodes the request and the
//! batch, checks every record came back intact, and prints what it did.
//!
//! Run: `cargo run --release --example record_batch`

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use kprod::protocol::compression::{Compression, CompressionConfig, Compressor};
use kprod::protocol::messages::produce::{PartitionProduceData, ProduceRequest, TopicProduceData};
use kprod::protocol::record_batch::{
    decode_record_batches, BatchHeader, Header, RecordBatchBuilder,
};
use kprod::protocol::{decode_request, decode_request_header, encode_request, FrameSplitter};

const RECORDS: usize = 10_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let values: Vec<String> = (0..RECORDS)
        .map(|i| {
            format!(
                "{{\"order\":{i},\"sku\":\"SKU-{:05}\",\"qty\":{}}}",
                i % 977,
                i % 9 + 1
            )
        })
        .collect();
    let keys: Vec<String> = (0..RECORDS)
        .map(|i| format!("customer-{}", i % 100))
        .collect();
    let headers = [Header::new("source", "kprod-example")];
    println!(
        "kprod {} — RecordBatch v2 round trip, {RECORDS} records",
        env!("CARGO_PKG_VERSION")
    );
    println!(
        "{:<8} {:>12} {:>12} {:>8} {:>14}",
        "codec", "records B", "batch B", "ratio", "encode ns/rec"
    );
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let mut compressor = Compressor::new(CompressionConfig::new(codec, None)?);
        let mut builder = RecordBatchBuilder::with_capacity(1 << 20);
        let mut batch = Vec::with_capacity(1 << 20);
        let started = Instant::now();
        for (i, (v, key)) in values.iter().zip(&keys).enumerate() {
            builder.append(
                1_700_000_000_000 + i as i64,
                Some(key.as_bytes()),
                Some(v.as_bytes()),
                &headers,
            );
        }
        let header = BatchHeader {
            producer_id: 1,
            producer_epoch: 0,
            base_sequence: 0,
            ..Default::default()
        };
        let stats = builder.finish(&header, &mut compressor, &mut batch)?;
        let ns = started.elapsed().as_nanos() as f64 / RECORDS as f64;

        // Client side: one Produce v11 request frame.
        let request = ProduceRequest {
            transactional_id: None,
            acks: -1,
            timeout_ms: 30_000,
            topic_data: vec![TopicProduceData {
                name: "orders".into(),
                partition_data: vec![PartitionProduceData {
                    index: 0,
                    records: Some(Bytes::from(batch)),
                }],
            }],
        };
        let mut wire = Vec::new();
        encode_request(&request, 11, 1, Some("kprod-example"), &mut wire)?;

        // Broker side: split, decode the header, the request and the batch.
        let mut buf = BytesMut::from(&wire[..]);
        let frame = FrameSplitter::default()
            .next_frame(&mut buf)?
            .ok_or("incomplete frame")?;
        let (h, body) = decode_request_header(&frame)?;
        let decoded: ProduceRequest = decode_request(body, h.api_version)?;
        let records = decoded.topic_data[0].partition_data[0]
            .records
            .clone()
            .unwrap_or_default();
        let batches = decode_record_batches(&records, 64 << 20)?;
        let got = &batches[0].records;
        assert_eq!(got.len(), RECORDS);
        for (i, r) in got.iter().enumerate() {
            assert_eq!(r.value.as_deref(), Some(values[i].as_bytes()));
            assert_eq!(r.offset, i as i64);
        }
        println!(
            "{:<8} {:>12} {:>12} {:>8.2} {:>14.1}",
            codec.name(),
            stats.uncompressed_records_len,
            stats.batch_len,
            stats.uncompressed_records_len as f64 / stats.batch_len as f64,
            ns
        );
    }
    println!("all codecs: {RECORDS} records encoded, framed, decoded and verified");
    Ok(())
}
