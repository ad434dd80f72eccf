//! Headers: ordered key/value pairs on a record, duplicate keys allowed, null values allowed.
//! With the embedded cluster, the example reads the stored records back and prints them.
//!
//! ```sh
//! cargo run --example headers --features mock
//! cargo run --example headers --features mock -- localhost:9092
//! ```

use std::time::Duration;

use kprod::{Producer, ProducerRecord};

mod common;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (bootstrap, cluster) = common::bootstrap(&[("traced", 1)])?;
    let producer = Producer::builder().bootstrap_servers(&bootstrap).build()?;

    let record = ProducerRecord::new("traced")
        .key("order-17")
        .value("{\"status\":\"shipped\"}")
        .header("trace-id", "4bf92f3577b34da6")
        .header("hop", "gateway")
        .header("hop", "billing") // duplicate keys are kept, in order
        .header("empty", None::<&[u8]>) // a header with a null value
        .timestamp(1_700_000_000_000); // explicit CreateTime (default: now)
    let md = producer.produce_record(record)?;
    println!(
        "stored at {}/{} offset {}",
        md.topic, md.partition, md.offset
    );
    producer.close(Duration::from_secs(10))?;

    if let Some(cluster) = cluster {
        for r in cluster.records("traced", md.partition) {
            println!("offset {} timestamp {}", r.offset, r.timestamp);
            for h in &r.headers {
                let value = h.value.as_deref().map(String::from_utf8_lossy);
                println!("  header {:?} = {:?}", h.key, value);
            }
        }
    }
    Ok(())
}
