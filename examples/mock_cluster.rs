//! Starts a three-broker mock cluster, produces a few records to it with kprod's protocol
//! encoders over a plain TCP connection, and prints what the cluster stored.
//!
//! ```sh
//! cargo run --example mock_cluster --features mock
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;

use bytes::Bytes;
use kprod::mock::MockCluster;
use kprod::protocol::compression::{Compression, CompressionConfig, Compressor};
use kprod::protocol::messages::produce::{PartitionProduceData, ProduceRequest, TopicProduceData};
use kprod::protocol::record_batch::{BatchHeader, Header, RecordBatchBuilder};
use kprod::protocol::{decode_response, encode_request};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = MockCluster::builder()
        .brokers(3)
        .topic("greetings", 3)
        .build()?;
    println!("bootstrap.servers={}", cluster.bootstrap_servers());

    // Partition 0 is led by broker 1.
    let leader = cluster.partition_leader("greetings", 0).unwrap();
    let mut conn = TcpStream::connect(cluster.broker_addr(leader))?;

    let mut builder = RecordBatchBuilder::new();
    for (i, word) in ["hello", "hallo", "bonjour"].iter().enumerate() {
        let key = format!("k{i}");
        builder.append(
            1_700_000_000_000 + i as i64,
            Some(key.as_bytes()),
            Some(word.as_bytes()),
            &[Header::new("lang", "demo")],
        );
    }
    let mut batch = Vec::new();
    let mut compressor = Compressor::new(CompressionConfig::new(Compression::None, None)?);
    builder.finish(&BatchHeader::default(), &mut compressor, &mut batch)?;

    let req = ProduceRequest {
        acks: -1,
        timeout_ms: 5000,
        topic_data: vec![TopicProduceData {
            name: "greetings".into(),
            partition_data: vec![PartitionProduceData {
                index: 0,
                records: Some(Bytes::from(batch)),
            }],
        }],
        ..Default::default()
    };
    let mut out = Vec::new();
    encode_request(&req, 9, 1, Some("example"), &mut out)?;
    conn.write_all(&out)?;
    let mut len = [0u8; 4];
    conn.read_exact(&mut len)?;
    let mut frame = vec![0u8; i32::from_be_bytes(len) as usize];
    conn.read_exact(&mut frame)?;
    let (_, resp) = decode_response::<ProduceRequest>(&frame, 9)?;
    let p = &resp.responses[0].partition_responses[0];
    println!(
        "produced: error {} base offset {}",
        p.error_code, p.base_offset
    );

    for r in cluster.records("greetings", 0) {
        println!(
            "offset {} ts {} key {:?} value {:?} headers {:?}",
            r.offset,
            r.timestamp,
            r.key.as_deref().map(String::from_utf8_lossy),
            r.value.as_deref().map(String::from_utf8_lossy),
            r.headers
        );
    }
    println!("end offset {}", cluster.end_offset("greetings", 0));
    Ok(())
}
